//! A run's books: where every sent transaction stands (in flight,
//! accepted, dropped, final, crossing to its destination), the latencies,
//! refusals and counters the report reads, and when each shard's final-block
//! notices arrived (to time cross-shard credits).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use palisade_ledger::{Hash, ShardId};

use super::report::{self, Refusal};

/// Heights of each shard whose notice arrival times are kept (about 400 s
/// of 100 ms blocks), to time the credits of cross-shard transfers.
pub const MAX_ARRIVALS_PER_SHARD: usize = 4_096;

/// Where a sent transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// Sent, no answer yet.
    InFlight,
    /// In a node's pool (or already executed), waiting to be seen final.
    Accepted,
    /// Refused and not in any pool, unless sent again.
    Dropped,
}

/// A sent transaction not yet seen final.
pub(super) struct Pending {
    pub(super) account: usize,
    pub(super) offset: usize,
    /// Its first send: latency counts from here.
    pub(super) first_sent: Instant,
    /// Which send answers must match to change its status.
    pub(super) send_seq: u64,
    pub(super) status: Status,
    /// A node admitted it once (whatever later sends were answered): a
    /// client was told it is on its way.
    pub(super) admitted: bool,
    /// For a cross-shard transfer, the shard that must credit it.
    pub(super) dest: Option<ShardId>,
}

/// One same-shard transfer's latency, with who sent it and when.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    pub(super) account: usize,
    pub(super) first_sent: Instant,
    pub(super) latency_us: u64,
}

/// A cross-shard transfer final at its source, not yet seen credited.
pub(super) struct Crossing {
    pub(super) dest: ShardId,
    pub(super) first_sent: Instant,
}

/// Everything the ticker, the batch tasks and the finality watchers share.
#[derive(Default)]
pub(super) struct Book {
    /// Per account, the nonce offset its next slot sends.
    pub(super) cursor: Vec<usize>,
    /// Per account, how many of its transactions are final at their source:
    /// the offset of its first one that is not (they execute in nonce
    /// order).
    pub(super) finals: Vec<usize>,
    pub(super) pending: HashMap<Hash, Pending>,
    pub(super) finalized: HashSet<Hash>,
    /// Same-shard transfers: first send to final.
    pub(super) latencies_us: Vec<u64>,
    /// The same, with the sender's account and the first send (what a
    /// latency over one stretch of the run, or one shard, reads).
    pub(super) timeline: Vec<Sample>,
    /// Cross-shard transfers final at their source, awaiting their credit.
    pub(super) crossing: HashMap<Hash, Crossing>,
    /// Cross-shard transfers: first send to credited.
    pub(super) cross_latencies_us: Vec<u64>,
    /// Cross-shard transfers: first send to final at their source.
    pub(super) cross_source_latencies_us: Vec<u64>,
    /// Distinct cross-shard transfers sent.
    pub(super) cross_transactions: u64,
    /// Credits timed when seen, their block's arrival being forgotten.
    pub(super) late_credits: u64,
    pub(super) rejected: BTreeMap<String, u64>,
    /// Refused submissions, over all reasons.
    pub(super) refused: u64,
    /// Pending transactions not [`Status::Dropped`]: what the run still
    /// expects to be final.
    pub(super) open: usize,
    pub(super) next_seq: u64,
    pub(super) sent: u64,
    pub(super) transactions: u64,
    pub(super) resent: u64,
    pub(super) accepted: u64,
    pub(super) backlog: u64,
    pub(super) first_send: Option<Instant>,
    pub(super) last_final: Option<Instant>,
    pub(super) max_lag: Duration,
    pub(super) missed_blocks: u64,
}

impl Book {
    /// The next slot of `account` is sent: returns its nonce offset.
    pub(super) fn take(&mut self, account: usize) -> usize {
        match self.cursor.get_mut(account) {
            Some(cursor) => {
                let offset = *cursor;
                *cursor = cursor.saturating_add(1);
                offset
            }
            None => usize::MAX,
        }
    }

    /// `account` must send `offset` again next.
    pub(super) fn rewind(&mut self, account: usize, offset: usize) {
        if let Some(cursor) = self.cursor.get_mut(account) {
            *cursor = (*cursor).min(offset);
        }
    }

