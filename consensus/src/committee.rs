//! The committee of one shard: who votes, with how much stake, and the quorum
//! arithmetic every certificate is checked against.
//!
//! A committee is validated once, when it is built or decoded: it is never
//! empty, keys are distinct valid ed25519 points that are not of small order,
//! some stake is positive and the total fits in a `u64`. Everything downstream
//! (quorums, certificates, leader rotation) relies on that.
//!
//! A member with zero stake is *inactive*: jailed for misbehaviour, it keeps
//! its index (so certificates and evidence keep naming the same signers) but
//! has no vote and never leads ([`Committee::jailing`]).
//!
//! An active member may also be *benched*: it keeps its vote but is left out
//! of the leader rotation for a while, because its recent turns as leader
//! ended in view changes ([`Committee::benching`]; the ledger decides who,
//! from the chain, so every replica rotates alike). Benching changes who
//! leads, never who signs: it is not part of [`Committee::hash`] nor of the
//! wire form, which decodes with every active member in the rotation.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Domain separation for [`Committee::hash`].
const COMMITTEE_HASH_CONTEXT: &str = "palisade consensus committee v1";

/// Position of a validator in its committee's list. Messages and certificates
/// name their signers by index, which keeps certificates small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValidatorIndex(pub u32);

impl ValidatorIndex {
    /// The index as a `usize`, for looking up the committee's lists.
    pub fn as_usize(self) -> usize {
        // u32 always fits in usize on the 32- and 64-bit targets we build for.
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl std::fmt::Display for ValidatorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// One member of a committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The validator's ed25519 public key (compressed Edwards point).
    pub public_key: [u8; 32],
    /// Voting weight, in stake units. Always positive.
    pub stake: u64,
}

/// Why a list of validators is not a usable committee.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommitteeError {
    /// No validators at all.
    #[error("committee is empty")]
    Empty,
    /// More validators than a [`ValidatorIndex`] can name.
    #[error("committee has {0} validators, more than a u32 index can name")]
    TooLarge(usize),
    /// Every member is inactive: no quorum could ever form.
    #[error("no member has any stake")]
    NoStake,
    /// [`Committee::jailing`] or [`Committee::benching`] named a non-member.
    #[error("validator {0} is not a member")]
    NotAMember(ValidatorIndex),
    /// [`Committee::benching`] would leave nobody to lead.
    #[error("benching would leave no active member in the leader rotation")]
    NoLeader,
    /// The same key appears twice.
    #[error("validator {0} repeats an earlier public key")]
    DuplicateKey(ValidatorIndex),
    /// The key is not a valid ed25519 point, or is of small order.
    #[error("validator {0} has an invalid or weak public key")]
    InvalidKey(ValidatorIndex),
    /// The stakes add up to more than `u64::MAX`.
    #[error("total stake overflows u64")]
    StakeOverflow,
}

/// The wire and storage form of a committee: just the list.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CommitteeSpec {
    validators: Vec<Validator>,
}

/// The validators of one shard, with cached keys and totals.
///
/// Serialises as `{ "validators": [ { "public_key": .., "stake": .. }, .. ] }`
/// and is re-validated on decode.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "CommitteeSpec", into = "CommitteeSpec")]
pub struct Committee {
    validators: Vec<Validator>,
    keys: Vec<VerifyingKey>,
    by_key: BTreeMap<[u8; 32], ValidatorIndex>,
    total_stake: u64,
    /// Members with stake that are not benched, in index order: the leader
    /// rotation. Never empty.
    rotation: Vec<ValidatorIndex>,
}

impl PartialEq for Committee {
    fn eq(&self, other: &Self) -> bool {
        self.validators == other.validators && self.rotation == other.rotation
    }
}

impl Eq for Committee {}

impl TryFrom<CommitteeSpec> for Committee {
    type Error = CommitteeError;

