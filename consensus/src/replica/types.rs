//! The replica's configuration, inputs, actions, persisted state and errors.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::certificate::{CommitCertificate, PreparedCertificate};
use crate::committee::{Committee, ValidatorIndex};
use crate::evidence::Evidence;
use crate::message::{BlockHash, Phase, ShardId, SignedMessage, Verified};

/// Default bound on a block's size: 4 MiB.
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Default timeout of view 0.
pub const DEFAULT_BASE_TIMEOUT_MS: u64 = 1_000;
/// Default time a follower waits for a sign of life from the leader.
pub const DEFAULT_LEADER_TIMEOUT_MS: u64 = 400;
/// Default cap on the exponentially growing view timeout.
pub const DEFAULT_MAX_TIMEOUT_MS: u64 = 60_000;
/// Default number of heights ahead of ours whose messages are buffered.
pub const DEFAULT_FUTURE_HEIGHTS: u64 = 4;
/// Default number of views ahead of ours whose messages are kept.
pub const DEFAULT_FUTURE_VIEWS: u64 = 8;
/// Default number of future-height messages buffered per validator.
pub const DEFAULT_MAX_BUFFERED_PER_VALIDATOR: usize = 64;

/// Where the host stands on a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Validity {
    Unknown,
    Pending,
    Valid,
    Invalid,
}

/// A block seen at the height being decided (`Round::blocks`, bounded by
/// `MAX_BLOCKS_PER_HEIGHT`), with the host's verdict on it.
#[derive(Clone, Debug)]
pub(super) struct Block {
    pub(super) bytes: Vec<u8>,
    pub(super) validity: Validity,
    /// The view it was first seen in (eviction order, and the view reported
    /// in `ValidateBlock`).
    pub(super) view: u64,
}

/// Everything a replica needs to know. Only the committee changes while it
/// runs, by [`Input::Committed`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Chain id every message and signature is bound to.
    pub chain_id: String,
    /// The shard this replica decides for.
    pub shard: ShardId,
    /// The committee deciding the replica's height (at construction: the
    /// committee of the committed height + 1).
    pub committee: Committee,
    /// The validator's key; `None` runs a follower that tracks decisions
    /// without voting. ed25519 signing is deterministic, so a replica signs
    /// inside the state machine and stays a pure function of its inputs.
    pub signing_key: Option<SigningKey>,
    /// Largest block (in bytes) accepted in a proposal.
    pub max_block_bytes: usize,
    /// Timeout of view 0; view `v` waits `base_timeout_ms * 2^v`.
    pub base_timeout_ms: u64,
    /// Cap on the view timeout.
    pub max_timeout_ms: u64,
    /// A follower that hears nothing from the leader of view `v` (no
    /// `Alive`, no proposal) for `leader_timeout_ms * 2^v`, capped by the
    /// view timeout, leaves the view. The host's beat must come several
    /// times per `leader_timeout_ms`.
    pub leader_timeout_ms: u64,
    /// Messages up to this many heights ahead are buffered; further ahead
    /// they are rejected and the replica asks the host to sync.
    pub future_heights: u64,
    /// Messages up to this many views ahead (at our height) are kept;
    /// further ahead they are rejected.
    pub future_views: u64,
    /// Future-height messages buffered per validator (a Byzantine validator
    /// cannot crowd out the others).
    pub max_buffered_per_validator: usize,
}

impl Config {
    /// A configuration with default bounds and timeouts.
    pub fn new(
        chain_id: impl Into<String>,
        shard: ShardId,
        committee: Committee,
        signing_key: Option<SigningKey>,
    ) -> Config {
        Config {
            chain_id: chain_id.into(),
            shard,
            committee,
            signing_key,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            base_timeout_ms: DEFAULT_BASE_TIMEOUT_MS,
            max_timeout_ms: DEFAULT_MAX_TIMEOUT_MS,
            leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
            future_heights: DEFAULT_FUTURE_HEIGHTS,
            future_views: DEFAULT_FUTURE_VIEWS,
            max_buffered_per_validator: DEFAULT_MAX_BUFFERED_PER_VALIDATOR,
        }
    }

