//! What goes into a [`crate::ShardCore`] and what comes out.
//!
//! The host carries out a core's effects **in order**: an
//! [`Effect::Persist`] is durable before any later effect runs, so a
//! validator never sends a vote its store does not remember. Every
//! [`Input::Gossip`] gets exactly one [`Effect::Verdict`].

use palisade_consensus::{CommitCertificate, Phase, SafetyState, ValidatorIndex};
use palisade_ledger::slashing::SlashRecord;
use palisade_ledger::{Address, Block, Hash, ShardId};
use serde::Serialize;

use crate::view::ViewChange;
use crate::wire::{SyncRequest, SyncResponse, TopicKind};

/// An input to a shard core, handed over with the host's time.
#[derive(Debug)]
pub enum Input {
    /// The core starts: the replica's first actions, a first sync request
    /// (we may have been down while peers moved on), the periodic timers.
    Start,
    /// A message from one of the shard's gossip topics (or this shard's
    /// receipts topic), not yet decoded. Answered by one [`Effect::Verdict`].
    Gossip {
        /// The topic it came on.
        kind: TopicKind,
        /// Its bytes (size-checked by the transport against the topic's limit).
        data: Vec<u8>,
    },
    /// Time passed: fire the timers that are due, build a proposal that is
    /// due. Hosts send it after each burst of inputs and at
    /// [`crate::ShardCore::next_deadline_ms`].
    Tick,
    /// The answer to an [`Effect::Request`], or why there is none (not
    /// sent, timed out, refused).
    SyncAnswer {
        /// What was asked.
        request: SyncRequest,
        /// The answer, checked against the request by the transport.
        answer: Result<SyncResponse, String>,
    },
}

/// A gossip message's verdict, for the transport's scoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Provably bad (undecodable, bad signature, wrong chain): do not forward,
    /// and penalise the peer that sent it.
    Reject,
    /// Not useful but not the sender's fault (duplicate, stale, queue full):
    /// do not forward, no penalty.
    Ignore,
}

/// What a core asks its host to do, in order.
#[derive(Debug)]
pub enum Effect {
    /// Make the replica's safety state durable (synced) before any later
    /// effect.
    Persist(SafetyState),
    /// Publish on a shard's gossip topic (ours, or another shard's receipts
    /// topic).
    Publish {
        /// The topic's shard.
        shard: ShardId,
        /// Which of its topics.
        kind: TopicKind,
        /// The encoded message.
        data: Vec<u8>,
    },
    /// The verdict on the gossip input being handled.
    Verdict(Verdict),
    /// Ask a peer (block sync or receipt scan); answer with
    /// [`Input::SyncAnswer`], also when it cannot be sent.
    Request(SyncRequest),
    /// A block became final here (committed to the store already).
    Committed(Box<Committed>),
    /// Something worth counting.
    Note(Note),
    /// What the input changed in the pools, for the host's
    /// [`crate::view::ReadView`] (one per input at most, last).
    View(Vec<ViewChange>),
}

/// A block just made final by a core.
#[derive(Debug)]
pub struct Committed {
    /// The block.
    pub block: Block,
    /// Its header hash.
    pub hash: Hash,
    /// Its certificate.
    pub certificate: CommitCertificate,
    /// Its encoded size.
    pub bytes: usize,
    /// Applied through sync rather than decided by our replica.
    pub synced: bool,
    /// Time from entering the height to committing it, in the host's ms.
    pub latency_ms: u64,
    /// Receipts the block credited.
    pub credited: usize,
    /// Receipts it emitted for other shards.
    pub emitted: usize,
    /// Validators it slashed and jailed.
    pub slashed: Vec<(Address, SlashRecord)>,
    /// The committee members jailed for the next height, when it changed.
    pub jailed_next: Option<Vec<ValidatorIndex>>,
}

/// Counted events (the node turns them into Prometheus metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A gossip message was provably bad.
    GossipRefused {
        /// Its topic.
        kind: TopicKind,
        /// `decode` or `invalid`.
        reason: &'static str,
    },
    /// The mempool refused a transaction (its [`crate::mempool::Rejection::label`]).
    TxRejected(&'static str),
    /// Our replica detected an equivocation, in this slot.
    EvidenceDetected {
        /// The equivocating validator.
        signer: ValidatorIndex,
        /// The height of the two messages.
        height: u64,
        /// Their view.
        view: u64,
        /// Their phase.
        phase: Phase,
    },
    /// The replica moved from one view to a higher one at its height.
    ViewChanged {
        /// The height.
        height: u64,
        /// Views skipped.
        by: u64,
    },
    /// A peer showed us a higher committed height.
    PeerHeight(u64),
}

