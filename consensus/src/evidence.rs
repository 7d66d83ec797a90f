//! Equivocation evidence: one validator signed two different blocks for the
//! same `(shard, height, view, phase)`. Honest code never does that (see the
//! replica's persisted `SafetyState`), so the evidence alone justifies
//! slashing. It is self-contained: anyone with the committee can verify it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::committee::{Committee, ValidatorIndex};
use crate::crypto::{self, Signature};
use crate::message::{ShardId, Vote};

/// A vote and its signature, without the wire envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    /// The vote (a proposal is a vote with phase `Propose`).
    pub vote: Vote,
    /// The signer's signature over the vote statement.
    pub signature: Signature,
}

/// Two conflicting signed votes by one validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The shard whose committee the offender sits in.
    pub shard: ShardId,
    /// The offender.
    pub signer: ValidatorIndex,
    /// The vote seen first.
    pub first: SignedVote,
    /// A vote for the same slot and a different block.
    pub second: SignedVote,
}

/// Why evidence does not prove an equivocation.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EvidenceError {
    /// Evidence for another shard.
    #[error("evidence for shard {got}, expected {expected}")]
    WrongShard {
        /// The shard asked about.
        expected: ShardId,
        /// The evidence's shard.
        got: ShardId,
    },
    /// The offender is not in the committee.
    #[error("signer {0} is not a committee member")]
    UnknownSigner(ValidatorIndex),
    /// The votes are for different heights, views or phases.
    #[error("votes are for different slots")]
    DifferentSlots,
    /// The votes name the same block: no conflict.
    #[error("votes are for the same block")]
    SameBlock,
    /// A signature does not verify.
    #[error("a signature does not verify")]
    BadSignature,
}

impl Evidence {
    /// Checks that `signer` is a member of `committee` and signed both votes,
    /// for one slot and two different blocks, on `(chain_id, shard)`.
    pub fn verify(&self, committee: &Committee, chain_id: &str, shard: ShardId) -> Result<(), EvidenceError> {
        if self.shard != shard {
            return Err(EvidenceError::WrongShard { expected: shard, got: self.shard });
        }
        let (a, b) = (&self.first.vote, &self.second.vote);
        if (a.height, a.view, a.phase) != (b.height, b.view, b.phase) {
            return Err(EvidenceError::DifferentSlots);
        }
        if a.block_hash == b.block_hash {
            return Err(EvidenceError::SameBlock);
        }
        let key = committee.verifying_key(self.signer).ok_or(EvidenceError::UnknownSigner(self.signer))?;
        for signed in [&self.first, &self.second] {
            let digest = crypto::digest(chain_id, shard, &signed.vote.statement());
            if !crypto::verify_one(key, &digest, &signed.signature) {
                return Err(EvidenceError::BadSignature);
            }
        }
        Ok(())
    }

    /// The `(height, view, phase)` slot the offence happened in.
    pub fn slot(&self) -> (u64, u64, crate::message::Phase) {
        (self.first.vote.height, self.first.vote.view, self.first.vote.phase)
    }
}
