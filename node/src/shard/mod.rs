//! One shard, on its own thread: the consensus replica, the shard's state in
//! the store, its mempool, and the host duties the consensus crate lists.
//!
//! - [`handle`]: the queues other parts use to reach a shard;
//! - `driver`: the thread that serves them;
//! - `chain`: validating, building, committing and serving blocks;
//! - `receipts`: relaying receipts, and pooling those owed to the shard;
//! - `timers`: the thread's deadlines.

pub mod chain;
pub mod driver;
pub mod evidence;
mod handle;
pub mod receipts;
mod timers;

pub use driver::{ShardConfig, ShardError, initial_status, spawn};
pub use handle::{
    Control, FINAL_BLOCKS_BUFFERED, FinalBlock, GossipInput, QueueBounds, SHARD_REPLY_TIMEOUT, ShardBusy, ShardHandle,
    ShardQueues, ShardStatus, SyncAnswer, TxInput, TxState, shard_channel,
};
