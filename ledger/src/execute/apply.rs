//! Validating a proposed block: [`apply_block`] checks its header and body
//! against the state it extends, executes it, and checks the header's
//! commitments against what execution produced.

use palisade_consensus::Committee;

use crate::{
    block::{Block, BlockHeader},
    committee,
    hash::Hash,
    slashing::MAX_BLOCK_EVIDENCE,
    state::{ShardContext, State, Tip},
    tx::SignedTx,
};

use super::{
    BlockError, Outcome,
    commit::{BodyRoots, seal},
    error::Failure,
    incoming::{check_incoming_limits, verify_batch},
    outcome::tx_receipt,
    overlay::Overlay,
    tx::{execute_tx, verify_indexed},
};

/// Checks and executes `block` on top of `state`'s tip. `Ok` means the block
/// is valid and the [`Outcome`] is exactly what committing it writes.
///
/// The cheap checks come first: the header, the body's limits and roots,
/// and only then signatures, receipt proofs and execution.
pub fn apply_block<S: State + ?Sized>(state: &S, block: &Block) -> Result<Outcome, BlockError> {
    apply_block_verified(state, block, &|_| false)
}

/// [`apply_block`] for a caller that has already verified the signatures
/// of some transactions: `verified(id)` is true for those (a validator's
/// mempool admitted them), whose signatures are not checked again. An id
/// is the hash of the transaction's whole encoding, signature included, so
/// it names exactly what was verified.
pub fn apply_block_verified<S: State + ?Sized>(
    state: &S,
    block: &Block,
    verified: &dyn Fn(&Hash) -> bool,
) -> Result<Outcome, BlockError> {
    let context = state.context();
    let parent = state.tip();
    let header = &block.header;
    let committee = committee::current(state)?;
    check_header(context, &committee, &parent, header)?;
    // Encode each transaction once: its size and id serve every check below.
    let ids = check_body(context, block)?;
    check_evidence_count(block)?;
    let incoming_encoded = check_incoming_limits(context, block)?;
    let body = BodyRoots::of(&ids, &block.incoming, &incoming_encoded, &block.evidence);
    body.check(header)?;
    let unverified: Vec<(usize, &SignedTx)> = block
        .txs
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(_, (_, id))| !verified(id))
        .map(|(i, (tx, _))| (i, tx))
        .collect();
    verify_indexed(&unverified, crate::keys::verifying_key)?;
    for batch in &block.incoming {
        verify_batch(context, batch)?;
    }

    let mut overlay = Overlay::new(state)?;
    for (index, evidence) in block.evidence.iter().enumerate() {
        overlay
            .slash(context, &committee, header.height, evidence)?
            .map_err(|reason| BlockError::Evidence { index, reason })?;
    }
    for batch in &block.incoming {
        overlay.credit(batch, header.height)?;
    }
    let mut receipts = Vec::with_capacity(block.txs.len());
    let mut outgoing = Vec::new();
    for (index, (tx, id)) in block.txs.iter().zip(&ids).enumerate() {
        execute_tx(&mut overlay, context, &header.proposer, header.height, tx).map_err(|failure| match failure {
            Failure::Tx(reason) => BlockError::Tx { index, id: *id, reason },
            Failure::Block(e) => e,
        })?;
        receipts.push(tx_receipt(context, header.height, index, *id, tx, &mut outgoing));
    }
    let sealed = seal(overlay, &committee, &header.proposer, header.height, header.parent, body, &outgoing)?;
    sealed.commitments.check_execution(header)?;
    Ok(sealed.into_outcome(header, parent, receipts, outgoing))
}

/// The evidence list's size (its content is checked as it executes).
fn check_evidence_count(block: &Block) -> Result<(), BlockError> {
    let count = block.evidence.len();
    if count > MAX_BLOCK_EVIDENCE {
        return Err(BlockError::TooMuchEvidence { count, max: MAX_BLOCK_EVIDENCE });
    }
    Ok(())
}

fn check_header(
    context: &ShardContext,
    committee: &Committee,
    parent: &Tip,
    header: &BlockHeader,
) -> Result<(), BlockError> {
    if header.chain_id != context.chain_id {
        return Err(BlockError::WrongChain { expected: context.chain_id.clone(), got: header.chain_id.clone() });
    }
    if header.shard != context.shard {
        return Err(BlockError::WrongShard { expected: context.shard, got: header.shard });
    }
    let expected =
        parent.height.checked_add(1).ok_or(BlockError::WrongHeight { expected: u64::MAX, got: header.height })?;
    if header.height != expected {
        return Err(BlockError::WrongHeight { expected, got: header.height });
    }
    if header.parent != parent.hash {
        return Err(BlockError::WrongParent { expected: parent.hash, got: header.parent });
    }
    if header.timestamp_ms < parent.timestamp_ms {
        return Err(BlockError::TimestampBeforeParent { parent: parent.timestamp_ms, got: header.timestamp_ms });
    }
    let committee_hash = Hash(committee.hash());
    if header.committee_hash != committee_hash {
        return Err(BlockError::WrongCommittee { expected: committee_hash, got: header.committee_hash });
    }
    if !committee::is_active_member(committee, &header.proposer) {
        return Err(BlockError::UnknownProposer(header.proposer));
    }
    if !committee::is_in_rotation(committee, &header.proposer) {
        return Err(BlockError::BenchedProposer(header.proposer));
    }
    Ok(())
}

/// Checks the body's limits; returns the transaction ids.
fn check_body(context: &ShardContext, block: &Block) -> Result<Vec<Hash>, BlockError> {
    let count = block.txs.len();
    if count > context.max_block_txs {
        return Err(BlockError::TooManyTxs { count, max: context.max_block_txs });
    }
    let mut bytes = 0usize;
    let mut ids = Vec::with_capacity(count);
    for tx in &block.txs {
        let encoded = tx.to_bytes();
        bytes = bytes.saturating_add(encoded.len());
        ids.push(Hash::plain(&encoded));
    }
    if bytes > context.max_block_bytes {
        return Err(BlockError::TooLarge { bytes, max: context.max_block_bytes });
    }
    Ok(ids)
}
