//! What a local network is doing: each node's process and what its RPC
//! reports, and per shard the view across its validators.

use std::time::Duration;

use palisade_ledger::ShardId;
use palisade_ledger::api::StatusResponse;
use palisade_ledger::api::client::Client;
use serde::Serialize;

use super::LocalNet;
use super::process::{ProcessState, state_of};

/// How long `status` waits for one node's answer: a paused node never
/// answers, and must not hold up the table.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// One node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// The shard it validates.
    pub shard: ShardId,
    /// Its process.
    #[serde(serialize_with = "as_text")]
    pub process: ProcessState,
    /// Its PID, if it has a process.
    pub pid: Option<u32>,
    /// Its RPC URL.
    pub rpc: String,
    /// Its height on its shard, if its RPC answered.
    pub height: Option<u64>,
    /// Its consensus view, if its RPC answered.
    pub view: Option<u64>,
    /// Seconds since it last committed, if its RPC answered.
    pub last_commit_s: Option<f64>,
    /// Transactions waiting in its shard's mempool, if its RPC answered.
    pub mempool_txs: Option<usize>,
    /// Why its RPC did not answer, if it did not.
    pub error: Option<String>,
}

impl NodeStatus {
    /// Its process runs and its RPC answered.
    pub fn is_up(&self) -> bool {
        self.process == ProcessState::Running && self.height.is_some()
    }
}

fn as_text<S: serde::Serializer>(state: &ProcessState, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(state)
}

/// A shard stopped committing when its youngest commit is older than this:
/// the nodes' default `health_stale_after_ms`, after which their `/health`
/// says 503.
pub const HALTED_AFTER_S: f64 = palisade_ledger::api::DEFAULT_HEALTH_STALE_AFTER_MS as f64 / 1000.0;

/// What a shard is doing, seen across its validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Committing, every validator up.
    Healthy,
    /// Committing, some validator down or not answering.
    Degraded,
    /// No commit for [`HALTED_AFTER_S`], or no validator answers.
    Halted,
}

impl std::fmt::Display for ShardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShardState::Healthy => "healthy",
            ShardState::Degraded => "degraded",
            ShardState::Halted => "halted",
        })
    }
}

/// One shard, seen across its validators that answered.
#[derive(Clone, Debug, Serialize)]
pub struct ShardSummary {
    /// The shard.
    pub shard: ShardId,
    /// Committing or not.
    pub state: ShardState,
    /// Highest height any of its validators reports.
    pub height: Option<u64>,
    /// Youngest last-commit age among them.
    pub last_commit_s: Option<f64>,
    /// Highest view among them.
    pub view: Option<u64>,
    /// Validators up (process running and RPC answering; twins not counted).
    pub up: usize,
    /// Validators in its committee.
    pub validators: usize,
}

/// The whole network.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkStatus {
    /// Per shard.
    pub shards: Vec<ShardSummary>,
    /// Per node, in genesis order.
    pub nodes: Vec<NodeStatus>,
}

/// Asks every node (concurrently, each bounded by [`STATUS_TIMEOUT`]).
pub async fn gather(net: &mut LocalNet) -> NetworkStatus {
    let mut asks = Vec::new();
    for node in net.nodes.clone() {
        let pid = net.pid(&node.name).ok().flatten();
        let process = pid.map_or(ProcessState::Down, state_of);
        asks.push(async move {
            let answer = match process {
                ProcessState::Running => ask(&node.rpc_url()).await,
                other => Err(format!("process {other}")),
            };
            let shard = answer.as_ref().ok().and_then(|s| s.shards.iter().find(|s| s.shard == node.shard).cloned());
            NodeStatus {
                name: node.name.clone(),
                shard: node.shard,
                process,
                pid,
                rpc: node.rpc_url(),
                height: shard.as_ref().map(|s| s.height),
                view: shard.as_ref().map(|s| s.view),
                last_commit_s: shard.as_ref().map(|s| s.seconds_since_last_commit),
                mempool_txs: shard.as_ref().map(|s| s.mempool_txs),
                error: answer.err(),
            }
        });
    }
    // Concurrently: each ask is bounded, so the whole is too.
    let nodes = futures::future::join_all(asks).await;
    // A twin is a fault on purpose, not one of the shard's validators.
    let twins: Vec<&str> = net.nodes.iter().filter(|n| n.is_twin()).map(|n| n.name.as_str()).collect();
    let shards = (0..net.genesis.shard_count)
        .map(|shard| {
            let of: Vec<&NodeStatus> =
                nodes.iter().filter(|n| n.shard == shard && !twins.contains(&n.name.as_str())).collect();
            let last_commit_s = of.iter().filter_map(|n| n.last_commit_s).min_by(f64::total_cmp);
            let up = of.iter().filter(|n| n.is_up()).count();
            let state = match last_commit_s {
                Some(age) if age <= HALTED_AFTER_S && up == of.len() => ShardState::Healthy,
                Some(age) if age <= HALTED_AFTER_S => ShardState::Degraded,
                _ => ShardState::Halted,
            };
            ShardSummary {
                shard,
                state,
                height: of.iter().filter_map(|n| n.height).max(),
                last_commit_s,
                view: of.iter().filter_map(|n| n.view).max(),
                up,
                validators: of.len(),
            }
        })
        .collect();
    NetworkStatus { shards, nodes }
}

async fn ask(url: &str) -> Result<StatusResponse, String> {
    let client = Client::with_timeout(url, STATUS_TIMEOUT).map_err(|e| e.to_string())?;
    client.status().await.map_err(|e| e.to_string())
}

impl NetworkStatus {
    /// The tables `palisade-testnet status` prints.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>5} {:<9} {:>8} {:>12} {:>6} {:>8}",
            "shard", "state", "height", "last commit", "view", "up"
        );
        for s in &self.shards {
            let _ = writeln!(
                out,
                "{:>5} {:<9} {:>8} {:>12} {:>6} {:>8}",
                s.shard,
                s.state.to_string(),
                opt(s.height),
                s.last_commit_s.map_or("-".into(), |a| format!("{a:.1}s ago")),
                opt(s.view),
                format!("{}/{}", s.up, s.validators),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:<8} {:>8} {:>8} {:<24} note",
            "node", "shard", "process", "pid", "height", "rpc"
        );
        for n in &self.nodes {
            let note = n.error.as_deref().filter(|_| n.process == ProcessState::Running).unwrap_or("");
            let _ = writeln!(
                out,
                "{:<16} {:>5} {:<8} {:>8} {:>8} {:<24} {}",
                n.name,
                n.shard,
                n.process.to_string(),
                opt(n.pid),
                opt(n.height),
                n.rpc,
                note
            );
        }
        out
    }
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}
