//! Why a transaction or a block is refused: [`TxError`] for one
//! transaction, [`BlockError`] for a block (wrapping a transaction's).

use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    hash::Hash,
    receipt_proof::ReceiptError,
    slashing::EvidenceRefused,
    state::StateError,
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
    /// Past its expiry: a block at `height` may not include it.
    #[error("expired: its last height was {expires_at}, the block is at {height}")]
    Expired {
        /// Its last height.
        expires_at: u64,
        /// The height it was checked for.
        height: u64,
    },
    /// The fee does not cover the shard's base fee ([`crate::fee`]).
    #[error("fee of {fee} units is below the shard's base fee of {base_fee} units")]
    FeeBelowBase {
        /// The transaction's fee.
        fee: Amount,
        /// The base fee of the block it was checked for.
        base_fee: Amount,
    },
    /// A bond or unbond breaks a staking rule ([`crate::stake`]).
    #[error("{0}")]
    Stake(#[from] crate::stake::StakeError),
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
    /// The proposer is benched for failing its recent turns
    /// ([`crate::rotation`]): no view of this height is its to lead.
    #[error("proposer {0} is benched from the leader rotation")]
    BenchedProposer(Address),
    /// Paying the block reward would overflow 64 bits.
    #[error("the block reward overflows 64 bits")]
    RewardOverflow,
    /// Paying out matured unbondings would overflow 64 bits.
    #[error("paying out unbonded stake overflows 64 bits")]
    StakeOverflow,
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
    /// The header's next committee is not the one the end of its epoch
    /// chose (or a block that closes no epoch names one).
    #[error("next committee mismatch: header {header}, executed {computed}")]
    NextCommitteeMismatch {
        /// In the header.
        header: Hash,
        /// What execution gave.
        computed: Hash,
    },
    /// Storage failed while executing (a local fault, not the block's).
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why `execute_tx` did not apply a transaction: the transaction is
/// invalid (skip it, or reject the block), or something bigger broke.
pub(super) enum Failure {
    Tx(TxError),
    Block(BlockError),
}

impl From<TxError> for Failure {
    fn from(e: TxError) -> Self {
        Failure::Tx(e)
    }
}

impl From<crate::stake::StakeError> for Failure {
    fn from(e: crate::stake::StakeError) -> Self {
        Failure::Tx(TxError::Stake(e))
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::Block(BlockError::State(e))
    }
}
