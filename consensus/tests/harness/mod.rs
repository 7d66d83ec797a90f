//! A small deterministic network for driving real replicas in tests and
//! benchmarks: one FIFO queue of inputs, logical time that only advances when
//! the queue is empty (to the earliest timer), an honest host per node that
//! builds and validates blocks, and hooks to drop messages, crash and restart
//! nodes, and inject hand-made (Byzantine) messages.
//!
//! Every message goes through `encode` / `decode` / `verify`, so the byte
//! counts are real. Checkers run on every commit: certificates verify, bytes
//! match hashes, heights are committed in order, and no two nodes commit
//! different blocks at one height.
// Test support: a panic here is a failed test, which is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod fixture;

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    Action, BlockHash, CommitCertificate, Committee, Config, Decision, Evidence, Input, Message, Phase, Replica,
    SafetyState, ShardId, SignedMessage, TimerId, Validator, ValidatorIndex, Verified, Vote, decode, encode,
    max_message_bytes,
};

pub const CHAIN: &str = "palisade-test";
pub const SHARD: ShardId = 7;
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;

/// Deterministic validator keys.
pub fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let seed = blake3::hash(format!("validator {i}").as_bytes());
            SigningKey::from_bytes(seed.as_bytes())
        })
        .collect()
}

pub fn committee(keys: &[SigningKey], stakes: &[u64]) -> Committee {
    Committee::new(
        keys.iter()
            .zip(stakes)
            .map(|(k, &stake)| Validator { public_key: k.verifying_key().to_bytes(), stake })
            .collect(),
    )
    .unwrap()
}

pub fn block_hash(block: &[u8]) -> BlockHash {
    *blake3::hash(block).as_bytes()
}

/// Signs and verifies a message as validator `i`.
pub fn signed(keys: &[SigningKey], committee: &Committee, i: usize, message: Message) -> Verified<SignedMessage> {
    SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(i as u32), message, &keys[i])
        .verify(committee, CHAIN, SHARD)
        .unwrap()
}

pub fn vote(phase: Phase, height: u64, view: u64, block_hash: BlockHash) -> Message {
    Message::Vote(Vote { phase, height, view, block_hash })
}

pub struct Node {
    pub replica: Replica,
    pub config: Config,
    pub alive: bool,
    /// Bumped on restart: timers of an earlier incarnation are discarded.
    pub incarnation: u64,
    pub persisted: Option<SafetyState>,
    pub committed: BTreeMap<u64, BlockHash>,
    pub committed_height: u64,
    pub evidence: Vec<Evidence>,
    /// Every message this node sent, in order.
    pub sent: Vec<SignedMessage>,
    /// Every message sent by this node was preceded by a Persist covering it.
    pub persisted_before_send: bool,
}

impl Node {
    /// A fresh node at genesis.
    fn new(config: Config) -> Node {
        Node {
            replica: Replica::new(config.clone(), 0).unwrap(),
            config,
            alive: true,
            incarnation: 0,
            persisted: None,
            committed: BTreeMap::new(),
            committed_height: 0,
            evidence: Vec::new(),
            sent: Vec::new(),
            persisted_before_send: true,
        }
    }
}

type DropRule = Box<dyn FnMut(usize, usize, &SignedMessage) -> bool>;
type HoldRule = Box<dyn FnMut(usize, usize, &SignedMessage) -> bool>;
type InvalidRule = Box<dyn Fn(&[u8]) -> bool>;

pub struct Net {
    pub nodes: Vec<Node>,
    pub committee: Committee,
    pub keys: Vec<SigningKey>,
    queue: VecDeque<(usize, Input)>,
    timers: BTreeMap<(u64, u64), (usize, u64, TimerId)>,
    pub now_ms: u64,
    seq: u64,
    /// Returns true to drop a message from `from` to `to`.
    pub drop_rule: DropRule,
    /// Returns true to hold a message back until `release_held`.
    pub hold_rule: HoldRule,
    held: Vec<(usize, Input)>,
    /// Returns true for blocks the honest host must call invalid.
    pub invalid_rule: InvalidRule,
    pub messages: u64,
    pub bytes: u64,
    pub rejected: u64,
    /// Agreement checker: the first block committed at each height.
    pub decided: BTreeMap<u64, (BlockHash, Vec<u8>, CommitCertificate)>,
    pub steps: u64,
    pub message_limit: usize,
}

impl Net {
    pub fn new(n: usize) -> Net {
        Net::with_stakes(&vec![1; n])
    }

