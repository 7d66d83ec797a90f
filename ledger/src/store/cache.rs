//! The shard writer's cache of state values at its tip.
//!
//! Admission, proposal, validation and the mempool's re-check after each
//! commit all read the same few accounts (a transaction's sender and
//! recipient) several times per transaction; even a point lookup in
//! RocksDB's memtable costs a skip-list search. The cache keeps the values
//! most recently read or written, least recently used out first. Commits
//! write their changes through it, after they are durable, so it always
//! holds the state at the writer's tip.

use std::sync::Mutex;

use hashlink::LruCache;
use jmt::{KeyHash, storage::TreeUpdateBatch};

/// Values kept per shard: about 170 bytes each (an account), so ~11 MiB.
pub(super) const ENTRIES: usize = 65_536;

/// Values at the tip, `None` for keys known to be absent.
pub(super) struct StateCache {
    values: Mutex<LruCache<KeyHash, Option<Vec<u8>>>>,
}

impl StateCache {
    pub(super) fn new(entries: usize) -> StateCache {
        StateCache { values: Mutex::new(LruCache::new(entries.max(1))) }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, LruCache<KeyHash, Option<Vec<u8>>>> {
        // A panic while holding the lock cannot leave a half-written entry.
        self.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value of `key` (`Some(None)`: known absent), if cached.
    pub(super) fn get(&self, key: &KeyHash) -> Option<Option<Vec<u8>>> {
        self.values().get(key).cloned()
    }

    /// Remembers `key`'s value at the tip, as read from the store.
    pub(super) fn put(&self, key: KeyHash, value: Option<Vec<u8>>) {
        self.values().insert(key, value);
    }

    /// Writes a durable commit's changes through.
    pub(super) fn apply(&self, update: &TreeUpdateBatch) {
        let mut values = self.values();
        for ((_, key), value) in update.node_batch.values() {
            values.insert(*key, value.clone());
        }
    }
}
