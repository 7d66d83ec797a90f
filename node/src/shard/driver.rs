//! The shard thread: a thin host around the shard's [`ShardCore`]. It
//! serves the shard's queues (control first, then sync answers, consensus
//! gossip, transactions) one input at a time, hands each to the core with
//! the time, and carries out the core's effects in order: a
//! [`Effect::Persist`] is written (synced) before any later effect, so a
//! validator never sends a vote its store does not remember; messages go to
//! libp2p, verdicts to gossipsub's scoring, final blocks to subscribers,
//! pool changes to the read view RPC queries read, notes to Prometheus.
//!
//! Each shard has its own OS thread rather than a task on the shared async
//! runtime: validating and committing a block is CPU and disk work (batch
//! signature checks, a synced RocksDB write) that would otherwise stall the
//! network task and every other shard. With a thread and bounded queues per
//! shard, a shard that is flooded, halted or syncing delays nobody else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::select_biased;
use palisade_consensus::SafetyState;
use palisade_ledger::ShardId;
use palisade_ledger::genesis::Genesis;
use palisade_ledger::store::{Store, StoreError};
use palisade_shard_core::{Committed, Effect, Input, Note, OpenError, ShardCore, ShardStatus, StorageError};
use tracing::{debug, error, info, info_span};

use super::handle::{Control, FinalBlock, GossipInput, ShardQueues, SyncAnswer, TxInput};
use super::store::RocksChain;
use crate::health::unix_ms;
use crate::metrics::{Metrics, ReasonLabel, ShardLabel};
use crate::net::{GossipSource, NetHandle};

/// Inputs served per wake-up before the core's timers are checked again.
const BURST: usize = 256;
/// Longest wait for an input when no timer is pending.
const IDLE_WAIT: Duration = Duration::from_secs(1);

pub use palisade_shard_core::max_block_bytes;

/// Everything a shard thread needs to start: its core's configuration.
pub use palisade_shard_core::CoreConfig as ShardConfig;

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
        source: StorageError,
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

/// Starts the shard's thread. Returns once the core is restored from the
/// store (so configuration and storage errors surface here), with the thread
/// running.
pub fn spawn(
    config: ShardConfig,
    store: Arc<Store>,
    queues: ShardQueues,
    net: NetHandle,
    metrics: Arc<Metrics>,
    clock_offset_ms: i64,
) -> Result<std::thread::JoinHandle<Result<(), ShardError>>, ShardError> {
    let shard = config.shard;
    let mut driver = ShardDriver::open(config, store, queues, net, metrics, clock_offset_ms)?;
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

/// The host's clock for its core: Unix milliseconds that never go back
/// (the wall clock at start, then a monotonic clock), shifted by a dev
/// chain's test-only offset.
struct Clock {
    started: Instant,
    started_unix_ms: u64,
}

impl Clock {
    fn new(offset_ms: i64) -> Clock {
        let now = unix_ms();
        let started_unix_ms = if offset_ms >= 0 {
            now.saturating_add(offset_ms.unsigned_abs())
        } else {
            now.saturating_sub(offset_ms.unsigned_abs())
        };
        Clock { started: Instant::now(), started_unix_ms }
    }

    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.started_unix_ms.saturating_add(elapsed)
    }
}

/// One shard's host.
pub struct ShardDriver {
    shard: ShardId,
    core: ShardCore<RocksChain>,
    store: Arc<Store>,
    queues: ShardQueues,
    net: NetHandle,
    metrics: Arc<Metrics>,
    label: ShardLabel,
    clock: Clock,
    /// The gossip input being handled: where its verdict goes.
    source: Option<GossipSource>,
    /// Inputs the host owes the core (answers to requests it could not send).
    owed: VecDeque<Input>,
    stopping: bool,
}

