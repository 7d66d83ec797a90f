//! Staking: who may bond stake to a validator, how it leaves again, and
//! which bonded validators an epoch's committee is drawn from.
//!
//! Staking is off unless the genesis sets [`StakingParams`]
//! (`params.staking`); then:
//!
//! * **Epochs.** Heights `e·E + 1 ..= (e + 1)·E` form epoch `e`, where `E` is
//!   `epoch_blocks`. The block at a multiple of `E` closes its epoch: it pays
//!   out the unbondings that matured ([`Unbonding`]).
//! * **Bond** ([`crate::TxKind::Bond`]). The sender (the validator's
//!   *operator*) moves stake from its balance to a validator of its own
//!   shard, naming the validator's consensus key (its address) and its p2p
//!   key, with a proof of possession: the validator key's signature over
//!   [`possession_digest`]. Without that proof anyone could bond someone
//!   else's key and so claim its votes. Only the operator that first
//!   bonded a validator may add to it; a genesis validator is its own
//!   operator.
//! * **Unbond** ([`crate::TxKind::Unbond`]). The operator takes stake out:
//!   it stops counting at once for the next committee and returns to the
//!   operator's balance at the end of epoch `now + unbonding_epochs`. What is
//!   left bonded is either nothing or at least `min_stake_units`.
//! * **Candidates.** The shard keeps the list of its bonded validators
//!   (`StateKey::Candidates`, at most [`MAX_CANDIDATES`]); [`select`] draws a
//!   committee from them: the top `max_committee_size` by stake, never a
//!   jailed one or one below the minimum, and never fewer than
//!   [`MIN_COMMITTEE`] (then the committee stays as it is).
//!
//! * **Hand-over.** The block that closes epoch `e` writes the committee of
//!   epoch `e + 1` ([`CommitteeRecord`], `StateKey::Committee(e + 1)`): [`select`]
//!   over the candidates as that block leaves them, or, if too few are
//!   eligible, the same members again. The first block of epoch `e + 1`
//!   is certified by it ([`crate::committee::current`]); jailing for
//!   equivocation still takes a member out at once, within an epoch.
//!
//! Not yet here (the staking issue's later steps): other shards and light
//! clients following a shard's hand-overs (until then the genesis refuses
//! staking on a network of several shards, whose receipts are checked
//! against the genesis committees, and the wallet's proofs verify only
//! blocks of epochs certified by the genesis committee), a validator
//! without chain history joining, bonding from another shard (a receipt),
//! slashing of stake while it unbonds, downtime jailing and `unjail`, and
//! delegation.

use palisade_consensus::{Committee, CommitteeError, Validator};
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    codec,
    hash::{Hash, domain},
    keys::{Keypair, Signature},
    state::{ShardContext, ValidatorRecord},
    tx::{SignedTx, TxBody, TxKind},
};

/// A shard never hands over to a committee smaller than this: four members
/// tolerate one fault.
pub const MIN_COMMITTEE: usize = 4;
/// Most validators bonded on one shard (members, candidates and those
/// still unbonding), so the candidate list stays one small state value.
pub const MAX_CANDIDATES: usize = 128;
/// Most unbondings one validator has in flight at once.
pub const MAX_UNBONDINGS: usize = 16;

/// The staking rules of a network (genesis `params.staking`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakingParams {
    /// Blocks per epoch; committees change only between epochs.
    pub epoch_blocks: u64,
    /// Least stake a validator keeps bonded (in units), unless it unbonds
    /// all of it.
    pub min_stake_units: u64,
    /// Most members of one shard's committee.
    pub max_committee_size: u32,
    /// Unbonded stake returns at the end of this many epochs after the one
    /// it was unbonded in.
    pub unbonding_epochs: u64,
}

impl StakingParams {
    /// The epoch of the block at `height` (height 0, genesis, is in epoch 0).
    pub fn epoch_of(&self, height: u64) -> u64 {
        height.saturating_sub(1).checked_div(self.epoch_blocks).unwrap_or(0)
    }

