//! What a shard's state holds, and the trait execution reads it through.
//!
//! State is a map from [`StateKey`] to an encoded value, committed to by a
//! Jellyfish Merkle tree (see [`crate::tree`]). Execution is pure over the
//! [`State`] trait, so the same code runs against RocksDB in a node and
//! against memory in tests and the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use jmt::storage::TreeUpdateBatch;
use palisade_consensus::{Committee, Phase};
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    codec,
    hash::Hash,
};

/// Every shard's committee, by shard: what certificates of other shards are
/// checked against.
pub type Committees = Arc<BTreeMap<ShardId, Committee>>;

/// Where and when the destination credited a receipt: the value of
/// [`crate::state::StateKey::Applied`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The destination height whose block credited it.
    pub height: u64,
    /// The source shard.
    pub source_shard: ShardId,
    /// The source height.
    pub source_height: u64,
}

/// The value of [`crate::state::StateKey::Slashed`]: the offence a
/// validator was punished for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashRecord {
    /// Height of the conflicting votes.
    pub height: u64,
    /// Their view.
    pub view: u64,
    /// Their phase.
    pub phase: Phase,
    /// The block that executed the evidence; the validator is out of the
    /// committee from the next height.
    pub included_at: u64,
    /// Stake burned.
    pub burned: Amount,
    /// [`crate::slashing::evidence_hash`] of the evidence.
    pub evidence: Hash,
}

/// Largest encoded state value we ever read back (the candidate list,
/// 128 addresses, is the largest).
pub const MAX_STATE_VALUE_BYTES: usize = 8 * 1024;

/// A user account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable units.
    pub balance: Amount,
    /// Transactions executed from this account; the next must carry this nonce.
    pub nonce: u64,
}

/// A committee member, kept in the state of the shard whose committee it sits on
/// (not the shard its address maps to: stake and rewards belong to the committee).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorRecord {
    /// Bonded units; what quorums weigh and slashing burns.
    pub stake: Amount,
    /// Fees and block rewards earned as proposer.
    pub rewards: Amount,
    /// Removed from the committee for a proven equivocation (for good; see
    /// [`crate::slashing`]).
    pub jailed: bool,
}

/// Where the chain stands, written by every block so each block has a
/// non-empty write set and the state root binds the height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// Height of the block that wrote this.
    pub height: u64,
    /// That block's parent hash.
    pub parent: Hash,
    /// Block rewards created on this shard so far.
    pub minted: Amount,
    /// Stake burned by slashing on this shard so far.
    pub burned: Amount,
}

/// A key in a shard's state tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StateKey {
    /// An [`Account`].
    Account(Address),
    /// A [`ValidatorRecord`].
    Validator(Address),
    /// The [`ChainRecord`].
    Chain,
    /// A cross-shard receipt this shard credited ([`Applied`]).
    Applied(Hash),
    /// The offence a committee member was slashed for ([`SlashRecord`]).
    Slashed(Address),
    /// A committee member's failed turns as leader
    /// ([`crate::rotation::BenchRecord`]). Last, so the keys before it keep
    /// their encoding.
    Bench(Address),
    /// The shard's fee market ([`crate::fee::FeeRecord`]).
    Fees,
    /// A bonded validator's staking facts ([`crate::stake::StakeRecord`]).
    Stake(Address),
    /// The validators bonded on this shard, in address order (a
    /// `Vec<Address>` of at most [`crate::stake::MAX_CANDIDATES`]).
    Candidates,
    /// The committee of an epoch ([`crate::stake::CommitteeRecord`]),
    /// kept after it so that evidence of an offence in it can be judged.
    Committee(u64),
}

impl StateKey {
    /// The key's position in the tree.
    pub fn key_hash(&self) -> jmt::KeyHash {
        jmt::KeyHash(Hash::digest(crate::hash::domain::STATE_KEY, &codec::encode(self)).0)
    }
}

/// The last committed block of a shard (height 0 is genesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// Height; 0 is genesis.
    pub height: u64,
    /// Header hash; the genesis hash at height 0.
    pub hash: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Its timestamp.
    pub timestamp_ms: u64,
}

/// The fixed facts about a shard execution needs (from genesis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardContext {
    /// The network.
    pub chain_id: String,
    /// This shard.
    pub shard: ShardId,
    /// Shards in the network.
    pub shard_count: u32,
    /// The shard's genesis committee; the current one is it minus the
    /// jailed ([`crate::committee::current`]).
    pub genesis_committee: Committee,
    /// Every shard's committee, which other shards' receipts are checked against.
    pub committees: Committees,
    /// Most receipts from other shards one block credits.
    pub max_block_receipts: usize,
    /// Most transactions in one block.
    pub max_block_txs: usize,
    /// Most encoded bytes of transactions in one block.
    pub max_block_bytes: usize,
    /// Fraction of an equivocator's stake burned, in basis points.
    pub slash_fraction_bps: u32,
    /// Paid to each block's proposer on top of the fees.
    pub block_reward: Amount,
    /// Evidence of an offence this many blocks old is still accepted.
    pub evidence_window_blocks: u64,
    /// The base fee's bounds and target ([`crate::fee`]).
    pub fees: crate::fee::FeeParams,
    /// The staking rules; `None`: staking is off ([`crate::stake`]).
    pub staking: Option<crate::stake::StakingParams>,
}

