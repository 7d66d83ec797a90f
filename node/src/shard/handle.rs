//! How the rest of the node reaches a shard: [`ShardHandle`].
//!
//! Each shard runs on its own thread (see [`crate::shard`]) and is reached
//! only through bounded queues: one for consensus gossip, one for
//! transactions (gossip and RPC), one for the answers to its own sync
//! requests, and one for control (evidence, shutdown), which the shard
//! serves first. A full queue refuses at once, never blocks the sender: a
//! flooded shard cannot slow the network task or any other shard. What the
//! shard publishes about itself ([`ShardStatus`], final blocks, and the
//! [`ReadView`] of its pools that RPC queries read) is read without asking
//! it, so a query never waits behind consensus work.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use palisade_consensus::CommitCertificate;
use palisade_ledger::{Block, Hash, ShardId, SignedTx};
use tokio::sync::{broadcast, oneshot};

use crate::mempool::Rejection;
use crate::net::GossipSource;
use crate::wire::{SyncRequest, SyncResponse, TopicKind};
pub use palisade_shard_core::intake::ClientKey;
pub use palisade_shard_core::{ReadView, ShardStatus, TxState};

/// How long an RPC caller waits for a shard to answer before giving up.
pub const SHARD_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Final blocks kept for slow WebSocket subscribers before they lag.
pub const FINAL_BLOCKS_BUFFERED: usize = 64;

/// A consensus or transaction message from gossip, not yet decoded.
#[derive(Debug)]
pub struct GossipInput {
    /// Which topic it came on.
    pub kind: TopicKind,
    /// The raw bytes (already size-checked by the network task).
    pub data: Vec<u8>,
    /// Where to report the verdict, so gossipsub scores the sender.
    pub source: GossipSource,
}

/// A transaction for the shard's mempool.
#[derive(Debug)]
pub enum TxInput {
    /// From gossip: report the verdict to the network.
    Gossip(GossipInput),
    /// From this node's RPC (one transaction, or a client's batch): answer
    /// the caller, and gossip what was admitted.
    Submit {
        /// The transactions, in the client's order.
        txs: Vec<SignedTx>,
        /// Who submitted them, when known (the intake breaker's key).
        client: Option<ClientKey>,
        /// The mempool's verdict on each, in order.
        reply: oneshot::Sender<Vec<Result<Hash, Rejection>>>,
    },
}

/// The answer to a sync request a shard made (or why there is none).
#[derive(Debug)]
pub struct SyncAnswer {
    /// What was asked.
    pub request: SyncRequest,
    /// The checked answer, or why there is none.
    pub answer: Result<SyncResponse, String>,
}

/// What the shard serves before anything else.
#[derive(Debug)]
pub enum Control {
    /// Evidence submitted over RPC: verify, pool and gossip it.
    SubmitEvidence {
        /// The evidence.
        evidence: Box<palisade_consensus::Evidence>,
        /// Its hash and the offender if pooled, else why not.
        reply: oneshot::Sender<Result<(Hash, palisade_ledger::Address), String>>,
    },
    /// Stop after finishing the input at hand.
    Shutdown,
}

/// A block this node committed, for subscribers.
#[derive(Clone, Debug)]
pub struct FinalBlock {
    /// The block.
    pub block: Arc<Block>,
    /// Its hash.
    pub hash: Hash,
    /// Proof of finality.
    pub certificate: Arc<CommitCertificate>,
}

/// Why a shard did not take an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardBusy {
    /// Its queue is full: retry shortly.
    #[error("shard {0} is busy (queue full); retry shortly")]
    Full(ShardId),
    /// It has stopped (the node is shutting down).
    #[error("shard {0} is not running")]
    Stopped(ShardId),
    /// It did not answer in time.
    #[error("shard {0} did not answer in time")]
    Timeout(ShardId),
}

/// The sending ends of a shard's queues, and what it publishes.
#[derive(Clone)]
pub struct ShardHandle {
    /// The shard.
    pub shard: ShardId,
    pub(crate) consensus: Sender<GossipInput>,
    pub(crate) txs: Sender<TxInput>,
    pub(crate) control: Sender<Control>,
    pub(crate) sync: Sender<SyncAnswer>,
    pub(crate) status: Arc<RwLock<ShardStatus>>,
    pub(crate) view: Arc<RwLock<ReadView>>,
    pub(crate) final_blocks: broadcast::Sender<FinalBlock>,
}

