//! The per-sender intake breaker: a sender whose submissions spike far
//! above its own recent rate is refused for a while, so one flooding
//! account cannot crowd out everyone else's orders on its shard (the base
//! fee, `palisade_ledger::fee`, prices out floods spread over many
//! accounts).
//!
//! Time is cut into windows of [`WINDOW_MS`]. Each sender's *baseline* is a
//! moving average of its submissions per window (weight
//! 1/[`BASELINE_WINDOWS`], in thousandths so integer arithmetic keeps
//! small rates). A sender trips when a window's submissions exceed
//! [`SPIKE_FACTOR`] times its baseline, and never below [`FLOOR_PER_WINDOW`]
//! (a new or quiet sender may always send that many). A tripped sender is
//! refused for [`COOL_DOWN_MS`]; if it floods again when let back in, it
//! trips again within a second. Windows over the limit do not teach the
//! baseline, so a flood does not become the new normal.
//!
//! Only submissions from clients pass through here, never gossip (what a
//! peer relays was admitted by that peer's own breaker), and only those
//! the mempool admitted count: their signature was verified, so nobody can
//! trip another account's breaker with forged submissions. The breaker is part
//! of the shard core (time comes in from the host), bounded to
//! [`MAX_SENDERS`] senders, least recently seen dropped first.

use std::collections::BTreeMap;

use hashlink::LruCache;
use palisade_ledger::Address;

/// Length of a counting window.
pub const WINDOW_MS: u64 = 1_000;
/// A window's submissions over this many times the baseline trip the breaker.
pub const SPIKE_FACTOR: u64 = 10;
/// Submissions per window a sender may always make.
pub const FLOOR_PER_WINDOW: u64 = 1_000;
/// The baseline moves by 1/this of the difference each window.
pub const BASELINE_WINDOWS: u64 = 16;
/// A tripped sender stays refused until this long after its last window
/// over the limit.
pub const COOL_DOWN_MS: u64 = 10_000;
/// Senders tracked at most.
pub const MAX_SENDERS: usize = 65_536;
/// Tripped senders remembered before those calm again are pruned.
const MAX_TRIPPED_KEPT: usize = 1_024;
/// Empty windows after which a baseline has decayed to nothing.
const MAX_DECAY_WINDOWS: u64 = 128;

/// One sender's counts.
#[derive(Clone, Copy, Debug)]
struct Rate {
    window_start_ms: u64,
    count: u64,
    /// Submissions per window, in thousandths.
    baseline_milli: u64,
}

/// A sender the breaker refused: until when, at least.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// The sender's limit for the current window.
    pub limit_per_window: u64,
    /// When it may be admitted again if it calms down now (ms, host time).
    pub until_ms: u64,
    /// This submission tripped it (it was admitted until now).
    pub newly: bool,
}

/// The breaker of one shard.
pub struct Intake {
    senders: LruCache<Address, Rate>,
    /// Tripped senders and until when they are refused (at most those that
    /// tripped within a cool-down; pruned as they calm).
    tripped: BTreeMap<Address, u64>,
}

impl Default for Intake {
    fn default() -> Self {
        Intake { senders: LruCache::new(MAX_SENDERS), tripped: BTreeMap::new() }
    }
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake").field("senders", &self.senders.len()).finish()
    }
}

impl Rate {
    /// The most submissions the current window may hold.
    fn limit(&self) -> u64 {
        (self.baseline_milli.saturating_mul(SPIKE_FACTOR) / 1_000).max(FLOOR_PER_WINDOW)
    }

    /// Closes the windows that ended by `now_ms`, folding each into the
    /// baseline (except one over the limit: a flood is not the new normal).
    fn roll(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.window_start_ms) / WINDOW_MS;
        if elapsed == 0 {
            return;
        }
        if self.count <= self.limit() {
            self.baseline_milli = ewma(self.baseline_milli, self.count.saturating_mul(1_000));
        }
        for _ in 1..elapsed.min(MAX_DECAY_WINDOWS) {
            self.baseline_milli = ewma(self.baseline_milli, 0);
        }
        if elapsed >= MAX_DECAY_WINDOWS {
            self.baseline_milli = 0;
        }
        self.count = 0;
        self.window_start_ms = self.window_start_ms.saturating_add(elapsed.saturating_mul(WINDOW_MS));
    }
}

/// One step of the moving average toward `sample`.
fn ewma(average: u64, sample: u64) -> u64 {
    let step = |from: u64, to: u64| from.saturating_sub(to) / BASELINE_WINDOWS;
    if sample >= average {
        average.saturating_add(step(sample, average))
    } else {
        average.saturating_sub(step(average, sample))
    }
}

impl Intake {
    /// Whether `sender` is refused at `now_ms` (counts nothing: a
    /// submission is counted only once admitted, see [`Intake::count`]).
    pub fn check(&self, sender: &Address, now_ms: u64) -> Result<(), Throttled> {
        match self.tripped.get(sender) {
            Some(&until_ms) if now_ms < until_ms => {
                let limit = self.senders.peek(sender).map_or(FLOOR_PER_WINDOW, Rate::limit);
                Err(Throttled { limit_per_window: limit, until_ms, newly: false })
            }
            _ => Ok(()),
        }
    }

