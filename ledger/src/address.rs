//! Account addresses: an ed25519 public key, written as bech32m with the
//! human prefix `pal` so a mistyped address fails its checksum before anything
//! is sent; and the deterministic map from address to shard.

use bech32::{Bech32m, Hrp, primitives::decode::CheckedHrpstring};

use crate::hash::Hash;

/// The human-readable prefix of every address.
pub const ADDRESS_PREFIX: &str = "pal";

/// Identifies a shard: `0..shard_count`.
pub type ShardId = u32;

/// An account: the 32 bytes of its ed25519 public key. Holding the key is
/// owning the account; there is no separate registration.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

/// Why text is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The bech32m checksum or character set is wrong: most likely a typo.
    #[error("`{text}` is not a valid address (bad checksum or character: check for a typo): {reason}")]
    Checksum {
        /// What was given.
        text: String,
        /// What bech32 said.
        reason: String,
    },
    /// A valid bech32m string for something else.
    #[error("`{text}` has prefix `{prefix}`, expected `{ADDRESS_PREFIX}`")]
    Prefix {
        /// What was given.
        text: String,
        /// The prefix it had.
        prefix: String,
    },
    /// The payload is not 32 bytes.
    #[error("`{text}` holds {len} bytes, an address holds 32")]
    Length {
        /// What was given.
        text: String,
        /// How many bytes it held.
        len: usize,
    },
}

impl Address {
    /// The bech32m text form, `pal1…`.
    pub fn to_bech32(&self) -> String {
        // "pal" is a valid HRP and 32 bytes are far below bech32m's length limit.
        #[allow(clippy::expect_used)]
        let hrp = Hrp::parse(ADDRESS_PREFIX).expect("static prefix is valid");
        #[allow(clippy::expect_used)]
        bech32::encode::<Bech32m>(hrp, &self.0).expect("32 bytes always encode")
    }

    /// Parses `pal1…`, checking the bech32m checksum, prefix and length.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let checked = CheckedHrpstring::new::<Bech32m>(text)
            .map_err(|e| AddressError::Checksum { text: text.to_string(), reason: e.to_string() })?;
        let prefix = checked.hrp().to_lowercase();
        if prefix != ADDRESS_PREFIX {
            return Err(AddressError::Prefix { text: text.to_string(), prefix });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::Length { text: text.to_string(), len: bytes.len() })?;
        Ok(Address(array))
    }

    /// The shard this account lives in, for a network of `shard_count` shards:
    /// the first 8 bytes of blake3(address), little-endian, modulo the count.
    /// Every account lives in exactly one shard.
    pub fn shard(&self, shard_count: u32) -> ShardId {
        assert!(shard_count > 0, "shard_count is validated non-zero at genesis load");
        let digest = Hash::plain(&self.0);
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.0.get(..8).unwrap_or(&[0; 8]));
        let bucket = u64::from_le_bytes(first).checked_rem(u64::from(shard_count)).unwrap_or(0);
        // bucket < shard_count, which is a u32.
        ShardId::try_from(bucket).unwrap_or(0)
    }
}

crate::hash::text_or_bytes!(Address, to_bech32, Address::parse, AddressError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_catches_typos() {
        let address = Address([7; 32]);
        let text = address.to_bech32();
        assert!(text.starts_with("pal1"), "{text}");
        assert_eq!(Address::parse(&text).unwrap(), address);
        // Change one character in the data part: the checksum must catch it.
        for position in 4..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[position] = if chars[position] == 'q' { 'p' } else { 'q' };
            let typo: String = chars.into_iter().collect();
            assert!(Address::parse(&typo).is_err(), "typo at {position} accepted: {typo}");
        }
    }

    #[test]
    fn rejects_other_prefixes_and_lengths_and_plain_bech32() {
        let hrp = Hrp::parse("btc").unwrap();
        let other = bech32::encode::<Bech32m>(hrp, &[1; 32]).unwrap();
        assert!(matches!(Address::parse(&other), Err(AddressError::Prefix { .. })));
        let pal = Hrp::parse("pal").unwrap();
        let short = bech32::encode::<Bech32m>(pal, &[1; 20]).unwrap();
        assert!(matches!(Address::parse(&short), Err(AddressError::Length { len: 20, .. })));
        let legacy = bech32::encode::<bech32::Bech32>(pal, &[1; 32]).unwrap();
        assert!(matches!(Address::parse(&legacy), Err(AddressError::Checksum { .. })));
    }

    #[test]
    fn shards_are_deterministic_and_cover_all() {
        let mut seen = [0u32; 4];
        for i in 0..400u32 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            let shard = Address(bytes).shard(4);
            assert_eq!(shard, Address(bytes).shard(4));
            seen[shard as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "skewed shard map: {seen:?}");
    }
}