    fn try_from(spec: CommitteeSpec) -> Result<Self, Self::Error> {
        Committee::new(spec.validators)
    }
}

impl From<Committee> for CommitteeSpec {
    fn from(committee: Committee) -> Self {
        CommitteeSpec { validators: committee.validators }
    }
}

impl Committee {
    /// Validates `validators` and builds the committee. The order of the list
    /// is significant: it defines [`ValidatorIndex`] and leader rotation.
    pub fn new(validators: Vec<Validator>) -> Result<Self, CommitteeError> {
        if validators.is_empty() {
            return Err(CommitteeError::Empty);
        }
        if u32::try_from(validators.len()).is_err() {
            return Err(CommitteeError::TooLarge(validators.len()));
        }
        let mut keys = Vec::with_capacity(validators.len());
        let mut by_key = BTreeMap::new();
        let mut total_stake: u64 = 0;
        for (position, validator) in validators.iter().enumerate() {
            let index =
                ValidatorIndex(u32::try_from(position).map_err(|_| CommitteeError::TooLarge(validators.len()))?);
            let key = VerifyingKey::from_bytes(&validator.public_key).map_err(|_| CommitteeError::InvalidKey(index))?;
            if key.is_weak() {
                return Err(CommitteeError::InvalidKey(index));
            }
            if by_key.insert(validator.public_key, index).is_some() {
                return Err(CommitteeError::DuplicateKey(index));
            }
            keys.push(key);
            total_stake = total_stake.checked_add(validator.stake).ok_or(CommitteeError::StakeOverflow)?;
        }
        let active: Vec<ValidatorIndex> = (0..validators.len())
            .filter(|&i| validators.get(i).is_some_and(|v| v.stake > 0))
            .filter_map(|i| u32::try_from(i).ok().map(ValidatorIndex))
            .collect();
        if active.is_empty() {
            return Err(CommitteeError::NoStake);
        }
        Ok(Committee { validators, keys, by_key, total_stake, rotation: active })
    }

    /// This committee with the members of `jailed` made inactive (stake
    /// zero). Indices are unchanged.
    pub fn jailing(&self, jailed: &[ValidatorIndex]) -> Result<Committee, CommitteeError> {
        let mut validators = self.validators.clone();
        for &index in jailed {
            validators.get_mut(index.as_usize()).ok_or(CommitteeError::NotAMember(index))?.stake = 0;
        }
        Committee::new(validators)
    }

    /// This committee with the active members of `benched` left out of the
    /// leader rotation (they keep their stake and vote); the members not
    /// named are back in it. Jailed members in `benched` change nothing.
    /// Refused if nobody would be left to lead.
    pub fn benching(&self, benched: &[ValidatorIndex]) -> Result<Committee, CommitteeError> {
        if let Some(&outsider) = benched.iter().find(|index| self.validator(**index).is_none()) {
            return Err(CommitteeError::NotAMember(outsider));
        }
        let rotation: Vec<ValidatorIndex> =
            self.members().filter(|index| self.is_active(*index) && !benched.contains(index)).collect();
        if rotation.is_empty() {
            return Err(CommitteeError::NoLeader);
        }
        Ok(Committee { rotation, ..self.clone() })
    }

