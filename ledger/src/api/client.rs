//! A typed JSON-RPC client for one node (feature `client`): the wallet, the
//! testnet tool and the end-to-end tests all speak to nodes through it, and
//! decode exactly the shapes in [`super`].
//!
//! Errors keep what a user needs to act: the URL tried when the node cannot
//! be reached, the node's code and message when it refused the call.

use std::time::Duration;

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::types::ErrorObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    AccountResponse, BlockResponse, ErrorJson, ReceiptResponse, ShardValidators, StatusResponse, SubmitOutcome,
    SubmitResponse, TransactionResponse, TxRejection,
};
use super::{code, method};
use crate::{Address, Hash, ShardId, SignedTx};

/// How long one call may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer accepted unless told otherwise (jsonrpsee's default).
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 10 * 1024 * 1024;

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
        /// The node took longer than the client's timeout (it may be up but
        /// slow, or paused).
        timed_out: bool,
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

impl From<&ErrorObject<'_>> for ErrorJson {
    fn from(error: &ErrorObject<'_>) -> ErrorJson {
        ErrorJson {
            code: error.code(),
            message: error.message().to_owned(),
            data: error.data().and_then(|raw| serde_json::from_str(raw.get()).ok()),
        }
    }
}

impl Client {
    /// A client for `url` (`http://HOST:PORT`) with [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<Client, ClientError> {
        Client::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// A client whose calls give up after `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::with_limits(url, timeout, DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// A client whose calls give up after `timeout` and refuse answers
    /// (a whole batch's, for [`Client::batch`]) over `max_response_bytes`.
    pub fn with_limits(url: &str, timeout: Duration, max_response_bytes: u32) -> Result<Client, ClientError> {
        let bad = |cause: String| ClientError::BadUrl { url: url.to_string(), cause };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("expected http://HOST:PORT".into()));
        }
        let http = HttpClientBuilder::default()
            .request_timeout(timeout)
            .max_response_size(max_response_bytes)
            .build(url)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Client { http, url: url.to_string() })
    }

    /// The endpoint this client calls.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with named `params` (a JSON object) and decodes the
    /// result as `T` (straight from the answer's text: a large block is
    /// parsed once, and only into what `T` keeps).
    pub async fn call<T: DeserializeOwned>(&self, method: &'static str, params: Value) -> Result<T, ClientError> {
        let params = Named::of(&params).map_err(|e| self.malformed(method, e.to_string()))?;
        self.http.request(method, params).await.map_err(|e| self.classify(method, e))
    }

    /// Calls `method` once per element of `params` (each one call's named
    /// parameters, a JSON object) in one JSON-RPC batch, and returns the
    /// answers in order. The batch as a whole fails when the node cannot be
    /// reached, refuses the batch (too many calls, too big), or answers a
    /// different number of calls; each call may still be refused on its own.
    /// An empty `params` is an empty answer, without a call.
    pub async fn batch<T, P>(
        &self,
        method: &'static str,
        params: Vec<P>,
    ) -> Result<Vec<Result<T, ClientError>>, ClientError>
    where
        T: DeserializeOwned + std::fmt::Debug,
        P: Serialize,
    {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let count = params.len();
        let mut builder = BatchRequestBuilder::new();
        for p in &params {
            let named = Named::of(p).map_err(|e| self.malformed(method, e.to_string()))?;
            builder.insert(method, named).map_err(|e| self.malformed(method, e.to_string()))?;
        }
        let answers = self.http.batch_request::<T>(builder).await.map_err(|e| self.classify(method, e))?;
        if answers.len() != count {
            return Err(self.malformed(method, format!("{} answers to a batch of {count} calls", answers.len())));
        }
        Ok(answers.into_iter().map(|answer| answer.map_err(|e| self.refused(method, ErrorJson::from(&e)))).collect())
    }

    fn malformed(&self, method: &'static str, cause: String) -> ClientError {
        ClientError::Malformed { url: self.url.clone(), method, cause }
    }

    fn refused(&self, method: &'static str, error: ErrorJson) -> ClientError {
        let ErrorJson { code, message, data } = error;
        ClientError::Refused { url: self.url.clone(), method, code, message, data }
    }

    fn classify(&self, method: &'static str, error: jsonrpsee::core::ClientError) -> ClientError {
        use jsonrpsee::core::ClientError as E;
        match error {
            E::Call(object) => self.refused(method, ErrorJson::from(&object)),
            E::ParseError(e) => self.malformed(method, e.to_string()),
            E::RequestTimeout => ClientError::Unreachable {
                url: self.url.clone(),
                cause: E::RequestTimeout.to_string(),
                timed_out: true,
            },
            other => ClientError::Unreachable { url: self.url.clone(), cause: other.to_string(), timed_out: false },
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

    /// `palisade_submitTransactions`: up to [`super::MAX_SUBMIT_BATCH`]
    /// transactions, given as the hex of their encodings, in one call.
    /// Each answer is what [`Client::submit`] would have returned for that
    /// transaction, in order; the call as a whole fails when the node
    /// cannot be reached or refuses the call.
    pub async fn submit_all_hex<T: AsRef<str>>(
        &self,
        txs_hex: &[T],
    ) -> Result<Vec<Result<SubmitResponse, ClientError>>, ClientError> {
        let method = method::SUBMIT_TRANSACTIONS;
        if txs_hex.is_empty() {
            return Ok(Vec::new());
        }
        let hexes: Vec<&str> = txs_hex.iter().map(AsRef::as_ref).collect();
        let outcomes: Vec<SubmitOutcome> = self.call(method, json!({ "txs_hex": hexes })).await?;
        if outcomes.len() != txs_hex.len() {
            return Err(self.malformed(method, format!("{} answers to {} transactions", outcomes.len(), txs_hex.len())));
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                SubmitOutcome::Ok(response) => Ok(response),
                SubmitOutcome::Error(e) => Err(self.refused(method, e)),
            })
            .collect())
    }

    /// [`Client::submit_all_hex`] for signed transactions.
    pub async fn submit_all(&self, txs: &[SignedTx]) -> Result<Vec<Result<SubmitResponse, ClientError>>, ClientError> {
        let hexes: Vec<String> = txs.iter().map(|tx| hex::encode(tx.to_bytes())).collect();
        self.submit_all_hex(&hexes).await
    }

    /// `palisade_transaction`.
    pub async fn transaction(&self, id: &Hash) -> Result<TransactionResponse, ClientError> {
        self.call(method::TRANSACTION, json!({"id": id.to_hex()})).await
    }

    /// `palisade_receipt`: whether destination `shard` credited the receipt
    /// of cross-shard transfer `id`.
    pub async fn receipt(&self, id: &Hash, shard: ShardId) -> Result<ReceiptResponse, ClientError> {
        self.call(method::RECEIPT, json!({"id": id.to_hex(), "shard": shard})).await
    }

    /// Polls `palisade_receipt` every `poll` until destination `shard` has
    /// credited `id`, or `timeout` passes (then the last answer).
    /// Transient refusals (busy, rate-limited) are retried.
    pub async fn wait_credited(
        &self,
        id: &Hash,
        shard: ShardId,
        poll: Duration,
        timeout: Duration,
    ) -> Result<ReceiptResponse, ClientError> {
        let credited = |answer: &ReceiptResponse| matches!(answer, ReceiptResponse::Credited { .. });
        poll_until(poll, timeout, async || self.receipt(id, shard).await, ClientError::is_retryable, credited).await
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
        poll_until(poll, timeout, async || self.transaction(id).await, ClientError::is_retryable, is_settled).await
    }
}

