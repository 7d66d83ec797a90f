//! The surge's flooding client: one client (one source address,
//! [`FLOOD_SOURCE`], so the nodes' per-client breakers see it apart from
//! the honest load on 127.0.0.1) sending low-fee transfers on one shard from
//! [`FLOOD_ACCOUNTS`] funded accounts, at a rate the caller sets and changes
//! (its usual rate, then the surge, then its usual rate again).
//!
//! Every transaction is signed before the clock starts: per account a chain
//! of consecutive nonces, sent round-robin over the accounts and the shard's
//! validators, in JSON-RPC batches. A refused transaction is sent again
//! later (its account's cursor goes back to it), so the ones admitted after
//! it are not stranded behind a gap once the flood calms. It keeps count of
//! what the nodes answered, and the ids they admitted (the caller checks
//! that none is lost).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use palisade_ledger::api::reason;
use palisade_ledger::{Amount, Hash, ShardId, SignedTx};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::bench::accounts::{self, BenchAccount, ShardClients};
use crate::local::LocalNet;

/// Where the flood comes from: a loopback address of its own.
pub const FLOOD_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Accounts the flood is spread over (a client, not one sender).
pub const FLOOD_ACCOUNTS: usize = 32;
/// The fee each flood transfer offers, units: above the surge network's
/// lowest base fee, far below the honest load's.
pub const FLOOD_FEE_UNITS: u64 = 100;
/// How often the sender releases what is due.
const TICK: Duration = Duration::from_millis(20);
/// Most transactions in one JSON-RPC batch.
const BATCH: usize = 32;
/// Batches in flight at once.
const IN_FLIGHT: usize = 16;
/// One batch's bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the nodes answered the flood.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloodCounts {
    /// Submissions sent (resends included).
    pub sent: u64,
    /// Admitted.
    pub admitted: u64,
    /// Refused by the intake breaker (`throttled`).
    pub throttled: u64,
    /// Refused below the base fee (`fee_below_base`).
    pub below_base_fee: u64,
    /// Refused for anything else, by reason.
    pub other: BTreeMap<String, u64>,
    /// Batches that got no answer (unreachable, timed out).
    pub failed_batches: u64,
    /// Distinct transactions admitted.
    #[serde(skip)]
    pub admitted_ids: BTreeSet<Hash>,
}

/// Shared between the ticker and the batch tasks.
struct State {
    counts: FloodCounts,
    /// Per account, the nonce offset it sends next.
    cursor: Vec<usize>,
}

/// A flood in progress.
pub struct Flood {
    /// Transactions per second now (0: paused).
    rate: Arc<AtomicU64>,
    state: Arc<Mutex<State>>,
    ticker: JoinHandle<()>,
}

/// Per account, its signed transactions (id, hex) by nonce offset.
type Chains = Vec<Vec<(Hash, String)>>;

impl Flood {
    /// Funds the flood accounts on `shard` (through `via`, the honest
    /// set-up path), signs `total` transfers, and starts sending at
    /// `rate` a second to the shard's validators from [`FLOOD_SOURCE`].
    pub async fn start(net: &LocalNet, via: &ShardClients, shard: ShardId, total: usize, rate: u64) -> Result<Flood> {
        let genesis = &net.genesis;
        let accounts: Vec<BenchAccount> = accounts::derive("surge-flood", genesis.shard_count, FLOOD_ACCOUNTS)?
            .into_iter()
            .filter(|a| a.shard == shard)
            .collect();
        let states = accounts::read_states(via, &accounts).await?;
        let per_account = total.div_ceil(accounts.len().max(1));
        let needed = (per_account as u64).saturating_mul(FLOOD_FEE_UNITS.saturating_add(1));
        let bar = indicatif::ProgressBar::hidden();
        accounts::fund(genesis, via, &accounts, &states, &vec![needed; accounts.len()], &bar).await?;
        let heights = accounts::funded_heights(via).await?;
        let urls: Vec<String> = net.nodes.iter().filter(|n| n.shard == shard).map(|n| n.rpc_url()).collect();
        wait_funded(&urls, shard, heights.get(&shard).copied().unwrap_or(0)).await?;
        let chain_id = genesis.chain_id.clone();
        let chains: Chains = tokio::task::spawn_blocking(move || {
            accounts
                .iter()
                .enumerate()
                .map(|(i, account)| {
                    let to = accounts[(i + 1) % accounts.len()].address;
                    (0..per_account as u64)
                        .map(|k| {
                            let nonce = states[i].nonce.saturating_add(k);
                            let tx = SignedTx::transfer(
                                &account.key,
                                &chain_id,
                                nonce,
                                to,
                                Amount(1),
                                Amount(FLOOD_FEE_UNITS),
                            );
                            let bytes = tx.to_bytes();
                            (SignedTx::id_of(&bytes), hex::encode(bytes))
                        })
                        .collect()
                })
                .collect()
        })
        .await
        .context("signing the flood")?;
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(FLOOD_SOURCE)));
        connector.set_connect_timeout(Some(CALL_TIMEOUT));
        let http: HttpClient<HttpConnector, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build(connector);
        let rate = Arc::new(AtomicU64::new(rate));
        let state = Arc::new(Mutex::new(State { counts: FloodCounts::default(), cursor: vec![0; chains.len()] }));
        let ticker = tokio::spawn(send(Arc::new(chains), urls, http, Arc::clone(&rate), Arc::clone(&state)));
        Ok(Flood { rate, state, ticker })
    }

    /// Sends `per_second` from now on.
    pub fn set_rate(&self, per_second: u64) {
        self.rate.store(per_second, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> FloodCounts {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).counts.clone()
    }

    /// Stops sending; the counts.
    pub fn stop(self) -> FloodCounts {
        self.ticker.abort();
        self.counts()
    }
}

