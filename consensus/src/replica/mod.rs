//! The replica state machine. See the crate documentation for the protocol
//! and where it deviates from the paper; comments tagged `[P0]`..`[P9]` name
//! the protocol step a transition implements.
//!
//! This module owns the replica's state and its entry points:
//! [`Replica::handle`], which routes each input by height and view, and the
//! outbox that holds signed messages until their `Persist`. The rest are
//! `impl Replica` blocks, one file per concern:
//!
//! * `restore`: construction, fresh or from persisted state.
//! * `record`: the persisted state's durable, versioned encoding.
//! * `proposal`: `[P0]` the host's block for the leader, `[P1]` proposals.
//! * `blocks`: the blocks seen at a height and the host's verdict on them.
//! * `voting`: `[P2]` prepare, `[P3]` prepared and commit, equivocation
//!   evidence.
//! * `decide`: `[P4]` commit certificates, and `[P9]` answering laggards.
//! * `view_change`: `[P5]`..`[P8]` timeouts, view changes, new views.
//! * `liveness`: `[P10]` leader suspicion and `[P11]` retransmission, on
//!   the host's beat.
//! * `height`: moving between heights, the host's `Committed`, buffering
//!   later heights and asking for sync (`[P9]`).

mod blocks;
mod decide;
mod height;
mod liveness;
mod proposal;
mod record;
mod restore;
mod types;
mod view_change;
mod voting;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use record::{RECORD_OVERHEAD_BYTES, RecordError};
pub use types::{
    Action, Config, ConfigError, DEFAULT_BASE_TIMEOUT_MS, DEFAULT_FUTURE_HEIGHTS, DEFAULT_FUTURE_VIEWS,
    DEFAULT_LEADER_TIMEOUT_MS, DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_BUFFERED_PER_VALIDATOR, DEFAULT_MAX_TIMEOUT_MS,
    Input, Rejected, SafetyState, TimerId, TimerKind,
};
pub use view_change::MAX_WAITS;

use types::Block;

use crate::certificate::CommitCertificate;
use crate::committee::ValidatorIndex;
use crate::crypto::Signature;
use crate::message::{BlockHash, Decision, Message, Phase, SignedMessage, SignedViewChange, Verified};

/// Votes of views this far below the current one are kept: a commit quorum
/// that completes late in a view we left still decides the height.
pub const OLD_VIEWS_KEPT: u64 = 2;
/// Distinct blocks remembered per height (one proposal per view, plus the
/// prepared and decided ones, which are never evicted).
pub const MAX_BLOCKS_PER_HEIGHT: usize = 8;
/// Decided heights (certificate and block) kept to help lagging peers.
pub const DECISIONS_KEPT: usize = 2;
/// Times one peer is sent one decision, each in answer to a view change for
/// a higher view than the last (the reply may be lost; a laggard's view
/// changes are paced by its own timeouts).
pub const MAX_DECISION_REPLIES: u32 = 8;

/// Signed votes of one slot, by signer.
type Ballots = BTreeMap<ValidatorIndex, (BlockHash, Signature)>;

