//! [`ShardCore`]: one shard on one node, as a function of its inputs.
//!
//! It owns the consensus [`Replica`], the [`Chain`] over a [`ChainStore`],
//! the [`Mempool`], the receipt pool and its scan cursors, the evidence
//! pool, the sync client, proposal pacing and gossip admission. A host
//! hands it inputs with the time (`now_ms`, the host's clock in ms since
//! the Unix epoch, never going back) and carries out the [`Effect`]s it
//! answers with, in order. It reads no clock, draws no randomness and does
//! no I/O but through its store, so the node and the simulator run exactly
//! the same code.
//!
//! - `gossip`: admission of consensus messages, transactions, receipt
//!   batches and evidence (decode under a limit, verify, verdict);
//! - `replica`: stepping the replica and carrying out its actions, commit
//!   bookkeeping;
//! - `sync`: the block-sync client and the receipt scans;
//! - `propose`: proposal pacing and building, and the `flood` misbehaviour.

mod gossip;
mod propose;
mod replica;
mod sync;
mod txs;

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use palisade_consensus::{Config as ReplicaConfig, Evidence, Replica, SafetyState, replica::DECISIONS_KEPT};
use palisade_ledger::genesis::Genesis;
use palisade_ledger::{Address, Hash, Keypair, ShardId, codec};
use tracing::{info, warn};

use crate::byzantine::Misbehaviour;
use crate::chain::Chain;
use crate::effect::{Effect, Input, STARTUP_GRACE_MS, ShardStatus};
use crate::evidence::EvidencePool;
use crate::intake::Intake;
use crate::mempool::{Mempool, MempoolConfig};
use crate::presence::Presence;
use crate::quarantine::Quarantine;
use crate::receipts::{self, Receipts};
use crate::storage::{ChainStore, StorageError};
use crate::timers::{Timer, Timers};
use crate::view::ViewChange;

/// Largest encoded receipt-cursor record read back.
const MAX_CURSORS_BYTES: usize = 64 * 1024;
/// How long to wait for a sync answer before asking again; also the period
/// of the sync check.
pub const SYNC_RETRY_MS: u64 = 2_000;

/// Everything a shard core needs to start.
#[derive(Clone)]
pub struct CoreConfig {
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
    /// Submissions per second any one client may always make before the
    /// intake breaker judges its spikes ([`crate::intake`]).
    pub client_floor_per_second: u64,
}

/// Why a core cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The genesis or the persisted state cannot run a replica.
    #[error("{0}")]
    Config(String),
}

/// Bounds and pacing, from the genesis.
struct Limits {
    max_block_txs: usize,
    max_block_receipts: usize,
    max_block_bytes: usize,
    max_message_bytes: usize,
    block_interval_ms: u64,
    heartbeat_interval_ms: u64,
    /// Between two of the replica's beats: four per leader timeout.
    beat_interval_ms: u64,
    /// A member unheard for this long is taken as gone: the leader
    /// timeout, in which every member beats at least twice (P12).
    presence_window_ms: u64,
}

/// A node this many blocks below its peers is behind (one below is normal:
/// a follower applies a block a moment after others).
pub const BEHIND_BLOCKS: u64 = 3;

/// One shard's host logic on one node. See the module docs.
pub struct ShardCore<S> {
    shard: ShardId,
    chain_id: String,
    genesis: Arc<Genesis>,
    replica: Replica,
    chain: Chain<S>,
    mempool: Mempool,
    /// The per-sender breaker on client submissions.
    intake: Intake,
    /// The breaker on ourselves (see [`crate::quarantine`]).
    quarantine: Quarantine,
    /// The quarantine cause last logged.
    quarantine_logged: Option<String>,
    /// The committed tip's timestamp (a block's parent's, for the clock
    /// check).
    tip_timestamp_ms: u64,
    evidence: EvidencePool,
    receipts: Receipts,
    /// The scan resume points last saved to the store.
    saved_resume_points: BTreeMap<ShardId, u64>,
    timers: Timers,
    limits: Limits,
    /// Our ledger address, if we validate.
    address: Option<Address>,
    misbehave: Option<Misbehaviour>,
    /// The last `flood` burst.
    last_flood_ms: u64,
    /// A proposal the replica asked for and we have not built yet.
    proposal_due: Option<(u64, u64)>,
    /// When the current tip was committed here (paces proposals).
    last_commit_ms: u64,
    /// When the replica entered its current height (commit latency).
    height_started_ms: u64,
    observed_view: u64,
    /// Highest committed height a peer showed us.
    peer_height: u64,
    /// Since when we have been [`BEHIND_BLOCKS`] or more below it.
    behind_since_ms: Option<u64>,
    /// Which committee members we hear from.
    presence: Presence,
    /// When this core opened (see [`STARTUP_GRACE_MS`]).
    opened_ms: u64,
    /// A block-sync request is out, sent at this time.
    sync_inflight_ms: Option<u64>,
    /// Transactions our clients submitted, encoded, waiting to be gossiped
    /// in one batch (see `txs`), and their bytes.
    tx_outbox: Vec<serde_bytes::ByteBuf>,
    tx_outbox_bytes: usize,
    /// Read-view changes of the input being handled that the pools do not
    /// record themselves (refusals).
    changes: Vec<ViewChange>,
    /// The host's time of the input being handled.
    now_ms: u64,
}

