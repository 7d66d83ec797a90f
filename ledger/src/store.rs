//! The node's database: RocksDB, one per node, shared by all its shards.
//!
//! Column families and their keys (shard and heights big-endian, so keys sort
//! by shard, then height):
//!
//! | family         | key                              | value                     |
//! |----------------|----------------------------------|---------------------------|
//! | `blocks`       | shard · height                   | encoded [`Block`]         |
//! | `certs`        | shard · height                   | commit certificate bytes  |
//! | `state_nodes`  | shard · encoded jmt `NodeKey`    | encoded jmt `Node`        |
//! | `state_values` | shard · key hash · version       | encoded `Option<value>`   |
//! | `state_stale`  | shard · stale-since · `NodeKey`  | empty (pruning index)     |
//! | `state_latest` | shard · key hash                 | value at the tip ([`latest`]) |
//! | `tx_index`     | transaction id                   | encoded [`TxReceipt`]     |
//! | `block_index`  | block hash                       | shard · height            |
//! | `meta`         | `tip/` shard, `genesis`          | encoded [`Tip`], hash     |
//! | `meta`         | `safety/` shard                  | consensus safety state    |
//! | `meta`         | `receipts/` shard                | receipt scan cursors      |
//! | `meta`         | `latest/` shard                  | `state_latest` is complete |
//!
//! Crash safety: a committed block and *everything* it changes — block,
//! certificate, tree nodes, values, transaction index, pruning, tip — go in
//! ONE `WriteBatch` written with `sync`, so after `kill -9` at any moment the
//! database holds exactly the state after some committed block, and a commit
//! that returned is durable.