    /// Whether the block at `height` closes its epoch.
    pub fn closes_epoch(&self, height: u64) -> bool {
        height > 0 && self.epoch_blocks > 0 && height.is_multiple_of(self.epoch_blocks)
    }

    /// What is wrong with these rules, naming the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.epoch_blocks < 2 {
            return Err(("params.staking.epoch_blocks", "must be at least 2".into()));
        }
        if self.min_stake_units == 0 {
            return Err(("params.staking.min_stake_units", "must be positive".into()));
        }
        let size = self.max_committee_size as usize;
        if !(MIN_COMMITTEE..=MAX_CANDIDATES).contains(&size) {
            return Err((
                "params.staking.max_committee_size",
                format!("must be between {MIN_COMMITTEE} and {MAX_CANDIDATES}"),
            ));
        }
        if self.unbonding_epochs == 0 {
            return Err(("params.staking.unbonding_epochs", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Why a bond or an unbond is refused (inside
/// [`crate::TxError::Stake`]); nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StakeError {
    /// The genesis turned staking off.
    #[error("staking is off on this network")]
    Disabled,
    /// The shard named does not exist.
    #[error("there is no shard {shard} (the network has {shard_count})")]
    NoSuchShard {
        /// The shard named.
        shard: ShardId,
        /// Shards in the network.
        shard_count: u32,
    },
    /// Bonding to another shard's validator needs a receipt, which is not
    /// supported yet: bond from an account on the validator's shard.
    #[error(
        "the validator is for shard {validator_shard}, the sender lives in shard {sender_shard}: bond from an account on shard {validator_shard}"
    )]
    CrossShard {
        /// The shard the bond names.
        validator_shard: ShardId,
        /// The sender's.
        sender_shard: ShardId,
    },
    /// Bonding or unbonding nothing.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// The validator key's proof of possession does not verify (or the key
    /// is no usable ed25519 key).
    #[error("the validator's proof of possession does not verify")]
    BadPossessionProof,
    /// The validator was jailed for good (equivocation).
    #[error("validator {0} is jailed for good")]
    Jailed(Address),
    /// Another account bonded this validator first.
    #[error("validator is operated by {operator}; only it may bond to or unbond it")]
    NotOperator {
        /// The validator's operator.
        operator: Address,
    },
    /// The bond names another p2p key than the validator already has.
    #[error("the validator's p2p key is already set to another key")]
    P2pKeyMismatch,
    /// What would stay bonded is positive but below the minimum.
    #[error("{stake} units would stay bonded; the minimum is {min} (or unbond everything)")]
    BelowMinimum {
        /// What would stay bonded.
        stake: Amount,
        /// `min_stake_units`.
        min: Amount,
    },
    /// The shard already has as many eligible validators as its committee
    /// seats (or as many bonded ones as it keeps).
    #[error("shard {shard} already has {max} bonded validators")]
    CommitteeFull {
        /// The shard.
        shard: ShardId,
        /// Its limit.
        max: usize,
    },
    /// Unbonding from a validator not bonded on this shard.
    #[error("{0} is not a validator bonded on this shard")]
    NotBonded(Address),
    /// Unbonding more than is bonded.
    #[error("cannot unbond {requested} units: {bonded} are bonded")]
    TooMuch {
        /// What is bonded.
        bonded: Amount,
        /// What the transaction asked for.
        requested: Amount,
    },
    /// Unbonding everything would leave the shard fewer than
    /// [`MIN_COMMITTEE`] eligible validators.
    #[error("unbonding all of it would leave fewer than {MIN_COMMITTEE} eligible validators on the shard")]
    CommitteeTooSmall,
    /// The validator already has [`MAX_UNBONDINGS`] unbondings in flight.
    #[error("{MAX_UNBONDINGS} unbondings are already in flight; wait for the next epoch")]
    TooManyUnbondings,
}

/// The committee of an epoch (staking on): the value of
/// `StateKey::Committee(epoch)`, written at genesis and by each block that closes
/// an epoch, for the next. Quorums weigh the stake each member had bonded
/// then; what it bonds or unbonds meanwhile counts from the next epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeRecord {
    /// The epoch it certifies.
    pub epoch: u64,
    /// Its members with their stake, in committee order (which fixes
    /// leader rotation).
    pub members: Vec<(Address, Amount)>,
}

