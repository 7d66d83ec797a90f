//! Simulated time and the wire: a discrete-event queue keyed by
//! `(time_ms, sequence)` (the sequence breaks ties in insertion order, so the
//! schedule is a pure function of the seed), and what travels between nodes.
//! Consensus messages travel as encoded bytes; the receiver decodes (bounded)
//! and verifies them like any peer input.

use std::collections::BTreeMap;

use palisade_consensus::{Decision, TimerId};

/// Most blocks in one sync response.
pub const MAX_SYNC_BLOCKS: usize = 64;
/// A sync request that brought nothing is retried (at another peer) after this.
pub const SYNC_RETRY_MS: u64 = 300;
/// Retries of one sync request.
pub const MAX_SYNC_ATTEMPTS: u32 = 8;

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
