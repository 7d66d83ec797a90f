//! The shard thread: owns the shard's [`Replica`], [`Chain`] and [`Mempool`]
//! and nothing else, and serves its three queues (control first, then
//! consensus, then transactions) and its timers, one input at a time.
//!
//! Each shard has its own OS thread rather than a task on the shared async
//! runtime: validating and committing a block is CPU and disk work (batch
//! signature checks, a synced RocksDB write) that would otherwise stall the
//! network task and every other shard. With a thread and bounded queues per
//! shard, a shard that is flooded, halted or syncing delays nobody else.
//!
//! The host duties the consensus crate lists are carried out in
//! [`ShardDriver::perform`]: a `Persist` is written (synced) before any
//! later action runs, so a validator never sends a vote its store does not
//! remember, and after a crash [`Replica::restore`] refuses to sign anything
//! conflicting.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::select_biased;
use ed25519_dalek::SigningKey;
use palisade_consensus::{
    Action, Config as ReplicaConfig, Decision, Evidence, Input, Message, Rejected, Replica, SafetyState, SignedMessage,
    VerifyError, replica::DECISIONS_KEPT,
};
use palisade_ledger::execute::Extras;
use palisade_ledger::genesis::Genesis;
use palisade_ledger::slashing::EvidenceRefused;
use palisade_ledger::store::{Store, StoreError};
use palisade_ledger::{Address, Hash, Keypair, ShardId, SignedTx, codec};
use tracing::{debug, error, info, info_span, trace, warn};

use super::chain::{Chain, CommitError, Committed};
use super::evidence::{EvidencePool, Offered};
use super::handle::{Control, FinalBlock, GossipInput, ShardQueues, ShardStatus, SyncAnswer, TxInput, TxState};
use super::receipts::{self, Offer, Receipts};
use super::timers::{Timer, Timers};
use crate::byzantine::{self, Misbehaviour};
use crate::health::unix_ms;
use crate::mempool::{InsertError, Mempool, MempoolConfig, Rejection};
use crate::metrics::{Metrics, ReasonLabel, ShardLabel};
use crate::net::{NetHandle, Verdict};
use crate::wire::{SyncRequest, SyncResponse, TopicKind};

/// Room for a block's header and encoding overhead on top of the genesis
/// bound on its transaction bytes.
const BLOCK_OVERHEAD_BYTES: usize = 64 * 1024;

/// Largest encoded safety state read back.
const MAX_SAFETY_STATE_BYTES: usize = 64 * 1024;
/// Rejection reasons remembered for `TxState` queries.
const REJECTIONS_KEPT: usize = 10_000;
/// How long to wait for a sync answer before asking again.
const SYNC_RETRY: Duration = Duration::from_secs(2);
/// Inputs served per wake-up before timers are checked again.
const BURST: usize = 256;

/// Largest encoded block a shard accepts: the genesis bound on transaction
/// bytes, the same bound again on incoming receipts, plus header and
/// encoding overhead.
pub fn max_block_bytes(genesis: &Genesis) -> usize {
    (genesis.params.max_block_bytes as usize).saturating_mul(2).saturating_add(BLOCK_OVERHEAD_BYTES)
}

/// Everything a shard thread needs to start.
pub struct ShardConfig {
    /// The shard.
    pub shard: ShardId,
    /// The network's genesis.
    pub genesis: Arc<Genesis>,
    /// This node's validator key, if it sits on the shard's committee.
    pub key: Option<Keypair>,
    /// Mempool bounds.
    pub mempool: MempoolConfig,
    /// Test-only misbehaviour (dev chains; see [`crate::byzantine`]).
    pub misbehave: Option<Misbehaviour>,
}

/// A fatal failure of a shard thread (storage or configuration).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The store failed: the node must stop rather than vouch for state it
    /// cannot read or write.
    #[error("shard {shard}: storage: {source}")]
    Store {
        /// The shard.
        shard: ShardId,
        /// The failure.
        source: StoreError,
    },
    /// The genesis or the persisted state cannot run a replica.
    #[error("shard {shard}: {reason}")]
    Config {
        /// The shard.
        shard: ShardId,
        /// Why.
        reason: String,
    },
}

/// Starts the shard's thread. Returns once the replica is restored from the
/// store (so configuration and storage errors surface here), with the thread
/// running.
pub fn spawn(
    config: ShardConfig,
    store: Arc<Store>,
    queues: ShardQueues,
    net: NetHandle,
    metrics: Arc<Metrics>,
) -> Result<std::thread::JoinHandle<Result<(), ShardError>>, ShardError> {
    let shard = config.shard;
    let mut driver = ShardDriver::open(config, store, queues, net, metrics)?;
    std::thread::Builder::new()
        .name(format!("shard-{shard}"))
        .spawn(move || {
            let result = driver.run();
            if let Err(e) = &result {
                error!(shard, error = %e, "shard stopped on a fatal error");
            }
            result
        })
        .map_err(|e| ShardError::Config { shard, reason: format!("cannot start thread: {e}") })
}

