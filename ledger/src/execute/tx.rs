//! Executing one transaction on the [`Overlay`], and checking the
//! signatures of a block's transactions in one batch.

use ed25519_dalek::VerifyingKey;

use crate::{
    address::Address,
    amount::Amount,
    hash::Hash,
    keys::verifying_key,
    receipt, stake,
    state::{Account, ShardContext, State, ValidatorRecord},
    tx::{SignedTx, TxBody, TxKind},
};

use super::{
    BlockError, TxError,
    error::Failure,
    overlay::Overlay,
    stake::{self as execute_stake, StakeChange},
};

/// The new records one transaction produces.
struct Effects {
    sender: Account,
    /// The recipient's new record, if a transfer credits one on this shard.
    recipient: Option<(Address, Account)>,
    /// A bond's or unbond's records.
    stake: Option<StakeChange>,
    proposer: ValidatorRecord,
    /// Base fees burned so far, with this transaction's.
    burned: Amount,
}

/// Executes one signature-checked transaction on `overlay`, in the block
/// at `height`, all or nothing: it computes every new record first and
/// writes only if all checks pass.
pub(super) fn execute_tx<S: State + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    context: &ShardContext,
    proposer: &Address,
    height: u64,
    tx: &SignedTx,
) -> Result<(), Failure> {
    let effects = effects(overlay, context, proposer, height, tx)?;
    if let Some((to, recipient)) = effects.recipient {
        overlay.accounts.insert(to, recipient);
    }
    overlay.accounts.insert(tx.body.sender, effects.sender);
    if let Some(change) = effects.stake {
        overlay.apply_stake(change);
    }
    overlay.validators.insert(*proposer, effects.proposer);
    overlay.fees.burned = effects.burned;
    overlay.txs = overlay.txs.saturating_add(1);
    Ok(())
}

/// Whether `body` may still be included by a block at `height` charging
/// `base_fee`: not past its expiry, and paying at least the base fee. The
/// mempool checks the same at admission.
pub fn check_payable(body: &TxBody, height: u64, base_fee: Amount) -> Result<(), TxError> {
    if let Some(expires_at) = body.expires_at.filter(|_| body.expired_at(height)) {
        return Err(TxError::Expired { expires_at, height });
    }
    if body.fee < base_fee {
        return Err(TxError::FeeBelowBase { fee: body.fee, base_fee });
    }
    Ok(())
}

fn effects<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    proposer: &Address,
    height: u64,
    tx: &SignedTx,
) -> Result<Effects, Failure> {
    let body = &tx.body;
    if body.chain_id != context.chain_id {
        return Err(TxError::WrongChain { expected: context.chain_id.clone(), got: body.chain_id.clone() }.into());
    }
    let sender_shard = body.sender.shard(context.shard_count);
    if sender_shard != context.shard {
        return Err(TxError::WrongShard { sender_shard, shard: context.shard }.into());
    }
    let base_fee = overlay.fees.base_fee;
    check_payable(body, height, base_fee)?;
    stake::check_static(context, body)?;
    let mut sender = overlay.account(&body.sender)?;
    if body.nonce != sender.nonce {
        return Err(TxError::BadNonce { expected: sender.nonce, got: body.nonce }.into());
    }
    let needed = body.total_debit().ok_or(TxError::Overflow)?;
    sender.balance =
        sender.balance.checked_sub(needed).ok_or(TxError::InsufficientFunds { needed, available: sender.balance })?;
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow)?;
    let (recipient, stake) = match &body.kind {
        TxKind::Transfer { to, amount } => (credit(overlay, context, tx, &mut sender, to, *amount)?, None),
        TxKind::Bond { validator, amount, p2p_key, .. } => {
            (None, Some(execute_stake::bond(overlay, context, &body.sender, validator, *amount, *p2p_key)?))
        }
        TxKind::Unbond { validator, amount } => {
            (None, Some(execute_stake::unbond(overlay, context, &body.sender, validator, *amount, height)?))
        }
    };
    // A proposer that bonds to itself in its own block: its record as the
    // bond leaves it, plus the tip.
    let mut record = match stake.as_ref().and_then(|change| change.record_of(proposer)) {
        Some(record) => record,
        None => overlay.validator(proposer)?.ok_or(Failure::Block(BlockError::UnknownProposer(*proposer)))?,
    };
    // The base fee is burned; the proposer earns the rest (the tip).
    let tip = body.fee.checked_sub(base_fee).ok_or(TxError::Overflow)?;
    record.rewards = record.rewards.checked_add(tip).ok_or(TxError::Overflow)?;
    let burned = overlay.fees.burned.checked_add(base_fee).ok_or(TxError::Overflow)?;
    Ok(Effects { sender, recipient, stake, proposer: record, burned })
}