mod cache;
mod latest;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use jmt::{
    KeyHash, OwnedValue, Version,
    storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::{
    address::ShardId,
    block::Block,
    codec,
    execute::{Outcome, TxReceipt},
    genesis::Genesis,
    hash::Hash,
    state::{ShardContext, State, StateError, StateKey, Tip},
    tree::{self, StateProof},
};

const CF_BLOCKS: &str = "blocks";
const CF_CERTS: &str = "certs";
const CF_NODES: &str = "state_nodes";
const CF_VALUES: &str = "state_values";
const CF_STALE: &str = "state_stale";
const CF_TX_INDEX: &str = "tx_index";
const CF_BLOCK_INDEX: &str = "block_index";
const CF_META: &str = "meta";
const FAMILIES: [&str; 9] =
    [CF_BLOCKS, CF_CERTS, CF_NODES, CF_VALUES, CF_STALE, CF_TX_INDEX, CF_BLOCK_INDEX, CF_META, latest::CF_LATEST];

const META_GENESIS: &[u8] = b"genesis";
const META_TIP: &[u8] = b"tip/";
const META_SAFETY: &[u8] = b"safety/";
const META_RECEIPTS: &[u8] = b"receipts/";

/// Tree versions kept by default: proofs can be served for this many recent
/// heights; older superseded nodes are deleted as blocks commit.
pub const DEFAULT_STATE_HISTORY: u64 = 1_024;
/// Largest stored value we read back (a block at most).
const MAX_STORED_BYTES: usize = crate::block::MAX_BLOCK_BYTES_HARD;

/// A storage failure. Fatal to a node.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("rocksdb at {path}: {source}")]
    Db {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// The database belongs to another network.
    #[error("database was created for genesis {stored}, but this genesis is {expected}; use another data directory")]
    GenesisMismatch {
        /// What the database holds.
        stored: Hash,
        /// What we were started with.
        expected: Hash,
    },
    /// Stored bytes do not decode.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it did not decode.
        reason: String,
    },
    /// An outcome that does not extend the stored tip.
    #[error("outcome for height {got} does not extend the stored tip at height {tip}")]
    StaleOutcome {
        /// The stored tip height.
        tip: u64,
        /// The outcome's height.
        got: u64,
    },
    /// The genesis has no such shard.
    #[error("genesis has no shard {0}")]
    NoSuchShard(ShardId),
    /// State-tree failure.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The node's RocksDB database.
pub struct Store {
    db: DB,
    path: PathBuf,
    state_history: u64,
}

fn shard_key(shard: ShardId, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(rest.len().saturating_add(4));
    key.extend_from_slice(&shard.to_be_bytes());
    key.extend_from_slice(rest);
    key
}

fn height_key(shard: ShardId, height: u64) -> Vec<u8> {
    shard_key(shard, &height.to_be_bytes())
}

/// `shard · key hash`: every version of one state key.
fn value_prefix(shard: ShardId, key_hash: &KeyHash) -> Vec<u8> {
    shard_key(shard, &key_hash.0)
}

fn value_key(shard: ShardId, key_hash: &KeyHash, version: Version) -> Vec<u8> {
    let mut key = value_prefix(shard, key_hash);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn stale_key(shard: ShardId, since: Version, node: &NodeKey) -> Vec<u8> {
    let mut rest = since.to_be_bytes().to_vec();
    rest.extend_from_slice(&codec::encode(node));
    shard_key(shard, &rest)
}

fn meta_key(prefix: &[u8], shard: ShardId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

fn tip_key(shard: ShardId) -> Vec<u8> {
    meta_key(META_TIP, shard)
}

/// Tunables of a [`Store`].
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Recent tree versions kept provable (at least 1).
    pub state_history: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { state_history: DEFAULT_STATE_HISTORY }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` with defaults.
    pub fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        Store::open_with(path, StoreConfig::default())
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_with(path: &Path, config: StoreConfig) -> Result<Arc<Store>, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Bounded resources: cap open files and the WAL.
        options.set_max_open_files(512);
        options.set_max_total_wal_size(256 * 1024 * 1024);
        let families = FAMILIES.iter().map(|name| {
            let options = if *name == latest::CF_LATEST { latest::options() } else { Options::default() };
            ColumnFamilyDescriptor::new(*name, options)
        });
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|source| StoreError::Db { path: path.to_path_buf(), source })?;
        Ok(Arc::new(Store { db, path: path.to_path_buf(), state_history: config.state_history.max(1) }))
    }

    fn db_err(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Db { path: self.path.clone(), source }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every family in FAMILIES is created at open; a missing one is a bug.
        #[allow(clippy::expect_used)]
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(family), key).map_err(|e| self.db_err(e))
    }

    fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        family: &str,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError> {
        match self.get(family, key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes, MAX_STORED_BYTES)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: what(), reason: e.to_string() }),
        }
    }

    /// The committed tip of `shard`, if it was initialised.
    pub fn tip(&self, shard: ShardId) -> Result<Option<Tip>, StoreError> {
        self.get_decoded(CF_META, &tip_key(shard), || format!("tip of shard {shard}"))
    }

    /// The block of `shard` at `height`.
    pub fn block(&self, shard: ShardId, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_decoded(CF_BLOCKS, &height_key(shard, height), || format!("block {shard}/{height}"))
    }

    /// The block of `shard` at `height`, as stored (its canonical encoding).
    pub fn block_bytes(&self, shard: ShardId, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_BLOCKS, &height_key(shard, height))
    }

    /// The commit certificate stored with that block.
    pub fn certificate(&self, shard: ShardId, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_CERTS, &height_key(shard, height))
    }

    /// Where transaction `id` was executed, if it was.
    pub fn transaction(&self, id: &Hash) -> Result<Option<TxReceipt>, StoreError> {
        self.get_decoded(CF_TX_INDEX, &id.0, || format!("transaction index entry {id}"))
    }

    /// Where the block with header hash `hash` is: its shard and height.
    pub fn block_location(&self, hash: &Hash) -> Result<Option<(ShardId, u64)>, StoreError> {
        let Some(bytes) = self.get(CF_BLOCK_INDEX, &hash.0)? else { return Ok(None) };
        match (bytes.get(..4), bytes.get(4..12), bytes.len()) {
            (Some(shard), Some(height), 12) => {
                let mut s = [0u8; 4];
                s.copy_from_slice(shard);
                let mut h = [0u8; 8];
                h.copy_from_slice(height);
                Ok(Some((u32::from_be_bytes(s), u64::from_be_bytes(h))))
            }
            _ => Err(StoreError::Corrupt { what: format!("block index entry {hash}"), reason: "not 12 bytes".into() }),
        }
    }

    /// The consensus safety state last saved for `shard` (opaque bytes the
    /// node encodes), if any.
    pub fn safety_state(&self, shard: ShardId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_META, &meta_key(META_SAFETY, shard))
    }

    /// Saves the consensus safety state of `shard`, durably (synced) before
    /// returning: a validator must never sign anything this state forbids,
    /// even after power loss.
    pub fn save_safety_state(&self, shard: ShardId, bytes: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), meta_key(META_SAFETY, shard), bytes);
        self.write_synced(batch)
    }

    /// Where `shard`'s receipt scans of the other shards may resume (opaque
    /// bytes the node encodes), if saved.
    pub fn receipt_cursors(&self, shard: ShardId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_META, &meta_key(META_RECEIPTS, shard))
    }

    /// Saves `shard`'s receipt scan cursors. Not synced: a cursor lost in a
    /// crash is an older one, and resuming from an older cursor only scans
    /// again what is already credited.
    pub fn save_receipt_cursors(&self, shard: ShardId, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(CF_META), meta_key(META_RECEIPTS, shard), bytes).map_err(|e| self.db_err(e))
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        // A write that returns must survive power loss, not just a crash.
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(|e| self.db_err(e))
    }

    /// The heights of `shard` that have a stored block, lowest first (for
    /// replay checks; a node reads blocks by height instead).
    pub fn block_heights(&self, shard: ShardId) -> Result<Vec<u64>, StoreError> {
        let start = height_key(shard, 0);
        let mut heights = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_BLOCKS), IteratorMode::From(&start, Direction::Forward)) {
            let (key, _) = item.map_err(|e| self.db_err(e))?;
            let (Some(prefix), Some(height)) = (key.get(..4), key.get(4..12)) else { break };
            if prefix != shard.to_be_bytes() {
                break;
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(height);
            heights.push(u64::from_be_bytes(bytes));
        }
        Ok(heights)
    }
}

/// One shard's view of the store: implements [`State`] for execution, and
/// commits outcomes. One writer per shard (the shard's own task).
pub struct ShardStore {
    store: Arc<Store>,
    context: ShardContext,
    tip: Tip,
    /// The shard's writer reads the flat latest values (always at its tip)
    /// through its cache; a reader at an older tip reads versions.
    cache: Option<cache::StateCache>,
}

impl ShardStore {
    /// Opens `shard`, writing its genesis state if this database has never
    /// seen it. Refuses a database made for another genesis.
    pub fn open(store: Arc<Store>, genesis: &Genesis, shard: ShardId) -> Result<ShardStore, StoreError> {
        let context = genesis.shard_context(shard).ok_or(StoreError::NoSuchShard(shard))?;
        let expected = genesis.hash();
        match store.get(CF_META, META_GENESIS)? {
            Some(bytes) if bytes.as_slice() != expected.0.as_slice() => {
                let mut stored = [0u8; 32];
                if bytes.len() == 32 {
                    stored.copy_from_slice(&bytes);
                }
                return Err(StoreError::GenesisMismatch { stored: Hash(stored), expected });
            }
            _ => {}
        }
        if let Some(tip) = store.tip(shard)? {
            if !latest::is_marked(&store, shard)? {
                latest::rebuild(&store, shard, tip.height)?;
            }
            return Ok(ShardStore { store, context, tip, cache: Some(cache::StateCache::new(cache::ENTRIES)) });
        }
        let mut shard_store = ShardStore {
            store,
            context,
            tip: Tip { height: 0, hash: expected, state_root: Hash::ZERO, timestamp_ms: genesis.genesis_time_ms },
            cache: Some(cache::StateCache::new(cache::ENTRIES)),
        };
        let writes = genesis.shard_state(shard);
        let (root, tree_batch) = tree::update(&shard_store, 0, &writes)?;
        shard_store.tip.state_root = root;
        let mut batch = WriteBatch::default();
        batch.put_cf(shard_store.store.cf(CF_META), META_GENESIS, expected.0);
        shard_store.write_tree(&mut batch, &tree_batch);
        latest::mark(&shard_store.store, &mut batch, shard);
        batch.put_cf(shard_store.store.cf(CF_META), tip_key(shard), codec::encode(&shard_store.tip));
        shard_store.write(batch)?;
        Ok(shard_store)
    }

    /// A read-only view of `shard` at its current stored tip, for queries
    /// (RPC) running beside the shard's writer; `None` if the shard was never
    /// initialised in this database. Reads stay consistent while the writer
    /// commits: the view reads its own tree version, which pruning keeps for
    /// `state_history` more blocks. Never commit through it.
    pub fn reader(store: Arc<Store>, context: ShardContext) -> Result<Option<ShardStore>, StoreError> {
        Ok(store.tip(context.shard)?.map(|tip| ShardStore { store, context, tip, cache: None }))
    }

    /// The shard's fixed facts.
    pub fn shard_context(&self) -> &ShardContext {
        &self.context
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.store.write_synced(batch)
    }

    fn write_tree(&self, batch: &mut WriteBatch, update: &TreeUpdateBatch) {
        let shard = self.context.shard;
        let (nodes, values, stale) = (self.store.cf(CF_NODES), self.store.cf(CF_VALUES), self.store.cf(CF_STALE));
        for (key, node) in update.node_batch.nodes() {
            batch.put_cf(nodes, shard_key(shard, &codec::encode(key)), codec::encode(node));
        }
        for ((version, key_hash), value) in update.node_batch.values() {
            batch.put_cf(values, value_key(shard, key_hash, *version), codec::encode(value));
        }
        for entry in &update.stale_node_index_batch {
            batch.put_cf(stale, stale_key(shard, entry.stale_since_version, &entry.node_key), []);
        }
        latest::write(&self.store, batch, shard, update);
    }

    /// Deletes tree nodes that became stale `state_history` versions before
    /// `height`, in the commit's batch.
    fn prune(&self, batch: &mut WriteBatch, height: u64) -> Result<(), StoreError> {
        let Some(since) = height.checked_sub(self.store.state_history) else { return Ok(()) };
        let shard = self.context.shard;
        let prefix = shard_key(shard, &since.to_be_bytes());
        let (nodes, stale) = (self.store.cf(CF_NODES), self.store.cf(CF_STALE));
        for item in self.store.db.iterator_cf(stale, IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, _) = item.map_err(|e| self.store.db_err(e))?;
            let Some(node_key) = key.strip_prefix(prefix.as_slice()) else { break };
            batch.delete_cf(nodes, shard_key(shard, node_key));
            batch.delete_cf(stale, &key);
        }
        Ok(())
    }

    /// Commits `block` with its certificate and execution outcome, atomically
    /// and durably. `outcome` must come from executing `block` on this tip.
    pub fn commit(&mut self, block: &Block, certificate: &[u8], outcome: &Outcome) -> Result<(), StoreError> {
        if outcome.parent != self.tip || outcome.tip.hash != block.hash() {
            return Err(StoreError::StaleOutcome { tip: self.tip.height, got: outcome.tip.height });
        }
        let shard = self.context.shard;
        let height = outcome.tip.height;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.store.cf(CF_BLOCKS), height_key(shard, height), block.to_bytes());
        batch.put_cf(self.store.cf(CF_CERTS), height_key(shard, height), certificate);
        batch.put_cf(self.store.cf(CF_BLOCK_INDEX), outcome.tip.hash.0, height_key(shard, height));
        self.write_tree(&mut batch, &outcome.tree);
        self.prune(&mut batch, height)?;
        let index = self.store.cf(CF_TX_INDEX);
        for receipt in &outcome.receipts {
            batch.put_cf(index, receipt.id.0, codec::encode(receipt));
        }
        batch.put_cf(self.store.cf(CF_META), tip_key(shard), codec::encode(&outcome.tip));
        self.write(batch)?;
        if let Some(cache) = &self.cache {
            cache.apply(&outcome.tree);
        }
        self.tip = outcome.tip;
        Ok(())
    }

    /// `key` at `height` with a proof against that height's state root
    /// (available for the last `state_history` heights).
    pub fn prove(&self, key: StateKey, height: u64) -> Result<StateProof, StoreError> {
        Ok(StateProof::read(self, key, height)?)
    }

    fn storage_err(&self, e: StoreError) -> anyhow::Error {
        anyhow::anyhow!("shard {}: {e}", self.context.shard)
    }
}

impl TreeReader for ShardStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = shard_key(self.context.shard, &codec::encode(node_key));
        self.store.get_decoded(CF_NODES, &key, || format!("state node {node_key:?}")).map_err(|e| self.storage_err(e))
    }

    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        let prefix = value_prefix(self.context.shard, &key_hash);
        let mut target = prefix.clone();
        target.extend_from_slice(&max_version.to_be_bytes());
        let mut iter = self.store.db.raw_iterator_cf(self.store.cf(CF_VALUES));
        iter.seek_for_prev(&target);
        match (iter.key(), iter.value()) {
            (Some(key), Some(value)) if key.starts_with(&prefix) => {
                let value: Option<OwnedValue> =
                    codec::decode(value, MAX_STORED_BYTES).map_err(|e| anyhow::anyhow!("corrupt state value: {e}"))?;
                Ok(value)
            }
            _ => {
                iter.status().map_err(|e| self.storage_err(self.store.db_err(e)))?;
                Ok(None)
            }
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's state-sync restore uses this; Palisade syncs blocks instead.
        Err(anyhow::anyhow!("rightmost-leaf lookup is not supported"))
    }
}

impl State for ShardStore {
    fn context(&self) -> &ShardContext {
        &self.context
    }

    fn tip(&self) -> Tip {
        self.tip
    }

    fn get_raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(cache) = &self.cache {
            let key_hash = key.key_hash();
            if let Some(value) = cache.get(&key_hash) {
                return Ok(value);
            }
            let value = latest::get(&self.store, self.context.shard, &key_hash)
                .map_err(|e| StateError::Storage(format!("shard {}: {e}", self.context.shard)))?;
            cache.put(key_hash, value.clone());
            return Ok(value);
        }
        self.get_value_option(self.tip.height, key.key_hash()).map_err(|e| StateError::Storage(format!("{e:#}")))
    }

    fn tree_update(
        &self,
        version: u64,
        writes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<(Hash, TreeUpdateBatch), StateError> {
        tree::update(self, version, writes)
    }
}
