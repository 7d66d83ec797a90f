//! Stepping the replica and carrying out its actions: the host duties the
//! consensus crate lists. A `Persist` becomes an [`Effect::Persist`] ahead
//! of every effect after it; messages are published on the shard's topic
//! (through the misbehaviour's filter, if any); blocks are validated and
//! committed against the chain; and after a commit the mempool, the pools
//! and the receipt resume points follow it.

use std::collections::VecDeque;

use palisade_consensus::{Action, Input, Message, Rejected, SignedMessage};
use palisade_ledger::codec;
use tracing::{debug, info, warn};

use super::ShardCore;
use crate::byzantine::{self, Misbehaviour};
use crate::chain::{CommitError, Committed as ChainCommitted};
use crate::effect::{Committed, Effect, Note};
use crate::evidence::Offered;
use crate::receipts::Receipts;
use crate::storage::{ChainStore, StorageError};
use crate::timers::Timer;
use crate::wire::TopicKind;

impl<S: ChainStore> ShardCore<S> {
    /// Feeds one input to the replica and carries out everything it asks,
    /// including the inputs those actions produce (proposals, validity).
    pub(super) fn step(&mut self, input: Input, out: &mut Vec<Effect>) -> Result<Result<(), Rejected>, StorageError> {
        let mut actions = Vec::new();
        let result = self.replica.handle(input, &mut actions);
        self.perform_all(actions, out)?;
        Ok(result)
    }

    /// [`ShardCore::step`] for an input of our own (timer, sync, proposal),
    /// which no peer can be blamed for if the replica refuses it.
    pub(super) fn step_own(&mut self, input: Input, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        if let Err(e) = self.step(input, out)? {
            debug!(error = %e, "replica refused the host's own input");
        }
        Ok(())
    }