    /// Records that `id` (to `dest`, if it crosses shards) is being sent
    /// now; returns the send's sequence number.
    pub(super) fn release(
        &mut self,
        id: Hash,
        dest: Option<ShardId>,
        account: usize,
        offset: usize,
        now: Instant,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.sent = self.sent.saturating_add(1);
        self.first_send.get_or_insert(now);
        if self.finalized.contains(&id) {
            self.resent = self.resent.saturating_add(1);
            return seq;
        }
        match self.pending.entry(id) {
            Entry::Occupied(mut e) => {
                self.resent = self.resent.saturating_add(1);
                let p = e.get_mut();
                if p.status == Status::Dropped {
                    self.open = self.open.saturating_add(1);
                }
                p.send_seq = seq;
                p.status = Status::InFlight;
            }
            Entry::Vacant(e) => {
                self.transactions = self.transactions.saturating_add(1);
                if dest.is_some() {
                    self.cross_transactions = self.cross_transactions.saturating_add(1);
                }
                self.open = self.open.saturating_add(1);
                e.insert(Pending {
                    account,
                    offset,
                    first_sent: now,
                    send_seq: seq,
                    status: Status::InFlight,
                    admitted: false,
                    dest,
                });
            }
        }
        seq
    }

    pub(super) fn answer(&mut self, id: &Hash, seq: u64, answer: Result<(), String>) {
        let refusal = match answer {
            Ok(()) => {
                self.accepted = self.accepted.saturating_add(1);
                None
            }
            Err(reason) => {
                let refusal = report::refusal(&reason);
                *self.rejected.entry(reason).or_default() += 1;
                self.refused = self.refused.saturating_add(1);
                Some(refusal)
            }
        };
        let Some(p) = self.pending.get_mut(id) else { return };
        // Admitted by any send, answered in any order.
        p.admitted |= matches!(refusal, None | Some(Refusal::AlreadyPending));
        if p.send_seq != seq {
            return;
        }
        match refusal {
            None | Some(Refusal::AlreadyPending | Refusal::AlreadyExecuted) => p.status = Status::Accepted,
            Some(refusal @ (Refusal::Dropped | Refusal::Gap)) => {
                if p.status != Status::Dropped {
                    self.open = self.open.saturating_sub(1);
                }
                p.status = Status::Dropped;
                let (account, offset) = (p.account, p.offset);
                // A gap: the earlier ones it waits for are resent too.
                let from = match refusal {
                    Refusal::Gap => self.finals.get(account).copied().unwrap_or(offset).min(offset),
                    _ => offset,
                };
                self.rewind(account, from);
            }
        }
    }

    /// `id` is final at its source, seen at `arrival`. A same-shard
    /// transfer is done; a cross-shard one waits for its credit (and stays
    /// open).
    pub(super) fn finalize(&mut self, id: &Hash, arrival: Instant) -> bool {
        let Some(p) = self.pending.remove(id) else { return false };
        self.finalized.insert(*id);
        if let Some(done) = self.finals.get_mut(p.account) {
            *done = (*done).max(p.offset.saturating_add(1));
        }
        self.last_final = Some(self.last_final.map_or(arrival, |last| last.max(arrival)));
        let latency = micros(arrival.saturating_duration_since(p.first_sent));
        match p.dest {
            None => {
                if p.status != Status::Dropped {
                    self.open = self.open.saturating_sub(1);
                }
                self.latencies_us.push(latency);
                self.timeline.push(Sample { account: p.account, first_sent: p.first_sent, latency_us: latency });
            }
            Some(dest) => {
                self.cross_source_latencies_us.push(latency);
                // A dropped one was not expected any more: it is again.
                if p.status == Status::Dropped {
                    self.open = self.open.saturating_add(1);
                }
                self.crossing.insert(*id, Crossing { dest, first_sent: p.first_sent });
            }
        }
        true
    }

    /// Cross-shard `id` was credited by a block whose notice arrived at
    /// `arrival` (or, `late`, was seen credited then).
    pub(super) fn credit(&mut self, id: &Hash, arrival: Instant, late: bool) -> bool {
        let Some(c) = self.crossing.remove(id) else { return false };
        self.open = self.open.saturating_sub(1);
        self.cross_latencies_us.push(micros(arrival.saturating_duration_since(c.first_sent)));
        if late {
            self.late_credits = self.late_credits.saturating_add(1);
        }
        true
    }

    /// Transactions final at their source (same- and cross-shard).
    pub(super) fn committed(&self) -> u64 {
        self.finalized.len() as u64
    }

    pub(super) fn open(&self) -> usize {
        self.open
    }
}

/// A duration in whole microseconds.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// When a shard's final-block notice for a height arrived, as far as the
/// run knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// At this moment.
    At(Instant),
    /// Not yet: the watcher has not seen that height.
    NotYet,
    /// Seen long ago and forgotten (beyond [`MAX_ARRIVALS_PER_SHARD`]).
    Forgotten,
}

/// Per shard, when the notices of its recent heights arrived.
#[derive(Default)]
pub(super) struct Arrivals {
    pub(super) by_shard: BTreeMap<ShardId, BTreeMap<u64, Instant>>,
}

