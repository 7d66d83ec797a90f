//! palisade-consensus: the PBFT-style replica for one shard's committee.
//!
//! This crate is pure: it depends on no runtime, no network and no storage,
//! so a seeded simulator can drive it deterministically.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod certificate;
pub mod committee;
mod crypto;
pub mod evidence;
pub mod message;

pub use certificate::{CertError, CommitCertificate, PreparedCertificate, VoteSignature};
pub use committee::{Committee, CommitteeError, Validator, ValidatorIndex};
pub use crypto::{MESSAGE_CONTEXT, Signature};
pub use evidence::{Evidence, EvidenceError, SignedVote};
pub use message::{
    BlockHash, Decision, Message, Phase, Proposal, ShardId, SignedMessage, SignedViewChange,
    Verified, VerifyError, ViewChange, Vote,
};
