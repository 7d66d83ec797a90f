//! Signatures over domain-separated statement digests.
//!
//! Validators never sign raw wire bytes. They sign a [`Statement`]: the small,
//! canonical part of a message that carries its meaning (a vote, a view change
//! and the prepared certificate it claims, a decision). The digest is
//! `blake3::derive_key("palisade consensus message v1", bincode((chain_id, shard, statement)))`,
//! so a signature is bound to one chain and one shard and cannot be replayed
//! elsewhere. Because a vote's statement is reconstructible from
//! `(phase, height, view, block_hash)`, certificates only need to carry
//! `(signer, signature)` pairs.
//!
//! This is the crate's lowest layer: it also defines the primitives a
//! statement is made of ([`BlockHash`], [`ShardId`], [`Phase`]; re-exported
//! by `message`) and imports no other module of the crate. Above it come
//! `committee`, then `certificate`, then `message` and `evidence`, then
//! `replica`.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A block hash, as defined by the host. Consensus treats blocks as opaque
/// bytes; the host's validation must check that the bytes hash to this.
pub type BlockHash = [u8; 32];

/// A shard number.
pub type ShardId = u32;

/// The signed steps of a view. Ordered as they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// The leader's proposal (PBFT pre-prepare).
    Propose,
    /// "I accept the proposal of this view" (PBFT prepare).
    Prepare,
    /// "A quorum prepared it; I commit to it" (PBFT commit).
    Commit,
}

/// Domain separation for every consensus signature.
pub const MESSAGE_CONTEXT: &str = "palisade consensus message v1";

/// An ed25519 signature, 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature(")?;
        for byte in self.0.iter().take(4) {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "..)")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde only derives arrays up to 32; a 64-tuple encodes as 64 raw bytes
        // in bincode and as a plain array in self-describing formats.
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SignatureVisitor;
        impl<'de> Visitor<'de> for SignatureVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (position, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(position, &self))?;
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_tuple(64, SignatureVisitor)
    }
}

/// What a validator's signature commits to. Everything that can be
/// equivocated on, or that a certificate is built from, is one of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Statement {
    /// A proposal (phase `Propose`) or a vote (`Prepare`, `Commit`).
    Vote { phase: Phase, height: u64, view: u64, block_hash: BlockHash },
    /// "I leave for `view`", with the view and block of the highest prepared
    /// certificate the signer holds. Signing the claim stops a new leader
    /// from silently dropping a certificate from its justification.
    /// `resend` numbers a re-sent copy (0 for the first).
    ViewChange { height: u64, view: u64, prepared: Option<(u64, BlockHash)>, resend: u64 },
    /// "Height `height` decided `block_hash`", sent to lagging peers.
    Decided { height: u64, block_hash: BlockHash },
    /// "I lead `(height, view)` and am alive": commits to nothing, but
    /// signed so nobody can keep a dead leader looking alive.
    Alive { height: u64, view: u64, beat: u64 },
}

/// The 32-byte digest a validator signs for `statement`.
pub(crate) fn digest(chain_id: &str, shard: ShardId, statement: &Statement) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(MESSAGE_CONTEXT);
    bincode::serde::encode_into_std_write((chain_id, shard, statement), &mut hasher, bincode::config::standard())
        .expect("hashing a statement cannot fail: plain data into an infallible writer");
    *hasher.finalize().as_bytes()
}

/// Signs `statement` for `(chain_id, shard)`. ed25519 signing is deterministic:
/// the same key and statement always give the same signature.
pub(crate) fn sign(key: &SigningKey, chain_id: &str, shard: ShardId, statement: &Statement) -> Signature {
    Signature(key.sign(&digest(chain_id, shard, statement)).to_bytes())
}

/// Verifies one signature strictly (rejects non-canonical and small-order
/// encodings).
pub(crate) fn verify_one(key: &VerifyingKey, digest: &[u8; 32], signature: &Signature) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(digest, &signature).is_ok()
}

/// Collects signatures to check them together: one ed25519 batch verification
/// per message or certificate instead of one verification per signature.
#[derive(Default)]
pub(crate) struct Batch {
    digests: Vec<[u8; 32]>,
    signatures: Vec<ed25519_dalek::Signature>,
    keys: Vec<VerifyingKey>,
}

impl Batch {
    /// Queues `signature` by `key` over `digest`.
    pub(crate) fn push(&mut self, key: &VerifyingKey, digest: [u8; 32], signature: &Signature) {
        self.digests.push(digest);
        self.signatures.push(ed25519_dalek::Signature::from_bytes(&signature.0));
        self.keys.push(*key);
    }

    /// True when every queued signature is valid. A single signature is
    /// checked strictly; several go through the (deterministic) batch check.
    pub(crate) fn verify(self) -> bool {
        match (self.keys.as_slice(), self.digests.as_slice(), self.signatures.as_slice()) {
            ([], [], []) => true,
            ([key], [digest], [signature]) => key.verify_strict(digest, signature).is_ok(),
            _ => {
                let messages: Vec<&[u8]> = self.digests.iter().map(|d| d.as_slice()).collect();
                ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys).is_ok()
            }
        }
    }
}