    pub fn with_stakes(stakes: &[u64]) -> Net {
        let keys = keys(stakes.len());
        let committee = committee(&keys, stakes);
        let nodes = keys
            .iter()
            .map(|key| {
                let mut config = Config::new(CHAIN, SHARD, committee.clone(), Some(key.clone()));
                config.max_block_bytes = MAX_BLOCK_BYTES;
                config.base_timeout_ms = 100;
                config.max_timeout_ms = 10_000;
                // No beats here: the leader timer is the view's own.
                config.leader_timeout_ms = 100;
                Node::new(config)
            })
            .collect();
        Net {
            nodes,
            message_limit: max_message_bytes(stakes.len(), MAX_BLOCK_BYTES),
            committee,
            keys,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            now_ms: 0,
            seq: 0,
            drop_rule: Box::new(|_, _, _| false),
            hold_rule: Box::new(|_, _, _| false),
            held: Vec::new(),
            invalid_rule: Box::new(|_| false),
            messages: 0,
            bytes: 0,
            rejected: 0,
            decided: BTreeMap::new(),
            steps: 0,
        }
    }

    /// Four validators, five nodes: node 4 runs a second copy of validator
    /// 3's key (Twins). Honest code, real equivocation.
    pub fn with_twin() -> Net {
        let mut net = Net::new(4);
        let mut config = net.nodes[3].config.clone();
        config.signing_key = Some(net.keys[3].clone());
        net.nodes.push(Node::new(config));
        net
    }

    /// Delivers every held message, in the order held.
    pub fn release_held(&mut self) {
        self.queue.extend(self.held.drain(..));
    }