/// One shard's host.
pub struct ShardDriver {
    shard: ShardId,
    chain_id: String,
    replica: Replica,
    chain: Chain,
    mempool: Mempool,
    store: Arc<Store>,
    queues: ShardQueues,
    net: NetHandle,
    metrics: Arc<Metrics>,
    label: ShardLabel,
    /// Our ledger address, if we validate.
    address: Option<Address>,
    /// Test-only misbehaviour.
    misbehave: Option<Misbehaviour>,
    /// The last `flood` burst.
    last_flood: Instant,
    /// Equivocation evidence waiting for a block.
    evidence: EvidencePool,
    max_block_txs: usize,
    max_message_bytes: usize,
    block_interval: Duration,
    heartbeat_interval: Duration,
    timers: Timers,
    /// A proposal the replica asked for and we have not built yet.
    proposal_due: Option<(u64, u64)>,
    /// When the current tip was committed (paces proposals).
    last_commit: Instant,
    last_commit_unix_ms: u64,
    /// When the replica entered its current height (commit latency).
    height_started: Instant,
    observed_view: u64,
    /// Highest committed height a peer showed us.
    peer_height: u64,
    /// A sync request is out, sent at this instant.
    sync_inflight: Option<Instant>,
    /// Receipts owed to this shard, and the scans that find them.
    receipts: Receipts,
    /// The scan resume points last saved to the store.
    saved_resume_points: BTreeMap<ShardId, u64>,
    max_block_receipts: usize,
    max_block_bytes: usize,
    rejections: HashMap<Hash, String>,
    rejection_order: VecDeque<Hash>,
    stopping: bool,
}

impl ShardDriver {
    /// Opens the chain and restores the replica from the store.
    pub fn open(
        config: ShardConfig,
        store: Arc<Store>,
        queues: ShardQueues,
        net: NetHandle,
        metrics: Arc<Metrics>,
    ) -> Result<ShardDriver, ShardError> {
        let ShardConfig { shard, genesis, key, mempool, misbehave } = config;
        let store_err = |source| ShardError::Store { shard, source };
        let config_err = |reason: String| ShardError::Config { shard, reason };
        if genesis.consensus_committee(shard).is_none() {
            return Err(config_err("genesis has no such shard".into()));
        }
        let params = &genesis.params;
        let max_block_bytes = max_block_bytes(&genesis);
        let chain = Chain::open(store.clone(), &genesis, shard, max_block_bytes).map_err(store_err)?;
        // The genesis committee minus the validators jailed so far.
        let committee = chain.committee().clone();

        let signing_key = key.as_ref().map(|k| SigningKey::from_bytes(&k.seed()));
        let mut replica_config = ReplicaConfig::new(genesis.chain_id.clone(), shard, committee.clone(), signing_key);
        replica_config.max_block_bytes = max_block_bytes;
        // A leader of an idle shard waits up to a heartbeat before proposing
        // an empty block, so the view timer must cover that wait on top of
        // the configured view timeout.
        replica_config.base_timeout_ms = params.view_timeout_ms.saturating_add(params.heartbeat_interval_ms);
        replica_config.max_timeout_ms = replica_config.base_timeout_ms.saturating_mul(8);

        let persisted = load_safety_state(&store, shard)?;
        let resume_points = match store.receipt_cursors(shard).map_err(store_err)? {
            None => BTreeMap::new(),
            Some(bytes) => codec::decode(&bytes, MAX_SAFETY_STATE_BYTES).unwrap_or_else(|e| {
                // Only an optimisation: scanning from height 1 loses nothing.
                warn!(shard, error = %e, "stored receipt scan cursors do not decode; rescanning from height 1");
                BTreeMap::new()
            }),
        };
        let tip = chain.tip();
        let recent = recent_decisions(&chain, &store, &replica_config).map_err(store_err)?;
        let replica = Replica::restore(replica_config.clone(), persisted, tip.height, recent)
            .map_err(|e| config_err(format!("cannot restore the replica: {e}")))?;
        let max_message_bytes = palisade_consensus::max_message_bytes(committee.len(), max_block_bytes);
        let now = Instant::now();
        Ok(ShardDriver {
            shard,
            chain_id: genesis.chain_id.clone(),
            replica,
            chain,
            mempool: Mempool::new(mempool),
            store,
            queues,
            net,
            metrics,
            label: ShardLabel { shard },
            address: key.as_ref().map(Keypair::address),
            misbehave,
            last_flood: now,
            evidence: EvidencePool::default(),
            max_block_txs: params.max_block_txs as usize,
            max_message_bytes,
            block_interval: Duration::from_millis(params.block_interval_ms),
            heartbeat_interval: Duration::from_millis(params.heartbeat_interval_ms),
            timers: Timers::default(),
            proposal_due: None,
            last_commit: now,
            last_commit_unix_ms: unix_ms(),
            height_started: now,
            observed_view: 0,
            peer_height: tip.height,
            sync_inflight: None,
            receipts: Receipts::resume(shard, genesis.shard_count, &resume_points),
            saved_resume_points: resume_points,
            max_block_receipts: params.max_block_receipts as usize,
            max_block_bytes,
            rejections: HashMap::new(),
            rejection_order: VecDeque::new(),
            stopping: false,
        })
    }

