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
//!
//! A block first executes the equivocation evidence it carries (slashing
//! and jailing, see [`crate::slashing`]), then credits the receipts it
//! carries from other shards (each batch fully verified, each receipt id at
//! most once per shard, ever), then runs its transactions, and finally pays
//! its proposer the block reward. A transfer to another shard debits the
//! sender and emits a [`Receipt`] instead of crediting anyone here (see
//! [`crate::receipt`]).
//!
//! The committee that must certify a block, which its header names and
//! whose active members alone may propose it, is the one of the state it
//! extends ([`crate::committee::current`]).

use std::collections::BTreeMap;

use jmt::storage::TreeUpdateBatch;
use palisade_consensus::{Committee, Evidence};
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    block::{Block, BlockHeader, tx_root_of_ids},
    codec, committee,
    hash::Hash,
    keys::verifying_key,
    receipt::{self, Applied, Receipt, ReceiptBatch, ReceiptError},
    slashing::{self, EvidenceRefused, MAX_BLOCK_EVIDENCE, SlashRecord, Slashings},
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
    /// The proposer is not an active (unjailed) member of this shard's committee.
    #[error("proposer {0} is not an active member of this shard's committee")]
    UnknownProposer(Address),
    /// Paying the block reward would overflow 64 bits.
    #[error("the block reward overflows 64 bits")]
    RewardOverflow,
    /// More evidence than a block may carry.
    #[error("{count} pieces of evidence exceeds the limit of {max}")]
    TooMuchEvidence {
        /// The block's.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The header's evidence root is not that of the evidence the block carries.
    #[error("evidence root mismatch: header {header}, body {computed}")]
    EvidenceRootMismatch {
        /// In the header.
        header: Hash,
        /// Of the body.
        computed: Hash,
    },
    /// A piece of evidence may not be executed.
    #[error("evidence {index}: {reason}")]
    Evidence {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: EvidenceRefused,
    },
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
    /// The incoming receipt batches are over the byte limit (the genesis
    /// `max_block_bytes`, on top of the transactions').
    #[error("{bytes} bytes of incoming receipts exceeds the limit of {max}")]
    ReceiptsTooLarge {
        /// The block's.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More receipts than a block may credit.
    #[error("{count} incoming receipts exceeds the limit of {max}")]
    TooManyReceipts {
        /// The block's.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Receipt batches not in strictly increasing (source shard, height) order.
    #[error("incoming receipt batches are not in canonical order")]
    UnorderedReceipts,
    /// A receipt batch does not verify.
    #[error("receipts from shard {source_shard} height {source_height}: {reason}")]
    Receipt {
        /// The batch's source shard.
        source_shard: ShardId,
        /// The batch's source height.
        source_height: u64,
        /// Why.
        reason: ReceiptError,
    },
    /// A receipt this shard already credited.
    #[error("receipt {0} was already credited")]
    ReceiptReplay(Hash),
    /// Crediting a receipt would overflow the recipient's balance.
    #[error("receipt {0} overflows its recipient's balance")]
    ReceiptOverflow(Hash),
    /// The header's receipts root is not that of the receipts the block emits.
    #[error("receipts root mismatch: header {header}, body {computed}")]
    ReceiptsRootMismatch {
        /// In the header.
        header: Hash,
        /// Of the body.
        computed: Hash,
    },
    /// The header's inbound root is not that of the batches the block carries.
    #[error("inbound root mismatch: header {header}, body {computed}")]
    InboundRootMismatch {
        /// In the header.
        header: Hash,
        /// Of the body.
        computed: Hash,
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

/// Pending changes of one block over the committed state. Reads fall
/// through to the state; writes stay here until the block is done.
struct Overlay<'s, S: State + ?Sized> {
    state: &'s S,
    accounts: BTreeMap<Address, Account>,
    validators: BTreeMap<Address, ValidatorRecord>,
    applied: BTreeMap<Hash, Applied>,
    slashed: BTreeMap<Address, SlashRecord>,
    /// The chain record so far: the parent's, plus this block's rewards and burns.
    chain: ChainRecord,
}

impl<'s, S: State + ?Sized> Overlay<'s, S> {
    fn new(state: &'s S) -> Result<Self, StateError> {
        Ok(Overlay {
            state,
            accounts: BTreeMap::new(),
            validators: BTreeMap::new(),
            applied: BTreeMap::new(),
            slashed: BTreeMap::new(),
            chain: state.chain()?,
        })
    }

    /// Executes `evidence` in the block at `height` certified by
    /// `committee`: burns, jails and records, all or nothing.
    fn slash(
        &mut self,
        context: &ShardContext,
        committee: &Committee,
        height: u64,
        evidence: &Evidence,
    ) -> Result<Result<(), EvidenceRefused>, StateError> {
        let offender = match slashing::check(context, committee, height, evidence) {
            Ok(address) => address,
            Err(refused) => return Ok(Err(refused)),
        };
        let Some(mut record) = self.validator(&offender)? else {
            return Ok(Err(EvidenceRefused::Invalid(format!("{offender} has no validator record"))));
        };
        if record.jailed {
            return Ok(Err(EvidenceRefused::AlreadyJailed(offender)));
        }
        // Someone active at the block's start, neither this offender nor
        // one this block already jailed, must remain.
        let still_active = committee.validators().iter().any(|v| {
            let member = Address(v.public_key);
            v.stake > 0 && member != offender && !self.slashed.contains_key(&member)
        });
        if !still_active {
            return Ok(Err(EvidenceRefused::LastActive(offender)));
        }
        let burned = slashing::burned(record.stake, context.slash_fraction_bps);
        let (Some(stake), Some(total_burned)) =
            (record.stake.checked_sub(burned), self.chain.burned.checked_add(burned))
        else {
            return Ok(Err(EvidenceRefused::Invalid("burn overflows".into())));
        };
        record.stake = stake;
        record.jailed = true;
        self.chain.burned = total_burned;
        let (offence, view, phase) = evidence.slot();
        let slash = SlashRecord {
            height: offence,
            view,
            phase,
            included_at: height,
            burned,
            evidence: slashing::evidence_hash(evidence),
        };
        self.validators.insert(offender, record);
        self.slashed.insert(offender, slash);
        Ok(Ok(()))
    }

    /// Pays `proposer` the block reward.
    fn reward(&mut self, context: &ShardContext, proposer: &Address) -> Result<(), BlockError> {
        let mut record = self.validator(proposer)?.ok_or(BlockError::UnknownProposer(*proposer))?;
        record.rewards = record.rewards.checked_add(context.block_reward).ok_or(BlockError::RewardOverflow)?;
        self.chain.minted = self.chain.minted.checked_add(context.block_reward).ok_or(BlockError::RewardOverflow)?;
        self.validators.insert(*proposer, record);
        Ok(())
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

    fn is_applied(&self, id: &Hash) -> Result<bool, StateError> {
        Ok(self.applied.contains_key(id) || self.state.applied(id)?.is_some())
    }

    /// Credits `batch`'s receipts at `height`, all or nothing: fails on the
    /// first receipt already credited (here or earlier) or that overflows.
    fn credit(&mut self, batch: &ReceiptBatch, height: u64) -> Result<(), BlockError> {
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

    /// The block's writes, with the chain record of `height` on `parent`,
    /// and the validators it slashed.
    fn into_writes(mut self, height: u64, parent: Hash) -> (BTreeMap<StateKey, Vec<u8>>, Slashings) {
        self.chain.height = height;
        self.chain.parent = parent;
        let mut writes = BTreeMap::new();
        for (address, account) in self.accounts {
            writes.insert(StateKey::Account(address), codec::encode(&account));
        }
        for (address, record) in self.validators {
            writes.insert(StateKey::Validator(address), codec::encode(&record));
        }
        for (id, applied) in self.applied {
            writes.insert(StateKey::Applied(id), codec::encode(&applied));
        }
        for (address, record) in &self.slashed {
            writes.insert(StateKey::Slashed(*address), codec::encode(record));
        }
        writes.insert(StateKey::Chain, codec::encode(&self.chain));
        (writes, self.slashed.into_iter().collect())
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
    /// The recipient's new record, if it lives on this shard.
    recipient: Option<(Address, Account)>,
    proposer: ValidatorRecord,
}

/// Executes one signature-checked transaction on `overlay`, all or nothing:
/// it computes every new record first and writes only if all checks pass.
fn execute_tx<S: State + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    context: &ShardContext,
    proposer: &Address,
    tx: &SignedTx,
) -> Result<(), Failure> {
    let effects = transfer_effects(overlay, context, proposer, tx)?;
    if let Some((to, recipient)) = effects.recipient {
        overlay.accounts.insert(to, recipient);
    }
    overlay.accounts.insert(tx.body.sender, effects.sender);
    overlay.validators.insert(*proposer, effects.proposer);
    Ok(())
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
    let mut sender = overlay.account(&body.sender)?;
    if body.nonce != sender.nonce {
        return Err(TxError::BadNonce { expected: sender.nonce, got: body.nonce }.into());
    }
    let needed = body.total_debit().ok_or(TxError::Overflow)?;
    sender.balance =
        sender.balance.checked_sub(needed).ok_or(TxError::InsufficientFunds { needed, available: sender.balance })?;
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow)?;
    let recipient = if receipt::dest_shard(tx, context.shard, context.shard_count).is_some() {
        // Credited by the recipient's shard, against the receipt this emits.
        None
    } else if to == &body.sender {
        // A self-transfer credits the account it just debited.
        sender.balance = sender.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
        None
    } else {
        let mut recipient = overlay.account(to)?;
        recipient.balance = recipient.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
        Some((*to, recipient))
    };
    let mut record = overlay.validator(proposer)?.ok_or(Failure::Block(BlockError::UnknownProposer(*proposer)))?;
    record.rewards = record.rewards.checked_add(body.fee).ok_or(TxError::Overflow)?;
    Ok(Effects { sender, recipient, proposer: record })
}

/// Checks and executes `block` on top of `state`'s tip. `Ok` means the block
/// is valid and the [`Outcome`] is exactly what committing it writes.
pub fn apply_block<S: State + ?Sized>(state: &S, block: &Block) -> Result<Outcome, BlockError> {
    let context = state.context();
    let parent = state.tip();
    let header = &block.header;
    let committee = committee::current(state)?;
    check_header(context, &committee, &parent, header)?;
    // Encode each transaction once: its size and id serve every check below.
    let ids = check_body(context, block)?;
    check_evidence_list(block)?;
    verify_signatures(&block.txs)?;
    check_incoming(context, block)?;

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
        execute_tx(&mut overlay, context, &header.proposer, tx).map_err(|failure| match failure {
            Failure::Tx(reason) => BlockError::Tx { index, id: *id, reason },
            Failure::Block(e) => e,
        })?;
        receipts.push(receipt(context, header.height, index, *id, tx, &mut outgoing));
    }
    let computed = receipt::receipts_root(&outgoing);
    if computed != header.receipts_root {
        return Err(BlockError::ReceiptsRootMismatch { header: header.receipts_root, computed });
    }
    overlay.reward(context, &header.proposer)?;
    let (writes, slashed) = overlay.into_writes(header.height, header.parent);
    let (root, tree) = state.tree_update(header.height, &writes)?;
    if root != header.state_root {
        return Err(BlockError::StateRootMismatch { header: header.state_root, computed: root });
    }
    let tip = Tip { height: header.height, hash: header.hash(), state_root: root, timestamp_ms: header.timestamp_ms };
    Ok(Outcome { tip, parent, writes, tree, receipts, outgoing, slashed })
}

/// Checks the incoming receipt batches: within the limit, in canonical
/// order, each verified against its source shard's committee, and the
/// header's inbound root.
fn check_incoming(context: &ShardContext, block: &Block) -> Result<(), BlockError> {
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
    for batch in &block.incoming {
        verify_batch(context, batch)?;
    }
    let computed = receipt::inbound_root_of(&block.incoming, &encoded);
    if computed != block.header.inbound_root {
        return Err(BlockError::InboundRootMismatch { header: block.header.inbound_root, computed });
    }
    Ok(())
}

/// Verifies one batch for this shard.
pub fn verify_batch(context: &ShardContext, batch: &ReceiptBatch) -> Result<(), BlockError> {
    batch.verify(&context.chain_id, &context.committees, context.shard_count, context.shard).map_err(|reason| {
        let (source_shard, source_height) = batch.source();
        BlockError::Receipt { source_shard, source_height, reason }
    })
}

/// The index entry of executed `tx`; a cross-shard one's receipt goes to `outgoing`.
fn receipt(
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

/// The evidence list's size and root (its content is checked as it executes).
fn check_evidence_list(block: &Block) -> Result<(), BlockError> {
    let count = block.evidence.len();
    if count > MAX_BLOCK_EVIDENCE {
        return Err(BlockError::TooMuchEvidence { count, max: MAX_BLOCK_EVIDENCE });
    }
    let computed = slashing::evidence_root(&block.evidence);
    if computed != block.header.evidence_root {
        return Err(BlockError::EvidenceRootMismatch { header: block.header.evidence_root, computed });
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
    /// Candidate evidence the block may not carry, by [`slashing::evidence_hash`].
    pub refused_evidence: Vec<(Hash, EvidenceRefused)>,
}

/// What a proposer offers [`build_block`] besides its transactions.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Receipt batches from other shards (verified on admission).
    pub incoming: Vec<ReceiptBatch>,
    /// Equivocation evidence against this shard's committee.
    pub evidence: Vec<Evidence>,
}

/// Receipt batches only, no evidence.
impl From<Vec<ReceiptBatch>> for Extras {
    fn from(incoming: Vec<ReceiptBatch>) -> Self {
        Extras { incoming, evidence: Vec::new() }
    }
}

/// Builds the next block: first the pieces of evidence that may execute (up
/// to [`MAX_BLOCK_EVIDENCE`]), then the receipts of `extras.incoming` not
/// yet credited (in canonical order, up to the receipt limit), then
/// `candidates`, in order, skipping those that do not execute, up to the
/// block limits. Candidates must already have valid signatures and batches
/// must already verify (the mempool and the receipt pool check on
/// admission); a bad one makes [`apply_block`] reject the result.
pub fn build_block<S: State + ?Sized>(
    state: &S,
    proposer: Address,
    timestamp_ms: u64,
    extras: impl Into<Extras>,
    candidates: impl IntoIterator<Item = SignedTx>,
) -> Result<Built, BlockError> {
    let extras = extras.into();
    let context = state.context();
    let parent = state.tip();
    let height = parent.height.checked_add(1).ok_or(BlockError::WrongHeight { expected: u64::MAX, got: u64::MAX })?;
    let timestamp_ms = timestamp_ms.max(parent.timestamp_ms);
    let committee = committee::current(state)?;
    if !committee::is_active_member(&committee, &proposer) {
        return Err(BlockError::UnknownProposer(proposer));
    }
    let mut overlay = Overlay::new(state)?;
    let (mut evidence, mut refused_evidence) = (Vec::new(), Vec::new());
    for candidate in extras.evidence {
        if evidence.len() >= MAX_BLOCK_EVIDENCE {
            break;
        }
        match overlay.slash(context, &committee, height, &candidate)? {
            Ok(()) => evidence.push(candidate),
            Err(reason) => refused_evidence.push((slashing::evidence_hash(&candidate), reason)),
        }
    }
    let incoming = select_incoming(&mut overlay, context, height, extras.incoming)?;
    let (mut txs, mut receipts, mut rejected, mut outgoing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
            Ok(()) => {
                receipts.push(receipt(context, height, txs.len(), Hash::plain(&encoded), &tx, &mut outgoing));
                bytes = bytes.saturating_add(size);
                txs.push(tx);
            }
            Err(Failure::Tx(reason)) => rejected.push((tx.id(), reason)),
            Err(Failure::Block(e)) => return Err(e),
        }
    }
    overlay.reward(context, &proposer)?;
    let (writes, slashed) = overlay.into_writes(height, parent.hash);
    let (state_root, tree) = state.tree_update(height, &writes)?;
    let header = BlockHeader {
        chain_id: context.chain_id.clone(),
        shard: context.shard,
        height,
        parent: parent.hash,
        proposer,
        timestamp_ms,
        tx_root: tx_root_of_ids(&receipts.iter().map(|r| r.id).collect::<Vec<_>>()),
        receipts_root: receipt::receipts_root(&outgoing),
        inbound_root: receipt::inbound_root(&incoming),
        evidence_root: slashing::evidence_root(&evidence),
        state_root,
        committee_hash: Hash(committee.hash()),
    };
    let tip = Tip { height, hash: header.hash(), state_root, timestamp_ms };
    let outcome = Outcome { tip, parent, writes, tree, receipts, outgoing, slashed };
    Ok(Built { block: Block { header, txs, incoming, evidence }, outcome, rejected, refused_evidence })
}

/// Credits on `overlay` the receipts of `candidates` this shard has not yet
/// credited, in canonical order, at most `max_block_receipts` of them in at
/// most `max_block_bytes`; returns the batches as the block carries them.
/// Batches with nothing left to credit, and a second batch from one source
/// block, are dropped.
fn select_incoming<S: State + ?Sized>(
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
