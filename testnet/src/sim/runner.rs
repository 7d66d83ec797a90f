//! The simulation loop: builds the network a [`Scenario`] describes (one
//! [`palisade_shard_core::ShardCore`] per validator, twins included), then
//! pops events in `(time, sequence)` order and plays each one, until every
//! shard has shown liveness after the heal and the receipts due then are
//! credited, or the bound runs out.
//!
//! The runner is the cores' host, as the node's shard thread is: it hands
//! each core its inputs with the time and carries out the effects in order.
//! A `Persist` is durable at once (the node's synced write); a `Publish`
//! goes to every other node subscribed to the topic, each copy delayed,
//! lost or duplicated on its own; a `Request` goes to one peer of the shard
//! it names and comes back as an answer or a time-out, exactly one of the
//! two. While it does so it checks the host contract on every effect (see
//! [`super::checks`] for what is checked after the run).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use palisade_consensus::{Decision, Message, ValidatorIndex, decode, max_message_bytes};
use palisade_ledger::mem::MemState;
use palisade_ledger::{Block, Genesis, Hash, Keypair, ShardId, SignedTx, StateExt, receipt_proof};
use palisade_shard_core::mempool::MempoolConfig;
use palisade_shard_core::receipts::MAX_POOLED_RECEIPTS;
use palisade_shard_core::serve::serve_sync;
use palisade_shard_core::wire::{SyncRequest, SyncResponse, TopicKind};
use palisade_shard_core::{Committed, CoreConfig, Effect, Input, Note, Verdict};

use super::checks::{self, Violation};
use super::network::{Event, Queue, REQUEST_TIMEOUT_MS, Wire};
use super::node::Node;
use super::rng::SimRng;
use super::scenario::{LIVENESS_BOUND_MS, LIVENESS_HEIGHTS, Scenario};
use super::workload::Workload;

/// Transactions per block (genesis parameter for simulated chains: small,
/// so blocks fill and the mempool's order matters).
pub const MAX_BLOCK_TXS: u32 = 16;
/// The simulated chains' mempool bounds: small, so eviction and the
/// nonce-gap rule run.
pub const MEMPOOL: MempoolConfig = MempoolConfig { max_txs: 256, max_bytes: 256 * 1024, max_nonce_gap: 16 };

/// Counters for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to the network.
    pub messages: u64,
    /// Messages lost to drops, partitions or dead receivers.
    pub lost: u64,
    /// Gossip dropped by its receiver as already seen (the same bytes).
    pub deduplicated: u64,
    /// Gossip messages a core judged provably bad (its `Reject` verdict).
    pub rejected: u64,
    /// View changes honest validators signed (re-sent copies not counted).
    pub view_changes: u64,
    /// Blocks committed (all nodes, replica and sync).
    pub commits: u64,
    /// Blocks committed through sync.
    pub synced: u64,
    /// Equivocations honest replicas detected.
    pub evidence: u64,
    /// Validators slashed by committed blocks (each block counted once).
    pub slashed: u64,
    /// Receipt batches published on a destination's topic (one per
    /// recipient).
    pub batches_relayed: u64,
    /// Relayed receipt batches a core pooled (its `Accept` verdict).
    pub batches_pooled: u64,
    /// Relayed receipt batches a core refused as invalid (its `Reject`).
    pub batches_refused: u64,
    /// Receipt batches that receipt-scan answers brought.
    pub batches_scanned: u64,
    /// Cross-shard receipts credited by committed blocks (each block counted
    /// once, when the first honest node commits it).
    pub receipts_credited: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub end_ms: u64,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// Every invariant broken.
    pub violations: Vec<Violation>,
    /// blake3 over every commit (time, shard, node, height, block hash) in order.
    pub digest: [u8; 32],
    /// Counters.
    pub stats: Stats,
    /// Highest height committed by an honest node, per shard.
    pub heights: Vec<u64>,
}

/// A request out: who asked, in which incarnation.
struct Pending {
    node: usize,
    incarnation: u64,
    request: SyncRequest,
}