    /// Timeout of `view`: `base_timeout_ms * 2^view`, capped at `max_timeout_ms`.
    pub fn timeout_ms(&self, view: u64) -> u64 {
        doubled(self.base_timeout_ms, view).min(self.max_timeout_ms)
    }

    /// How long a follower waits for a sign of life from the leader of
    /// `view`: `leader_timeout_ms * 2^view`, capped by the view's timeout.
    pub fn leader_timeout_ms(&self, view: u64) -> u64 {
        doubled(self.leader_timeout_ms, view).min(self.timeout_ms(view))
    }

    /// Whether `decision`'s certificate verifies against this committee, on
    /// this chain and shard: what [`crate::Replica::restore`] requires of
    /// the decisions handed to it (those of a committee since changed by a
    /// jailing do not qualify).
    pub fn certifies(&self, decision: &crate::message::Decision) -> bool {
        decision.certificate.verify(&self.committee, &self.chain_id, self.shard).is_ok()
    }

    pub(crate) fn validate(&self) -> Result<Option<ValidatorIndex>, ConfigError> {
        if self.base_timeout_ms == 0 || self.max_timeout_ms < self.base_timeout_ms || self.leader_timeout_ms == 0 {
            return Err(ConfigError::Timeouts);
        }
        if self.max_block_bytes == 0 || self.future_views == 0 {
            return Err(ConfigError::Bounds);
        }
        match &self.signing_key {
            None => Ok(None),
            Some(key) => {
                let me = self.committee.index_of(&key.verifying_key().to_bytes()).ok_or(ConfigError::NotAMember)?;
                // A jailed member has no vote: it follows like a non-member.
                Ok(self.committee.is_active(me).then_some(me))
            }
        }
    }
}

/// `base_ms * 2^view`, saturating: a timeout backed off once per failed view.
fn doubled(base_ms: u64, view: u64) -> u64 {
    let exponent = u32::try_from(view.min(63)).unwrap_or(63);
    base_ms.saturating_mul(1u64.checked_shl(exponent).unwrap_or(u64::MAX))
}

/// Why a configuration cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The signing key is not in the committee (use `None` for a follower).
    #[error("signing key is not a committee member")]
    NotAMember,
    /// Zero base or leader timeout, or a cap below the base.
    #[error("timeouts must satisfy 0 < base_timeout_ms <= max_timeout_ms and 0 < leader_timeout_ms")]
    Timeouts,
    /// A zero bound that would stop all progress.
    #[error("max_block_bytes and future_views must be positive")]
    Bounds,
    /// The committed height is `u64::MAX`.
    #[error("committed height leaves no next height")]
    HeightOverflow,
    /// A decision handed back at restart is not a verified certificate for
    /// a committed height: the host's durable chain is corrupt.
    #[error("decision for height {height} handed back at restart is not a committed, verified decision")]
    BadDecision {
        /// Its height.
        height: u64,
    },
}

/// Names a timer the replica asked for. The host hands it back in
/// [`Input::Timeout`] when it fires; a timer for a height or view the replica
/// has left, or a leader timer since re-armed, is ignored, so hosts never
/// need to cancel timers. Only the latest [`TimerKind::Leader`] timer of a
/// replica matters: a host may keep just that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerId {
    /// Height the timer guards.
    pub height: u64,
    /// View the timer guards.
    pub view: u64,
    /// Which of the view's timers.
    pub kind: TimerKind,
}

/// The two timers of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// [P7] The view's own deadline: `Config::timeout_ms(view)` after
    /// entering it, whatever happens meanwhile.
    View,
    /// [P10] Leader suspicion, re-armed by each sign of life from the
    /// leader; the number counts the re-arms within the view.
    Leader(u64),
}

