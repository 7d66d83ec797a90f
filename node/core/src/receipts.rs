//! Cross-shard receipts at a shard: relaying what this shard's blocks owe
//! other shards, and collecting what other shards owe this one until a
//! block credits it (see [`palisade_ledger::receipt`] for the protocol).
//!
//! Receipts for this shard arrive two ways, and nothing depends on either
//! alone:
//! - **push**: every node that commits a block publishes its receipt batch
//!   for each destination on that destination's receipts topic;
//! - **pull**: this shard scans every other shard's chain for receipts owed
//!   to it, from a per-source cursor, over the sync protocol
//!   ([`SyncRequest::receipts`]) — so a receipt nobody relayed, or one
//!   relayed while this shard was down, is still found.
//!
//! Every batch is verified (source certificate, Merkle paths) before it
//! enters the pool; the pool is bounded, and what a committed block
//! credited leaves it. The cursor of a source only moves past a scanned
//! range once everything found in it is pooled or already credited, so a
//! full pool makes the scan repeat rather than lose receipts.
//!
//! The pool lives in memory, so what a node saves for a restart is not the
//! cursor but the *credited* cursor ([`Receipts::resume_points`]): per
//! source, the lowest height whose receipts may still be uncredited here
//! (the cursor, or a pooled batch's height if lower). Below it everything
//! is in the committed state, so a restarted node resumes there instead of
//! rescanning every chain from height 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use palisade_consensus::CommitCertificate;
use palisade_ledger::execute::verify_batch;
use palisade_ledger::receipt::ReceiptBatch;
use palisade_ledger::state::StateError;
use palisade_ledger::{Block, BlockError, BlockHeader, Hash, Receipt, ShardId, State, StateExt, codec};

use crate::view::ViewChange;
use crate::wire::{SyncRequest, SyncResponse};

/// Most receipts pooled at once (a few hundred bytes each, with their
/// batch's header and certificate shared).
pub const MAX_POOLED_RECEIPTS: usize = 100_000;
/// How often each source shard is scanned for receipts owed to us, while
/// scans find some.
pub const SCAN_INTERVAL_MS: u64 = 500;
/// The longest wait between two scans of one source: after scans that
/// found nothing, the wait doubles up to this. Scans are the fallback
/// (gossip pushes every batch); at 500 ms each they were 28 % of an idle
/// network's CPU (12 scans a second per node, sent and served).
pub const MAX_SCAN_INTERVAL_MS: u64 = 4_000;
/// How long a scan may stay unanswered before it is sent again.
const SCAN_TIMEOUT_MS: u64 = 10_000;

/// What became of a batch offered to the pool.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Some of its receipts are new here: pooled.
    Pooled(usize),
    /// Nothing new: pooled already, or credited.
    Known,
    /// Valid, but the pool is full.
    Full,
    /// It does not verify: whoever sent it is at fault.
    Invalid(String),
}

/// This shard's receipt pool and scan cursors.
pub struct Receipts {
    shard: ShardId,
    /// Verified batches not yet (fully) credited, by source block.
    pool: BTreeMap<(ShardId, u64), ReceiptBatch>,
    /// Receipt id → the pooled batch holding it (`contains` is a lookup,
    /// not a walk over up to [`MAX_POOLED_RECEIPTS`]).
    ids: HashMap<Hash, (ShardId, u64)>,
    pooled: usize,
    /// Per other shard, the next source height to scan.
    cursors: BTreeMap<ShardId, u64>,
    /// Scans waiting for an answer, by source, since when (host ms).
    scanning: BTreeMap<ShardId, u64>,
    /// Per source, how many scans in a row found nothing, and when (host
    /// ms) the next may go.
    quiet: BTreeMap<ShardId, (u32, u64)>,
    /// What entered and left the pool since the host last took it (the
    /// read view).
    changes: Vec<ViewChange>,
}

impl Receipts {
    /// An empty pool for `shard`, scanning every other shard from height 1.
    pub fn new(shard: ShardId, shard_count: u32) -> Receipts {
        Receipts::resume(shard, shard_count, &BTreeMap::new())
    }

