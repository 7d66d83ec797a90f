//! The simulation loop: builds the network a [`Scenario`] describes, then
//! pops events in `(time, sequence)` order and plays each one against the
//! nodes, until every shard has shown liveness after the heal or the bound
//! runs out. Each node's actions are carried out in order, as the consensus
//! crate requires (a `Persist` is durable before the next action runs).

use std::collections::VecDeque;

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    Action, Committee, Config, Decision, Input, SignedMessage, Validator, ValidatorIndex, decode, max_message_bytes,
};
use palisade_ledger::{Genesis, Keypair, StateExt, mem::MemState};

use super::byzantine::{Ctx, TICK_MS, honest};
use super::checks::{self, Violation};
use super::network::{Event, MAX_SYNC_ATTEMPTS, MAX_SYNC_BLOCKS, Queue, SYNC_RETRY_MS, Wire};
use super::node::Node;
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
            if self.liveness_base.is_some() && matches!(self.lively(), Some(true)) {
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

    fn schedule(&mut self) {
        let scenario = self.scenario.clone();
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
            Event::Heal => {
                for node in 0..self.nodes.len() {
                    self.restart(node);
                }
                self.liveness_base = Some((0..self.scenario.shards).map(|s| self.honest_height(s)).collect());
            }
        }
    }

    fn current(&self, node: usize, incarnation: u64) -> bool {
        self.nodes[node].alive && self.nodes[node].incarnation == incarnation
    }

    fn restart(&mut self, node: usize) {
        if !self.nodes[node].alive {
            self.nodes[node].restart();
            self.start_replica(node);
        }
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
                    return;
                }
                if certificate.block_hash != block_hash || certificate.height != height {
                    self.host_violation(node, format!("commit action at {height} names another certificate"));
                    return;
                }
                self.commit(node, Decision { certificate, block }, false);
            }
            Action::Evidence(evidence) => {
                if self.nodes[node].honest() {
                    self.stats.evidence += 1;
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
            Ok(()) => {
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
            shard: host.shard,
            me: host.index,
            key: host.config.signing_key.as_ref().expect("simulated validators sign"),
            address: host.address,
            committee_len: self.scenario.committee_size as usize,
            state: &host.state,
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
            self.feed(node, Input::Synced { height: after });
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
        let outgoing = module.tick(&self.ctx(node), &recipients);
        self.nodes[node].byzantine = Some(module);
        let base = self.nodes[node].shard as usize * self.scenario.committee_size as usize;
        for (to, bytes) in outgoing {
            self.send(node, base + to.0 as usize, Wire::Consensus(bytes));
        }
    }
}

/// Runs the scenario of `seed`.
pub fn run_seed(seed: u64) -> Report {
    Sim::new(Scenario::generate(seed)).run().0
}
