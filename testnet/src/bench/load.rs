//! The open loop: a pre-signed plan of transfers released on schedule, in
//! JSON-RPC batches that never hold the schedule up, and the bookkeeping
//! that matches every answer and every final block to what was sent.
//!
//! - The plan signs every transaction before the clock starts, per account
//!   a chain of consecutive nonces; a transaction is a function of sender
//!   and nonce only (to the next account of the shard, or — for the share
//!   of slots [`crosses`] picks — to an account on the next shard; 1 unit,
//!   a fixed fee), so sending one again is sending the same bytes, and a
//!   node that already holds it answers `duplicate`.
//! - Every [`TICK`] the ticker releases the slots that are due (slot `k` at
//!   `k / rate`), round-robin over the accounts, into lanes: each account
//!   always goes through the same lane to the same validator of its shard.
//!   A lane task sends what is queued as one batch at a time (up to
//!   [`MAX_BATCH`] calls), in order, so an account's nonces reach the node
//!   in order, and a slow node gets bigger batches. The ticker never waits:
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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use palisade_ledger::api::method;
use palisade_ledger::{Address, Amount, Hash, Keypair, ShardId, SignedTx};
use serde::Serialize;
use serde::de::IgnoredAny;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::report::{self, CrossShard, Latency, Refusal, Summary};
use super::rpc::Node;
use super::schedule;
use crate::local::MAX_BATCH;

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
/// The most transactions one plan may sign (about 300 bytes each in memory).
pub const MAX_PLANNED_TXS: u64 = 1_000_000;
/// Amount of every bench transfer, units.
pub const TRANSFER_UNITS: u64 = 1;
/// Fee of every bench transfer, units.
pub const FEE_UNITS: u64 = 1_000;
/// Heights of each shard whose notice arrival times are kept (about 400 s
/// of 100 ms blocks), to time the credits of cross-shard transfers.
pub const MAX_ARRIVALS_PER_SHARD: usize = 4_096;

/// The golden ratio's fractional part in 64-bit fixed point.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether schedule slot `slot` is a cross-shard transfer, for a share of
/// `per_mille` ‰: when `{slot·φ} < per_mille/1000` (a Weyl sequence).
/// It is equidistributed with low discrepancy on every arithmetic
/// progression of slots, so every stretch of the run, every shard and every
/// account (a shard's and an account's slots are such progressions) gets
/// that share, give or take a couple of transfers per hundred.
pub fn crosses(per_mille: u64, slot: u64) -> bool {
    let point = u128::from(slot.wrapping_mul(GOLDEN));
    point * 1_000 < u128::from(per_mille.min(1_000)) << 64
}

/// One signed transaction, ready to send.
pub struct Prepared {
    /// Its id.
    pub id: Hash,
    /// Its canonical encoding, hex (what `palisade_submitTransaction` takes).
    pub hex: Box<str>,
    /// For a cross-shard transfer, the recipient's shard.
    pub dest: Option<ShardId>,
}

/// `palisade_submitTransaction`'s parameters, borrowed from the plan.
#[derive(Serialize)]
struct SubmitParams<'a> {
    tx_hex: &'a str,
}

/// A run's transactions, signed before the clock starts.
pub struct Plan {
    /// Transactions per second.
    pub rate: u64,
    /// Slots in the schedule.
    pub total: u64,
    /// Per account, its transactions by nonce offset from its current nonce.
    pub chains: Vec<Vec<Prepared>>,
    /// Per account, the node its transactions go to (index into the nodes).
    pub node_of: Vec<usize>,
}

/// Who sends what in a plan: one entry per account.
pub struct Sender<'a> {
    /// Its key.
    pub key: &'a Keypair,
    /// Who its transfers pay (on its own shard).
    pub to: Address,
    /// Who its cross-shard transfers pay, and that account's shard (`None`
    /// when there is no other shard).
    pub across: Option<(Address, ShardId)>,
    /// Its next nonce.
    pub nonce: u64,
    /// The node it submits to.
    pub node: usize,
}

