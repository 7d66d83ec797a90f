//! The open loop: a pre-signed [`Plan`] of transfers released on schedule,
//! in batched submissions (`palisade_submitTransactions`) that never hold
//! the schedule up, with the run's books ([`super::book`]) matching every
//! answer and every final block to what was sent.
//!
//! - Sending a planned transaction again is sending the same bytes, and a
//!   node that already holds it answers `duplicate`.
//! - Every [`TICK`] the ticker releases the slots that are due (slot `k` at
//!   `k / rate`), round-robin over the accounts, into lanes: each account
//!   always goes through the same lane to the same validator of its shard.
//!   A lane task sends what is queued as one batch at a time (up to
//!   [`MAX_SUBMIT_BATCH`] transactions, one call), in order, so an
//!   account's nonces reach the node in order, and a slow node gets bigger
//!   batches. The ticker never waits:
//!   a slot whose lane already queues [`MAX_QUEUED_TICKS`] ticks of
//!   releases is counted as client backlog, not delayed. Latency counts
//!   from release, so time queued in a lane is part of it.
//! - A refusal that leaves a transaction out of the pool (full, busy, a
//!   nonce gap, a lost batch, …) rewinds its account to that nonce: the
//!   account's next slots resend it and what follows, since nothing after a
//!   missing nonce can execute. Only a refusal of the latest send of a
//!   transaction rewinds, so late answers to earlier sends change nothing.
//! - A same-shard transfer is done when the final-block notice that carries
//!   it arrives. A cross-shard one stays open after that until its
//!   destination credits it: its latency runs to the arrival of the notice
//!   of the destination block that credited it ([`Run::credited`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use palisade_ledger::api::MAX_SUBMIT_BATCH;
use palisade_ledger::{Hash, ShardId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::book::{Arrival, Arrivals, Book};
use super::plan::{Plan, Prepared};
use super::report::{self, CrossShard, Latency, Summary};
use super::rpc::Node;
use super::schedule;

/// How often the ticker releases due transactions.
pub const TICK: Duration = Duration::from_millis(10);
/// Lanes per node. A lane sends one batch at a time, in release order; an
/// account always uses the same lane, so its nonces reach the node in
/// order (concurrent batches could overtake each other at a busy node and
/// turn into `nonce_gap` refusals).
pub const LANES_PER_NODE: usize = 4;
/// Ticks of releases a lane may queue while its batch is in flight (2 s);
/// a slot that finds its lane's queue full is client backlog.
pub const MAX_QUEUED_TICKS: usize = 200;

/// Where a run stands, read at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Submissions sent.
    pub sent: u64,
    /// Transactions seen final.
    pub committed: u64,
    /// Refused submissions.
    pub rejected: u64,
    /// Transactions sent and not refused that are not yet final.
    pub open: usize,
}

/// The shared state of one run.
pub struct Run {
    book: Mutex<Book>,
    arrivals: Mutex<Arrivals>,
    /// Set by [`Run::stop`]: the ticker releases nothing more.
    stopped: std::sync::atomic::AtomicBool,
}

