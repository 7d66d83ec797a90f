//! Gossip admission: every message from a topic is decoded under a limit,
//! verified, and only then used; each gets one [`Verdict`] for the
//! transport's scoring. A provably bad message (undecodable, a bad
//! signature, wrong chain or shard, an invalid proof) is `Reject`, which
//! costs its forwarder; anything that may be an honest peer's late or
//! early message is `Ignore`.

use palisade_consensus::{Evidence, Input, Message, Rejected, VerifyError};
use palisade_ledger::codec;
use palisade_ledger::slashing::EvidenceRefused;
use tracing::{debug, error, trace, warn};

use super::ShardCore;
use crate::effect::{Effect, Note, Verdict};
use crate::evidence::Offered;
use crate::receipts::Offer;
use crate::storage::{ChainStore, StorageError};
use crate::wire::TopicKind;

impl<S: ChainStore> ShardCore<S> {
    pub(super) fn on_gossip(
        &mut self,
        kind: TopicKind,
        data: Vec<u8>,
        out: &mut Vec<Effect>,
    ) -> Result<(), StorageError> {
        match kind {
            TopicKind::Consensus => self.on_consensus(&data, out),
            TopicKind::Receipts => self.on_receipts(&data, out),
            TopicKind::Evidence => {
                self.on_gossiped_evidence(&data, out);
                Ok(())
            }
            TopicKind::Txs => self.on_gossiped_txs(&data, out),
        }
    }

    /// A consensus message: bounded decode, full verification against the
    /// committee of the next height, then the replica.
    fn on_consensus(&mut self, data: &[u8], out: &mut Vec<Effect>) -> Result<(), StorageError> {
        let Some(message) =
            decoded(palisade_consensus::decode(data, self.limits.max_message_bytes), TopicKind::Consensus, out)
        else {
            return Ok(());
        };
        // A message at height h shows its signer committed h - 1 (once verified).
        let height = message.message.height();
        let tip = self.chain.tip().height;
        if let Some(verdict) = self.other_epoch_verdict(&message, height, tip)? {
            out.push(Effect::Verdict(verdict));
            return Ok(());
        }
        let verified = match message.verify(self.chain.committee(), &self.chain_id, self.shard) {
            Ok(verified) => verified,
            Err(e) => {
                let verdict = unverified_verdict(&e, height, tip);
                debug!(height, error = %e, ?verdict, "consensus message does not verify");
                if verdict == Verdict::Reject {
                    refuse(out, TopicKind::Consensus, "invalid");
                } else {
                    out.push(Effect::Verdict(verdict));
                }
                return Ok(());
            }
        };
        self.presence.heard(verified.signer, self.now_ms);
        if matches!(verified.message, Message::Alive(_)) {
            self.presence.beat(verified.signer, self.now_ms);
        }
        self.note_peer_height(height.saturating_sub(1), out);
        if let Message::Decided(decision) = &verified.message {
            self.note_peer_height(decision.certificate.height, out);
        }
        let result = self.step(Input::Message(verified), out)?;
        // A peer more than a block ahead: fetch what we missed now rather
        // than at the next sync check (one request in flight at a time).
        if self.peer_height > self.chain.tip().height.saturating_add(1) {
            self.request_sync(out);
        }
        match result {
            Ok(()) => out.push(Effect::Verdict(Verdict::Accept)),
            Err(Rejected::NotLeader { .. } | Rejected::BlockTooLarge { .. }) => {
                refuse(out, TopicKind::Consensus, "invalid");
            }
            Err(Rejected::TooFarAhead { .. } | Rejected::BufferFull(_)) => out.push(Effect::Verdict(Verdict::Ignore)),
        }
        Ok(())
    }

