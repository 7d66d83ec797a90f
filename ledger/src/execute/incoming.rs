//! Crediting the receipts a block carries from other shards: checking a
//! block's batches (limits, canonical order, proofs), crediting them on the
//! [`Overlay`] (each receipt id at most once per shard, ever), and choosing
//! them for a block being built.

use std::collections::BTreeMap;

use crate::{
    address::Address,
    block::Block,
    codec,
    receipt::ReceiptBatch,
    state::{Account, Applied, ShardContext, State},
};

use super::{BlockError, overlay::Overlay};

impl<S: State + ?Sized> Overlay<'_, S> {
    /// Credits `batch`'s receipts at `height`, all or nothing: fails on the
    /// first receipt already credited (here or earlier) or that overflows.
    pub(super) fn credit(&mut self, batch: &ReceiptBatch, height: u64) -> Result<(), BlockError> {
        let mut credits: BTreeMap<Address, Account> = BTreeMap::new();
        for proven in &batch.receipts {
            let r = &proven.receipt;
            if self.is_applied(&r.id)? {
                return Err(BlockError::ReceiptReplay(r.id));
            }
            let mut account = match credits.get(&r.recipient) {
                Some(account) => *account,
                None => self.account(&r.recipient)?,
            };
            account.balance = account.balance.checked_add(r.amount).ok_or(BlockError::ReceiptOverflow(r.id))?;
            credits.insert(r.recipient, account);
        }
        self.accounts.extend(credits);
        let (source_shard, source_height) = batch.source();
        for proven in &batch.receipts {
            self.applied.insert(proven.receipt.id, Applied { height, source_shard, source_height });
        }
        Ok(())
    }
}

/// Checks the incoming receipt batches' limits and canonical order (their
/// proofs are checked by [`verify_batch`], their root with the body's);
/// returns their encoding.
pub(super) fn check_incoming_limits(context: &ShardContext, block: &Block) -> Result<Vec<u8>, BlockError> {
    let count: usize = block.incoming.iter().map(|b| b.receipts.len()).fold(0, usize::saturating_add);
    if count > context.max_block_receipts {
        return Err(BlockError::TooManyReceipts { count, max: context.max_block_receipts });
    }
    let ordered = block.incoming.windows(2).all(|pair| match pair {
        [a, b] => a.source() < b.source(),
        _ => true,
    });
    if !ordered {
        return Err(BlockError::UnorderedReceipts);
    }
    let encoded = codec::encode(&block.incoming);
    if encoded.len() > context.max_block_bytes {
        return Err(BlockError::ReceiptsTooLarge { bytes: encoded.len(), max: context.max_block_bytes });
    }
    Ok(encoded)
}

/// Verifies one batch for this shard.
pub fn verify_batch(context: &ShardContext, batch: &ReceiptBatch) -> Result<(), BlockError> {
    batch.verify(&context.chain_id, &context.committees, context.shard_count, context.shard).map_err(|reason| {
        let (source_shard, source_height) = batch.source();
        BlockError::Receipt { source_shard, source_height, reason }
    })
}

/// Credits on `overlay` the receipts of `candidates` this shard has not yet
/// credited, in canonical order, at most `max_block_receipts` of them in at
/// most `max_block_bytes`; returns the batches as the block carries them.
/// Batches with nothing left to credit, and a second batch from one source
/// block, are dropped.
pub(super) fn select_incoming<S: State + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    context: &ShardContext,
    height: u64,
    mut candidates: Vec<ReceiptBatch>,
) -> Result<Vec<ReceiptBatch>, BlockError> {
    candidates.sort_by_key(ReceiptBatch::source);
    candidates.dedup_by_key(|b| b.source());
    let mut budget = context.max_block_receipts;
    // The list's own length prefix, at most a 9-byte varint.
    let mut bytes = 9usize;
    let mut chosen = Vec::new();
    for mut batch in candidates {
        if budget == 0 {
            break;
        }
        let mut fresh = Vec::with_capacity(batch.receipts.len().min(budget));
        for proven in batch.receipts {
            if fresh.len() < budget && !overlay.is_applied(&proven.receipt.id)? {
                fresh.push(proven);
            }
        }
        if fresh.is_empty() {
            continue;
        }
        batch.receipts = fresh;
        let size = codec::encode(&batch).len();
        if bytes.saturating_add(size) > context.max_block_bytes {
            continue;
        }
        match overlay.credit(&batch, height) {
            Ok(()) => {
                budget = budget.saturating_sub(batch.receipts.len());
                bytes = bytes.saturating_add(size);
                chosen.push(batch);
            }
            // Cannot be credited (an overflowing balance): leave it out.
            Err(BlockError::ReceiptOverflow(_) | BlockError::ReceiptReplay(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(chosen)
}
