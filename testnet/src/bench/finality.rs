//! When each transaction became final: per shard, one WebSocket
//! subscription to final blocks on a validator of that shard; each notice is
//! timestamped on arrival, then its block is fetched over HTTP and its
//! transaction ids are matched to what was sent. When that validator goes
//! away (killed by `failover` or `chaos`), the subscription moves to the
//! shard's next validator, and the blocks final meanwhile are fetched as a
//! height gap (block fetches, too, go to the next validator when one does
//! not answer).
//!
//! The shard does not wait for a slow subscriber (it skips notices), and a
//! full local queue drops notices too: a height gap is filled by fetching
//! the missing blocks, timestamped with the arrival of the notice that
//! revealed the gap (an upper bound on their latency).
//!
//! Cross-shard transfers: a block's JSON does not list the receipts it
//! credits, so every [`CREDIT_POLL`] each destination's validator is asked
//! (`palisade_receipt`, batched) about the transfers final at their source
//! and not yet seen credited; a credited one is done at the arrival of the
//! notice of the destination height the answer names (every notice's
//! arrival is kept, see [`Run::arrived`]), so how often it is asked does
//! not change its latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use palisade_ledger::api::{FinalBlockNotice, ReceiptResponse, method};
use palisade_ledger::{Hash, ShardId};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::accounts::first_of_shard;
use super::load::Run;
use super::rpc::Node;
use crate::local::MAX_BATCH;

/// Notices queued between a subscription and its block fetcher.
const NOTICE_QUEUE: usize = 4_096;
/// Most missing blocks fetched for one height gap; the rest are counted as
/// missed.
const MAX_GAP_FETCH: u64 = 256;
/// Attempts to fetch one block.
const FETCH_ATTEMPTS: usize = 3;
/// Between two attempts.
const FETCH_RETRY: Duration = Duration::from_millis(100);
/// Before subscribing again, on the shard's next validator, once a
/// subscription ended or could not be made.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(100);
/// How long the watchers may take to finish once told to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often each destination is asked which transfers it credited.
pub const CREDIT_POLL: Duration = Duration::from_millis(200);
/// Most receipts asked about per destination per poll.
const MAX_CREDIT_QUERIES: usize = 4 * MAX_BATCH;

/// The ids of a block's transactions: all the bench reads of a block.
#[derive(Deserialize)]
struct BlockIds {
    txs: Vec<TxId>,
}

#[derive(Deserialize)]
struct TxId {
    id: Hash,
}

/// The running subscriptions and fetchers of a run.
pub struct Watchers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Subscribes to every shard's final blocks and starts matching them to
/// `run`, and, if `cross_shard`, polling each shard for the credits of
/// cross-shard transfers. Returns once every subscription is live.
pub async fn watch(nodes: &[Node], shard_count: u32, run: &Arc<Run>, cross_shard: bool) -> Result<Watchers> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for shard in 0..shard_count {
        let first = first_of_shard(nodes, shard)?.clone();
        // The first validator first: its subscription is live on return.
        let mut members: Vec<Node> =
            nodes.iter().filter(|n| n.shard == shard && n.name != first.name).cloned().collect();
        members.insert(0, first);
        let members: Arc<[Node]> = members.into();
        let live = subscribe(&members[0], shard).await?;
        let (notices, queue) = mpsc::channel(NOTICE_QUEUE);
        if cross_shard {
            let (members, run, mut stopped) = (Arc::clone(&members), Arc::clone(run), stopped.clone());
            tasks.push(tokio::spawn(async move { poll_credits(&members, shard, &run, &mut stopped).await }));
        }
        let (following, mut stopped) = (Arc::clone(&members), stopped.clone());
        tasks.push(tokio::spawn(async move { follow(&following, shard, live, notices, &mut stopped).await }));
        let run = Arc::clone(run);
        tasks.push(tokio::spawn(async move { fetch_blocks(&members, shard, queue, &run).await }));
    }
    Ok(Watchers { stop, tasks })
}

/// A live subscription, with the connection it runs on.
type Live = (WsClient, Subscription<FinalBlockNotice>);

/// Subscribes to `shard`'s final blocks on `node`.
async fn subscribe(node: &Node, shard: ShardId) -> Result<Live> {
    let ws = WsClientBuilder::default()
        .build(&node.ws_url)
        .await
        .with_context(|| format!("WebSocket to {} ({})", node.name, node.ws_url))?;
    let subscription = ws
        .subscribe(method::SUBSCRIBE_FINAL_BLOCKS, rpc_params![shard], method::UNSUBSCRIBE_FINAL_BLOCKS)
        .await
        .with_context(|| format!("subscribing to shard {shard}'s final blocks on {}", node.name))?;
    Ok((ws, subscription))
}

