//! A shard core's deadlines, in the host's milliseconds: the replica's view
//! timers, and the core's own (proposal pacing, the replica's beat, the
//! periodic sync check and receipt scan).
//!
//! The replica ignores timers for views it has left, so view timers are
//! never cancelled; they sit in a bounded map and, past its bound, the
//! earliest are dropped (harmless: the newest view's timer is the one that
//! matters). Only the latest leader timer matters (each re-arm makes the
//! previous one stale), so it has one slot, replaced on each re-arm: a
//! leader beating fast cannot crowd the view timers out. The core's own
//! timers each have one slot of their own too and so can never be pushed
//! out by view timers: the periodic ones are re-armed only when they fire,
//! so losing one once would stop it for good.

use std::collections::BTreeMap;

use palisade_consensus::{TimerId, TimerKind};

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
    /// The replica's periodic beat (liveness, retransmission).
    Beat,
}

/// The core's own timers: one slot each.
const OWN: [Timer; 5] = [Timer::Propose, Timer::Sync, Timer::ReceiptScan, Timer::FlushTxs, Timer::Beat];

/// Deadlines, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    views: BTreeMap<(u64, u64), TimerId>,
    /// The latest leader timer and its deadline.
    leader: Option<(u64, TimerId)>,
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
            Timer::View(id) if matches!(id.kind, TimerKind::Leader(_)) => self.leader = Some((at_ms, id)),
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
        let leader = self.leader.map(|(at, _)| at);
        self.own.iter().flatten().copied().chain(view).chain(leader).min()
    }

    /// Removes and returns the next timer due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Timer> {
        /// Where the earliest deadline sits; ties go to the core's own.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Source {
            Own(usize),
            View,
            Leader,
        }
        let own = self.own.iter().enumerate().filter_map(|(i, at)| Some((at.as_ref().copied()?, Source::Own(i))));
        let view = self.views.first_key_value().map(|((at, _), _)| (*at, Source::View));
        let leader = self.leader.map(|(at, _)| (at, Source::Leader));
        let (at, source) = own.chain(view).chain(leader).min()?;
        if at > now_ms {
            return None;
        }
        match source {
            Source::Own(i) => {
                if let Some(deadline) = self.own.get_mut(i) {
                    *deadline = None;
                }
                OWN.get(i).copied()
            }
            Source::View => self.views.pop_first().map(|(_, id)| Timer::View(id)),
            Source::Leader => self.leader.take().map(|(_, id)| Timer::View(id)),
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
        timers.set(115, Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::View }));
        assert_eq!(timers.pop_due(100), None);
        assert_eq!(timers.next_ms(), Some(110));
        assert_eq!(timers.pop_due(125), Some(Timer::Propose));
        assert_eq!(timers.pop_due(125), Some(Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::View })));
        assert_eq!(timers.pop_due(125), Some(Timer::Sync));
        assert_eq!(timers.pop_due(125), None);
        assert_eq!(timers.next_ms(), None);
    }

    #[test]
    fn only_the_latest_leader_timer_is_kept_and_it_fires_in_order() {
        let leader = |n| Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::Leader(n) });
        let mut timers = Timers::default();
        timers.set(200, Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::View }));
        for n in 0..(3 * MAX_VIEW_TIMERS as u64) {
            timers.set(100 + n, leader(n));
        }
        let last = 3 * MAX_VIEW_TIMERS as u64 - 1;
        assert_eq!(timers.next_ms(), Some(200), "the re-armed leader timer is the last one set");
        assert_eq!(timers.pop_due(10_000), Some(Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::View })));
        assert_eq!(timers.pop_due(10_000), Some(leader(last)));
        assert_eq!(timers.pop_due(10_000), None);
        timers.set(50, leader(7));
        timers.set(60, Timer::View(TimerId { height: 1, view: 0, kind: TimerKind::View }));
        assert_eq!(timers.pop_due(10_000), Some(leader(7)), "earliest first");
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
            timers.set(10 + i, Timer::View(TimerId { height: 1, view: i, kind: TimerKind::View }));
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