/// Largest encoded block a shard accepts: the genesis bound on transaction
/// bytes, the same bound again on incoming receipts, plus header and
/// encoding overhead.
pub fn max_block_bytes(genesis: &Genesis) -> usize {
    /// Room for a block's header and encoding overhead.
    const BLOCK_OVERHEAD_BYTES: usize = 64 * 1024;
    (genesis.params.max_block_bytes as usize).saturating_mul(2).saturating_add(BLOCK_OVERHEAD_BYTES)
}

/// The replica configuration of `shard` for `genesis` and its current
/// `committee`.
pub fn replica_config(
    genesis: &Genesis,
    shard: ShardId,
    committee: palisade_consensus::Committee,
    key: Option<&Keypair>,
) -> ReplicaConfig {
    let params = &genesis.params;
    let signing_key = key.map(|k| SigningKey::from_bytes(&k.seed()));
    let mut config = ReplicaConfig::new(genesis.chain_id.clone(), shard, committee, signing_key);
    config.max_block_bytes = max_block_bytes(genesis);
    // A leader of an idle shard waits up to a heartbeat before proposing
    // an empty block, so the view timer must cover that wait on top of
    // the configured view timeout.
    config.base_timeout_ms = params.view_timeout_ms.saturating_add(params.heartbeat_interval_ms);
    config.max_timeout_ms = config.base_timeout_ms.saturating_mul(8);
    config.leader_timeout_ms = params.leader_timeout_ms;
    config
}