fn refused<T>(shard: ShardId, e: TrySendError<T>) -> ShardBusy {
    match e {
        TrySendError::Full(_) => ShardBusy::Full(shard),
        TrySendError::Disconnected(_) => ShardBusy::Stopped(shard),
    }
}

impl ShardHandle {
    /// The shard's latest published status.
    pub fn status(&self) -> ShardStatus {
        // A poisoned lock means the shard thread panicked mid-update; the
        // status it left is still the best we have.
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Subscribes to blocks this node commits on the shard from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FinalBlock> {
        self.final_blocks.subscribe()
    }

    /// Hands gossip to the shard, or gives it back (boxed: it is large) if
    /// the queue is full or the shard stopped.
    pub fn gossip(&self, input: GossipInput) -> Result<(), Box<TrySendError<GossipInput>>> {
        let sent = match input.kind {
            // Receipts are few (a batch per source block) and verified like
            // consensus messages, so they share that queue.
            TopicKind::Consensus | TopicKind::Receipts | TopicKind::Evidence => self.consensus.try_send(input),
            TopicKind::Txs => self.txs.try_send(TxInput::Gossip(input)).map_err(|e| match e {
                TrySendError::Full(TxInput::Gossip(g)) => TrySendError::Full(g),
                TrySendError::Disconnected(TxInput::Gossip(g)) => TrySendError::Disconnected(g),
                // We sent a Gossip; nothing else can come back.
                _ => unreachable!("try_send returns the value it was given"),
            }),
        };
        sent.map_err(Box::new)
    }

    /// Hands a sync answer to the shard (dropped if its sync queue is full:
    /// it asks again on its own).
    pub fn synced(&self, answer: SyncAnswer) -> Result<(), ShardBusy> {
        self.sync.try_send(answer).map_err(|e| refused(self.shard, e))
    }

    /// Submits a client's transactions (one, or a batch) to the shard's
    /// mempool as one input (one queue slot, one batch signature check):
    /// the mempool's verdict on each, in order (admitted ones are gossiped).
    pub async fn submit_all(
        &self,
        txs: Vec<SignedTx>,
        client: Option<ClientKey>,
    ) -> Result<Vec<Result<Hash, Rejection>>, ShardBusy> {
        let (reply, answer) = oneshot::channel();
        self.txs.try_send(TxInput::Submit { txs, client, reply }).map_err(|e| refused(self.shard, e))?;
        self.await_reply(answer).await
    }

    /// Where a transaction stands in the shard's memory, from its read view
    /// (as of the last input the shard finished).
    pub fn tx_state(&self, id: &Hash) -> TxState {
        self.read_view().tx_state(id)
    }

    /// Whether a receipt waits in the shard's receipt pool, from its read
    /// view.
    pub fn receipt_pooled(&self, id: &Hash) -> bool {
        self.read_view().receipt_pooled(id)
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, ReadView> {
        // Poisoned only if the shard thread panicked mid-update; what it
        // left is still the best answer there is.
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers equivocation evidence to the shard's evidence pool.
    pub async fn submit_evidence(
        &self,
        evidence: palisade_consensus::Evidence,
    ) -> Result<Result<(Hash, palisade_ledger::Address), String>, ShardBusy> {
        let (reply, answer) = oneshot::channel();
        self.control
            .try_send(Control::SubmitEvidence { evidence: Box::new(evidence), reply })
            .map_err(|e| refused(self.shard, e))?;
        self.await_reply(answer).await
    }

    async fn await_reply<T>(&self, answer: oneshot::Receiver<T>) -> Result<T, ShardBusy> {
        match tokio::time::timeout(SHARD_REPLY_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ShardBusy::Stopped(self.shard)),
            Err(_) => Err(ShardBusy::Timeout(self.shard)),
        }
    }

    /// Asks the shard to stop.
    pub fn shutdown(&self) {
        // The control queue is small and served first; if it is full the
        // thread is already busy with control and will see the closed queues.
        let _ = self.control.try_send(Control::Shutdown);
    }
}

/// Capacities of a shard's queues.
#[derive(Clone, Copy, Debug)]
pub struct QueueBounds {
    /// Consensus gossip messages waiting.
    pub consensus: usize,
    /// Transactions waiting (gossip and RPC).
    pub txs: usize,
    /// Control inputs waiting.
    pub control: usize,
    /// Sync answers waiting (a shard has one block sync and one scan per
    /// other shard out at a time, so this is never short).
    pub sync: usize,
}

impl Default for QueueBounds {
    fn default() -> Self {
        QueueBounds { consensus: 4_096, txs: 16_384, control: 256, sync: 256 }
    }
}

/// The receiving ends of a shard's queues, owned by its thread.
pub struct ShardQueues {
    /// Consensus gossip.
    pub consensus: crossbeam_channel::Receiver<GossipInput>,
    /// Transactions.
    pub txs: crossbeam_channel::Receiver<TxInput>,
    /// Control, served first.
    pub control: crossbeam_channel::Receiver<Control>,
    /// Answers to the shard's sync requests.
    pub sync: crossbeam_channel::Receiver<SyncAnswer>,
    /// Where the shard publishes its status.
    pub status: Arc<RwLock<ShardStatus>>,
    /// Where it keeps the read view of its pools.
    pub view: Arc<RwLock<ReadView>>,
    /// Where it publishes final blocks.
    pub final_blocks: broadcast::Sender<FinalBlock>,
}

/// A shard's queues: the handle for everyone else, the receivers for its thread.
pub fn shard_channel(initial: ShardStatus, bounds: QueueBounds) -> (ShardHandle, ShardQueues) {
    let shard = initial.shard;
    let (consensus_tx, consensus_rx) = crossbeam_channel::bounded(bounds.consensus);
    let (txs_tx, txs_rx) = crossbeam_channel::bounded(bounds.txs);
    let (control_tx, control_rx) = crossbeam_channel::bounded(bounds.control);
    let (sync_tx, sync_rx) = crossbeam_channel::bounded(bounds.sync);
    let status = Arc::new(RwLock::new(initial));
    let view = Arc::new(RwLock::new(ReadView::default()));
    let (final_blocks, _) = broadcast::channel(FINAL_BLOCKS_BUFFERED);
    let handle = ShardHandle {
        shard,
        consensus: consensus_tx,
        txs: txs_tx,
        control: control_tx,
        sync: sync_tx,
        status: status.clone(),
        view: view.clone(),
        final_blocks: final_blocks.clone(),
    };
    let queues = ShardQueues {
        consensus: consensus_rx,
        txs: txs_rx,
        control: control_rx,
        sync: sync_rx,
        status,
        view,
        final_blocks,
    };
    (handle, queues)
}

#[cfg(test)]
mod tests {
    use palisade_ledger::Hash;

    use super::*;

    /// The bug a queue of their own fixes: sync answers shared the control
    /// queue with RPC queries (wallets poll every 100 ms), and were dropped
    /// whenever the queue filled, so a lagging shard stopped catching up.
    #[test]
    fn queries_never_crowd_out_sync_answers() {
        let status = ShardStatus::initial(0, 0, Hash::ZERO, 0);
        let (handle, queues) = shard_channel(status, QueueBounds { control: 2, ..QueueBounds::default() });
        while handle.control.try_send(Control::Shutdown).is_ok() {}
        assert_eq!(queues.control.len(), 2, "the control queue is full");
        let answer = SyncAnswer { request: SyncRequest::blocks(0, 1), answer: Err("timed out".to_owned()) };
        assert!(handle.synced(answer).is_ok(), "a sync answer still gets through");
        assert_eq!(queues.sync.try_recv().map(|a| a.request.from_height).ok(), Some(1));
    }

    /// The bug the read view fixes: transaction and receipt queries were
    /// answered by the shard thread through its control queue, so they
    /// waited behind whatever consensus work it was doing, and timed out
    /// (after SHARD_REPLY_TIMEOUT) when it was busy. No thread serves these
    /// queues here, yet the queries answer at once.
    #[test]
    fn queries_never_wait_for_the_shard_thread() {
        use palisade_shard_core::ViewChange;
        let (handle, queues) = shard_channel(ShardStatus::initial(0, 0, Hash::ZERO, 0), QueueBounds::default());
        let (tx, receipt) = (Hash::plain(b"tx"), Hash::plain(b"receipt"));
        assert_eq!(handle.tx_state(&tx), TxState::Unknown);
        queues.view.write().unwrap().apply([ViewChange::TxPending(tx), ViewChange::ReceiptPooled(receipt)]);
        assert_eq!(handle.tx_state(&tx), TxState::Pending);
        assert!(handle.receipt_pooled(&receipt));
    }
}
