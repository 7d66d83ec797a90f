//! Which committee certifies a shard's blocks, and how anyone outside the
//! shard checks a certificate.
//!
//! A shard starts with its genesis committee. A validator jailed for a proven
//! equivocation ([`crate::slashing`]) keeps its index with zero stake from the
//! next height on ([`Committee::jailing`]): indices never move within an
//! epoch, so a certificate or evidence names the same signers for it.
//! Jailing is final, so the committee of any height is its epoch's committee
//! minus the members jailed below it, and a header commits to the hash of
//! the committee that certifies it. Without staking there is one epoch and
//! its committee is the genesis one; with staking, each epoch's end chooses
//! the next ([`crate::stake`]).
//!
//! From outside (another shard crediting receipts, a wallet checking a
//! proof) a certificate arrives with the list of members jailed at its height.
//! [`verify_certified`] rebuilds that committee from genesis, checks the
//! header names it, checks the certificate is a quorum of it, and also that
//! its signers hold more than a third of the *genesis* stake. The last check
//! is what makes the jailed list safe to take from anyone: a forger who
//! claims the honest members were jailed still needs an honest signature,
//! and honest validators sign only the real chain. A genuine certificate
//! always passes it, since only equivocators are jailed: with less than a
//! third of the stake jailed, a quorum of the rest holds more than 4/9 of it.

use palisade_consensus::{CommitCertificate, Committee, CommitteeError, ValidatorIndex};
use serde::{Deserialize, Serialize};

use crate::{
    address::Address,
    hash::Hash,
    header::BlockHeader,
    state::{State, StateError, StateExt, StateKey},
};

/// The address of committee member `index` (its key is its address).
pub fn member_address(committee: &Committee, index: ValidatorIndex) -> Option<Address> {
    committee.validator(index).map(|v| Address(v.public_key))
}

/// Whether `address` is an active (unjailed) member of `committee`.
pub fn is_active_member(committee: &Committee, address: &Address) -> bool {
    committee.index_of(&address.0).is_some_and(|index| committee.is_active(index))
}

/// Whether `address` is in `committee`'s leader rotation (active and not
/// benched): who may propose its blocks.
pub fn is_in_rotation(committee: &Committee, address: &Address) -> bool {
    committee.index_of(&address.0).is_some_and(|index| committee.rotation().contains(&index))
}

/// Every jailing of a shard so far: the member and the height of the block
/// that jailed it, read once from the slash records (the one source: a
/// member is jailed exactly when it has one, and they are never removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jailings(Vec<(ValidatorIndex, u64)>);

impl Jailings {
    /// The jailings recorded in `state` of the members of its current
    /// epoch's committee ([`base`]).
    pub fn read<S: State + ?Sized>(state: &S) -> Result<Jailings, StateError> {
        Jailings::of(state, &base(state)?)
    }

    /// The jailings recorded in `state` of `committee`'s members.
    fn of<S: State + ?Sized>(state: &S, committee: &Committee) -> Result<Jailings, StateError> {
        let mut jailings = Vec::new();
        for (position, validator) in committee.validators().iter().enumerate() {
            if let Some(record) = state.slashed(&Address(validator.public_key))? {
                // Committees are validated to fit u32 indices.
                jailings.push((ValidatorIndex(u32::try_from(position).unwrap_or(u32::MAX)), record.included_at));
            }
        }
        Ok(Jailings(jailings))
    }

    /// The members jailed for blocks at `height` (jailed by a block below it).
    pub fn at(&self, height: u64) -> Vec<ValidatorIndex> {
        self.0.iter().filter(|(_, jailed_by)| *jailed_by < height).map(|(index, _)| *index).collect()
    }
}

/// The committee of the epoch of the block after `state`'s tip, before
/// jailing and rotation: the genesis committee, or with staking on the one
/// the last epoch's end chose ([`crate::stake::CommitteeRecord`]).
pub fn base<S: State + ?Sized>(state: &S) -> Result<Committee, StateError> {
    epoch_base(state, state.tip().height.saturating_add(1))
}

