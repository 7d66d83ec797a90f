//! The open-loop schedule, as pure arithmetic: which transactions are due by
//! a given moment, which account each slot belongs to, and how many slots
//! each account gets.
//!
//! Slot `k` (0-based) is due at `k / rate` seconds after the start, whatever
//! happened to the slots before it: the load does not wait for answers.

use std::time::Duration;

/// How many of `total` slots are due `elapsed` after the start at `rate`
/// per second: slots `0..=floor(rate × elapsed)`, capped at `total`.
pub fn due(rate_per_s: u64, elapsed: Duration, total: u64) -> u64 {
    if rate_per_s == 0 {
        return 0;
    }
    let scheduled = u128::from(rate_per_s).saturating_mul(elapsed.as_nanos()) / 1_000_000_000;
    let due = scheduled.saturating_add(1);
    u64::try_from(due).unwrap_or(u64::MAX).min(total)
}

/// Slots in a schedule of `rate_per_s` for `duration` (whole milliseconds).
pub fn total(rate_per_s: u64, duration: Duration) -> u64 {
    let total = u128::from(rate_per_s).saturating_mul(duration.as_millis()) / 1_000;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// When slot `slot` is due, after the start (rounded up to the nanosecond,
/// so that [`due`] counts it at that moment).
pub fn due_at(rate_per_s: u64, slot: u64) -> Duration {
    if rate_per_s == 0 {
        return Duration::MAX;
    }
    let nanos = u128::from(slot).saturating_mul(1_000_000_000).div_ceil(u128::from(rate_per_s));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The account slot `slot` belongs to: round-robin over `accounts`.
pub fn account_of(slot: u64, accounts: usize) -> usize {
    let accounts = u64::try_from(accounts).unwrap_or(u64::MAX).max(1);
    usize::try_from(slot % accounts).unwrap_or(0)
}

/// How many of `total` round-robin slots fall to account `account` of
/// `accounts`: the length of the nonce chain it must have signed.
pub fn slots_of(account: usize, accounts: usize, total: u64) -> u64 {
    let accounts = u64::try_from(accounts).unwrap_or(u64::MAX).max(1);
    let account = u64::try_from(account).unwrap_or(u64::MAX);
    let extra = u64::from(account < total % accounts);
    total / accounts + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_first_slot_is_due_at_once_and_then_one_per_period() {
        assert_eq!(due(1_000, Duration::ZERO, 100), 1);
        assert_eq!(due(1_000, Duration::from_micros(999), 100), 1);
        assert_eq!(due(1_000, MS(1), 100), 2);
        assert_eq!(due(1_000, MS(10), 100), 11);
        // 3 per second: slots at 0, 333.3 ms, 666.7 ms, 1 s.
        assert_eq!(due(3, MS(333), 10), 1);
        assert_eq!(due(3, MS(334), 10), 2);
        assert_eq!(due(3, MS(1_000), 10), 4);
    }

    #[test]
    fn due_is_capped_by_the_total_and_never_overflows() {
        assert_eq!(due(1_000, Duration::from_secs(60), 500), 500);
        assert_eq!(due(u64::MAX, Duration::MAX, u64::MAX), u64::MAX);
        assert_eq!(due(0, Duration::from_secs(60), 500), 0);
        assert_eq!(total(2_000, Duration::from_secs(30)), 60_000);
        assert_eq!(total(3, MS(500)), 1);
        assert_eq!(total(u64::MAX, Duration::MAX), u64::MAX);
    }

    #[test]
    fn due_and_due_at_agree() {
        for rate in [1, 7, 1_000, 33_333] {
            for slot in [0, 1, 2, 99, 12_345] {
                let at = due_at(rate, slot);
                assert!(due(rate, at, u64::MAX) > slot, "rate {rate} slot {slot} not due at its own time");
                if let Some(before) = at.checked_sub(Duration::from_nanos(1)) {
                    assert!(due(rate, before, u64::MAX) <= slot, "rate {rate} slot {slot} due early");
                }
            }
        }
    }

    #[test]
    fn a_whole_run_releases_exactly_rate_times_duration() {
        let (rate, total) = (2_000, 2_000 * 30);
        let mut released = 0;
        let mut elapsed = Duration::ZERO;
        while elapsed <= Duration::from_secs(31) {
            let now = due(rate, elapsed, total);
            assert!(now >= released, "the schedule went backwards");
            released = now;
            elapsed += MS(10);
        }
        assert_eq!(released, total);
    }

    #[test]
    fn slots_are_shared_round_robin() {
        let accounts = 4;
        let total = 10;
        let counted: Vec<u64> =
            (0..accounts).map(|a| (0..total).filter(|&slot| account_of(slot, accounts) == a).count() as u64).collect();
        let computed: Vec<u64> = (0..accounts).map(|a| slots_of(a, accounts, total)).collect();
        assert_eq!(counted, computed);
        assert_eq!(computed, vec![3, 3, 2, 2]);
        assert_eq!(computed.iter().sum::<u64>(), total);
    }
}
