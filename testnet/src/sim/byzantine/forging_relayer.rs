//! A forging relayer: its replica and host behave, but whenever its node has
//! committed blocks that owe receipts to other shards, it relays forged
//! versions of those receipt batches to every node of the destination:
//!
//! - **inflated**: the honest batch with one receipt's amount multiplied, so
//!   its Merkle path no longer leads to the certified header's
//!   `receipts_root`;
//! - **self-certified**: a fabricated source header whose `receipts_root`
//!   commits to inflated receipts (with valid Merkle paths), under a commit
//!   certificate signed by the *destination's* own committee (dev keys anyone
//!   can derive) instead of the source's.
//!
//! Honest nodes must refuse both when they offer them to their receipt pool,
//! so no block credits them; money conservation shows none was created.

use palisade_consensus::ShardId;
use palisade_ledger::{Amount, Block, ReceiptBatch, TxKind, receipt, workload::dev_certificate};

use super::{Byzantine, Ctx, Kind};
use crate::sim::rng::SimRng;

/// Most recent heights it forges for per tick; older ones are skipped (their
/// receipts are likely credited, so honest nodes would not even look).
const HEIGHTS_PER_TICK: u64 = 4;
/// How much a forged receipt is worth compared with the real one.
const INFLATION: u64 = 1_000;

/// Relays forged receipt batches.
pub struct ForgingRelayer {
    rng: SimRng,
    /// The last height of its chain it forged for.
    forged_through: u64,
}

impl ForgingRelayer {
    /// A fresh one.
    pub fn new(rng: SimRng) -> ForgingRelayer {
        ForgingRelayer { rng, forged_through: 0 }
    }

    /// The honest batch with one receipt worth [`INFLATION`] times more.
    fn inflated(&mut self, honest: &ReceiptBatch) -> ReceiptBatch {
        let mut forged = honest.clone();
        let index = self.rng.index(forged.receipts.len());
        if let Some(proven) = forged.receipts.get_mut(index) {
            let units = proven.receipt.amount.units();
            proven.receipt.amount = Amount(units.saturating_mul(INFLATION).max(units.saturating_add(1)));
        }
        forged
    }
}

/// A batch for `dest` from a fabricated twin of `block` whose transfers are
/// worth [`INFLATION`] times more (so its receipts, ids and `receipts_root`
/// are new and consistent), certified by `dest`'s committee.
fn self_certified(ctx: &Ctx<'_>, block: &Block, dest: ShardId) -> Option<ReceiptBatch> {
    let mut fake = block.clone();
    for tx in &mut fake.txs {
        let TxKind::Transfer { amount, .. } = &mut tx.body.kind;
        *amount = Amount(amount.units().saturating_mul(INFLATION));
    }
    fake.header.receipts_root = receipt::receipts_root(&receipt::outgoing(&fake, ctx.shard_count));
    // Commit votes for the source shard's slot, as its replicas would sign
    // them, but with the keys of every validator of the destination.
    let signers: Vec<u32> = (0..ctx.committee_len).filter_map(|i| u32::try_from(i).ok()).collect();
    let certificate = dev_certificate(ctx.genesis, &fake, dest, &signers);
    ReceiptBatch::for_dest(&fake, &certificate, &[], ctx.shard_count, dest)
}

impl Byzantine for ForgingRelayer {
    fn kind(&self) -> Kind {
        Kind::ForgingRelayer
    }

    fn receipts(&mut self, ctx: &Ctx<'_>) -> Vec<(ShardId, ReceiptBatch)> {
        let tip = ctx.chain.keys().next_back().copied().unwrap_or(0);
        self.forged_through = self.forged_through.max(tip.saturating_sub(HEIGHTS_PER_TICK));
        let mut out = Vec::new();
        for (height, decision) in ctx.chain.range(self.forged_through.saturating_add(1)..) {
            self.forged_through = *height;
            let Ok(block) = Block::from_bytes(&decision.block, ctx.message_limit) else { continue };
            for dest in (0..ctx.shard_count).filter(|d| *d != ctx.shard) {
                let Some(honest) = ReceiptBatch::for_dest(&block, &decision.certificate, &[], ctx.shard_count, dest)
                else {
                    continue;
                };
                out.push((dest, self.inflated(&honest)));
                if let Some(forged) = self_certified(ctx, &block, dest) {
                    out.push((dest, forged));
                }
            }
        }
        out
    }
}
