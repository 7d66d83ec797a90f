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
//!   the quorum's. Cleared when a later attempt commits it: sync brings the
//!   block back every sync period and the core executes it again from the
//!   store, which clears a transient failure; a corrupted store needs the
//!   operator (restore or wipe the data directory; a restart re-checks);
//! - **clock**: the blocks other validators propose are stamped more than
//!   [`CLOCK_BOUND_MS`] (the block-time bound peers apply to our proposals)
//!   away from our clock when we commit them: the median, over the other
//!   proposers, of each one's latest offset, once enough of them proposed
//!   that at most a third are faulty (2f + 1 of the others). A proposer
//!   stamps `max(its clock, parent's stamp)`, so a block stamped no later
//!   than its parent tells nothing about its proposer's clock and is not
//!   sampled. Per proposer and by median, a Byzantine proposer stamping its
//!   blocks far off cannot quarantine honest validators. Cleared when the
//!   median is back within half the bound;
//! - **slow storage**: the host's synced writes took over
//!   [`SLOW_WRITE_MS`] each for [`SUSTAINED_MS`]. Cleared after writes
//!   were fast for as long.
//!
//! Storage *errors* are not a cause here: they stop the core, and the node
//! with it (RocksDB refuses every write after a failed one until reopened,
//! so the process is the unit of quarantine, and its supervisor's restart
//! the re-check).
//!
//! A quarantined core still follows the chain (it hears the others' votes
//! and commits what they certify), keeps persisting its replica's safety
//! state, and withholds what it signs: proposals and beats always, votes
//! and view changes while the members that beat hold a quorum without it
//! (several validators quarantined at once must not halt their shard).
//! Withholding is a lost message to everyone else, so coming back can
//! never produce a conflicting vote: the replica's safety rules and durable
//! record were never bypassed.

use std::collections::BTreeMap;
use std::fmt;

use palisade_ledger::Address;

use crate::chain::MAX_CLOCK_DRIFT_MS;

/// Proposers whose latest offset is kept (a committee's worth, bounded).
const MAX_PROPOSERS: usize = 1_024;
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
}

impl Cause {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::Diverged { .. } => "diverged",
            Cause::Clock { .. } => "clock",
            Cause::SlowStorage { .. } => "slow_storage",
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
    /// Per other proposer, `now - timestamp` of its latest sampled block.
    offsets_ms: BTreeMap<Address, i64>,
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

    /// A block `proposer` (another validator) stamped `timestamp_ms`, over
    /// a parent stamped `parent_ms`, was committed by our replica at
    /// `now_ms`; the clock is judged once `proposers` of them have a
    /// sample (2f + 1 of the others: their median is an honest one's).
    pub fn block_committed(
        &mut self,
        now_ms: u64,
        proposer: Address,
        timestamp_ms: u64,
        parent_ms: u64,
        proposers: usize,
    ) {
        if timestamp_ms <= parent_ms {
            // Stamped with its parent's time: says nothing of its clock.
            return;
        }
        let offset = i64::try_from(i128::from(now_ms) - i128::from(timestamp_ms)).unwrap_or(i64::MAX);
        if self.offsets_ms.len() >= MAX_PROPOSERS && !self.offsets_ms.contains_key(&proposer) {
            return;
        }
        self.offsets_ms.insert(proposer, offset);
        if self.offsets_ms.len() < proposers.max(1) {
            return;
        }
        let mut sorted: Vec<i64> = self.offsets_ms.values().copied().collect();
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

    fn proposer(n: u8) -> Address {
        Address([n; 32])
    }

    /// Our clock `offset_ms` ahead of `proposer`'s block, proposed at
    /// `at_ms` over a parent stamped just before it.
    fn sample(q: &mut Quarantine, n: u8, at_ms: u64, offset_ms: i64) {
        let now = at_ms.saturating_add_signed(offset_ms);
        q.block_committed(now, proposer(n), at_ms, at_ms - 1, 3);
    }

    #[test]
    fn a_clock_far_ahead_quarantines_once_enough_proposers_show_it_and_clears_with_hysteresis() {
        let mut q = Quarantine::default();
        // Many blocks, but from two of the three others: not judged.
        for i in 0..10 {
            sample(&mut q, (i % 2) as u8, 100_000 + i * 100, 20_000);
            assert!(!q.active(), "judged on two proposers");
        }
        sample(&mut q, 2, 102_000, 20_000);
        assert_eq!(q.cause(), Some(Cause::Clock { offset_ms: 20_000 }));
        assert_eq!(
            q.cause().unwrap().to_string(),
            "clock skewed: 20000 ms ahead of the committee's blocks (bound 10000 ms)"
        );
        // Back to 8 s: within the bound but not within half of it.
        for n in 0..3 {
            sample(&mut q, n, 300_000, 8_000);
        }
        assert!(q.active(), "hysteresis: {:?}", q.cause());
        for n in 0..3 {
            sample(&mut q, n, 400_000, 300);
        }
        assert_eq!(q.cause(), None);
    }

    #[test]
    fn a_clock_behind_counts_too_and_one_far_proposer_does_not() {
        let mut q = Quarantine::default();
        for n in 0..3 {
            sample(&mut q, n, 1_000_000, 300);
        }
        // A Byzantine proposer stamps its blocks 9.9 s ahead of everyone
        // (peers accept up to 10 s): the median of the three stays honest.
        for i in 0..10 {
            sample(&mut q, 2, 1_001_000 + i * 100, -9_900);
        }
        assert!(!q.active(), "one proposer's stamps moved the judgment");
        // Blocks stamped with their parent's time say nothing.
        q.block_committed(2_000_000, proposer(0), 1_000_000, 1_000_000, 3);
        assert!(!q.active());
        for n in 0..3 {
            sample(&mut q, n, 1_100_000, -15_000);
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