/// Volatile state of the height being decided. Dropped when it is decided.
#[derive(Clone, Debug, Default)]
struct Round {
    /// Proposals and votes of views `view - OLD_VIEWS_KEPT ..= view + future_views`.
    votes: BTreeMap<(u64, Phase), Ballots>,
    /// View changes for views `view ..= view + future_views`, by target view.
    view_changes: BTreeMap<u64, BTreeMap<ValidatorIndex, SignedViewChange>>,
    /// Each validator's highest view change beyond that window (one per
    /// validator): enough to follow a weak quorum that is far ahead.
    far_view_changes: BTreeMap<ValidatorIndex, SignedViewChange>,
    /// Blocks seen at this height.
    blocks: BTreeMap<BlockHash, Block>,
    /// The proposal accepted in the current view.
    proposal: Option<BlockHash>,
    /// As leader: the justification of the block the host is building.
    awaiting_proposal: Option<Vec<SignedViewChange>>,
    /// A commit certificate for this height, waiting for the block's validity.
    decided: Option<CommitCertificate>,
    /// Equivocations already reported, by (signer, view, phase).
    reported: BTreeSet<(ValidatorIndex, u64, Phase)>,
    /// [P10] Numbers the leader timers of this round: only the latest one
    /// armed stands.
    leader_timer: u64,
    /// [P10]/[P11] Beats of this round: numbers what each beat sends.
    beats: u64,
    /// [P7] The current view's timers are armed: it is view 0, or a quorum
    /// was seen in it (see `view_change::Replica::view_formed`).
    armed: bool,
    /// [P7] A waiting timer runs in the current view (not yet formed).
    waiting: bool,
    /// [P7] Waiting timers that expired in the current view.
    waits: u32,
}

/// A PBFT-style replica for one shard. Drive it with [`Replica::handle`];
/// it never performs I/O, reads a clock or draws randomness.
#[derive(Debug)]
pub struct Replica {
    config: Config,
    me: Option<ValidatorIndex>,
    /// Live safety state; a copy goes out in `Action::Persist` before any vote.
    safety: SafetyState,
    /// Nothing is signed below this height (see [`Replica::restore`]).
    sign_from_height: u64,
    /// Persisted state for a height above the host's committed one, reinstated
    /// when the replica gets there.
    restored_ahead: Option<SafetyState>,
    round: Round,
    /// Verified messages for the next `future_heights` heights.
    buffer: BTreeMap<u64, Vec<Verified<SignedMessage>>>,
    buffered_per_signer: BTreeMap<ValidatorIndex, usize>,
    /// Buffered messages to process now, after the input at hand.
    replay: VecDeque<Verified<SignedMessage>>,
    /// Recent decisions, to answer lagging peers.
    decisions: BTreeMap<u64, Decision>,
    /// Per (height, peer): the highest view change answered with the
    /// decision, and how many times.
    helped: BTreeMap<(u64, ValidatorIndex), (u64, u32)>,
    /// Messages waiting for the `Persist` that must precede them.
    outbox: Vec<Action>,
    /// `safety` changed since the last `Persist`.
    dirty: bool,
    /// The height a `SyncFrom` was last emitted for.
    sync_requested_at: Option<u64>,
    /// The height below was decided and committed by `Action::Commit`; the
    /// replica does nothing at this one until the host's `Input::Committed`
    /// names the committee deciding it.
    awaiting_commit: bool,
}

impl Replica {
    /// Starts the current view: sets its timer, asks for a block if this
    /// replica leads view 0, and re-sends votes restored from a crash
    /// (signatures are deterministic, so they are the same bytes).
    pub fn start(&mut self, out: &mut Vec<Action>) {
        if self.can_sign() {
            for phase in [Phase::Prepare, Phase::Commit] {
                if let Some(block_hash) = self.safety.vote(phase) {
                    self.emit_vote(phase, block_hash);
                }
            }
        }
        self.arm_view(out);
        self.flush(out);
    }

