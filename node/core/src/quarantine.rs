//! The node's circuit breaker on itself (self-quarantine): a validator that
//! can no longer trust its own state, clock or disk stops proposing and
//! voting for the shard, says why, and rejoins by itself once the cause
//! clears. The other validators keep the shard going without it, as they
//! would without a crashed member; a leader that stays quiet is benched by
//! the rotation (`palisade_ledger::rotation`).
//!
//! Causes, each watched here from what the core already sees:
//! - **diverged**: a block a quorum certified does not execute on our state
//!   (its state root differs, or it fails a rule). Our state is wrong, not
//!   the quorum's. Cleared when a later attempt commits it (the core
//!   re-checks on every sync period, with its execution cache dropped);
//! - **clock**: the blocks other validators propose are stamped, by the
//!   median of the last [`CLOCK_SAMPLES`], more than [`CLOCK_BOUND_MS`]
//!   (the block-time bound peers apply to our proposals) away from our
//!   clock when we commit them. Cleared when the median is back within
//!   half the bound;
//! - **slow storage**: the host's synced writes took over
//!   [`SLOW_WRITE_MS`] each for [`SUSTAINED_MS`]. Cleared after writes
//!   were fast for as long.
//!
//! Storage *errors* stop the core itself: its host quarantines the shard,
//! re-checks the store, and reopens the core from what is durable
//! ([`Cause::Storage`] is the host's to report).
//!
//! A quarantined core still follows the chain (it hears the others' votes
//! and commits what they certify), keeps persisting its replica's safety
//! state, and withholds what it signs: proposals, votes, view changes and
//! beats. Withholding is a lost message to everyone else, so coming back
//! can never produce a conflicting vote: the replica's safety rules and
//! durable record were never bypassed.

use std::collections::VecDeque;
use std::fmt;

use crate::chain::MAX_CLOCK_DRIFT_MS;

/// Block timestamps kept to judge our clock.
pub const CLOCK_SAMPLES: usize = 8;
/// Samples needed before the clock is judged at all.
pub const MIN_CLOCK_SAMPLES: usize = 5;
/// The median offset beyond which our clock is untrustworthy.
pub const CLOCK_BOUND_MS: u64 = MAX_CLOCK_DRIFT_MS;
/// A synced write over this long is slow.
pub const SLOW_WRITE_MS: u64 = 500;
/// Slow writes for this long quarantine; fast ones for this long clear it.
pub const SUSTAINED_MS: u64 = 3_000;

/// Why a validator stopped trusting itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A certified block does not execute on our state.
    Diverged {
        /// The block's height.
        height: u64,
        /// What execution said.
        reason: String,
    },
    /// Our clock is off the committee's blocks by more than the bound.
    Clock {
        /// The median offset: positive when our clock is ahead.
        offset_ms: i64,
    },
    /// Synced writes have been slow for a sustained period.
    SlowStorage {
        /// The slowest write of the streak.
        slowest_ms: u64,
    },
    /// The store failed (reported by the host, whose core has stopped).
    Storage(String),
}

impl Cause {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::Diverged { .. } => "diverged",
            Cause::Clock { .. } => "clock",
            Cause::SlowStorage { .. } => "slow_storage",
            Cause::Storage(_) => "storage",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Diverged { height, reason } => {
                write!(f, "state diverged: the certified block at height {height} does not execute here ({reason})")
            }
            Cause::Clock { offset_ms } => {
                let side = if *offset_ms >= 0 { "ahead of" } else { "behind" };
                write!(
                    f,
                    "clock skewed: {} ms {side} the committee's blocks (bound {CLOCK_BOUND_MS} ms)",
                    offset_ms.unsigned_abs()
                )
            }
            Cause::SlowStorage { slowest_ms } => write!(
                f,
                "slow storage: synced writes over {SLOW_WRITE_MS} ms for {SUSTAINED_MS} ms (slowest {slowest_ms} ms)"
            ),
            Cause::Storage(error) => write!(f, "storage failed: {error}"),
        }
    }
}

/// A streak of slow (or fast) writes.
#[derive(Clone, Copy, Debug)]
struct Streak {
    since_ms: u64,
    slowest_ms: u64,
}

/// One core's self-checks. Time comes in from the host.
#[derive(Debug, Default)]
pub struct Quarantine {
    /// `now - timestamp` of the last blocks others proposed, oldest first.
    offsets_ms: VecDeque<i64>,
    clock_offset_ms: Option<i64>,
    diverged: Option<(u64, String)>,
    /// The current run of slow writes, or of fast ones.
    slow: Option<Streak>,
    fast_since_ms: Option<u64>,
    slow_storage: Option<u64>,
}

impl Quarantine {
    /// The first cause that holds now, if any.
    pub fn cause(&self) -> Option<Cause> {
        if let Some((height, reason)) = &self.diverged {
            return Some(Cause::Diverged { height: *height, reason: reason.clone() });
        }
        if let Some(offset_ms) = self.clock_offset_ms {
            return Some(Cause::Clock { offset_ms });
        }
        self.slow_storage.map(|slowest_ms| Cause::SlowStorage { slowest_ms })
    }

    /// Quarantined now?
    pub fn active(&self) -> bool {
        self.diverged.is_some() || self.clock_offset_ms.is_some() || self.slow_storage.is_some()
    }

    /// Diverged (the one cause that stops the chain here)?
    pub fn diverged(&self) -> bool {
        self.diverged.is_some()
    }

