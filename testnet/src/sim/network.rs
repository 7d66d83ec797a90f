//! Simulated time and the wire: a discrete-event queue keyed by
//! `(time_ms, sequence)` (the sequence breaks ties in insertion order, so the
//! schedule is a pure function of the seed), and what travels between
//! nodes. Gossip travels as the bytes a core published, to every other node
//! subscribed to the topic (as gossipsub's flood publishing sends a node's
//! own messages); each copy is delayed, lost or duplicated on its own.
//! Block-sync and receipt-scan requests travel to one peer and back; a lost
//! request or answer reaches the asker as a failure after
//! [`REQUEST_TIMEOUT_MS`], as a timed-out request-response does.

use std::collections::BTreeMap;
use std::rc::Rc;

use palisade_shard_core::wire::{SyncRequest, SyncResponse, TopicKind};

/// How long an asker waits for an answer before it gets a failure.
pub const REQUEST_TIMEOUT_MS: u64 = 1_000;

/// What travels between two nodes.
#[derive(Clone, Debug)]
pub enum Wire {
    /// A gossip message on one of a shard's topics.
    Gossip {
        /// The topic.
        kind: TopicKind,
        /// The bytes its publisher gave (shared by every copy).
        data: Rc<[u8]>,
    },
    /// A block-sync or receipt-scan request.
    Request {
        /// The asker's number for it (its answer or time-out, whichever
        /// comes first, is handed over; the other is dropped).
        id: u64,
        /// What is asked.
        request: SyncRequest,
    },
    /// The answer to a request.
    Answer {
        /// The request's number.
        id: u64,
        /// The server's answer, or why it refused.
        answer: Result<SyncResponse, String>,
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
    /// A request went unanswered: the asker's transport reports a failure.
    TimedOut {
        /// The asker.
        node: usize,
        /// The request's number.
        id: u64,
    },
    /// A core's deadline: the host sends it `Input::Tick`.
    Tick {
        /// The node.
        node: usize,
        /// The incarnation that asked for it.
        incarnation: u64,
    },
    /// A node stops; volatile state is lost.
    Crash {
        /// The node.
        node: usize,
    },
    /// A node restarts from its store and persisted safety state.
    Restart {
        /// The node.
        node: usize,
    },
    /// A node's disk corrupts a state value (its shard's fee record): it
    /// stops, the value changes, it restarts.
    Tamper {
        /// The node.
        node: usize,
    },
    /// The operator puts the value back: the node stops, is repaired and
    /// restarts.
    Repair {
        /// The node.
        node: usize,
    },
    /// A client submits a transfer to one of a shard's nodes.
    Submit {
        /// The shard.
        shard: u32,
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

    /// The earliest event, if it is due by `end_ms` (later ones stay).
    pub fn pop_until(&mut self, end_ms: u64) -> Option<(u64, Event)> {
        let first = self.events.first_entry()?;
        if first.key().0 > end_ms {
            return None;
        }
        let ((at_ms, _), event) = first.remove_entry();
        Some((at_ms, event))
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
