//! Executing blocks: pure functions over a [`State`].
//!
//! [`apply_block`] decides whether a proposed block is valid and what it
//! changes; [`build_block`] is its mirror for proposers, choosing from
//! candidate transactions those that execute. Both run each transaction
//! through [`execute_tx`], so a builder cannot produce a block that
//! [`apply_block`] rejects for a transaction's sake.
//!
//! A block is valid only if every transaction in it executes: an invalid
//! transaction makes the whole block invalid (its proposer is faulty or
//! buggy), rather than being included as failed.

use std::collections::BTreeMap;

use jmt::storage::TreeUpdateBatch;
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    block::{Block, BlockHeader, tx_root_of_ids},
    codec,
    hash::Hash,
    keys::verifying_key,
    state::{Account, ChainRecord, ShardContext, State, StateError, StateExt, StateKey, Tip, ValidatorRecord},
    tx::{SignedTx, TxKind},
};

/// Why one transaction cannot execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TxError {
    /// The signature does not verify for the sender, or the sender is not a usable key.
    #[error("bad signature")]
    BadSignature,
    /// Signed for another network.
    #[error("wrong chain id: expected `{expected}`, got `{got}`")]
    WrongChain {
        /// This network's id.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// The sender's account lives in another shard.
    #[error("wrong shard: the sender lives in shard {sender_shard}, this is shard {shard}")]
    WrongShard {
        /// Where the sender lives.
        sender_shard: ShardId,
        /// Where it was submitted.
        shard: ShardId,
    },
    /// Not the sender's next nonce.
    #[error("bad nonce: expected {expected}, got {got}")]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The sender cannot pay amount + fee.
    #[error("insufficient funds: needs {needed} units, has {available}")]
    InsufficientFunds {
        /// Amount + fee.
        needed: Amount,
        /// The sender's balance.
        available: Amount,
    },
    /// A sum would not fit in 64 bits.
    #[error("arithmetic overflow")]
    Overflow,
    /// Transfers to other shards arrive with cross-shard receipts (not built yet).
    #[error("recipient lives in shard {to_shard}; cross-shard transfers are not supported yet")]
    CrossShard {
        /// Where the recipient lives.
        to_shard: ShardId,
    },
}

/// Why a block is invalid. Any of these means its proposer misbehaved (or a
/// peer sent garbage); none is a local fault, except [`BlockError::State`].
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// For another network.
    #[error("wrong chain id: expected `{expected}`, got `{got}`")]
    WrongChain {
        /// Ours.
        expected: String,
        /// The block's.
        got: String,
    },
    /// For another shard.
    #[error("wrong shard: expected {expected}, got {got}")]
    WrongShard {
        /// Ours.
        expected: ShardId,
        /// The block's.
        got: ShardId,
    },
    /// Not the next height.
    #[error("wrong height: expected {expected}, got {got}")]
    WrongHeight {
        /// Tip + 1.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// Does not extend the tip.
    #[error("wrong parent: expected {expected}, got {got}")]
    WrongParent {
        /// The tip's hash.
        expected: Hash,
        /// The block's parent.
        got: Hash,
    },
    /// Time went backwards.
    #[error("timestamp {got} is before the parent's {parent}")]
    TimestampBeforeParent {
        /// The parent's timestamp.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// Claims another committee.
    #[error("wrong committee hash: expected {expected}, got {got}")]
    WrongCommittee {
        /// Ours.
        expected: Hash,
        /// The block's.
        got: Hash,
    },
    /// The proposer is not on this shard's committee.
    #[error("proposer {0} is not a member of this shard's committee")]
    UnknownProposer(Address),
    /// Over the transaction count limit.
    #[error("{count} transactions exceeds the limit of {max}")]
    TooManyTxs {
        /// The block's.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Over the byte limit.
    #[error("{bytes} bytes of transactions exceeds the limit of {max}")]
    TooLarge {
        /// The block's.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction root does not match the body.
    #[error("transaction root mismatch: header {header}, body {computed}")]
    TxRootMismatch {
        /// In the header.
        header: Hash,
        /// Of the body.
        computed: Hash,
    },
    /// One transaction is invalid.
    #[error("transaction {index} ({id}): {reason}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// Its id.
        id: Hash,
        /// Why.
        reason: TxError,
    },
    /// The header's state root is not what execution produced.
    #[error("state root mismatch: header {header}, executed {computed}")]
    StateRootMismatch {
        /// In the header.
        header: Hash,
        /// What execution gave.
        computed: Hash,
    },
    /// Storage failed while executing (a local fault, not the block's).
    #[error(transparent)]
    State(#[from] StateError),
}

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
}

/// Pending changes of one block over the committed state. Reads fall
/// through to the state; writes stay here until the block is done.
struct Overlay<'s, S: State + ?Sized> {
    state: &'s S,
    accounts: BTreeMap<Address, Account>,
    validators: BTreeMap<Address, ValidatorRecord>,
}

impl<'s, S: State + ?Sized> Overlay<'s, S> {
    fn new(state: &'s S) -> Self {
        Overlay { state, accounts: BTreeMap::new(), validators: BTreeMap::new() }
    }

    fn account(&self, address: &Address) -> Result<Account, StateError> {
        match self.accounts.get(address) {
            Some(account) => Ok(*account),
            None => self.state.account(address),
        }
    }

    fn validator(&self, address: &Address) -> Result<Option<ValidatorRecord>, StateError> {
        match self.validators.get(address) {
            Some(record) => Ok(Some(*record)),
            None => self.state.validator(address),
        }
    }

    fn into_writes(self, chain: ChainRecord) -> BTreeMap<StateKey, Vec<u8>> {
        let mut writes = BTreeMap::new();
        for (address, account) in self.accounts {
            writes.insert(StateKey::Account(address), codec::encode(&account));
        }
        for (address, record) in self.validators {
            writes.insert(StateKey::Validator(address), codec::encode(&record));
        }
        writes.insert(StateKey::Chain, codec::encode(&chain));
        writes
    }
}

/// Why [`execute_tx`] did not apply a transaction: the transaction is
/// invalid (skip it, or reject the block), or something bigger broke.
enum Failure {
    Tx(TxError),
    Block(BlockError),
}

impl From<TxError> for Failure {
    fn from(e: TxError) -> Self {
        Failure::Tx(e)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::Block(BlockError::State(e))
    }
}

/// The new records one transfer produces.
struct Effects {
    sender: Account,
    to: Address,
    recipient: Account,
    proposer: ValidatorRecord,
}

/// Executes one signature-checked transaction on `overlay`, all or nothing:
/// it computes every new record first and writes only if all checks pass.
fn execute_tx<S: State + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    context: &ShardContext,
    proposer: &Address,
    tx: &SignedTx,
) -> Result<Amount, Failure> {
    let effects = transfer_effects(overlay, context, proposer, tx)?;
    overlay.accounts.insert(effects.to, effects.recipient);
    overlay.accounts.insert(tx.body.sender, effects.sender);
    overlay.validators.insert(*proposer, effects.proposer);
    Ok(tx.body.fee)
}