    /// With staking, our committee is the next height's epoch's; a message
    /// of another epoch was signed under another one (a hand-over
    /// renumbers members). One of a later epoch cannot be judged yet: it is
    /// ignored unverified (an honest peer ahead of us sends these; a forger
    /// gains nothing, not even a verification). One of an earlier epoch is
    /// stale: judged by that epoch's committee (a forgery costs its
    /// forwarder), never used. `None`: the next height's epoch.
    fn other_epoch_verdict(
        &self,
        message: &palisade_consensus::SignedMessage,
        height: u64,
        tip: u64,
    ) -> Result<Option<Verdict>, StorageError> {
        let Some(staking) = self.chain.state().context().staking else { return Ok(None) };
        let (theirs, ours) = (staking.epoch_of(height), staking.epoch_of(tip.saturating_add(1)));
        if theirs == ours {
            return Ok(None);
        }
        if theirs > ours {
            return Ok(Some(Verdict::Ignore));
        }
        let committee =
            palisade_ledger::committee::for_offence(self.chain.state(), height).map_err(StorageError::from)?;
        let verdict = match committee.map(|c| message.clone().verify(&c, &self.chain_id, self.shard)) {
            Some(Err(e)) => unverified_verdict(&e, height, tip),
            _ => Verdict::Ignore,
        };
        Ok(Some(verdict))
    }

    /// A receipt batch: bounded decode, full verification, then the pool;
    /// forwarded only if it brought something new.
    fn on_receipts(&mut self, data: &[u8], out: &mut Vec<Effect>) -> Result<(), StorageError> {
        let Some(batch) = decoded(codec::decode(data, self.limits.max_block_bytes), TopicKind::Receipts, out) else {
            return Ok(());
        };
        match self.receipts.offer(batch, self.chain.state())? {
            Offer::Pooled(n) => {
                trace!(receipts = n, "receipts pooled");
                out.push(Effect::Verdict(Verdict::Accept));
            }
            Offer::Known | Offer::Full => out.push(Effect::Verdict(Verdict::Ignore)),
            Offer::Invalid(reason) => {
                debug!(reason, "invalid receipt batch");
                refuse(out, TopicKind::Receipts, "invalid");
            }
        }
        Ok(())
    }

    /// Evidence: bounded decode, then the pool's checks.
    fn on_gossiped_evidence(&mut self, data: &[u8], out: &mut Vec<Effect>) {
        let Some(evidence) =
            decoded::<Evidence, _>(codec::decode(data, self.limits.max_message_bytes), TopicKind::Evidence, out)
        else {
            return;
        };
        // Accepted, gossip forwards it: publishing it again would be a new
        // message (ids are source and sequence number) at every node.
        match self.offer_evidence(&evidence, false, out) {
            Offered::Pooled(..) => out.push(Effect::Verdict(Verdict::Accept)),
            // Known, jailed already, or expired: true evidence that arrived late.
            // Future: of an epoch whose committee we do not know yet (a
            // peer ahead of us). Storage: our own failure, not the peer's.
            Offered::Known
            | Offered::Refused(
                EvidenceRefused::AlreadyJailed(_)
                | EvidenceRefused::Expired { .. }
                | EvidenceRefused::LastActive(_)
                | EvidenceRefused::Future { .. }
                | EvidenceRefused::Storage(_),
            ) => out.push(Effect::Verdict(Verdict::Ignore)),
            Offered::Refused(reason) => {
                debug!(%reason, "invalid evidence");
                refuse(out, TopicKind::Evidence, "invalid");
            }
        }
    }

