//! palisade-ledger: what the chain is made of and how it changes.
//!
//! - [`address`], [`keys`], [`amount`]: accounts, ed25519 keys, PAL amounts;
//! - [`keystore`]: password-encrypted key files (validator and wallet);
//! - [`tx`], [`header`], [`block`]: signed transactions, block headers and
//!   per-shard blocks;
//! - [`receipt`]: cross-shard receipts and the batches that carry them;
//! - [`receipt_proof`]: the receipts a block emits, their proofs and checks;
//! - [`rotation`]: who leads, with failing leaders benched for a while;
//! - [`state`], [`tree`]: a shard's state and its Jellyfish Merkle commitment;
//! - [`execute`]: pure block validation/execution and block building;
//! - [`fee`]: the base fee each shard charges, rising with congestion;
//! - [`api`]: the node's JSON-RPC interface as clients see it;
//! - [`genesis`]: the network's genesis document;
//! - [`mem`]: state in memory (tests, simulator);
//! - [`workload`]: funded dev accounts that sign transfers (tests, benchmarks);
//! - `store` (feature `storage`): the node's RocksDB database.
//!
//! Everything but `store` is light enough for the wallet, which builds this
//! crate without the `storage` feature and so never links RocksDB.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod address;
pub mod amount;
pub mod api;
pub mod block;
pub mod codec;
pub mod committee;
pub mod execute;
pub mod fee;
pub mod genesis;
pub mod hash;
pub mod header;
pub mod keys;
pub mod keystore;
pub mod mem;
pub mod receipt;
pub mod receipt_proof;
pub mod rotation;
pub mod slashing;
pub mod stake;
pub mod state;
#[cfg(feature = "storage")]
pub mod store;
pub mod tree;
pub mod tx;
pub mod workload;

pub use address::{Address, ShardId};
pub use amount::Amount;
pub use block::{Block, BlockHeader};
pub use execute::{BlockError, Outcome, TxError, apply_block, build_block};
pub use genesis::Genesis;
pub use hash::Hash;
pub use keys::Keypair;
pub use receipt::{Receipt, ReceiptBatch};
pub use state::{Account, State, StateExt, StateKey, Tip};
pub use tx::{SignedTx, TxBody, TxKind};