    /// Serves the queues until shut down (or a queue's senders are all gone).
    pub fn run(&mut self) -> Result<(), ShardError> {
        let span = info_span!("shard", shard = self.shard);
        let _entered = span.enter();
        info!(height = self.chain.tip().height, validator = ?self.replica.index(), "shard started");
        let mut out = Vec::new();
        self.replica.start(&mut out);
        self.perform_all(out)?;
        // Learn where peers are, in case we were down while they moved on;
        // then check again every SYNC_RETRY for as long as the shard runs.
        self.request_sync();
        self.timers.after(SYNC_RETRY, Timer::Sync);
        self.timers.after(receipts::SCAN_INTERVAL, Timer::ReceiptScan);
        self.publish_status();
        while !self.stopping {
            self.serve_one()?;
            for _ in 0..BURST {
                if self.stopping || !self.serve_ready()? {
                    break;
                }
            }
            self.fire_timers()?;
            self.maybe_propose()?;
            self.flood();
            self.publish_status();
        }
        info!(height = self.chain.tip().height, "shard stopped");
        Ok(())
    }

    /// Waits for one input or the next timer.
    fn serve_one(&mut self) -> Result<(), ShardError> {
        let wait = self.timers.wait(Instant::now()).unwrap_or(Duration::from_secs(1));
        let q = &self.queues;
        let (control, consensus, txs) = (q.control.clone(), q.consensus.clone(), q.txs.clone());
        select_biased! {
            recv(control) -> input => match input {
                Ok(input) => self.on_control(input)?,
                Err(_) => self.stopping = true,
            },
            recv(consensus) -> input => if let Ok(input) = input { self.on_consensus(input)? },
            recv(txs) -> input => if let Ok(input) = input { self.on_tx(input)? },
            default(wait) => {}
        }
        Ok(())
    }