impl Plan {
    /// Signs `rate × duration` transfers, round-robin over `senders`, on
    /// every core, advancing `bar` as it goes; `cross_per_mille` ‰ of the
    /// slots pay their sender's `across` account (see [`crosses`]).
    pub fn sign(
        chain_id: &str,
        senders: &[Sender<'_>],
        rate: u64,
        duration: Duration,
        cross_per_mille: u64,
        bar: &ProgressBar,
    ) -> Result<Plan> {
        let total = schedule::total(rate, duration);
        if total > MAX_PLANNED_TXS {
            bail!("{rate} tx/s for {duration:?} is {total} transactions; at most {MAX_PLANNED_TXS} per run");
        }
        if total == 0 || senders.is_empty() {
            bail!("nothing to send: {rate} tx/s for {duration:?} over {} accounts", senders.len());
        }
        bar.set_length(total);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(senders.len());
        let per_thread = senders.len().div_ceil(threads);
        let sign_one = |(a, sender): (usize, &Sender<'_>)| -> Vec<Prepared> {
            let slots = schedule::slots_of(a, senders.len(), total);
            let chain = (0..slots)
                .map(|offset| {
                    let nonce = sender.nonce.saturating_add(offset);
                    let amount = Amount(TRANSFER_UNITS);
                    // The slot of this nonce, round-robin over the senders.
                    let slot = offset.saturating_mul(senders.len() as u64).saturating_add(a as u64);
                    let (to, dest) = match sender.across {
                        Some((to, dest)) if crosses(cross_per_mille, slot) => (to, Some(dest)),
                        _ => (sender.to, None),
                    };
                    let tx = SignedTx::transfer(sender.key, chain_id, nonce, to, amount, Amount(FEE_UNITS));
                    let bytes = tx.to_bytes();
                    Prepared { id: SignedTx::id_of(&bytes), hex: hex::encode(&bytes).into_boxed_str(), dest }
                })
                .collect();
            bar.inc(slots);
            chain
        };
        let chains: Vec<Vec<Prepared>> = std::thread::scope(|scope| {
            let workers: Vec<_> = senders
                .chunks(per_thread)
                .enumerate()
                .map(|(chunk, part)| {
                    let first = chunk * per_thread;
                    scope.spawn(move || {
                        part.iter().enumerate().map(|(i, s)| sign_one((first + i, s))).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        if chains.len() != senders.len() {
            bail!("a signing thread failed");
        }
        bar.set_position(total);
        Ok(Plan { rate, total, chains, node_of: senders.iter().map(|s| s.node).collect() })
    }
}

/// Where a sent transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Sent, no answer yet.
    InFlight,
    /// In a node's pool (or already executed), waiting to be seen final.
    Accepted,
    /// Refused and not in any pool, unless sent again.
    Dropped,
}

/// A sent transaction not yet seen final.
struct Pending {
    account: usize,
    offset: usize,
    /// Its first send: latency counts from here.
    first_sent: Instant,
    /// Which send answers must match to change its status.
    send_seq: u64,
    status: Status,
    /// For a cross-shard transfer, the shard that must credit it.
    dest: Option<ShardId>,
}

/// A cross-shard transfer final at its source, not yet seen credited.
struct Crossing {
    dest: ShardId,
    first_sent: Instant,
}

/// Everything the ticker, the batch tasks and the finality watchers share.
#[derive(Default)]
struct Book {
    /// Per account, the nonce offset its next slot sends.
    cursor: Vec<usize>,
    pending: HashMap<Hash, Pending>,
    finalized: HashSet<Hash>,
    /// Same-shard transfers: first send to final.
    latencies_us: Vec<u64>,
    /// Cross-shard transfers final at their source, awaiting their credit.
    crossing: HashMap<Hash, Crossing>,
    /// Cross-shard transfers: first send to credited.
    cross_latencies_us: Vec<u64>,
    /// Cross-shard transfers: first send to final at their source.
    cross_source_latencies_us: Vec<u64>,
    /// Distinct cross-shard transfers sent.
    cross_transactions: u64,
    /// Credits timed when seen, their block's arrival being forgotten.
    late_credits: u64,
    rejected: BTreeMap<String, u64>,
    /// Refused submissions, over all reasons.
    refused: u64,
    /// Pending transactions not [`Status::Dropped`]: what the run still
    /// expects to be final.
    open: usize,
    next_seq: u64,
    sent: u64,
    transactions: u64,
    resent: u64,
    accepted: u64,
    backlog: u64,
    first_send: Option<Instant>,
    last_final: Option<Instant>,
    max_lag: Duration,
    missed_blocks: u64,
}

impl Book {
    /// The next slot of `account` is sent: returns its nonce offset.
    fn take(&mut self, account: usize) -> usize {
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
    fn rewind(&mut self, account: usize, offset: usize) {
        if let Some(cursor) = self.cursor.get_mut(account) {
            *cursor = (*cursor).min(offset);
        }
    }

    /// Records that `id` (to `dest`, if it crosses shards) is being sent
    /// now; returns the send's sequence number.
    fn release(&mut self, id: Hash, dest: Option<ShardId>, account: usize, offset: usize, now: Instant) -> u64 {
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
                e.insert(Pending { account, offset, first_sent: now, send_seq: seq, status: Status::InFlight, dest });
            }
        }
        seq
    }

    fn answer(&mut self, id: &Hash, seq: u64, answer: Result<(), String>) {
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
        if p.send_seq != seq {
            return;
        }
        match refusal {
            None | Some(Refusal::AlreadyPending | Refusal::AlreadyExecuted) => p.status = Status::Accepted,
            Some(Refusal::Dropped) => {
                if p.status != Status::Dropped {
                    self.open = self.open.saturating_sub(1);
                }
                p.status = Status::Dropped;
                let (account, offset) = (p.account, p.offset);
                self.rewind(account, offset);
            }
        }
    }

    /// `id` is final at its source, seen at `arrival`. A same-shard
    /// transfer is done; a cross-shard one waits for its credit (and stays
    /// open).
    fn finalize(&mut self, id: &Hash, arrival: Instant) -> bool {
        let Some(p) = self.pending.remove(id) else { return false };
        self.finalized.insert(*id);
        self.last_final = Some(self.last_final.map_or(arrival, |last| last.max(arrival)));
        let latency = micros(arrival.saturating_duration_since(p.first_sent));
        match p.dest {
            None => {
                if p.status != Status::Dropped {
                    self.open = self.open.saturating_sub(1);
                }
                self.latencies_us.push(latency);
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
    fn credit(&mut self, id: &Hash, arrival: Instant, late: bool) -> bool {
        let Some(c) = self.crossing.remove(id) else { return false };
        self.open = self.open.saturating_sub(1);
        self.cross_latencies_us.push(micros(arrival.saturating_duration_since(c.first_sent)));
        if late {
            self.late_credits = self.late_credits.saturating_add(1);
        }
        true
    }

    /// Transactions final at their source (same- and cross-shard).
    fn committed(&self) -> u64 {
        self.finalized.len() as u64
    }

    fn open(&self) -> usize {
        self.open
    }
}

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
struct Arrivals {
    by_shard: BTreeMap<ShardId, BTreeMap<u64, Instant>>,
}

impl Arrivals {
    fn record(&mut self, shard: ShardId, height: u64, at: Instant) {
        let heights = self.by_shard.entry(shard).or_default();
        heights.entry(height).or_insert(at);
        while heights.len() > MAX_ARRIVALS_PER_SHARD {
            heights.pop_first();
        }
    }

    fn of(&self, shard: ShardId, height: u64) -> Arrival {
        let Some(heights) = self.by_shard.get(&shard) else { return Arrival::NotYet };
        match heights.get(&height) {
            Some(&at) => Arrival::At(at),
            None if heights.last_key_value().is_some_and(|(&last, _)| last >= height) => Arrival::Forgotten,
            None => Arrival::NotYet,
        }
    }
}

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
        let book = Book { cursor: vec![0; plan.chains.len()], ..Book::default() };
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
            offered_tps: report::per_second(book.sent, duration),
            committed_tps: report::per_second(committed, window),
            latency: Latency::of(&mut book.latencies_us),
            rejected: book.rejected.clone(),
            max_ticker_lag_ms: book.max_lag.as_secs_f64() * 1_000.0,
            missed_blocks: book.missed_blocks,
            cross_shard: cross,
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

/// One lane: sends what is queued, up to [`MAX_BATCH`] per batch, one
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
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(items) => waiting.extend(items),
                Err(_) => break,
            }
        }
        let batch: Vec<Item> = waiting.drain(..waiting.len().min(MAX_BATCH)).collect();
        submit(plan, run, node, batch).await;
    }
}

/// Sends one batch and books the answers.
async fn submit(plan: &Plan, run: &Run, node: &Node, items: Vec<Item>) {
    let sends: Vec<(&Prepared, u64)> = items
        .iter()
        .filter_map(|&(account, offset, seq)| Some((plan.chains.get(account)?.get(offset)?, seq)))
        .collect();
    let params: Vec<SubmitParams<'_>> = sends.iter().map(|(tx, _)| SubmitParams { tx_hex: &tx.hex }).collect();
    let answers = node.client.batch::<IgnoredAny, _>(method::SUBMIT_TRANSACTION, params).await;
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
    fn a_plan_signs_each_account_a_chain_of_consecutive_nonces() {
        let keys = [Keypair::dev("plan-0"), Keypair::dev("plan-1")];
        let senders = [
            Sender { key: &keys[0], to: keys[1].address(), across: None, nonce: 5, node: 0 },
            Sender { key: &keys[1], to: keys[0].address(), across: None, nonce: 0, node: 1 },
        ];
        let sign =
            || Plan::sign("palisade-dev", &senders, 3, Duration::from_secs(1), 0, &ProgressBar::hidden()).unwrap();
        let plan = sign();
        assert_eq!(plan.total, 3);
        assert_eq!(plan.chains.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(plan.node_of, vec![0, 1]);
        let tx = palisade_ledger::SignedTx::from_bytes(&hex::decode(&*plan.chains[0][1].hex).unwrap()).unwrap();
        assert_eq!((tx.body.sender, tx.body.nonce), (keys[0].address(), 6));
        assert!(tx.verify_signature());
        assert_eq!(tx.id(), plan.chains[0][1].id);
        // Same sender and nonce, same bytes: a resend is the same transaction.
        assert_eq!(sign().chains[0][1].id, plan.chains[0][1].id);
        assert!(
            Plan::sign("palisade-dev", &senders, 2_000, Duration::from_secs(600), 0, &ProgressBar::hidden()).is_err()
        );
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
    fn the_cross_shard_share_is_spread_evenly_over_the_run_the_shards_and_the_accounts() {
        let count =
            |per_mille: u64, slots: &mut dyn Iterator<Item = u64>| slots.filter(|&k| crosses(per_mille, k)).count();
        assert_eq!(count(0, &mut (0..1_000)), 0);
        assert_eq!(count(1_000, &mut (0..1_000)), 1_000);
        assert_eq!(count(500, &mut (0..1_000)), 500);
        assert_eq!(count(333, &mut (0..3_000)), 999);
        // Any hundred consecutive slots: the share, give or take two.
        for per_mille in [100, 333, 500, 900] {
            for start in 0..2_000 {
                let n = count(per_mille, &mut (start..start + 100)) as i64;
                assert!((n - per_mille as i64 / 10).abs() <= 2, "{per_mille}‰: slots {start}.. have {n} of 100");
            }
        }
        // The slots of one shard of four, and of one account of 1 024.
        for shard in 0..4 {
            let n = count(500, &mut (0..6_000).filter(|k| k % 4 == shard)) as i64;
            assert!((n - 750).abs() <= 2, "shard {shard}: {n} of 1500");
        }
        for account in [0, 1, 517, 1_023] {
            let n = count(500, &mut (0..100).map(|o| o * 1_024 + account)) as i64;
            assert!((n - 50).abs() <= 3, "account {account}: {n} of 100");
        }
    }

    #[test]
    fn a_cross_shard_transfer_stays_open_until_its_credit_and_times_from_its_block() {
        let start = Instant::now();
        let run =
            Run { book: Mutex::new(book(1)), arrivals: Mutex::new(Arrivals::default()), stopped: Default::default() };
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
}