fn transfer_effects<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    proposer: &Address,
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
    let TxKind::Transfer { to, amount } = &body.kind;
    let to_shard = to.shard(context.shard_count);
    if to_shard != context.shard {
        return Err(TxError::CrossShard { to_shard }.into());
    }
    let mut sender = overlay.account(&body.sender)?;
    if body.nonce != sender.nonce {
        return Err(TxError::BadNonce { expected: sender.nonce, got: body.nonce }.into());
    }
    let needed = body.total_debit().ok_or(TxError::Overflow)?;
    sender.balance =
        sender.balance.checked_sub(needed).ok_or(TxError::InsufficientFunds { needed, available: sender.balance })?;
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow)?;
    // A self-transfer credits the account it just debited.
    let mut recipient = if to == &body.sender { sender } else { overlay.account(to)? };
    recipient.balance = recipient.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
    if to == &body.sender {
        sender = recipient;
    }
    let mut record = overlay.validator(proposer)?.ok_or(Failure::Block(BlockError::UnknownProposer(*proposer)))?;
    record.rewards = record.rewards.checked_add(body.fee).ok_or(TxError::Overflow)?;
    Ok(Effects { sender, to: *to, recipient, proposer: record })
}

/// Checks and executes `block` on top of `state`'s tip. `Ok` means the block
/// is valid and the [`Outcome`] is exactly what committing it writes.
pub fn apply_block<S: State + ?Sized>(state: &S, block: &Block) -> Result<Outcome, BlockError> {
    let context = state.context();
    let parent = state.tip();
    let header = &block.header;
    check_header(context, &parent, header)?;
    // Encode each transaction once: its size and id serve every check below.
    let ids = check_body(context, block)?;
    verify_signatures(&block.txs)?;

    let mut overlay = Overlay::new(state);
    let mut receipts = Vec::with_capacity(block.txs.len());
    for (index, (tx, id)) in block.txs.iter().zip(&ids).enumerate() {
        let fee = execute_tx(&mut overlay, context, &header.proposer, tx).map_err(|failure| match failure {
            Failure::Tx(reason) => BlockError::Tx { index, id: *id, reason },
            Failure::Block(e) => e,
        })?;
        receipts.push(receipt(context.shard, header.height, index, *id, fee));
    }
    let writes = overlay.into_writes(ChainRecord { height: header.height, parent: header.parent });
    let (root, tree) = state.tree_update(header.height, &writes)?;
    if root != header.state_root {
        return Err(BlockError::StateRootMismatch { header: header.state_root, computed: root });
    }
    let tip = Tip { height: header.height, hash: header.hash(), state_root: root, timestamp_ms: header.timestamp_ms };
    Ok(Outcome { tip, parent, writes, tree, receipts })
}