/// The committee of the epoch of the block at `height` (at most the next
/// height), before jailing and rotation, as `state` recorded it.
fn epoch_base<S: State + ?Sized>(state: &S, height: u64) -> Result<Committee, StateError> {
    let Some(staking) = state.context().staking else {
        return Ok(state.context().genesis_committee.clone());
    };
    let epoch = staking.epoch_of(height);
    let key = StateKey::Committee(epoch);
    let record = state.committee_record(epoch)?.ok_or_else(|| {
        StateError::Storage(format!("staking is on but the state holds no committee of epoch {epoch}"))
    })?;
    record.committee().map_err(|e| StateError::Corrupt { key, reason: e.to_string() })
}

/// The committee that judges evidence of an offence at height `offence`:
/// the current one ([`current`]) if the offence is in the next block's
/// epoch, else the committee of the offence's epoch (its signer indices
/// are that committee's). `None` if the offence is in an epoch after the
/// next block's, whose committee is not known yet.
pub fn for_offence<S: State + ?Sized>(state: &S, offence: u64) -> Result<Option<Committee>, StateError> {
    let next = state.tip().height.saturating_add(1);
    match state.context().staking {
        Some(staking) if staking.epoch_of(offence) != staking.epoch_of(next) => {
            if offence > next {
                // An epoch whose committee is not chosen yet.
                return Ok(None);
            }
            epoch_base(state, offence).map(Some)
        }
        _ => current(state).map(Some),
    }
}

/// The committee that certifies the block after `state`'s tip: the
/// epoch's committee ([`base`]) with the members jailed so far made
/// inactive, and the leaders benched for that block out of its rotation
/// ([`crate::rotation`]).
pub fn current<S: State + ?Sized>(state: &S) -> Result<Committee, StateError> {
    let next = state.tip().height.saturating_add(1);
    let base = base(state)?;
    let jailed = Jailings::of(state, &base)?.at(next);
    // Execution never jails the last active member, so this only fails on
    // a corrupt state.
    let committee = base.jailing(&jailed).map_err(|e| StateError::Storage(format!("committee from state: {e}")))?;
    rotated(state, &committee)
}

/// `committee`, whose stakes are those of the block after `state`'s tip,
/// with that block's rotation: what a host that already knows nobody was
/// jailed recomputes after each commit, without rebuilding the committee.
pub fn rotated<S: State + ?Sized>(state: &S, committee: &Committee) -> Result<Committee, StateError> {
    let next = state.tip().height.saturating_add(1);
    let benched = crate::rotation::benched_at(state, committee, next)?;
    // `benched_at` names active members and leaves most of them leading.
    committee.benching(&benched).map_err(|e| StateError::Storage(format!("rotation from state: {e}")))
}

/// The members jailed for blocks at `height`, from `state` at any later tip,
/// as indices of the committee of `height`'s epoch (for many heights of the
/// tip's epoch, read [`Jailings`] once).
pub fn jailed_at<S: State + ?Sized>(state: &S, height: u64) -> Result<Vec<ValidatorIndex>, StateError> {
    let next = state.tip().height.saturating_add(1);
    Ok(Jailings::of(state, &epoch_base(state, height.min(next))?)?.at(height))
}

