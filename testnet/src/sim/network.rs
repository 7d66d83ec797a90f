//! Simulated time and the wire: a discrete-event queue keyed by
//! `(time_ms, sequence)` (the sequence breaks ties in insertion order, so the
//! schedule is a pure function of the seed), and what travels between nodes.
//! Consensus messages travel as encoded bytes; the receiver decodes (bounded)
//! and verifies them like any peer input. Receipt batches travel as values
//! (like sync responses): the receiver bounds and verifies them before use.

use std::collections::BTreeMap;

use palisade_consensus::{Decision, TimerId};
use palisade_ledger::ReceiptBatch;

/// Most blocks in one sync response.
pub const MAX_SYNC_BLOCKS: usize = 64;
/// A sync request that brought nothing is retried (at another peer) after this.
pub const SYNC_RETRY_MS: u64 = 300;
/// Retries of one sync request.
pub const MAX_SYNC_ATTEMPTS: u32 = 8;
/// Most receipt batches in one pull response.
pub const MAX_PULL_BATCHES: usize = 16;
/// Each node asks every other shard for receipts this often.
pub const PULL_INTERVAL_MS: u64 = 200;

/// What travels between two nodes.
#[derive(Clone, Debug)]
pub enum Wire {
    /// An encoded consensus message (or, from a Byzantine node, any bytes).
    Consensus(Vec<u8>),
    /// "Send me your certified blocks from this height on."
    SyncRequest {
        /// First height wanted.
        from_height: u64,
    },
    /// Committed blocks with their certificates, in height order.
    SyncResponse(Vec<Decision>),
    /// Receipts for the receiver's shard, relayed by a node that committed
    /// their source block (or forged by a Byzantine relayer).
    Receipts(Box<ReceiptBatch>),
    /// "Send me the receipts your shard's blocks emitted for my shard, from
    /// this source height on."
    ReceiptRequest {
        /// First source height wanted.
        from_height: u64,
    },
    /// The answer: batches by increasing source height, and the height the
    /// answer covers (no batch for the asker at the heights in between).
    ReceiptResponse {
        /// The request's first height.
        from_height: u64,
        /// Source heights up to this one were scanned.
        through: u64,
        /// At most [`MAX_PULL_BATCHES`].
        batches: Vec<ReceiptBatch>,
    },
}

/// Something that happens at a simulated time.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message arrives.
    Deliver {
        /// Sender (global node index).
        from: usize,
        /// Receiver (global node index).
        to: usize,
        /// The message.
        wire: Wire,
    },
    /// A replica's timer fires (ignored by a later incarnation).
    Timer {
        /// The node.
        node: usize,
        /// The incarnation that set it.
        incarnation: u64,
        /// The timer.
        id: TimerId,
    },
    /// The leader's block interval is over: build and hand over the block.
    BuildProposal {
        /// The node.
        node: usize,
        /// The incarnation that asked.
        incarnation: u64,
        /// Height asked for.
        height: u64,
        /// View asked for.
        view: u64,
    },
    /// Check whether a sync request made progress; retry if not.
    SyncRetry {
        /// The node.
        node: usize,
        /// The incarnation that asked.
        incarnation: u64,
        /// The first height it lacked.
        height: u64,
        /// Attempts so far.
        attempt: u32,
    },
    /// A node stops; volatile state is lost.
    Crash {
        /// The node.
        node: usize,
    },
    /// A node restarts from its persisted state and committed chain.
    Restart {
        /// The node.
        node: usize,
    },
    /// A client submits a transfer to a shard's validators.
    Submit {
        /// The shard.
        shard: u32,
    },
    /// A node asks each other shard for the receipts it has not seen.
    Pull {
        /// The node.
        node: usize,
        /// The incarnation that scheduled it.
        incarnation: u64,
    },
    /// A Byzantine node's periodic hook.
    Tick {
        /// The node.
        node: usize,
    },
    /// Partitions and drops end, every crashed node is back: liveness is
    /// measured from here.
    Heal,
}

/// The event queue.
#[derive(Default)]
pub struct Queue {
    events: BTreeMap<(u64, u64), Event>,
    sequence: u64,
}

impl Queue {
    /// Schedules `event` at `at_ms`.
    pub fn push(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.events.insert((at_ms, self.sequence), event);
    }

    /// The earliest event.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        self.events.pop_first().map(|((at_ms, _), event)| (at_ms, event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