/// Waits until every one of `urls` has `shard` at `height` (the funding).
async fn wait_funded(urls: &[String], shard: ShardId, height: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        let client = palisade_ledger::api::client::Client::with_timeout(url, CALL_TIMEOUT)?;
        // Bounded by the deadline.
        while client.height(shard).await.ok().flatten().unwrap_or(0) < height {
            if Instant::now() >= deadline {
                bail!("{url} did not reach shard {shard} height {height} (the flood's funding) within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The ticker: every [`TICK`], releases what the rate says is due, in
/// batches over the validators.
async fn send(
    chains: Arc<Chains>,
    urls: Vec<String>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    rate: Arc<AtomicU64>,
    state: Arc<Mutex<State>>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut owed = 0.0f64;
    let mut next_account = 0usize;
    let mut next_node = 0usize;
    let mut last = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let now = Instant::now();
        owed += rate.load(Ordering::Relaxed) as f64 * now.duration_since(last).as_secs_f64();
        last = now;
        // A backlog the client could not send is dropped, not bunched.
        owed = owed.min(rate.load(Ordering::Relaxed) as f64);
        let due = owed.floor() as usize;
        owed -= due as f64;
        let mut items = Vec::with_capacity(due);
        {
            let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
            for _ in 0..due {
                let account = next_account % chains.len().max(1);
                next_account = next_account.wrapping_add(1);
                let Some(offset) = st.cursor.get(account).copied() else { continue };
                if offset >= chains[account].len() {
                    continue;
                }
                st.cursor[account] = offset + 1;
                items.push((account, offset));
            }
        }
        for (i, batch) in items.chunks(BATCH).enumerate() {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // Every batch slot is busy: what is left goes out later.
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                for &(account, offset) in items.iter().skip(i * BATCH) {
                    st.cursor[account] = st.cursor[account].min(offset);
                }
                break;
            };
            let url = urls[next_node % urls.len().max(1)].clone();
            next_node = next_node.wrapping_add(1);
            let (chains, http, state, batch) = (Arc::clone(&chains), http.clone(), Arc::clone(&state), batch.to_vec());
            tokio::spawn(async move {
                submit(&http, &url, &chains, &batch, &state).await;
                drop(permit);
            });
        }
    }
}

/// Sends one batch and books the answers.
async fn submit(
    http: &HttpClient<HttpConnector, Full<Bytes>>,
    url: &str,
    chains: &Chains,
    batch: &[(usize, usize)],
    state: &Mutex<State>,
) {
    let calls: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, &(account, offset))| {
            json!({"jsonrpc": "2.0", "id": i, "method": palisade_ledger::api::method::SUBMIT_TRANSACTION,
                   "params": {"tx_hex": chains[account][offset].1}})
        })
        .collect();
    let answers = tokio::time::timeout(CALL_TIMEOUT, post(http, url, &Value::Array(calls))).await;
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    st.counts.sent = st.counts.sent.saturating_add(batch.len() as u64);
    let answers = match answers {
        Ok(Ok(Value::Array(answers))) => answers,
        _ => {
            st.counts.failed_batches = st.counts.failed_batches.saturating_add(1);
            for &(account, offset) in batch {
                st.cursor[account] = st.cursor[account].min(offset);
            }
            return;
        }
    };
    let mut by_id: BTreeMap<u64, &Value> = BTreeMap::new();
    for answer in &answers {
        if let Some(id) = answer.get("id").and_then(Value::as_u64) {
            by_id.insert(id, answer);
        }
    }
    for (i, &(account, offset)) in batch.iter().enumerate() {
        let answer = by_id.get(&(i as u64));
        let refused = answer
            .and_then(|a| a.get("error"))
            .map(|e| e.pointer("/data/reason").and_then(Value::as_str).unwrap_or("unknown").to_owned());
        match (answer, refused.as_deref()) {
            (Some(_), None) => {
                st.counts.admitted = st.counts.admitted.saturating_add(1);
                st.counts.admitted_ids.insert(chains[account][offset].0);
            }
            // Admitted by an earlier send (pending, or executed already).
            (_, Some(reason::DUPLICATE | reason::STALE_NONCE)) => {}
            (_, refusal) => {
                let counts = &mut st.counts;
                match refusal {
                    Some(reason::THROTTLED) => counts.throttled = counts.throttled.saturating_add(1),
                    Some(reason::FEE_BELOW_BASE) => counts.below_base_fee = counts.below_base_fee.saturating_add(1),
                    other => *counts.other.entry(other.unwrap_or("no answer").to_owned()).or_default() += 1,
                }
                // Sent again later, so what follows it is not stranded.
                st.cursor[account] = st.cursor[account].min(offset);
            }
        }
    }
}

/// POSTs `body` to `url`; the parsed answer.
async fn post(http: &HttpClient<HttpConnector, Full<Bytes>>, url: &str, body: &Value) -> Result<Value> {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let response = http.request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}