impl ShardDriver {
    /// Opens the chain and restores the core from the store.
    pub fn open(
        config: ShardConfig,
        store: Arc<Store>,
        queues: ShardQueues,
        net: NetHandle,
        metrics: Arc<Metrics>,
        clock_offset_ms: i64,
    ) -> Result<ShardDriver, ShardError> {
        let shard = config.shard;
        let genesis = config.genesis.clone();
        let store_err = |e: StoreError| ShardError::Store { shard, source: StorageError(e.to_string()) };
        if genesis.consensus_committee(shard).is_none() {
            return Err(ShardError::Config { shard, reason: "genesis has no such shard".into() });
        }
        let chain = RocksChain::open(store.clone(), &genesis, shard).map_err(store_err)?;
        let persisted = load_safety_state(&store, shard, max_block_bytes(&genesis))?;
        let clock = Clock::new(clock_offset_ms);
        let core = ShardCore::open(config, chain, persisted, clock.now_ms()).map_err(|e| match e {
            OpenError::Storage(source) => ShardError::Store { shard, source },
            OpenError::Config(reason) => ShardError::Config { shard, reason },
        })?;
        Ok(ShardDriver {
            shard,
            core,
            store,
            queues,
            net,
            metrics,
            label: ShardLabel { shard },
            clock,
            source: None,
            owed: VecDeque::new(),
            stopping: false,
        })
    }

    /// Serves the queues until shut down (or a queue's senders are all gone).
    pub fn run(&mut self) -> Result<(), ShardError> {
        let span = info_span!("shard", shard = self.shard);
        let _entered = span.enter();
        info!(height = self.core.status().height, validator = ?self.core.replica().index(), "shard started");
        self.step(Input::Start)?;
        self.publish_status();
        while !self.stopping {
            self.serve_one()?;
            for _ in 0..BURST {
                if self.stopping || !self.serve_ready()? {
                    break;
                }
            }
            self.step(Input::Tick)?;
            self.publish_status();
        }
        info!(height = self.core.status().height, "shard stopped");
        Ok(())
    }

    /// Waits for one input or the core's next deadline.
    fn serve_one(&mut self) -> Result<(), ShardError> {
        if let Some(input) = self.owed.pop_front() {
            return self.step(input);
        }
        let now = self.clock.now_ms();
        let wait = self.core.next_deadline_ms().map_or(IDLE_WAIT, |at| Duration::from_millis(at.saturating_sub(now)));
        let q = &self.queues;
        let (control, sync, consensus, txs) = (q.control.clone(), q.sync.clone(), q.consensus.clone(), q.txs.clone());
        select_biased! {
            recv(control) -> input => match input {
                Ok(input) => self.on_control(input)?,
                Err(_) => self.stopping = true,
            },
            recv(sync) -> answer => if let Ok(answer) = answer { self.on_sync_answer(answer)? },
            recv(consensus) -> input => if let Ok(input) = input { self.on_gossip(input)? },
            recv(txs) -> input => if let Ok(input) = input { self.on_tx(input)? },
            default(wait) => {}
        }
        Ok(())
    }