fn receipt(shard: ShardId, height: u64, index: usize, id: Hash, fee: Amount) -> TxReceipt {
    // Blocks hold at most `max_block_txs` (validated far below u32::MAX).
    let position = u32::try_from(index).unwrap_or(u32::MAX);
    TxReceipt { id, shard, height, position, fee }
}

fn check_header(context: &ShardContext, parent: &Tip, header: &BlockHeader) -> Result<(), BlockError> {
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
    if header.committee_hash != context.committee_hash {
        return Err(BlockError::WrongCommittee { expected: context.committee_hash, got: header.committee_hash });
    }
    if !context.committee.iter().any(|(member, _)| member == &header.proposer) {
        return Err(BlockError::UnknownProposer(header.proposer));
    }
    Ok(())
}

/// Checks the body's limits and transaction root; returns the transaction ids.
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
    let computed = tx_root_of_ids(&ids);
    if computed != block.header.tx_root {
        return Err(BlockError::TxRootMismatch { header: block.header.tx_root, computed });
    }
    Ok(ids)
}

/// Batch-verifies every signature in `txs`; on failure, finds the first bad
/// one so the error names it.
pub fn verify_signatures(txs: &[SignedTx]) -> Result<(), BlockError> {
    let bad = |index: usize, tx: &SignedTx| BlockError::Tx { index, id: tx.id(), reason: TxError::BadSignature };
    let Some(first) = txs.first() else { return Ok(()) };
    let mut keys = Vec::with_capacity(txs.len());
    for (index, tx) in txs.iter().enumerate() {
        // Weak (small-order) keys can make batch and single verification disagree.
        match verifying_key(&tx.body.sender) {
            Some(key) if !key.is_weak() => keys.push(key),
            _ => return Err(bad(index, tx)),
        }
    }
    let digests: Vec<Hash> = txs.iter().map(|tx| tx.body.signing_digest()).collect();
    let messages: Vec<&[u8]> = digests.iter().map(|d| d.0.as_slice()).collect();
    let signatures: Vec<ed25519_dalek::Signature> =
        txs.iter().map(|tx| ed25519_dalek::Signature::from_bytes(&tx.signature.0)).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    match txs.iter().enumerate().find(|(_, tx)| !tx.verify_signature()) {
        Some((index, tx)) => Err(bad(index, tx)),
        // The batch failed yet each verifies alone (only possible for crafted
        // edge cases): refuse, naming the first, rather than accept it.
        None => Err(bad(0, first)),
    }
}

/// A block a proposer built, with what committing it writes and the
/// candidates it left out (and why).
pub struct Built {
    /// The proposal.
    pub block: Block,
    /// Its execution.
    pub outcome: Outcome,
    /// Candidates that do not execute on this state.
    pub rejected: Vec<(Hash, TxError)>,
}

/// Builds the next block from `candidates`, in order, skipping those that do
/// not execute, up to the block limits. Candidates must already have valid
/// signatures (the mempool checks on admission); a bad one makes
/// [`apply_block`] reject the result.
pub fn build_block<S: State + ?Sized>(
    state: &S,
    proposer: Address,
    timestamp_ms: u64,
    candidates: impl IntoIterator<Item = SignedTx>,
) -> Result<Built, BlockError> {
    let context = state.context();
    let parent = state.tip();
    let height = parent.height.checked_add(1).ok_or(BlockError::WrongHeight { expected: u64::MAX, got: u64::MAX })?;
    let timestamp_ms = timestamp_ms.max(parent.timestamp_ms);
    let mut overlay = Overlay::new(state);
    let (mut txs, mut receipts, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0usize;
    for tx in candidates {
        if txs.len() >= context.max_block_txs {
            break;
        }
        let encoded = tx.to_bytes();
        let size = encoded.len();
        if bytes.saturating_add(size) > context.max_block_bytes {
            break;
        }
        match execute_tx(&mut overlay, context, &proposer, &tx) {
            Ok(fee) => {
                receipts.push(receipt(context.shard, height, txs.len(), Hash::plain(&encoded), fee));
                bytes = bytes.saturating_add(size);
                txs.push(tx);
            }
            Err(Failure::Tx(reason)) => rejected.push((tx.id(), reason)),
            Err(Failure::Block(e)) => return Err(e),
        }
    }
    let writes = overlay.into_writes(ChainRecord { height, parent: parent.hash });
    let (state_root, tree) = state.tree_update(height, &writes)?;
    let header = BlockHeader {
        chain_id: context.chain_id.clone(),
        shard: context.shard,
        height,
        parent: parent.hash,
        proposer,
        timestamp_ms,
        tx_root: tx_root_of_ids(&receipts.iter().map(|r| r.id).collect::<Vec<_>>()),
        state_root,
        committee_hash: context.committee_hash,
    };
    let tip = Tip { height, hash: header.hash(), state_root, timestamp_ms };
    let outcome = Outcome { tip, parent, writes, tree, receipts };
    Ok(Built { block: Block { header, txs }, outcome, rejected })
}
