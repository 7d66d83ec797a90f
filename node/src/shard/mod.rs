//! One shard, on its own thread: a thin host around the shard's
//! [`palisade_shard_core::ShardCore`] (replica, chain, mempool, pools, sync
//! client, pacing, gossip admission), over the node's RocksDB store.
//!
//! - [`handle`]: the queues other parts use to reach a shard;
//! - `driver`: the thread that serves them and carries out the core's effects;
//! - `store`: the core's storage traits over RocksDB.

pub mod driver;
mod handle;
pub mod store;

pub use driver::{ShardConfig, ShardError, initial_status, spawn};
pub use handle::{
    ClientKey, Control, FINAL_BLOCKS_BUFFERED, FinalBlock, GossipInput, QueueBounds, SHARD_REPLY_TIMEOUT, ShardBusy,
    ShardHandle, ShardQueues, ShardStatus, SyncAnswer, TxInput, TxState, shard_channel,
};
/// Validating, building and committing blocks (the core's).
pub use palisade_shard_core::chain;