/// A network of nodes under one scenario.
pub struct Sim {
    /// The scenario.
    pub scenario: Scenario,
    /// Its genesis (dev committees plus funded wallets).
    pub genesis: Arc<Genesis>,
    /// Nodes: first every validator, shard-major (node `shard * n + i` is
    /// validator `i` of `shard`), then the twins.
    pub nodes: Vec<Node>,
    /// The nodes of each shard (its topics' subscribers), twins included.
    pub members: Vec<Vec<usize>>,
    /// Each shard's state at genesis (the replay oracle's start).
    pub genesis_states: Vec<MemState>,
    /// Host-detected violations during the run.
    pub violations: Vec<Violation>,
    /// Counters.
    pub stats: Stats,
    /// Per shard: the highest honest height at the heal.
    pub liveness_base: Option<Vec<u64>>,
    /// From the heal on: receipts emitted at or below the liveness base that
    /// no honest node of their destination has credited yet (the run goes on
    /// until they are).
    pub receipts_due: Option<BTreeMap<Hash, ShardId>>,
    /// When an honest node first committed each (shard, height), in
    /// simulated ms.
    pub committed_at_ms: BTreeMap<(ShardId, u64), u64>,
    /// Nodes whose host drops their `Persist` effects: a planted host bug
    /// the persist-before-send check must catch (tests only).
    pub forget_persists: Vec<usize>,
    /// Nodes whose host drops their read-view changes: a planted host bug
    /// the read-view check must catch (tests only).
    pub forget_views: Vec<usize>,
    /// The input being handled began and ended with its node quarantined.
    muted: bool,
    /// Nodes whose fee record is corrupted, with the original value.
    tampered: BTreeMap<usize, Option<Vec<u8>>>,
    pending: BTreeMap<u64, Pending>,
    next_request: u64,
    queue: Queue,
    now_ms: u64,
    rng: SimRng,
    workload: Workload,
    digest: blake3::Hasher,
    message_limit: usize,
}

impl Sim {
    /// Builds the network of `scenario`.
    pub fn new(scenario: Scenario) -> Sim {
        let mut rng = SimRng::new(scenario.seed ^ 0x005e_ed0f_5114);
        let mut genesis = Genesis::dev(scenario.shards, scenario.committee_size);
        let params = &mut genesis.params;
        params.max_block_txs = MAX_BLOCK_TXS;
        params.max_block_bytes = 96 * 1024;
        params.block_interval_ms = scenario.block_interval_ms;
        params.heartbeat_interval_ms = 150;
        // The view timer is view_timeout + heartbeat: 400 ms, capped at 8×.
        params.view_timeout_ms = 250;
        // A silent leader is suspected after 150 ms (beats every 37 ms):
        // round trips up to 75 ms cause no view change.
        params.leader_timeout_ms = 150;
        // A base fee that moves: the workload's fees (1 to 19 units) and its
        // blocks (a few transactions each) straddle the target, so every
        // run raises and lowers it, and replicas must agree on each value.
        params.base_fee_target_txs = 2;
        params.min_base_fee_units = 1;
        params.max_base_fee_units = 9;
        if scenario.staking {
            params.staking = Some(super::workload::staking_params(scenario.committee_size.max(4)));
        }
        let mut workload = Workload::new(&mut genesis, rng.fork());
        if scenario.staking {
            workload.churn(&mut genesis);
        }
        let genesis = Arc::new(genesis);
        let n = scenario.committee_size as usize;
        let start_ms = genesis.genesis_time_ms;
        let mut nodes = Vec::new();
        let mut members = vec![Vec::new(); scenario.shards as usize];
        let mut genesis_states = Vec::new();
        let config = |shard: ShardId, i: usize, kind: Option<super::byzantine::Kind>| {
            let name = &genesis.committee(shard).expect("dev genesis has every shard").validators[i].name;
            CoreConfig {
                shard,
                genesis: genesis.clone(),
                key: Some(Keypair::dev(name)),
                mempool: MEMPOOL,
                misbehave: kind.and_then(super::byzantine::Kind::misbehaviour),
                client_floor_per_second: palisade_shard_core::intake::DEFAULT_CLIENT_FLOOR_PER_WINDOW,
            }
        };
        for shard in 0..scenario.shards {
            genesis_states.push(MemState::genesis(&genesis, shard).expect("dev genesis has every shard"));
            for i in 0..n {
                let id = shard as usize * n + i;
                let kind = scenario.byzantine_kind(id);
                let clock_ms = start_ms + scenario.skew_ms(id);
                nodes.push(Node::new(id, ValidatorIndex(i as u32), kind, config(shard, i, kind), clock_ms));
                members[shard as usize].push(id);
            }
        }
        // Twins: a second core with the key of each validator marked so.
        for (of, kind) in &scenario.byzantine {
            if *kind == super::byzantine::Kind::Twin {
                let (shard, i) = ((of / n) as ShardId, of % n);
                let id = nodes.len();
                let mut twin =
                    Node::new(id, ValidatorIndex(i as u32), Some(*kind), config(shard, i, Some(*kind)), start_ms);
                twin.place = *of;
                nodes.push(twin);
                members[shard as usize].push(id);
            }
        }
        Sim {
            message_limit: max_message_bytes(n, palisade_shard_core::max_block_bytes(&genesis)),
            scenario,
            genesis,
            nodes,
            members,
            genesis_states,
            violations: Vec::new(),
            stats: Stats::default(),
            liveness_base: None,
            receipts_due: None,
            committed_at_ms: BTreeMap::new(),
            forget_persists: Vec::new(),
            forget_views: Vec::new(),
            muted: false,
            tampered: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_request: 0,
            queue: Queue::default(),
            now_ms: 0,
            rng,
            workload,
            digest: blake3::Hasher::new(),
        }
    }