impl CommitteeRecord {
    /// The consensus committee it describes.
    pub fn committee(&self) -> Result<Committee, CommitteeError> {
        Committee::new(self.members.iter().map(|(a, s)| Validator { public_key: a.0, stake: s.units() }).collect())
    }
}

/// Stake on its way back to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbonding {
    /// How much.
    pub amount: Amount,
    /// Paid out by the block that closes this epoch.
    pub release_epoch: u64,
}

/// A bonded validator's staking facts, kept (with its [`ValidatorRecord`],
/// which holds the bonded stake itself) by the shard it is bonded on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeRecord {
    /// The account that bonded it: the only one that may add stake or
    /// unbond, and where unbonded stake returns. On the validator's shard.
    pub operator: Address,
    /// Its libp2p ed25519 public key, once a bond named it (genesis
    /// validators start without one).
    pub p2p_key: Option<[u8; 32]>,
    /// Stake unbonded and not yet paid out, oldest first.
    pub unbonding: Vec<Unbonding>,
}

impl StakeRecord {
    /// Units still unbonding.
    pub fn unbonding_total(&self) -> Option<Amount> {
        self.unbonding.iter().try_fold(Amount::ZERO, |sum, u| sum.checked_add(u.amount))
    }

    /// Takes out the unbondings paid by the block that closes `epoch`;
    /// returns their sum.
    pub fn release(&mut self, epoch: u64) -> Option<Amount> {
        let (due, kept): (Vec<Unbonding>, Vec<Unbonding>) =
            self.unbonding.iter().partition(|u| u.release_epoch <= epoch);
        self.unbonding = kept;
        due.iter().try_fold(Amount::ZERO, |sum, u| sum.checked_add(u.amount))
    }
}

/// What a validator's key signs to prove that the operator bonding it on
/// `shard` of `chain_id`, with `p2p_key`, holds it.
#[derive(Serialize)]
struct Possession<'a> {
    chain_id: &'a str,
    shard: ShardId,
    validator: &'a Address,
    operator: &'a Address,
    p2p_key: &'a [u8; 32],
}

/// The digest a validator key signs as its proof of possession.
pub fn possession_digest(
    chain_id: &str,
    shard: ShardId,
    validator: &Address,
    operator: &Address,
    p2p_key: &[u8; 32],
) -> Hash {
    let possession = Possession { chain_id, shard, validator, operator, p2p_key };
    Hash::digest(domain::STAKE_POSSESSION, &codec::encode(&possession))
}

/// The proof of possession `validator` signs for `operator`.
pub fn prove_possession(
    validator: &Keypair,
    chain_id: &str,
    shard: ShardId,
    operator: &Address,
    p2p_key: &[u8; 32],
) -> Signature {
    validator.sign_digest(&possession_digest(chain_id, shard, &validator.address(), operator, p2p_key))
}

/// Whether `proof` is `validator`'s proof of possession for this bond
/// (checked strictly: a small-order key proves nothing).
pub fn verify_possession(
    chain_id: &str,
    shard: ShardId,
    validator: &Address,
    operator: &Address,
    p2p_key: &[u8; 32],
    proof: &Signature,
) -> bool {
    crate::keys::verify_digest(validator, &possession_digest(chain_id, shard, validator, operator, p2p_key), proof)
}

/// `operator` bonds `amount` to `validator` on `shard` with p2p key
/// `p2p_key`, paying `fee`: the validator key signs the proof of
/// possession, the operator the transaction.
#[allow(clippy::too_many_arguments)] // each is one field of the bond
pub fn bond_tx(
    operator: &Keypair,
    validator: &Keypair,
    chain_id: &str,
    nonce: u64,
    shard: ShardId,
    amount: Amount,
    p2p_key: [u8; 32],
    fee: Amount,
) -> SignedTx {
    let proof = prove_possession(validator, chain_id, shard, &operator.address(), &p2p_key);
    let kind = TxKind::Bond { validator: validator.address(), shard, amount, p2p_key, proof };
    TxBody { chain_id: chain_id.to_string(), sender: operator.address(), nonce, fee, kind, expires_at: None }
        .sign(operator)
}