    /// Serves one ready input without waiting; false if none was ready.
    fn serve_ready(&mut self) -> Result<bool, ShardError> {
        if let Some(input) = self.owed.pop_front() {
            self.step(input)?;
        } else if let Ok(input) = self.queues.control.try_recv() {
            self.on_control(input)?;
        } else if let Ok(answer) = self.queues.sync.try_recv() {
            self.on_sync_answer(answer)?;
        } else if let Ok(input) = self.queues.consensus.try_recv() {
            self.on_gossip(input)?;
        } else if let Ok(input) = self.queues.txs.try_recv() {
            self.on_tx(input)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn store_err(&self, source: StorageError) -> ShardError {
        ShardError::Store { shard: self.shard, source }
    }

    fn on_control(&mut self, input: Control) -> Result<(), ShardError> {
        match input {
            Control::Shutdown => self.stopping = true,
            Control::SubmitEvidence { evidence, reply } => {
                let mut out = Vec::new();
                let answer = self.core.submit_evidence(self.clock.now_ms(), &evidence, &mut out);
                self.perform_all(out)?;
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    fn on_sync_answer(&mut self, answer: SyncAnswer) -> Result<(), ShardError> {
        let SyncAnswer { request, answer } = answer;
        self.step(Input::SyncAnswer { request, answer })
    }

    /// Gossip: the core decodes, verifies and judges it; its verdict goes
    /// back to gossipsub for scoring.
    fn on_gossip(&mut self, input: GossipInput) -> Result<(), ShardError> {
        let GossipInput { kind, data, source } = input;
        self.source = Some(source);
        let result = self.step(Input::Gossip { kind, data });
        self.source = None;
        result
    }

    fn on_tx(&mut self, input: TxInput) -> Result<(), ShardError> {
        match input {
            TxInput::Gossip(gossip) => self.on_gossip(gossip),
            TxInput::Submit { txs, client, reply } => {
                let mut out = Vec::new();
                let result =
                    self.core.submit_txs(self.clock.now_ms(), txs, client, &mut out).map_err(|e| self.store_err(e))?;
                self.perform_all(out)?;
                let _ = reply.send(result);
                Ok(())
            }
        }
    }

    /// Hands `input` to the core and carries out its effects.
    fn step(&mut self, input: Input) -> Result<(), ShardError> {
        let mut out = Vec::new();
        let result = self.core.handle(self.clock.now_ms(), input, &mut out);
        // What the core asked before it failed is still owed (a persist
        // above all), then the failure stops the shard.
        self.perform_all(out)?;
        result.map_err(|e| self.store_err(e))
    }

    /// Carries out effects in order: nothing after a `Persist` runs before
    /// it is durable.
    fn perform_all(&mut self, effects: Vec<Effect>) -> Result<(), ShardError> {
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    let started = Instant::now();
                    self.store
                        .save_safety_state(self.shard, &state.encode())
                        .map_err(|e| self.store_err(StorageError(e.to_string())))?;
                    // Sustained slow synced writes quarantine the core.
                    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    self.core.write_took(self.clock.now_ms(), took_ms);
                }
                Effect::Publish { shard, kind, data } => {
                    if !self.net.publish(shard, kind, data) {
                        debug!(
                            to = shard,
                            kind = kind.label(),
                            "network queue full; message dropped (view changes, sync and scans recover)"
                        );
                    }
                }
                Effect::Verdict(verdict) => {
                    if let Some(source) = self.source.take() {
                        self.net.report(source, verdict);
                    }
                }
                Effect::Request(request) => {
                    if !self.net.sync(request.clone()) {
                        let answer = Err("network queue full".to_owned());
                        self.owed.push_back(Input::SyncAnswer { request, answer });
                    }
                }
                Effect::Committed(committed) => self.on_committed(*committed),
                Effect::Note(note) => self.count(note),
                Effect::View(changes) => self.queues.view.write().unwrap_or_else(|e| e.into_inner()).apply(changes),
            }
        }
        Ok(())
    }

    /// Metrics and subscribers after a block became final here.
    fn on_committed(&mut self, committed: Committed) {
        let Committed { block, hash, certificate, bytes, synced, latency_ms, credited, emitted, slashed, .. } =
            committed;
        let m = &self.metrics;
        let label = &self.label;
        m.slashed.get_or_create(label).inc_by(slashed.len() as u64);
        m.receipts_credited.get_or_create(label).inc_by(credited as u64);
        if emitted > 0 {
            m.receipts_emitted.get_or_create(label).inc_by(emitted as u64);
        }
        m.commit_latency.get_or_create(label).observe(latency_ms as f64 / 1000.0);
        m.block_txs.get_or_create(label).observe(block.txs.len() as f64);
        m.block_bytes.get_or_create(label).observe(bytes as f64);
        m.committed_txs.get_or_create(label).inc_by(block.txs.len() as u64);
        if synced {
            m.sync_blocks.get_or_create(label).inc();
        }
        // Nobody listening is fine.
        let _ = self.queues.final_blocks.send(FinalBlock {
            block: Arc::new(block),
            hash,
            certificate: Arc::new(certificate),
        });
    }

    fn count(&self, note: Note) {
        let m = &self.metrics;
        match note {
            Note::GossipRefused { kind, reason } => m.gossip_refused(self.shard, kind, reason),
            Note::TxRejected(reason) => {
                m.mempool_rejected.get_or_create(&ReasonLabel { shard: self.shard, reason }).inc();
            }
            Note::EvidenceDetected { .. } => {
                m.evidence.get_or_create(&self.label).inc();
            }
            Note::ViewChanged { by, .. } => {
                m.view_changes.get_or_create(&self.label).inc_by(by);
            }
            Note::PeerHeight(height) => {
                m.sync_target.get_or_create(&self.label).set(gauge(height));
            }
        }
    }

    fn publish_status(&mut self) {
        let status = self.core.status();
        let m = &self.metrics;
        m.height.get_or_create(&self.label).set(gauge(status.height));
        m.view.get_or_create(&self.label).set(gauge(status.view));
        m.benched.get_or_create(&self.label).set(gauge(status.benched.len()));
        m.base_fee.get_or_create(&self.label).set(gauge(status.base_fee_units));
        m.throttled.get_or_create(&self.label).set(gauge(status.throttled_senders));
        m.throttled_clients.get_or_create(&self.label).set(gauge(status.throttled_clients));
        m.quarantined.get_or_create(&self.label).set(i64::from(status.quarantined.is_some()));
        m.mempool_txs.get_or_create(&self.label).set(gauge(status.mempool_txs));
        m.receipts_pooled.get_or_create(&self.label).set(gauge(status.receipts_pooled));
        m.mempool_bytes.get_or_create(&self.label).set(gauge(status.mempool_bytes));
        *self.queues.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }
}

/// A count as a Prometheus gauge value.
fn gauge(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// The safety state the replica last persisted for `shard` (in any layout a
/// node ever wrote; its prepared block at most `max_block_bytes`).
fn load_safety_state(store: &Store, shard: ShardId, max_block_bytes: usize) -> Result<Option<SafetyState>, ShardError> {
    let stored =
        store.safety_state(shard).map_err(|e| ShardError::Store { shard, source: StorageError(e.to_string()) })?;
    match stored {
        None => Ok(None),
        Some(bytes) => SafetyState::decode(&bytes, max_block_bytes)
            .map(Some)
            .map_err(|e| ShardError::Config { shard, reason: format!("stored safety state does not decode: {e}") }),
    }
}

/// The status a shard publishes before its thread starts.
pub fn initial_status(shard: ShardId, store: &Store, genesis: &Genesis) -> Result<ShardStatus, StoreError> {
    let tip = store.tip(shard)?;
    Ok(ShardStatus::initial(
        shard,
        tip.map_or(0, |t| t.height),
        tip.map_or_else(|| genesis.hash(), |t| t.hash),
        unix_ms(),
    ))
}

#[cfg(test)]
mod tests {
    use palisade_consensus::PreparedCertificate;
    use palisade_ledger::codec;

    use super::*;

    /// A validator upgraded from a node that wrote the unversioned record
    /// must read it back: losing it would let it vote twice in a slot.
    #[test]
    fn safety_records_of_both_layouts_load_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (shard, max_block_bytes) = (1, 1_000);
        assert_eq!(load_safety_state(&store, shard, max_block_bytes).unwrap(), None);

        let mut state = SafetyState::new(4);
        state.view = 2;
        state.prepare_vote = Some([7; 32]);
        // The previous node's record: the bare encoding of the state's fields.
        let unversioned = codec::encode(&(
            state.height,
            state.view,
            state.proposed,
            state.prepare_vote,
            state.commit_vote,
            None::<PreparedCertificate>,
        ));
        store.save_safety_state(shard, &unversioned).unwrap();
        assert_eq!(load_safety_state(&store, shard, max_block_bytes).unwrap(), Some(state.clone()));

        state.prepared = Some(PreparedCertificate { height: 4, view: 1, block_hash: [7; 32], signatures: Vec::new() });
        state.prepared_block = Some(vec![1; max_block_bytes]);
        store.save_safety_state(shard, &state.encode()).unwrap();
        assert_eq!(load_safety_state(&store, shard, max_block_bytes).unwrap(), Some(state));
        assert!(matches!(load_safety_state(&store, shard, max_block_bytes - 1), Err(ShardError::Config { .. })));
    }
}
