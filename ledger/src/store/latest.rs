//! The latest value of every state key, flat: `shard · key hash → value`.
//!
//! Execution and admission read a shard's state at its tip, several times
//! per transaction (sender and recipient, at admission, at proposal, at
//! validation, after each commit). The versioned family `state_values`
//! answers "the value at version ≤ v" only with an iterator and a
//! `SeekForPrev` through every level, which a profile of the bench showed
//! as most of a node's storage time. This family answers "the value at the
//! tip" with one point lookup (bloom-filtered, so absent keys are cheap).
//!
//! It is written in the same batch as the commit that changes it, so it is
//! always exactly the state at the stored tip. Only a shard's writer reads it:
//! a read-only view at an older tip still reads versions.
//!
//! A database written before this family existed has it empty: opening a
//! shard whose marker (`latest/` shard in `meta`) is missing rebuilds it
//! from `state_values` first ([`rebuild`]), logging progress; a crash during
//! the rebuild only means it starts again.

use jmt::{KeyHash, OwnedValue, storage::TreeUpdateBatch};
use rocksdb::{BlockBasedOptions, Direction, IteratorMode, Options, WriteBatch};
use tracing::info;

use super::{CF_META, CF_VALUES, MAX_STORED_BYTES, Store, StoreError, meta_key, shard_key};
use crate::{address::ShardId, codec};

/// The column family.
pub(super) const CF_LATEST: &str = "state_latest";
/// Marks a shard whose family is complete; the value is the format.
const META_LATEST: &[u8] = b"latest/";
const FORMAT: &[u8] = &[1];
/// Keys written per batch while rebuilding, to bound its memory.
const REBUILD_CHUNK: usize = 10_000;

/// The family's options: a bloom filter, since many reads are of accounts
/// that do not exist yet (a transfer's new recipient).
pub(super) fn options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options
}

pub(super) fn key(shard: ShardId, key_hash: &KeyHash) -> Vec<u8> {
    shard_key(shard, &key_hash.0)
}

/// Puts `key_hash`'s value (`None`: deleted) into `batch`.
fn put(store: &Store, batch: &mut WriteBatch, shard: ShardId, key_hash: &KeyHash, value: Option<&[u8]>) {
    let (latest, key) = (store.cf(CF_LATEST), key(shard, key_hash));
    match value {
        Some(value) => batch.put_cf(latest, key, value),
        None => batch.delete_cf(latest, key),
    }
}

/// Puts a commit's (or genesis') value changes into its batch.
pub(super) fn write(store: &Store, batch: &mut WriteBatch, shard: ShardId, update: &TreeUpdateBatch) {
    // One version per commit, so each key appears once.
    for ((_, key_hash), value) in update.node_batch.values() {
        put(store, batch, shard, key_hash, value.as_deref());
    }
}

/// Marks `shard`'s family complete, in `batch`.
pub(super) fn mark(store: &Store, batch: &mut WriteBatch, shard: ShardId) {
    batch.put_cf(store.cf(CF_META), meta_key(META_LATEST, shard), FORMAT);
}

/// Whether `shard`'s family is complete.
pub(super) fn is_marked(store: &Store, shard: ShardId) -> Result<bool, StoreError> {
    Ok(store.get(CF_META, &meta_key(META_LATEST, shard))?.is_some())
}

/// The value of `key_hash` at `shard`'s tip.
pub(super) fn get(store: &Store, shard: ShardId, key_hash: &KeyHash) -> Result<Option<Vec<u8>>, StoreError> {
    store.get(CF_LATEST, &key(shard, key_hash))
}

/// Fills `shard`'s family from its versioned values at `tip_height`, then
/// marks it complete. Values above the tip cannot exist (they are written
/// with their block), but are skipped all the same.
pub(super) fn rebuild(store: &Store, shard: ShardId, tip_height: u64) -> Result<(), StoreError> {
    info!(shard, height = tip_height, "building the latest-value index from the versioned state (once)");
    let prefix = shard.to_be_bytes();
    let mut batch = WriteBatch::default();
    let (mut keys, mut pending) = (0u64, 0usize);
    // Keys sort by key hash, then version: the last entry at or below the
    // tip in a run of one key hash is its value at the tip.
    let mut current: Option<([u8; 32], Option<OwnedValue>)> = None;
    let flush = |(hash, value): ([u8; 32], Option<OwnedValue>), batch: &mut WriteBatch| {
        put(store, batch, shard, &KeyHash(hash), value.as_deref());
    };
    for item in store.db.iterator_cf(store.cf(CF_VALUES), IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(|e| store.db_err(e))?;
        if key.get(..4) != Some(prefix.as_slice()) {
            break;
        }
        let (Some(hash), Some(version), 44) = (key.get(4..36), key.get(36..44), key.len()) else {
            return Err(StoreError::Corrupt {
                what: format!("state value key of shard {shard}"),
                reason: "not 44 bytes".into(),
            });
        };
        let mut hash_bytes = [0u8; 32];
        hash_bytes.copy_from_slice(hash);
        let mut version_bytes = [0u8; 8];
        version_bytes.copy_from_slice(version);
        if u64::from_be_bytes(version_bytes) > tip_height {
            continue;
        }
        let value: Option<OwnedValue> = codec::decode(&value, MAX_STORED_BYTES).map_err(|e| StoreError::Corrupt {
            what: format!("state value of shard {shard}"),
            reason: e.to_string(),
        })?;
        if let Some(done) = current.take_if(|(h, _)| *h != hash_bytes) {
            flush(done, &mut batch);
            keys = keys.saturating_add(1);
            pending = pending.saturating_add(1);
            if pending >= REBUILD_CHUNK {
                store.db.write(std::mem::take(&mut batch)).map_err(|e| store.db_err(e))?;
                pending = 0;
                info!(shard, keys, "latest-value index: keys written");
            }
        }
        current = Some((hash_bytes, value));
    }
    if let Some(done) = current {
        flush(done, &mut batch);
        keys = keys.saturating_add(1);
    }
    mark(store, &mut batch, shard);
    store.write_synced(batch)?;
    info!(shard, keys, "latest-value index built");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)] // a panic in a test is a failure report