/// `operator` unbonds `amount` of `validator`'s stake, paying `fee`.
pub fn unbond_tx(
    operator: &Keypair,
    chain_id: &str,
    nonce: u64,
    validator: Address,
    amount: Amount,
    fee: Amount,
) -> SignedTx {
    let kind = TxKind::Unbond { validator, amount };
    TxBody { chain_id: chain_id.to_string(), sender: operator.address(), nonce, fee, kind, expires_at: None }
        .sign(operator)
}

/// The rules a bond or an unbond must pass whatever the state: staking is
/// on, the shard is the sender's, the amount is positive and the proof of
/// possession verifies. Transfers pass. The mempool checks these at
/// admission and execution again.
pub fn check_static(context: &ShardContext, body: &TxBody) -> Result<(), StakeError> {
    let (amount, bond) = match &body.kind {
        TxKind::Transfer { .. } => return Ok(()),
        TxKind::Bond { validator, shard, amount, p2p_key, proof } => {
            (amount, Some((validator, *shard, p2p_key, proof)))
        }
        TxKind::Unbond { amount, .. } => (amount, None),
    };
    if context.staking.is_none() {
        return Err(StakeError::Disabled);
    }
    if *amount == Amount::ZERO {
        return Err(StakeError::ZeroAmount);
    }
    let Some((validator, shard, p2p_key, proof)) = bond else {
        return Ok(());
    };
    if shard >= context.shard_count {
        return Err(StakeError::NoSuchShard { shard, shard_count: context.shard_count });
    }
    let sender_shard = body.sender.shard(context.shard_count);
    if shard != sender_shard {
        return Err(StakeError::CrossShard { validator_shard: shard, sender_shard });
    }
    if !verify_possession(&body.chain_id, shard, validator, &body.sender, p2p_key, proof) {
        return Err(StakeError::BadPossessionProof);
    }
    Ok(())
}

/// Whether `record` may sit on a committee under `params`.
pub fn eligible(params: &StakingParams, record: &ValidatorRecord) -> bool {
    !record.jailed && record.stake.units() >= params.min_stake_units
}

