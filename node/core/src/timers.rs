//! A shard core's deadlines, in the host's milliseconds: the replica's view
//! timers, and the core's own (proposal pacing, the periodic sync check and
//! receipt scan).
//!
//! The replica ignores timers for views it has left, so view timers are
//! never cancelled; they sit in a bounded map and, past its bound, the
//! earliest fire early (harmless: a timer for a view already left is
//! ignored). The core's own timers each have one slot of their own and so
//! can never be pushed out by view timers: the periodic ones are re-armed
//! only when they fire, so losing one once would stop it for good.

use std::collections::BTreeMap;

use palisade_consensus::TimerId;

/// Most view timers pending at once.
pub const MAX_VIEW_TIMERS: usize = 1_024;

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
    /// Publish the transactions waiting for gossip.
    FlushTxs,
}

/// The core's own timers: one slot each.
const OWN: [Timer; 4] = [Timer::Propose, Timer::Sync, Timer::ReceiptScan, Timer::FlushTxs];

/// Deadlines, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    views: BTreeMap<(u64, u64), TimerId>,
    sequence: u64,
    /// Deadlines of [`OWN`], by position.
    own: [Option<u64>; OWN.len()],
}

fn slot(timer: Timer) -> Option<usize> {
    OWN.iter().position(|t| *t == timer)
}

impl Timers {
    /// Fires `timer` at `at_ms`. One of the core's own timers keeps only its
    /// earliest pending deadline.
    pub fn set(&mut self, at_ms: u64, timer: Timer) {
        match timer {
            Timer::View(id) => {
                if self.views.len() >= MAX_VIEW_TIMERS {
                    self.views.pop_first();
                }
                self.sequence = self.sequence.wrapping_add(1);
                self.views.insert((at_ms, self.sequence), id);
            }
            own => {
                if let Some(deadline) = slot(own).and_then(|i| self.own.get_mut(i)) {
                    *deadline = Some(deadline.map_or(at_ms, |pending| pending.min(at_ms)));
                }
            }
        }
    }

    /// The next deadline, if any timer is pending.
    pub fn next_ms(&self) -> Option<u64> {
        let view = self.views.first_key_value().map(|((at, _), _)| *at);
        self.own.iter().flatten().copied().chain(view).min()
    }

    /// Removes and returns the next timer due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Timer> {
        let own = self.own.iter().enumerate().filter_map(|(i, at)| Some((at.as_ref().copied()?, i))).min();
        let view = self.views.first_key_value().map(|((at, _), _)| *at);
        match (own, view) {
            (Some((at, i)), view) if at <= now_ms && view.is_none_or(|v| at <= v) => {
                if let Some(deadline) = self.own.get_mut(i) {
                    *deadline = None;
                }
                OWN.get(i).copied()
            }
            (_, Some(at)) if at <= now_ms => self.views.pop_first().map(|(_, id)| Timer::View(id)),
            _ => None,
        }
    }

    /// Whether `timer` (one of the core's own) is pending.
    pub fn pending(&self, timer: Timer) -> bool {
        slot(timer).and_then(|i| self.own.get(i)).is_some_and(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let mut timers = Timers::default();
        timers.set(120, Timer::Sync);
        timers.set(110, Timer::Propose);
        timers.set(115, Timer::View(TimerId { height: 1, view: 0 }));
        assert_eq!(timers.pop_due(100), None);
        assert_eq!(timers.next_ms(), Some(110));
        assert_eq!(timers.pop_due(125), Some(Timer::Propose));
        assert_eq!(timers.pop_due(125), Some(Timer::View(TimerId { height: 1, view: 0 })));
        assert_eq!(timers.pop_due(125), Some(Timer::Sync));
        assert_eq!(timers.pop_due(125), None);
        assert_eq!(timers.next_ms(), None);
    }

    /// The bug this layout fixes: with one shared bounded map, a proposal
    /// re-check armed on every loop (or a flood of view timers) evicted the
    /// periodic sync and receipt-scan timers, which then never fired again.
    #[test]
    fn the_periodic_timers_survive_any_number_of_other_timers() {
        let mut timers = Timers::default();
        timers.set(1_000, Timer::Sync);
        timers.set(1_000, Timer::ReceiptScan);
        for i in 0..(3 * MAX_VIEW_TIMERS as u64) {
            timers.set(10 + i % 50, Timer::Propose);
            timers.set(10 + i, Timer::View(TimerId { height: 1, view: i }));
        }
        assert!(timers.pending(Timer::Sync) && timers.pending(Timer::ReceiptScan));
        let mut fired = Vec::new();
        while let Some(timer) = timers.pop_due(10_000) {
            fired.push(timer);
        }
        assert!(fired.contains(&Timer::Sync) && fired.contains(&Timer::ReceiptScan));
        assert_eq!(
            fired.iter().filter(|t| **t == Timer::Propose).count(),
            1,
            "one proposal re-check pending at a time"
        );
        assert_eq!(fired.iter().filter(|t| matches!(t, Timer::View(_))).count(), MAX_VIEW_TIMERS);
    }
}