mod tests {
    use super::*;
    use crate::{
        Amount, Genesis, State,
        execute::{apply_block, build_block},
        keys::Keypair,
        mem::MemState,
        store::ShardStore,
        workload::Wallets,
    };

    /// A store with `blocks` blocks of transfers among 32 wallets committed
    /// to shard 0 (and its writer, whose cache saw every commit), and the
    /// same chain replayed in memory.
    fn committed(dir: &std::path::Path, blocks: u64) -> (std::sync::Arc<Store>, ShardStore, Genesis, MemState) {
        let mut genesis = Genesis::dev(1, 4);
        let mut users = Wallets::new(&genesis.chain_id, "user", 32);
        users.fund(&mut genesis, "user", Amount(1_000_000));
        let store = Store::open(dir).unwrap();
        let mut shard = ShardStore::open(store.clone(), &genesis, 0).unwrap();
        let mut replay = MemState::genesis(&genesis, 0).unwrap();
        let proposer = genesis.committee(0).unwrap().validators[0].address;
        for height in 1..=blocks {
            // Every block pays new accounts too, so the index also gains keys.
            let txs: Vec<_> = (0..8)
                .map(|k| {
                    let from = (height as usize * 3 + k) % 32;
                    let to = Keypair::dev(&format!("new-{height}-{k}")).address();
                    users.transfer(from, to, Amount(10), Amount(1))
                })
                .collect();
            let built = build_block(&shard, proposer, genesis.genesis_time_ms + height, Vec::new(), txs).unwrap();
            assert!(built.rejected.is_empty(), "{:?}", built.rejected);
            shard.commit(&built.block, &[], &built.outcome).unwrap();
            replay.commit(&apply_block(&replay, &built.block).unwrap());
        }
        (store, shard, genesis, replay)
    }

    fn assert_reads(store: &std::sync::Arc<Store>, genesis: &Genesis, replay: &MemState) {
        let writer = ShardStore::open(store.clone(), genesis, 0).unwrap();
        let reader = ShardStore::reader(store.clone(), genesis.shard_context(0).unwrap()).unwrap().unwrap();
        assert!(!replay.values().is_empty());
        for (key, value) in replay.values() {
            assert_eq!(writer.get_raw(key).unwrap().as_ref(), Some(value), "latest {key:?}");
            assert_eq!(reader.get_raw(key).unwrap().as_ref(), Some(value), "versioned {key:?}");
        }
    }

    #[test]
    fn the_latest_values_and_the_cache_are_the_state_at_the_tip() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, genesis, replay) = committed(dir.path(), 6);
        assert_reads(&store, &genesis, &replay);
        // The writer that committed reads through its cache.
        for (key, value) in replay.values() {
            assert_eq!(writer.get_raw(key).unwrap().as_ref(), Some(value), "cached {key:?}");
        }
    }

    #[test]
    fn a_database_without_the_index_gets_it_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, genesis, replay) = committed(dir.path(), 6);
        // What a database written by the previous binary looks like: no
        // marker, an empty family.
        let mut batch = WriteBatch::default();
        batch.delete_cf(store.cf(CF_META), meta_key(META_LATEST, 0));
        batch.delete_range_cf(store.cf(CF_LATEST), [0u8; 4], [0xFFu8; 4]);
        store.write_synced(batch).unwrap();
        assert!(!is_marked(&store, 0).unwrap());
        let (key, _) = replay.values().iter().next().unwrap();
        assert_eq!(get(&store, 0, &key.key_hash()).unwrap(), None, "the family was emptied");
        assert_reads(&store, &genesis, &replay);
        assert!(is_marked(&store, 0).unwrap());
    }
}
