//! The sync client: asking peers for the blocks after our tip (one request
//! in flight, retried after [`SYNC_RETRY_MS`]), applying what they send
//! (each block checked against its certificate), and the receipt scans of
//! the other shards. The periodic checks are the core's own timers, re-armed
//! every time they fire, for as long as the shard runs.

use tracing::{debug, warn};

use super::{SYNC_RETRY_MS, ShardCore};
use crate::chain::{CommitError, decode_certificate};
use crate::effect::{Effect, Note};
use crate::receipts;
use crate::storage::{ChainStore, StorageError};
use crate::timers::Timer;
use crate::wire::{SyncRequest, SyncResponse};

impl<S: ChainStore> ShardCore<S> {
    /// A receipt scan's answer, or a block sync's.
    pub(super) fn on_sync_answer(
        &mut self,
        request: SyncRequest,
        answer: Result<SyncResponse, String>,
        out: &mut Vec<Effect>,
    ) -> Result<(), StorageError> {
        if request.receipts_for.is_none() {
            return self.on_synced(answer, out);
        }
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                debug!(source = request.shard, error = %e, "receipt scan failed");
                self.receipts.scan_failed(&request);
                return Ok(());
            }
        };
        let scanned = self.receipts.on_scan(&request, response, self.chain.state(), self.limits.max_block_bytes)?;
        if let Some(reason) = scanned.invalid {
            warn!(source = request.shard, reason, "a peer answered a receipt scan with invalid receipts");
        } else if scanned.pooled > 0 {
            debug!(source = request.shard, receipts = scanned.pooled, "receipts found by scanning");
        }
        if scanned.more {
            self.scan_receipts(out);
        }
        Ok(())
    }

    /// Sends the receipt scans that are due.
    fn scan_receipts(&mut self, out: &mut Vec<Effect>) {
        for request in self.receipts.scans_due(self.now_ms) {
            out.push(Effect::Request(request));
        }
    }

    /// Applies blocks a peer sent, each checked against its certificate.
    fn on_synced(&mut self, response: Result<SyncResponse, String>, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        self.sync_inflight_ms = None;
        let response = match response {
            Ok(response) if response.shard == self.shard => response,
            Ok(response) => {
                debug!(got = response.shard, "sync answer for another shard");
                return Ok(());
            }
            Err(e) => {
                // The periodic sync check asks again.
                debug!(error = %e, "sync failed");
                return Ok(());
            }
        };
        self.note_peer_height(response.tip_height, out);
        let before = self.chain.tip().height;
        for synced in response.blocks {
            let certificate = match decode_certificate(&synced.certificate) {
                Ok(certificate) => certificate,
                Err(e) => {
                    warn!(error = %e, "peer sent a bad certificate");
                    break;
                }
            };
            if certificate.height <= self.chain.tip().height {
                continue;
            }
            match self.chain.commit(certificate, &synced.block) {
                Ok(committed) => self.on_committed(committed, true, out)?,
                Err(CommitError::Store(e)) => return Err(e),
                Err(CommitError::Refused(e)) => {
                    warn!(error = %e, "peer sent a block that does not verify");
                    break;
                }
                Err(CommitError::Diverged { height, reason }) => {
                    self.diverged(height, reason);
                    break;
                }
            }
        }
        let after = self.chain.tip().height;
        if after > before {
            self.step_own(self.committed_input(), out)?;
            debug!(from = before, to = after, "synced");
        }
        // Ask for more at once only while the answers make progress; a peer
        // that claims a height it does not serve is retried on the timer.
        if self.peer_height > after && after > before {
            self.request_sync(out);
        }
        Ok(())
    }

    pub(super) fn note_peer_height(&mut self, height: u64, out: &mut Vec<Effect>) {
        if height > self.peer_height {
            self.peer_height = height;
            out.push(Effect::Note(Note::PeerHeight(height)));
        }
    }

    /// Asks peers for the blocks after our tip, unless a request is out.
    pub(super) fn request_sync(&mut self, out: &mut Vec<Effect>) {
        let now = self.now_ms;
        if self.sync_inflight_ms.is_some_and(|sent| now.saturating_sub(sent) < SYNC_RETRY_MS) {
            return;
        }
        let from_height = self.chain.tip().height.saturating_add(1);
        out.push(Effect::Request(SyncRequest::blocks(self.shard, from_height)));
        self.sync_inflight_ms = Some(now);
    }

    /// Fires the timers that are due.
    pub(super) fn fire_timers(&mut self, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        while let Some(timer) = self.timers.pop_due(self.now_ms) {
            let now = self.now_ms;
            match timer {
                Timer::View(id) => self.step_own(palisade_consensus::Input::Timeout(id), out)?,
                // Its only purpose is the tick: `maybe_propose` follows.
                Timer::Propose => {}
                Timer::Sync => {
                    // The sync check never stops (it is the only place that
                    // re-arms it): a validator that fell behind while nothing
                    // told it so (stuck in view changes at an old height, say)
                    // must still notice and catch up.
                    let stalled =
                        now.saturating_sub(self.last_commit_ms) > self.limits.heartbeat_interval_ms.saturating_mul(3);
                    if self.quarantine.diverged() {
                        // Re-check: execute the certified block from the
                        // store again when sync brings it back.
                        self.chain.forget_outcomes();
                    }
                    if self.peer_height > self.chain.tip().height || stalled {
                        self.request_sync(out);
                    }
                    self.timers.set(now.saturating_add(SYNC_RETRY_MS), Timer::Sync);
                }
                Timer::FlushTxs => self.flush_txs(out),
                Timer::Beat => {
                    // Re-armed only here, forever, like the sync check.
                    self.step_own(palisade_consensus::Input::Beat, out)?;
                    self.timers.set(now.saturating_add(self.limits.beat_interval_ms), Timer::Beat);
                }
                Timer::ReceiptScan => {
                    // Like the sync check, re-armed only here, forever.
                    self.scan_receipts(out);
                    self.timers.set(now.saturating_add(receipts::SCAN_INTERVAL_MS), Timer::ReceiptScan);
                }
            }
        }
        Ok(())
    }
}