/// A transfer's credit of `amount` to `to`: the recipient's new record if
/// it lives on this shard and is not the sender (whose own record takes a
/// self-transfer), `None` if its shard credits it against a receipt.
fn credit<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    tx: &SignedTx,
    sender: &mut Account,
    to: &Address,
    amount: Amount,
) -> Result<Option<(Address, Account)>, Failure> {
    if receipt::dest_shard(tx, context.shard, context.shard_count).is_some() {
        // Credited by the recipient's shard, against the receipt this emits.
        return Ok(None);
    }
    if to == &tx.body.sender {
        // A self-transfer credits the account it just debited.
        sender.balance = sender.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        return Ok(None);
    }
    let mut recipient = overlay.account(to)?;
    recipient.balance = recipient.balance.checked_add(amount).ok_or(TxError::Overflow)?;
    Ok(Some((*to, recipient)))
}

/// Batch-verifies every signature in `txs`; on failure, finds the first bad
/// one so the error names it.
pub fn verify_signatures(txs: &[SignedTx]) -> Result<(), BlockError> {
    verify_signatures_with(txs, verifying_key)
}

/// [`verify_signatures`] with the senders' keys from `key` (a cache of
/// decompressed keys: decompressing one costs about a third of a
/// verification), `None` for bytes that are no curve point.
pub fn verify_signatures_with(
    txs: &[SignedTx],
    key: impl FnMut(&Address) -> Option<VerifyingKey>,
) -> Result<(), BlockError> {
    let indexed: Vec<(usize, &SignedTx)> = txs.iter().enumerate().collect();
    verify_indexed(&indexed, key)
}

/// [`verify_signatures_with`] of some of a block's transactions, each with
/// its index in the block (which an error names).
pub(super) fn verify_indexed(
    txs: &[(usize, &SignedTx)],
    mut key: impl FnMut(&Address) -> Option<VerifyingKey>,
) -> Result<(), BlockError> {
    let bad = |index: usize, tx: &SignedTx| BlockError::Tx { index, id: tx.id(), reason: TxError::BadSignature };
    let Some(&(first_index, first)) = txs.first() else { return Ok(()) };
    let mut keys = Vec::with_capacity(txs.len());
    for &(index, tx) in txs {
        // Weak (small-order) keys can make batch and single verification disagree.
        match key(&tx.body.sender) {
            Some(key) if !key.is_weak() => keys.push(key),
            _ => return Err(bad(index, tx)),
        }
    }
    let digests: Vec<Hash> = txs.iter().map(|(_, tx)| tx.body.signing_digest()).collect();
    let messages: Vec<&[u8]> = digests.iter().map(|d| d.0.as_slice()).collect();
    let signatures: Vec<ed25519_dalek::Signature> =
        txs.iter().map(|(_, tx)| ed25519_dalek::Signature::from_bytes(&tx.signature.0)).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    match txs.iter().find(|(_, tx)| !tx.verify_signature()) {
        Some(&(index, tx)) => Err(bad(index, tx)),
        // The batch failed yet each verifies alone (only possible for crafted
        // edge cases): refuse, naming the first, rather than accept it.
        None => Err(bad(first_index, first)),
    }
}