impl Run {
    /// A run of `plan`.
    pub fn new(plan: &Plan) -> Arc<Run> {
        let book = Book { cursor: vec![0; plan.chains.len()], finals: vec![0; plan.chains.len()], ..Book::default() };
        Arc::new(Run {
            book: Mutex::new(book),
            arrivals: Mutex::new(Arrivals::default()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Ends the schedule early: [`offer`] releases nothing after its next
    /// tick (what is out is still sent and tracked).
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The transactions in `ids` are final, seen at `arrival`.
    pub fn finalized<'a>(&self, ids: impl IntoIterator<Item = &'a Hash>, arrival: Instant) {
        let mut book = self.book();
        for id in ids {
            book.finalize(id, arrival);
        }
    }

    /// The notice of `shard`'s block at `height` arrived at `at` (the
    /// first time counts).
    pub fn arrived(&self, shard: ShardId, height: u64, at: Instant) {
        self.arrivals.lock().unwrap_or_else(PoisonError::into_inner).record(shard, height, at);
    }

    /// Up to `most` cross-shard transfers to `dest` final at their source
    /// and not yet seen credited.
    pub fn awaiting_credit(&self, dest: ShardId, most: usize) -> Vec<Hash> {
        let book = self.book();
        book.crossing.iter().filter(|(_, c)| c.dest == dest).map(|(id, _)| *id).take(most).collect()
    }

    /// `dest` credited cross-shard `id` in its block at `height`: done at
    /// the arrival of that block's notice. Returns false (ask again later)
    /// if that notice has not arrived yet; a credit whose notice is
    /// forgotten counts from now.
    pub fn credited(&self, id: &Hash, dest: ShardId, height: u64) -> bool {
        let arrival = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner).of(dest, height);
        let mut book = self.book();
        match arrival {
            Arrival::At(at) => book.credit(id, at, false),
            Arrival::Forgotten => book.credit(id, Instant::now(), true),
            Arrival::NotYet => false,
        }
    }

    /// `count` final blocks could not be fetched.
    pub fn missed_blocks(&self, count: u64) {
        let mut book = self.book();
        book.missed_blocks = book.missed_blocks.saturating_add(count);
    }

    /// Transactions sent and not refused that are not yet final.
    pub fn open(&self) -> usize {
        self.book().open()
    }

    /// Latencies of the same-shard transfers of the accounts `of` picks
    /// whose first send fell in `from..to` (and that are final).
    pub fn latency_between(&self, of: impl Fn(usize) -> bool, from: Instant, to: Instant) -> Option<Latency> {
        let book = self.book();
        let mut samples: Vec<u64> = book
            .timeline
            .iter()
            .filter(|s| of(s.account) && (from..to).contains(&s.first_sent))
            .map(|s| s.latency_us)
            .collect();
        drop(book);
        Latency::of(&mut samples)
    }

    /// Sent, final, refused and open, under one lock.
    pub fn progress(&self) -> Progress {
        let book = self.book();
        Progress { sent: book.sent, committed: book.committed(), rejected: book.refused, open: book.open() }
    }

    /// The summary, for a run that offered load for `duration` with
    /// `cross_shard` of its transfers across shards.
    pub fn summary(&self, plan: &Plan, duration: Duration, shards: u32, cross_shard: f64) -> Summary {
        let mut book = self.book();
        let committed = book.committed();
        let cross = (cross_shard > 0.0).then(|| {
            let credited = book.cross_latencies_us.len() as u64;
            let not_credited = book.crossing.len() as u64;
            CrossShard {
                fraction: cross_shard,
                transactions: book.cross_transactions,
                credited,
                not_credited,
                final_at_source: credited.saturating_add(not_credited),
                latency: Latency::of(&mut book.cross_latencies_us),
                source_latency: Latency::of(&mut book.cross_source_latencies_us),
                late_timed: book.late_credits,
            }
        });
        let window = match (book.first_send, book.last_final) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        Summary {
            shards,
            accounts: plan.chains.len(),
            target_rate: plan.rate,
            duration_s: duration.as_secs_f64(),
            scheduled: plan.total,
            sent: book.sent,
            transactions: book.transactions,
            client_backlog: book.backlog,
            resent: book.resent,
            accepted: book.accepted,
            committed,
            not_final: book.pending.len() as u64,
            admitted_not_final: book.pending.values().filter(|p| p.admitted).count() as u64,
            offered_tps: report::per_second(book.sent, duration),
            committed_tps: report::per_second(committed, window),
            latency: Latency::of(&mut book.latencies_us),
            rejected: book.rejected.clone(),
            max_ticker_lag_ms: book.max_lag.as_secs_f64() * 1_000.0,
            missed_blocks: book.missed_blocks,
            cross_shard: cross,
            cost: None,
        }
    }
}

/// One released transaction: (account, nonce offset, send sequence).
type Item = (usize, usize, u64);

/// The lane of `account`: a function of the account alone, so all its
/// transactions travel in order through the same lane.
fn lane_of(plan: &Plan, account: usize) -> usize {
    let node = plan.node_of.get(account).copied().unwrap_or(0);
    node.saturating_mul(LANES_PER_NODE).saturating_add(account % LANES_PER_NODE)
}

/// Releases `plan` on schedule from `start` until every slot is released,
/// into [`LANES_PER_NODE`] lanes per node. Returns the lane tasks, which
/// finish once they have sent what was released (the caller aborts them
/// when the run ends).
pub async fn offer(plan: Arc<Plan>, nodes: &[Node], run: Arc<Run>, start: Instant) -> Vec<JoinHandle<()>> {
    let mut queues = Vec::new();
    let mut lanes = Vec::new();
    for node in nodes {
        for _ in 0..LANES_PER_NODE {
            let (queue, items) = mpsc::channel(MAX_QUEUED_TICKS);
            let (plan, run, node) = (Arc::clone(&plan), Arc::clone(&run), node.clone());
            lanes.push(tokio::spawn(async move { lane(&plan, &run, &node, items).await }));
            queues.push(queue);
        }
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0u64;
    // Bounded: each tick either releases slots or waits for the next one,
    // and the schedule ends `total / rate` after `start` (or at a stop).
    while next < plan.total && !run.is_stopped() {
        tick.tick().await;
        let now = Instant::now();
        let due = schedule::due(plan.rate, now.saturating_duration_since(start), plan.total);
        if due > next {
            release(&plan, &run, &queues, next..due, start, now);
            next = due;
        }
    }
    lanes
}

/// Assigns slots `slots` to accounts and lanes and queues them; the slots
/// of a lane whose queue is full are backlog.
fn release(
    plan: &Plan,
    run: &Run,
    queues: &[mpsc::Sender<Vec<Item>>],
    slots: std::ops::Range<u64>,
    start: Instant,
    now: Instant,
) {
    let accounts = plan.chains.len();
    let mut book = run.book();
    let lag = now.saturating_duration_since(start).saturating_sub(schedule::due_at(plan.rate, slots.start));
    book.max_lag = book.max_lag.max(lag);
    let mut per_lane: Vec<Vec<(usize, usize)>> = vec![Vec::new(); queues.len()];
    for slot in slots {
        let account = schedule::account_of(slot, accounts);
        let offset = book.take(account);
        if let Some(group) = per_lane.get_mut(lane_of(plan, account)) {
            group.push((account, offset));
        }
    }
    for (group, queue) in per_lane.into_iter().zip(queues) {
        if group.is_empty() {
            continue;
        }
        let Ok(permit) = queue.try_reserve() else {
            book.backlog = book.backlog.saturating_add(group.len() as u64);
            for (account, offset) in group {
                book.rewind(account, offset);
            }
            continue;
        };
        let mut items = Vec::with_capacity(group.len());
        for (account, offset) in group {
            let Some(tx) = plan.chains.get(account).and_then(|c| c.get(offset)) else { continue };
            items.push((account, offset, book.release(tx.id, tx.dest, account, offset, now)));
        }
        permit.send(items);
    }
}

/// One lane: sends what is queued, up to [`MAX_SUBMIT_BATCH`] per call, one
/// batch at a time, until the queue closes and is empty.
async fn lane(plan: &Plan, run: &Run, node: &Node, mut queue: mpsc::Receiver<Vec<Item>>) {
    let mut waiting: VecDeque<Item> = VecDeque::new();
    // Bounded: every round sends at least one item, and the queue closes
    // when the ticker is done.
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(items) => waiting.extend(items),
                None => return,
            }
        }
        while waiting.len() < MAX_SUBMIT_BATCH {
            match queue.try_recv() {
                Ok(items) => waiting.extend(items),
                Err(_) => break,
            }
        }
        let batch: Vec<Item> = waiting.drain(..waiting.len().min(MAX_SUBMIT_BATCH)).collect();
        submit(plan, run, node, batch).await;
    }
}

