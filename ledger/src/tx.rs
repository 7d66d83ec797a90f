//! Transactions: what a user signs, how it is signed, and its id.
//!
//! A signature covers the domain-separated blake3 digest of the canonical
//! encoding of the body ([`domain::TX_SIGNING`]), so a signature for one chain
//! id never verifies on another and no other structure's signature can be
//! replayed as a transaction's. The id is blake3 of the whole signed encoding.

use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    codec::{self, DecodeError},
    hash::{Hash, domain},
    keys::{Keypair, Signature, verify_digest, verify_digest_with},
};

/// Largest encoded signed transaction accepted from anyone.
pub const MAX_TX_BYTES: usize = 4 * 1024;
/// Longest chain id.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// What a transaction does. New kinds (stake, evidence, receipts) are appended
/// as new variants; existing variant indices never change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxKind {
    /// Move `amount` from the sender to `to`.
    Transfer {
        /// The recipient.
        to: Address,
        /// How much it receives.
        amount: Amount,
    },
    /// Bond `amount` of the sender's balance to `validator` on `shard`
    /// (the sender's own; see `crate::stake`), making the sender its
    /// operator if it is new.
    Bond {
        /// The validator's consensus key, which is also its address.
        validator: Address,
        /// The shard whose committee it stands for.
        shard: ShardId,
        /// Units moved from the sender's balance to the validator's stake.
        amount: Amount,
        /// The validator node's libp2p ed25519 public key.
        p2p_key: [u8; 32],
        /// `validator`'s signature over its proof-of-possession digest
        /// (`crate::stake::possession_digest`).
        proof: Signature,
    },
    /// Start unbonding `amount` of `validator`'s stake (the sender must be
    /// its operator); it returns to the sender's balance after the
    /// unbonding period.
    Unbond {
        /// The validator.
        validator: Address,
        /// Units to take out.
        amount: Amount,
    },
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    /// The network this is for; any other rejects it.
    pub chain_id: String,
    /// Pays the fee and signs.
    pub sender: Address,
    /// Must equal the sender's count of executed transactions.
    pub nonce: u64,
    /// Paid to the proposer of the block that includes it.
    pub fee: Amount,
    /// What it does.
    pub kind: TxKind,
    /// The last height whose block may include it; `None`: no limit. Pools
    /// drop it and blocks refuse it after that, so a trade a surge delayed
    /// never executes late.
    pub expires_at: Option<u64>,
}

/// A transaction with its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    /// What was signed.
    pub body: TxBody,
    /// By `body.sender` over [`TxBody::signing_digest`].
    pub signature: Signature,
}

impl SignedTx {
    /// A transfer of `amount` from `key`'s account to `to`, with `nonce` and
    /// `fee`, signed by `key`.
    pub fn transfer(key: &Keypair, chain_id: &str, nonce: u64, to: Address, amount: Amount, fee: Amount) -> SignedTx {
        TxBody {
            chain_id: chain_id.to_string(),
            sender: key.address(),
            nonce,
            fee,
            kind: TxKind::Transfer { to, amount },
            expires_at: None,
        }
        .sign(key)
    }
}

impl TxBody {
    /// The digest the sender signs.
    pub fn signing_digest(&self) -> Hash {
        Hash::digest(domain::TX_SIGNING, &codec::encode(self))
    }

    /// Signs with `key`, which must own `self.sender`.
    pub fn sign(self, key: &Keypair) -> SignedTx {
        assert_eq!(key.address(), self.sender, "signing key does not own the sender account");
        let signature = key.sign_digest(&self.signing_digest());
        SignedTx { body: self, signature }
    }

    /// Whether a block at `height` may no longer include it.
    pub fn expired_at(&self, height: u64) -> bool {
        self.expires_at.is_some_and(|last| height > last)
    }

    /// What leaves the sender's balance (the amount a transfer pays or a
    /// bond locks, plus the fee), or `None` on overflow.
    pub fn total_debit(&self) -> Option<Amount> {
        match &self.kind {
            TxKind::Transfer { amount, .. } | TxKind::Bond { amount, .. } => amount.checked_add(self.fee),
            TxKind::Unbond { .. } => Some(self.fee),
        }
    }
}

impl SignedTx {
    /// The transaction id: blake3 of the signed encoding.
    pub fn id(&self) -> Hash {
        SignedTx::id_of(&self.to_bytes())
    }

    /// The id of the transaction whose canonical encoding is `encoded` (for
    /// callers that hold the bytes already).
    pub fn id_of(encoded: &[u8]) -> Hash {
        Hash::plain(encoded)
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes hostile bytes (bounded by [`MAX_TX_BYTES`]). Does not verify.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        codec::decode(bytes, MAX_TX_BYTES)
    }

    /// Checks the signature alone (blocks use batch verification instead).
    pub fn verify_signature(&self) -> bool {
        verify_digest(&self.body.sender, &self.body.signing_digest(), &self.signature)
    }

    /// [`SignedTx::verify_signature`] with the sender's key already
    /// decompressed (`key` must be the sender's: see
    /// [`crate::keys::verifying_key`]).
    pub fn verify_signature_with(&self, key: &ed25519_dalek::VerifyingKey) -> bool {
        debug_assert_eq!(key.as_bytes(), &self.body.sender.0, "the sender's key");
        verify_digest_with(key, &self.body.signing_digest(), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedTx {
        let alice = Keypair::dev("alice");
        TxBody {
            chain_id: "palisade-test".into(),
            sender: alice.address(),
            nonce: 3,
            fee: Amount(10),
            kind: TxKind::Transfer { to: Keypair::dev("bob").address(), amount: Amount(500) },
            expires_at: None,
        }
        .sign(&alice)
    }

    #[test]
    fn signed_tx_verifies_and_round_trips() {
        let tx = sample();
        assert!(tx.verify_signature());
        let back = SignedTx::from_bytes(&tx.to_bytes()).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.id(), tx.id());
    }

    #[test]
    fn changing_the_chain_id_breaks_the_signature() {
        let mut tx = sample();
        tx.body.chain_id = "palisade-other".into();
        assert!(!tx.verify_signature());
    }

    #[test]
    fn oversized_and_trailing_bytes_are_refused() {
        let mut bytes = sample().to_bytes();
        bytes.push(0);
        assert!(matches!(SignedTx::from_bytes(&bytes), Err(DecodeError::Trailing(1))));
        let huge = vec![0u8; MAX_TX_BYTES + 1];
        assert!(matches!(SignedTx::from_bytes(&huge), Err(DecodeError::TooLarge { .. })));
    }
}