    /// Handles one input, appending the resulting actions to `out`. Errors
    /// say why a peer's message was refused; the state is unchanged by them.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Action>) -> Result<(), Rejected> {
        let result = match input {
            Input::Message(message) => self.on_message(message, out),
            Input::Timeout(id) => {
                self.on_timeout(id, out);
                Ok(())
            }
            Input::Beat => {
                self.on_beat();
                Ok(())
            }
            Input::Proposal { height, view, block_hash, block } => {
                self.on_host_proposal(height, view, block_hash, block, out)
            }
            Input::BlockValidity { height, block_hash, valid } => {
                self.on_block_validity(height, block_hash, valid, out);
                Ok(())
            }
            Input::Committed { height, committee } => {
                self.on_committed(height, committee, out);
                Ok(())
            }
        };
        while let Some(message) = self.replay.pop_front() {
            // It was in bounds when buffered; if it is stale now, dropping it
            // is all there is to do.
            let _ = self.on_message(message, out);
        }
        self.flush(out);
        result
    }

    /// The height being decided (or, right after a decision, the next one,
    /// not started before [`Input::Committed`]).
    pub fn height(&self) -> u64 {
        self.safety.height
    }

    /// The current view at that height.
    pub fn view(&self) -> u64 {
        self.safety.view
    }

    /// This replica's committee index (`None` for a follower).
    pub fn index(&self) -> Option<ValidatorIndex> {
        self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current safety state (what the next `Persist` would carry).
    pub fn safety_state(&self) -> &SafetyState {
        &self.safety
    }

    /// The leader of the current height and view.
    pub fn leader(&self) -> ValidatorIndex {
        self.config.committee.leader(self.height(), self.view())
    }

    fn is_leader(&self) -> bool {
        self.me == Some(self.leader())
    }

    fn can_sign(&self) -> bool {
        self.me.is_some() && self.height() >= self.sign_from_height
    }

    fn on_message(&mut self, message: Verified<SignedMessage>, out: &mut Vec<Action>) -> Result<(), Rejected> {
        if Some(message.signer) == self.me {
            // Our own message, echoed back: we already counted it.
            return Ok(());
        }
        if let Message::Alive(alive) = &message.message {
            return self.on_alive(message.signer, *alive, out);
        }
        let height = message.message.height();
        let view = message.message.view();
        if height < self.height() {
            self.on_past_message(&message);
            return Ok(());
        }
        if height > self.height() || self.awaiting_commit {
            if height.saturating_sub(self.height()) > self.config.future_heights {
                // [P9] far behind: let the host fetch committed blocks.
                self.request_sync(out);
                return Err(Rejected::TooFarAhead { height, view });
            }
            let result = self.buffer_message(message);
            if !self.awaiting_commit {
                self.check_behind(out);
            }
            return result;
        }
        let SignedMessage { signer, message, signature, .. } = message.into_inner();
        let window_end = self.view().saturating_add(self.config.future_views);
        match message {
            Message::Decided(decision) => return self.on_decided(decision, out),
            Message::Alive(_) => return Ok(()),
            // A proposal far ahead is still justified by a quorum of view
            // changes (checked in `verify`), and following it costs no memory.
            Message::Propose(_) => {}
            Message::ViewChange(view_change) if view > window_end => {
                self.on_far_view_change(signer, view_change, signature, out);
                return Ok(());
            }
            Message::Vote(_) | Message::ViewChange(_) if view > window_end => {
                return Err(Rejected::TooFarAhead { height, view });
            }
            Message::Vote(_) | Message::ViewChange(_) => {}
        }
        match message {
            Message::Propose(proposal) => self.on_proposal(signer, proposal, signature, out),
            Message::Vote(vote) => {
                self.on_vote(signer, vote, signature, out);
                Ok(())
            }
            Message::ViewChange(view_change) => {
                self.on_view_change(signer, view_change, signature, out);
                Ok(())
            }
            Message::Decided(_) | Message::Alive(_) => Ok(()),
        }
    }

    fn sign(&self, message: Message) -> Option<SignedMessage> {
        let key = self.config.signing_key.as_ref()?;
        let me = self.me?;
        Some(SignedMessage::sign(&self.config.chain_id, self.config.shard, me, message, key))
    }

    /// Emits the outbox, preceded by a `Persist` if the safety state changed:
    /// nothing signed leaves before what it commits us to is durable.
    fn flush(&mut self, out: &mut Vec<Action>) {
        if self.outbox.is_empty() {
            return;
        }
        if self.dirty {
            out.push(Action::Persist(self.safety.clone()));
            self.dirty = false;
        }
        out.append(&mut self.outbox);
    }
}