impl<S: ChainStore> ShardCore<S> {
    /// Opens the chain in `store` and restores the replica from `persisted`
    /// (the safety state the host last made durable), at `now_ms`.
    pub fn open(
        config: CoreConfig,
        store: S,
        persisted: Option<SafetyState>,
        now_ms: u64,
    ) -> Result<ShardCore<S>, OpenError> {
        let CoreConfig { shard, genesis, key, mempool, misbehave, client_floor_per_second } = config;
        if genesis.consensus_committee(shard).is_none() {
            return Err(OpenError::Config("genesis has no such shard".into()));
        }
        let params = &genesis.params;
        let max_block_bytes = max_block_bytes(&genesis);
        let resume_points = match store.receipt_cursors()? {
            None => BTreeMap::new(),
            Some(bytes) => codec::decode(&bytes, MAX_CURSORS_BYTES).unwrap_or_else(|e| {
                // Only an optimisation: scanning from height 1 loses nothing.
                warn!(shard, error = %e, "stored receipt scan cursors do not decode; rescanning from height 1");
                BTreeMap::new()
            }),
        };
        let chain = Chain::open(store, &genesis, shard, max_block_bytes)?;
        // The genesis committee minus the validators jailed so far.
        let committee = chain.committee().clone();
        let replica_config = replica_config(&genesis, shard, committee.clone(), key.as_ref());
        // The last decisions the current committee certified go back in, so
        // the replica can answer peers stuck at those heights (a decision
        // certified by a committee since changed cannot be handed to a
        // replica of the new one; peers stuck there sync instead).
        let mut recent = chain.recent_decisions(DECISIONS_KEPT)?;
        recent.retain(|d| replica_config.certifies(d));
        let replica = Replica::restore(replica_config, persisted, chain.tip().height, recent)
            .map_err(|e| OpenError::Config(format!("cannot restore the replica: {e}")))?;
        let tip = chain.tip();
        Ok(ShardCore {
            shard,
            chain_id: genesis.chain_id.clone(),
            genesis: genesis.clone(),
            replica,
            mempool: Mempool::new(mempool),
            intake: Intake::new(client_floor_per_second),
            quarantine: Quarantine::default(),
            quarantine_logged: None,
            tip_timestamp_ms: tip.timestamp_ms,
            evidence: EvidencePool::default(),
            receipts: Receipts::resume(shard, genesis.shard_count, &resume_points),
            saved_resume_points: resume_points,
            timers: Timers::default(),
            limits: Limits {
                max_block_txs: params.max_block_txs as usize,
                max_block_receipts: params.max_block_receipts as usize,
                max_block_bytes,
                max_message_bytes: palisade_consensus::max_message_bytes(committee.len(), max_block_bytes),
                block_interval_ms: params.block_interval_ms,
                heartbeat_interval_ms: params.heartbeat_interval_ms,
                beat_interval_ms: (params.leader_timeout_ms / 4).max(1),
                presence_window_ms: params.leader_timeout_ms.max(1),
            },
            address: key.as_ref().map(Keypair::address),
            misbehave,
            last_flood_ms: now_ms,
            proposal_due: None,
            last_commit_ms: now_ms,
            height_started_ms: now_ms,
            observed_view: 0,
            peer_height: tip.height,
            behind_since_ms: None,
            presence: Presence::default(),
            opened_ms: now_ms,
            sync_inflight_ms: None,
            tx_outbox: Vec::new(),
            tx_outbox_bytes: 0,
            changes: Vec::new(),
            now_ms,
            chain,
        })
    }

    /// Handles one input at `now_ms`, appending what the host must do to
    /// `out`. A storage failure is fatal: the host must stop the shard.
    pub fn handle(&mut self, now_ms: u64, input: Input, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        self.now_ms = self.now_ms.max(now_ms);
        let result = self.on_input(input, out);
        self.report_view_changes(out);
        self.note_behind();
        self.log_quarantine();
        result
    }

    /// The host's synced write (an [`Effect::Persist`]) finished at
    /// `now_ms` after `took_ms`: sustained slow writes quarantine the core.
    pub fn write_took(&mut self, now_ms: u64, took_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.quarantine.write_took(self.now_ms, took_ms);
        self.log_quarantine();
    }

    /// A certified block at `height` does not execute here.
    fn diverged(&mut self, height: u64, reason: String) {
        self.quarantine.block_diverged(height, reason);
        // Sync brings it back for the re-check.
        self.peer_height = self.peer_height.max(height);
    }

    /// Logs entering, changing and leaving quarantine.
    fn log_quarantine(&mut self) {
        let cause = self.quarantine.cause().map(|c| c.to_string());
        if cause == self.quarantine_logged {
            return;
        }
        let height = self.chain.tip().height;
        match &cause {
            Some(reason) => warn!(height, %reason, "quarantined: not proposing or voting until the cause clears"),
            None => info!(height, "quarantine lifted: proposing and voting again"),
        }
        self.quarantine_logged = cause;
    }

    /// Starts or ends the "behind" period after an input.
    fn note_behind(&mut self) {
        let behind = self.peer_height >= self.chain.tip().height.saturating_add(BEHIND_BLOCKS);
        match (behind, self.behind_since_ms) {
            (true, None) => self.behind_since_ms = Some(self.now_ms),
            (false, Some(_)) => self.behind_since_ms = None,
            _ => {}
        }
    }

    fn on_input(&mut self, input: Input, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        match input {
            Input::Start => self.start(out),
            Input::Gossip { kind, data } => self.on_gossip(kind, data, out),
            Input::Tick => {
                self.fire_timers(out)?;
                self.maybe_propose(out)?;
                self.flood(out);
                Ok(())
            }
            Input::SyncAnswer { request, answer } => self.on_sync_answer(request, answer, out),
        }
    }

