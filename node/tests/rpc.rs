//! The JSON-RPC server and the health/metrics port, against a real store.
//!
//! Each test opens a RocksDB store for `Genesis::dev(3, 4)`, commits two
//! certified blocks on shard 0 (signed with the dev validator keys), and
//! runs a node context whose shards 0 (validated) and 1 (followed) are
//! served by a small thread with a real mempool over the store. Shard 2 is
//! not run, for the "not tracked" and forwarding paths. Clients are
//! jsonrpsee's HTTP and WebSocket clients, and raw TCP for malformed bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use palisade_consensus::{CommitCertificate, Message, Phase, SignedMessage, ValidatorIndex, Vote, VoteSignature};
use palisade_ledger::genesis::DEV_ACCOUNTS;
use palisade_ledger::state::{Account, ShardContext};
use palisade_ledger::store::{ShardStore, Store};
use palisade_ledger::tree::StateProof;
use palisade_ledger::{
    Address, Amount, Block, Genesis, Hash, Keypair, ShardId, SignedTx, StateExt, TxBody, TxKind, build_block, codec,
};
use palisade_node::context::NodeContext;
use palisade_node::health::{self, OPENMETRICS_CONTENT_TYPE};
use palisade_node::mempool::{InsertError, Mempool, MempoolConfig};
use palisade_node::metrics::{MethodLabel, Metrics};
use palisade_node::net::{Command, CommandReceiver, NetHandle};
use palisade_node::rpc::{self, RpcConfig};
use palisade_node::shard::{
    Control, FinalBlock, QueueBounds, ShardQueues, ShardStatus, TxInput, initial_status, shard_channel,
};
use palisade_node::wire::TopicKind;
use palisade_shard_core::ViewChange;
use palisade_shard_core::evidence::EvidencePool;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};

const SHARDS: u32 = 3;
/// Shard the node validates (and where the test's blocks are).
const VALIDATED: ShardId = 0;
/// Shard the node follows.
const FOLLOWED: ShardId = 1;
/// Shard the node does not run.
const REMOTE: ShardId = 2;
const AMOUNT: Amount = Amount(1_500_000_000);
const FEE: Amount = Amount(1_000);
/// Validators whose commit votes make the test certificates (3 of 4 equal stakes).
const SIGNERS: [u32; 3] = [0, 1, 3];

/// A key whose account lives in `shard`, from names `{prefix}-{i}`.
fn key_in(genesis: &Genesis, prefix: &str, shard: ShardId) -> Keypair {
    (0..)
        .map(|i| Keypair::dev(&format!("{prefix}-{i}")))
        .find(|k| k.address().shard(genesis.shard_count) == shard)
        .unwrap()
}

fn transfer(genesis: &Genesis, from: &Keypair, nonce: u64, to: Address, amount: Amount) -> SignedTx {
    TxBody {
        chain_id: genesis.chain_id.clone(),
        sender: from.address(),
        nonce,
        fee: FEE,
        kind: TxKind::Transfer { to, amount },
        expires_at: None,
    }
    .sign(from)
}

/// A commit certificate for `block` by `SIGNERS`, checked against the committee.
fn certify(genesis: &Genesis, block: &Block, view: u64) -> CommitCertificate {
    let shard = block.header.shard;
    let height = block.header.height;
    let block_hash = block.hash().0;
    let signatures = SIGNERS
        .iter()
        .map(|&i| {
            let key = SigningKey::from_bytes(&Keypair::dev(&format!("validator-{shard}-{i}")).seed());
            let vote = Message::Vote(Vote { phase: Phase::Commit, height, view, block_hash });
            let signed = SignedMessage::sign(&genesis.chain_id, shard, ValidatorIndex(i), vote, &key);
            VoteSignature { signer: ValidatorIndex(i), signature: signed.signature }
        })
        .collect();
    let certificate = CommitCertificate { height, view, block_hash, signatures };
    certificate.verify(&genesis.consensus_committee(shard).unwrap(), &genesis.chain_id, shard).unwrap();
    certificate
}

/// Serves a shard's queues the way the shard thread would for RPC: `Submit`
/// through a real mempool over the store, whose changes (and refusals) feed
/// the shard's read view as the core's `Effect::View` would.
fn serve_shard(queues: ShardQueues, store: Arc<Store>, context: ShardContext) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut mempool = Mempool::new(MempoolConfig::default());
        let mut evidence = EvidencePool::default();
        loop {
            crossbeam_channel::select! {
                recv(queues.control) -> input => match input {
                    Ok(Control::SubmitEvidence { evidence: submitted, reply }) => {
                        // The shard thread's pool, over the committed state.
                        let state = ShardStore::reader(store.clone(), context.clone()).unwrap().unwrap();
                        let committee = palisade_ledger::committee::current(&state).unwrap();
                        let next = palisade_ledger::State::tip(&state).height + 1;
                        let _ = reply.send(evidence.offer(&context, &committee, next, &submitted).answer());
                    }
                    Ok(Control::Shutdown) | Err(_) => return,
                },
                recv(queues.txs) -> input => match input {
                    Ok(TxInput::Submit { txs, client, reply }) => {
                        // The RPC names the client for the intake breaker (a
                        // failed check drops the reply: the call fails).
                        let local = palisade_node::shard::ClientKey::of(std::net::Ipv4Addr::LOCALHOST.into());
                        assert_eq!(client, Some(local), "the submitting client's address");
                        let state = ShardStore::reader(store.clone(), context.clone()).unwrap().unwrap();
                        let mut changes = Vec::new();
                        let mut verdicts = Vec::with_capacity(txs.len());
                        for tx in txs {
                            let id = tx.id();
                            verdicts.push(match mempool.insert(tx, &state) {
                                Ok(id) => Ok(id),
                                Err(InsertError::Rejected(r)) => {
                                    changes.push(ViewChange::TxRejected(id, r.to_string()));
                                    Err(r)
                                }
                                Err(InsertError::State(e)) => panic!("state: {e}"),
                            });
                        }
                        mempool.take_changes(&mut changes);
                        queues.view.write().unwrap().apply(changes);
                        queues.status.write().unwrap().mempool_txs = mempool.len();
                        let _ = reply.send(verdicts);
                    }
                    Ok(TxInput::Gossip(_)) => {}
                    Err(_) => return,
                },
            }
        }
    })
}

