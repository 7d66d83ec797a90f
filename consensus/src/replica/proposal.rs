//! [P0] The host builds the leader's block; [P1] the leader proposes it and
//! replicas accept the first proposal of their view. A proposal for a later
//! view is also PBFT's new-view ([P6]), whose justification `verify` checked.

use super::types::Validity;
use super::{Action, OLD_VIEWS_KEPT, Rejected, Replica};
use crate::committee::ValidatorIndex;
use crate::crypto::Signature;
use crate::message::{BlockHash, Message, Phase, Proposal, SignedViewChange, Vote};

impl Replica {
    /// [P0] The host built the block this replica asked for as leader.
    pub(super) fn on_host_proposal(
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

    /// [P1] The leader's proposal; in a later view also PBFT's new-view.
    pub(super) fn on_proposal(
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

    /// [P1] Broadcasts this leader's proposal for the current view.
    pub(super) fn propose(
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
        // A proposal shows the view formed (its justification is a quorum).
        self.arm_if_formed(out);
        // [P10] The leader proved alive; the view's own timer bounds the rest.
        self.retire_leader_timer();
        self.store_block(block_hash, block, self.view());
        self.request_validation(block_hash, out);
        self.progress(out);
    }
}
