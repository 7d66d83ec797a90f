//! Proposal pacing and building. The replica asks for a proposal as soon as
//! it leads a view; the core builds it once it is due: right away in a view
//! after a failure, `block_interval_ms` after the last commit when
//! transactions or receipts wait, and `heartbeat_interval_ms` after it when
//! idle. Also the `flood` misbehaviour's bursts, which are paced the same
//! way.

use palisade_consensus::Input;
use palisade_ledger::execute::Extras;
use tracing::debug;

use super::ShardCore;
use crate::byzantine::{self, Misbehaviour};
use crate::chain::Proposed;
use crate::effect::Effect;
use crate::storage::{ChainStore, StorageError};
use crate::timers::Timer;
use crate::wire::TopicKind;

impl<S: ChainStore> ShardCore<S> {
    /// Builds the requested proposal once it is due (else arms the
    /// proposal timer for when it will be).
    pub(super) fn proposal_if_due(&mut self) -> Result<Option<Input>, StorageError> {
        let Some((height, view)) = self.proposal_due else { return Ok(None) };
        if height != self.replica.height() || view != self.replica.view() {
            self.proposal_due = None;
            return Ok(None);
        }
        let wait_ms = if view > 0 {
            0
        } else if self.mempool.is_empty() && self.receipts.is_empty() {
            self.limits.heartbeat_interval_ms
        } else {
            self.limits.block_interval_ms
        };
        let due_ms = self.last_commit_ms.saturating_add(wait_ms);
        if self.now_ms < due_ms {
            self.timers.set(due_ms, Timer::Propose);
            return Ok(None);
        }
        self.proposal_due = None;
        let Some(proposer) = self.address else { return Ok(None) };
        if self.quarantine.active() {
            // Nothing to sign: the view times out and the next leader goes on.
            return Ok(None);
        }
        let candidates = self.mempool.candidates(self.chain.state(), self.limits.max_block_txs)?;
        let extras = Extras {
            incoming: self.receipts.candidates(self.limits.max_block_receipts),
            evidence: self.evidence.candidates(),
        };
        let Proposed { block, hash: block_hash, rejected, refused_evidence } =
            self.chain.build(proposer, self.now_ms, extras, candidates)?;
        for (hash, reason) in &refused_evidence {
            debug!(evidence = %hash, %reason, "pending evidence not executable");
        }
        self.evidence.drop_refused(&refused_evidence);
        for (id, reason) in rejected {
            self.mempool.evict(&id);
            self.remember_rejection(id, reason.to_string());
        }
        let (block, block_hash) = match self.misbehave {
            Some(Misbehaviour::InvalidProposals) => {
                byzantine::invalid_proposals::corrupt(&block, self.limits.max_block_bytes)
                    .unwrap_or((block, block_hash))
            }
            _ => (block, block_hash),
        };
        debug!(height, view, bytes = block.len(), "proposing");
        Ok(Some(Input::Proposal { height, view, block_hash, block }))
    }

    pub(super) fn maybe_propose(&mut self, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        if let Some(input) = self.proposal_if_due()? {
            self.step_own(input, out)?;
        }
        Ok(())
    }

    /// The `flood` misbehaviour's next burst of junk, when due.
    pub(super) fn flood(&mut self, out: &mut Vec<Effect>) {
        if self.misbehave != Some(Misbehaviour::Flood) {
            return;
        }
        let due_ms = self.last_flood_ms.saturating_add(byzantine::flood::INTERVAL_MS);
        if self.now_ms < due_ms {
            self.timers.set(due_ms, Timer::Propose);
            return;
        }
        self.last_flood_ms = self.now_ms;
        for n in 0..byzantine::flood::BURST {
            out.push(Effect::Publish {
                shard: self.shard,
                kind: TopicKind::Consensus,
                data: byzantine::flood::junk(self.now_ms, n),
            });
        }
        self.timers.set(self.now_ms.saturating_add(byzantine::flood::INTERVAL_MS), Timer::Propose);
    }
}