/// Forwards `shard`'s notices from `live` (on `members[0]`), then from the
/// next member each time a subscription ends, until told to stop.
async fn follow(
    members: &[Node],
    shard: ShardId,
    live: Live,
    notices: mpsc::Sender<(FinalBlockNotice, Instant)>,
    stopped: &mut watch::Receiver<bool>,
) {
    let mut live = Some(live);
    // Bounded: it ends when told to stop, and waits between attempts.
    for next in 1.. {
        if let Some((_ws, subscription)) = live.take()
            && read_notices(subscription, &notices, stopped).await
        {
            return;
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
        live = subscribe(&members[next % members.len()], shard).await.ok();
    }
}

impl Watchers {
    /// Stops the subscriptions, lets the fetchers finish what is queued
    /// (for at most [`STOP_GRACE`]), and aborts what is left.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Forwards notices with their arrival time until the subscription ends
/// (false) or the watchers are told to stop (true).
async fn read_notices(
    mut subscription: Subscription<FinalBlockNotice>,
    notices: &mpsc::Sender<(FinalBlockNotice, Instant)>,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            next = subscription.next() => match next {
                Some(Ok(notice)) => {
                    // A full queue drops the notice; its height gap is filled later.
                    let _ = notices.try_send((notice, Instant::now()));
                }
                Some(Err(_)) => continue,
                None => return false,
            },
        }
    }
    let _ = subscription.unsubscribe().await;
    true
}

/// Fetches the blocks of queued notices (and of height gaps) and marks
/// their transactions final, until the queue closes.
async fn fetch_blocks(
    members: &[Node],
    shard: ShardId,
    mut queue: mpsc::Receiver<(FinalBlockNotice, Instant)>,
    run: &Run,
) {
    let mut last: Option<u64> = None;
    // The member that answered last: asked first.
    let mut answering = 0usize;
    while let Some((notice, arrival)) = queue.recv().await {
        if last.is_some_and(|last| notice.height <= last) {
            continue;
        }
        run.arrived(shard, notice.height, arrival);
        if let Some(last) = last {
            let first_missing = last.saturating_add(1);
            let missing = notice.height.saturating_sub(first_missing);
            let kept = missing.min(super::book::MAX_ARRIVALS_PER_SHARD as u64);
            for height in notice.height.saturating_sub(kept)..notice.height {
                run.arrived(shard, height, arrival);
            }
            let fetched = missing.min(MAX_GAP_FETCH);
            run.missed_blocks(missing - fetched);
            for height in notice.height.saturating_sub(fetched)..notice.height {
                fetch_one(members, &mut answering, shard, height, arrival, run).await;
            }
        }
        if notice.tx_count > 0 {
            fetch_one(members, &mut answering, shard, notice.height, arrival, run).await;
        }
        last = Some(notice.height);
    }
}

/// Fetches one block from one of `members` (first the one that answered
/// last, `answering`; the next one after a failed attempt) and marks its
/// transactions final at `arrival`.
async fn fetch_one(members: &[Node], answering: &mut usize, shard: ShardId, height: u64, arrival: Instant, run: &Run) {
    for attempt in 0..FETCH_ATTEMPTS.max(members.len()) {
        if attempt > 0 {
            tokio::time::sleep(FETCH_RETRY).await;
            *answering = answering.wrapping_add(1);
        }
        let Some(node) = members.get(*answering % members.len().max(1)) else { return };
        // Only the ids are decoded (the block's JSON is parsed once, into them).
        match node.client.call::<Option<BlockIds>>(method::BLOCK, json!({"shard": shard, "height": height})).await {
            Ok(Some(block)) => {
                run.finalized(block.txs.iter().map(|tx| &tx.id), arrival);
                return;
            }
            Ok(None) | Err(_) => continue,
        }
    }
    run.missed_blocks(1);
}

/// Until told to stop, asks a validator of `shard` (`members`, the next one
/// after a failed poll) every [`CREDIT_POLL`] which of the transfers to
/// `shard` final at their source it credited, and marks them.
async fn poll_credits(members: &[Node], shard: ShardId, run: &Run, stopped: &mut watch::Receiver<bool>) {
    let mut asked = 0usize;
    let mut tick = tokio::time::interval(CREDIT_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        let ids = run.awaiting_credit(shard, MAX_CREDIT_QUERIES);
        for chunk in ids.chunks(MAX_BATCH) {
            let params: Vec<_> = chunk.iter().map(|id| json!({"id": id.to_hex(), "shard": shard})).collect();
            // A lost poll is asked again at the next tick, of the next member.
            let Some(node) = members.get(asked % members.len().max(1)) else { return };
            let Ok(answers) = node.client.batch::<ReceiptResponse, _>(method::RECEIPT, params).await else {
                asked = asked.wrapping_add(1);
                continue;
            };
            for answer in answers.into_iter().flatten() {
                if let ReceiptResponse::Credited { id, height, .. } = answer {
                    run.credited(&id, shard, height);
                }
            }
        }
    }
}