    /// Runs the scenario to the end and checks every invariant.
    pub fn run(mut self) -> (Report, Sim) {
        self.schedule();
        let end_ms = self.scenario.heal_ms + LIVENESS_BOUND_MS;
        for node in 0..self.nodes.len() {
            self.input(node, Input::Start, None);
        }
        self.play_until(end_ms, |sim| matches!(sim.lively(), Some(true)) && sim.receipts_settled());
        let report = self.report();
        (report, self)
    }

    /// Plays on after [`Sim::run`] until `done` holds or `more_ms` of
    /// simulated time have passed, then checks every invariant again: for
    /// tests that need a run to go past its liveness bound.
    pub fn run_on(mut self, more_ms: u64, done: impl Fn(&Sim) -> bool) -> (Report, Sim) {
        let end_ms = self.now_ms.saturating_add(more_ms);
        self.play_until(end_ms, done);
        let report = self.report();
        (report, self)
    }

    fn play_until(&mut self, end_ms: u64, done: impl Fn(&Sim) -> bool) {
        while let Some((at_ms, event)) = self.queue.pop_until(end_ms) {
            self.now_ms = at_ms;
            self.stats.events += 1;
            self.play(event);
            if done(self) {
                break;
            }
        }
        self.stats.end_ms = self.now_ms;
    }

    /// The report of the run so far, checks included.
    pub fn report(&self) -> Report {
        let mut violations = self.violations.clone();
        violations.extend(checks::check(self));
        Report {
            scenario: self.scenario.clone(),
            violations,
            digest: *self.digest.clone().finalize().as_bytes(),
            stats: self.stats.clone(),
            heights: (0..self.scenario.shards).map(|s| self.honest_height(s)).collect(),
        }
    }

    /// Highest height an honest node of `shard` committed.
    pub fn honest_height(&self, shard: u32) -> u64 {
        self.nodes.iter().filter(|n| n.shard == shard && n.honest()).map(Node::height).max().unwrap_or(0)
    }

    /// After the heal: has every honest node of every shard committed
    /// `LIVENESS_HEIGHTS` past the base?
    pub fn lively(&self) -> Option<bool> {
        let base = self.liveness_base.as_ref()?;
        Some(self.nodes.iter().filter(|n| n.honest()).all(|n| n.height() >= base[n.shard as usize] + LIVENESS_HEIGHTS))
    }