impl Arrivals {
    pub(super) fn record(&mut self, shard: ShardId, height: u64, at: Instant) {
        let heights = self.by_shard.entry(shard).or_default();
        heights.entry(height).or_insert(at);
        while heights.len() > MAX_ARRIVALS_PER_SHARD {
            heights.pop_first();
        }
    }

    pub(super) fn of(&self, shard: ShardId, height: u64) -> Arrival {
        let Some(heights) = self.by_shard.get(&shard) else { return Arrival::NotYet };
        match heights.get(&height) {
            Some(&at) => Arrival::At(at),
            None if heights.last_key_value().is_some_and(|(&last, _)| last >= height) => Arrival::Forgotten,
            None => Arrival::NotYet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn book(accounts: usize) -> Book {
        Book { cursor: vec![0; accounts], ..Book::default() }
    }

    /// What the `open` counter must equal.
    fn walked_open(b: &Book) -> usize {
        b.pending.values().filter(|p| p.status != Status::Dropped).count()
    }

    #[test]
    fn a_dropped_transaction_rewinds_its_account_once_whatever_the_order_of_answers() {
        let now = Instant::now();
        let mut b = book(1);
        let offsets: Vec<usize> = (0..3).map(|_| b.take(0)).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        let seqs: Vec<u64> = (0..3u8).map(|n| b.release(id(n), None, 0, usize::from(n), now)).collect();
        // The gap refusal of nonce 2 arrives before the refusal of nonce 1
        // that caused it: the account must still resend from 1.
        b.answer(&id(0), seqs[0], Ok(()));
        b.answer(&id(2), seqs[2], Err("nonce_gap".into()));
        b.answer(&id(1), seqs[1], Err("full".into()));
        assert_eq!(b.take(0), 1);
        assert_eq!(b.rejected.get("nonce_gap"), Some(&1));
        assert_eq!(b.rejected.get("full"), Some(&1));
        assert_eq!(b.open(), 1, "only nonce 0 is still expected to be final");
        assert_eq!(b.open(), walked_open(&b));
        assert_eq!(b.refused, 2);
    }

    #[test]
    fn a_late_answer_to_an_earlier_send_changes_nothing() {
        let now = Instant::now();
        let mut b = book(1);
        let (o0, o1) = (b.take(0), b.take(0));
        let s0 = b.release(id(0), None, 0, o0, now);
        let s1 = b.release(id(1), None, 0, o1, now);
        b.answer(&id(0), s0, Err("busy".into()));
        // Resent both; the old refusal of nonce 1 arrives after.
        assert_eq!(b.take(0), 0);
        let r0 = b.release(id(0), None, 0, 0, now);
        let o1 = b.take(0);
        let r1 = b.release(id(1), None, 0, o1, now);
        b.answer(&id(1), s1, Err("nonce_gap".into()));
        assert_eq!(b.take(0), 2, "a stale refusal must not rewind");
        b.answer(&id(0), r0, Ok(()));
        b.answer(&id(1), r1, Err("duplicate".into()));
        assert_eq!(b.resent, 2);
        assert_eq!(b.open(), 2);
        assert_eq!(b.open(), walked_open(&b));
    }

    #[test]
    fn final_transactions_count_once_from_their_first_send() {
        let start = Instant::now();
        let mut b = book(1);
        let o = b.take(0);
        let s = b.release(id(7), None, 0, o, start);
        b.answer(&id(7), s, Err("timeout".into()));
        let later = start + Duration::from_millis(40);
        b.release(id(7), None, 0, 0, later);
        let seen = start + Duration::from_millis(250);
        assert!(b.finalize(&id(7), seen));
        assert!(!b.finalize(&id(7), seen + Duration::from_millis(5)), "a block seen twice counts once");
        assert_eq!(b.latencies_us, vec![250_000]);
        // Sent again after it was final (a lost answer): not pending again.
        b.release(id(7), None, 0, 0, seen);
        assert_eq!(b.pending.len(), 0);
        assert_eq!(b.resent, 2);
        assert_eq!(b.open(), 0);
    }

    #[test]
    fn arrivals_are_bounded_and_tell_forgotten_from_not_yet() {
        let now = Instant::now();
        let mut a = Arrivals::default();
        assert_eq!(a.of(0, 1), Arrival::NotYet);
        for h in 1..=(MAX_ARRIVALS_PER_SHARD as u64 + 10) {
            a.record(0, h, now);
        }
        assert_eq!(a.by_shard[&0].len(), MAX_ARRIVALS_PER_SHARD);
        assert_eq!(a.of(0, 5), Arrival::Forgotten);
        assert_eq!(a.of(0, 20), Arrival::At(now));
        assert_eq!(a.of(0, MAX_ARRIVALS_PER_SHARD as u64 + 11), Arrival::NotYet);
        assert_eq!(a.of(1, 20), Arrival::NotYet);
    }
}
