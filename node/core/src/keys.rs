//! Decompressed sender keys, kept for the senders seen lately.
//!
//! A transaction names its sender by the 32 bytes of an ed25519 public key;
//! checking its signature first decompresses those bytes to a curve point,
//! which costs about a third of the verification itself (a profile of the
//! bench showed it as 12 % of the nodes' signature checks). Senders repeat
//! (an exchange's hot accounts, a market maker's keys), so a bounded LRU of
//! the decompressed keys turns that into a lookup. Only keys that
//! decompressed are kept: bytes that are no curve point are refused each
//! time, and cost a sender nothing here.

use ed25519_dalek::VerifyingKey;
use hashlink::LruCache;
use palisade_ledger::Address;
use palisade_ledger::keys::verifying_key;

/// Senders whose keys are kept: about 260 bytes each with the map's own
/// (a compressed and a decompressed point), so at most about 17 MiB.
pub const KEY_CACHE_ENTRIES: usize = 65_536;

/// A bounded cache of decompressed sender keys.
pub struct KeyCache {
    keys: LruCache<Address, VerifyingKey>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(KEY_CACHE_ENTRIES)
    }
}

impl KeyCache {
    /// An empty cache of at most `entries` keys (at least one).
    pub fn new(entries: usize) -> KeyCache {
        KeyCache { keys: LruCache::new(entries.max(1)) }
    }

    /// The decompressed key of `sender`, `None` if its bytes are no curve
    /// point.
    pub fn key(&mut self, sender: &Address) -> Option<VerifyingKey> {
        if let Some(key) = self.keys.get(sender) {
            return Some(*key);
        }
        let key = verifying_key(sender)?;
        self.keys.insert(*sender, key);
        Some(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use palisade_ledger::Keypair;

    use super::*;

    #[test]
    fn keys_are_the_senders_and_the_cache_stays_bounded() {
        let mut cache = KeyCache::new(2);
        let senders: Vec<Address> = ["a", "b", "c"].iter().map(|n| Keypair::dev(n).address()).collect();
        for sender in &senders {
            assert_eq!(cache.key(sender).map(|k| k.to_bytes()), Some(sender.0));
        }
        assert_eq!(cache.len(), 2, "the least recently used key left");
        assert_eq!(cache.key(&senders[0]).map(|k| k.to_bytes()), Some(senders[0].0), "and comes back on demand");
    }

    #[test]
    fn bytes_that_are_no_point_are_refused_and_not_kept() {
        let mut cache = KeyCache::new(4);
        // About half of all y-coordinates have no point on the curve.
        let not_a_point = (0..=u8::MAX)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                Address(bytes)
            })
            .find(|address| verifying_key(address).is_none())
            .unwrap();
        assert!(cache.key(&not_a_point).is_none());
        assert!(cache.is_empty());
    }
}
