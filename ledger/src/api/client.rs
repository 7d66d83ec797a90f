//! A typed JSON-RPC client for one node (feature `client`): the wallet, the
//! testnet tool and the end-to-end tests all speak to nodes through it, and
//! decode exactly the shapes in [`super`].
//!
//! Errors keep what a user needs to act: the URL tried when the node cannot
//! be reached, the node's code and message when it refused the call.

use std::time::Duration;

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    AccountResponse, BlockResponse, ShardValidators, StatusResponse, SubmitResponse, TransactionResponse, TxRejection,
};
use super::{code, method};
use crate::{Address, Hash, ShardId, SignedTx};

/// How long one call may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: refused connection, reset, timeout, not an RPC endpoint.
    #[error("node unreachable at {url}: {cause}")]
    Unreachable {
        /// The endpoint tried.
        url: String,
        /// What the transport said.
        cause: String,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{url} refused {method}: {message} (code {code})")]
    Refused {
        /// The endpoint.
        url: String,
        /// The method called.
        method: &'static str,
        /// The JSON-RPC code (see [`code`]).
        code: i32,
        /// The node's message.
        message: String,
        /// The error's data, if any.
        data: Option<Value>,
    },
    /// The node answered with something that is not the documented shape.
    #[error("{url} answered {method} with an unexpected shape: {cause}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// The method called.
        method: &'static str,
        /// What did not fit.
        cause: String,
    },
    /// The URL is not a usable HTTP endpoint.
    #[error("bad node URL {url:?}: {cause}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        cause: String,
    },
}

impl ClientError {
    /// The node's JSON-RPC code, if the node answered with an error.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Why the node refused a submitted transaction, if that is what it did.
    pub fn rejection(&self) -> Option<TxRejection> {
        match self {
            ClientError::Refused { code: code::TX_REJECTED, data: Some(data), .. } => {
                serde_json::from_value(data.clone()).ok()
            }
            _ => None,
        }
    }

    /// Worth retrying as is: the node was busy or rate-limited us.
    pub fn is_retryable(&self) -> bool {
        matches!(self.code(), Some(code::RATE_LIMITED | code::SHARD_BUSY | code::TIMED_OUT))
    }
}

/// A client for one node's JSON-RPC endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    http: HttpClient,
    url: String,
}

impl Client {
    /// A client for `url` (`http://HOST:PORT`) with [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<Client, ClientError> {
        Client::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// A client whose calls give up after `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Client, ClientError> {
        let bad = |cause: String| ClientError::BadUrl { url: url.to_string(), cause };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("expected http://HOST:PORT".into()));
        }
        let http = HttpClientBuilder::default().request_timeout(timeout).build(url).map_err(|e| bad(e.to_string()))?;
        Ok(Client { http, url: url.to_string() })
    }

    /// The endpoint this client calls.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with named `params` (a JSON object) and decodes the
    /// result as `T`.
    pub async fn call<T: DeserializeOwned>(&self, method: &'static str, params: Value) -> Result<T, ClientError> {
        let mut object = ObjectParams::new();
        if let Value::Object(map) = params {
            for (name, value) in map {
                object.insert(&name, value).map_err(|e| self.malformed(method, e.to_string()))?;
            }
        }
        let answer: Value = self.http.request(method, object).await.map_err(|e| self.classify(method, e))?;
        serde_json::from_value(answer).map_err(|e| self.malformed(method, e.to_string()))
    }

    fn malformed(&self, method: &'static str, cause: String) -> ClientError {
        ClientError::Malformed { url: self.url.clone(), method, cause }
    }

    fn classify(&self, method: &'static str, error: jsonrpsee::core::ClientError) -> ClientError {
        use jsonrpsee::core::ClientError as E;
        match error {
            E::Call(object) => ClientError::Refused {
                url: self.url.clone(),
                method,
                code: object.code(),
                message: object.message().to_string(),
                data: object.data().and_then(|raw| serde_json::from_str(raw.get()).ok()),
            },
            E::ParseError(e) => self.malformed(method, e.to_string()),
            other => ClientError::Unreachable { url: self.url.clone(), cause: other.to_string() },
        }
    }

    /// `palisade_status`.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.call(method::STATUS, json!({})).await
    }

    /// The committed height of `shard` on this node, if it runs the shard.
    pub async fn height(&self, shard: ShardId) -> Result<Option<u64>, ClientError> {
        let status = self.status().await?;
        Ok(status.shards.iter().find(|s| s.shard == shard).map(|s| s.height))
    }

    /// `palisade_account`, with a proof against a certified header if `prove`.
    pub async fn account(&self, address: &Address, prove: bool) -> Result<AccountResponse, ClientError> {
        self.call(method::ACCOUNT, json!({"address": address.to_bech32(), "prove": prove})).await
    }

    /// `palisade_submitTransaction`.
    pub async fn submit(&self, tx: &SignedTx) -> Result<SubmitResponse, ClientError> {
        self.call(method::SUBMIT_TRANSACTION, json!({"tx_hex": hex::encode(tx.to_bytes())})).await
    }

    /// `palisade_transaction`.
    pub async fn transaction(&self, id: &Hash) -> Result<TransactionResponse, ClientError> {
        self.call(method::TRANSACTION, json!({"id": id.to_hex()})).await
    }

    /// `palisade_block` by shard and height; `None` if not (yet) final.
    pub async fn block(&self, shard: ShardId, height: u64) -> Result<Option<BlockResponse>, ClientError> {
        self.call(method::BLOCK, json!({"shard": shard, "height": height})).await
    }

    /// `palisade_block` by hash.
    pub async fn block_by_hash(&self, hash: &Hash) -> Result<Option<BlockResponse>, ClientError> {
        self.call(method::BLOCK, json!({"hash": hash.to_hex()})).await
    }

    /// `palisade_validators` for every shard.
    pub async fn validators(&self) -> Result<Vec<ShardValidators>, ClientError> {
        self.call(method::VALIDATORS, json!({})).await
    }

    /// Polls `palisade_transaction` every `poll` until `id` is final or
    /// rejected, or `timeout` passes (then the last answer, still pending or
    /// unknown). Transient refusals (busy, rate-limited) are retried.
    pub async fn wait_final(
        &self,
        id: &Hash,
        poll: Duration,
        timeout: Duration,
    ) -> Result<TransactionResponse, ClientError> {
        // A timeout too large to add never arrives: wait without one.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let answer = match self.transaction(id).await {
                Ok(answer) => Some(answer),
                Err(e) if e.is_retryable() => None,
                Err(e) => return Err(e),
            };
            match answer {
                Some(done @ (TransactionResponse::Final { .. } | TransactionResponse::Rejected { .. })) => {
                    return Ok(done);
                }
                Some(waiting) if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) => return Ok(waiting),
                _ if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) => return self.transaction(id).await,
                _ => tokio::time::sleep(poll).await,
            }
        }
    }
}
