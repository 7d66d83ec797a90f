//! The simulation loop: builds the network a [`Scenario`] describes, then
//! pops events in `(time, sequence)` order and plays each one against the
//! nodes, until every shard has shown liveness after the heal or the bound
//! runs out. Each node's actions are carried out in order, as the consensus
//! crate requires (a `Persist` is durable before the next action runs).
//!
//! Cross-shard receipts are the host's business too. An honest node that
//! commits a block (through its replica or sync) relays what the block owes
//! each other shard to that shard's nodes (push), and every node
//! periodically asks a node of each other shard for what is owed to it from
//! a per-source cursor (pull), so a receipt nobody relayed, or whose relays
//! were lost, is still found. Only honest hosts serve receipts; Byzantine
//! relayers add forgeries of their own ([`super::byzantine`]).

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    Action, Committee, Config, Decision, Input, SignedMessage, Validator, ValidatorIndex, decode, max_message_bytes,
};
use palisade_ledger::{
    Block, Genesis, Hash, Keypair, ReceiptBatch, ShardId, StateExt, mem::MemState, receipt::ReceiptError,
};

use super::byzantine::{Ctx, TICK_MS, honest};
use super::checks::{self, Violation};
use super::network::{
    Event, MAX_PULL_BATCHES, MAX_SYNC_ATTEMPTS, MAX_SYNC_BLOCKS, PULL_INTERVAL_MS, Queue, SYNC_RETRY_MS, Wire,
};
use super::node::{Admission, Node};
use super::rng::SimRng;
use super::scenario::{LIVENESS_BOUND_MS, LIVENESS_HEIGHTS, Scenario};
use super::workload::Workload;

/// Largest block a replica accepts (consensus bound; the ledger's own limits
/// are tighter in practice).
pub const MAX_BLOCK_BYTES: usize = 256 * 1024;
/// View 0 timeout.
pub const BASE_TIMEOUT_MS: u64 = 400;
/// Cap on the view timeout.
pub const MAX_TIMEOUT_MS: u64 = 3_200;
/// Transactions per block (genesis parameter for simulated chains).
pub const MAX_BLOCK_TXS: u32 = 16;

/// Counters for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to the network.
    pub messages: u64,
    /// Messages lost to drops, partitions or dead receivers.
    pub lost: u64,
    /// Peer bytes that failed decode or verification.
    pub rejected: u64,
    /// Blocks committed (all nodes, replica and sync).
    pub commits: u64,
    /// Blocks committed through sync.
    pub synced: u64,
    /// Evidence emitted by honest replicas.
    pub evidence: u64,
    /// Validators slashed by committed blocks (each block counted once).
    pub slashed: u64,
    /// Receipt batches honest nodes relayed after committing their source
    /// block (one per recipient).
    pub batches_relayed: u64,
    /// Receipt batches verified and pooled, by push or pull.
    pub batches_pooled: u64,
    /// Of those, the ones a pull answer brought.
    pub batches_pulled: u64,
    /// Batches refused because a receipt is not proven by the batch's header
    /// (Merkle path, list, placement).
    pub batches_refused_proof: u64,
    /// Batches refused because the header is not certified by the source
    /// shard's committee (or names the wrong chain, shard or committee).
    pub batches_refused_certificate: u64,
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