    /// An empty pool for `shard`, scanning each other shard from its saved
    /// resume point (from height 1 where none was saved).
    pub fn resume(shard: ShardId, shard_count: u32, saved: &BTreeMap<ShardId, u64>) -> Receipts {
        let cursors =
            (0..shard_count).filter(|&s| s != shard).map(|s| (s, saved.get(&s).copied().unwrap_or(1).max(1))).collect();
        Receipts {
            shard,
            pool: BTreeMap::new(),
            ids: HashMap::new(),
            pooled: 0,
            cursors,
            scanning: BTreeMap::new(),
            quiet: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// Per source shard, the lowest height whose receipts may not yet be
    /// credited here: what a restart may resume scanning from.
    pub fn resume_points(&self) -> BTreeMap<ShardId, u64> {
        self.cursors
            .iter()
            .map(|(&source, &cursor)| {
                let pooled = self.pool.range((source, 0)..=(source, u64::MAX)).next().map(|((_, height), _)| *height);
                (source, pooled.map_or(cursor, |height| height.min(cursor)))
            })
            .collect()
    }

    /// Receipts waiting to be credited.
    pub fn len(&self) -> usize {
        self.pooled
    }

    /// True if no receipt waits.
    pub fn is_empty(&self) -> bool {
        self.pooled == 0
    }

    /// Whether receipt `id` waits here.
    pub fn contains(&self, id: &Hash) -> bool {
        self.ids.contains_key(id)
    }

    /// The ids of the pooled receipts.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &Hash> {
        self.ids.keys()
    }

    /// Moves what entered and left the pool since the last call onto `into`.
    pub fn take_changes(&mut self, into: &mut Vec<ViewChange>) {
        into.append(&mut self.changes);
    }

    /// The batches a final block (with `header`, `certificate`, and the
    /// receipts `outgoing` its execution emitted) owes other shards,
    /// encoded for their receipts topics.
    pub fn relay(
        header: &BlockHeader,
        certificate: &CommitCertificate,
        jailed: &[palisade_consensus::ValidatorIndex],
        outgoing: &[Receipt],
    ) -> Vec<(ShardId, Vec<u8>)> {
        ReceiptBatch::by_dest(header, certificate, jailed, outgoing)
            .into_iter()
            .map(|(dest, batch)| (dest, codec::encode(&batch)))
            .collect()
    }

    /// Verifies `batch` and pools the receipts `state` has not credited.
    pub fn offer<S: State + ?Sized>(&mut self, batch: ReceiptBatch, state: &S) -> Result<Offer, StateError> {
        let source = batch.source();
        if let Some(pooled) = self.pool.get(&source)
            && batch.receipts.iter().all(|r| pooled.receipts.iter().any(|p| p.index == r.index))
        {
            // A copy of what we hold (relayed by several nodes): no need to
            // check its signatures again.
            return Ok(Offer::Known);
        }
        match verify_batch(state.context(), &batch) {
            Ok(()) => {}
            Err(BlockError::State(e)) => return Err(e),
            Err(e) => return Ok(Offer::Invalid(e.to_string())),
        }
        let mut fresh = Vec::new();
        for proven in batch.receipts {
            let pooled = self.pool.get(&source).is_some_and(|b| b.receipts.iter().any(|p| p.index == proven.index));
            if !pooled && state.applied(&proven.receipt.id)?.is_none() {
                fresh.push(proven);
            }
        }
        if fresh.is_empty() {
            return Ok(Offer::Known);
        }
        if self.pooled.saturating_add(fresh.len()) > MAX_POOLED_RECEIPTS {
            return Ok(Offer::Full);
        }
        let added = fresh.len();
        self.pooled = self.pooled.saturating_add(added);
        let ids: Vec<Hash> = fresh.iter().map(|p| p.receipt.id).collect();
        match self.pool.get_mut(&source) {
            // Same certified source block: its receipts merge.
            Some(pooled) if pooled.header == batch.header => {
                pooled.receipts.extend(fresh);
                pooled.receipts.sort_by_key(|p| p.index);
            }
            Some(_) => {
                // Two certified headers at one height would be a safety
                // failure of the source shard; keep the first.
                self.pooled = self.pooled.saturating_sub(added);
                return Ok(Offer::Known);
            }
            None => {
                self.pool.insert(source, ReceiptBatch { receipts: fresh, ..batch });
            }
        }
        self.changes.extend(ids.iter().copied().map(ViewChange::ReceiptPooled));
        self.ids.extend(ids.into_iter().map(|id| (id, source)));
        Ok(Offer::Pooled(added))
    }

    /// The pooled batches, oldest source heights first within each source,
    /// for the next proposal (the builder skips what is credited and stops
    /// at the block's limits).
    pub fn candidates(&self, max_receipts: usize) -> Vec<ReceiptBatch> {
        let mut out = Vec::new();
        let mut count = 0usize;
        for batch in self.pool.values() {
            if count >= max_receipts {
                break;
            }
            count = count.saturating_add(batch.receipts.len());
            out.push(batch.clone());
        }
        out
    }

    /// Drops what `block` (just committed here) credited.
    pub fn on_commit(&mut self, block: &Block) {
        for credited in &block.incoming {
            let source = credited.source();
            let Some(pooled) = self.pool.get_mut(&source) else { continue };
            let done: BTreeSet<u32> = credited.receipts.iter().map(|r| r.index).collect();
            let before = pooled.receipts.len();
            let (ids, changes) = (&mut self.ids, &mut self.changes);
            pooled.receipts.retain(|r| {
                let keep = !done.contains(&r.index);
                if !keep {
                    ids.remove(&r.receipt.id);
                    changes.push(ViewChange::ReceiptGone(r.receipt.id));
                }
                keep
            });
            self.pooled = self.pooled.saturating_sub(before.saturating_sub(pooled.receipts.len()));
            if pooled.receipts.is_empty() {
                self.pool.remove(&source);
            }
        }
    }

    /// The scans to send now: one per source shard without one in flight.
    pub fn scans_due(&mut self, now_ms: u64) -> Vec<SyncRequest> {
        let mut due = Vec::new();
        for (&source, &from) in &self.cursors {
            let busy = self.scanning.get(&source).is_some_and(|at| now_ms.saturating_sub(*at) < SCAN_TIMEOUT_MS);
            let waiting = self.quiet.get(&source).is_some_and(|&(_, next_ms)| now_ms < next_ms);
            if !busy && !waiting {
                due.push(SyncRequest::receipts(source, from, self.shard));
            }
        }
        for request in &due {
            self.scanning.insert(request.shard, now_ms);
        }
        due
    }

    /// A scan failed: it may be sent again at the next interval.
    pub fn scan_failed(&mut self, request: &SyncRequest) {
        self.scanning.remove(&request.shard);
    }

    /// Takes a scan's answer: pools what it found and moves the cursor past
    /// the scanned range if nothing was lost. Returns the number of newly
    /// pooled receipts, whether the source has more to scan at once, and
    /// the first invalid batch's reason, if any (the peer lied).
    pub fn on_scan<S: State + ?Sized>(
        &mut self,
        request: &SyncRequest,
        response: SyncResponse,
        state: &S,
        max_batch_bytes: usize,
    ) -> Result<ScanResult, StateError> {
        let source = request.shard;
        let sent_ms = self.scanning.remove(&source);
        let mut result = ScanResult::default();
        let mut complete = true;
        for bytes in response.receipts {
            let batch: ReceiptBatch = match codec::decode(&bytes, max_batch_bytes) {
                Ok(batch) => batch,
                Err(e) => {
                    result.invalid = Some(format!("undecodable receipt batch: {e}"));
                    return Ok(result);
                }
            };
            if batch.header.shard != source || batch.header.height < request.from_height {
                result.invalid = Some("a receipt batch from outside the scanned range".into());
                return Ok(result);
            }
            match self.offer(batch, state)? {
                Offer::Pooled(n) => result.pooled = result.pooled.saturating_add(n),
                Offer::Known => {}
                Offer::Full => complete = false,
                Offer::Invalid(reason) => {
                    result.invalid = Some(reason);
                    return Ok(result);
                }
            }
        }
        if complete && response.scanned_to >= request.from_height {
            let next = response.scanned_to.saturating_add(1);
            let cursor = self.cursors.entry(source).or_insert(1);
            *cursor = (*cursor).max(next);
            result.more = response.tip_height > response.scanned_to;
        }
        self.pace(source, sent_ms, complete && result.pooled == 0 && !result.more);
        Ok(result)
    }

    /// When `source` is scanned next: at the next interval after a scan
    /// that found something (at once if it has more), later and later after
    /// scans that found nothing, [`SCAN_INTERVAL_MS`] doubling per quiet
    /// scan up to [`MAX_SCAN_INTERVAL_MS`].
    fn pace(&mut self, source: ShardId, sent_ms: Option<u64>, quiet: bool) {
        if !quiet {
            self.quiet.remove(&source);
            return;
        }
        let entry = self.quiet.entry(source).or_insert((0, 0));
        entry.0 = entry.0.saturating_add(1);
        let doublings = entry.0.saturating_sub(1).min(16);
        let wait = SCAN_INTERVAL_MS.saturating_mul(1 << doublings).min(MAX_SCAN_INTERVAL_MS);
        entry.1 = sent_ms.unwrap_or(0).saturating_add(wait);
    }

    /// Per source shard, the next height a scan reads.
    pub fn cursors(&self) -> &BTreeMap<ShardId, u64> {
        &self.cursors
    }
}

/// What a scan answer did.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Receipts newly pooled.
    pub pooled: usize,
    /// The source has blocks past the scanned range: scan again now.
    pub more: bool,
    /// Why the answer was refused, if it was.
    pub invalid: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use palisade_ledger::mem::MemState;
    use palisade_ledger::workload::{Wallets, dev_certificate};
    use palisade_ledger::{Amount, Genesis, build_block};

