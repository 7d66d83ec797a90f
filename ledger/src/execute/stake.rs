//! Executing bonds and unbonds on the [`Overlay`], and paying out the
//! unbondings that matured when a block closes its epoch. The rules are
//! those of [`crate::stake`]; the checks that need no state
//! ([`crate::stake::check_static`]) have passed before these run.

use crate::{
    address::Address,
    amount::Amount,
    stake::{
        self, CommitteeRecord, MAX_CANDIDATES, MAX_UNBONDINGS, MIN_COMMITTEE, StakeError, StakeRecord, StakingParams,
        Unbonding,
    },
    state::{ShardContext, State, StateError, StateExt, ValidatorRecord},
};

use super::{BlockError, TxError, error::Failure, overlay::Overlay};

/// What one bond or unbond writes: the validator's two records, and the
/// candidate list if a validator joined it.
pub(super) struct StakeChange {
    validator: Address,
    record: ValidatorRecord,
    stake: StakeRecord,
    candidates: Option<Vec<Address>>,
}

impl StakeChange {
    /// The validator record it writes, if it is `validator`'s.
    pub(super) fn record_of(&self, validator: &Address) -> Option<ValidatorRecord> {
        (self.validator == *validator).then_some(self.record)
    }
}

/// The staking rules, or [`StakeError::Disabled`].
fn params(context: &ShardContext) -> Result<StakingParams, TxError> {
    context.staking.ok_or(TxError::Stake(StakeError::Disabled))
}

/// `sender` bonds `amount` to `validator` with `p2p_key`.
pub(super) fn bond<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    sender: &Address,
    validator: &Address,
    amount: Amount,
    p2p_key: [u8; 32],
) -> Result<StakeChange, Failure> {
    let params = params(context)?;
    let existing = overlay.validator(validator)?;
    if existing.is_some_and(|record| record.jailed) || overlay.state.slashed(validator)?.is_some() {
        return Err(StakeError::Jailed(*validator).into());
    }
    let stake = match overlay.stake(validator)? {
        Some(mut stake) => {
            if stake.operator != *sender {
                return Err(StakeError::NotOperator { operator: stake.operator }.into());
            }
            match stake.p2p_key {
                Some(key) if key != p2p_key => return Err(StakeError::P2pKeyMismatch.into()),
                _ => stake.p2p_key = Some(p2p_key),
            }
            stake
        }
        None => StakeRecord { operator: *sender, p2p_key: Some(p2p_key), unbonding: Vec::new() },
    };
    // New, or back after it unbonded everything and was paid out.
    let candidates = overlay.candidates()?;
    let candidates = match candidates.binary_search(validator) {
        Ok(_) => None,
        Err(at) => Some(join(overlay, context, &params, candidates, at, validator)?),
    };
    let mut record = existing.unwrap_or_default();
    record.stake = record.stake.checked_add(amount).ok_or(TxError::Overflow)?;
    let min = Amount(params.min_stake_units);
    if record.stake < min {
        return Err(StakeError::BelowMinimum { stake: record.stake, min }.into());
    }
    Ok(StakeChange { validator: *validator, record, stake, candidates })
}

/// `candidates` with `validator`, new to it, inserted `at` its place, if
/// the shard has room for it.
fn join<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    params: &StakingParams,
    mut candidates: Vec<Address>,
    at: usize,
    validator: &Address,
) -> Result<Vec<Address>, Failure> {
    let eligible = eligible_count(overlay, params, &candidates)?;
    let seats = params.max_committee_size as usize;
    if eligible >= seats || candidates.len() >= MAX_CANDIDATES {
        let max = if eligible >= seats { seats } else { MAX_CANDIDATES };
        return Err(StakeError::CommitteeFull { shard: context.shard, max }.into());
    }
    candidates.insert(at, *validator);
    Ok(candidates)
}

/// How many of `candidates` may sit on a committee, as this block leaves
/// them.
fn eligible_count<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    params: &StakingParams,
    candidates: &[Address],
) -> Result<usize, StateError> {
    let mut eligible = 0usize;
    for candidate in candidates {
        if overlay.validator(candidate)?.is_some_and(|record| stake::eligible(params, &record)) {
            eligible = eligible.saturating_add(1);
        }
    }
    Ok(eligible)
}