struct Harness {
    _dir: TempDir,
    genesis: Genesis,
    ctx: Arc<NodeContext>,
    /// The dev account that spent on shard 0, and its genesis balance.
    sender: Keypair,
    sender_genesis_units: u64,
    /// The two committed transfers and the two blocks (with certificates).
    txs: Vec<SignedTx>,
    blocks: Vec<(Block, CommitCertificate)>,
    statuses: BTreeMap<ShardId, Arc<RwLock<ShardStatus>>>,
    final_blocks: BTreeMap<ShardId, broadcast::Sender<FinalBlock>>,
    commands: CommandReceiver,
    rpc: SocketAddr,
    health: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// The shard threads, joined on drop: one still holding the store while
    /// the test process exits races RocksDB's teardown ("pthread lock:
    /// Invalid argument", SIGABRT after every test passed).
    shard_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for handle in self.ctx.shards.values() {
            handle.shutdown();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for thread in self.shard_threads.drain(..) {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Harness {
    async fn start(config: RpcConfig) -> Harness {
        let dir = TempDir::new().unwrap();
        let genesis = Genesis::dev(SHARDS, 4);
        let store = Store::open(&dir.path().join("db")).unwrap();
        let name = DEV_ACCOUNTS
            .iter()
            .find(|n| Keypair::dev(n).address().shard(SHARDS) == VALIDATED)
            .expect("a dev account lives in shard 0");
        let sender = Keypair::dev(name);
        let sender_genesis_units =
            genesis.accounts.iter().find(|a| a.address == sender.address()).unwrap().balance_units;
        let recipient = key_in(&genesis, "recipient", VALIDATED).address();

        let mut shard0 = ShardStore::open(store.clone(), &genesis, VALIDATED).unwrap();
        ShardStore::open(store.clone(), &genesis, FOLLOWED).unwrap();
        let proposer = genesis.committee(VALIDATED).unwrap().validators[0].address;
        let mut txs = Vec::new();
        let mut blocks = Vec::new();
        for nonce in 0..2 {
            let tx = transfer(&genesis, &sender, nonce, recipient, AMOUNT);
            let built =
                build_block(&shard0, proposer, genesis.genesis_time_ms + 1_000 * (nonce + 1), Vec::new(), [tx.clone()])
                    .unwrap();
            assert!(built.rejected.is_empty(), "{:?}", built.rejected);
            let certificate = certify(&genesis, &built.block, nonce);
            shard0.commit(&built.block, &codec::encode(&certificate), &built.outcome).unwrap();
            txs.push(tx);
            blocks.push((built.block, certificate));
        }

        let mut handles = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        let mut final_blocks = BTreeMap::new();
        let mut shard_threads = Vec::new();
        for shard in [VALIDATED, FOLLOWED] {
            let mut status = initial_status(shard, &store, &genesis).unwrap();
            if shard == VALIDATED {
                status.validator_index = Some(ValidatorIndex(2));
            }
            let (handle, queues) = shard_channel(status, QueueBounds::default());
            statuses.insert(shard, queues.status.clone());
            final_blocks.insert(shard, queues.final_blocks.clone());
            shard_threads.push(serve_shard(queues, store.clone(), genesis.shard_context(shard).unwrap()));
            handles.insert(shard, handle);
        }
        let (net, commands) = NetHandle::channel(16);
        let ctx = Arc::new(NodeContext {
            genesis: Arc::new(genesis.clone()),
            genesis_hash: genesis.hash(),
            contexts: NodeContext::shard_contexts(&genesis),
            store,
            shards: handles,
            net,
            metrics: Arc::new(Metrics::new([VALIDATED, FOLLOWED])),
            peer_id: "12D3KooWTestPeer".into(),
            health_stale_after_ms: 5_000,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let (rpc, _) = rpc::serve(ctx.clone(), RpcConfig { listen, ..config }, shutdown_rx.clone()).await.unwrap();
        let (health, _) = health::serve(ctx.clone(), listen, shutdown_rx).await.unwrap();
        Harness {
            _dir: dir,
            genesis,
            ctx,
            sender,
            sender_genesis_units,
            txs,
            blocks,
            statuses,
            final_blocks,
            commands,
            rpc,
            health,
            shutdown,
            shard_threads,
        }
    }

    /// A harness without the rate limit (so tests can call freely).
    async fn unlimited() -> Harness {
        Harness::start(RpcConfig { requests_per_second_per_client: 0, ..RpcConfig::default() }).await
    }

    fn client(&self) -> HttpClient {
        HttpClientBuilder::default().build(format!("http://{}", self.rpc)).unwrap()
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let params = match params {
            Value::Array(items) => {
                let mut p = jsonrpsee::core::params::ArrayParams::new();
                for item in items {
                    p.insert(item).unwrap();
                }
                return self.client().request(method, p).await;
            }
            Value::Object(map) => {
                let mut p = jsonrpsee::core::params::ObjectParams::new();
                for (k, v) in map {
                    p.insert(&k, v).unwrap();
                }
                p
            }
            _ => panic!("params must be an array or object"),
        };
        self.client().request(method, params).await
    }

    fn status(&self, shard: ShardId) -> Arc<RwLock<ShardStatus>> {
        self.statuses[&shard].clone()
    }
}

/// The code, message and data of a JSON-RPC error.
fn rpc_error(result: Result<Value, ClientError>) -> (i32, String, Value) {
    match result {
        Err(ClientError::Call(e)) => {
            let data = e.data().map(|d| serde_json::from_str(d.get()).unwrap()).unwrap_or(Value::Null);
            (e.code(), e.message().to_string(), data)
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// One raw HTTP/1.1 exchange; returns status, lower-cased headers and body.
async fn raw_http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

async fn post_json(addr: SocketAddr, body: &str) -> (u16, String) {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, _, body) = raw_http(addr, &head, body.as_bytes()).await;
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    raw_http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"), b"").await
}

fn now_ms() -> u64 {
    health::unix_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_running_shards() {
    let h = Harness::unlimited().await;
    h.status(VALIDATED).write().unwrap().view = 7;
    let status = h.call("palisade_status", json!([])).await.unwrap();
    assert_eq!(status["chain_id"], h.genesis.chain_id);
    assert_eq!(status["genesis_hash"], h.genesis.hash().to_hex());
    assert_eq!(status["peer_id"], "12D3KooWTestPeer");
    assert_eq!(status["shard_count"], SHARDS);
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{status}");
    let s0 = &shards[0];
    assert_eq!(s0["shard"], VALIDATED);
    assert_eq!(s0["validator_index"], 2);
    assert_eq!(s0["height"], 2);
    assert_eq!(s0["last_block_hash"], h.blocks[1].0.hash().to_hex());
    assert_eq!(s0["view"], 7);
    assert_eq!(s0["mempool_txs"], 0);
    let since = s0["seconds_since_last_commit"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&since), "{since}");
    let committee = s0["committee"].as_array().unwrap();
    assert_eq!(committee.len(), 4);
    assert_eq!(committee[1]["name"], "validator-0-1");
    assert_eq!(committee[1]["address"], Keypair::dev("validator-0-1").address().to_bech32());
    assert_eq!(committee[1]["stake_units"], 1_000_000_000_000_000u64);
    assert_eq!(committee[1]["stake"], "1000000");
    let s1 = &shards[1];
    assert_eq!(s1["shard"], FOLLOWED);
    assert_eq!(s1["validator_index"], Value::Null);
    assert_eq!(s1["height"], 0);
    assert_eq!(s1["last_block_hash"], h.genesis.hash().to_hex());
    // Every call is counted by method.
    let counted = h.ctx.metrics.rpc_requests.get_or_create(&MethodLabel { method: "palisade_status".into() }).get();
    assert_eq!(counted, 1);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_balance_is_genesis_minus_spending_and_its_proof_checks_out() {
    let h = Harness::unlimited().await;
    let address = h.sender.address().to_bech32();
    let spent = 2 * (AMOUNT.units() + FEE.units());
    let expected = h.sender_genesis_units - spent;

    let account = h.call("palisade_account", json!([address])).await.unwrap();
    assert_eq!(account["address"], address);
    assert_eq!(account["shard"], VALIDATED);
    assert_eq!(account["balance_units"], expected);
    assert_eq!(account["balance"], Amount(expected).to_string());
    assert_eq!(account["nonce"], 2);
    assert_eq!(account["height"], 2);
    assert!(account.get("proof").is_none() && account.get("stake_units").is_none(), "{account}");

    // By name, with a proof.
    let proven = h.call("palisade_account", json!({ "address": address, "prove": true })).await.unwrap();
    let proof = &proven["proof"];
    let (block, _) = &h.blocks[1];
    assert_eq!(proof["height"], 2);
    assert_eq!(proof["block_hash"], block.hash().to_hex());
    assert_eq!(proof["state_root"], block.header.state_root.to_hex());
    assert_eq!(proof["header"]["state_root"], block.header.state_root.to_hex());
    assert_eq!(proof["header"]["height"], 2);
    assert_eq!(proof["header"]["proposer"], block.header.proposer.to_bech32());
    // The client's checks: the proof against the root, the value is the
    // account, the certificate certifies the header carrying that root.
    let bytes = hex::decode(proof["proof"].as_str().unwrap()).unwrap();
    let state_proof: StateProof = codec::decode(&bytes, 1 << 20).unwrap();
    state_proof.verify(&block.header.state_root).unwrap();
    assert!(state_proof.verify(&h.blocks[0].0.header.state_root).is_err(), "a proof must not verify at another root");
    let value = hex::decode(proof["value"].as_str().unwrap()).unwrap();
    assert_eq!(state_proof.value.as_deref(), Some(value.as_slice()));
    let stored: Account = codec::decode(&value, 1024).unwrap();
    assert_eq!(stored.balance.units(), expected);
    let certificate: CommitCertificate =
        codec::decode(&hex::decode(proof["certificate"]["encoded"].as_str().unwrap()).unwrap(), 1 << 16).unwrap();
    let committee = h.genesis.consensus_committee(VALIDATED).unwrap();
    certificate.verify(&committee, &h.genesis.chain_id, VALIDATED).unwrap();
    assert_eq!(Hash(certificate.block_hash), block.hash());
    assert_eq!(proof["certificate"]["signers"], json!(SIGNERS));

    // A validator sitting on its own account's shard shows its stake.
    let store = h.ctx.store.clone();
    for shard in [VALIDATED, FOLLOWED] {
        for v in &h.genesis.committee(shard).unwrap().validators {
            if v.address.shard(SHARDS) != shard {
                continue;
            }
            let account = h.call("palisade_account", json!([v.address.to_bech32()])).await.unwrap();
            assert_eq!(account["stake_units"], v.stake_units, "{account}");
            assert_eq!(account["jailed"], false);
        }
    }
    // A fresh account at genesis height of the followed shard: zero, no header.
    let fresh = key_in(&h.genesis, "fresh", FOLLOWED).address();
    let account = h.call("palisade_account", json!([fresh.to_bech32(), true])).await.unwrap();
    assert_eq!(account["balance_units"], 0);
    assert_eq!(account["height"], 0);
    assert_eq!(account["proof"]["header"], Value::Null);
    assert_eq!(account["proof"]["value"], Value::Null);
    let reader = ShardStore::reader(store, h.genesis.shard_context(FOLLOWED).unwrap()).unwrap().unwrap();
    let absent: StateProof =
        codec::decode(&hex::decode(account["proof"]["proof"].as_str().unwrap()).unwrap(), 1 << 20).unwrap();
    absent.verify(&palisade_ledger::State::tip(&reader).state_root).unwrap();
    assert_eq!(reader.account(&fresh).unwrap().balance, Amount::ZERO);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_errors_name_the_problem() {
    let h = Harness::unlimited().await;
    let mut typo: Vec<char> = h.sender.address().to_bech32().chars().collect();
    typo[10] = if typo[10] == 'q' { 'p' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    let (code, message, _) = rpc_error(h.call("palisade_account", json!([typo])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("bad checksum"), "{message}");

    let remote = key_in(&h.genesis, "remote", REMOTE).address();
    let (code, message, data) = rpc_error(h.call("palisade_account", json!([remote.to_bech32()])).await);
    assert_eq!(code, -32010);
    assert!(message.contains("shard 2"), "{message}");
    assert_eq!(data["shard"], REMOTE);

    let (code, message, _) = rpc_error(h.call("palisade_account", json!([])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("missing field `address`"), "{message}");
    let (code, _, _) = rpc_error(h.call("palisade_account", json!({ "address": typo, "bogus": 1 })).await);
    assert_eq!(code, -32602);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_are_reported_not_credited_and_bad_queries_refused() {
    let h = Harness::unlimited().await;
    let id = Hash([9; 32]).to_hex();
    let answer = h.call("palisade_receipt", json!({ "id": id, "shard": FOLLOWED })).await.unwrap();
    assert_eq!(answer, json!({ "state": "not_credited", "id": id, "shard": FOLLOWED, "pooled": false }));
    // Without a shard: every shard run here is asked.
    let answer = h.call("palisade_receipt", json!([id])).await.unwrap();
    assert_eq!(answer["state"], "not_credited");

    let (code, message, _) = rpc_error(h.call("palisade_receipt", json!({ "id": "zz" })).await);
    assert_eq!(code, -32602, "{message}");
    let (code, _, data) = rpc_error(h.call("palisade_receipt", json!({ "id": id, "shard": REMOTE })).await);
    assert_eq!((code, data["shard"].clone()), (-32010, json!(REMOTE)));
    let (code, _, _) = rpc_error(h.call("palisade_receipt", json!({ "id": id, "bogus": 1 })).await);
    assert_eq!(code, -32602);

    // A same-shard transfer names no destination shard.
    let final_tx = h.call("palisade_transaction", json!([h.txs[0].id().to_hex()])).await.unwrap();
    assert_eq!(final_tx["state"], "final");
    assert!(final_tx.get("dest_shard").is_none(), "{final_tx}");
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_by_height_and_by_hash_agree_and_carry_the_certificate() {
    let h = Harness::unlimited().await;
    let (block, certificate) = &h.blocks[0];
    let by_height = h.call("palisade_block", json!([{ "shard": VALIDATED, "height": 1 }])).await.unwrap();
    let by_hash = h.call("palisade_block", json!({ "hash": block.hash().to_hex() })).await.unwrap();
    let by_position = h.call("palisade_block", json!([VALIDATED, 1])).await.unwrap();
    assert_eq!(by_height, by_hash);
    assert_eq!(by_height, by_position);
    assert_eq!(by_height["hash"], block.hash().to_hex());
    let header = &by_height["header"];
    assert_eq!(header["height"], 1);
    assert_eq!(header["shard"], VALIDATED);
    assert_eq!(header["parent"], h.genesis.hash().to_hex());
    assert_eq!(header["tx_root"], block.header.tx_root.to_hex());
    assert_eq!(header["timestamp_ms"], block.header.timestamp_ms);
    let txs = by_height["txs"].as_array().unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["id"], h.txs[0].id().to_hex());
    assert_eq!(txs[0]["sender"], h.sender.address().to_bech32());
    assert_eq!(txs[0]["amount_units"], AMOUNT.units());
    assert_eq!(txs[0]["amount"], "1.5");
    assert_eq!(txs[0]["fee_units"], FEE.units());
    assert_eq!(txs[0]["nonce"], 0);
    let cert = &by_height["certificate"];
    assert_eq!(cert["height"], 1);
    assert_eq!(cert["view"], certificate.view);
    assert_eq!(cert["block_hash"], block.hash().to_hex());
    assert_eq!(cert["signers"], json!(SIGNERS));
    let signatures: Vec<String> = certificate.signatures.iter().map(|s| hex::encode(s.signature.0)).collect();
    assert_eq!(cert["signatures"], json!(signatures));
    assert_eq!(cert["encoded"], hex::encode(codec::encode(certificate)));

    // Absent blocks are null; a shard not run is an error; bad params are invalid.
    assert_eq!(h.call("palisade_block", json!([{ "shard": VALIDATED, "height": 3 }])).await.unwrap(), Value::Null);
    assert_eq!(h.call("palisade_block", json!([{ "hash": Hash([9; 32]).to_hex() }])).await.unwrap(), Value::Null);
    let (code, _, _) = rpc_error(h.call("palisade_block", json!([{ "shard": REMOTE, "height": 1 }])).await);
    assert_eq!(code, -32010);
    let (code, _, _) = rpc_error(h.call("palisade_block", json!([{ "shard": 0 }])).await);
    assert_eq!(code, -32602);
    let (code, message, _) = rpc_error(h.call("palisade_block", json!([{ "hash": "zz" }])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("hexadecimal"), "{message}");
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_submitted_forwarded_and_tracked() {
    let mut h = Harness::unlimited().await;
    // Final, from the store's index.
    let first = h.call("palisade_transaction", json!([h.txs[1].id().to_hex()])).await.unwrap();
    assert_eq!(
        first,
        json!({ "state": "final", "id": h.txs[1].id().to_hex(), "shard": VALIDATED, "height": 2, "position": 0,
                "fee_units": FEE.units(), "fee": Amount(FEE.units()).to_string() })
    );

    // Submitted to a local shard: pending in its mempool.
    let recipient = key_in(&h.genesis, "recipient", VALIDATED).address();
    let tx = transfer(&h.genesis, &h.sender, 2, recipient, Amount(5));
    let tx_hex = hex::encode(tx.to_bytes());
    let submitted = h.call("palisade_submitTransaction", json!([tx_hex])).await.unwrap();
    assert_eq!(submitted, json!({ "id": tx.id().to_hex(), "shard": VALIDATED, "forwarded": false }));
    let state = h.call("palisade_transaction", json!({ "id": tx.id().to_hex() })).await.unwrap();
    assert_eq!(state, json!({ "state": "pending", "id": tx.id().to_hex(), "shard": VALIDATED }));
    let status = h.call("palisade_status", json!([])).await.unwrap();
    assert_eq!(status["shards"][0]["mempool_txs"], 1);

    // Refusals carry the mempool's reason.
    let (code, _, data) = rpc_error(h.call("palisade_submitTransaction", json!([tx_hex])).await);
    assert_eq!(code, -32020);
    assert_eq!(data["reason"], "duplicate");
    let stale = transfer(&h.genesis, &h.sender, 0, recipient, Amount(5));
    let (code, message, data) =
        rpc_error(h.call("palisade_submitTransaction", json!([hex::encode(stale.to_bytes())])).await);
    assert_eq!(code, -32020);
    assert_eq!(data["reason"], "stale_nonce");
    assert!(message.contains("stale nonce 0"), "{message}");
    let state = h.call("palisade_transaction", json!([stale.id().to_hex()])).await.unwrap();
    assert_eq!(state["state"], "rejected");
    assert!(state["reason"].as_str().unwrap().contains("stale nonce"), "{state}");

    // Undecodable input is invalid params, not a crash.
    for junk in ["zz", "00", &"ab".repeat(5_000)] {
        let (code, _, _) = rpc_error(h.call("palisade_submitTransaction", json!([junk])).await);
        assert_eq!(code, -32602, "{}", &junk[..2]);
    }

    // For a shard not run here: checked, then gossiped to that shard.
    let remote = key_in(&h.genesis, "remote", REMOTE);
    let remote_to = key_in(&h.genesis, "remote-recipient", REMOTE).address();
    let forward = transfer(&h.genesis, &remote, 0, remote_to, Amount(1));
    let answer = h.call("palisade_submitTransaction", json!([hex::encode(forward.to_bytes())])).await.unwrap();
    assert_eq!(answer, json!({ "id": forward.id().to_hex(), "shard": REMOTE, "forwarded": true }));
    match h.commands.try_recv().unwrap() {
        Command::Publish { shard, kind, data } => {
            assert_eq!((shard, kind), (REMOTE, TopicKind::Txs));
            let batch = palisade_node::wire::decode_tx_batch(&data).unwrap();
            assert_eq!(batch.len(), 1, "a batch of one");
            assert_eq!(batch[0].as_ref(), forward.to_bytes().as_slice());
        }
        other => panic!("expected a publish, got {other:?}"),
    }
    let mut forged = transfer(&h.genesis, &remote, 1, remote_to, Amount(1));
    forged.signature.0[0] ^= 1;
    let (code, _, data) =
        rpc_error(h.call("palisade_submitTransaction", json!([hex::encode(forged.to_bytes())])).await);
    assert_eq!((code, data["reason"].as_str()), (-32020, Some("bad_signature")));
    let mut other_chain = forward.body.clone();
    other_chain.chain_id = "elsewhere".into();
    let other_chain = other_chain.sign(&remote);
    let (_, _, data) =
        rpc_error(h.call("palisade_submitTransaction", json!([hex::encode(other_chain.to_bytes())])).await);
    assert_eq!(data["reason"], "wrong_chain");
    assert!(h.commands.try_recv().is_err(), "refused transactions must not be gossiped");

    let unknown = h.call("palisade_transaction", json!([Hash([7; 32]).to_hex()])).await.unwrap();
    assert_eq!(unknown, json!({ "state": "unknown", "id": Hash([7; 32]).to_hex() }));
    let _ = h.shutdown.send(true);
}

/// `palisade_submitTransactions` answers each transaction as a single
/// submission would, in order: admitted, refused with the mempool's
/// reason, malformed, forwarded; an oversized batch is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_transactions_is_answered_one_by_one_in_order() {
    let mut h = Harness::unlimited().await;
    let recipient = key_in(&h.genesis, "recipient", VALIDATED).address();
    let first = transfer(&h.genesis, &h.sender, 2, recipient, Amount(5));
    let second = transfer(&h.genesis, &h.sender, 3, recipient, Amount(5));
    let stale = transfer(&h.genesis, &h.sender, 0, recipient, Amount(5));
    let remote = key_in(&h.genesis, "remote", REMOTE);
    let forward = transfer(&h.genesis, &remote, 0, key_in(&h.genesis, "remote-recipient", REMOTE).address(), Amount(1));
    let hexes = json!([[
        hex::encode(first.to_bytes()),
        hex::encode(stale.to_bytes()),
        "zz",
        hex::encode(second.to_bytes()),
        hex::encode(forward.to_bytes()),
    ]]);
    let answers = h.call("palisade_submitTransactions", hexes).await.unwrap();
    let answers = answers.as_array().expect("an array");
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(answers[0], json!({ "ok": { "id": first.id().to_hex(), "shard": VALIDATED, "forwarded": false } }));
    assert_eq!(answers[1]["error"]["code"], -32020);
    assert_eq!(answers[1]["error"]["data"]["reason"], "stale_nonce");
    assert_eq!(answers[2]["error"]["code"], -32602, "malformed: invalid params, alone");
    assert_eq!(answers[3]["ok"]["id"], second.id().to_hex());
    assert_eq!(answers[4], json!({ "ok": { "id": forward.id().to_hex(), "shard": REMOTE, "forwarded": true } }));
    let status = h.call("palisade_status", json!([])).await.unwrap();
    assert_eq!(status["shards"][0]["mempool_txs"], 2);
    assert!(matches!(h.commands.try_recv(), Ok(Command::Publish { shard: REMOTE, .. })), "the forwarded one");

    // Over the limit: refused whole, nothing submitted.
    let too_many = vec![hex::encode(first.to_bytes()); palisade_ledger::api::MAX_SUBMIT_BATCH + 1];
    let (code, message, _) = rpc_error(h.call("palisade_submitTransactions", json!([too_many])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("limit"), "{message}");
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_come_from_genesis_and_local_state() {
    let h = Harness::unlimited().await;
    let all = h.call("palisade_validators", json!([])).await.unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), SHARDS as usize);
    for (shard, entry) in all.iter().enumerate() {
        let tracked = shard != REMOTE as usize;
        assert_eq!(entry["shard"], shard);
        assert_eq!(entry["tracked"], tracked);
        let validators = entry["validators"].as_array().unwrap();
        assert_eq!(validators.len(), 4);
        assert_eq!(validators[3]["name"], format!("validator-{shard}-3"));
        assert_eq!(validators[3]["genesis_stake_units"], 1_000_000_000_000_000u64);
        assert_eq!(validators[3].get("state").is_some(), tracked, "{entry}");
    }
    // The proposer of shard 0's blocks earned the fees.
    let one = h.call("palisade_validators", json!({ "shard": VALIDATED })).await.unwrap();
    let proposer = &one[0]["validators"][0]["state"];
    assert_eq!(one[0]["height"], 2);
    assert_eq!(proposer["stake_units"], 1_000_000_000_000_000u64);
    assert_eq!(proposer["jailed"], false);
    // Two blocks: two fees and two block rewards, all the shard minted.
    let minted = one[0]["minted_units"].as_u64().unwrap();
    assert_eq!(minted, 2 * h.genesis.params.block_reward_units);
    assert_eq!(one[0]["burned_units"], 0);
    assert_eq!(proposer["rewards_units"], 2 * FEE.units() + minted);
    assert_eq!(proposer["rewards"], Amount(2 * FEE.units() + minted).to_string());
    assert_eq!(one[0]["validators"][1]["state"]["rewards_units"], 0);
    assert!(proposer.get("slashed").is_none());
    let (code, _, _) = rpc_error(h.call("palisade_validators", json!([SHARDS])).await);
    assert_eq!(code, -32602);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_checked_before_it_is_pooled() {
    let h = Harness::unlimited().await;
    let evidence = palisade_ledger::workload::dev_evidence(&h.genesis, VALIDATED, 1, 2);
    let hex_of = |e: &palisade_consensus::Evidence| hex::encode(codec::encode(e));
    let pooled = h.call("palisade_submitEvidence", json!([hex_of(&evidence)])).await.unwrap();
    assert_eq!(pooled["shard"], VALIDATED);
    assert_eq!(pooled["offender"], h.genesis.committee(VALIDATED).unwrap().validators[1].address.to_bech32());
    assert_eq!(pooled["evidence"], palisade_ledger::slashing::evidence_hash(&evidence).to_hex());
    // One piece per offender waits.
    let again = palisade_ledger::workload::dev_evidence(&h.genesis, VALIDATED, 1, 1);
    let (code, message, _) = rpc_error(h.call("palisade_submitEvidence", json!([hex_of(&again)])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("already pending"), "{message}");
    // Forged, junk, or for a shard this node does not run: refused.
    let mut forged = palisade_ledger::workload::dev_evidence(&h.genesis, VALIDATED, 2, 2);
    forged.second.signature = forged.first.signature;
    let (code, message, _) = rpc_error(h.call("palisade_submitEvidence", json!([hex_of(&forged)])).await);
    assert_eq!(code, -32602);
    assert!(message.contains("signature"), "{message}");
    let (code, _, _) = rpc_error(h.call("palisade_submitEvidence", json!(["zz"])).await);
    assert_eq!(code, -32602);
    let (code, _, _) = rpc_error(h.call("palisade_submitEvidence", json!(["00ff"])).await);
    assert_eq!(code, -32602);
    let remote = palisade_ledger::workload::dev_evidence(&h.genesis, REMOTE, 1, 2);
    let (code, _, _) = rpc_error(h.call("palisade_submitEvidence", json!([hex_of(&remote)])).await);
    assert_eq!(code, -32010);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_batched_requests_are_answered_not_fatal() {
    let h = Harness::unlimited().await;
    let status_call = r#"{"jsonrpc":"2.0","id":1,"method":"palisade_status","params":[]}"#;

    let (status, body) = post_json(h.rpc, r#"{"jsonrpc":"2.0","id":1,"method":"#).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");

    let (_, body) = post_json(h.rpc, r#"{"jsonrpc":"2.0","id":5,"method":"palisade_nope"}"#).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], -32601);

    // Declared bigger than the limit: refused before the body is read.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        h.rpc,
        2 * rpc::DEFAULT_MAX_REQUEST_BYTES
    );
    let (status, _, body) = raw_http(h.rpc, &head, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], -32007);
    // An actual body over the limit, sent in chunks (no length up front).
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"palisade_status","params":["{}"]}}"#, "a".repeat(1 << 20));
    let chunked_head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.rpc
    );
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).into_bytes();
    let mut stream = TcpStream::connect(h.rpc).await.unwrap();
    stream.write_all(chunked_head.as_bytes()).await.unwrap();
    // The server may stop reading (and reset) once over the limit; both a 413
    // and a reset are acceptable, a crash is not.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&chunked)).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    // jsonrpsee answers a body over the limit without a Content-Length with
    // 500 and -32603 (its body limiter reports a stream error), one with a
    // Content-Length with 413 and -32007; the connection may also be reset
    // before the answer is read. Never silence, never a crash.
    if !response.is_empty() {
        let text = String::from_utf8_lossy(&response);
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
        let code = body["error"]["code"].as_i64().unwrap();
        assert!(matches!((status, code), (413, -32007) | (500, -32603)), "{text}");
    }

    // The server still answers.
    let (status, body) = post_json(h.rpc, status_call).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["result"]["chain_id"], h.genesis.chain_id);

    // Batches: up to the limit answered call by call, beyond it refused.
    let batch = |n: usize| {
        let calls: Vec<Value> =
            (0..n).map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "palisade_status", "params": [] })).collect();
        serde_json::to_string(&calls).unwrap()
    };
    let (_, body) = post_json(h.rpc, &batch(rpc::DEFAULT_MAX_BATCH as usize)).await;
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.len(), rpc::DEFAULT_MAX_BATCH as usize);
    assert!(answers.iter().all(|a| a["result"]["shard_count"] == SHARDS), "{body}");
    let (_, body) = post_json(h.rpc, &batch(rpc::DEFAULT_MAX_BATCH as usize + 1)).await;
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["error"]["code"], -32600, "{body}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("exceeds the limit of 32"), "{body}");
    // The calls of a batch are counted one by one.
    let counted = h.ctx.metrics.rpc_requests.get_or_create(&MethodLabel { method: "palisade_status".into() }).get();
    assert_eq!(counted, 1 + rpc::DEFAULT_MAX_BATCH as u64);
    let unknown = h.ctx.metrics.rpc_requests.get_or_create(&MethodLabel { method: "unknown".into() }).get();
    assert_eq!(unknown, 1);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_client_is_rate_limited() {
    const PER_SECOND: u32 = 20;
    let h = Harness::start(RpcConfig { requests_per_second_per_client: PER_SECOND, ..RpcConfig::default() }).await;
    let client = h.client();
    let (mut ok, mut limited) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for _ in 0..100 {
        match client.request::<Value, _>("palisade_status", rpc_params![]).await {
            Ok(_) => ok += 1,
            Err(ClientError::Call(e)) => {
                assert_eq!(e.code(), -32005);
                assert_eq!(e.message(), "rate limited");
                let data: Value = serde_json::from_str(e.data().unwrap().get()).unwrap();
                assert_eq!(data["limit_per_second"], PER_SECOND);
                assert!(data["retry_after_ms"].as_u64().unwrap() <= 1_000);
                limited += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowance = f64::from(PER_SECOND) * (1.0 + elapsed) + 1.0;
    assert!(ok >= u64::from(PER_SECOND), "only {ok} calls passed");
    assert!((ok as f64) <= allowance, "{ok} calls passed in {elapsed:.2} s");
    assert!(limited > 0);
    assert_eq!(h.ctx.metrics.rpc_rate_limited.get(), limited);
    // Every call was counted, limited or not.
    let counted = h.ctx.metrics.rpc_requests.get_or_create(&MethodLabel { method: "palisade_status".into() }).get();
    assert_eq!(counted, 100);

    // After a pause the bucket is full again; a batch spends it call by call.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let calls: Vec<Value> =
        (0..30).map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "palisade_status", "params": [] })).collect();
    let (_, body) = post_json(h.rpc, &serde_json::to_string(&calls).unwrap()).await;
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.len(), 30);
    let passed = answers.iter().filter(|a| a.get("result").is_some()).count();
    let refused = answers.iter().filter(|a| a["error"]["code"] == -32005).count();
    assert_eq!(passed + refused, 30, "{body}");
    assert!((PER_SECOND as usize..=PER_SECOND as usize + 2).contains(&passed), "{passed} passed");

    // A call of many transactions spends a token for each: those beyond the
    // bucket are refused (and counted) as calls of their own would be, the
    // rest decoded (here: not hex).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let limited_before = h.ctx.metrics.rpc_rate_limited.get();
    let answers = h.call("palisade_submitTransactions", json!([vec!["zz"; 30]])).await.unwrap();
    let answers = answers.as_array().expect("an array");
    assert_eq!(answers.len(), 30);
    let decoded = answers.iter().take_while(|a| a["error"]["code"] == -32602).count();
    assert!((PER_SECOND as usize..=PER_SECOND as usize + 2).contains(&decoded), "{answers:?}");
    assert!(answers[decoded..].iter().all(|a| a["error"]["code"] == -32005), "{answers:?}");
    assert_eq!(h.ctx.metrics.rpc_rate_limited.get() - limited_before, (30 - decoded) as u64);
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    let h = Harness::start(RpcConfig { max_connections: 2, requests_per_second_per_client: 0, ..RpcConfig::default() })
        .await;
    let status_call = r#"{"jsonrpc":"2.0","id":1,"method":"palisade_status","params":[]}"#;
    let first = TcpStream::connect(h.rpc).await.unwrap();
    let _second = TcpStream::connect(h.rpc).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third is accepted and closed at once: no answer (EOF or reset).
    let mut third = TcpStream::connect(h.rpc).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{status_call}",
        status_call.len()
    );
    let _ = third.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut response)).await.unwrap();
    assert!(read.is_err() || response.is_empty(), "{}", String::from_utf8_lossy(&response));
    // Closing one frees its place.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = TcpStream::connect(h.rpc).await.unwrap();
        let _ = stream.write_all(request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        if response.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no place freed after a connection closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_blocks_are_pushed_to_websocket_subscribers() {
    let h = Harness::unlimited().await;
    let client = WsClientBuilder::default().build(format!("ws://{}", h.rpc)).await.unwrap();
    let mut subscription = client
        .subscribe::<Value, _>(
            "palisade_subscribeFinalBlocks",
            rpc_params![VALIDATED],
            "palisade_unsubscribeFinalBlocks",
        )
        .await
        .unwrap();
    for (block, certificate) in &h.blocks {
        let sent = h.final_blocks[&VALIDATED]
            .send(FinalBlock {
                block: Arc::new(block.clone()),
                hash: block.hash(),
                certificate: Arc::new(certificate.clone()),
            })
            .unwrap();
        assert_eq!(sent, 1, "one subscriber");
        let notice = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            notice,
            json!({ "shard": VALIDATED, "height": block.header.height, "hash": block.hash().to_hex(),
                    "tx_count": 1, "timestamp_ms": block.header.timestamp_ms })
        );
    }
    subscription.unsubscribe().await.unwrap();
    // The subscription task notices and drops its receiver.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.final_blocks[&VALIDATED].receiver_count() > 0 {
        assert!(std::time::Instant::now() < deadline, "the subscription did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = client
        .subscribe::<Value, _>("palisade_subscribeFinalBlocks", rpc_params![REMOTE], "palisade_unsubscribeFinalBlocks")
        .await;
    match refused {
        Err(ClientError::Call(e)) => assert_eq!(e.code(), -32010),
        other => panic!("expected -32010, got {other:?}"),
    }
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_when_a_validated_shard_stops_committing() {
    let h = Harness::unlimited().await;
    let (status, headers, body) = get(h.health, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"].starts_with("application/json"));
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["healthy"], true);
    assert_eq!(report["shards"].as_array().unwrap().len(), 2);
    assert_eq!(report["shards"][0]["validating"], true);
    assert_eq!(report["shards"][0]["height"], 2);

    // A followed shard that stalls is reported but does not fail the node.
    h.status(FOLLOWED).write().unwrap().last_commit_unix_ms = now_ms() - 60_000;
    let (status, _, body) = get(h.health, "/health").await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["shards"][1]["healthy"], false);
    assert!(report["shards"][1]["reason"].as_str().unwrap().contains("limit 5 s"), "{report}");

    // A validated shard that stalls does.
    h.status(VALIDATED).write().unwrap().last_commit_unix_ms = now_ms() - 12_300;
    let (status, _, body) = get(h.health, "/health").await;
    assert_eq!(status, 503, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["healthy"], false);
    let shard0 = &report["shards"][0];
    assert_eq!(shard0["healthy"], false);
    let reason = shard0["reason"].as_str().unwrap();
    assert!(reason.starts_with("no commit for 12.") && reason.ends_with("s (limit 5 s)"), "{reason}");
    assert!(shard0["seconds_since_last_commit"].as_f64().unwrap() >= 12.3);

    // It recovers with the next commit.
    h.status(VALIDATED).write().unwrap().last_commit_unix_ms = now_ms();
    assert_eq!(get(h.health, "/health").await.0, 200);
    assert_eq!(get(h.health, "/nope").await.0, 404);
    let _ = h.shutdown.send(true);
}

/// Parses OpenMetrics text: every sample is `name{labels} value`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(series.starts_with("palisade_"), "{series}");
        if let Some((_, labels)) = series.split_once('{') {
            assert!(labels.ends_with('}'), "{series}");
        }
        assert!(out.insert(series.to_string(), value).is_none(), "duplicate series {series}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_openmetrics_with_shard_heights_and_rpc_counts() {
    let h = Harness::unlimited().await;
    h.ctx.metrics.height.get_or_create(&palisade_node::metrics::ShardLabel { shard: VALIDATED }).set(2);
    h.call("palisade_status", json!([])).await.unwrap();
    let (status, headers, body) = get(h.health, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], OPENMETRICS_CONTENT_TYPE);
    let samples = samples(&body);
    assert_eq!(samples["palisade_shard_height{shard=\"0\"}"], 2.0);
    assert_eq!(samples["palisade_shard_height{shard=\"1\"}"], 0.0);
    assert_eq!(samples["palisade_rpc_requests_total{method=\"palisade_status\"}"], 1.0);
    // Every method's series exists from the start.
    assert_eq!(samples["palisade_rpc_requests_total{method=\"palisade_block\"}"], 0.0);
    assert_eq!(samples["palisade_rpc_rate_limited_total"], 0.0);
    let _ = h.shutdown.send(true);
}

/// The Prometheus text format (0.0.4) of OpenMetrics text, which is what
/// `promtool check metrics` reads: OpenMetrics names a counter family without
/// its `_total` suffix (its samples carry it), the text format names the
/// family after its samples; `# EOF` does not exist there.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let mut line = line.to_string();
        for prefix in ["# HELP ", "# TYPE "] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let (name, tail) = rest.split_once(' ').unwrap();
                if counters.contains(&name) {
                    line = format!("{prefix}{name}_total {tail}");
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_when_it_is_installed() {
    let h = Harness::unlimited().await;
    let (_, _, body) = get(h.health, "/metrics").await;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: promtool is not installed; skipping the promtool check of /metrics");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(prometheus_text(&body).as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = h.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_both_servers() {
    let h = Harness::unlimited().await;
    assert_eq!(get(h.health, "/health").await.0, 200);
    h.shutdown.send(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rpc_closed = TcpStream::connect(h.rpc).await.is_err();
        let health_closed = TcpStream::connect(h.health).await.is_err();
        if rpc_closed && health_closed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "servers still listening after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