    /// Pools evidence (ours, gossiped or submitted) and, if new and
    /// `publish` (ours or submitted), gossips it, so whoever proposes next
    /// can execute it.
    pub(super) fn offer_evidence(&mut self, evidence: &Evidence, publish: bool, out: &mut Vec<Effect>) -> Offered {
        let next = self.chain.tip().height.saturating_add(1);
        let (offence, _, _) = evidence.slot();
        let context = self.chain.state().context();
        let other_epoch = context.staking.is_some_and(|s| s.epoch_of(offence) != s.epoch_of(next));
        let offered = if other_epoch {
            // Signed under an earlier (or a not yet chosen) epoch's committee.
            match palisade_ledger::committee::for_offence(self.chain.state(), offence) {
                Ok(Some(committee)) => self.evidence.offer(context, &committee, next, evidence),
                Ok(None) => Offered::Refused(EvidenceRefused::Future { offence, height: next }),
                Err(e) => {
                    // Our own state: execution will meet the same failure
                    // and stop the node; refusing here changes nothing.
                    error!(offence, error = %e, "cannot read the committee that judges this evidence");
                    Offered::Refused(EvidenceRefused::Storage(format!("committee of height {offence}: {e}")))
                }
            }
        } else {
            self.evidence.offer(context, self.chain.committee(), next, evidence)
        };
        if let Offered::Pooled(hash, _) = &offered {
            let (height, view, phase) = evidence.slot();
            warn!(height, view, ?phase, signer = %evidence.signer, evidence = %hash, "equivocation evidence pooled");
            if publish {
                out.push(Effect::Publish {
                    shard: self.shard,
                    kind: TopicKind::Evidence,
                    data: codec::encode(evidence),
                });
            }
        }
        offered
    }
}

/// The decoded message, or `None` after refusing it as undecodable.
pub(super) fn decoded<T, E: std::fmt::Display>(
    decoded: Result<T, E>,
    kind: TopicKind,
    out: &mut Vec<Effect>,
) -> Option<T> {
    match decoded {
        Ok(message) => Some(message),
        Err(e) => {
            debug!(error = %e, kind = kind.label(), "undecodable gossip");
            refuse(out, kind, "decode");
            None
        }
    }
}

/// Counts a provably bad gossip message and has the transport penalise its
/// sender.
pub(super) fn refuse(out: &mut Vec<Effect>, kind: TopicKind, reason: &'static str) {
    out.push(Effect::Note(Note::GossipRefused { kind, reason }));
    out.push(Effect::Verdict(Verdict::Reject));
}

/// Gossip's verdict on a consensus message of `height` that does not verify
/// against our committee, the one deciding `tip + 1`. At another height a
/// stake shortfall (genuine signatures short of a quorum; forged ones are
/// `BadSignature`) may be an honest peer's message under the committee
/// before or after a jailing (a laggard's view change still carrying the
/// jailed validator's prepare): ignored, not penalised, as valid messages of
/// past heights and far-ahead ones are. Penalising it cost a shard for good:
/// the survivors of a jailing graylisted their one lagging peer, whose view
/// changes every new view needed.
fn unverified_verdict(error: &VerifyError, height: u64, tip: u64) -> Verdict {
    if error.is_stake_shortfall() && height != tip.saturating_add(1) { Verdict::Ignore } else { Verdict::Reject }
}

#[cfg(test)]
mod tests {
    use palisade_consensus::{CertError, VerifyError};

    use super::{Verdict, unverified_verdict};

    #[test]
    fn only_the_committee_of_the_next_height_judges_stake() {
        let short = VerifyError::Certificate(CertError::InsufficientStake { have: 2, need: 3 });
        let forged = VerifyError::BadSignature;
        // Tip 184: our committee decides 185.
        assert_eq!(unverified_verdict(&short, 185, 184), Verdict::Reject);
        assert_eq!(unverified_verdict(&short, 184, 184), Verdict::Ignore, "a laggard at the jailing height");
        assert_eq!(unverified_verdict(&short, 187, 184), Verdict::Ignore, "a height whose committee we lack");
        for height in [184, 185, 187] {
            assert_eq!(unverified_verdict(&forged, height, 184), Verdict::Reject);
        }
        let thin = VerifyError::Justification(palisade_consensus::message::SHORT_OF_QUORUM);
        assert_eq!(unverified_verdict(&thin, 186, 184), Verdict::Ignore);
    }
}