/// `sender` unbonds `amount` of `validator`'s stake in the block at `height`.
pub(super) fn unbond<S: State + ?Sized>(
    overlay: &Overlay<'_, S>,
    context: &ShardContext,
    sender: &Address,
    validator: &Address,
    amount: Amount,
    height: u64,
) -> Result<StakeChange, Failure> {
    let params = params(context)?;
    let (Some(mut stake), Some(mut record)) = (overlay.stake(validator)?, overlay.validator(validator)?) else {
        return Err(StakeError::NotBonded(*validator).into());
    };
    if stake.operator != *sender {
        return Err(StakeError::NotOperator { operator: stake.operator }.into());
    }
    let Some(remaining) = record.stake.checked_sub(amount) else {
        return Err(StakeError::TooMuch { bonded: record.stake, requested: amount }.into());
    };
    let min = Amount(params.min_stake_units);
    if remaining != Amount::ZERO && remaining < min {
        return Err(StakeError::BelowMinimum { stake: remaining, min }.into());
    }
    if remaining == Amount::ZERO
        && stake::eligible(&params, &record)
        && eligible_count(overlay, &params, &overlay.candidates()?)? <= MIN_COMMITTEE
    {
        return Err(StakeError::CommitteeTooSmall.into());
    }
    if stake.unbonding.len() >= MAX_UNBONDINGS {
        return Err(StakeError::TooManyUnbondings.into());
    }
    let release_epoch = params.epoch_of(height).checked_add(params.unbonding_epochs).ok_or(TxError::Overflow)?;
    stake.unbonding.push(Unbonding { amount, release_epoch });
    record.stake = remaining;
    Ok(StakeChange { validator: *validator, record, stake, candidates: None })
}

impl<S: State + ?Sized> Overlay<'_, S> {
    /// Writes what [`bond`] or [`unbond`] decided.
    pub(super) fn apply_stake(&mut self, change: StakeChange) {
        self.validators.insert(change.validator, change.record);
        self.stakes.insert(change.validator, change.stake);
        if let Some(candidates) = change.candidates {
            self.candidates = Some(candidates);
        }
    }

    /// The staking record of `address`, with this block's changes.
    pub(super) fn stake(&self, address: &Address) -> Result<Option<StakeRecord>, StateError> {
        match self.stakes.get(address) {
            Some(record) => Ok(Some(record.clone())),
            None => self.state.stake(address),
        }
    }

    /// The candidate list, with this block's changes.
    pub(super) fn candidates(&self) -> Result<Vec<Address>, StateError> {
        match &self.candidates {
            Some(candidates) => Ok(candidates.clone()),
            None => self.state.candidates(),
        }
    }

    /// The committee that stays when too few validators are eligible (only
    /// jailing gets there: an unbond that would is refused): `epoch`'s
    /// members that still have stake and are not jailed, each weighing
    /// what it has bonded now (a member that unbonded meanwhile must not
    /// vote with stake it no longer has); all of them as they were if none
    /// is left.
    fn keep_committee(&self, epoch: u64) -> Result<Vec<(Address, Amount)>, BlockError> {
        let record = self.state.committee_record(epoch)?.ok_or_else(|| {
            StateError::Storage(format!("staking is on but the state holds no committee of epoch {epoch}"))
        })?;
        let mut kept = Vec::with_capacity(record.members.len());
        for (address, _) in &record.members {
            if let Some(now) = self.validator(address)?.filter(|r| !r.jailed && r.stake != Amount::ZERO) {
                kept.push((*address, now.stake));
            }
        }
        Ok(if kept.is_empty() { record.members } else { kept })
    }

    /// If the block at `height` closes its epoch: pays each operator the
    /// unbondings that matured, drops from the candidate list the
    /// validators left with no stake and nothing unbonding, and writes the
    /// next epoch's committee: [`stake::select`] over the candidates as
    /// this block leaves them, or the same members if too few are eligible.
    pub(super) fn close_epoch(&mut self, context: &ShardContext, height: u64) -> Result<(), BlockError> {
        let Some(params) = context.staking.filter(|params| params.closes_epoch(height)) else {
            return Ok(());
        };
        let epoch = params.epoch_of(height);
        let candidates = self.candidates()?;
        // Only drops, so a shorter list is a changed one.
        let listed = candidates.len();
        let mut kept = Vec::with_capacity(listed);
        for validator in candidates {
            let Some(mut stake) = self.stake(&validator)? else { continue };
            let due = stake.release(epoch).ok_or(BlockError::StakeOverflow)?;
            if due != Amount::ZERO {
                let mut operator = self.account(&stake.operator)?;
                operator.balance = operator.balance.checked_add(due).ok_or(BlockError::StakeOverflow)?;
                self.accounts.insert(stake.operator, operator);
                self.stakes.insert(validator, stake.clone());
            }
            let bonded = self.validator(&validator)?.is_some_and(|record| record.stake != Amount::ZERO);
            if bonded || !stake.unbonding.is_empty() {
                kept.push(validator);
            }
        }
        let mut records = Vec::with_capacity(kept.len());
        for validator in &kept {
            records.push((*validator, self.validator(validator)?.unwrap_or_default()));
        }
        let members = match stake::select(&params, records) {
            Some(members) => members,
            None => self.keep_committee(epoch)?,
        };
        let next = epoch.checked_add(1).ok_or(BlockError::StakeOverflow)?;
        self.committee = Some(CommitteeRecord { epoch: next, members });
        if kept.len() != listed {
            self.candidates = Some(kept);
        }
        Ok(())
    }
}