    /// Counts one admitted submission by `sender` at `now_ms`; `Some` if it
    /// tripped the breaker (the sender is refused from now on). Only what
    /// was admitted counts, its signature verified: bytes naming someone
    /// else as sender cannot trip that sender's breaker.
    pub fn count(&mut self, sender: &Address, now_ms: u64) -> Option<Throttled> {
        if !self.senders.contains_key(sender) {
            self.senders.insert(*sender, Rate { window_start_ms: now_ms, count: 0, baseline_milli: 0 });
        }
        let rate = self.senders.get_mut(sender)?;
        rate.roll(now_ms);
        rate.count = rate.count.saturating_add(1);
        let limit = rate.limit();
        if rate.count <= limit {
            return None;
        }
        if self.tripped.len() >= MAX_TRIPPED_KEPT {
            self.tripped.retain(|_, until_ms| now_ms < *until_ms);
        }
        let until_ms = now_ms.saturating_add(COOL_DOWN_MS);
        let newly = self.tripped.insert(*sender, until_ms).is_none_or(|before| before <= now_ms);
        Some(Throttled { limit_per_window: limit, until_ms, newly })
    }

    /// [`Intake::check`], then [`Intake::count`], for a submission that
    /// would be admitted: what the tests drive.
    #[cfg(test)]
    fn admit(&mut self, sender: &Address, now_ms: u64) -> Result<(), Throttled> {
        self.check(sender, now_ms)?;
        match self.count(sender, now_ms) {
            Some(throttled) => Err(throttled),
            None => Ok(()),
        }
    }

    /// Senders refused at `now_ms`.
    pub fn tripped(&self, now_ms: u64) -> usize {
        self.tripped.values().filter(|until_ms| now_ms < **until_ms).count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;

    const ALICE: Address = Address([1; 32]);
    const BOB: Address = Address([2; 32]);

    /// Submits `n` by `sender` spread over the window starting at `start_ms`;
    /// returns how many were admitted.
    fn burst(intake: &mut Intake, sender: &Address, start_ms: u64, n: u64) -> u64 {
        (0..n).filter(|i| intake.admit(sender, start_ms + i * (WINDOW_MS - 1) / n.max(1)).is_ok()).count() as u64
    }

    #[test]
    fn a_steady_sender_is_never_refused_and_the_floor_lets_anyone_start() {
        let mut intake = Intake::default();
        assert_eq!(burst(&mut intake, &ALICE, 0, FLOOR_PER_WINDOW), FLOOR_PER_WINDOW, "a new sender up to the floor");
        for second in 1..100 {
            assert_eq!(burst(&mut intake, &ALICE, second * WINDOW_MS, 150), 150);
        }
        assert_eq!(intake.tripped(100 * WINDOW_MS), 0);
    }

    #[test]
    fn a_tenfold_spike_trips_only_that_sender_until_it_calms() {
        let mut intake = Intake::default();
        // Alice sends 300 a second for a minute: her baseline learns it.
        for second in 0..60 {
            assert_eq!(burst(&mut intake, &ALICE, second * WINDOW_MS, 300), 300);
            burst(&mut intake, &BOB, second * WINDOW_MS, 100);
        }
        // Five times that is fine (and raises her baseline a little, to
        // about 370); fifteen times trips at about ten times.
        assert_eq!(burst(&mut intake, &ALICE, 60 * WINDOW_MS, 1_500), 1_500);
        let admitted = burst(&mut intake, &ALICE, 61 * WINDOW_MS, 4_500);
        assert!((3_000..=3_800).contains(&admitted), "admitted {admitted} of 4,500");
        assert_eq!(intake.tripped(62 * WINDOW_MS), 1, "Alice, and only Alice");
        assert_eq!(burst(&mut intake, &BOB, 62 * WINDOW_MS, 100), 100, "others are not affected");
        // Still hammering within the cool-down: still refused.
        assert_eq!(burst(&mut intake, &ALICE, 62 * WINDOW_MS, 4_500), 0);
        // After it: back in, at her old pace.
        let back = 63 * WINDOW_MS + COOL_DOWN_MS;
        assert_eq!(burst(&mut intake, &ALICE, back, 300), 300);
        assert_eq!(intake.tripped(back + WINDOW_MS), 0);
    }

    #[test]
    fn a_flood_does_not_become_the_baseline_and_quiet_senders_decay() {
        let mut intake = Intake::default();
        for second in 0..30 {
            burst(&mut intake, &ALICE, second * WINDOW_MS, 100);
        }
        // A minute of flooding, refused beyond its limit each window.
        for second in 30..90 {
            burst(&mut intake, &ALICE, second * WINDOW_MS, 10_000);
        }
        let limit = intake.senders.get(&ALICE).unwrap().limit();
        assert_eq!(limit, FLOOR_PER_WINDOW, "the flood taught the limit");
        // Gone for an hour: the baseline is back to nothing, the floor holds.
        intake.admit(&ALICE, 3_600_000 + 90 * WINDOW_MS).unwrap_or(());
        assert_eq!(intake.senders.get(&ALICE).unwrap().limit(), FLOOR_PER_WINDOW);
    }
}