/// The committee drawn from `candidates` (each bonded validator with its
/// record): the eligible ones, the `max_committee_size` with the most stake
/// (ties to the lower address), in address order (which fixes leader
/// rotation). `None` if fewer than [`MIN_COMMITTEE`] are eligible: the
/// committee then stays as it is.
pub fn select(
    params: &StakingParams,
    candidates: impl IntoIterator<Item = (Address, ValidatorRecord)>,
) -> Option<Vec<(Address, Amount)>> {
    let mut eligible: Vec<(Address, Amount)> = candidates
        .into_iter()
        .filter(|(_, record)| eligible(params, record))
        .map(|(address, record)| (address, record.stake))
        .collect();
    if eligible.len() < MIN_COMMITTEE {
        return None;
    }
    eligible.sort_by(|(a, a_stake), (b, b_stake)| b_stake.cmp(a_stake).then(a.cmp(b)));
    eligible.truncate(params.max_committee_size as usize);
    eligible.sort_by_key(|(address, _)| *address);
    Some(eligible)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: StakingParams =
        StakingParams { epoch_blocks: 10, min_stake_units: 100, max_committee_size: 5, unbonding_epochs: 2 };

    fn record(stake: u64, jailed: bool) -> ValidatorRecord {
        ValidatorRecord { stake: Amount(stake), rewards: Amount::ZERO, jailed }
    }

    fn address(byte: u8) -> Address {
        Address([byte; 32])
    }

    #[test]
    fn epochs_are_closed_by_multiples_of_their_length() {
        assert_eq!(PARAMS.epoch_of(0), 0);
        assert_eq!(PARAMS.epoch_of(1), 0);
        assert_eq!(PARAMS.epoch_of(10), 0);
        assert_eq!(PARAMS.epoch_of(11), 1);
        assert!(!PARAMS.closes_epoch(0));
        assert!(!PARAMS.closes_epoch(9));
        assert!(PARAMS.closes_epoch(10));
        assert!(PARAMS.closes_epoch(20));
    }

    #[test]
    fn rules_are_checked_by_field() {
        assert_eq!(PARAMS.check(), Ok(()));
        let bad = [
            (StakingParams { epoch_blocks: 1, ..PARAMS }, "params.staking.epoch_blocks"),
            (StakingParams { min_stake_units: 0, ..PARAMS }, "params.staking.min_stake_units"),
            (StakingParams { max_committee_size: 3, ..PARAMS }, "params.staking.max_committee_size"),
            (StakingParams { max_committee_size: 129, ..PARAMS }, "params.staking.max_committee_size"),
            (StakingParams { unbonding_epochs: 0, ..PARAMS }, "params.staking.unbonding_epochs"),
        ];
        for (params, field) in bad {
            assert_eq!(params.check().map_err(|(f, _)| f), Err(field));
        }
    }

    #[test]
    fn select_takes_the_most_staked_eligible_in_address_order() {
        let candidates = vec![
            (address(1), record(500, false)),
            (address(2), record(90, false)),   // below the minimum
            (address(3), record(1_000, true)), // jailed
            (address(4), record(300, false)),
            (address(5), record(300, false)),
            (address(6), record(700, false)),
            (address(7), record(200, false)),
            (address(8), record(200, false)), // loses the tie to 7 for the last seat
        ];
        let chosen = select(&PARAMS, candidates).unwrap();
        let addresses: Vec<Address> = chosen.iter().map(|(a, _)| *a).collect();
        assert_eq!(addresses, vec![address(1), address(4), address(5), address(6), address(7)]);
        assert_eq!(chosen[0].1, Amount(500));
    }

    #[test]
    fn select_keeps_the_committee_when_too_few_are_eligible() {
        let candidates = vec![
            (address(1), record(500, false)),
            (address(2), record(500, false)),
            (address(3), record(500, false)),
            (address(4), record(50, false)),
        ];
        assert_eq!(select(&PARAMS, candidates), None);
    }

    #[test]
    fn possession_binds_every_field() {
        let validator = Keypair::dev("validator");
        let operator = Keypair::dev("operator").address();
        let p2p = [7u8; 32];
        let proof = prove_possession(&validator, "chain", 1, &operator, &p2p);
        let v = validator.address();
        assert!(verify_possession("chain", 1, &v, &operator, &p2p, &proof));
        assert!(!verify_possession("other", 1, &v, &operator, &p2p, &proof));
        assert!(!verify_possession("chain", 2, &v, &operator, &p2p, &proof));
        assert!(!verify_possession("chain", 1, &operator, &operator, &p2p, &proof));
        assert!(!verify_possession("chain", 1, &v, &v, &p2p, &proof));
        assert!(!verify_possession("chain", 1, &v, &operator, &[8u8; 32], &proof));
        // A small-order key (the identity point) proves nothing.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!verify_possession("chain", 1, &Address(identity), &operator, &p2p, &Signature([0; 64])));
    }

    #[test]
    fn release_pays_out_what_matured() {
        let mut record = StakeRecord {
            operator: address(1),
            p2p_key: None,
            unbonding: vec![
                Unbonding { amount: Amount(10), release_epoch: 3 },
                Unbonding { amount: Amount(20), release_epoch: 4 },
                Unbonding { amount: Amount(5), release_epoch: 3 },
            ],
        };
        assert_eq!(record.unbonding_total(), Some(Amount(35)));
        assert_eq!(record.release(2), Some(Amount::ZERO));
        assert_eq!(record.release(3), Some(Amount(15)));
        assert_eq!(record.unbonding, vec![Unbonding { amount: Amount(20), release_epoch: 4 }]);
        assert_eq!(record.release(9), Some(Amount(20)));
        assert!(record.unbonding.is_empty());
    }
}