    /// No node signed two different blocks for one (height, view, phase),
    /// across all its incarnations.
    pub fn check_no_double_signing(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let mut slots: BTreeMap<(u64, u64, Phase), BlockHash> = BTreeMap::new();
            for message in &node.sent {
                let (slot, hash) = match &message.message {
                    Message::Vote(v) => ((v.height, v.view, v.phase), v.block_hash),
                    Message::Propose(p) => ((p.height, p.view, Phase::Propose), p.block_hash),
                    _ => continue,
                };
                let first = slots.entry(slot).or_insert(hash);
                assert_eq!(*first, hash, "node {i} double-signed {slot:?}");
            }
        }
    }

    /// Starts every live node.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].alive {
                let mut out = Vec::new();
                self.nodes[i].replica.start(&mut out);
                self.apply(i, out);
            }
        }
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// Restarts node `i` from what its host persisted and committed.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        // The durable chain's last decisions go back in, so the replica can
        // answer peers stuck at those heights.
        let recent = node
            .committed
            .keys()
            .rev()
            .take(palisade_consensus::replica::DECISIONS_KEPT)
            .map(|height| {
                let (_, block, certificate) = &self.decided[height];
                Decision { certificate: certificate.clone(), block: block.clone() }
            })
            .collect();
        node.replica =
            Replica::restore(node.config.clone(), node.persisted.clone(), node.committed_height, recent).unwrap();
        node.alive = true;
        node.incarnation += 1;
        let mut out = Vec::new();
        self.nodes[i].replica.start(&mut out);
        self.apply(i, out);
    }

    /// Delivers a hand-made message to `to`.
    pub fn inject(&mut self, to: usize, message: Verified<SignedMessage>) {
        self.queue.push_back((to, Input::Message(message)));
    }

    /// Processes one input, or fires the next timer. False when nothing is left.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        if let Some((to, input)) = self.queue.pop_front() {
            if self.nodes[to].alive {
                let mut out = Vec::new();
                if self.nodes[to].replica.handle(input, &mut out).is_err() {
                    self.rejected += 1;
                }
                self.apply(to, out);
            }
            return true;
        }
        let Some(((at, _), (node, incarnation, id))) = self.timers.pop_first() else {
            return false;
        };
        self.now_ms = self.now_ms.max(at);
        if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
            self.queue.push_back((node, Input::Timeout(id)));
        }
        true
    }

    /// Runs until `done` holds; false if `max_steps` ran out first.
    pub fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&Net) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Runs until every live node committed `height`.
    pub fn run_to_height(&mut self, height: u64, max_steps: u64) -> bool {
        self.run_until(max_steps, |net| net.nodes.iter().filter(|n| n.alive).all(|n| n.committed_height >= height))
    }

    fn deliver(&mut self, from: usize, to: Option<usize>, message: SignedMessage) {
        let bytes = encode(&message);
        let decoded = decode(&bytes, self.message_limit).unwrap();
        let verified = decoded.verify(&self.committee, CHAIN, SHARD).unwrap();
        let recipients: Vec<usize> = match to {
            Some(to) => (0..self.nodes.len())
                .filter(|&j| self.nodes[j].replica.index() == Some(ValidatorIndex(to as u32)))
                .collect(),
            None => (0..self.nodes.len()).filter(|&j| j != from).collect(),
        };
        for j in recipients {
            self.messages += 1;
            self.bytes += bytes.len() as u64;
            if (self.drop_rule)(from, j, &message) {
                continue;
            }
            if (self.hold_rule)(from, j, &message) {
                self.held.push((j, Input::Message(verified.clone())));
                continue;
            }
            self.queue.push_back((j, Input::Message(verified.clone())));
        }
    }

    /// The honest host of node `i` carries out `actions`.
    pub fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Broadcast(message) => {
                    self.check_persisted(i, &message);
                    self.nodes[i].sent.push(message.clone());
                    self.deliver(i, None, message);
                }
                Action::Send { to, message } => {
                    self.nodes[i].sent.push(message.clone());
                    self.deliver(i, Some(to.0 as usize), message);
                }
                Action::Persist(state) => {
                    self.nodes[i].persisted = Some(state);
                }
                Action::SetTimer { id, after_ms } => {
                    self.seq += 1;
                    let incarnation = self.nodes[i].incarnation;
                    self.timers.insert((self.now_ms + after_ms, self.seq), (i, incarnation, id));
                }
                Action::Commit { height, block_hash, block, certificate } => {
                    self.commit(i, height, block_hash, block, certificate)
                }
                Action::Evidence(evidence) => {
                    evidence.verify(&self.committee, CHAIN, SHARD).unwrap();
                    self.nodes[i].evidence.push(evidence);
                }
                Action::RequestProposal { height, view } => {
                    let block = format!("block h={height} v={view} by={i} {}", "x".repeat(64)).into_bytes();
                    self.queue.push_back((i, Input::Proposal { height, view, block_hash: block_hash(&block), block }));
                }
                Action::ValidateBlock { height, block_hash: hash, block, .. } => {
                    let valid = block_hash(&block) == hash && !(self.invalid_rule)(&block);
                    self.queue.push_back((i, Input::BlockValidity { height, block_hash: hash, valid }));
                }
                Action::SyncFrom { height } => self.sync(i, height),
            }
        }
    }

    /// A vote or proposal must be covered by the last persisted state.
    fn check_persisted(&mut self, i: usize, message: &SignedMessage) {
        let Some(state) = &self.nodes[i].persisted else {
            if matches!(message.message, Message::Vote(_) | Message::Propose(_) | Message::ViewChange(_)) {
                self.nodes[i].persisted_before_send = false;
            }
            return;
        };
        let covered = match &message.message {
            Message::Vote(v) => {
                state.height > v.height
                    || (state.height == v.height
                        && (state.view > v.view || (state.view == v.view && state.vote(v.phase) == Some(v.block_hash))))
            }
            Message::Propose(p) => {
                state.height > p.height
                    || (state.height == p.height
                        && (state.view > p.view || (state.view == p.view && state.proposed == Some(p.block_hash))))
            }
            Message::ViewChange(vc) => state.height > vc.height || (state.height == vc.height && state.view >= vc.view),
            Message::Decided(_) | Message::Alive(_) => true,
        };
        if !covered {
            self.nodes[i].persisted_before_send = false;
        }
    }

    fn commit(&mut self, i: usize, height: u64, hash: BlockHash, block: Vec<u8>, certificate: CommitCertificate) {
        certificate.verify(&self.committee, CHAIN, SHARD).unwrap();
        assert_eq!(certificate.height, height);
        assert_eq!(certificate.block_hash, hash);
        assert_eq!(block_hash(&block), hash, "committed bytes do not match the hash");
        let node = &mut self.nodes[i];
        if height <= node.committed_height {
            // The host already got this height through sync, racing the
            // replica: it must be the same block.
            assert_eq!(node.committed[&height], hash, "node {i} commit contradicts its sync");
        } else {
            assert_eq!(height, node.committed_height + 1, "node {i} committed out of order");
            node.committed_height = height;
            node.committed.insert(height, hash);
            let entry = self.decided.entry(height).or_insert((hash, block, certificate));
            assert_eq!(entry.0, hash, "agreement violated at height {height}");
        }
        // Behind whatever is already queued: the replica waits for it.
        let committed = Input::Committed { height: self.nodes[i].committed_height, committee: self.committee.clone() };
        self.queue.push_back((i, committed));
    }

    /// Honest sync: copy decided blocks from the network's log.
    fn sync(&mut self, i: usize, from: u64) {
        let mut height = self.nodes[i].committed_height;
        let _ = from;
        while let Some((hash, _, certificate)) = self.decided.get(&(height + 1)) {
            certificate.verify(&self.committee, CHAIN, SHARD).unwrap();
            height += 1;
            self.nodes[i].committed.insert(height, *hash);
        }
        if height > self.nodes[i].committed_height {
            self.nodes[i].committed_height = height;
            self.queue.push_back((i, Input::Committed { height, committee: self.committee.clone() }));
        }
    }

    /// Every node agrees with the global log on every height it committed.
    pub fn check_agreement(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            for (height, hash) in &node.committed {
                assert_eq!(&self.decided[height].0, hash, "node {i} disagrees at {height}");
            }
        }
    }

    pub fn evidence_count(&self) -> usize {
        self.nodes.iter().map(|n| n.evidence.len()).sum()
    }
}