    /// Have the receipts due at the heal all been credited?
    pub fn receipts_settled(&self) -> bool {
        self.receipts_due.as_ref().is_some_and(BTreeMap::is_empty)
    }

    /// Node `node`'s clock as its core reads it: Unix ms from the genesis
    /// time, plus the node's skew.
    fn host_ms(&self, node: usize) -> u64 {
        self.genesis.genesis_time_ms + self.now_ms + self.scenario.skew_ms(node)
    }

    fn schedule(&mut self) {
        let scenario = self.scenario.clone();
        for crash in &scenario.crashes {
            self.queue.push(crash.at_ms, Event::Crash { node: crash.node });
            self.queue.push(crash.restart_ms, Event::Restart { node: crash.node });
        }
        for tamper in &scenario.tampering {
            self.queue.push(tamper.at_ms, Event::Tamper { node: tamper.node });
            self.queue.push(tamper.repair_ms, Event::Repair { node: tamper.node });
        }
        self.queue.push(scenario.heal_ms, Event::Heal);
        for shard in 0..scenario.shards {
            self.queue.push(self.rng.range(0, scenario.tx_interval_ms), Event::Submit { shard });
        }
    }

    fn play(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, wire } => self.deliver(from, to, wire),
            Event::TimedOut { node, id } => {
                if let Some(pending) = self.pending.remove(&id) {
                    debug_assert_eq!(pending.node, node);
                    let request = pending.request;
                    self.answer(pending.node, pending.incarnation, request, Err("timed out".to_owned()));
                }
            }
            Event::Tick { node, incarnation } => {
                if self.current(node, incarnation) {
                    if self.nodes[node].tick_at.is_some_and(|at| at <= self.now_ms) {
                        self.nodes[node].tick_at = None;
                    }
                    self.input(node, Input::Tick, None);
                }
            }
            Event::Crash { node } => self.nodes[node].crash(self.now_ms),
            Event::Restart { node } => self.restart(node),
            Event::Tamper { node } => self.tamper(node, true),
            Event::Repair { node } => self.tamper(node, false),
            Event::Submit { shard } => {
                self.submit(shard);
                let next = self.now_ms + self.scenario.tx_interval_ms;
                self.queue.push(next, Event::Submit { shard });
            }
            Event::Heal => {
                for node in 0..self.nodes.len() {
                    self.restart(node);
                }
                let base: Vec<u64> = (0..self.scenario.shards).map(|s| self.honest_height(s)).collect();
                self.receipts_due = Some(self.due_at(&base));
                self.liveness_base = Some(base);
            }
        }
    }

    /// Stops `node`, corrupts its fee record (or puts the original back),
    /// and restarts it.
    fn tamper(&mut self, node: usize, corrupt: bool) {
        let now = self.now_ms;
        let host = &mut self.nodes[node];
        host.crash(now);
        if corrupt {
            let store = host.stored_mut();
            let record = palisade_ledger::fee::market(&*store).expect("the in-memory state reads");
            let fees = palisade_ledger::State::context(&*store).fees;
            let base_fee = if record.base_fee == fees.max_base_fee { fees.min_base_fee } else { fees.max_base_fee };
            let corrupted = palisade_ledger::codec::encode(&palisade_ledger::fee::FeeRecord { base_fee, ..record });
            let original = store.tamper(palisade_ledger::StateKey::Fees, Some(corrupted));
            self.tampered.insert(node, original);
        } else if let Some(original) = self.tampered.remove(&node) {
            host.stored_mut().tamper(palisade_ledger::StateKey::Fees, original);
        }
        self.restart(node);
    }

    fn current(&self, node: usize, incarnation: u64) -> bool {
        self.nodes[node].alive() && self.nodes[node].incarnation == incarnation
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].alive() {
            return;
        }
        let host_ms = self.host_ms(node);
        match self.nodes[node].restart(host_ms) {
            Ok(()) => self.input(node, Input::Start, None),
            Err(what) => self.host_violation(node, what),
        }
    }

    /// The receipts emitted at or below `base` (per source shard) that the
    /// most advanced honest node of their destination has not credited.
    fn due_at(&self, base: &[u64]) -> BTreeMap<Hash, ShardId> {
        let mut due = BTreeMap::new();
        let shards = self.scenario.shards;
        for source in 0..shards {
            let Some(top) = most_advanced(&self.nodes, source) else { continue };
            let limit = base.get(source as usize).copied().unwrap_or(0);
            for (_, (bytes, _)) in top.store().chain().range(1..=limit) {
                let Ok(block) = Block::from_bytes(bytes, usize::MAX) else { continue };
                for emitted in receipt_proof::outgoing(&block, shards) {
                    let Some(dest_top) = most_advanced(&self.nodes, emitted.dest_shard) else { continue };
                    if !matches!(dest_top.store().applied(&emitted.id), Ok(Some(_))) {
                        due.insert(emitted.id, emitted.dest_shard);
                    }
                }
            }
        }
        due
    }

    /// Hands `input` to `node`'s core (with a tick after it, as the node's
    /// shard thread ticks after each burst of inputs) and carries out the
    /// effects. `from` is the peer a gossip input came from.
    fn input(&mut self, node: usize, input: Input, from: Option<usize>) {
        let now = self.host_ms(node);
        let host = &mut self.nodes[node];
        // The slot of a proposal or vote, judged on the replica as it is
        // before the input (evidence completeness reads what an honest one
        // accepted; only then is the message decoded a second time).
        let slot = match (&input, host.core()) {
            (Input::Gossip { kind: TopicKind::Consensus, data }, Some(core)) if host.honest() => {
                decode(data, self.message_limit)
                    .ok()
                    .and_then(|m| host.slot(&m, core.replica().height(), core.replica().view()))
            }
            _ => None,
        };
        let gossip = match &input {
            Input::Gossip { kind, .. } => Some(*kind),
            _ => None,
        };
        let tick = !matches!(input, Input::Tick);
        let quarantined_before = host.quarantined();
        let Some(core) = host.core_mut() else { return };
        let mut out = Vec::new();
        let mut result = core.handle(now, input, &mut out);
        if tick && result.is_ok() {
            result = core.handle(now, Input::Tick, &mut out);
        }
        // Quarantined all through the input: nothing it signed may go out.
        self.muted = quarantined_before && host.quarantined();
        host.observe(self.now_ms);
        let accepted = self.effects(node, out, gossip.zip(from));
        if accepted && let Some((slot, hash)) = slot {
            self.nodes[node].seen.entry(slot).or_default().insert(hash);
        }
        if let Err(e) = result {
            self.host_violation(node, format!("storage failed: {e}"));
        }
        self.check_bounds(node);
        self.schedule_tick(node);
    }

    /// What must hold of an honest core after every input: its pools within
    /// their bounds and equal to its read view, its periodic timers armed.
    fn check_bounds(&mut self, node: usize) {
        let Some(core) = self.nodes[node].core().filter(|_| self.nodes[node].honest()) else { return };
        let mut broken = Vec::new();
        let mempool = core.mempool();
        if mempool.len() > MEMPOOL.max_txs || mempool.bytes() > MEMPOOL.max_bytes {
            broken.push(format!("mempool over its bounds: {} txs, {} bytes", mempool.len(), mempool.bytes()));
        }
        if core.receipts().len() > MAX_POOLED_RECEIPTS {
            broken.push(format!("receipt pool over its bound: {}", core.receipts().len()));
        }
        // One piece per offender, so never more than the committee.
        if core.evidence().len() > core.committee().len() {
            broken.push(format!("evidence pool over its bound: {}", core.evidence().len()));
        }
        if !core.periodic_timers_armed() {
            broken.push("the periodic sync check, receipt scan or beat is no longer armed".to_owned());
        }
        // Sizes after every input, every id now and then (it costs a walk
        // over the pools).
        if let Some(why) = self.nodes[node].view_mismatch(self.stats.events.is_multiple_of(64)) {
            broken.push(why);
        }
        for what in broken {
            self.host_violation(node, what);
        }
    }

    /// Sends the core a tick at its next deadline, unless one comes sooner.
    fn schedule_tick(&mut self, node: usize) {
        let host = &self.nodes[node];
        let Some(deadline) = host.core().and_then(|c| c.next_deadline_ms()) else { return };
        let clock_zero = self.genesis.genesis_time_ms + self.scenario.skew_ms(node);
        let at = deadline.saturating_sub(clock_zero).max(self.now_ms + 1);
        if host.tick_at.is_none_or(|pending| at < pending) {
            let incarnation = host.incarnation;
            self.nodes[node].tick_at = Some(at);
            self.queue.push(at, Event::Tick { node, incarnation });
        }
    }

    /// Carries out `node`'s effects in order; returns whether the gossip
    /// input they answer (from `source`) was accepted.
    fn effects(&mut self, node: usize, effects: Vec<Effect>, source: Option<(TopicKind, usize)>) -> bool {
        let mut accepted = false;
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    if !self.forget_persists.contains(&node) {
                        self.nodes[node].persisted = Some(state);
                    }
                    let (now, took) = (self.host_ms(node), self.scenario.write_ms(node, self.now_ms));
                    if let Some(core) = self.nodes[node].core_mut() {
                        core.write_took(now, took);
                    }
                }
                Effect::Publish { shard, kind, data } => self.publish(node, shard, kind, data),
                Effect::Verdict(verdict) => {
                    accepted = verdict == Verdict::Accept;
                    if let Some((kind, from)) = source {
                        self.judged(node, from, kind, verdict);
                    }
                }
                Effect::Request(request) => self.request(node, request),
                Effect::Committed(committed) => self.committed(node, &committed),
                Effect::Note(Note::EvidenceDetected { signer, height, view, phase }) => {
                    if self.nodes[node].honest() {
                        self.stats.evidence += 1;
                    }
                    self.nodes[node].detected.push((signer, height, view, phase));
                }
                Effect::Note(_) => {}
                Effect::View(changes) => {
                    if !self.forget_views.contains(&node) {
                        self.nodes[node].view.apply(changes);
                    }
                }
            }
        }
        accepted
    }

    /// Counts a verdict; an honest node must never penalise an honest
    /// sender (what graylisted a laggard and stalled a shard once).
    fn judged(&mut self, node: usize, from: usize, kind: TopicKind, verdict: Verdict) {
        match (kind, verdict) {
            (TopicKind::Receipts, Verdict::Accept) => self.stats.batches_pooled += 1,
            (TopicKind::Receipts, Verdict::Reject) => self.stats.batches_refused += 1,
            _ => {}
        }
        if verdict == Verdict::Reject {
            self.stats.rejected += 1;
            if self.nodes[from].honest() {
                self.host_violation(node, format!("refused a {} message from honest node {from}", kind.label()));
            }
        }
    }

    /// Gossip: to every other node subscribed to the topic.
    fn publish(&mut self, node: usize, shard: ShardId, kind: TopicKind, data: Vec<u8>) {
        let honest = self.nodes[node].honest();
        match kind {
            TopicKind::Consensus if honest => self.check_persisted(node, &data),
            TopicKind::Evidence if honest => {
                if let Ok(evidence) = palisade_ledger::codec::decode(&data, self.message_limit) {
                    self.nodes[node].evidence.push(evidence);
                }
            }
            // Scenarios without push leave every receipt to the scans.
            TopicKind::Receipts if honest && !self.scenario.push_receipts => return,
            _ => {}
        }
        let Some(subscribers) = self.members.get(shard as usize) else { return };
        let data: Rc<[u8]> = data.into();
        for to in subscribers.clone().into_iter().filter(|to| *to != node) {
            if kind == TopicKind::Receipts {
                self.stats.batches_relayed += 1;
            }
            self.send(node, to, Wire::Gossip { kind, data: data.clone() });
        }
    }

    /// The host contract: what an honest replica signs and sends is covered
    /// by the safety state persisted before it.
    fn check_persisted(&mut self, node: usize, data: &[u8]) {
        let Ok(message) = decode(data, self.message_limit) else {
            return self.host_violation(node, "published an undecodable consensus message".to_owned());
        };
        let ours = Some(message.signer) == self.nodes[node].core().and_then(|c| c.replica().index());
        let own = ours && matches!(message.message, Message::Vote(_) | Message::Propose(_) | Message::ViewChange(_));
        if own && !self.nodes[node].persisted_covers(&message) {
            self.host_violation(node, format!("sent {:?} before persisting it", message.message));
        }
        // Never a proposal or a beat; its votes and view changes only while
        // the others cannot make a quorum without it (the tests check, from
        // the certificates, that a lone quarantined node's votes stay out).
        if ours && self.muted && matches!(message.message, Message::Propose(_) | Message::Alive(_)) {
            self.host_violation(node, format!("sent {:?} while quarantined", message.message));
        }
        if own && matches!(&message.message, Message::ViewChange(vc) if vc.resend == 0) {
            self.stats.view_changes += 1;
        }
    }

    /// Block sync or a receipt scan: to one node of the shard it names.
    fn request(&mut self, node: usize, request: SyncRequest) {
        let id = self.next_request;
        self.next_request += 1;
        let incarnation = self.nodes[node].incarnation;
        let peers: Vec<usize> =
            self.members.get(request.shard as usize).into_iter().flatten().copied().filter(|p| *p != node).collect();
        if peers.is_empty() {
            return self.answer(node, incarnation, request, Err("no peer serves the shard".to_owned()));
        }
        let peer = peers[self.rng.index(peers.len())];
        self.pending.insert(id, Pending { node, incarnation, request: request.clone() });
        self.queue.push(self.now_ms + REQUEST_TIMEOUT_MS, Event::TimedOut { node, id });
        self.send(node, peer, Wire::Request { id, request });
    }

    /// Hands a request's outcome to the core that asked, if still running.
    fn answer(&mut self, node: usize, incarnation: u64, request: SyncRequest, answer: Result<SyncResponse, String>) {
        if !self.current(node, incarnation) {
            return;
        }
        // The transport's check: an answer must fit the question.
        let answer = answer.and_then(|r| r.check(&request).map(|()| r));
        if let Ok(response) = &answer
            && request.receipts_for.is_some()
        {
            self.stats.batches_scanned += response.receipts.len() as u64;
        }
        self.input(node, Input::SyncAnswer { request, answer }, None);
    }

    /// A block final at `node`: what it acknowledged, kept across crashes.
    fn committed(&mut self, node: usize, committed: &Committed) {
        let height = committed.block.header.height;
        let hash = committed.hash;
        let host = &mut self.nodes[node];
        if let Some((last, _)) = host.chain.last_key_value()
            && *last + 1 != height
        {
            let what = format!("committed height {height} after {last}");
            return self.host_violation(node, what);
        }
        // Acknowledged means durable: the block must be in the store now.
        let Some((block, _)) = host.store().chain().get(&height).cloned() else {
            return self.host_violation(node, format!("reported height {height} final before storing it"));
        };
        host.chain.insert(height, Decision { certificate: committed.certificate.clone(), block });
        let shard = host.shard;
        self.digest.update(&self.now_ms.to_le_bytes());
        self.digest.update(&shard.to_le_bytes());
        self.digest.update(&(node as u64).to_le_bytes());
        self.digest.update(&height.to_le_bytes());
        self.digest.update(&hash.0);
        self.stats.commits += 1;
        if committed.synced {
            self.stats.synced += 1;
        }
        // The first honest commit of a height (honest nodes commit in order,
        // and all the same blocks): count its credits once.
        if self.nodes[node].honest()
            && let std::collections::btree_map::Entry::Vacant(first) = self.committed_at_ms.entry((shard, height))
        {
            first.insert(self.now_ms);
            self.stats.receipts_credited += committed.credited as u64;
            self.stats.slashed += committed.block.evidence.len() as u64;
            if let Some(due) = &mut self.receipts_due {
                for proven in committed.block.incoming.iter().flat_map(|b| &b.receipts) {
                    due.remove(&proven.receipt.id);
                }
            }
        }
    }

    fn host_violation(&mut self, node: usize, what: String) {
        let shard = self.nodes[node].shard;
        if self.nodes[node].honest() {
            self.violations.push(Violation::Host { shard, node, what });
        }
    }

    /// The network: partitions and drops (until the heal), duplicates and
    /// random delays (which reorder).
    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        self.stats.messages += 1;
        let healed = self.now_ms >= self.scenario.heal_ms;
        // A twin stands where its validator does in a partition.
        let (side_from, side_to) = (self.nodes[from].place, self.nodes[to].place);
        let cut = self.scenario.partitions.iter().any(|p| {
            (p.from_ms..p.until_ms).contains(&self.now_ms) && p.side.contains(&side_from) != p.side.contains(&side_to)
        });
        if !healed && (cut || self.rng.chance(self.scenario.drop_per_mille)) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.scenario.duplicate_per_mille) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.range(self.scenario.min_delay_ms, self.scenario.max_delay_ms);
            self.queue.push(self.now_ms + delay, Event::Deliver { from, to, wire: wire.clone() });
        }
    }

    fn deliver(&mut self, from: usize, to: usize, wire: Wire) {
        if !self.nodes[to].alive() {
            self.stats.lost += 1;
            return;
        }
        match wire {
            Wire::Gossip { kind, data } => {
                // The receiver's gossip drops bytes it has already seen.
                if !self.nodes[to].gossip_seen.insert(*blake3::hash(&data).as_bytes()) {
                    self.stats.deduplicated += 1;
                    return;
                }
                self.input(to, Input::Gossip { kind, data: data.to_vec() }, Some(from))
            }
            Wire::Request { id, request } => {
                let answer = serve_sync(self.nodes[to].store(), &self.genesis, &request).map_err(|e| e.to_string());
                self.send(to, from, Wire::Answer { id, answer });
            }
            Wire::Answer { id, answer } => {
                if let Some(pending) = self.pending.remove(&id) {
                    self.answer(pending.node, pending.incarnation, pending.request, answer);
                }
            }
        }
    }

    /// A client's transfers (one to [`MAX_SUBMITTED_TOGETHER`], in one
    /// call, as `palisade_submitTransactions` hands them to the core),
    /// submitted to one live node of the shard (whose core gossips them to
    /// the others).
    fn submit(&mut self, shard: u32) {
        let Some(oracle) = most_advanced(&self.nodes, shard) else { return };
        let store = oracle.store();
        let together = 1 + self.rng.index(MAX_SUBMITTED_TOGETHER);
        let mut txs: Vec<SignedTx> = (0..together)
            .filter_map(|_| self.workload.next(shard, |address| store.account(address).map(|a| a.nonce).unwrap_or(0)))
            .collect();
        txs.extend(self.workload.stake_move(store.mem_state()));
        if txs.is_empty() {
            return;
        }
        let live: Vec<usize> =
            self.members[shard as usize].iter().copied().filter(|m| self.nodes[*m].alive()).collect();
        if live.is_empty() {
            return;
        }
        let node = live[self.rng.index(live.len())];
        let now = self.host_ms(node);
        let Some(core) = self.nodes[node].core_mut() else { return };
        let mut out = Vec::new();
        // Every simulated client comes from one address: the per-client
        // breaker counts it (the load stays far under its floor).
        let client = palisade_shard_core::intake::ClientKey::of(std::net::Ipv4Addr::LOCALHOST.into());
        let result = core.submit_txs(now, txs, Some(client), &mut out);
        self.muted = false;
        self.effects(node, out, None);
        if let Err(e) = result {
            self.host_violation(node, format!("storage failed: {e}"));
        }
        self.check_bounds(node);
        self.schedule_tick(node);
    }
}

/// Most transfers one simulated client submits in one call.
const MAX_SUBMITTED_TOGETHER: usize = 3;

/// The honest node of `shard` with the highest committed height.
fn most_advanced(nodes: &[Node], shard: ShardId) -> Option<&Node> {
    nodes.iter().filter(|n| n.shard == shard && n.honest()).max_by_key(|n| (n.height(), std::cmp::Reverse(n.id)))
}

/// Runs the scenario of `seed`.
pub fn run_seed(seed: u64) -> Report {
    Sim::new(Scenario::generate(seed)).run().0
}
