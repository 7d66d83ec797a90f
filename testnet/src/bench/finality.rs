//! When each transaction became final: per shard, one WebSocket
//! subscription to final blocks on a validator of that shard; each notice is
//! timestamped on arrival, then its block is fetched over HTTP and its
//! transaction ids are matched to what was sent.
//!
//! The shard does not wait for a slow subscriber (it skips notices), and a
//! full local queue drops notices too: a height gap is filled by fetching
//! the missing blocks, timestamped with the arrival of the notice that
//! revealed the gap (an upper bound on their latency).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use palisade_ledger::api::{FinalBlockNotice, method};
use palisade_ledger::{Hash, ShardId};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::accounts::first_of_shard;
use super::load::Run;
use super::rpc::Node;

/// Notices queued between a subscription and its block fetcher.
const NOTICE_QUEUE: usize = 4_096;
/// Most missing blocks fetched for one height gap; the rest are counted as
/// missed.
const MAX_GAP_FETCH: u64 = 256;
/// Attempts to fetch one block.
const FETCH_ATTEMPTS: u32 = 3;
/// Between two attempts.
const FETCH_RETRY: Duration = Duration::from_millis(100);
/// How long the watchers may take to finish once told to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
/// `run`. Returns once every subscription is live.
pub async fn watch(nodes: &[Node], shard_count: u32, run: &Arc<Run>) -> Result<Watchers> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for shard in 0..shard_count {
        let node = first_of_shard(nodes, shard)?.clone();
        let ws = WsClientBuilder::default()
            .build(&node.ws_url)
            .await
            .with_context(|| format!("WebSocket to {} ({})", node.name, node.ws_url))?;
        let subscription: Subscription<FinalBlockNotice> = ws
            .subscribe(method::SUBSCRIBE_FINAL_BLOCKS, rpc_params![shard], method::UNSUBSCRIBE_FINAL_BLOCKS)
            .await
            .with_context(|| format!("subscribing to shard {shard}'s final blocks on {}", node.name))?;
        let (notices, queue) = mpsc::channel(NOTICE_QUEUE);
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let _ws = ws;
            read_notices(subscription, notices, &mut stopped).await;
        }));
        let run = Arc::clone(run);
        tasks.push(tokio::spawn(async move { fetch_blocks(&node, shard, queue, &run).await }));
    }
    Ok(Watchers { stop, tasks })
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

/// Forwards notices with their arrival time until told to stop or the
/// subscription ends.
async fn read_notices(
    mut subscription: Subscription<FinalBlockNotice>,
    notices: mpsc::Sender<(FinalBlockNotice, Instant)>,
    stopped: &mut watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            next = subscription.next() => match next {
                Some(Ok(notice)) => {
                    // A full queue drops the notice; its height gap is filled later.
                    let _ = notices.try_send((notice, Instant::now()));
                }
                Some(Err(_)) => continue,
                None => break,
            },
        }
    }
    let _ = subscription.unsubscribe().await;
}

/// Fetches the blocks of queued notices (and of height gaps) and marks
/// their transactions final, until the queue closes.
async fn fetch_blocks(node: &Node, shard: ShardId, mut queue: mpsc::Receiver<(FinalBlockNotice, Instant)>, run: &Run) {
    let mut last: Option<u64> = None;
    while let Some((notice, arrival)) = queue.recv().await {
        if last.is_some_and(|last| notice.height <= last) {
            continue;
        }
        if let Some(last) = last {
            let first_missing = last.saturating_add(1);
            let missing = notice.height.saturating_sub(first_missing);
            let fetched = missing.min(MAX_GAP_FETCH);
            run.missed_blocks(missing - fetched);
            for height in notice.height.saturating_sub(fetched)..notice.height {
                fetch_one(node, shard, height, arrival, run).await;
            }
        }
        if notice.tx_count > 0 {
            fetch_one(node, shard, notice.height, arrival, run).await;
        }
        last = Some(notice.height);
    }
}

/// Fetches one block and marks its transactions final at `arrival`.
async fn fetch_one(node: &Node, shard: ShardId, height: u64, arrival: Instant, run: &Run) {
    for attempt in 0..FETCH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(FETCH_RETRY).await;
        }
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