/// What the host feeds the replica.
#[derive(Clone, Debug)]
pub enum Input {
    /// A peer's message, checked by [`SignedMessage::verify`] against the
    /// committee of the committed height + 1 (messages for later heights are
    /// checked again if a commit changes it).
    Message(Verified<SignedMessage>),
    /// A timer set by [`Action::SetTimer`] fired.
    Timeout(TimerId),
    /// [P10]/[P11] The host's periodic beat, several times per
    /// `Config::leader_timeout_ms`: a leader with no proposal out says it is
    /// alive; a replica in a view change sends its view change again.
    Beat,
    /// The block the replica asked for with [`Action::RequestProposal`]. The
    /// host vouches for its validity.
    Proposal {
        /// Height asked for.
        height: u64,
        /// View asked for.
        view: u64,
        /// Host-defined hash of `block`.
        block_hash: BlockHash,
        /// The block.
        block: Vec<u8>,
    },
    /// The host's verdict on a block from [`Action::ValidateBlock`]: the
    /// bytes hash to `block_hash` and the block is valid on top of the
    /// committed chain.
    BlockValidity {
        /// Height of the block.
        height: u64,
        /// The block's hash.
        block_hash: BlockHash,
        /// The verdict.
        valid: bool,
    },
    /// The host committed every height up to `height`, the replica's own
    /// decision ([`Action::Commit`]) or blocks fetched by sync (after an
    /// [`Action::SyncFrom`], or on its own), and `committee` decides
    /// `height + 1`: move there.
    ///
    /// A replica does nothing at a height before the host names the
    /// committee deciding it, since the block below may have changed it (a
    /// jailing). After its own [`Action::Commit`] it waits for this input.
    Committed {
        /// The host's committed height.
        height: u64,
        /// The committee of `height + 1`, as the committed chain defines it.
        committee: Committee,
    },
}

/// What the replica asks the host to do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send to every other committee member (and followers).
    Broadcast(SignedMessage),
    /// Send to one validator.
    Send {
        /// Recipient.
        to: ValidatorIndex,
        /// The message.
        message: SignedMessage,
    },
    /// Make this state durable before performing any later action. The host
    /// hands the latest persisted state back to [`crate::Replica::restore`].
    Persist(SafetyState),
    /// Call back with [`Input::Timeout`] after `after_ms` of (logical) time.
    SetTimer {
        /// Timer to hand back.
        id: TimerId,
        /// Delay.
        after_ms: u64,
    },
    /// `height` is final: apply the block, then answer with
    /// [`Input::Committed`] (the replica waits for it). A replica commits
    /// heights in order, each once; a host that already applied `height`
    /// through sync (racing the replica) skips it, the block being
    /// necessarily the same, and still answers.
    Commit {
        /// The decided height.
        height: u64,
        /// The decided block's hash.
        block_hash: BlockHash,
        /// The block, validated by the host earlier.
        block: Vec<u8>,
        /// Proof of finality for the ledger, sync and light clients.
        certificate: CommitCertificate,
    },
    /// A validator equivocated; pass on for slashing.
    Evidence(Evidence),
    /// This replica leads `(height, view)` and needs a fresh block: answer
    /// with [`Input::Proposal`].
    RequestProposal {
        /// Height to build for.
        height: u64,
        /// View to build for.
        view: u64,
    },
    /// Check a proposed block: answer with [`Input::BlockValidity`]. The host
    /// must check that `block` hashes to `block_hash`; consensus cannot.
    ValidateBlock {
        /// Height of the block.
        height: u64,
        /// View it was proposed in.
        view: u64,
        /// The hash the proposer claims.
        block_hash: BlockHash,
        /// The block bytes.
        block: Vec<u8>,
    },
    /// The replica is behind: fetch committed blocks from `height` onwards,
    /// commit them, then send [`Input::Committed`].
    SyncFrom {
        /// First height the replica lacks.
        height: u64,
    },
}

