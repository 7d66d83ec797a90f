//! What executing a valid block yields: the [`Outcome`] a store commits,
//! and one [`TxReceipt`] per transaction for the transaction index.

use std::collections::BTreeMap;

use jmt::storage::TreeUpdateBatch;
use serde::{Deserialize, Serialize};

use crate::{
    address::ShardId,
    amount::Amount,
    hash::Hash,
    receipt::Receipt,
    slashing::Slashings,
    state::{ShardContext, StateKey, Tip},
    tx::SignedTx,
};

/// Where an executed transaction sits and what it did; the transaction index
/// stores this by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// Its id.
    pub id: Hash,
    /// The shard that executed it.
    pub shard: ShardId,
    /// The block height.
    pub height: u64,
    /// Position in the block.
    pub position: u32,
    /// Fee paid to the proposer.
    pub fee: Amount,
    /// For a transfer to another shard: that shard, which credits the
    /// recipient against this block's receipt.
    pub dest_shard: Option<ShardId>,
}

/// What a valid block changes: everything a store must write, atomically, to
/// commit it.
pub struct Outcome {
    /// The tip after the block.
    pub tip: Tip,
    /// The tip it was executed on; a store refuses to commit it on another.
    pub parent: Tip,
    /// Encoded new values by key.
    pub writes: BTreeMap<StateKey, Vec<u8>>,
    /// New tree nodes and stale ones.
    pub tree: TreeUpdateBatch,
    /// One per transaction, in block order.
    pub receipts: Vec<TxReceipt>,
    /// The cross-shard receipts the block emits, in block order.
    pub outgoing: Vec<Receipt>,
    /// Validators the block slashed and jailed (from the next height on).
    pub slashed: Slashings,
}

/// The index entry of executed `tx`; a cross-shard one's receipt goes to `outgoing`.
pub(super) fn tx_receipt(
    context: &ShardContext,
    height: u64,
    index: usize,
    id: Hash,
    tx: &SignedTx,
    outgoing: &mut Vec<Receipt>,
) -> TxReceipt {
    // Blocks hold at most `max_block_txs` (validated far below u32::MAX).
    let position = u32::try_from(index).unwrap_or(u32::MAX);
    let emitted = Receipt::emitted_by(tx, id, context.shard, height, context.shard_count);
    let dest_shard = emitted.as_ref().map(|r| r.dest_shard);
    outgoing.extend(emitted);
    TxReceipt { id, shard: context.shard, height, position, fee: tx.body.fee, dest_shard }
}
