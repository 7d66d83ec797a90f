//! The shard core's storage traits over the node's RocksDB [`Store`]:
//! [`RocksChain`] is a shard's one writer (its thread), [`StoreReader`]
//! what the sync server reads off that thread.

use std::sync::Arc;

use palisade_ledger::committee::Jailings;
use palisade_ledger::genesis::Genesis;
use palisade_ledger::state::ShardContext;
use palisade_ledger::store::{ShardStore, Store, StoreError};
use palisade_ledger::{Block, Outcome, ShardId, State};
use palisade_shard_core::{ChainRead, ChainStore, StorageError};

fn storage(e: StoreError) -> StorageError {
    StorageError(e.to_string())
}

/// One shard's chain in the store, read by anyone holding the store.
#[derive(Clone)]
pub struct StoreReader {
    store: Arc<Store>,
    context: ShardContext,
}

impl StoreReader {
    /// The chain of `shard`; `None` if the genesis has no such shard.
    pub fn new(store: Arc<Store>, genesis: &Genesis, shard: ShardId) -> Option<StoreReader> {
        Some(StoreReader { store, context: genesis.shard_context(shard)? })
    }
}

impl ChainRead for StoreReader {
    fn tip_height(&self) -> Result<u64, StorageError> {
        Ok(self.store.tip(self.context.shard).map_err(storage)?.map_or(0, |tip| tip.height))
    }

    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.store.block_bytes(self.context.shard, height).map_err(storage)
    }

    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.store.certificate(self.context.shard, height).map_err(storage)
    }

    fn jailings(&self) -> Result<Jailings, StorageError> {
        match ShardStore::reader(self.store.clone(), self.context.clone()).map_err(storage)? {
            Some(state) => Ok(Jailings::read(&state)?),
            None => Ok(Jailings::default()),
        }
    }
}

/// One shard's committed state and chain in the store, for its core.
pub struct RocksChain {
    state: ShardStore,
    reader: StoreReader,
}

impl RocksChain {
    /// Opens `shard` in `store`, writing its genesis state the first time.
    pub fn open(store: Arc<Store>, genesis: &Genesis, shard: ShardId) -> Result<RocksChain, StoreError> {
        let state = ShardStore::open(store.clone(), genesis, shard)?;
        let reader = StoreReader { store, context: state.shard_context().clone() };
        Ok(RocksChain { state, reader })
    }
}

palisade_ledger::forward_state!(RocksChain, state);

impl ChainRead for RocksChain {
    fn tip_height(&self) -> Result<u64, StorageError> {
        Ok(self.state.tip().height)
    }

    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.reader.block_bytes(height)
    }

    fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.reader.certificate(height)
    }

    fn jailings(&self) -> Result<Jailings, StorageError> {
        Ok(Jailings::read(&self.state)?)
    }
}

impl ChainStore for RocksChain {
    fn commit(&mut self, block: &Block, certificate: &[u8], outcome: &Outcome) -> Result<(), StorageError> {
        self.state.commit(block, certificate, outcome).map_err(storage)
    }

    fn receipt_cursors(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.reader.store.receipt_cursors(self.reader.context.shard).map_err(storage)
    }

    fn save_receipt_cursors(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.reader.store.save_receipt_cursors(self.reader.context.shard, bytes).map_err(storage)
    }
}