/// What a replica must remember across a crash so it never signs two
/// conflicting votes: its position, what it signed in the current view, and
/// its highest prepared certificate (which its view changes must report).
///
/// Votes of earlier views need no record: the replica never signs in a view
/// below `view`, nor at a height below `height`.
///
/// It also keeps the bytes of the prepared block: not for safety, but so a
/// replica that crashed after preparing can still re-propose the block as a
/// later leader (view changes carry certificates, not blocks; if every
/// leader lost the block, the height stalled: simulator seed 1029). The host
/// stores it with [`SafetyState::encode`] and reads it back with
/// [`SafetyState::decode`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyState {
    /// The height being decided.
    pub height: u64,
    /// The highest view entered at `height`.
    pub view: u64,
    /// The block this replica proposed in `view`, if it led it.
    pub proposed: Option<BlockHash>,
    /// The block it sent a prepare vote for in `view`.
    pub prepare_vote: Option<BlockHash>,
    /// The block it sent a commit vote for in `view`.
    pub commit_vote: Option<BlockHash>,
    /// Its highest prepared certificate at `height`.
    pub prepared: Option<PreparedCertificate>,
    /// The bytes of the block `prepared` certifies (at most
    /// `Config::max_block_bytes`), set with it. [`crate::Replica::restore`]
    /// puts them back among the height's blocks, unvalidated: re-proposed
    /// or proposed again by a leader, the block goes through the host's
    /// validation like any other.
    pub prepared_block: Option<Vec<u8>>,
}

impl std::fmt::Debug for SafetyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The block can be megabytes: its size says enough.
        f.debug_struct("SafetyState")
            .field("height", &self.height)
            .field("view", &self.view)
            .field("proposed", &self.proposed)
            .field("prepare_vote", &self.prepare_vote)
            .field("commit_vote", &self.commit_vote)
            .field("prepared", &self.prepared)
            .field("prepared_block_bytes", &self.prepared_block.as_ref().map(Vec::len))
            .finish()
    }
}

impl SafetyState {
    /// The state of a replica that has not signed anything at `height`.
    pub fn new(height: u64) -> SafetyState {
        SafetyState {
            height,
            view: 0,
            proposed: None,
            prepare_vote: None,
            commit_vote: None,
            prepared: None,
            prepared_block: None,
        }
    }

    /// What was signed for `phase` in the current view.
    pub fn vote(&self, phase: Phase) -> Option<BlockHash> {
        match phase {
            Phase::Propose => self.proposed,
            Phase::Prepare => self.prepare_vote,
            Phase::Commit => self.commit_vote,
        }
    }

    pub(crate) fn set_vote(&mut self, phase: Phase, block_hash: BlockHash) {
        let slot = match phase {
            Phase::Propose => &mut self.proposed,
            Phase::Prepare => &mut self.prepare_vote,
            Phase::Commit => &mut self.commit_vote,
        };
        // At most one vote per slot, ever.
        assert!(slot.is_none_or(|existing| existing == block_hash), "second vote in one slot");
        *slot = Some(block_hash);
    }
}

/// Why the replica refused an input. All are the sending peer's fault (or,
/// for `BlockTooLarge` on [`Input::Proposal`], the host's).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejected {
    /// Beyond the configured height or view window.
    #[error("message for height {height} view {view} is too far ahead")]
    TooFarAhead {
        /// The message's height.
        height: u64,
        /// The message's view.
        view: u64,
    },
    /// A proposal from a validator that does not lead its view.
    #[error("{signer} does not lead height {height} view {view}")]
    NotLeader {
        /// The proposer.
        signer: ValidatorIndex,
        /// Height of the proposal.
        height: u64,
        /// View of the proposal.
        view: u64,
    },
    /// A block over `max_block_bytes`.
    #[error("block of {len} bytes exceeds {max}")]
    BlockTooLarge {
        /// The block's size.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// The validator's share of the future-message buffer is full.
    #[error("future-message buffer full for {0}")]
    BufferFull(ValidatorIndex),
}
