//! The protocol base fee: each shard's intake circuit breaker.
//!
//! Every transaction must pay at least the shard's *base fee*; the base fee
//! is burned and the rest of the fee (the tip) goes to the block's
//! proposer. After each block the base fee moves toward what the shard can
//! take (EIP-1559): up when the block held more than
//! [`FeeParams::target_block_txs`] transactions, down when it held fewer,
//! by at most an eighth per block ([`CHANGE_DENOMINATOR`]) and at least one
//! unit while it can move, within `[min, max]`. Integer arithmetic only, so
//! every replica computes the same value.
//!
//! So under a surge the fee rises block by block until only those who value
//! their transactions most still pay it: the mempool refuses the rest with
//! the current value, builders leave them out, and finality stays bounded
//! for the transactions that pay. When the surge ends it falls back as fast.
//!
//! The base fee for the block after a tip is part of the shard's state
//! ([`crate::state::StateKey::Fees`], absent until it first leaves the
//! minimum), so the state root in every header commits to it and a proof
//! of it is a state proof.

use serde::{Deserialize, Serialize};

use crate::{
    amount::Amount,
    state::{State, StateError, StateExt},
};

/// The base fee moves by at most `1 / CHANGE_DENOMINATOR` of itself per block.
pub const CHANGE_DENOMINATOR: u64 = 8;

/// The fee market's parameters (genesis `params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeParams {
    /// The lowest base fee, and the value of an idle shard.
    pub min_base_fee: Amount,
    /// The highest base fee, however long a surge lasts.
    pub max_base_fee: Amount,
    /// Transactions per block at which the base fee holds still.
    pub target_block_txs: u64,
}

/// The value of [`crate::state::StateKey::Fees`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeRecord {
    /// The base fee of the block after the one that wrote this.
    pub base_fee: Amount,
    /// Base fees burned on this shard so far.
    pub burned: Amount,
}

impl FeeParams {
    /// The base fee of the block after one that held `block_txs`
    /// transactions under base fee `base`.
    pub fn next_base_fee(&self, base: Amount, block_txs: u64) -> Amount {
        let (base_units, target) = (u128::from(base.units()), u128::from(self.target_block_txs.max(1)));
        let used = u128::from(block_txs);
        // A block far above the target moves it no more than one twice the
        // target: the step is bounded whatever the block limit.
        let step = |delta: u128| {
            let scaled = base_units.saturating_mul(delta.min(target));
            // `target` is at least 1 and the denominator is not zero.
            let step = scaled.checked_div(target.saturating_mul(u128::from(CHANGE_DENOMINATOR))).unwrap_or(0);
            step.max(1)
        };
        let next = if used > target {
            base_units.saturating_add(step(used.saturating_sub(target)))
        } else if used < target {
            base_units.saturating_sub(step(target.saturating_sub(used)))
        } else {
            base_units
        };
        let next = u64::try_from(next).unwrap_or(u64::MAX);
        Amount(next.clamp(self.min_base_fee.units(), self.max_base_fee.units().max(self.min_base_fee.units())))
    }
}

/// The fee market after `state`'s tip: the base fee the next block charges
/// and what was burned so far.
pub fn market<S: State + ?Sized>(state: &S) -> Result<FeeRecord, StateError> {
    let params = state.context().fees;
    Ok(state.fees()?.unwrap_or(FeeRecord { base_fee: params.min_base_fee, burned: Amount::ZERO }))
}

/// The base fee the block after `state`'s tip charges.
pub fn base_fee<S: State + ?Sized>(state: &S) -> Result<Amount, StateError> {
    market(state).map(|record| record.base_fee)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;

    const PARAMS: FeeParams =
        FeeParams { min_base_fee: Amount(0), max_base_fee: Amount(1_000_000), target_block_txs: 100 };

    #[test]
    fn full_blocks_raise_it_by_an_eighth_and_empty_ones_lower_it_alike() {
        let base = Amount(8_000);
        assert_eq!(PARAMS.next_base_fee(base, 100), base, "on target: still");
        assert_eq!(PARAMS.next_base_fee(base, 200), Amount(9_000), "twice the target: +1/8");
        assert_eq!(PARAMS.next_base_fee(base, 150), Amount(8_500));
        assert_eq!(PARAMS.next_base_fee(base, 0), Amount(7_000), "empty: -1/8");
        assert_eq!(PARAMS.next_base_fee(base, 10_000), Amount(9_000), "never more than an eighth");
    }

    #[test]
    fn it_moves_from_zero_and_stays_in_its_bounds() {
        assert_eq!(PARAMS.next_base_fee(Amount(0), 101), Amount(1), "at least a unit while it can move");
        assert_eq!(PARAMS.next_base_fee(Amount(1), 0), Amount(0));
        assert_eq!(PARAMS.next_base_fee(Amount(0), 0), Amount(0), "never below the minimum");
        assert_eq!(PARAMS.next_base_fee(Amount(999_999), u64::MAX), Amount(1_000_000), "capped");
        assert_eq!(PARAMS.next_base_fee(Amount(u64::MAX), u64::MAX), Amount(1_000_000), "no overflow");
        let floor = FeeParams { min_base_fee: Amount(50), ..PARAMS };
        assert_eq!(floor.next_base_fee(Amount(50), 0), Amount(50));
        let mut base = Amount(50);
        for _ in 0..200 {
            base = floor.next_base_fee(base, 200);
        }
        assert_eq!(base, Amount(1_000_000), "a long surge reaches the cap and stays");
        for _ in 0..400 {
            base = floor.next_base_fee(base, 0);
        }
        assert_eq!(base, Amount(50), "and falls back to the floor");
    }
}
