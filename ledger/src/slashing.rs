//! Punishing equivocation: what evidence a block may carry and what it does.
//!
//! Evidence ([`Evidence`]: two conflicting votes signed by one committee
//! member for one slot) reaches a block from the consensus core that saw
//! both votes, from gossip, or from anyone over RPC. Whoever includes it, a
//! block that carries it:
//!
//! * verifies it fully against the shard's committee (both signatures, one
//!   slot, two different blocks);
//! * refuses it if the offence is above the block's height or older than
//!   `evidence_window_blocks`;
//! * burns `slash_fraction_bps` of the offender's stake and jails it: it
//!   leaves the committee from the next height ([`crate::committee`]), so
//!   quorums count the remaining stake and it never leads or earns again;
//! * records a [`SlashRecord`] under the offender's address. Jailing is
//!   final, so a second piece of evidence against a jailed validator is
//!   refused: nobody is punished twice, for this offence or another.
//!
//! A block that would jail the last member with stake is refused instead:
//! that would stop the shard for good, and it cannot happen while fewer
//! than a third of the stake lies.

use palisade_consensus::Committee;
pub use palisade_consensus::Evidence;
use serde::{Deserialize, Serialize};

// The record lives with the state that stores it; re-exported here, where
// the rules that write it are.
pub use crate::state::SlashRecord;
use crate::{
    address::Address,
    amount::Amount,
    codec,
    committee::member_address,
    hash::{Hash, domain},
    state::ShardContext,
};

/// Most pieces of evidence one block carries.
pub const MAX_BLOCK_EVIDENCE: usize = 16;
/// Largest encoded evidence accepted from outside (two votes and their
/// signatures take a few hundred bytes).
pub const MAX_EVIDENCE_BYTES: usize = 1024;

/// The validators a block slashed, with what for.
pub type Slashings = Vec<(Address, SlashRecord)>;

/// Basis points in one whole.
const BPS: u128 = 10_000;

/// Why a block may not carry a piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum EvidenceRefused {
    /// It does not prove an equivocation by a member of this shard.
    #[error("invalid evidence: {0}")]
    Invalid(String),
    /// The offence is above the height of the block that would carry it.
    #[error("evidence for height {offence} cannot be in a block at height {height}")]
    Future {
        /// Height of the offence.
        offence: u64,
        /// Height of the block.
        height: u64,
    },
    /// The offence is older than the evidence window.
    #[error("evidence for height {offence} is older than {window} blocks at height {height}")]
    Expired {
        /// Height of the offence.
        offence: u64,
        /// Height of the block.
        height: u64,
        /// The genesis `evidence_window_blocks`.
        window: u64,
    },
    /// The offender was already punished (jailing is final).
    #[error("validator {0} is already jailed")]
    AlreadyJailed(Address),
    /// Jailing it would leave no member with stake.
    #[error("jailing {0} would leave the committee without stake")]
    LastActive(Address),
    /// This node could not read the committee that judges it from its own
    /// state (its fault, not the evidence's).
    #[error("cannot judge it here: {0}")]
    Storage(String),
}

/// The identity of a piece of evidence.
pub fn evidence_hash(evidence: &Evidence) -> Hash {
    Hash::digest(domain::EVIDENCE, &codec::encode(evidence))
}

/// Evidence from its hex-encoded canonical encoding (`0x` optional), as
/// `palisade_submitEvidence` and the wallet take it: size-limited, then
/// decoded. Says nothing about its validity ([`check`]).
pub fn evidence_from_hex(text: &str) -> Result<Evidence, String> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() > MAX_EVIDENCE_BYTES.saturating_mul(2) {
        return Err(format!("evidence exceeds {MAX_EVIDENCE_BYTES} bytes"));
    }
    let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    codec::decode(&bytes, MAX_EVIDENCE_BYTES).map_err(|e| format!("not evidence: {e}"))
}

/// What a header's `evidence_root` commits to: the hash of the encoded
/// list ([`Hash::ZERO`] if empty).
pub fn evidence_root(evidence: &[Evidence]) -> Hash {
    if evidence.is_empty() {
        return Hash::ZERO;
    }
    Hash::digest(domain::EVIDENCE_LIST, &codec::encode(&evidence))
}

/// Checks that need no state: `evidence` proves an equivocation by a member
/// of `committee` (the committee certifying the block at `height`) within
/// the window. Returns the offender's address.
pub fn check(
    context: &ShardContext,
    committee: &Committee,
    height: u64,
    evidence: &Evidence,
) -> Result<Address, EvidenceRefused> {
    evidence
        .verify(committee, &context.chain_id, context.shard)
        .map_err(|e| EvidenceRefused::Invalid(e.to_string()))?;
    let (offence, _, _) = evidence.slot();
    if offence > height {
        return Err(EvidenceRefused::Future { offence, height });
    }
    if height.saturating_sub(offence) > context.evidence_window_blocks {
        return Err(EvidenceRefused::Expired { offence, height, window: context.evidence_window_blocks });
    }
    // `verify` checked membership, so the address exists.
    member_address(committee, evidence.signer)
        .ok_or_else(|| EvidenceRefused::Invalid(format!("signer {} is not a member", evidence.signer)))
}

/// The part of `stake` a slashing burns: `fraction_bps` / 10,000, rounded down.
pub fn burned(stake: Amount, fraction_bps: u32) -> Amount {
    let burned = u128::from(stake.units()).saturating_mul(u128::from(fraction_bps.min(10_000))) / BPS;
    // At most `stake`, so it fits.
    Amount(u64::try_from(burned).unwrap_or(stake.units()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_the_fraction_rounded_down_and_never_more_than_the_stake() {
        assert_eq!(burned(Amount(1_000_000), 1_000), Amount(100_000));
        assert_eq!(burned(Amount(999), 1_000), Amount(99));
        assert_eq!(burned(Amount(u64::MAX), 10_000), Amount(u64::MAX));
        assert_eq!(burned(Amount(u64::MAX), 60_000), Amount(u64::MAX));
        assert_eq!(burned(Amount(5), 0), Amount::ZERO);
    }
}