/// A storage failure. Fatal to a node: state it cannot read is state it
/// cannot vouch for.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The store returned bytes that do not decode: corruption.
    #[error("corrupt state value for {key:?}: {reason}")]
    Corrupt {
        /// Which key.
        key: StateKey,
        /// What was wrong.
        reason: String,
    },
}

/// Read access to a shard's committed state, plus the ability to compute
/// the tree update for a write set on top of it.
pub trait State {
    /// The shard's fixed facts.
    fn context(&self) -> &ShardContext;
    /// The last committed block.
    fn tip(&self) -> Tip;
    /// The encoded value at `key` as of the tip.
    fn get_raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError>;
    /// The root and tree changes after writing `writes` at `version` (the
    /// next height) on top of the tip. Writes nothing.
    fn tree_update(
        &self,
        version: u64,
        writes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<(Hash, TreeUpdateBatch), StateError>;
}

/// Implements [`State`] for a wrapper type by forwarding every call to its
/// field that is one (the node's RocksDB chain and the simulator's
/// in-memory store wrap a state so).
#[macro_export]
macro_rules! forward_state {
    ($wrapper:ty, $field:ident) => {
        impl $crate::state::State for $wrapper {
            fn context(&self) -> &$crate::state::ShardContext {
                $crate::state::State::context(&self.$field)
            }

            fn tip(&self) -> $crate::state::Tip {
                $crate::state::State::tip(&self.$field)
            }

            fn get_raw(
                &self,
                key: &$crate::state::StateKey,
            ) -> ::std::result::Result<::std::option::Option<::std::vec::Vec<u8>>, $crate::state::StateError> {
                $crate::state::State::get_raw(&self.$field, key)
            }

            fn tree_update(
                &self,
                version: u64,
                writes: &::std::collections::BTreeMap<$crate::state::StateKey, ::std::vec::Vec<u8>>,
            ) -> ::std::result::Result<($crate::Hash, $crate::state::TreeUpdateBatch), $crate::state::StateError> {
                $crate::state::State::tree_update(&self.$field, version, writes)
            }
        }
    };
}

/// Typed reads on any [`State`].
pub trait StateExt: State {
    /// The account at `address` (zero if it never received anything).
    fn account(&self, address: &Address) -> Result<Account, StateError> {
        self.get_typed(&StateKey::Account(*address)).map(Option::unwrap_or_default)
    }
    /// The validator record of `address`, if it is on this shard's committee.
    fn validator(&self, address: &Address) -> Result<Option<ValidatorRecord>, StateError> {
        self.get_typed(&StateKey::Validator(*address))
    }
    /// The chain record: height and money created and destroyed so far.
    fn chain(&self) -> Result<ChainRecord, StateError> {
        self.get_typed(&StateKey::Chain).map(Option::unwrap_or_default)
    }
    /// What `address` was slashed for, if it was.
    fn slashed(&self, address: &Address) -> Result<Option<SlashRecord>, StateError> {
        self.get_typed(&StateKey::Slashed(*address))
    }
    /// The failed turns as leader of committee member `address`, if it has any.
    fn bench(&self, address: &Address) -> Result<Option<crate::rotation::BenchRecord>, StateError> {
        self.get_typed(&StateKey::Bench(*address))
    }
    /// The fee market's record, if the base fee ever left its minimum.
    fn fees(&self) -> Result<Option<crate::fee::FeeRecord>, StateError> {
        self.get_typed(&StateKey::Fees)
    }
    /// The staking facts of validator `address`, if it is bonded here.
    fn stake(&self, address: &Address) -> Result<Option<crate::stake::StakeRecord>, StateError> {
        self.get_typed(&StateKey::Stake(*address))
    }
    /// The committee record of `epoch` (staking on).
    fn committee_record(&self, epoch: u64) -> Result<Option<crate::stake::CommitteeRecord>, StateError> {
        self.get_typed(&StateKey::Committee(epoch))
    }
    /// The validators bonded on this shard, in address order.
    fn candidates(&self) -> Result<Vec<Address>, StateError> {
        self.get_typed(&StateKey::Candidates).map(Option::unwrap_or_default)
    }
    /// Where this shard credited receipt `id`, if it did.
    fn applied(&self, id: &Hash) -> Result<Option<Applied>, StateError> {
        self.get_typed(&StateKey::Applied(*id))
    }
    /// Decodes the value at `key`.
    fn get_typed<T: serde::de::DeserializeOwned>(&self, key: &StateKey) -> Result<Option<T>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes, MAX_STATE_VALUE_BYTES)
                .map(Some)
                .map_err(|e| StateError::Corrupt { key: *key, reason: e.to_string() }),
        }
    }
}

impl<S: State + ?Sized> StateExt for S {}
