//! [P2] prepare and [P3] commit votes: casting them at most once per slot,
//! counting quorums, recording the prepared certificate, and reporting a
//! peer's second, different vote for one slot as evidence.

use std::collections::BTreeSet;

use super::types::Validity;
use super::{Action, OLD_VIEWS_KEPT, Replica};
use crate::certificate::{CommitCertificate, PreparedCertificate, VoteSignature};
use crate::committee::ValidatorIndex;
use crate::crypto::Signature;
use crate::evidence::{Evidence, SignedVote};
use crate::message::{BlockHash, Message, Phase, Vote};

impl Replica {
    /// [P2]/[P3] A prepare or commit vote.
    pub(super) fn on_vote(&mut self, signer: ValidatorIndex, vote: Vote, signature: Signature, out: &mut Vec<Action>) {
        if vote.view.saturating_add(OLD_VIEWS_KEPT) < self.view() {
            return;
        }
        self.record_vote(signer, vote, signature, out);
        self.progress(out);
    }

    /// Moves the current view as far as the votes allow. Idempotent.
    pub(super) fn progress(&mut self, out: &mut Vec<Action>) {
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
            // Persisted with it: after a crash this replica may be the only
            // leader left that could re-propose it.
            self.safety.prepared_block = self.round.blocks.get(&block_hash).map(|b| b.bytes.clone());
            self.dirty = true;
        }
        if self.cast(Phase::Commit, block_hash) {
            self.try_decide(out);
        }
    }

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

    pub(super) fn emit_vote(&mut self, phase: Phase, block_hash: BlockHash) {
        let vote = Vote { phase, height: self.height(), view: self.view(), block_hash };
        assert_eq!(self.safety.vote(phase), Some(block_hash), "vote not recorded");
        if let Some(message) = self.sign(Message::Vote(vote)) {
            self.record_own_vote(vote, message.signature);
            self.outbox.push(Action::Broadcast(message));
        }
    }

    pub(super) fn record_own_vote(&mut self, vote: Vote, signature: Signature) {
        let Some(me) = self.me else { return };
        let slot = self.round.votes.entry((vote.view, vote.phase)).or_default();
        if let Some((existing, _)) = slot.get(&me) {
            assert_eq!(*existing, vote.block_hash, "at most one vote per slot");
        }
        slot.insert(me, (vote.block_hash, signature));
    }

    /// Records a peer's vote; a second, different vote for one slot is an
    /// equivocation, reported once.
    pub(super) fn record_vote(
        &mut self,
        signer: ValidatorIndex,
        vote: Vote,
        signature: Signature,
        out: &mut Vec<Action>,
    ) {
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

    pub(super) fn find_commit_quorum(&self) -> Option<CommitCertificate> {
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
}
