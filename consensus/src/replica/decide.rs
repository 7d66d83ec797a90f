//! [P4] Deciding a height from a commit certificate (ours or a peer's
//! `Decided`) once its block is valid, and [P9] keeping the last decisions to
//! answer peers still stuck at those heights.

use super::types::Validity;
use super::{Action, DECISIONS_KEPT, MAX_DECISION_REPLIES, Rejected, Replica};
use crate::certificate::CommitCertificate;
use crate::message::{Decision, Message, SignedMessage};

impl Replica {
    /// [P4] A peer's commit certificate for our height (catch-up).
    pub(super) fn on_decided(&mut self, decision: Decision, out: &mut Vec<Action>) -> Result<(), Rejected> {
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

    /// [P4] Decides if a commit certificate for this height is known and the
    /// host has validated its block. Returns true if the height was decided.
    pub(super) fn try_decide(&mut self, out: &mut Vec<Action>) -> bool {
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
    pub(super) fn keep_decision(&mut self, decision: Decision) {
        self.decisions.insert(decision.certificate.height, decision);
        while self.decisions.len() > DECISIONS_KEPT {
            self.decisions.pop_first();
        }
        let oldest = self.decisions.keys().next().copied().unwrap_or(0);
        self.helped.retain(|(h, _), _| *h >= oldest);
    }

    /// [P9] A view change for a height we decided: the sender is stuck there.
    /// Send it the decision, again only for a higher view, a bounded number
    /// of times per peer and height.
    pub(super) fn on_past_message(&mut self, message: &SignedMessage) {
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
}
