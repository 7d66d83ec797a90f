//! The shard thread's timers: the replica's view timers, and the driver's own
//! (proposal pacing, sync retries). The replica ignores timers for views it
//! has left, so nothing is ever cancelled; fired timers are simply dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use palisade_consensus::TimerId;

/// Most timers pending at once. The replica sets one per view, the driver a
/// few of its own; past this the oldest deadlines fire early (harmless: a
/// view timer for a view already left is ignored).
pub const MAX_TIMERS: usize = 1_024;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Hand back to the replica.
    View(TimerId),
    /// Re-check whether a requested proposal is due.
    Propose,
    /// The periodic sync check: ask peers for blocks if behind or stalled.
    Sync,
    /// The periodic receipt scan of the other shards.
    ReceiptScan,
}

/// Deadlines, earliest first.
#[derive(Default)]
pub struct Timers {
    pending: BTreeMap<(Instant, u64), Timer>,
    sequence: u64,
}

impl Timers {
    /// Fires `timer` at `at`.
    pub fn set(&mut self, at: Instant, timer: Timer) {
        if self.pending.len() >= MAX_TIMERS {
            self.pending.pop_first();
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.pending.insert((at, self.sequence), timer);
    }

    /// Fires `timer` after `delay`.
    pub fn after(&mut self, delay: Duration, timer: Timer) {
        self.set(Instant::now() + delay, timer);
    }

    /// How long until the next deadline (None: nothing pending).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.pending.first_key_value().map(|((at, _), _)| at.saturating_duration_since(now))
    }

    /// Removes and returns the next timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.pending.first_key_value() {
            Some(((at, _), _)) if *at <= now => self.pending.pop_first().map(|(_, timer)| timer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.set(now + Duration::from_millis(20), Timer::Sync);
        timers.set(now + Duration::from_millis(10), Timer::Propose);
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.wait(now), Some(Duration::from_millis(10)));
        let later = now + Duration::from_millis(25);
        assert_eq!(timers.pop_due(later), Some(Timer::Propose));
        assert_eq!(timers.pop_due(later), Some(Timer::Sync));
        assert_eq!(timers.pop_due(later), None);
    }
}