/// Sends one batch and books the answers.
async fn submit(plan: &Plan, run: &Run, node: &Node, items: Vec<Item>) {
    let sends: Vec<(&Prepared, u64)> = items
        .iter()
        .filter_map(|&(account, offset, seq)| Some((plan.chains.get(account)?.get(offset)?, seq)))
        .collect();
    let hexes: Vec<&str> = sends.iter().map(|(tx, _)| &*tx.hex).collect();
    let answers = node.client.submit_all_hex(&hexes).await;
    let mut book = run.book();
    match answers {
        Ok(answers) => {
            for ((tx, seq), answer) in sends.iter().zip(answers) {
                book.answer(&tx.id, *seq, answer.map(drop).map_err(|e| report::label(&e)));
            }
        }
        Err(e) => {
            let why = report::label(&e);
            for (tx, seq) in &sends {
                book.answer(&tx.id, *seq, Err(why.clone()));
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn a_cross_shard_transfer_stays_open_until_its_credit_and_times_from_its_block() {
        let start = Instant::now();
        let plan = Plan { rate: 1, total: 1, chains: vec![Vec::new()], node_of: vec![0] };
        let run = Run::new(&plan);
        let (same, across) = (id(1), id(2));
        {
            let mut b = run.book();
            b.release(same, None, 0, 0, start);
            b.release(across, Some(3), 0, 1, start);
            assert_eq!(b.cross_transactions, 1);
        }
        let at = |ms: u64| start + Duration::from_millis(ms);
        run.finalized([&same, &across], at(200));
        assert_eq!(run.open(), 1, "the cross-shard one waits for its credit");
        assert_eq!(run.awaiting_credit(3, 10), vec![across]);
        assert!(run.awaiting_credit(0, 10).is_empty());
        // Shard 3 credited it at height 9, whose notice has not arrived.
        assert!(!run.credited(&across, 3, 9));
        run.arrived(3, 8, at(400));
        run.arrived(3, 9, at(500));
        run.arrived(3, 9, at(900));
        assert!(run.credited(&across, 3, 9));
        assert!(!run.credited(&across, 3, 9), "credited once");
        assert_eq!(run.open(), 0);
        let b = run.book();
        assert_eq!(
            (b.committed(), b.latencies_us.clone(), b.cross_latencies_us.clone()),
            (2, vec![200_000], vec![500_000])
        );
        assert_eq!(b.cross_source_latencies_us, vec![200_000]);
        assert_eq!(b.late_credits, 0);
    }

    #[tokio::test]
    async fn a_stopped_run_releases_nothing_more() {
        // A plan a thousand seconds long, with nowhere to send.
        let plan = Arc::new(Plan { rate: 1_000, total: 1_000_000, chains: Vec::new(), node_of: Vec::new() });
        let run = Run::new(&plan);
        let stopper = Arc::clone(&run);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopper.stop();
        });
        let start = Instant::now();
        let offered = tokio::time::timeout(Duration::from_secs(30), offer(Arc::clone(&plan), &[], run, start)).await;
        assert!(offered.is_ok(), "the ticker ran on after the stop");
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    /// A transaction a node admitted and lost (killed before it gossiped
    /// it) strands its sender: the next ones are refused `nonce_gap`. The
    /// sender then resends from its first transaction not yet final, the
    /// lost one included, instead of only from the refused one.
    #[test]
    fn a_gap_resends_the_sender_from_its_first_transaction_not_yet_final() {
        let start = Instant::now();
        let plan = Plan { rate: 1, total: 6, chains: vec![Vec::new()], node_of: vec![0] };
        let run = Run::new(&plan);
        let mut b = run.book();
        let seqs: Vec<u64> = (0..4u8)
            .map(|n| {
                let offset = b.take(0);
                b.release(id(n), None, 0, offset, start)
            })
            .collect();
        b.answer(&id(0), seqs[0], Ok(()));
        assert!(b.finalize(&id(0), start));
        // 1 was admitted, then lost with its node; 2 and 3 are refused.
        b.answer(&id(1), seqs[1], Ok(()));
        b.answer(&id(2), seqs[2], Err("nonce_gap".into()));
        assert_eq!(b.cursor[0], 1, "resend from the lost one, not from 2");
        b.answer(&id(3), seqs[3], Err("insufficient_funds".into()));
        assert_eq!(b.cursor[0], 1, "a plain refusal never moves the cursor forward");
        assert_eq!(b.take(0), 1);
        let again = b.release(id(1), None, 0, 1, start);
        b.answer(&id(1), again, Err("duplicate".into()));
        assert_eq!(b.open(), 1, "1 is still expected; 2 and 3 wait to be resent");
        // A send refused after one admitted it still counts as admitted.
        let later = b.release(id(1), None, 0, 1, start);
        b.answer(&id(1), later, Err("unreachable".into()));
        assert!(b.pending[&id(1)].admitted && !b.pending[&id(2)].admitted);
    }
}