    fn start(&mut self, out: &mut Vec<Effect>) -> Result<(), StorageError> {
        let mut actions = Vec::new();
        self.replica.start(&mut actions);
        self.perform_all(actions, out)?;
        // Learn where peers are, in case we were down while they moved on;
        // then check again every SYNC_RETRY_MS for as long as the shard runs.
        self.request_sync(out);
        let now = self.now_ms;
        self.timers.set(now.saturating_add(SYNC_RETRY_MS), Timer::Sync);
        self.timers.set(now.saturating_add(receipts::SCAN_INTERVAL_MS), Timer::ReceiptScan);
        self.timers.set(now.saturating_add(self.limits.beat_interval_ms), Timer::Beat);
        Ok(())
    }

    /// Evidence submitted by a client: pooled and gossiped (its hash and the
    /// offender), or why not.
    pub fn submit_evidence(
        &mut self,
        now_ms: u64,
        evidence: &Evidence,
        out: &mut Vec<Effect>,
    ) -> Result<(Hash, Address), String> {
        self.now_ms = self.now_ms.max(now_ms);
        let answer = self.offer_evidence(evidence, true, out).answer();
        self.report_view_changes(out);
        answer
    }

    /// When the host must next send [`Input::Tick`], if no input comes first.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.timers.next_ms()
    }

    /// What the shard publishes about itself.
    pub fn status(&self) -> ShardStatus {
        let tip = self.chain.tip();
        let committee = self.chain.committee();
        let me = self.replica.index();
        let window = self.limits.presence_window_ms;
        ShardStatus {
            shard: self.shard,
            validator_index: self.replica.index(),
            height: tip.height,
            last_block_hash: tip.hash,
            last_commit_unix_ms: self.last_commit_ms,
            view: self.replica.view(),
            next_leader: Some(committee.leader(tip.height.saturating_add(1), 0)),
            benched: committee.benched(),
            peer_height: self.peer_height.max(tip.height),
            behind_since_unix_ms: self.behind_since_ms,
            quorum_until_unix_ms: self
                .presence
                .quorum_until_ms(committee, me, window)
                .max(self.opened_ms.saturating_add(STARTUP_GRACE_MS)),
            heard_unix_ms: self.presence.heard_times(committee, me),
            presence_window_ms: window,
            base_fee_units: self.chain.base_fee().units(),
            throttled_senders: self.intake.tripped(self.now_ms),
            throttled_clients: self.intake.tripped_clients(self.now_ms),
            quarantined: self.quarantine.cause().map(|c| c.to_string()),
            mempool_txs: self.mempool.len(),
            mempool_bytes: self.mempool.bytes(),
            receipts_pooled: self.receipts.len(),
        }
    }

    /// The shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The replica (read-only: for checks and status).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The committed chain's store.
    pub fn store(&self) -> &S {
        self.chain.state()
    }

    /// The committee that decides the next height.
    pub fn committee(&self) -> &palisade_consensus::Committee {
        self.chain.committee()
    }

    /// The breaker on ourselves (read-only).
    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// The mempool (read-only).
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The receipt pool and its cursors (read-only).
    pub fn receipts(&self) -> &Receipts {
        &self.receipts
    }

    /// The evidence pool (read-only).
    pub fn evidence(&self) -> &EvidencePool {
        &self.evidence
    }

    /// Whether the periodic sync check, receipt scan and beat are still
    /// armed (a core that lost one would stop catching up, finding
    /// receipts, or saying its leader is alive, for good).
    pub fn periodic_timers_armed(&self) -> bool {
        [Timer::Sync, Timer::ReceiptScan, Timer::Beat].into_iter().all(|timer| self.timers.pending(timer))
    }

    /// Stops the core and gives its store back: everything else is
    /// volatile (a simulated crash).
    pub fn into_store(self) -> S {
        self.chain.into_store()
    }

    fn remember_rejection(&mut self, id: Hash, reason: String) {
        self.changes.push(ViewChange::TxRejected(id, reason));
    }

    /// Ends an input: what it changed in the pools goes out as one
    /// [`Effect::View`], in the order it happened within each source.
    fn report_view_changes(&mut self, out: &mut Vec<Effect>) {
        let mut changes = Vec::new();
        self.mempool.take_changes(&mut changes);
        changes.append(&mut self.changes);
        self.receipts.take_changes(&mut changes);
        if !changes.is_empty() {
            out.push(Effect::View(changes));
        }
    }
}