/// Whether a transaction's state is the last it will have: final or
/// rejected.
pub(crate) fn is_settled(answer: &TransactionResponse) -> bool {
    matches!(answer, TransactionResponse::Final { .. } | TransactionResponse::Rejected { .. })
}

/// Asks with `ask` every `poll` until an answer is `done`, or `timeout`
/// passes: then the last answer, or one more ask if the last was an error.
/// Errors that `retry` accepts are asked again; any other ends the wait.
pub(crate) async fn poll_until<T>(
    poll: Duration,
    timeout: Duration,
    mut ask: impl AsyncFnMut() -> Result<T, ClientError>,
    retry: impl Fn(&ClientError) -> bool,
    done: impl Fn(&T) -> bool,
) -> Result<T, ClientError> {
    // A timeout too large to add never arrives: wait without one.
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    loop {
        let answer = match ask().await {
            Ok(answer) => Some(answer),
            Err(e) if retry(&e) => None,
            Err(e) => return Err(e),
        };
        let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        match answer {
            Some(answer) if done(&answer) || expired => return Ok(answer),
            _ if expired => return ask().await,
            _ => tokio::time::sleep(poll).await,
        }
    }
}

/// One call's named parameters, serialised once (`None` for no parameters).
struct Named(Option<Box<RawValue>>);

impl Named {
    fn of<P: Serialize>(params: &P) -> Result<Named, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(params)?;
        Ok(Named(if raw.get() == "{}" { None } else { Some(raw) }))
    }
}

impl ToRpcParams for Named {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        Ok(self.0)
    }
}
