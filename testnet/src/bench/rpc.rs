//! The load generator's connections to the nodes: one HTTP JSON-RPC client
//! per node for batches, and a label for every way a call can fail.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use jsonrpsee::core::ClientError as RpcError;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::{ArrayParams, BatchRequestBuilder};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use palisade_ledger::ShardId;
use serde::de::DeserializeOwned;

use super::report;
use crate::local::NodeSpec;

/// Most calls in one JSON-RPC batch: the local nodes' `max_batch`.
pub const MAX_BATCH: usize = 256;
/// How long a batch may take before its calls count as `timeout`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer accepted: a full block of 10,000 transactions is
/// about 6 MB of JSON; the nodes refuse answers beyond 16 MiB.
const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;

/// One validator the load generator talks to.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its name (`validator-S-I`).
    pub name: String,
    /// The shard it validates.
    pub shard: ShardId,
    /// Its JSON-RPC WebSocket URL.
    pub ws_url: String,
    /// Its JSON-RPC HTTP client (pools connections; cheap to clone).
    pub http: HttpClient,
}

impl Node {
    /// A client for `spec`.
    pub fn new(spec: &NodeSpec) -> Result<Node> {
        let http = HttpClientBuilder::default()
            .request_timeout(CALL_TIMEOUT)
            .max_response_size(MAX_RESPONSE_BYTES)
            .build(spec.rpc_url())
            .with_context(|| format!("RPC client for {}", spec.name))?;
        Ok(Node {
            name: spec.name.clone(),
            shard: spec.shard,
            ws_url: format!("ws://127.0.0.1:{}", spec.rpc_port),
            http,
        })
    }
}

/// The answer to one call of a batch: its result, or the label of why not.
pub type Answer<R> = std::result::Result<R, String>;

/// Calls `method` once per element of `params` in one batch (at most
/// [`MAX_BATCH`]) and returns the answers in order. A batch refused or lost
/// as a whole is an error carrying its label.
pub async fn batch<R>(node: &Node, method: &'static str, params: Vec<ArrayParams>) -> Answers<R>
where
    R: DeserializeOwned + std::fmt::Debug,
{
    let count = params.len();
    let mut builder = BatchRequestBuilder::new();
    for p in params {
        if let Err(e) = builder.insert(method, p) {
            return Err(format!("encode: {e}"));
        }
    }
    let response = node.http.batch_request::<R>(builder).await.map_err(|e| label(&e))?;
    let answers: Vec<Answer<R>> = response
        .into_iter()
        .map(|entry| entry.map_err(|e| report::reason(e.code(), e.message(), parse_data(e.data()).as_ref())))
        .collect();
    if answers.len() != count {
        return Err("short_batch".to_string());
    }
    Ok(answers)
}

/// The answers of a batch, or the label of why the whole batch failed.
pub type Answers<R> = std::result::Result<Vec<Answer<R>>, String>;

fn parse_data(raw: Option<&serde_json::value::RawValue>) -> Option<serde_json::Value> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// The label of a call that failed as a whole.
pub fn label(error: &RpcError) -> String {
    match error {
        RpcError::Call(e) => report::reason(e.code(), e.message(), parse_data(e.data()).as_ref()),
        RpcError::RequestTimeout => "timeout".to_string(),
        RpcError::Transport(_) | RpcError::RestartNeeded(_) => "unreachable".to_string(),
        RpcError::ParseError(_) => "malformed_answer".to_string(),
        _ => "client_error".to_string(),
    }
}

/// One positional parameter.
pub fn one<P: serde::Serialize>(value: P) -> Result<ArrayParams> {
    let mut params = ArrayParams::new();
    params.insert(value).context("encoding a parameter")?;
    Ok(params)
}

/// Calls `method` with positional `params` on `node`.
pub async fn call<R: DeserializeOwned>(node: &Node, method: &'static str, params: ArrayParams) -> Result<R> {
    node.http.request(method, params).await.map_err(|e| anyhow::anyhow!("{} {method}: {e} ({})", node.name, label(&e)))
}

/// Calls `method` for every element of `params` in batches of
/// [`MAX_BATCH`]; fails on the first refused call.
pub async fn batch_all<R>(node: &Node, method: &'static str, params: Vec<ArrayParams>) -> Result<Vec<R>>
where
    R: DeserializeOwned + std::fmt::Debug,
{
    let mut results = Vec::with_capacity(params.len());
    let mut rest = params.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<ArrayParams> = rest.by_ref().take(MAX_BATCH).collect();
        let answers = batch::<R>(node, method, chunk).await;
        let answers = match answers {
            Ok(answers) => answers,
            Err(why) => bail!("{} {method}: batch failed: {why}", node.name),
        };
        for answer in answers {
            match answer {
                Ok(r) => results.push(r),
                Err(why) => bail!("{} {method}: {why}", node.name),
            }
        }
    }
    Ok(results)
}
