//! A block's header: what consensus agrees on and certificates sign (via
//! its hash). It commits to everything in the block (parent,
//! transactions, receipts out and in, evidence, resulting state,
//! committee); see [`crate::block`] for the body.

use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    codec,
    hash::{Hash, domain},
};

/// What consensus agrees on and certificates sign (via its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The network.
    pub chain_id: String,
    /// The shard whose chain this block extends.
    pub shard: ShardId,
    /// 1 for the first block after genesis.
    pub height: u64,
    /// Hash of the previous header; the genesis hash at height 1.
    pub parent: Hash,
    /// The committee member who proposed it; receives the fees.
    pub proposer: Address,
    /// Proposer's wall clock, ms since the Unix epoch; never below the parent's.
    pub timestamp_ms: u64,
    /// Merkle root over the transaction ids, in block order.
    pub tx_root: Hash,
    /// Merkle root over the cross-shard receipts the transactions emit
    /// ([`crate::receipt::receipts_root`]).
    pub receipts_root: Hash,
    /// Hash of the receipt batches the block credits
    /// ([`crate::receipt::inbound_root`]).
    pub inbound_root: Hash,
    /// Hash of the equivocation evidence the block executes
    /// ([`crate::slashing::evidence_root`]).
    pub evidence_root: Hash,
    /// Root of the shard's state tree after this block.
    pub state_root: Hash,
    /// Hash of the committee that must certify this block.
    pub committee_hash: Hash,
    /// If this block closes an epoch (staking on): the hash of the next
    /// epoch's committee ([`crate::stake::CommitteeRecord`]), which this
    /// block's certificate thereby hands over to; else zero. Whoever trusts
    /// this block's committee learns the next one from the header alone
    /// ([`crate::committee::verify_handover`]).
    pub next_committee_hash: Hash,
}

impl BlockHeader {
    /// The block's identity.
    pub fn hash(&self) -> Hash {
        Hash::digest(domain::BLOCK_HEADER, &codec::encode(self))
    }
}
