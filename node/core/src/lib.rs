//! palisade-shard-core: [`ShardCore`], the pure host of one shard on one
//! node: the consensus replica, the chain over a store, the mempool, the
//! receipt and evidence pools, the sync client, proposal pacing and gossip
//! admission. `handle(now_ms, input, &mut effects)`: time comes in with the
//! input, storage sits behind [`storage::ChainStore`], and everything else
//! the host must do comes out as an [`Effect`]. No tokio, libp2p, RocksDB,
//! sockets or clocks (CI checks it with `cargo tree`), so the validator
//! (`palisade-node`) and the seeded simulator (`palisade-testnet sim`) run
//! the same code.
//!
//! - [`shard`]: [`ShardCore`] itself;
//! - [`effect`]: its inputs and effects;
//! - [`chain`]: validating, building and committing blocks;
//! - [`mempool`], [`receipts`], [`evidence`]: what waits for a block;
//! - [`intake`]: the per-sender breaker on client submissions;
//! - [`quarantine`]: the breaker on ourselves (stop voting when our state,
//!   clock or disk cannot be trusted);
//! - [`timers`]: its deadlines;
//! - [`presence`]: which committee members it hears from;
//! - [`view`]: what the host keeps for RPC reads of the pools;
//! - [`serve`]: answering peers' sync requests and receipt scans;
//! - [`storage`]: the store traits, and [`storage::MemStore`];
//! - [`wire`]: gossip topics, the sync protocol and size limits;
//! - [`byzantine`]: test-only misbehaviours, as filters on its effects.

pub mod byzantine;
pub mod chain;
pub mod effect;
pub mod evidence;
pub mod intake;
pub mod keys;
pub mod mempool;
pub mod presence;
pub mod quarantine;
pub mod receipts;
pub mod serve;
pub mod shard;
pub mod storage;
pub mod timers;
pub mod view;
pub mod wire;

pub use effect::{Committed, Effect, Input, Note, ShardStatus, TxState, Verdict};
pub use shard::{CoreConfig, OpenError, ShardCore, max_block_bytes, replica_config};
pub use storage::{ChainRead, ChainStore, MemStore, StorageError};
pub use view::{ReadView, ViewChange};
