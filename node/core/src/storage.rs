//! What a shard core needs from storage, as traits, and the in-memory store
//! the simulator and tests run it on.
//!
//! - [`ChainRead`]: the committed chain as a sync server reads it (tip,
//!   blocks, certificates, who was jailed). Served off the shard's thread
//!   by the node, so it takes `&self` only.
//! - [`ChainStore`]: the shard's one writer: the committed [`State`] for
//!   execution plus durable commits and the receipt scans' resume points.
//!
//! The node implements both over RocksDB (`palisade-node`'s
//! `shard::store`); [`MemStore`] implements them in memory. The safety
//! state is not here: it is an effect ([`crate::Effect::Persist`]) the host
//! makes durable before it carries out any later effect.

use std::collections::{BTreeMap, HashMap};

use palisade_ledger::committee::Jailings;
use palisade_ledger::mem::MemState;
use palisade_ledger::state::StateError;
use palisade_ledger::{Block, Genesis, Hash, Outcome, ShardId, State};

/// A storage failure. Fatal for the shard: a node must stop rather than
/// vouch for state it cannot read or write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

impl From<StateError> for StorageError {
    fn from(e: StateError) -> Self {
        StorageError(e.to_string())
    }
}

/// The committed chain of one shard, read-only.
pub trait ChainRead {
    /// The committed height (0 before the first block).
    fn tip_height(&self) -> Result<u64, StorageError>;
    /// The encoded block at `height`, if committed.
    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// The encoded commit certificate of `height`, if committed.
    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// Who was jailed at which height (slash records are never removed, so
    /// the current state answers for every height).
    fn jailings(&self) -> Result<Jailings, StorageError>;
}

/// One shard's committed state and chain, written by its core only.
pub trait ChainStore: State + ChainRead {
    /// Commits `block` with its encoded certificate and its execution
    /// `outcome` (computed on this tip), atomically and durably.
    fn commit(&mut self, block: &Block, certificate: &[u8], outcome: &Outcome) -> Result<(), StorageError>;
    /// The receipt scans' saved resume points (encoded), if any.
    fn receipt_cursors(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Saves the receipt scans' resume points (encoded).
    fn save_receipt_cursors(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
}

/// A shard's chain in memory: what survives a simulated crash.
#[derive(Clone)]
pub struct MemStore {
    state: MemState,
    /// Committed blocks and certificates, encoded, by height.
    chain: BTreeMap<u64, (Vec<u8>, Vec<u8>)>,
    /// Block hash → height (what a replay check looks up).
    index: HashMap<Hash, u64>,
    cursors: Option<Vec<u8>>,
}

impl MemStore {
    /// The store of `shard` at genesis; `None` if the genesis has no such shard.
    pub fn genesis(genesis: &Genesis, shard: ShardId) -> Option<MemStore> {
        Some(MemStore::from_state(MemState::genesis(genesis, shard)?))
    }

    /// A store holding `state` and no blocks.
    pub fn from_state(state: MemState) -> MemStore {
        MemStore { state, chain: BTreeMap::new(), index: HashMap::new(), cursors: None }
    }

    /// The committed state.
    pub fn mem_state(&self) -> &MemState {
        &self.state
    }

    /// Corrupts the state (see [`MemState::tamper`]; fault injection only).
    pub fn tamper(&mut self, key: palisade_ledger::StateKey, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        self.state.tamper(key, value)
    }

    /// The committed blocks and certificates, encoded, by height.
    pub fn chain(&self) -> &BTreeMap<u64, (Vec<u8>, Vec<u8>)> {
        &self.chain
    }

    /// The height of the committed block with header hash `hash`.
    pub fn height_of(&self, hash: &Hash) -> Option<u64> {
        self.index.get(hash).copied()
    }
}

palisade_ledger::forward_state!(MemStore, state);

impl ChainRead for MemStore {
    fn tip_height(&self) -> Result<u64, StorageError> {
        Ok(self.state.tip().height)
    }

    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.chain.get(&height).map(|(block, _)| block.clone()))
    }

    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.chain.get(&height).map(|(_, certificate)| certificate.clone()))
    }

    fn jailings(&self) -> Result<Jailings, StorageError> {
        Ok(Jailings::read(&self.state)?)
    }
}

impl ChainStore for MemStore {
    fn commit(&mut self, block: &Block, certificate: &[u8], outcome: &Outcome) -> Result<(), StorageError> {
        let tip = self.state.tip();
        if outcome.parent != tip || outcome.tip.hash != block.hash() {
            return Err(StorageError(format!("stale outcome: tip {}, outcome for {}", tip.height, outcome.tip.height)));
        }
        self.state.commit(outcome);
        self.chain.insert(outcome.tip.height, (block.to_bytes(), certificate.to_vec()));
        self.index.insert(outcome.tip.hash, outcome.tip.height);
        Ok(())
    }

    fn receipt_cursors(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.cursors.clone())
    }

    fn save_receipt_cursors(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.cursors = Some(bytes.to_vec());
        Ok(())
    }
}