    pub(super) fn perform_all(&mut self, actions: Vec<Action>, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            if let Some(input) = self.perform(action, out)? {
                let mut more = Vec::new();
                // Inputs we generate ourselves (our proposal, our verdict on
                // a block) are never refused for a peer's fault.
                if let Err(e) = self.replica.handle(input, &mut more) {
                    warn!(error = %e, "replica refused the host's own input");
                }
                queue.extend(more);
            }
        }
        self.observe_replica(out);
        Ok(())
    }

    /// Carries out one action; returns the input it produces, if any.
    fn perform(&mut self, action: Action, out: &mut Vec<Effect>) -> Result<Option<Input>, StorageError> {
        match action {
            // The host makes it durable before anything after it: a vote
            // this node sends is one its store remembers.
            Action::Persist(state) => out.push(Effect::Persist(state)),
            Action::Broadcast(message) | Action::Send { message, .. } => {
                // Direct sends (decisions for laggards) go over gossip too:
                // any node of the shard may use a decision, and the topic
                // already reaches the recipient.
                self.publish(&message, out);
            }
            Action::SetTimer { id, after_ms } => self.timers.set(self.now_ms.saturating_add(after_ms), Timer::View(id)),
            Action::Commit { height, block, certificate, .. } => {
                // Above the tip, unless already applied through sync.
                if height > self.chain.tip().height {
                    match self.chain.commit(certificate, &block) {
                        Ok(committed) => self.on_committed(committed, false, out)?,
                        Err(CommitError::Store(e)) => return Err(e),
                        // A quorum certified it and we cannot execute it: we
                        // stop vouching for anything until a re-check
                        // commits it (the replica waits for the commit
                        // meanwhile; sync retries it).
                        Err(CommitError::Diverged { height, reason }) => {
                            self.diverged(height, reason);
                            return Ok(None);
                        }
                        // The replica only commits blocks it validated against a
                        // certificate it verified: this is a broken invariant.
                        Err(CommitError::Refused(e)) => {
                            panic!("shard {}: replica committed a bad block: {e}", self.shard)
                        }
                    }
                }
                // The replica waits for the committee of the next height,
                // which this block may have changed.
                return Ok(Some(self.committed_input()));
            }
            Action::Evidence(evidence) => {
                let (height, view, phase) = evidence.slot();
                out.push(Effect::Note(Note::EvidenceDetected { signer: evidence.signer, height, view, phase }));
                if let Offered::Refused(reason) = self.offer_evidence(&evidence, true, out) {
                    debug!(%reason, "own evidence not pooled");
                }
            }
            Action::RequestProposal { height, view } => {
                self.proposal_due = Some((height, view));
                return self.proposal_if_due();
            }
            Action::ValidateBlock { height, view, block_hash, block } => {
                // What our mempool admitted had its signature verified then.
                let mempool = &self.mempool;
                let verified = |id: &palisade_ledger::Hash| mempool.contains(id);
                let valid = match self.chain.validate(height, block_hash, &block, self.now_ms, &verified) {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(height, view, error = %e, "refusing proposed block");
                        false
                    }
                };
                return Ok(Some(Input::BlockValidity { height, block_hash, valid }));
            }
            Action::SyncFrom { height } => {
                self.note_peer_height(height, out);
                self.request_sync(out);
            }
        }
        Ok(None)
    }

    /// Publishes what the replica signed, through the misbehaviour's filter.
    /// A quarantined core withholds what it signs (decisions, which carry
    /// the others' certificate, still go to laggards), except its votes and
    /// view changes while the members that beat (those not quarantined)
    /// hold no quorum without it: a cause shared by several validators (a
    /// clock off for all, a loaded disk array) must not halt the shard.
    fn publish(&self, message: &SignedMessage, out: &mut Vec<Effect>) {
        if self.quarantine.active() {
            let withheld = match message.message {
                Message::Decided(_) => false,
                Message::Vote(_) | Message::ViewChange(_) => self.presence.others_beat_a_quorum(
                    self.chain.committee(),
                    self.replica.index(),
                    self.now_ms,
                    self.limits.presence_window_ms,
                ),
                Message::Propose(_) | Message::Alive(_) => true,
            };
            if withheld {
                return;
            }
        }
        let publish = |out: &mut Vec<Effect>, message: &SignedMessage| {
            out.push(Effect::Publish {
                shard: self.shard,
                kind: TopicKind::Consensus,
                data: palisade_consensus::encode(message),
            });
        };
        // The replica's key also signs the equivocating modes' second messages.
        let key = self.replica.config().signing_key.as_ref();
        let twin = match (self.misbehave, key) {
            (Some(Misbehaviour::Silent), _) if byzantine::silent::withholds(message) => return,
            (Some(Misbehaviour::Equivocate), Some(key)) => byzantine::equivocate::conflicting(message, key),
            (Some(Misbehaviour::EquivocateProposals), Some(key)) => self.address.and_then(|proposer| {
                byzantine::equivocate_proposals::conflicting(
                    message,
                    self.chain.state(),
                    proposer,
                    key,
                    self.limits.max_block_bytes,
                )
            }),
            _ => None,
        };
        publish(out, message);
        if let Some(twin) = twin {
            publish(out, &twin);
        }
    }

    /// Tells the replica what the chain committed and which committee
    /// decides the next height.
    pub(super) fn committed_input(&self) -> Input {
        Input::Committed { height: self.chain.tip().height, committee: self.chain.committee().clone() }
    }

    /// Notes view changes after the replica moved.
    fn observe_replica(&mut self, out: &mut Vec<Effect>) {
        let view = self.replica.view();
        if view > self.observed_view {
            let height = self.replica.height();
            out.push(Effect::Note(Note::ViewChanged { height, by: view.saturating_sub(self.observed_view) }));
            info!(height, view, "view change");
        }
        self.observed_view = view;
    }

    /// Bookkeeping after a block became final here.
    pub(super) fn on_committed(
        &mut self,
        committed: ChainCommitted,
        synced: bool,
        out: &mut Vec<Effect>,
    ) -> Result<(), StorageError> {
        let ChainCommitted { block, hash, certificate, bytes, outgoing, jailed, slashed } = committed;
        let height = block.header.height;
        for (offender, record) in &slashed {
            warn!(
                height,
                %offender,
                offence_height = record.height,
                view = record.view,
                burned = %record.burned,
                "validator slashed and jailed"
            );
        }
        let jailed_next = (!slashed.is_empty()).then(|| {
            let committee = self.chain.committee();
            info!(
                height,
                active = committee.len().saturating_sub(committee.inactive().len()),
                jailed = ?committee.inactive(),
                "committee changed; it decides the next height"
            );
            committee.inactive()
        });
        self.evidence.on_commit(&block, self.chain.committee());
        self.mempool.on_commit(&block.txs, self.chain.state())?;
        self.receipts.on_commit(&block);
        self.save_resume_points()?;
        let credited: usize = block.incoming.iter().map(|b| b.receipts.len()).sum();
        // Every node relays: nothing waits on one relayer (and the
        // destinations' scans find what no one relays).
        for (dest, batch) in Receipts::relay(&block.header, &certificate, &jailed, &outgoing) {
            out.push(Effect::Publish { shard: dest, kind: TopicKind::Receipts, data: batch });
        }
        if self.misbehave == Some(Misbehaviour::ForgeReceipts) {
            for (dest, forged) in byzantine::forge_receipts::forgeries(&self.genesis, &block, &certificate, &jailed) {
                out.push(Effect::Publish { shard: dest, kind: TopicKind::Receipts, data: forged });
            }
        }
        // Our clock against the others' blocks, when we decided them as
        // they were proposed (a synced block is old news).
        let parent_ms = std::mem::replace(&mut self.tip_timestamp_ms, block.header.timestamp_ms);
        if !synced && Some(block.header.proposer) != self.address {
            let committee = self.chain.committee();
            let others = committee.len().saturating_sub(committee.inactive().len()).saturating_sub(1);
            let proposers = (2 * (others / 3) + 1).min(others);
            self.quarantine.block_committed(
                self.now_ms,
                block.header.proposer,
                block.header.timestamp_ms,
                parent_ms,
                proposers,
            );
        }
        self.quarantine.chain_at(height);
        let latency_ms = self.now_ms.saturating_sub(self.height_started_ms);
        self.last_commit_ms = self.now_ms;
        self.height_started_ms = self.now_ms;
        self.tx_flush_on_commit();
        self.note_peer_height(height, out);
        info!(height, txs = block.txs.len(), credited, emitted = outgoing.len(), %hash, synced, "committed");
        out.push(Effect::Committed(Box::new(Committed {
            block,
            hash,
            certificate,
            bytes,
            synced,
            latency_ms,
            credited,
            emitted: outgoing.len(),
            slashed,
            jailed_next,
        })));
        Ok(())
    }

    /// Saves where receipt scans may resume after a restart, if that moved
    /// (after a commit: the points only rise once credits are committed).
    fn save_resume_points(&mut self) -> Result<(), StorageError> {
        let points = self.receipts.resume_points();
        if points != self.saved_resume_points {
            self.chain.store_mut().save_receipt_cursors(&codec::encode(&points))?;
            self.saved_resume_points = points;
        }
        Ok(())
    }
}
