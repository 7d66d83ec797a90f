//! A block's pending changes over the committed state, and how they become
//! the writes a store commits. What each change means lives with its
//! subject: evidence in `evidence.rs`, receipts in `incoming.rs`,
//! transactions in `tx.rs`.

use std::collections::BTreeMap;

use palisade_consensus::Committee;

use crate::{
    address::Address,
    codec,
    committee::member_address,
    fee::{self, FeeRecord},
    hash::Hash,
    rotation::{self, BenchRecord},
    slashing::{SlashRecord, Slashings},
    stake::{CommitteeRecord, StakeRecord},
    state::{Account, Applied, ChainRecord, ShardContext, State, StateError, StateExt, StateKey, ValidatorRecord},
};

use super::BlockError;

/// Pending changes of one block over the committed state. Reads fall
/// through to the state; writes stay here until the block is done.
pub(super) struct Overlay<'s, S: State + ?Sized> {
    pub(super) state: &'s S,
    pub(super) accounts: BTreeMap<Address, Account>,
    pub(super) validators: BTreeMap<Address, ValidatorRecord>,
    pub(super) applied: BTreeMap<Hash, Applied>,
    pub(super) slashed: BTreeMap<Address, SlashRecord>,
    /// Bench records this block changes ([`crate::rotation`]).
    pub(super) benches: BTreeMap<Address, BenchRecord>,
    /// The chain record so far: the parent's, plus this block's rewards and burns.
    pub(super) chain: ChainRecord,
    /// The fee market so far: the base fee this block charges, and the base
    /// fees burned including this block's.
    pub(super) fees: FeeRecord,
    /// The fee market as the parent left it.
    fees_before: FeeRecord,
    /// Transactions executed (what moves the next base fee).
    pub(super) txs: u64,
    /// Staking records this block changes ([`crate::stake`]).
    pub(super) stakes: BTreeMap<Address, StakeRecord>,
    /// The candidate list, if this block changes it.
    pub(super) candidates: Option<Vec<Address>>,
    /// The next epoch's committee, if this block closes an epoch.
    pub(super) committee: Option<CommitteeRecord>,
}

impl<'s, S: State + ?Sized> Overlay<'s, S> {
    pub(super) fn new(state: &'s S) -> Result<Self, StateError> {
        let fees = fee::market(state)?;
        Ok(Overlay {
            state,
            accounts: BTreeMap::new(),
            validators: BTreeMap::new(),
            applied: BTreeMap::new(),
            slashed: BTreeMap::new(),
            benches: BTreeMap::new(),
            chain: state.chain()?,
            fees,
            fees_before: fees,
            txs: 0,
            stakes: BTreeMap::new(),
            candidates: None,
            committee: None,
        })
    }

    /// Pays `proposer` the block reward.
    pub(super) fn reward(&mut self, context: &ShardContext, proposer: &Address) -> Result<(), BlockError> {
        let mut record = self.validator(proposer)?.ok_or(BlockError::UnknownProposer(*proposer))?;
        record.rewards = record.rewards.checked_add(context.block_reward).ok_or(BlockError::RewardOverflow)?;
        self.chain.minted = self.chain.minted.checked_add(context.block_reward).ok_or(BlockError::RewardOverflow)?;
        self.validators.insert(*proposer, record);
        Ok(())
    }

    /// Judges the turns of `height` under `committee` (its rotation): the
    /// leaders whose views failed before `proposer`'s block get a strike,
    /// and `proposer`, if it led view 0, is cleared of its strikes.
    pub(super) fn judge_leaders(
        &mut self,
        committee: &Committee,
        height: u64,
        proposer: &Address,
    ) -> Result<(), StateError> {
        let failed = rotation::failed_leaders(committee, height, proposer);
        if failed.is_empty() {
            // Led view 0: a clean record. Written only if there was one, so
            // an ordinary block writes nothing here.
            if self.state.bench(proposer)?.is_some_and(|record| record != BenchRecord::default()) {
                self.benches.insert(*proposer, BenchRecord::default());
            }
            return Ok(());
        }
        for index in failed {
            let Some(address) = member_address(committee, index) else { continue };
            let record = self.state.bench(&address)?.unwrap_or_default();
            self.benches.insert(address, record.strike(height));
        }
        Ok(())
    }

    pub(super) fn account(&self, address: &Address) -> Result<Account, StateError> {
        match self.accounts.get(address) {
            Some(account) => Ok(*account),
            None => self.state.account(address),
        }
    }

    pub(super) fn validator(&self, address: &Address) -> Result<Option<ValidatorRecord>, StateError> {
        match self.validators.get(address) {
            Some(record) => Ok(Some(*record)),
            None => self.state.validator(address),
        }
    }

    pub(super) fn is_applied(&self, id: &Hash) -> Result<bool, StateError> {
        Ok(self.applied.contains_key(id) || self.state.applied(id)?.is_some())
    }

    /// The block's writes, with the chain record of `height` on `parent`,
    /// and the validators it slashed.
    pub(super) fn into_writes(mut self, height: u64, parent: Hash) -> (BTreeMap<StateKey, Vec<u8>>, Slashings) {
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
        for (address, record) in self.benches {
            writes.insert(StateKey::Bench(address), codec::encode(&record));
        }
        for (address, record) in &self.stakes {
            writes.insert(StateKey::Stake(*address), codec::encode(record));
        }
        if let Some(candidates) = &self.candidates {
            writes.insert(StateKey::Candidates, codec::encode(candidates));
        }
        if let Some(committee) = &self.committee {
            writes.insert(StateKey::Committee(committee.epoch), codec::encode(committee));
        }
        writes.insert(StateKey::Chain, codec::encode(&self.chain));
        // The fee record is written only when the market moved, so an idle
        // shard at the minimum writes nothing for it.
        let params = self.state.context().fees;
        let next = FeeRecord { base_fee: params.next_base_fee(self.fees.base_fee, self.txs), ..self.fees };
        if next != self.fees_before {
            writes.insert(StateKey::Fees, codec::encode(&next));
        }
        (writes, self.slashed.into_iter().collect())
    }
}
