//! A shard's state in memory: the reference [`State`] for tests, property
//! checks and the simulator, and the replay oracle the crash test compares
//! RocksDB against.

use std::collections::BTreeMap;

use jmt::storage::TreeUpdateBatch;

use crate::{
    address::ShardId,
    execute::Outcome,
    genesis::Genesis,
    hash::Hash,
    state::{ShardContext, State, StateError, StateExt, StateKey, Tip},
    tree::{self, MemTree, StateProof},
};

/// One shard's committed state, in memory.
#[derive(Clone)]
pub struct MemState {
    context: ShardContext,
    tip: Tip,
    tree: MemTree,
    values: BTreeMap<StateKey, Vec<u8>>,
}

impl MemState {
    /// The state of `shard` at genesis; `None` if the genesis has no such shard.
    pub fn genesis(genesis: &Genesis, shard: ShardId) -> Option<MemState> {
        let context = genesis.shard_context(shard)?;
        let values = genesis.shard_state(shard);
        let mut tree = MemTree::default();
        // Genesis writes at version 0 on an empty tree: the in-memory reader cannot fail.
        let (root, batch) = tree::update(&tree, 0, &values).ok()?;
        tree.apply(&batch);
        let tip = Tip { height: 0, hash: genesis.hash(), state_root: root, timestamp_ms: genesis.genesis_time_ms };
        Some(MemState { context, tip, tree, values })
    }

    /// Commits an outcome produced by `apply_block` or `build_block` on this state.
    pub fn commit(&mut self, outcome: &Outcome) {
        assert_eq!(outcome.parent, self.tip, "outcome was executed on another tip");
        self.tree.apply(&outcome.tree);
        for (key, value) in &outcome.writes {
            self.values.insert(*key, value.clone());
        }
        self.tip = outcome.tip;
    }

    /// Sets (or with `None` removes) `key`'s value behind the state tree's
    /// back, as a corrupted disk would, and returns the value it replaced.
    /// For fault-injection tests only: the state no longer matches its root.
    pub fn tamper(&mut self, key: StateKey, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        match value {
            Some(value) => self.values.insert(key, value),
            None => self.values.remove(&key),
        }
    }

    /// Every key and encoded value, as of the tip.
    pub fn values(&self) -> &BTreeMap<StateKey, Vec<u8>> {
        &self.values
    }

    /// `key` at the tip, with a proof against the tip's state root.
    pub fn prove(&self, key: StateKey) -> Result<StateProof, StateError> {
        StateProof::read(&self.tree, key, self.tip.height)
    }

    /// The root at the tip.
    pub fn root(&self) -> Hash {
        self.tip.state_root
    }

    /// All money in the shard's state, in units (balances, stake, stake
    /// still unbonding and rewards), less the block rewards this shard created and plus the
    /// stake and base fees it burned. Conservation checks compare the sum over shards,
    /// plus the receipts in flight between them, with the genesis supply.
    pub fn money(&self) -> Result<u128, StateError> {
        let mut total = 0u128;
        for key in self.values.keys() {
            let units = match key {
                StateKey::Account(address) => u128::from(self.account(address)?.balance.units()),
                StateKey::Validator(address) => self
                    .validator(address)?
                    .map_or(0, |r| u128::from(r.stake.units()).saturating_add(u128::from(r.rewards.units()))),
                StateKey::Stake(address) => self
                    .stake(address)?
                    .and_then(|record| record.unbonding_total())
                    .map_or(0, |units| u128::from(units.units())),
                // Credited receipts are counted in the balances they credited.
                StateKey::Chain
                | StateKey::Applied(_)
                | StateKey::Slashed(_)
                | StateKey::Bench(_)
                | StateKey::Fees
                | StateKey::Candidates
                | StateKey::Committee(_) => 0,
            };
            total = total.saturating_add(units);
        }
        let chain = self.chain()?;
        let fees_burned = crate::fee::market(self)?.burned;
        Ok(total
            .saturating_add(u128::from(chain.burned.units()))
            .saturating_add(u128::from(fees_burned.units()))
            .saturating_sub(u128::from(chain.minted.units())))
    }
}

impl State for MemState {
    fn context(&self) -> &ShardContext {
        &self.context
    }

    fn tip(&self) -> Tip {
        self.tip
    }

    fn get_raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.values.get(key).cloned())
    }

    fn tree_update(
        &self,
        version: u64,
        writes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<(Hash, TreeUpdateBatch), StateError> {
        tree::update(&self.tree, version, writes)
    }
}
