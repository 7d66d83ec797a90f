//! A small JSON-RPC client for one node, speaking the methods in
//! docs/rpc.md. Answers are kept as JSON values: this client serves tests
//! and the testnet tool, which read a few fields each.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use palisade_ledger::{Address, SignedTx};
use serde_json::Value;

/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one node's JSON-RPC endpoint.
pub struct NodeRpc {
    client: HttpClient,
    url: String,
}

impl NodeRpc {
    /// A client for `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Result<NodeRpc> {
        let client = HttpClientBuilder::default()
            .request_timeout(CALL_TIMEOUT)
            .build(url)
            .with_context(|| format!("RPC client for {url}"))?;
        Ok(NodeRpc { client, url: url.to_string() })
    }

    /// Calls `method` with positional `params`.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        let mut array = ArrayParams::new();
        for param in params {
            array.insert(param).map_err(|e| anyhow!("encoding params: {e}"))?;
        }
        self.client.request(method, array).await.map_err(|e| anyhow!("{method} at {}: {e}", self.url))
    }

    /// `palisade_status`.
    pub async fn status(&self) -> Result<Value> {
        self.call("palisade_status", vec![]).await
    }

    /// The committed height of `shard` on this node.
    pub async fn height(&self, shard: u32) -> Result<u64> {
        let status = self.status().await?;
        status["shards"]
            .as_array()
            .and_then(|shards| shards.iter().find(|s| s["shard"] == shard))
            .and_then(|s| s["height"].as_u64())
            .with_context(|| format!("{} does not report shard {shard}: {status}", self.url))
    }

    /// Submits a signed transaction; returns its id (hex).
    pub async fn submit(&self, tx: &SignedTx) -> Result<String> {
        let answer = self.call("palisade_submitTransaction", vec![Value::from(hex::encode(tx.to_bytes()))]).await?;
        answer["id"].as_str().map(str::to_owned).with_context(|| format!("no id in {answer}"))
    }

    /// `palisade_transaction`.
    pub async fn transaction(&self, id: &str) -> Result<Value> {
        self.call("palisade_transaction", vec![Value::from(id)]).await
    }

    /// `palisade_account`: (balance units, nonce).
    pub async fn account(&self, address: &Address) -> Result<(u64, u64)> {
        let answer = self.call("palisade_account", vec![Value::from(address.to_bech32())]).await?;
        let balance = answer["balance_units"].as_u64().with_context(|| format!("no balance in {answer}"))?;
        let nonce = answer["nonce"].as_u64().with_context(|| format!("no nonce in {answer}"))?;
        Ok((balance, nonce))
    }

    /// Waits (polling, at most `timeout`) until transaction `id` is final;
    /// returns its status object.
    pub async fn wait_final(&self, id: &str, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.transaction(id).await?;
            if status["state"] == "final" {
                return Ok(status);
            }
            if status["state"] == "rejected" {
                return Err(anyhow!("transaction {id} was rejected: {status}"));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!("transaction {id} not final after {timeout:?}: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
