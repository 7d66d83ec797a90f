//! The replica state machine. See the crate documentation for the protocol;
//! comments tagged `[P1]`..`[P9]` name the protocol step a transition
//! implements.

mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use types::{
    Action, Config, ConfigError, DEFAULT_BASE_TIMEOUT_MS, DEFAULT_FUTURE_HEIGHTS, DEFAULT_FUTURE_VIEWS,
    DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_BUFFERED_PER_VALIDATOR, DEFAULT_MAX_TIMEOUT_MS, Input, Rejected, SafetyState,
    TimerId,
};

use crate::certificate::{CommitCertificate, PreparedCertificate, VoteSignature};
use crate::committee::{Committee, ValidatorIndex};
use crate::crypto::Signature;
use crate::evidence::{Evidence, SignedVote};
use crate::message::{
    BlockHash, Decision, Message, Phase, Proposal, SignedMessage, SignedViewChange, Verified, ViewChange, Vote,
    highest_prepared,
};

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

/// Where the host stands on a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Validity {
    Unknown,
    Pending,
    Valid,
    Invalid,
}

#[derive(Clone, Debug)]
struct Block {
    bytes: Vec<u8>,
    validity: Validity,
    /// The view it was first seen in (eviction order, and the view reported
    /// in `ValidateBlock`).
    view: u64,
}

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
    /// A replica that has signed nothing yet, on top of `committed_height`
    /// (0 before the first block; heights start at 1).
    pub fn new(config: Config, committed_height: u64) -> Result<Replica, ConfigError> {
        Replica::restore(config, None, committed_height, Vec::new())
    }

    /// Rebuilds a replica after a restart from the last state the host made
    /// durable (`Action::Persist`) and the host's committed height.
    ///
    /// * persisted state for `committed_height + 1`: resume in its view; the
    ///   votes it records are re-sent as they were and never contradicted.
    /// * persisted state for a higher height (the replica had moved on before
    ///   the host's commits were durable): nothing is signed below that
    ///   height, and its record guards that height once reached.
    /// * older or no state: start fresh at `committed_height + 1`, view 0.
    ///
    /// `recent` are the host's last committed decisions (its last
    /// [`DECISIONS_KEPT`] certified blocks; older ones are ignored). A
    /// restarted replica knows nothing of the heights it decided before the
    /// crash, and without them it cannot answer peers still stuck there
    /// ([P9]); when those peers are too few to change views on their own,
    /// the shard would stop for good (simulator seed 719). Each must be below
    /// `committed_height + 1` and verify against the committee.
    pub fn restore(
        config: Config,
        persisted: Option<SafetyState>,
        committed_height: u64,
        recent: Vec<Decision>,
    ) -> Result<Replica, ConfigError> {
        let me = config.validate()?;
        let height = committed_height.checked_add(1).ok_or(ConfigError::HeightOverflow)?;
        let mut safety = SafetyState::new(height);
        let mut sign_from_height = height;
        let mut restored_ahead = None;
        match persisted {
            Some(state) if state.height == height => safety = state,
            Some(state) if state.height > height => {
                sign_from_height = state.height;
                restored_ahead = Some(state);
            }
            _ => {}
        }
        let mut replica = Replica {
            config,
            me,
            safety,
            sign_from_height,
            restored_ahead,
            round: Round::default(),
            buffer: BTreeMap::new(),
            buffered_per_signer: BTreeMap::new(),
            replay: VecDeque::new(),
            decisions: BTreeMap::new(),
            helped: BTreeMap::new(),
            outbox: Vec::new(),
            dirty: false,
            sync_requested_at: None,
            awaiting_commit: false,
        };
        for decision in recent {
            let height = decision.certificate.height;
            let config = &replica.config;
            if height > committed_height
                || decision.block.len() > config.max_block_bytes
                || !config.certifies(&decision)
            {
                return Err(ConfigError::BadDecision { height });
            }
            replica.keep_decision(decision);
        }
        Ok(replica)
    }

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

    // ----- inputs -----------------------------------------------------------

    fn on_message(&mut self, message: Verified<SignedMessage>, out: &mut Vec<Action>) -> Result<(), Rejected> {
        if Some(message.signer) == self.me {
            // Our own message, echoed back: we already counted it.
            return Ok(());
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
            Message::Decided(_) => Ok(()),
        }
    }

    /// [P9] A view change for a height we decided: the sender is stuck there.
    /// Send it the decision, again only for a higher view, a bounded number
    /// of times per peer and height.
    fn on_past_message(&mut self, message: &SignedMessage) {
        let Message::ViewChange(view_change) = &message.message else {
            return;
        };
        let Some(decision) = self.decisions.get(&view_change.height).cloned() else {
            return;
        };
        if !self.can_sign() {
            return;
        }
        let key = (view_change.height, message.signer);
        let replies = match self.helped.get(&key) {
            Some(&(view, replies)) if view_change.view <= view || replies >= MAX_DECISION_REPLIES => {
                return;
            }
            Some(&(_, replies)) => replies,
            None => 0,
        };
        self.helped.insert(key, (view_change.view, replies.saturating_add(1)));
        if let Some(reply) = self.sign(Message::Decided(decision)) {
            self.outbox.push(Action::Send { to: message.signer, message: reply });
        }
    }

    fn buffer_message(&mut self, message: Verified<SignedMessage>) -> Result<(), Rejected> {
        let signer = message.signer;
        let count = self.buffered_per_signer.entry(signer).or_insert(0);
        if *count >= self.config.max_buffered_per_validator {
            return Err(Rejected::BufferFull(signer));
        }
        *count = count.saturating_add(1);
        self.buffer.entry(message.message.height()).or_default().push(message);
        Ok(())
    }

    /// [P9] Validators with more than a third of the stake (so at least one
    /// honest) already work on later heights: we are behind, ask the host to
    /// sync rather than wait for the decisions to reach us.
    fn check_behind(&mut self, out: &mut Vec<Action>) {
        let ahead = self.config.committee.stake_of(self.buffer.values().flatten().map(|m| m.signer));
        if ahead >= self.config.committee.weak_quorum_stake() {
            self.request_sync(out);
        }
    }

    /// [P1] The leader's proposal; in a later view also PBFT's new-view.
    fn on_proposal(
        &mut self,
        signer: ValidatorIndex,
        proposal: Proposal,
        signature: Signature,
        out: &mut Vec<Action>,
    ) -> Result<(), Rejected> {
        let Proposal { height, view, block_hash, block, .. } = proposal;
        if signer != self.config.committee.leader(height, view) {
            return Err(Rejected::NotLeader { signer, height, view });
        }
        if block.len() > self.config.max_block_bytes {
            return Err(Rejected::BlockTooLarge { len: block.len(), max: self.config.max_block_bytes });
        }
        if view.saturating_add(OLD_VIEWS_KEPT) < self.view() {
            return Ok(());
        }
        let vote = Vote { phase: Phase::Propose, height, view, block_hash };
        self.record_vote(signer, vote, signature, out);
        if view < self.view() {
            return Ok(());
        }
        if view > self.view() {
            // [P6] New-view: its justification (checked in `verify`) shows a
            // quorum left for `view`; follow it there.
            self.enter_view(view, out);
        }
        self.accept_proposal(block_hash, block, out);
        Ok(())
    }

    /// [P2]/[P3] A prepare or commit vote.
    fn on_vote(&mut self, signer: ValidatorIndex, vote: Vote, signature: Signature, out: &mut Vec<Action>) {
        if vote.view.saturating_add(OLD_VIEWS_KEPT) < self.view() {
            return;
        }
        self.record_vote(signer, vote, signature, out);
        self.progress(out);
    }

    /// [P5] A view change from a peer.
    fn on_view_change(
        &mut self,
        signer: ValidatorIndex,
        view_change: ViewChange,
        signature: Signature,
        out: &mut Vec<Action>,
    ) {
        if view_change.view < self.view() {
            return;
        }
        self.round.view_changes.entry(view_change.view).or_default().entry(signer).or_insert(SignedViewChange {
            signer,
            view_change,
            signature,
        });
        self.join_view_change(out);
        self.try_new_view(out);
    }

    /// [P8] A view change beyond the view window: keep only the sender's
    /// highest, and follow if a weak quorum is that far ahead.
    fn on_far_view_change(
        &mut self,
        signer: ValidatorIndex,
        view_change: ViewChange,
        signature: Signature,
        out: &mut Vec<Action>,
    ) {
        let higher =
            self.round.far_view_changes.get(&signer).is_none_or(|known| known.view_change.view < view_change.view);
        if higher {
            self.round.far_view_changes.insert(signer, SignedViewChange { signer, view_change, signature });
        }
        self.join_view_change(out);
    }

    /// [P4] A peer's commit certificate for our height (catch-up).
    fn on_decided(&mut self, decision: Decision, out: &mut Vec<Action>) -> Result<(), Rejected> {
        let Decision { certificate, block } = decision;
        if block.len() > self.config.max_block_bytes {
            return Err(Rejected::BlockTooLarge { len: block.len(), max: self.config.max_block_bytes });
        }
        let block_hash = certificate.block_hash;
        let view = certificate.view;
        if self.round.decided.is_none() {
            self.round.decided = Some(certificate);
        }
        self.store_block(block_hash, block, view);
        self.request_validation(block_hash, out);
        self.progress(out);
        Ok(())
    }

    /// [P0] The host built the block this replica asked for as leader.
    fn on_host_proposal(
        &mut self,
        height: u64,
        view: u64,
        block_hash: BlockHash,
        block: Vec<u8>,
        out: &mut Vec<Action>,
    ) -> Result<(), Rejected> {
        if (height, view) != (self.height(), self.view()) {
            return Ok(());
        }
        if block.len() > self.config.max_block_bytes {
            return Err(Rejected::BlockTooLarge { len: block.len(), max: self.config.max_block_bytes });
        }
        let Some(justification) = self.round.awaiting_proposal.take() else {
            return Ok(());
        };
        self.store_block(block_hash, block.clone(), view);
        if let Some(stored) = self.round.blocks.get_mut(&block_hash) {
            // The host built it; it vouches for it.
            stored.validity = Validity::Valid;
        }
        self.propose(block_hash, block, justification, out);
        Ok(())
    }

    fn on_block_validity(&mut self, height: u64, block_hash: BlockHash, valid: bool, out: &mut Vec<Action>) {
        if height != self.height() {
            return;
        }
        if let Some(block) = self.round.blocks.get_mut(&block_hash)
            && matches!(block.validity, Validity::Unknown | Validity::Pending)
        {
            block.validity = if valid { Validity::Valid } else { Validity::Invalid };
        }
        self.progress(out);
    }

    /// [P7] The view's timer expired without a decision.
    fn on_timeout(&mut self, id: TimerId, out: &mut Vec<Action>) {
        if (id.height, id.view) != (self.height(), self.view()) || self.awaiting_commit {
            return;
        }
        // A sync asked for at this height may have found nothing yet.
        self.sync_requested_at = None;
        let next = self.view().saturating_add(1);
        self.start_view_change(next, out);
    }

    /// [P4]/[P9] The host committed up to `height` (our decision, or sync)
    /// and `committee` decides the next height: start it.
    fn on_committed(&mut self, height: u64, committee: Committee, out: &mut Vec<Action>) {
        let Some(next) = height.checked_add(1) else {
            return;
        };
        if next < self.height() || (next == self.height() && !self.awaiting_commit) {
            // Already there: a sync that raced our own decision.
            return;
        }
        self.flush(out);
        if next > self.height() {
            self.leave_height(next);
        }
        self.awaiting_commit = false;
        self.adopt_committee(committee);
        self.start_height(out);
    }

    /// The committee of the height about to start. Buffered messages were
    /// verified against the previous one: those the new one refuses (a
    /// certificate counting a jailed validator's stake) are dropped.
    fn adopt_committee(&mut self, committee: Committee) {
        if committee == self.config.committee {
            return;
        }
        self.config.committee = committee;
        // The key and bounds were validated at construction; only membership
        // can differ, and a member no longer in the committee follows.
        self.me = self.config.validate().unwrap_or(None);
        let Config { committee, chain_id, shard, .. } = &self.config;
        let buffered = std::mem::take(&mut self.buffer);
        for (height, messages) in buffered {
            let kept: Vec<Verified<SignedMessage>> = messages
                .into_iter()
                .filter_map(|message| message.into_inner().verify(committee, chain_id, *shard).ok())
                .collect();
            if !kept.is_empty() {
                self.buffer.insert(height, kept);
            }
        }
    }

    // ----- protocol steps ---------------------------------------------------

    /// Accepts the first proposal of the current view and asks the host to
    /// validate it.
    fn accept_proposal(&mut self, block_hash: BlockHash, block: Vec<u8>, out: &mut Vec<Action>) {
        if self.round.proposal.is_some() {
            // The first proposal of a view wins; a conflicting one from the
            // same leader was reported as evidence.
            return;
        }
        if self.safety.prepare_vote.is_some_and(|h| h != block_hash) {
            // Restored after a crash with a prepare for another block in this
            // view: only that block's proposal can make progress here.
            return;
        }
        self.round.proposal = Some(block_hash);
        self.store_block(block_hash, block, self.view());
        self.request_validation(block_hash, out);
        self.progress(out);
    }

    /// Moves the current view as far as the votes allow. Idempotent.
    fn progress(&mut self, out: &mut Vec<Action>) {
        // [P4] A commit quorum decides the height, whatever our view.
        if self.try_decide(out) {
            return;
        }
        let Some(block_hash) = self.round.proposal else {
            return;
        };
        if self.validity(&block_hash) != Validity::Valid {
            // Never prepare a block the host has not validated.
            return;
        }
        // [P2] prepare the accepted, valid proposal. Refused if this
        // replica (before a crash) prepared another block in this view.
        if !self.cast(Phase::Prepare, block_hash) {
            return;
        }
        // [P3] prepared = proposal + prepare quorum: record the certificate
        // (persisted before the commit vote leaves) and commit.
        let view = self.view();
        let Some(signatures) = self.quorum(view, Phase::Prepare, block_hash) else {
            return;
        };
        if self.safety.prepared.as_ref().is_none_or(|p| p.view < view) {
            self.safety.prepared = Some(PreparedCertificate { height: self.height(), view, block_hash, signatures });
            self.dirty = true;
        }
        if self.cast(Phase::Commit, block_hash) {
            self.try_decide(out);
        }
    }

    /// [P4] Decides if a commit certificate for this height is known and the
    /// host has validated its block. Returns true if the height was decided.
    fn try_decide(&mut self, out: &mut Vec<Action>) -> bool {
        let certificate = match self.round.decided.clone() {
            Some(certificate) => certificate,
            None => match self.find_commit_quorum() {
                Some(certificate) => {
                    self.round.decided = Some(certificate.clone());
                    certificate
                }
                None => return false,
            },
        };
        let block_hash = certificate.block_hash;
        match self.validity(&block_hash) {
            Validity::Valid => {
                let block = self.round.blocks.get(&block_hash).map(|b| b.bytes.clone()).unwrap_or_default();
                self.decide(certificate, block, out);
                true
            }
            Validity::Pending => false,
            Validity::Unknown => {
                if self.round.blocks.contains_key(&block_hash) {
                    self.request_validation(block_hash, out);
                } else {
                    // Final, but we never saw the block.
                    self.request_sync(out);
                }
                false
            }
            Validity::Invalid => {
                // Final, yet our bytes are wrong: they were not the block.
                self.request_sync(out);
                false
            }
        }
    }

    fn decide(&mut self, certificate: CommitCertificate, block: Vec<u8>, out: &mut Vec<Action>) {
        let height = self.height();
        assert_eq!(certificate.height, height, "decided a certificate of another height");
        assert!(
            self.config.committee.stake_of(certificate.signatures.iter().map(|s| s.signer))
                >= self.config.committee.quorum_stake(),
            "decided without a quorum"
        );
        // Our votes for this height leave (after their Persist) first.
        self.flush(out);
        out.push(Action::Commit {
            height,
            block_hash: certificate.block_hash,
            block: block.clone(),
            certificate: certificate.clone(),
        });
        self.keep_decision(Decision { certificate, block });
        // The block may change the committee of the next height: wait for
        // the host to apply it (`Input::Committed`) before doing anything there.
        self.leave_height(height.saturating_add(1));
        self.awaiting_commit = true;
    }

    /// Keeps a decision to answer laggards with ([P9]), within [`DECISIONS_KEPT`].
    fn keep_decision(&mut self, decision: Decision) {
        self.decisions.insert(decision.certificate.height, decision);
        while self.decisions.len() > DECISIONS_KEPT {
            self.decisions.pop_first();
        }
        let oldest = self.decisions.keys().next().copied().unwrap_or(0);
        self.helped.retain(|(h, _), _| *h >= oldest);
    }

    /// [P7] Leaves the current view for `target`: PBFT view-change, carrying
    /// the highest prepared certificate.
    fn start_view_change(&mut self, target: u64, out: &mut Vec<Action>) {
        let height = self.height();
        self.enter_view(target, out);
        // The view change below is signed for exactly the view we now stand in.
        assert_eq!((self.height(), self.view()), (height, target), "entering a view moved on");
        if self.can_sign()
            && let Some(me) = self.me
        {
            let prepared = self.safety.prepared.clone();
            assert!(prepared.as_ref().is_none_or(|p| p.view < target), "prepared certificate from a view not yet left");
            let view_change = ViewChange { height: self.height(), view: target, prepared };
            if let Some(message) = self.sign(Message::ViewChange(view_change.clone())) {
                self.round
                    .view_changes
                    .entry(target)
                    .or_default()
                    .insert(me, SignedViewChange { signer: me, view_change, signature: message.signature });
                self.outbox.push(Action::Broadcast(message));
            }
        }
        self.try_new_view(out);
    }

    /// [P8] PBFT's liveness rule: when validators with more than a third of
    /// the stake asked for views above ours, at least one honest validator
    /// timed out; join the smallest such view rather than wait for our timer.
    fn join_view_change(&mut self, out: &mut Vec<Action>) {
        loop {
            let current = self.view();
            let mut highest: BTreeMap<ValidatorIndex, u64> = BTreeMap::new();
            for (view, senders) in self.round.view_changes.range(current.saturating_add(1)..) {
                for signer in senders.keys() {
                    highest.insert(*signer, *view);
                }
            }
            for (signer, far) in &self.round.far_view_changes {
                let view = far.view_change.view;
                if view > current && highest.get(signer).is_none_or(|v| *v < view) {
                    highest.insert(*signer, view);
                }
            }
            let stake = self.config.committee.stake_of(highest.keys().copied());
            if stake < self.config.committee.weak_quorum_stake() {
                return;
            }
            let Some(target) = highest.values().min().copied() else {
                return;
            };
            self.start_view_change(target, out);
        }
    }

    /// [P6] As leader of the current view v > 0, with view changes from a
    /// quorum: re-propose the block of the highest prepared certificate among
    /// them, or, if none, ask the host for a fresh block.
    fn try_new_view(&mut self, out: &mut Vec<Action>) {
        let view = self.view();
        if view == 0
            || !self.is_leader()
            || !self.can_sign()
            || self.safety.proposed.is_some()
            || self.round.awaiting_proposal.is_some()
        {
            return;
        }
        let Some(senders) = self.round.view_changes.get(&view) else {
            return;
        };
        if self.config.committee.stake_of(senders.keys().copied()) < self.config.committee.quorum_stake() {
            return;
        }
        let justification: Vec<SignedViewChange> = senders.values().cloned().collect();
        match highest_prepared(&justification) {
            Some((_, block_hash)) => {
                // Without the block we cannot re-propose it; the view times
                // out and a later leader that holds it will.
                if let Some(block) = self.round.blocks.get(&block_hash).map(|b| b.bytes.clone()) {
                    self.propose(block_hash, block, justification, out);
                }
            }
            None => {
                self.round.awaiting_proposal = Some(justification);
                out.push(Action::RequestProposal { height: self.height(), view });
            }
        }
    }

    /// [P1] Broadcasts this leader's proposal for the current view.
    fn propose(
        &mut self,
        block_hash: BlockHash,
        block: Vec<u8>,
        justification: Vec<SignedViewChange>,
        out: &mut Vec<Action>,
    ) {
        if !self.can_sign() {
            return;
        }
        if self.safety.proposed.is_some_and(|p| p != block_hash) {
            // Proposed something else in this view before a crash.
            return;
        }
        self.safety.set_vote(Phase::Propose, block_hash);
        self.dirty = true;
        let proposal =
            Proposal { height: self.height(), view: self.view(), block_hash, block: block.clone(), justification };
        if let Some(message) = self.sign(Message::Propose(proposal)) {
            let vote = Vote { phase: Phase::Propose, height: self.height(), view: self.view(), block_hash };
            self.record_own_vote(vote, message.signature);
            self.outbox.push(Action::Broadcast(message));
        }
        self.accept_proposal(block_hash, block, out);
    }

    // ----- views and heights ------------------------------------------------

    /// Moves to a strictly higher `view` at this height. Only sets the timer
    /// (and, in view 0, asks for a block): it never signs or decides, so
    /// callers still stand at `(height, view)` afterwards.
    fn enter_view(&mut self, view: u64, out: &mut Vec<Action>) {
        assert!(view > self.safety.view, "view is monotonic within a height");
        self.safety.view = view;
        self.safety.proposed = None;
        self.safety.prepare_vote = None;
        self.safety.commit_vote = None;
        self.dirty = true;
        self.round.proposal = None;
        self.round.awaiting_proposal = None;
        let keep_from = view.saturating_sub(OLD_VIEWS_KEPT);
        self.round.votes.retain(|(v, _), _| *v >= keep_from);
        self.round.reported.retain(|(_, v, _)| *v >= keep_from);
        self.round.view_changes.retain(|v, _| *v >= view);
        // Far view changes now inside the window join the table.
        let window_end = view.saturating_add(self.config.future_views);
        let far = std::mem::take(&mut self.round.far_view_changes);
        for (signer, signed) in far {
            let v = signed.view_change.view;
            if v > window_end {
                self.round.far_view_changes.insert(signer, signed);
            } else if v >= view {
                self.round.view_changes.entry(v).or_default().entry(signer).or_insert(signed);
            }
        }
        self.arm_view(out);
    }

    /// Moves to `height`, dropping everything of the heights below. The
    /// height starts (timer, buffered messages) in [`Replica::start_height`].
    fn leave_height(&mut self, height: u64) {
        assert!(height > self.height(), "height is monotonic");
        self.safety = match self.restored_ahead.take() {
            Some(state) if state.height == height => state,
            Some(state) if state.height > height => {
                self.restored_ahead = Some(state);
                SafetyState::new(height)
            }
            _ => SafetyState::new(height),
        };
        self.dirty = false;
        self.round = Round::default();
        // Drop buffered messages of heights now past.
        self.buffer = self.buffer.split_off(&height);
        self.recount_buffered();
    }

    /// Starts the current height, under the committee now known to decide
    /// it: replays its buffered messages, arms view 0, and checks whether
    /// what is buffered for later heights shows it behind.
    fn start_height(&mut self, out: &mut Vec<Action>) {
        if let Some(messages) = self.buffer.remove(&self.height()) {
            self.replay.extend(messages);
        }
        self.recount_buffered();
        self.arm_view(out);
        self.check_behind(out);
    }

    fn recount_buffered(&mut self) {
        self.buffered_per_signer.clear();
        for message in self.buffer.values().flatten() {
            let count = self.buffered_per_signer.entry(message.signer).or_insert(0);
            *count = count.saturating_add(1);
        }
    }

    /// Sets the view's timer; as leader of view 0, asks the host for a block.
    fn arm_view(&mut self, out: &mut Vec<Action>) {
        let (height, view) = (self.height(), self.view());
        out.push(Action::SetTimer { id: TimerId { height, view }, after_ms: self.config.timeout_ms(view) });
        // Later views start from view changes (`try_new_view`), which callers
        // run once the transition is complete: entering a view never signs.
        if view == 0
            && self.is_leader()
            && self.can_sign()
            && self.safety.proposed.is_none()
            && self.round.awaiting_proposal.is_none()
        {
            self.round.awaiting_proposal = Some(Vec::new());
            out.push(Action::RequestProposal { height, view });
        }
    }

    // ----- votes ------------------------------------------------------------

    /// Signs `phase` for `block_hash` in the current view unless this replica
    /// already signed something else there. True if the vote is (now) cast.
    fn cast(&mut self, phase: Phase, block_hash: BlockHash) -> bool {
        if !self.can_sign() {
            return false;
        }
        match self.safety.vote(phase) {
            Some(existing) => existing == block_hash,
            None => {
                self.safety.set_vote(phase, block_hash);
                self.dirty = true;
                self.emit_vote(phase, block_hash);
                true
            }
        }
    }

    fn emit_vote(&mut self, phase: Phase, block_hash: BlockHash) {
        let vote = Vote { phase, height: self.height(), view: self.view(), block_hash };
        assert_eq!(self.safety.vote(phase), Some(block_hash), "vote not recorded");
        if let Some(message) = self.sign(Message::Vote(vote)) {
            self.record_own_vote(vote, message.signature);
            self.outbox.push(Action::Broadcast(message));
        }
    }

    fn record_own_vote(&mut self, vote: Vote, signature: Signature) {
        let Some(me) = self.me else { return };
        let slot = self.round.votes.entry((vote.view, vote.phase)).or_default();
        if let Some((existing, _)) = slot.get(&me) {
            assert_eq!(*existing, vote.block_hash, "at most one vote per slot");
        }
        slot.insert(me, (vote.block_hash, signature));
    }

    /// Records a peer's vote; a second, different vote for one slot is an
    /// equivocation, reported once.
    fn record_vote(&mut self, signer: ValidatorIndex, vote: Vote, signature: Signature, out: &mut Vec<Action>) {
        let slot = self.round.votes.entry((vote.view, vote.phase)).or_default();
        let Some(&(first_hash, first_signature)) = slot.get(&signer) else {
            slot.insert(signer, (vote.block_hash, signature));
            return;
        };
        if first_hash == vote.block_hash {
            return;
        }
        // A jailed member's votes weigh nothing and it was already punished.
        if self.config.committee.is_active(signer) && self.round.reported.insert((signer, vote.view, vote.phase)) {
            out.push(Action::Evidence(Evidence {
                shard: self.config.shard,
                signer,
                first: SignedVote { vote: Vote { block_hash: first_hash, ..vote }, signature: first_signature },
                second: SignedVote { vote, signature },
            }));
        }
    }

    /// Signatures for `block_hash` in `(view, phase)`, if they form a quorum.
    fn quorum(&self, view: u64, phase: Phase, block_hash: BlockHash) -> Option<Vec<VoteSignature>> {
        let ballots = self.round.votes.get(&(view, phase))?;
        let signatures: Vec<VoteSignature> = ballots
            .iter()
            .filter(|(_, (hash, _))| *hash == block_hash)
            .map(|(signer, (_, signature))| VoteSignature { signer: *signer, signature: *signature })
            .collect();
        let stake = self.config.committee.stake_of(signatures.iter().map(|s| s.signer));
        (stake >= self.config.committee.quorum_stake()).then_some(signatures)
    }

    fn find_commit_quorum(&self) -> Option<CommitCertificate> {
        for ((view, phase), ballots) in &self.round.votes {
            if *phase != Phase::Commit {
                continue;
            }
            let hashes: BTreeSet<BlockHash> = ballots.values().map(|(hash, _)| *hash).collect();
            for block_hash in hashes {
                if let Some(signatures) = self.quorum(*view, Phase::Commit, block_hash) {
                    return Some(CommitCertificate { height: self.height(), view: *view, block_hash, signatures });
                }
            }
        }
        None
    }

    // ----- blocks -----------------------------------------------------------

    fn validity(&self, block_hash: &BlockHash) -> Validity {
        self.round.blocks.get(block_hash).map_or(Validity::Unknown, |b| b.validity)
    }

    fn store_block(&mut self, block_hash: BlockHash, bytes: Vec<u8>, view: u64) {
        if self.round.blocks.contains_key(&block_hash) {
            return;
        }
        self.round.blocks.insert(block_hash, Block { bytes, validity: Validity::Unknown, view });
        if self.round.blocks.len() > MAX_BLOCKS_PER_HEIGHT {
            let protected = [
                self.round.proposal,
                self.safety.prepared.as_ref().map(|p| p.block_hash),
                self.round.decided.as_ref().map(|c| c.block_hash),
                Some(block_hash),
            ];
            let victim = self
                .round
                .blocks
                .iter()
                .filter(|(hash, _)| !protected.contains(&Some(**hash)))
                .min_by_key(|(hash, block)| (block.view, **hash))
                .map(|(hash, _)| *hash);
            if let Some(victim) = victim {
                self.round.blocks.remove(&victim);
            }
        }
    }

    fn request_validation(&mut self, block_hash: BlockHash, out: &mut Vec<Action>) {
        let height = self.height();
        let Some(block) = self.round.blocks.get_mut(&block_hash) else {
            return;
        };
        if block.validity != Validity::Unknown {
            return;
        }
        block.validity = Validity::Pending;
        out.push(Action::ValidateBlock { height, view: block.view, block_hash, block: block.bytes.clone() });
    }

    // ----- output -----------------------------------------------------------

    fn sign(&self, message: Message) -> Option<SignedMessage> {
        let key = self.config.signing_key.as_ref()?;
        let me = self.me?;
        Some(SignedMessage::sign(&self.config.chain_id, self.config.shard, me, message, key))
    }

    fn request_sync(&mut self, out: &mut Vec<Action>) {
        if self.sync_requested_at != Some(self.height()) {
            self.sync_requested_at = Some(self.height());
            out.push(Action::SyncFrom { height: self.height() });
        }
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
