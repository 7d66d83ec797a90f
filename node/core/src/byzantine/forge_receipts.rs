//! `forge-receipts`: the validator's replica and host behave, but for every
//! block it commits that owes receipts to other shards, it also publishes
//! two forgeries of each batch on the destination's receipts topic:
//!
//! - **inflated**: the honest batch with its first receipt worth
//!   [`INFLATION`] times more, so its Merkle path no longer leads to the
//!   certified header's `receipts_root`;
//! - **self-certified**: a fabricated source header whose `receipts_root`
//!   commits to inflated receipts (with valid Merkle paths), under a commit
//!   certificate signed by the *destination's* own committee (dev keys
//!   anyone can derive) instead of the source's.
//!
//! Honest destinations must refuse both (and penalise the sender), so no
//! block credits them; the simulator's supply audit shows none was minted.

use palisade_consensus::{CommitCertificate, ValidatorIndex};
use palisade_ledger::workload::dev_certificate;
use palisade_ledger::{Amount, Block, Genesis, ReceiptBatch, ShardId, TxKind, codec, receipt, receipt_proof};

/// How much a forged receipt is worth compared with the real one.
pub const INFLATION: u64 = 1_000;

/// The forged batches for `block` (just committed with `certificate`, with
/// `jailed` out of its committee): `(destination, encoded batch)`.
pub fn forgeries(
    genesis: &Genesis,
    block: &Block,
    certificate: &CommitCertificate,
    jailed: &[ValidatorIndex],
) -> Vec<(ShardId, Vec<u8>)> {
    let shards = genesis.shard_count;
    let mut out = Vec::new();
    for dest in (0..shards).filter(|d| *d != block.header.shard) {
        let Some(honest) = ReceiptBatch::for_dest(block, certificate, jailed, shards, dest) else { continue };
        out.push((dest, codec::encode(&inflated(honest))));
        if let Some(forged) = self_certified(genesis, block, dest) {
            out.push((dest, codec::encode(&forged)));
        }
    }
    out
}

/// `honest` with its first receipt worth [`INFLATION`] times more.
fn inflated(mut batch: ReceiptBatch) -> ReceiptBatch {
    if let Some(proven) = batch.receipts.first_mut() {
        let units = proven.receipt.amount.units();
        proven.receipt.amount = Amount(units.saturating_mul(INFLATION).max(units.saturating_add(1)));
    }
    batch
}

/// A batch for `dest` from a fabricated twin of `block` whose transfers are
/// worth [`INFLATION`] times more (so its receipts, ids and `receipts_root`
/// are new and consistent), certified by `dest`'s committee.
fn self_certified(genesis: &Genesis, block: &Block, dest: ShardId) -> Option<ReceiptBatch> {
    let shards = genesis.shard_count;
    let mut fake = block.clone();
    for tx in &mut fake.txs {
        if let TxKind::Transfer { amount, .. } = &mut tx.body.kind {
            *amount = Amount(amount.units().saturating_mul(INFLATION));
        }
    }
    fake.header.receipts_root = receipt::receipts_root(&receipt_proof::outgoing(&fake, shards));
    // Commit votes for the source shard's slot, as its replicas would sign
    // them, but with the keys of every validator of the destination.
    let members = genesis.committee(dest)?.validators.len();
    let signers: Vec<u32> = (0..members).filter_map(|i| u32::try_from(i).ok()).collect();
    let certificate = dev_certificate(genesis, &fake, dest, &signers);
    ReceiptBatch::for_dest(&fake, &certificate, &[], shards, dest)
}