/// A transaction's state as far as the core's memory goes (final
/// transactions are found in the store's transaction index instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TxState {
    /// Waiting in the mempool.
    Pending,
    /// Refused by the mempool or dropped by a block builder, recently.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Not known here.
    Unknown,
}

/// How long after its start a shard counts its quorum as present before
/// it has heard anyone: dialling peers and joining gossip meshes takes a
/// moment, and a restart is not an outage.
pub const STARTUP_GRACE_MS: u64 = 3_000;

/// What a shard publishes about itself.
#[derive(Clone, Debug, Serialize)]
pub struct ShardStatus {
    /// The shard.
    pub shard: ShardId,
    /// This node's committee index on it, if it validates it.
    pub validator_index: Option<ValidatorIndex>,
    /// Committed height.
    pub height: u64,
    /// Hash of the block at `height` (the genesis hash at 0).
    pub last_block_hash: Hash,
    /// When `height` was committed here, ms since the Unix epoch (node start
    /// time if nothing was committed since).
    pub last_commit_unix_ms: u64,
    /// Consensus view at the height being decided.
    pub view: u64,
    /// Who leads view 0 of the next height (`None` before the core runs).
    pub next_leader: Option<ValidatorIndex>,
    /// Active members left out of the leader rotation for failing their
    /// recent turns (`palisade_ledger::rotation`), in index order.
    pub benched: Vec<ValidatorIndex>,
    /// Highest height seen from peers; above `height` while catching up.
    pub peer_height: u64,
    /// Since when this node has been `BEHIND_BLOCKS` or more below its
    /// peers (ms since the Unix epoch), if it is.
    pub behind_since_unix_ms: Option<u64>,
    /// Until when the committee members heard recently, with this node,
    /// hold a quorum (ms since the Unix epoch; 0: never, `u64::MAX`: this
    /// node alone is one). Past it, this node's shard has lost its quorum
    /// or this node is cut off from it.
    pub quorum_until_unix_ms: u64,
    /// When each active committee member was last heard, in index order
    /// (ms since the Unix epoch; 0: never; `u64::MAX`: this node).
    pub heard_unix_ms: Vec<u64>,
    /// How long a member may stay silent and still count as heard.
    pub presence_window_ms: u64,
    /// The base fee the next block charges, in units.
    pub base_fee_units: u64,
    /// Senders the intake breaker refuses now (`crate::intake`).
    pub throttled_senders: usize,
    /// Clients (addresses) the intake breaker refuses now.
    pub throttled_clients: usize,
    /// Why this validator stopped proposing and voting for the shard, if
    /// it did (`crate::quarantine`).
    pub quarantined: Option<String>,
    /// Transactions waiting in the mempool.
    pub mempool_txs: usize,
    /// Bytes the mempool holds.
    #[serde(skip)]
    pub mempool_bytes: usize,
    /// Receipts waiting to be credited.
    #[serde(skip)]
    pub receipts_pooled: usize,
}

impl ShardStatus {
    /// What a shard publishes before its core has run: `height` with block
    /// `last_block_hash`, taken as committed at `now_unix_ms` (the node's
    /// start), view 0, nothing pooled, no validator index yet.
    pub fn initial(shard: ShardId, height: u64, last_block_hash: Hash, now_unix_ms: u64) -> ShardStatus {
        ShardStatus {
            shard,
            validator_index: None,
            height,
            last_block_hash,
            last_commit_unix_ms: now_unix_ms,
            view: 0,
            next_leader: None,
            benched: Vec::new(),
            peer_height: 0,
            behind_since_unix_ms: None,
            // A node that just started has heard nobody yet: not a lost
            // quorum until its first window has passed.
            quorum_until_unix_ms: now_unix_ms.saturating_add(STARTUP_GRACE_MS),
            heard_unix_ms: Vec::new(),
            presence_window_ms: 0,
            base_fee_units: 0,
            throttled_senders: 0,
            throttled_clients: 0,
            quarantined: None,
            mempool_txs: 0,
            mempool_bytes: 0,
            receipts_pooled: 0,
        }
    }
}