/// A network of nodes under one scenario.
pub struct Sim {
    /// The scenario.
    pub scenario: Scenario,
    /// Its genesis (dev committees plus funded wallets).
    pub genesis: Genesis,
    /// Nodes, shard-major: node `shard * n + i` is validator `i` of `shard`.
    pub nodes: Vec<Node>,
    /// Each shard's consensus committee.
    pub committees: Vec<Committee>,
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
        genesis.params.max_block_txs = MAX_BLOCK_TXS;
        let workload = Workload::new(&mut genesis, rng.fork());
        let n = scenario.committee_size as usize;
        let mut nodes = Vec::new();
        let mut committees = Vec::new();
        let mut genesis_states = Vec::new();
        for shard in 0..scenario.shards {
            let members = &genesis.committee(shard).expect("dev genesis has every shard").validators;
            let committee = Committee::new(
                members.iter().map(|v| Validator { public_key: v.address.0, stake: v.stake_units }).collect(),
            )
            .expect("dev committees are valid");
            let state = MemState::genesis(&genesis, shard).expect("dev genesis has every shard");
            for (i, member) in members.iter().enumerate() {
                let key = SigningKey::from_bytes(&Keypair::dev(&member.name).seed());
                let mut config = Config::new(genesis.chain_id.clone(), shard, committee.clone(), Some(key.clone()));
                config.max_block_bytes = MAX_BLOCK_BYTES;
                config.base_timeout_ms = BASE_TIMEOUT_MS;
                config.max_timeout_ms = MAX_TIMEOUT_MS;
                let id = shard as usize * n + i;
                let byzantine = scenario.byzantine_kind(id).map(|kind| kind.build(rng.fork()));
                let index = ValidatorIndex(i as u32);
                nodes.push(Node::new(id, index, key, config, state.clone(), byzantine));
            }
            committees.push(committee);
            genesis_states.push(state);
        }
        Sim {
            message_limit: max_message_bytes(n, MAX_BLOCK_BYTES),
            scenario,
            genesis,
            nodes,
            committees,
            genesis_states,
            violations: Vec::new(),
            stats: Stats::default(),
            liveness_base: None,
            receipts_due: None,
            committed_at_ms: BTreeMap::new(),
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
        for id in 0..self.nodes.len() {
            self.start_replica(id);
        }
        while let Some((at_ms, event)) = self.queue.pop() {
            if at_ms > end_ms {
                break;
            }
            self.now_ms = at_ms;
            self.stats.events += 1;
            self.play(event);
            if matches!(self.lively(), Some(true)) && self.receipts_settled() {
                break;
            }
        }
        self.stats.end_ms = self.now_ms;
        let report = self.report();
        (report, self)
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

    fn schedule(&mut self) {
        let scenario = self.scenario.clone();
        for node in 0..self.nodes.len() {
            self.queue.push(self.rng.range(1, PULL_INTERVAL_MS), Event::Pull { node, incarnation: 0 });
        }
        for crash in &scenario.crashes {
            self.queue.push(crash.at_ms, Event::Crash { node: crash.node });
            self.queue.push(crash.restart_ms, Event::Restart { node: crash.node });
        }
        self.queue.push(scenario.heal_ms, Event::Heal);
        for shard in 0..scenario.shards {
            self.queue.push(self.rng.range(0, scenario.tx_interval_ms), Event::Submit { shard });
        }
        for (node, _) in &scenario.byzantine {
            self.queue.push(self.rng.range(0, TICK_MS), Event::Tick { node: *node });
        }
    }

    fn play(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, wire } => self.deliver(from, to, wire),
            Event::Timer { node, incarnation, id } => {
                if self.current(node, incarnation) {
                    self.feed(node, Input::Timeout(id));
                }
            }
            Event::BuildProposal { node, incarnation, height, view } => {
                if self.current(node, incarnation) {
                    self.build_proposal(node, height, view);
                }
            }
            Event::SyncRetry { node, incarnation, height, attempt } => {
                if self.current(node, incarnation) && self.nodes[node].height() < height && attempt < MAX_SYNC_ATTEMPTS
                {
                    self.request_sync(node, height, attempt);
                }
            }
            Event::Crash { node } => {
                if self.nodes[node].alive {
                    self.nodes[node].crash();
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Submit { shard } => {
                self.submit(shard);
                let next = self.now_ms + self.scenario.tx_interval_ms;
                self.queue.push(next, Event::Submit { shard });
            }
            Event::Tick { node } => {
                self.tick(node);
                self.queue.push(self.now_ms + TICK_MS, Event::Tick { node });
            }
            Event::Pull { node, incarnation } => {
                if self.current(node, incarnation) {
                    self.pull(node);
                    self.queue.push(self.now_ms + PULL_INTERVAL_MS, Event::Pull { node, incarnation });
                }
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

    fn current(&self, node: usize, incarnation: u64) -> bool {
        self.nodes[node].alive && self.nodes[node].incarnation == incarnation
    }

    fn restart(&mut self, node: usize) {
        if !self.nodes[node].alive {
            self.nodes[node].restart();
            let incarnation = self.nodes[node].incarnation;
            self.queue.push(self.now_ms + self.rng.range(1, PULL_INTERVAL_MS), Event::Pull { node, incarnation });
            self.start_replica(node);
        }
    }

    /// The receipts emitted at or below `base` (per source shard) that the
    /// most advanced honest node of their destination has not credited.
    fn due_at(&self, base: &[u64]) -> BTreeMap<Hash, ShardId> {
        let most_advanced = |shard: u32| {
            self.nodes
                .iter()
                .filter(|n| n.shard == shard && n.honest())
                .max_by_key(|n| (n.height(), std::cmp::Reverse(n.id)))
        };
        let mut due = BTreeMap::new();
        for source in 0..self.scenario.shards {
            let Some(top) = most_advanced(source) else { continue };
            let limit = base.get(source as usize).copied().unwrap_or(0);
            for ((dest, _), batch) in top.outbox.iter().filter(|((_, height), _)| *height <= limit) {
                let Some(dest_top) = most_advanced(*dest) else { continue };
                for proven in &batch.receipts {
                    if !matches!(dest_top.state.applied(&proven.receipt.id), Ok(Some(_))) {
                        due.insert(proven.receipt.id, *dest);
                    }
                }
            }
        }
        due
    }

    fn start_replica(&mut self, node: usize) {
        let mut out = Vec::new();
        self.nodes[node].replica.start(&mut out);
        let mut inputs = VecDeque::new();
        for action in out {
            self.act(node, action, &mut inputs);
        }
        self.drain(node, inputs);
    }

    /// Feeds `input` and everything the host answers immediately.
    fn feed(&mut self, node: usize, input: Input) {
        self.drain(node, VecDeque::from([input]));
    }

    fn drain(&mut self, node: usize, mut inputs: VecDeque<Input>) {
        while let Some(input) = inputs.pop_front() {
            if !self.nodes[node].alive {
                return;
            }
            let mut out = Vec::new();
            if self.nodes[node].replica.handle(input, &mut out).is_err() {
                self.stats.rejected += 1;
            }
            for action in out {
                self.act(node, action, &mut inputs);
            }
        }
    }

    /// The host carries out one action.
    fn act(&mut self, node: usize, action: Action, inputs: &mut VecDeque<Input>) {
        match action {
            Action::Broadcast(message) => {
                let me = self.nodes[node].index;
                let n = self.scenario.committee_size;
                let recipients: Vec<ValidatorIndex> = (0..n).map(ValidatorIndex).filter(|i| *i != me).collect();
                self.emit(node, message, &recipients);
            }
            Action::Send { to, message } => self.emit(node, message, &[to]),
            Action::Persist(state) => self.nodes[node].persisted = Some(state),
            Action::SetTimer { id, after_ms } => {
                let incarnation = self.nodes[node].incarnation;
                self.queue.push(self.now_ms + after_ms, Event::Timer { node, incarnation, id });
            }
            Action::Commit { height, block_hash, block, certificate } => {
                let host = &self.nodes[node];
                if height <= host.height() {
                    // Applied through sync first: it must be the same block.
                    if host.certified(height).map(|c| c.certificate.block_hash) != Some(block_hash) {
                        self.host_violation(node, format!("replica commit at {height} contradicts the synced chain"));
                    }
                } else if certificate.block_hash != block_hash || certificate.height != height {
                    // A host that cannot apply what its replica decided
                    // stops there (a violation if the node is honest).
                    self.host_violation(node, format!("commit action at {height} names another certificate"));
                    return;
                } else if !self.commit(node, Decision { certificate, block }, false) {
                    return;
                }
                // The replica waits for the committee of the next height.
                inputs.push_back(self.nodes[node].committed_input());
            }
            Action::Evidence(evidence) => {
                if self.nodes[node].honest() {
                    self.stats.evidence += 1;
                    // The evidence topic: every live node of the shard pools it.
                    let shard = self.nodes[node].shard;
                    for other in self.nodes.iter_mut().filter(|n| n.shard == shard && n.alive) {
                        other.pend_evidence(&evidence);
                    }
                }
                self.nodes[node].evidence.push(evidence);
            }
            Action::RequestProposal { height, view } => {
                let incarnation = self.nodes[node].incarnation;
                let at = self.now_ms + self.scenario.block_interval_ms;
                self.queue.push(at, Event::BuildProposal { node, incarnation, height, view });
            }
            Action::ValidateBlock { height, block_hash, block, .. } => {
                let valid = self.nodes[node].validate(height, block_hash, &block);
                inputs.push_back(Input::BlockValidity { height, block_hash, valid });
            }
            Action::SyncFrom { height } => self.request_sync(node, height, 0),
        }
    }

    fn host_violation(&mut self, node: usize, what: String) {
        let shard = self.nodes[node].shard;
        if self.nodes[node].honest() {
            self.violations.push(Violation::Host { shard, node, what });
        }
    }

    fn commit(&mut self, node: usize, certified: Decision, synced: bool) -> bool {
        let height = certified.certificate.height;
        let hash = certified.certificate.block_hash;
        let chain_id = self.genesis.chain_id.clone();
        match self.nodes[node].commit(certified, &chain_id) {
            Ok(block) => {
                self.after_commit(node, &block);
                let shard = self.nodes[node].shard;
                self.digest.update(&self.now_ms.to_le_bytes());
                self.digest.update(&shard.to_le_bytes());
                self.digest.update(&(node as u64).to_le_bytes());
                self.digest.update(&height.to_le_bytes());
                self.digest.update(&hash);
                self.stats.commits += 1;
                if synced {
                    self.stats.synced += 1;
                }
                true
            }
            Err(what) => {
                self.host_violation(node, what);
                false
            }
        }
    }

    /// Receipt bookkeeping after `node` committed `block`, and the relay.
    fn after_commit(&mut self, node: usize, block: &Block) {
        if !self.nodes[node].honest() {
            return;
        }
        let (shard, height) = (self.nodes[node].shard, block.header.height);
        // The first honest commit of a height (honest nodes commit in order,
        // and all the same blocks): count its credits once.
        if let std::collections::btree_map::Entry::Vacant(first) = self.committed_at_ms.entry((shard, height)) {
            first.insert(self.now_ms);
            let credited: usize = block.incoming.iter().map(|b| b.receipts.len()).sum();
            self.stats.receipts_credited += credited as u64;
            self.stats.slashed += block.evidence.len() as u64;
            if let Some(due) = &mut self.receipts_due {
                for proven in block.incoming.iter().flat_map(|b| &b.receipts) {
                    due.remove(&proven.receipt.id);
                }
            }
        }
        if self.scenario.push_receipts {
            self.relay(node, height);
        }
    }

    /// Push: what the block at `height` owes each other shard, to each of
    /// that shard's nodes.
    fn relay(&mut self, node: usize, height: u64) {
        let (n, shard) = (self.scenario.committee_size as usize, self.nodes[node].shard);
        for dest in (0..self.scenario.shards).filter(|d| *d != shard) {
            let Some(batch) = self.nodes[node].outbox.get(&(dest, height)).cloned() else { continue };
            for to in dest as usize * n..(dest as usize + 1) * n {
                self.stats.batches_relayed += 1;
                self.send(node, to, Wire::Receipts(Box::new(batch.clone())));
            }
        }
    }

    /// Offers `batch` to `node`'s pool and counts the outcome.
    fn offer(&mut self, node: usize, batch: ReceiptBatch, pulled: bool) -> Admission {
        let admission = self.nodes[node].admit(batch);
        match &admission {
            Admission::Pooled => {
                self.stats.batches_pooled += 1;
                if pulled {
                    self.stats.batches_pulled += 1;
                }
            }
            Admission::Refused(ReceiptError::BadList | ReceiptError::Misplaced(_) | ReceiptError::NotIncluded(_)) => {
                self.stats.batches_refused_proof += 1;
            }
            Admission::Refused(_) => self.stats.batches_refused_certificate += 1,
            Admission::Duplicate | Admission::Stale | Admission::Full => {}
        }
        admission
    }

    /// Pull: asks a random node of each other shard for the receipts owed
    /// to `node`'s shard from its cursor on. A silent node sends nothing.
    fn pull(&mut self, node: usize) {
        if self.nodes[node].byzantine.as_ref().is_some_and(|b| !b.answers_sync()) {
            return;
        }
        let shard = self.nodes[node].shard;
        for source in (0..self.scenario.shards).filter(|s| *s != shard) {
            self.pull_from(node, source);
        }
    }

    fn pull_from(&mut self, node: usize, source: ShardId) {
        let n = self.scenario.committee_size as usize;
        let peer = source as usize * n + self.rng.index(n);
        let from_height = self.nodes[node].cursor(source);
        self.send(node, peer, Wire::ReceiptRequest { from_height });
    }

    /// Pools what a pull answer brought and moves the cursor past what it
    /// covered, but not past a batch that was refused or found no room (so
    /// it is asked for again).
    fn on_pull_response(
        &mut self,
        node: usize,
        peer: usize,
        from_height: u64,
        through: u64,
        batches: Vec<ReceiptBatch>,
    ) {
        let source = self.nodes[peer].shard;
        let full = batches.len() >= MAX_PULL_BATCHES;
        let mut limit = through.saturating_add(1);
        for batch in batches.into_iter().take(MAX_PULL_BATCHES) {
            let (batch_shard, height) = batch.source();
            if batch_shard != source || height < from_height {
                // Not what was asked: the answer proves nothing about the range.
                limit = from_height;
                continue;
            }
            match self.offer(node, batch, true) {
                Admission::Pooled | Admission::Duplicate | Admission::Stale => {}
                Admission::Full | Admission::Refused(_) => limit = limit.min(height),
            }
        }
        self.nodes[node].advance_cursor(source, from_height, limit);
        if full && limit > from_height {
            // More is owed than one answer holds: ask again right away.
            self.pull_from(node, source);
        }
    }

    /// Sends what the replica of `node` signed, through its Byzantine module
    /// if it has one.
    fn emit(&mut self, node: usize, message: SignedMessage, recipients: &[ValidatorIndex]) {
        if self.nodes[node].honest() && !self.nodes[node].persisted_covers(&message) {
            self.host_violation(node, format!("signed {:?} before persisting it", message.message));
        }
        let outgoing = match self.nodes[node].byzantine.take() {
            None => honest(&message, recipients),
            Some(mut module) => {
                let outgoing = module.outgoing(&self.ctx(node), message, recipients);
                self.nodes[node].byzantine = Some(module);
                outgoing
            }
        };
        let base = self.nodes[node].shard as usize * self.scenario.committee_size as usize;
        for (to, bytes) in outgoing {
            self.send(node, base + to.0 as usize, Wire::Consensus(bytes));
        }
    }

    fn ctx(&self, node: usize) -> Ctx<'_> {
        let host = &self.nodes[node];
        Ctx {
            chain_id: &self.genesis.chain_id,
            genesis: &self.genesis,
            shard: host.shard,
            me: host.index,
            key: host.config.signing_key.as_ref().expect("simulated validators sign"),
            address: host.address,
            committee_len: self.scenario.committee_size as usize,
            shard_count: self.scenario.shards,
            state: &host.state,
            chain: &host.chain,
            height: host.replica.height(),
            view: host.replica.view(),
            timestamp_ms: self.timestamp_ms(),
            message_limit: self.message_limit,
        }
    }

    fn timestamp_ms(&self) -> u64 {
        self.genesis.genesis_time_ms + self.now_ms
    }

    /// The network: partitions and drops (until the heal), duplicates and
    /// random delays (which reorder).
    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        self.stats.messages += 1;
        let healed = self.now_ms >= self.scenario.heal_ms;
        let cut =
            self.scenario.partitions.iter().any(|p| {
                (p.from_ms..p.until_ms).contains(&self.now_ms) && p.side.contains(&from) != p.side.contains(&to)
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
        if !self.nodes[to].alive {
            self.stats.lost += 1;
            return;
        }
        match wire {
            Wire::Consensus(bytes) => {
                let host = &self.nodes[to];
                let verified = decode(&bytes, self.message_limit)
                    .and_then(|m| m.verify(host.committee(), &self.genesis.chain_id, host.shard));
                match verified {
                    Ok(message) => {
                        self.nodes[to].note_seen(&message);
                        self.feed(to, Input::Message(message));
                    }
                    Err(_) => self.stats.rejected += 1,
                }
            }
            Wire::SyncRequest { from_height } => {
                let host = &self.nodes[to];
                if host.byzantine.as_ref().is_some_and(|b| !b.answers_sync()) {
                    return;
                }
                let blocks: Vec<Decision> =
                    host.chain.range(from_height..).take(MAX_SYNC_BLOCKS).map(|(_, c)| c.clone()).collect();
                self.send(to, from, Wire::SyncResponse(blocks));
            }
            Wire::SyncResponse(blocks) => self.on_sync_response(to, blocks),
            Wire::Receipts(batch) => {
                self.offer(to, *batch, false);
            }
            Wire::ReceiptRequest { from_height } => {
                let (host, dest) = (&self.nodes[to], self.nodes[from].shard);
                // Only honest hosts serve receipts (see `checks::replay`).
                if !host.honest() || host.shard == dest {
                    return;
                }
                let (batches, through) = host.owed(dest, from_height, MAX_PULL_BATCHES);
                self.send(to, from, Wire::ReceiptResponse { from_height, through, batches });
            }
            Wire::ReceiptResponse { from_height, through, batches } => {
                self.on_pull_response(to, from, from_height, through, batches)
            }
        }
    }

    /// Applies the certified blocks that extend the chain, then tells the
    /// replica. Anything that does not verify is ignored (the peer's fault).
    fn on_sync_response(&mut self, node: usize, blocks: Vec<Decision>) {
        let before = self.nodes[node].height();
        let full = blocks.len() >= MAX_SYNC_BLOCKS;
        for block in blocks {
            if block.certificate.height != self.nodes[node].height() + 1 {
                continue;
            }
            if !self.commit(node, block, true) {
                break;
            }
        }
        let after = self.nodes[node].height();
        if after > before {
            let committed = self.nodes[node].committed_input();
            self.feed(node, committed);
            if full {
                self.request_sync(node, after + 1, 0);
            }
        }
    }

    fn request_sync(&mut self, node: usize, height: u64, attempt: u32) {
        let n = self.scenario.committee_size as usize;
        let base = self.nodes[node].shard as usize * n;
        let mut peer = base + self.rng.index(n - 1);
        if peer >= node {
            peer += 1;
        }
        let from_height = self.nodes[node].height() + 1;
        self.send(node, peer, Wire::SyncRequest { from_height });
        let incarnation = self.nodes[node].incarnation;
        self.queue
            .push(self.now_ms + SYNC_RETRY_MS, Event::SyncRetry { node, incarnation, height, attempt: attempt + 1 });
    }

    fn build_proposal(&mut self, node: usize, height: u64, view: u64) {
        // The replica that asked may have moved on since (as the node's
        // driver drops such a request).
        let replica = &self.nodes[node].replica;
        if (replica.height(), replica.view()) != (height, view) || replica.index() != Some(replica.leader()) {
            return;
        }
        let timestamp_ms = self.timestamp_ms();
        let Some(block) = self.nodes[node].build(height, timestamp_ms) else {
            return;
        };
        let (block_hash, bytes) = match self.nodes[node].byzantine.take() {
            None => (block.hash().0, block.to_bytes()),
            Some(mut module) => {
                let proposal = module.proposal(&self.ctx(node), block);
                self.nodes[node].byzantine = Some(module);
                proposal
            }
        };
        self.feed(node, Input::Proposal { height, view, block_hash, block: bytes });
    }

    fn submit(&mut self, shard: u32) {
        let most_advanced = self
            .nodes
            .iter()
            .filter(|n| n.shard == shard && n.honest())
            .max_by_key(|n| (n.height(), std::cmp::Reverse(n.id)))
            .map(|n| n.id);
        let Some(oracle) = most_advanced else { return };
        let state = &self.nodes[oracle].state;
        let Some(tx) = self.workload.next(shard, |address| state.account(address).map(|a| a.nonce).unwrap_or(0)) else {
            return;
        };
        for host in self.nodes.iter_mut().filter(|n| n.shard == shard && n.alive) {
            host.submit(tx.clone());
        }
    }

    fn tick(&mut self, node: usize) {
        if !self.nodes[node].alive {
            return;
        }
        let me = self.nodes[node].index;
        let recipients: Vec<ValidatorIndex> =
            (0..self.scenario.committee_size).map(ValidatorIndex).filter(|i| *i != me).collect();
        let Some(mut module) = self.nodes[node].byzantine.take() else { return };
        let ctx = self.ctx(node);
        let outgoing = module.tick(&ctx, &recipients);
        let relayed = module.receipts(&ctx);
        self.nodes[node].byzantine = Some(module);
        let n = self.scenario.committee_size as usize;
        let base = self.nodes[node].shard as usize * n;
        for (to, bytes) in outgoing {
            self.send(node, base + to.0 as usize, Wire::Consensus(bytes));
        }
        for (dest, batch) in relayed {
            let count = self.nodes.len();
            for to in (dest as usize * n..(dest as usize + 1) * n).filter(|to| *to < count) {
                self.send(node, to, Wire::Receipts(Box::new(batch.clone())));
            }
        }
    }
}

/// Runs the scenario of `seed`.
pub fn run_seed(seed: u64) -> Report {
    Sim::new(Scenario::generate(seed)).run().0
}