    use super::*;

    /// Shard 0 commits a block of three transfers to shard 1; returns the
    /// genesis, the block, its certificate and shard 1's state at genesis.
    fn setup() -> (Genesis, Block, CommitCertificate, MemState) {
        let mut genesis = Genesis::dev(2, 4);
        let mut users = Wallets::new(&genesis.chain_id, "r", 24);
        users.fund(&mut genesis, "r", Amount(1_000_000));
        let on = |shard| -> Vec<usize> {
            (0..users.len()).filter(|&i| users.address(i).shard(2) == shard).take(3).collect()
        };
        let (senders, recipients) = (on(0), on(1));
        let txs: Vec<_> = senders
            .iter()
            .zip(&recipients)
            .map(|(&from, &to)| {
                let to = users.address(to);
                users.transfer(from, to, Amount(10), Amount(1))
            })
            .collect();
        let mut source = MemState::genesis(&genesis, 0).unwrap();
        let proposer = genesis.committee(0).unwrap().validators[0].address;
        let built = build_block(&source, proposer, 0, Vec::new(), txs).unwrap();
        source.commit(&built.outcome);
        let certificate = dev_certificate(&genesis, &built.block, 0, &[0, 1, 2]);
        let dest = MemState::genesis(&genesis, 1).unwrap();
        (genesis, built.block, certificate, dest)
    }

