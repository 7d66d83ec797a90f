//! Quorum certificates: a set of signed votes for one `(phase, height, view,
//! block_hash)` from validators holding more than two thirds of the stake.
//!
//! * A [`PreparedCertificate`] proves a block was *prepared* in a view; replicas
//!   carry their highest one into view changes.
//! * A [`CommitCertificate`] proves a block is *final*. Anyone who knows the
//!   committee can check it: the ledger stores it next to the block, sync
//!   serves it, light clients verify it.
//!
//! Signatures are sorted by signer index, strictly ascending. That makes the
//! encoding canonical and rejects duplicate signers without a set.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::committee::{Committee, ValidatorIndex};
use crate::crypto::{self, Batch, BlockHash, Phase, ShardId, Signature, Statement};

/// One validator's signature inside a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteSignature {
    /// Who signed.
    pub signer: ValidatorIndex,
    /// Their signature over the vote statement.
    pub signature: Signature,
}

/// Why a certificate does not prove what it claims.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CertError {
    /// A signer is not in the committee.
    #[error("signer {0} is not a committee member")]
    UnknownSigner(ValidatorIndex),
    /// A signer appears twice.
    #[error("signer {0} appears more than once")]
    DuplicateSigner(ValidatorIndex),
    /// Signers are not in strictly ascending index order.
    #[error("signers are not sorted by index")]
    UnsortedSigners,
    /// The signers hold too little stake.
    #[error("signers hold {have} stake units, a quorum needs {need}")]
    InsufficientStake {
        /// Stake of the (distinct, member) signers.
        have: u64,
        /// The committee's quorum stake.
        need: u64,
    },
    /// At least one signature does not verify for the claimed vote.
    #[error("a signature does not verify")]
    BadSignature,
}

/// Checks membership, order and stake, and queues every signature in `batch`.
pub(crate) fn check_quorum(
    committee: &Committee,
    chain_id: &str,
    shard: ShardId,
    statement: &Statement,
    signatures: &[VoteSignature],
    batch: &mut Batch,
) -> Result<(), CertError> {
    let digest = crypto::digest(chain_id, shard, statement);
    let mut previous: Option<ValidatorIndex> = None;
    let mut stake: u64 = 0;
    for entry in signatures {
        match previous {
            Some(p) if p == entry.signer => return Err(CertError::DuplicateSigner(entry.signer)),
            Some(p) if p > entry.signer => return Err(CertError::UnsortedSigners),
            _ => {}
        }
        previous = Some(entry.signer);
        let key = committee.verifying_key(entry.signer).ok_or(CertError::UnknownSigner(entry.signer))?;
        // Distinct members: the sum is at most the total stake, a u64.
        stake = stake.saturating_add(committee.stake(entry.signer));
        batch.push(key, digest, &entry.signature);
    }
    let need = committee.quorum_stake();
    if stake < need {
        return Err(CertError::InsufficientStake { have: stake, need });
    }
    Ok(())
}

/// Defines a certificate: votes of one phase from a quorum, all for the
/// same `(height, view, block_hash)`. The two kinds differ only in the phase
/// their signatures cover.
macro_rules! vote_certificate {
    ($(#[$doc:meta])* $name:ident, $phase:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// Height of the block.
            pub height: u64,
            /// View in which the votes were cast.
            pub view: u64,
            /// The block voted for.
            pub block_hash: BlockHash,
            /// The votes, sorted by signer.
            pub signatures: Vec<VoteSignature>,
        }

        impl $name {
            pub(crate) fn statement(&self) -> Statement {
                Statement::Vote { phase: $phase, height: self.height, view: self.view, block_hash: self.block_hash }
            }

            pub(crate) fn check(
                &self,
                committee: &Committee,
                chain_id: &str,
                shard: ShardId,
                batch: &mut Batch,
            ) -> Result<(), CertError> {
                check_quorum(committee, chain_id, shard, &self.statement(), &self.signatures, batch)
            }

            /// Verifies the certificate against `committee` for `(chain_id, shard)`:
            /// sorted distinct members, quorum stake, and every signature valid
            /// (one ed25519 batch verification). A certificate whose height or hash
            /// was altered fails with [`CertError::BadSignature`].
            pub fn verify(&self, committee: &Committee, chain_id: &str, shard: ShardId) -> Result<(), CertError> {
                let mut batch = Batch::default();
                self.check(committee, chain_id, shard, &mut batch)?;
                if batch.verify() { Ok(()) } else { Err(CertError::BadSignature) }
            }
        }
    };
}

vote_certificate!(
    /// Proof that `block_hash` was prepared at `(height, view)`: prepare votes
    /// from a quorum.
    PreparedCertificate,
    Phase::Prepare
);

vote_certificate!(
    /// Proof that `block_hash` is final at `height`: commit votes from
    /// validators holding more than two thirds of the committee's stake, all
    /// for the same `(height, view, block_hash)`.
    CommitCertificate,
    Phase::Commit
);
