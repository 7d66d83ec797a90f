//! Signing keys and the insecure, name-derived dev keys of the local network.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    address::Address,
    hash::{Hash, domain},
};

/// An ed25519 signature, 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(pub [u8; 64]);

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(self.0))
        } else {
            // serde implements arrays only up to 32; a 64-byte tuple keeps the
            // binary form fixed-size (no length prefix).
            use serde::ser::SerializeTuple;
            let mut tuple = serializer.serialize_tuple(64)?;
            for byte in &self.0 {
                tuple.serialize_element(byte)?;
            }
            tuple.end()
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            let mut out = [0u8; 64];
            hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
            Ok(Signature(out))
        } else {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Signature;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("64 signature bytes")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                    let mut out = [0u8; 64];
                    for (i, slot) in out.iter_mut().enumerate() {
                        *slot = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                    }
                    Ok(Signature(out))
                }
            }
            deserializer.deserialize_tuple(64, Visit)
        }
    }
}

/// A key that can sign transactions for its [`Address`].
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// The key with this 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair { signing: SigningKey::from_bytes(&seed) }
    }

    /// A dev key derived from `name` ("alice", "validator-0-1", …).
    ///
    /// INSECURE: anyone can derive it. It exists so the committed dev
    /// genesis.json can be regenerated and the local testnet can find its keys.
    pub fn dev(name: &str) -> Keypair {
        let seed = Hash::digest(domain::DEV_KEY, name.as_bytes());
        Keypair::from_seed(seed.0)
    }

    /// The secret seed; handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The account this key owns.
    pub fn address(&self) -> Address {
        Address(self.signing.verifying_key().to_bytes())
    }

    /// Signs a 32-byte digest (callers hash with a domain first).
    pub fn sign_digest(&self, digest: &Hash) -> Signature {
        Signature(self.signing.sign(&digest.0).to_bytes())
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

/// The verifying key of `address`, if its bytes are a valid curve point.
pub fn verifying_key(address: &Address) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&address.0).ok()
}

/// Verifies one signature over `digest` by `address`, strictly (rejecting
/// small-order keys and non-canonical encodings).
pub fn verify_digest(address: &Address, digest: &Hash, signature: &Signature) -> bool {
    verifying_key(address).is_some_and(|key| verify_digest_with(&key, digest, signature))
}

/// [`verify_digest`] by an already decompressed key.
pub fn verify_digest_with(key: &VerifyingKey, digest: &Hash, signature: &Signature) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(&digest.0, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_stable_and_distinct() {
        assert_eq!(Keypair::dev("alice").address(), Keypair::dev("alice").address());
        assert_ne!(Keypair::dev("alice").address(), Keypair::dev("bob").address());
    }

    #[test]
    fn signatures_verify_only_for_their_digest_and_key() {
        let alice = Keypair::dev("alice");
        let digest = Hash::plain(b"hello");
        let signature = alice.sign_digest(&digest);
        assert!(verify_digest(&alice.address(), &digest, &signature));
        assert!(!verify_digest(&alice.address(), &Hash::plain(b"hellp"), &signature));
        assert!(!verify_digest(&Keypair::dev("bob").address(), &digest, &signature));
    }

    #[test]
    fn signature_encodes_as_64_fixed_bytes() {
        let signature = Signature([9; 64]);
        let bytes = crate::codec::encode(&signature);
        assert_eq!(bytes.len(), 64);
        let back: Signature = crate::codec::decode(&bytes, 64).unwrap();
        assert_eq!(back, signature);
    }
}