/// Why a certificate from outside does not prove its header final.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CertifiedError {
    /// The jailed list names a non-member, or jails everyone.
    #[error("the jailed list does not fit the committee: {0}")]
    BadJailedList(String),
    /// The header claims a committee other than the one the jailed list gives.
    #[error("the header names committee {found}, shard {shard}'s is {expected}")]
    WrongCommittee {
        /// The header's shard.
        shard: u32,
        /// Hash of the committee the jailed list gives.
        expected: Hash,
        /// The header's.
        found: Hash,
    },
    /// The certificate is for another block or height.
    #[error("the certificate is not for the header")]
    CertificateMismatch,
    /// The certificate does not verify against the committee.
    #[error("the certificate does not verify: {0}")]
    Certificate(String),
    /// The committee offered is no usable committee.
    #[error("the committee offered is unusable: {0}")]
    BadCommittee(String),
    /// A hand-over's header does not close an epoch.
    #[error("height {height} closes no epoch")]
    NotAnEpochEnd {
        /// The header's height.
        height: u64,
    },
    /// A hand-over names another epoch than the one after its header's.
    #[error("the committee is for epoch {found}; the header hands over to epoch {expected}")]
    WrongEpoch {
        /// The epoch after the header's.
        expected: u64,
        /// The record's.
        found: u64,
    },
    /// The committee offered is not the one the header hands over to.
    #[error("the header hands over to committee {expected}, not {found}")]
    NextCommittee {
        /// The header's `next_committee_hash`.
        expected: Hash,
        /// Hash of the committee offered.
        found: Hash,
    },
    /// Its signers hold a third of the genesis stake or less.
    #[error("the signers hold {signed} of the genesis stake; more than a third ({needed}) is needed")]
    TooLittleGenesisStake {
        /// Genesis stake of the signers.
        signed: u64,
        /// The genesis weak quorum.
        needed: u64,
    },
}

impl From<CommitteeError> for CertifiedError {
    fn from(e: CommitteeError) -> Self {
        CertifiedError::BadJailedList(e.to_string())
    }
}

/// Checks a hand-over: that `header`, certified by `certificate` under
/// `known` (the committee of its epoch before jailing, trusted: the
/// genesis one, or one an earlier hand-over proved) with the members of
/// `jailed` inactive, closes its epoch under `staking`, and that `next` is
/// the committee it hands over to. Returns the next epoch's committee (before
/// jailing), which the caller may trust from then on: following hand-overs
/// from genesis proves any later epoch's committee with no other trust.
pub fn verify_handover(
    known: &Committee,
    jailed: &[ValidatorIndex],
    chain_id: &str,
    staking: &crate::stake::StakingParams,
    header: &BlockHeader,
    certificate: &CommitCertificate,
    next: &crate::stake::CommitteeRecord,
) -> Result<Committee, CertifiedError> {
    if !staking.closes_epoch(header.height) {
        return Err(CertifiedError::NotAnEpochEnd { height: header.height });
    }
    let expected = staking.epoch_of(header.height).saturating_add(1);
    if next.epoch != expected {
        return Err(CertifiedError::WrongEpoch { expected, found: next.epoch });
    }
    verify_certified(known, jailed, chain_id, header, certificate)?;
    let committee = next.committee().map_err(|e| CertifiedError::BadCommittee(e.to_string()))?;
    let found = Hash(committee.hash());
    if found != header.next_committee_hash {
        return Err(CertifiedError::NextCommittee { expected: header.next_committee_hash, found });
    }
    Ok(committee)
}

/// Checks that `certificate` proves `header` final, where `genesis` is the
/// header's shard's genesis committee and `jailed` the members jailed at
/// the header's height (see the module docs for why the list need not be
/// trusted).
/// Returns that committee.
pub fn verify_certified(
    genesis: &Committee,
    jailed: &[ValidatorIndex],
    chain_id: &str,
    header: &BlockHeader,
    certificate: &CommitCertificate,
) -> Result<Committee, CertifiedError> {
    let committee = genesis.jailing(jailed)?;
    let expected = Hash(committee.hash());
    if header.committee_hash != expected {
        return Err(CertifiedError::WrongCommittee { shard: header.shard, expected, found: header.committee_hash });
    }
    if certificate.block_hash != header.hash().0 || certificate.height != header.height {
        return Err(CertifiedError::CertificateMismatch);
    }
    certificate.verify(&committee, chain_id, header.shard).map_err(|e| CertifiedError::Certificate(e.to_string()))?;
    let signed = genesis.stake_of(certificate.signatures.iter().map(|s| s.signer));
    let needed = genesis.weak_quorum_stake();
    if signed < needed {
        return Err(CertifiedError::TooLittleGenesisStake { signed, needed });
    }
    Ok(committee)
}
