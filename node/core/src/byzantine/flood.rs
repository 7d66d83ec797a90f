//! `flood`: the validator publishes junk on its shard's consensus topic, a
//! burst every [`INTERVAL_MS`]. Peers fail to decode it, refuse it, and
//! gossipsub's scoring cuts the flooder off.

/// Time between bursts.
pub const INTERVAL_MS: u64 = 100;
/// Messages per burst.
pub const BURST: usize = 20;
/// Size of each junk message.
pub const JUNK_BYTES: usize = 512;

/// Junk message `n` of the burst sent at `burst_ms`: bytes no decoder
/// accepts as a message, different in every burst (gossip ids are content
/// hashes, so a repeated burst would be dropped as a duplicate before any
/// peer judged it).
pub fn junk(burst_ms: u64, n: usize) -> Vec<u8> {
    let mut out = vec![0xff; JUNK_BYTES];
    let mut hasher = blake3::Hasher::new();
    hasher.update(&burst_ms.to_le_bytes());
    hasher.update(&u64::try_from(n).unwrap_or(0).to_le_bytes());
    hasher.finalize_xof().fill(&mut out);
    // A leading 0xff makes a length prefix no limit allows.
    if let Some(first) = out.first_mut() {
        *first = 0xff;
    }
    out
}