    /// Every member's index, in order.
    fn members(&self) -> impl Iterator<Item = ValidatorIndex> + '_ {
        (0..self.validators.len()).filter_map(|i| u32::try_from(i).ok().map(ValidatorIndex))
    }

    /// The members with stake, in index order.
    pub fn active(&self) -> Vec<ValidatorIndex> {
        self.members().filter(|&index| self.is_active(index)).collect()
    }

    /// The active members left out of the leader rotation, in index order.
    pub fn benched(&self) -> Vec<ValidatorIndex> {
        self.members().filter(|index| self.is_active(*index) && !self.rotation.contains(index)).collect()
    }

    /// The members that take turns to lead, in index order.
    pub fn rotation(&self) -> &[ValidatorIndex] {
        &self.rotation
    }

    /// Whether `index` is a member with stake.
    pub fn is_active(&self, index: ValidatorIndex) -> bool {
        self.stake(index) > 0
    }

    /// The inactive (jailed) members, in index order.
    pub fn inactive(&self) -> Vec<ValidatorIndex> {
        self.members().filter(|&index| !self.is_active(index)).collect()
    }

    /// The validators, in index order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Number of validators (never zero).
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false: a committee is never empty. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The validator at `index`, if it is a member.
    pub fn validator(&self, index: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(index.as_usize())
    }

    /// Stake of `index`, zero for non-members.
    pub fn stake(&self, index: ValidatorIndex) -> u64 {
        self.validator(index).map_or(0, |v| v.stake)
    }

    /// The decoded verifying key of `index`, if it is a member.
    pub(crate) fn verifying_key(&self, index: ValidatorIndex) -> Option<&VerifyingKey> {
        self.keys.get(index.as_usize())
    }

    /// Looks a validator up by public key.
    pub fn index_of(&self, public_key: &[u8; 32]) -> Option<ValidatorIndex> {
        self.by_key.get(public_key).copied()
    }

    /// Sum of all stakes.
    pub fn total_stake(&self) -> u64 {
        self.total_stake
    }

    /// The smallest stake `q` with `3q > 2 * total`: validators holding at
    /// least this much stake hold *more* than two thirds. Two such sets always
    /// share more than a third of the stake, hence at least one honest
    /// validator while Byzantine stake stays below a third.
    pub fn quorum_stake(&self) -> u64 {
        let total = u128::from(self.total_stake);
        let quorum = total.saturating_mul(2).checked_div(3).unwrap_or(0).saturating_add(1);
        // Invariant: quorum is the smallest q with 3q > 2T, and q <= T.
        assert!(quorum.saturating_mul(3) > total.saturating_mul(2));
        assert!(quorum.saturating_sub(1).saturating_mul(3) <= total.saturating_mul(2));
        assert!(quorum <= total);
        u64::try_from(quorum).unwrap_or(u64::MAX)
    }

    /// The smallest stake `w` with `3w > total`: more than a third, so any set
    /// this heavy contains at least one honest validator.
    pub fn weak_quorum_stake(&self) -> u64 {
        let total = u128::from(self.total_stake);
        let weak = total.checked_div(3).unwrap_or(0).saturating_add(1);
        assert!(weak.saturating_mul(3) > total);
        u64::try_from(weak).unwrap_or(u64::MAX)
    }

    /// The smallest stake `b` with `b > total - quorum`: validators holding
    /// this much can keep every quorum from forming without them. At most
    /// the weak quorum, and below it when the total is a multiple of three
    /// (three equal members left after a jailing: one is enough). Byzantine
    /// stake this large stops the shard anyway, so following a blocking set
    /// gives it nothing it did not have.
    pub fn blocking_stake(&self) -> u64 {
        self.total_stake.saturating_sub(self.quorum_stake()).saturating_add(1)
    }

    /// Sum of the stakes of `signers`, counting each member once and ignoring
    /// non-members. Never overflows: it is at most the total stake.
    pub fn stake_of<I: IntoIterator<Item = ValidatorIndex>>(&self, signers: I) -> u64 {
        let unique: std::collections::BTreeSet<ValidatorIndex> = signers.into_iter().collect();
        unique.into_iter().map(|index| self.stake(index)).fold(0u64, u64::saturating_add)
    }

    /// The leader of `(height, view)`: the member at position
    /// `(height + view) mod n` of the `n` members of the rotation, in index
    /// order.
    ///
    /// Round-robin, not stake-weighted: every member of the rotation leads
    /// equally often, consecutive heights start with different leaders, and
    /// a failed view hands over to the next one. Jailed and benched members
    /// are skipped, so they cost no view timeouts.
    pub fn leader(&self, height: u64, view: u64) -> ValidatorIndex {
        let n = u64::try_from(self.rotation.len()).unwrap_or(u64::MAX);
        let h = height.checked_rem(n).unwrap_or(0);
        let v = view.checked_rem(n).unwrap_or(0);
        // h, v < n <= u32::MAX, so the sum cannot overflow a u64.
        let position = h.saturating_add(v).checked_rem(n).unwrap_or(0);
        let position = usize::try_from(position).unwrap_or(0);
        // The rotation is never empty (checked in `new` and `benching`).
        self.rotation.get(position).copied().unwrap_or(ValidatorIndex(0))
    }

    /// A digest identifying this committee (keys, stakes and order).
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key(COMMITTEE_HASH_CONTEXT);
        for validator in &self.validators {
            hasher.update(&validator.public_key);
            hasher.update(&validator.stake.to_le_bytes());
        }
        *hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn committee(stakes: &[u64]) -> Committee {
        Committee::new(
            stakes
                .iter()
                .enumerate()
                .map(|(i, &stake)| Validator {
                    public_key: SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key().to_bytes(),
                    stake,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn quorum_is_smallest_stake_above_two_thirds() {
        // (stakes, quorum, weak quorum, blocking)
        let cases: &[(&[u64], u64, u64, u64)] = &[
            (&[1, 1, 1, 1], 3, 2, 2),
            (&[1, 1, 1], 3, 2, 1),
            (&[1; 7], 5, 3, 3),
            (&[1; 6], 5, 3, 2),
            (&[10, 20, 30, 40], 67, 34, 34),
            (&[u64::MAX / 2, u64::MAX / 2], (u64::MAX / 2 * 2) / 3 * 2 + 1, 0, 0),
        ];
        for (stakes, quorum, weak, blocking) in cases {
            let c = committee(stakes);
            let total = u128::from(c.total_stake());
            let q = u128::from(c.quorum_stake());
            assert!(3 * q > 2 * total && 3 * (q - 1) <= 2 * total, "{stakes:?}");
            if *weak != 0 {
                assert_eq!(c.quorum_stake(), *quorum, "{stakes:?}");
                assert_eq!(c.weak_quorum_stake(), *weak, "{stakes:?}");
                assert_eq!(c.blocking_stake(), *blocking, "{stakes:?}");
            }
            // A blocking set leaves less than a quorum to everyone else.
            let b = u128::from(c.blocking_stake());
            assert!(total - b < q && total - (b - 1) >= q, "{stakes:?}");
        }
    }

    #[test]
    fn rejects_bad_committees() {
        assert_eq!(Committee::new(vec![]), Err(CommitteeError::Empty));
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes();
        let v = |stake| Validator { public_key: key, stake };
        assert_eq!(Committee::new(vec![v(0)]), Err(CommitteeError::NoStake));
        assert_eq!(Committee::new(vec![v(1), v(1)]), Err(CommitteeError::DuplicateKey(ValidatorIndex(1))));
        // The identity point has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            Committee::new(vec![Validator { public_key: identity, stake: 1 }]),
            Err(CommitteeError::InvalidKey(ValidatorIndex(0)))
        );
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes();
        assert_eq!(
            Committee::new(vec![v(u64::MAX), Validator { public_key: other, stake: 1 }]),
            Err(CommitteeError::StakeOverflow)
        );
    }

    #[test]
    fn leader_rotates_round_robin_and_serde_round_trips() {
        let c = committee(&[1, 1, 1, 1]);
        assert_eq!(c.leader(0, 0), ValidatorIndex(0));
        assert_eq!(c.leader(1, 0), ValidatorIndex(1));
        assert_eq!(c.leader(1, 3), ValidatorIndex(0));
        assert_eq!(c.leader(u64::MAX, u64::MAX), c.leader(u64::MAX, u64::MAX));
        let json = serde_json_like(&c);
        let back: Committee = bincode::serde::decode_from_slice(&json, bincode::config::standard()).unwrap().0;
        assert_eq!(back, c);
        assert_eq!(back.hash(), c.hash());
        assert_eq!(c.index_of(&c.validators()[2].public_key), Some(ValidatorIndex(2)));
    }

    #[test]
    fn jailed_members_keep_their_index_but_lose_vote_and_turn() {
        let c = committee(&[1, 1, 1, 1]);
        let jailed = c.jailing(&[ValidatorIndex(1)]).unwrap();
        assert_ne!(jailed.hash(), c.hash(), "the committee hash must change");
        assert_eq!(jailed.len(), 4);
        assert_eq!(jailed.total_stake(), 3);
        assert_eq!(jailed.quorum_stake(), 3);
        assert!(!jailed.is_active(ValidatorIndex(1)));
        assert_eq!(jailed.inactive(), vec![ValidatorIndex(1)]);
        assert_eq!(jailed.index_of(&c.validators()[2].public_key), Some(ValidatorIndex(2)));
        // Rotation over v0, v2, v3.
        let leaders: Vec<u32> = (0..6).map(|h| jailed.leader(h, 0).0).collect();
        assert_eq!(leaders, vec![0, 2, 3, 0, 2, 3]);
        assert_eq!(jailed.leader(1, 1), ValidatorIndex(3));
        assert_eq!(c.jailing(&[ValidatorIndex(9)]), Err(CommitteeError::NotAMember(ValidatorIndex(9))));
        let all: Vec<ValidatorIndex> = (0..4).map(ValidatorIndex).collect();
        assert_eq!(c.jailing(&all), Err(CommitteeError::NoStake));
        // Decoding re-validates and rebuilds the rotation.
        let bytes = serde_json_like(&jailed);
        let back: Committee = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap().0;
        assert_eq!(back.leader(1, 0), ValidatorIndex(2));
    }

    #[test]
    fn benched_members_vote_but_do_not_lead() {
        let c = committee(&[1, 1, 1, 1]);
        let benched = c.benching(&[ValidatorIndex(2)]).unwrap();
        assert_eq!(benched.hash(), c.hash(), "benching is not part of the committee's identity");
        assert_ne!(benched, c, "but replicas see the rotation change");
        assert_eq!(benched.total_stake(), 4);
        assert!(benched.is_active(ValidatorIndex(2)));
        assert_eq!(benched.benched(), vec![ValidatorIndex(2)]);
        assert_eq!(benched.rotation(), &[ValidatorIndex(0), ValidatorIndex(1), ValidatorIndex(3)]);
        let leaders: Vec<u32> = (0..6).map(|h| benched.leader(h, 0).0).collect();
        assert_eq!(leaders, vec![0, 1, 3, 0, 1, 3]);
        // Benching again replaces the set; a jailed member stays out anyway.
        let jailed = c.jailing(&[ValidatorIndex(0)]).unwrap();
        let back = jailed.benching(&[ValidatorIndex(0)]).unwrap();
        assert_eq!(back.rotation(), &[ValidatorIndex(1), ValidatorIndex(2), ValidatorIndex(3)]);
        assert!(back.benched().is_empty());
        assert_eq!(benched.benching(&[]).unwrap(), c);
        assert_eq!(c.benching(&[ValidatorIndex(7)]), Err(CommitteeError::NotAMember(ValidatorIndex(7))));
        let all: Vec<ValidatorIndex> = (0..4).map(ValidatorIndex).collect();
        assert_eq!(c.benching(&all), Err(CommitteeError::NoLeader));
        // The wire form carries no rotation: every active member leads again.
        let bytes = serde_json_like(&benched);
        let decoded: Committee = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap().0;
        assert_eq!(decoded, c);
    }

    fn serde_json_like(c: &Committee) -> Vec<u8> {
        bincode::serde::encode_to_vec(c, bincode::config::standard()).unwrap()
    }
}