    #[test]
    fn batches_are_verified_pooled_once_and_dropped_when_credited() {
        let (genesis, block, certificate, mut dest) = setup();
        let relayed =
            Receipts::relay(&block.header, &certificate, &[], &palisade_ledger::receipt_proof::outgoing(&block, 2));
        assert_eq!(relayed.len(), 1, "one destination");
        assert_eq!(relayed[0].0, 1);
        let batch: ReceiptBatch = codec::decode(&relayed[0].1, 1 << 20).unwrap();

        let mut pool = Receipts::new(1, 2);
        let mut forged = batch.clone();
        forged.receipts[0].receipt.amount = Amount(1_000);
        assert!(matches!(pool.offer(forged, &dest).unwrap(), Offer::Invalid(_)));
        assert!(pool.is_empty(), "nothing invalid is pooled");
        assert_eq!(pool.offer(batch.clone(), &dest).unwrap(), Offer::Pooled(3));
        assert_eq!(pool.offer(batch.clone(), &dest).unwrap(), Offer::Known);
        assert!(pool.contains(&batch.receipts[1].receipt.id));
        assert_eq!(pool.len(), 3);

        let proposer = genesis.committee(1).unwrap().validators[0].address;
        let built = build_block(&dest, proposer, 0, pool.candidates(16), []).unwrap();
        assert_eq!(built.block.incoming.len(), 1);
        dest.commit(&built.outcome);
        pool.on_commit(&built.block);
        assert!(pool.is_empty());
        assert_eq!(pool.offer(batch, &dest).unwrap(), Offer::Known, "credited already");
    }