    /// Serves one ready input without waiting; false if none was ready.
    fn serve_ready(&mut self) -> Result<bool, ShardError> {
        if let Ok(input) = self.queues.control.try_recv() {
            self.on_control(input)?;
        } else if let Ok(input) = self.queues.consensus.try_recv() {
            self.on_consensus(input)?;
        } else if let Ok(input) = self.queues.txs.try_recv() {
            self.on_tx(input)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn store_err(&self, source: StoreError) -> ShardError {
        ShardError::Store { shard: self.shard, source }
    }

    fn on_control(&mut self, input: Control) -> Result<(), ShardError> {
        match input {
            Control::Shutdown => self.stopping = true,
            Control::Synced(answer) => self.on_sync_answer(answer)?,
            Control::ReceiptPooled { id, reply } => {
                let _ = reply.send(self.receipts.contains(&id));
            }
            Control::SubmitEvidence { evidence, reply } => {
                let _ = reply.send(self.offer_evidence(&evidence, true).answer());
            }
            Control::TxState { id, reply } => {
                let state = if self.mempool.contains(&id) {
                    TxState::Pending
                } else if let Some(reason) = self.rejections.get(&id) {
                    TxState::Rejected { reason: reason.clone() }
                } else {
                    TxState::Unknown
                };
                let _ = reply.send(state);
            }
        }
        Ok(())
    }

    /// A consensus message from gossip: bounded decode, full verification,
    /// then the replica. The verdict goes back to gossipsub for scoring.
    fn on_consensus(&mut self, input: GossipInput) -> Result<(), ShardError> {
        match input.kind {
            TopicKind::Receipts => return self.on_receipts(input),
            TopicKind::Evidence => return self.on_gossiped_evidence(input),
            TopicKind::Consensus | TopicKind::Txs => {}
        }
        let GossipInput { data, source, .. } = input;
        let message = match palisade_consensus::decode(&data, self.max_message_bytes) {
            Ok(message) => message,
            Err(e) => {
                debug!(peer = %source.peer, error = %e, "undecodable consensus message");
                self.refuse(source, TopicKind::Consensus, "decode");
                return Ok(());
            }
        };
        // A message at height h shows its signer committed h - 1 (once verified).
        let height = message.message.height();
        let verified = match message.verify(self.chain.committee(), &self.chain_id, self.shard) {
            Ok(verified) => verified,
            Err(e) => {
                let verdict = unverified_verdict(&e, height, self.chain.tip().height);
                debug!(peer = %source.peer, height, error = %e, ?verdict, "consensus message does not verify");
                if verdict == Verdict::Reject {
                    self.refuse(source, TopicKind::Consensus, "invalid");
                } else {
                    self.net.report(source, verdict);
                }
                return Ok(());
            }
        };
        self.note_peer_height(height.saturating_sub(1));
        if let Message::Decided(decision) = &verified.message {
            self.note_peer_height(decision.certificate.height);
        }
        let verdict = self.step(Input::Message(verified))?;
        // A peer more than a block ahead: fetch what we missed now rather
        // than at the next sync check (one request in flight at a time).
        if self.peer_height > self.chain.tip().height.saturating_add(1) {
            self.request_sync();
        }
        let verdict = match verdict {
            Ok(()) => Verdict::Accept,
            Err(Rejected::NotLeader { .. } | Rejected::BlockTooLarge { .. }) => {
                self.metrics.gossip_refused(self.shard, TopicKind::Consensus, "invalid");
                Verdict::Reject
            }
            Err(Rejected::TooFarAhead { .. } | Rejected::BufferFull(_)) => Verdict::Ignore,
        };
        self.net.report(source, verdict);
        Ok(())
    }

    /// A receipt batch from gossip: bounded decode, full verification, then
    /// the pool; forwarded only if it brought something new.
    fn on_receipts(&mut self, input: GossipInput) -> Result<(), ShardError> {
        let GossipInput { data, source, .. } = input;
        let batch = match codec::decode(&data, self.max_block_bytes) {
            Ok(batch) => batch,
            Err(e) => {
                debug!(peer = %source.peer, error = %e, "undecodable receipt batch");
                self.refuse(source, TopicKind::Receipts, "decode");
                return Ok(());
            }
        };
        let verdict = match self.receipts.offer(batch, self.chain.state()).map_err(|e| self.store_err(e.into()))? {
            Offer::Pooled(n) => {
                trace!(peer = %source.peer, receipts = n, "receipts pooled");
                Verdict::Accept
            }
            Offer::Known | Offer::Full => Verdict::Ignore,
            Offer::Invalid(reason) => {
                debug!(peer = %source.peer, reason, "invalid receipt batch");
                self.refuse(source, TopicKind::Receipts, "invalid");
                return Ok(());
            }
        };
        self.net.report(source, verdict);
        Ok(())
    }

    /// Evidence from gossip: bounded decode, then the pool's checks.
    fn on_gossiped_evidence(&mut self, input: GossipInput) -> Result<(), ShardError> {
        let GossipInput { data, source, .. } = input;
        let evidence: Evidence = match codec::decode(&data, self.max_message_bytes) {
            Ok(evidence) => evidence,
            Err(e) => {
                debug!(peer = %source.peer, error = %e, "undecodable evidence");
                self.refuse(source, TopicKind::Evidence, "decode");
                return Ok(());
            }
        };
        // Accepted, gossipsub forwards it: publishing it again would be a
        // new message (ids are source and sequence number) at every node.
        let verdict = match self.offer_evidence(&evidence, false) {
            Offered::Pooled(..) => Verdict::Accept,
            Offered::Known => Verdict::Ignore,
            // Jailed already, or expired: true evidence that arrived late.
            Offered::Refused(
                EvidenceRefused::AlreadyJailed(_) | EvidenceRefused::Expired { .. } | EvidenceRefused::LastActive(_),
            ) => Verdict::Ignore,
            Offered::Refused(reason) => {
                debug!(peer = %source.peer, %reason, "invalid evidence");
                self.refuse(source, TopicKind::Evidence, "invalid");
                return Ok(());
            }
        };
        self.net.report(source, verdict);
        Ok(())
    }

    /// Pools evidence (ours, gossiped or submitted) and, if new and
    /// `publish` (ours or submitted), gossips it, so whoever proposes next
    /// can execute it.
    fn offer_evidence(&mut self, evidence: &Evidence, publish: bool) -> Offered {
        let next = self.chain.tip().height.saturating_add(1);
        let offered = self.evidence.offer(self.chain.state().shard_context(), self.chain.committee(), next, evidence);
        if let Offered::Pooled(hash, _) = &offered {
            let (height, view, phase) = evidence.slot();
            warn!(height, view, ?phase, signer = %evidence.signer, evidence = %hash, "equivocation evidence pooled");
            if publish && !self.net.publish(self.shard, TopicKind::Evidence, codec::encode(evidence)) {
                debug!("network queue full; evidence not gossiped (our own proposals still carry it)");
            }
        }
        offered
    }

    /// Counts a provably bad gossip message and has gossipsub penalise its sender.
    fn refuse(&self, source: crate::net::GossipSource, kind: TopicKind, reason: &'static str) {
        self.metrics.gossip_refused(self.shard, kind, reason);
        self.net.report(source, Verdict::Reject);
    }

    fn on_tx(&mut self, input: TxInput) -> Result<(), ShardError> {
        match input {
            TxInput::Gossip(GossipInput { data, source, .. }) => {
                let tx = match SignedTx::from_bytes(&data) {
                    Ok(tx) => tx,
                    Err(e) => {
                        debug!(peer = %source.peer, error = %e, "undecodable transaction");
                        self.refuse(source, TopicKind::Txs, "decode");
                        return Ok(());
                    }
                };
                let verdict = match self.admit(tx)? {
                    Ok(_) => Verdict::Accept,
                    Err(Rejection::Invalid(palisade_ledger::TxError::BadSignature))
                    | Err(Rejection::Invalid(palisade_ledger::TxError::WrongChain { .. }))
                    | Err(Rejection::Invalid(palisade_ledger::TxError::WrongShard { .. })) => {
                        self.metrics.gossip_refused(self.shard, TopicKind::Txs, "invalid");
                        Verdict::Reject
                    }
                    // Stale, duplicate, unaffordable or full: not provably
                    // the forwarder's fault.
                    Err(_) => Verdict::Ignore,
                };
                self.net.report(source, verdict);
            }
            TxInput::Submit { tx, reply } => {
                let bytes = tx.to_bytes();
                let result = self.admit(tx)?;
                if result.is_ok() {
                    self.net.publish(self.shard, TopicKind::Txs, bytes);
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    /// Offers a transaction to the mempool, remembering why it was refused.
    fn admit(&mut self, tx: SignedTx) -> Result<Result<Hash, Rejection>, ShardError> {
        let id = tx.id();
        match self.mempool.insert(tx, self.chain.state()) {
            Ok(id) => Ok(Ok(id)),
            Err(InsertError::State(e)) => Err(self.store_err(StoreError::State(e))),
            Err(InsertError::Rejected(rejection)) => {
                let reason = rejection.label();
                self.metrics.mempool_rejected.get_or_create(&ReasonLabel { shard: self.shard, reason }).inc();
                if rejection != Rejection::Duplicate {
                    self.remember_rejection(id, rejection.to_string());
                }
                Ok(Err(rejection))
            }
        }
    }

    fn remember_rejection(&mut self, id: Hash, reason: String) {
        if self.rejections.insert(id, reason).is_none() {
            self.rejection_order.push_back(id);
        }
        while self.rejection_order.len() > REJECTIONS_KEPT {
            if let Some(old) = self.rejection_order.pop_front() {
                self.rejections.remove(&old);
            }
        }
    }

    /// Feeds one input to the replica and carries out everything it asks,
    /// including the inputs those actions produce (proposals, validity).
    fn step(&mut self, input: Input) -> Result<Result<(), Rejected>, ShardError> {
        let mut out = Vec::new();
        let result = self.replica.handle(input, &mut out);
        self.perform_all(out)?;
        Ok(result)
    }

    /// [`ShardDriver::step`] for an input of our own (timer, sync, proposal),
    /// which no peer can be blamed for if the replica refuses it.
    fn step_own(&mut self, input: Input) -> Result<(), ShardError> {
        if let Err(e) = self.step(input)? {
            debug!(error = %e, "replica refused the host's own input");
        }
        Ok(())
    }

    fn perform_all(&mut self, actions: Vec<Action>) -> Result<(), ShardError> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            if let Some(input) = self.perform(action)? {
                let mut out = Vec::new();
                // Inputs we generate ourselves (our proposal, our verdict on
                // a block) are never refused for a peer's fault.
                if let Err(e) = self.replica.handle(input, &mut out) {
                    warn!(error = %e, "replica refused the host's own input");
                }
                queue.extend(out);
            }
        }
        self.observe_replica();
        Ok(())
    }

    /// Carries out one action; returns the input it produces, if any.
    fn perform(&mut self, action: Action) -> Result<Option<Input>, ShardError> {
        match action {
            Action::Persist(state) => {
                // Synced before anything after it runs: a vote this node
                // sends is one its store remembers.
                self.store.save_safety_state(self.shard, &codec::encode(&state)).map_err(|e| self.store_err(e))?;
            }
            Action::Broadcast(message) | Action::Send { message, .. } => {
                // Direct sends (decisions for laggards) go over gossip too:
                // any node of the shard may use a decision, and the topic
                // already reaches the recipient.
                self.publish(&message);
            }
            Action::SetTimer { id, after_ms } => self.timers.after(Duration::from_millis(after_ms), Timer::View(id)),
            Action::Commit { height, block, certificate, .. } => {
                // Above the tip, unless already applied through sync.
                if height > self.chain.tip().height {
                    match self.chain.commit(certificate, &block) {
                        Ok(committed) => self.on_committed(committed, false)?,
                        Err(CommitError::Store(e)) => return Err(self.store_err(e)),
                        // The replica only commits blocks it validated against a
                        // certificate it verified: this is a broken invariant.
                        Err(CommitError::Refused(e)) => {
                            panic!("shard {}: replica committed a bad block: {e}", self.shard)
                        }
                    }
                }
                // The replica waits for the committee of the next height,
                // which this block may have changed.
                return Ok(Some(self.committed_input()));
            }
            Action::Evidence(evidence) => {
                self.metrics.evidence.get_or_create(&self.label).inc();
                if let Offered::Refused(reason) = self.offer_evidence(&evidence, true) {
                    debug!(%reason, "own evidence not pooled");
                }
            }
            Action::RequestProposal { height, view } => {
                self.proposal_due = Some((height, view));
                return self.proposal_if_due();
            }
            Action::ValidateBlock { height, view, block_hash, block } => {
                let valid = match self.chain.validate(height, block_hash, &block, unix_ms()) {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(height, view, error = %e, "refusing proposed block");
                        false
                    }
                };
                return Ok(Some(Input::BlockValidity { height, block_hash, valid }));
            }
            Action::SyncFrom { height } => {
                self.note_peer_height(height);
                self.request_sync();
            }
        }
        Ok(None)
    }

    fn publish(&self, message: &SignedMessage) {
        // The replica's key also signs the `equivocate` misbehaviour's second votes.
        match (self.misbehave, &self.replica.config().signing_key) {
            (Some(Misbehaviour::Silent), _) if byzantine::silent::withholds(message) => return,
            (Some(Misbehaviour::Equivocate), Some(key)) => {
                if let Some(twin) = byzantine::equivocate::conflicting(message, key) {
                    self.net.publish(self.shard, TopicKind::Consensus, palisade_consensus::encode(&twin));
                }
            }
            _ => {}
        }
        if !self.net.publish(self.shard, TopicKind::Consensus, palisade_consensus::encode(message)) {
            debug!("network queue full; message dropped (view changes recover)");
        }
    }

    /// The `flood` misbehaviour's next burst of junk, when due.
    fn flood(&mut self) {
        if self.misbehave != Some(Misbehaviour::Flood) || self.last_flood.elapsed() < byzantine::flood::INTERVAL {
            return;
        }
        self.last_flood = Instant::now();
        for n in 0..byzantine::flood::BURST {
            self.net.publish(self.shard, TopicKind::Consensus, byzantine::flood::junk(n));
        }
    }

    /// Bookkeeping after a block became final here.
    fn on_committed(&mut self, committed: Committed, synced: bool) -> Result<(), ShardError> {
        let Committed { block, hash, certificate, bytes, outgoing, jailed, slashed } = committed;
        for (offender, record) in &slashed {
            warn!(
                height = block.header.height,
                %offender,
                offence_height = record.height,
                view = record.view,
                burned = %record.burned,
                "validator slashed and jailed"
            );
            self.metrics.slashed.get_or_create(&self.label).inc();
        }
        if !slashed.is_empty() {
            let committee = self.chain.committee();
            info!(
                height = block.header.height,
                active = committee.len().saturating_sub(committee.inactive().len()),
                jailed = ?committee.inactive(),
                "committee changed; it decides the next height"
            );
        }
        self.evidence.on_commit(&block, self.chain.committee());
        let emitted = outgoing.len();
        let height = block.header.height;
        let txs = block.txs.len();
        self.mempool.on_commit(&block.txs, self.chain.state()).map_err(|e| self.store_err(StoreError::State(e)))?;
        self.receipts.on_commit(&block);
        self.save_resume_points()?;
        let credited: usize = block.incoming.iter().map(|b| b.receipts.len()).sum();
        self.metrics.receipts_credited.get_or_create(&self.label).inc_by(credited as u64);
        if emitted > 0 {
            self.metrics.receipts_emitted.get_or_create(&self.label).inc_by(emitted as u64);
            // Every node relays: nothing waits on one relayer (and the
            // destinations' scans find what no one relays).
            for (dest, batch) in Receipts::relay(&block.header, &certificate, &jailed, &outgoing) {
                if !self.net.publish(dest, TopicKind::Receipts, batch) {
                    debug!(dest, "network queue full; receipts not relayed (the destination's scan finds them)");
                }
            }
        }
        let now = Instant::now();
        self.metrics
            .commit_latency
            .get_or_create(&self.label)
            .observe(now.saturating_duration_since(self.height_started).as_secs_f64());
        self.metrics.block_txs.get_or_create(&self.label).observe(txs as f64);
        self.metrics.block_bytes.get_or_create(&self.label).observe(bytes as f64);
        self.metrics.committed_txs.get_or_create(&self.label).inc_by(txs as u64);
        if synced {
            self.metrics.sync_blocks.get_or_create(&self.label).inc();
        }
        self.last_commit = now;
        self.last_commit_unix_ms = unix_ms();
        self.height_started = now;
        self.note_peer_height(height);
        info!(height, txs, credited, emitted, hash = %hash, synced, "committed");
        // Nobody listening is fine.
        let _ = self.queues.final_blocks.send(FinalBlock {
            block: Arc::new(block),
            hash,
            certificate: Arc::new(certificate),
        });
        Ok(())
    }

    /// A receipt scan's answer, or a block sync's.
    fn on_sync_answer(&mut self, answer: SyncAnswer) -> Result<(), ShardError> {
        let SyncAnswer { request, answer } = answer;
        if request.receipts_for.is_none() {
            return self.on_synced(answer);
        }
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                debug!(source = request.shard, error = %e, "receipt scan failed");
                self.receipts.scan_failed(&request);
                return Ok(());
            }
        };
        let scanned = self
            .receipts
            .on_scan(&request, response, self.chain.state(), self.max_block_bytes)
            .map_err(|e| self.store_err(e.into()))?;
        if let Some(reason) = scanned.invalid {
            warn!(source = request.shard, reason, "a peer answered a receipt scan with invalid receipts");
        } else if scanned.pooled > 0 {
            debug!(source = request.shard, receipts = scanned.pooled, "receipts found by scanning");
        }
        if scanned.more {
            self.scan_receipts();
        }
        Ok(())
    }

    /// Saves where receipt scans may resume after a restart, if that moved
    /// (after a commit: the points only rise once credits are committed).
    fn save_resume_points(&mut self) -> Result<(), ShardError> {
        let points = self.receipts.resume_points();
        if points != self.saved_resume_points {
            self.store.save_receipt_cursors(self.shard, &codec::encode(&points)).map_err(|e| self.store_err(e))?;
            self.saved_resume_points = points;
        }
        Ok(())
    }

    /// Sends the receipt scans that are due.
    fn scan_receipts(&mut self) {
        for request in self.receipts.scans_due(Instant::now()) {
            if !self.net.sync(request.clone()) {
                self.receipts.scan_failed(&request);
            }
        }
    }

    /// Applies blocks a peer sent, each checked against its certificate.
    fn on_synced(&mut self, response: Result<SyncResponse, String>) -> Result<(), ShardError> {
        self.sync_inflight = None;
        let response = match response {
            Ok(response) if response.shard == self.shard => response,
            Ok(response) => {
                debug!(got = response.shard, "sync answer for another shard");
                return Ok(());
            }
            Err(e) => {
                // The periodic sync check asks again.
                debug!(error = %e, "sync failed");
                return Ok(());
            }
        };
        self.note_peer_height(response.tip_height);
        let before = self.chain.tip().height;
        for synced in response.blocks {
            let certificate = match super::chain::decode_certificate(&synced.certificate) {
                Ok(certificate) => certificate,
                Err(e) => {
                    warn!(error = %e, "peer sent a bad certificate");
                    break;
                }
            };
            if certificate.height <= self.chain.tip().height {
                continue;
            }
            match self.chain.commit(certificate, &synced.block) {
                Ok(committed) => self.on_committed(committed, true)?,
                Err(CommitError::Store(e)) => return Err(self.store_err(e)),
                Err(CommitError::Refused(e)) => {
                    warn!(error = %e, "peer sent a block that does not verify");
                    break;
                }
            }
        }
        let after = self.chain.tip().height;
        if after > before {
            self.step_own(self.committed_input())?;
            debug!(from = before, to = after, "synced");
        }
        // Ask for more at once only while the answers make progress; a peer
        // that claims a height it does not serve is retried on the timer.
        if self.peer_height > after && after > before {
            self.request_sync();
        }
        Ok(())
    }

    /// Tells the replica what the chain committed and which committee
    /// decides the next height.
    fn committed_input(&self) -> Input {
        Input::Committed { height: self.chain.tip().height, committee: self.chain.committee().clone() }
    }

    fn note_peer_height(&mut self, height: u64) {
        if height > self.peer_height {
            self.peer_height = height;
            self.metrics.sync_target.get_or_create(&self.label).set(i64::try_from(height).unwrap_or(i64::MAX));
        }
    }

    /// Asks peers for the blocks after our tip, unless a request is out.
    fn request_sync(&mut self) {
        let now = Instant::now();
        if self.sync_inflight.is_some_and(|sent| now.saturating_duration_since(sent) < SYNC_RETRY) {
            return;
        }
        let from_height = self.chain.tip().height.saturating_add(1);
        if self.net.sync(SyncRequest::blocks(self.shard, from_height)) {
            self.sync_inflight = Some(now);
        }
    }

    fn fire_timers(&mut self) -> Result<(), ShardError> {
        while let Some(timer) = self.timers.pop_due(Instant::now()) {
            match timer {
                Timer::View(id) => {
                    self.step_own(Input::Timeout(id))?;
                }
                Timer::Propose => {}
                Timer::Sync => {
                    // The sync check never stops (it is the only place that
                    // re-arms it): a validator that fell behind while nothing
                    // told it so (stuck in view changes at an old height, say)
                    // must still notice and catch up.
                    let stalled = self.last_commit.elapsed() > self.heartbeat_interval.saturating_mul(3);
                    if self.peer_height > self.chain.tip().height || stalled {
                        self.request_sync();
                    }
                    self.timers.after(SYNC_RETRY, Timer::Sync);
                }
                Timer::ReceiptScan => {
                    // Like the sync check, re-armed only here, forever.
                    self.scan_receipts();
                    self.timers.after(receipts::SCAN_INTERVAL, Timer::ReceiptScan);
                }
            }
        }
        Ok(())
    }

    /// Builds the requested proposal once it is due: right away in a view
    /// after a failure, after `block_interval` since the last commit when
    /// transactions wait, and after `heartbeat_interval` when idle.
    fn proposal_if_due(&mut self) -> Result<Option<Input>, ShardError> {
        let Some((height, view)) = self.proposal_due else { return Ok(None) };
        if height != self.replica.height() || view != self.replica.view() {
            self.proposal_due = None;
            return Ok(None);
        }
        let wait = if view > 0 {
            Duration::ZERO
        } else if self.mempool.is_empty() && self.receipts.is_empty() {
            self.heartbeat_interval
        } else {
            self.block_interval
        };
        let due = self.last_commit + wait;
        let now = Instant::now();
        if now < due {
            self.timers.set(due, Timer::Propose);
            return Ok(None);
        }
        self.proposal_due = None;
        let Some(proposer) = self.address else { return Ok(None) };
        let candidates =
            self.mempool.candidates(self.chain.state(), self.max_block_txs).map_err(|e| self.store_err(e.into()))?;
        let extras = Extras {
            incoming: self.receipts.candidates(self.max_block_receipts),
            evidence: self.evidence.candidates(),
        };
        let super::chain::Proposed { block, hash: block_hash, rejected, refused_evidence } =
            self.chain.build(proposer, unix_ms(), extras, candidates).map_err(|e| self.store_err(e))?;
        for (hash, reason) in &refused_evidence {
            debug!(evidence = %hash, %reason, "pending evidence not executable");
        }
        self.evidence.drop_refused(&refused_evidence);
        for (id, reason) in rejected {
            self.mempool.evict(&id);
            self.remember_rejection(id, reason.to_string());
        }
        let (block, block_hash) = match self.misbehave {
            Some(Misbehaviour::InvalidProposals) => {
                byzantine::invalid_proposals::corrupt(&block, self.max_block_bytes).unwrap_or((block, block_hash))
            }
            _ => (block, block_hash),
        };
        debug!(height, view, bytes = block.len(), "proposing");
        Ok(Some(Input::Proposal { height, view, block_hash, block }))
    }

    fn maybe_propose(&mut self) -> Result<(), ShardError> {
        if let Some(input) = self.proposal_if_due()? {
            self.step_own(input)?;
        }
        Ok(())
    }

    /// Notes view changes and height changes after the replica moved.
    fn observe_replica(&mut self) {
        let view = self.replica.view();
        if view > self.observed_view {
            self.metrics.view_changes.get_or_create(&self.label).inc_by(view.saturating_sub(self.observed_view));
            info!(height = self.replica.height(), view, "view change");
        }
        self.observed_view = view;
    }

    fn publish_status(&mut self) {
        let tip = self.chain.tip();
        let status = ShardStatus {
            shard: self.shard,
            validator_index: self.replica.index(),
            height: tip.height,
            last_block_hash: tip.hash,
            last_commit_unix_ms: self.last_commit_unix_ms,
            view: self.replica.view(),
            peer_height: self.peer_height.max(tip.height),
            mempool_txs: self.mempool.len(),
        };
        let m = &self.metrics;
        m.height.get_or_create(&self.label).set(i64::try_from(tip.height).unwrap_or(i64::MAX));
        m.view.get_or_create(&self.label).set(i64::try_from(status.view).unwrap_or(i64::MAX));
        m.mempool_txs.get_or_create(&self.label).set(i64::try_from(self.mempool.len()).unwrap_or(i64::MAX));
        m.receipts_pooled.get_or_create(&self.label).set(i64::try_from(self.receipts.len()).unwrap_or(i64::MAX));
        m.mempool_bytes.get_or_create(&self.label).set(i64::try_from(self.mempool.bytes()).unwrap_or(i64::MAX));
        *self.queues.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }
}

/// Gossip's verdict on a consensus message of `height` that does not verify
/// against our committee, the one deciding `tip + 1`. At another height a
/// stake shortfall (genuine signatures short of a quorum; forged ones are
/// `BadSignature`) may be an honest peer's message under the committee
/// before or after a jailing (a laggard's view change still carrying the
/// jailed validator's prepare): ignored, not penalised, as valid messages of
/// past heights and far-ahead ones are. Penalising it cost a shard for good:
/// the survivors of a jailing graylisted their one lagging peer, whose view
/// changes every new view needed.
fn unverified_verdict(error: &VerifyError, height: u64, tip: u64) -> Verdict {
    if error.is_stake_shortfall() && height != tip.saturating_add(1) { Verdict::Ignore } else { Verdict::Reject }
}

/// The safety state the replica last persisted for `shard`.
fn load_safety_state(store: &Store, shard: ShardId) -> Result<Option<SafetyState>, ShardError> {
    match store.safety_state(shard).map_err(|source| ShardError::Store { shard, source })? {
        None => Ok(None),
        Some(bytes) => codec::decode::<SafetyState>(&bytes, MAX_SAFETY_STATE_BYTES)
            .map(Some)
            .map_err(|e| ShardError::Config { shard, reason: format!("stored safety state does not decode: {e}") }),
    }
}

/// The chain's last decisions that the committee of `config` certified (a
/// decision certified by a committee since changed cannot be handed to a
/// replica of the new one; peers stuck there sync instead).
fn recent_decisions(chain: &Chain, store: &Store, config: &ReplicaConfig) -> Result<Vec<Decision>, StoreError> {
    let mut recent = chain.recent_decisions(store, DECISIONS_KEPT)?;
    recent.retain(|d| config.certifies(d));
    Ok(recent)
}

/// The status a shard publishes before its thread starts.
pub fn initial_status(shard: ShardId, store: &Store, genesis: &Genesis) -> Result<ShardStatus, StoreError> {
    let tip = store.tip(shard)?;
    Ok(ShardStatus {
        shard,
        validator_index: None,
        height: tip.map_or(0, |t| t.height),
        last_block_hash: tip.map_or_else(|| genesis.hash(), |t| t.hash),
        last_commit_unix_ms: unix_ms(),
        view: 0,
        peer_height: 0,
        mempool_txs: 0,
    })
}

#[cfg(test)]
mod tests {
    use palisade_consensus::{CertError, VerifyError};

    use super::unverified_verdict;
    use crate::net::Verdict;

    #[test]
    fn only_the_committee_of_the_next_height_judges_stake() {
        let short = VerifyError::Certificate(CertError::InsufficientStake { have: 2, need: 3 });
        let forged = VerifyError::BadSignature;
        // Tip 184: our committee decides 185.
        assert_eq!(unverified_verdict(&short, 185, 184), Verdict::Reject);
        assert_eq!(unverified_verdict(&short, 184, 184), Verdict::Ignore, "a laggard at the jailing height");
        assert_eq!(unverified_verdict(&short, 187, 184), Verdict::Ignore, "a height whose committee we lack");
        for height in [184, 185, 187] {
            assert_eq!(unverified_verdict(&forged, height, 184), Verdict::Reject);
        }
        let thin = VerifyError::Justification(palisade_consensus::message::SHORT_OF_QUORUM);
        assert_eq!(unverified_verdict(&thin, 186, 184), Verdict::Ignore);
    }
}