    /// A block another validator proposed, stamped `timestamp_ms`, was
    /// committed by our replica at `now_ms`.
    pub fn block_committed(&mut self, now_ms: u64, timestamp_ms: u64) {
        let offset = i64::try_from(i128::from(now_ms) - i128::from(timestamp_ms)).unwrap_or(i64::MAX);
        if self.offsets_ms.len() == CLOCK_SAMPLES {
            self.offsets_ms.pop_front();
        }
        self.offsets_ms.push_back(offset);
        if self.offsets_ms.len() < MIN_CLOCK_SAMPLES {
            return;
        }
        let mut sorted: Vec<i64> = self.offsets_ms.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let bound = if self.clock_offset_ms.is_some() { CLOCK_BOUND_MS / 2 } else { CLOCK_BOUND_MS };
        self.clock_offset_ms = (median.unsigned_abs() > bound).then_some(median);
    }

    /// The host's synced write finished at `now_ms` after `took_ms`.
    pub fn write_took(&mut self, now_ms: u64, took_ms: u64) {
        if took_ms > SLOW_WRITE_MS {
            self.fast_since_ms = None;
            let streak = self.slow.get_or_insert(Streak { since_ms: now_ms.saturating_sub(took_ms), slowest_ms: 0 });
            streak.slowest_ms = streak.slowest_ms.max(took_ms);
            if now_ms.saturating_sub(streak.since_ms) >= SUSTAINED_MS {
                self.slow_storage = Some(streak.slowest_ms);
            }
        } else {
            self.slow = None;
            let since = *self.fast_since_ms.get_or_insert(now_ms.saturating_sub(took_ms));
            if now_ms.saturating_sub(since) >= SUSTAINED_MS {
                self.slow_storage = None;
            }
        }
    }

    /// A certified block at `height` did not execute here.
    pub fn block_diverged(&mut self, height: u64, reason: String) {
        self.diverged = Some((height, reason));
    }

    /// The chain committed `height`: a divergence at or below it is behind us.
    pub fn chain_at(&mut self, height: u64) {
        if self.diverged.as_ref().is_some_and(|(at, _)| *at <= height) {
            self.diverged = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_far_ahead_quarantines_after_enough_blocks_and_clears_with_hysteresis() {
        let mut q = Quarantine::default();
        for i in 0..MIN_CLOCK_SAMPLES as u64 - 1 {
            q.block_committed(100_000 + i, 100_000 + i - 20_000);
            assert!(!q.active(), "judged on {} samples", i + 1);
        }
        q.block_committed(200_000, 180_000);
        assert_eq!(q.cause(), Some(Cause::Clock { offset_ms: 20_000 }));
        assert_eq!(
            q.cause().unwrap().to_string(),
            "clock skewed: 20000 ms ahead of the committee's blocks (bound 10000 ms)"
        );
        // Back to 8 s: within the bound but not within half of it.
        for _ in 0..CLOCK_SAMPLES {
            q.block_committed(300_000, 292_000);
        }
        assert!(q.active(), "hysteresis: {:?}", q.cause());
        for _ in 0..CLOCK_SAMPLES {
            q.block_committed(400_000, 399_700);
        }
        assert_eq!(q.cause(), None);
    }

    #[test]
    fn a_clock_behind_counts_too_and_one_late_block_does_not() {
        let mut q = Quarantine::default();
        for _ in 0..CLOCK_SAMPLES {
            q.block_committed(1_000_000, 1_000_300);
        }
        q.block_committed(1_000_000, 900_000);
        assert!(!q.active(), "one stale block is no skew");
        for _ in 0..CLOCK_SAMPLES {
            q.block_committed(1_000_000, 1_015_000);
        }
        assert_eq!(q.cause(), Some(Cause::Clock { offset_ms: -15_000 }));
        assert!(q.cause().unwrap().to_string().contains("15000 ms behind"));
    }

    #[test]
    fn slow_writes_quarantine_only_when_sustained_and_fast_ones_clear_it() {
        let mut q = Quarantine::default();
        q.write_took(10_000, 900);
        q.write_took(10_500, 20);
        q.write_took(11_400, 900);
        q.write_took(12_300, 800);
        assert!(!q.active(), "a streak of {} ms", 12_300 - 10_500);
        q.write_took(14_000, 1_200);
        assert_eq!(q.cause(), Some(Cause::SlowStorage { slowest_ms: 1_200 }));
        q.write_took(15_000, 10);
        q.write_took(17_000, 10);
        assert!(q.active(), "fast for only 2 s");
        q.write_took(17_500, 900);
        q.write_took(20_000, 10);
        assert!(q.active(), "the fast streak restarted");
        q.write_took(23_000, 10);
        assert_eq!(q.cause(), None);
        // One write as long as the whole sustain period trips it at once.
        q.write_took(40_000, SUSTAINED_MS);
        assert!(q.active());
    }

    #[test]
    fn divergence_comes_first_and_clears_once_the_chain_is_past_it() {
        let mut q = Quarantine::default();
        q.write_took(10_000, SUSTAINED_MS + 1);
        q.block_diverged(7, "state root differs".into());
        assert_eq!(q.cause().map(|c| c.label()), Some("diverged"));
        q.chain_at(6);
        assert!(q.diverged());
        q.chain_at(7);
        assert_eq!(q.cause().map(|c| c.label()), Some("slow_storage"));
    }
}