    #[test]
    fn scans_move_the_cursor_only_past_what_they_pooled() {
        let (genesis, block, certificate, dest) = setup();
        let batch = ReceiptBatch::for_dest(&block, &certificate, &[], 2, 1).unwrap();
        let mut pool = Receipts::new(1, 2);
        let now = 1_000;
        let due = pool.scans_due(now);
        assert_eq!(due, vec![SyncRequest::receipts(0, 1, 1)]);
        assert!(pool.scans_due(now).is_empty(), "one scan in flight per source");

        let mut forged = batch.clone();
        forged.receipts[0].receipt.recipient = forged.receipts[1].receipt.recipient;
        let mut answer = SyncResponse::empty(&due[0]);
        answer.tip_height = 9;
        answer.scanned_to = 5;
        answer.receipts = vec![serde_bytes::ByteBuf::from(codec::encode(&forged))];
        let result = pool.on_scan(&due[0], answer.clone(), &dest, 1 << 20).unwrap();
        assert!(result.invalid.is_some());
        assert_eq!(pool.cursors()[&0], 1, "a lying answer moves nothing");

        answer.receipts = vec![serde_bytes::ByteBuf::from(codec::encode(&batch))];
        let result = pool.on_scan(&due[0], answer, &dest, 1 << 20).unwrap();
        assert_eq!((result.pooled, result.more, result.invalid), (3, true, None));
        assert_eq!(pool.cursors()[&0], 6);
        assert_eq!(pool.scans_due(now), vec![SyncRequest::receipts(0, 6, 1)]);

        // A restart may resume only below what is pooled (the pool is lost
        // with the process); once credited, past it.
        assert_eq!(pool.resume_points(), BTreeMap::from([(0, 1)]));
        let mut dest = dest;
        let built = build_block(&dest, genesis.committee(1).unwrap().validators[0].address, 0, pool.candidates(16), [])
            .unwrap();
        dest.commit(&built.outcome);
        pool.on_commit(&built.block);
        assert_eq!(pool.resume_points(), BTreeMap::from([(0, 6)]));
        let resumed = Receipts::resume(1, 2, &pool.resume_points());
        assert_eq!(resumed.cursors(), &BTreeMap::from([(0, 6)]));
    }

    #[test]
    fn quiet_sources_are_scanned_less_and_less_often_until_one_finds_receipts() {
        let (_, block, certificate, dest) = setup();
        let batch = ReceiptBatch::for_dest(&block, &certificate, &[], 2, 1).unwrap();
        let mut pool = Receipts::new(1, 2);
        let mut now = 0;
        let mut gaps = Vec::new();
        let mut last = 0;
        // Scans that find nothing, polled every 500 ms as the core does.
        for _ in 0..40 {
            for request in pool.scans_due(now) {
                gaps.push(now - last);
                last = now;
                // The source has no block yet.
                let answer = SyncResponse::empty(&request);
                pool.on_scan(&request, answer, &dest, 1 << 20).unwrap();
            }
            now += SCAN_INTERVAL_MS;
        }
        assert_eq!(gaps[1..6], [500, 1_000, 2_000, 4_000, 4_000], "doubling, capped");
        // A scan that finds receipts brings the pace back at once.
        let request = pool.scans_due(now + MAX_SCAN_INTERVAL_MS).pop().unwrap();
        let mut answer = SyncResponse::empty(&request);
        answer.tip_height = 5;
        answer.scanned_to = 5;
        answer.receipts = vec![serde_bytes::ByteBuf::from(codec::encode(&batch))];
        let result = pool.on_scan(&request, answer, &dest, 1 << 20).unwrap();
        assert_eq!(result.pooled, 3);
        assert_eq!(pool.scans_due(now + MAX_SCAN_INTERVAL_MS + SCAN_INTERVAL_MS).len(), 1);
    }
}
