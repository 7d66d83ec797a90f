//! 32-byte blake3 hashes and the domain separation every signed or committed
//! structure goes through.
//!
//! Each kind of digest gets its own blake3 `derive_key` context, so bytes that
//! are valid as one structure can never be replayed as a signature or hash of
//! another (a transaction body is never mistaken for a block header).

/// A blake3 digest. Shown and parsed as lowercase hex in human formats (JSON),
/// raw bytes in binary ones (bincode).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

/// Domain separation contexts; one per kind of digest. Changing any string is a
/// hard fork: every signature and root computed under it changes.
pub mod domain {
    /// The digest a transaction signature covers.
    pub const TX_SIGNING: &str = "palisade 2026 transaction signing v1";
    /// A block header's hash.
    pub const BLOCK_HEADER: &str = "palisade 2026 block header v1";
    /// Leaves of a block's transaction Merkle tree.
    pub const TX_LEAF: &str = "palisade 2026 transaction leaf v1";
    /// Keys of the authenticated state tree.
    pub const STATE_KEY: &str = "palisade 2026 state key v1";
    /// The genesis document's hash.
    pub const GENESIS: &str = "palisade 2026 genesis v1";
    /// Leaves of a block's outgoing receipts Merkle tree.
    pub const RECEIPT_LEAF: &str = "palisade 2026 receipt leaf v1";
    /// The receipt batches a block credits.
    pub const INBOUND: &str = "palisade 2026 inbound receipts v1";
    /// One piece of equivocation evidence.
    pub const EVIDENCE: &str = "palisade 2026 evidence v1";
    /// The evidence list a block carries.
    pub const EVIDENCE_LIST: &str = "palisade 2026 block evidence v1";
    /// A validator key's proof that its bond's operator holds it.
    pub const STAKE_POSSESSION: &str = "palisade 2026 stake possession v1";
    /// Dev keys derived from names. INSECURE by design: anyone can derive them.
    pub const DEV_KEY: &str = "palisade 2026 INSECURE dev key v1";
}

impl Hash {
    /// The all-zero hash, used where "nothing" must still be 32 bytes.
    pub const ZERO: Hash = Hash([0; 32]);

    /// blake3 of `bytes` under the domain `context`.
    pub fn digest(context: &str, bytes: &[u8]) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(bytes);
        Hash(*hasher.finalize().as_bytes())
    }

    /// Plain blake3 of `bytes` (no domain), e.g. a transaction id.
    pub fn plain(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Hash, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| HashParseError)?;
        Ok(Hash(out))
    }
}

/// A hash that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hexadecimal characters")]
pub struct HashParseError;

/// Gives a 32-byte newtype with a text form (`$to_text`, `$parse`) its
/// `Display`, `Debug`, `FromStr` and serde impls: the text form in
/// human-readable formats (JSON, config files), the raw bytes in binary ones
/// (bincode), so encodings stay compact and canonical.
macro_rules! text_or_bytes {
    ($ty:ident, $to_text:ident, $parse:path, $err:ty) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.$to_text())
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.$to_text())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $parse(s)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.$to_text())
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    $parse(&text).map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(deserializer).map($ty)
                }
            }
        }
    };
}
pub(crate) use text_or_bytes;

text_or_bytes!(Hash, to_hex, Hash::from_hex, HashParseError);

/// blake3 as the hash of the Jellyfish Merkle tree. jmt's blanket impl wants
/// `digest` 0.10 while blake3 implements 0.11, so we adapt it by hand.
#[derive(Clone, Default)]
pub struct JmtBlake3(blake3::Hasher);

impl jmt::SimpleHasher for JmtBlake3 {
    fn new() -> Self {
        JmtBlake3(blake3::Hasher::new())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// blake3 for the binary Merkle trees over a block's transactions.
#[derive(Clone)]
pub struct MerkleBlake3;

impl rs_merkle::Hasher for MerkleBlake3 {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }
}
