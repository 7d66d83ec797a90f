//! End-to-end tests: real `palisade-node` processes on 127.0.0.1, real
//! libp2p sockets, real RocksDB directories, killed with SIGKILL and
//! restarted. Every wait is bounded; a failure prints the tail of the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::future::Future;
use std::time::Duration;

use palisade_ledger::api::client::Client;
use palisade_ledger::api::{ReceiptResponse, TransactionResponse};
use palisade_ledger::workload::Wallets;
use palisade_ledger::{Address, Amount, Genesis, Hash, ShardId};
use palisade_testnet::local::{LocalNet, Ports, find_node_binary, operator};

/// Generous bound on any one wait: CI machines are small and shared.
const WAIT: Duration = Duration::from_secs(90);

fn network(shards: u32, wallets: usize) -> (LocalNet, Wallets, tempfile::TempDir) {
    let mut genesis = Genesis::dev(shards, 4);
    let wallets = Wallets::new(&genesis.chain_id, "e2e", wallets);
    wallets.fund(&mut genesis, "e2e", Amount::from_pal(1_000).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let binary = find_node_binary(true).unwrap();
    let net = LocalNet::create(dir.path(), genesis, binary, Ports::Free).unwrap();
    (net, wallets, dir)
}

/// A one-shard network of 4 validators, started, every validator past
/// height 2.
async fn one_shard_running() -> (LocalNet, Vec<Client>, tempfile::TempDir) {
    let (mut net, _, dir) = network(1, 1);
    net.start_all().unwrap();
    let rpc = clients(&net);
    wait_for(&net, "height 2", || all_at(&rpc, &SHARD0, 0, 2)).await;
    (net, rpc, dir)
}

/// Node indices of each shard in a two-shard network.
const SHARD0: [usize; 4] = [0, 1, 2, 3];
const SHARD1: [usize; 4] = [4, 5, 6, 7];

/// A two-shard network of 2 × 4 validators with 12 funded wallets, started,
/// every validator past height 2.
async fn two_shards_running() -> (LocalNet, Wallets, Vec<Client>, tempfile::TempDir) {
    let (mut net, wallets, dir) = network(2, 12);
    net.start_all().unwrap();
    let rpc = clients(&net);
    wait_for(&net, "shard 0 to commit height 2", || all_at(&rpc, &SHARD0, 0, 2)).await;
    wait_for(&net, "shard 1 to commit height 2", || all_at(&rpc, &SHARD1, 1, 2)).await;
    (net, wallets, rpc, dir)
}

fn clients(net: &LocalNet) -> Vec<Client> {
    net.nodes.iter().map(|n| Client::new(&n.rpc_url()).unwrap()).collect()
}

/// Waits until `id` is final; returns its shard.
async fn final_shard(rpc: &Client, id: &Hash) -> ShardId {
    match rpc.wait_final(id, Duration::from_millis(100), WAIT).await.unwrap() {
        TransactionResponse::Final { shard, .. } => shard,
        other => panic!("transaction {id} not final: {other:?}"),
    }
}

/// (balance units, nonce) of `address`.
async fn account(rpc: &Client, address: &palisade_ledger::Address) -> (u64, u64) {
    let account = rpc.account(address, false).await.unwrap();
    (account.balance_units, account.nonce)
}

/// Polls `check` every 200 ms until it returns true, for at most `WAIT`.
async fn wait_for<F, Fut>(net: &LocalNet, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}\n{}", net.logs_tail(15));
}

/// Waits until every node in `nodes` shows `address` holding exactly `units`.
async fn wait_balance(net: &LocalNet, rpc: &[Client], nodes: &[usize], address: &Address, units: u64) {
    for &i in nodes {
        wait_for(net, &format!("node {i} to show {units} units at {address}"), || async {
            rpc[i].account(address, false).await.is_ok_and(|account| account.balance_units == units)
        })
        .await;
    }
}

/// The height of `shard` on node `i`, or 0 if it does not answer.
async fn height(rpc: &[Client], i: usize, shard: u32) -> u64 {
    rpc[i].height(shard).await.ok().flatten().unwrap_or(0)
}

/// Every node in `nodes` is at `shard` height `target` or above.
async fn all_at(rpc: &[Client], nodes: &[usize], shard: u32, target: u64) -> bool {
    for &i in nodes {
        if height(rpc, i, shard).await < target {
            return false;
        }
    }
    true
}

/// POSTs raw bytes to a JSON-RPC endpoint; returns the raw HTTP answer.
async fn raw_post(url: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before taking the whole body.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn pal(n: u64) -> Amount {
    Amount::from_pal(n).unwrap()
}

/// Index of the first wallet on `shard`, and of another on the same shard.
fn pair_on(wallets: &Wallets, shard_count: u32, shard: u32) -> (usize, usize) {
    let on: Vec<usize> = (0..wallets.len()).filter(|&i| wallets.address(i).shard(shard_count) == shard).collect();
    assert!(on.len() >= 2, "need two funded wallets on shard {shard}; fund more");
    (on[0], on[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_commits_survives_a_kill_and_the_restarted_validator_votes_again() {
    let (mut net, mut wallets, _dir) = network(1, 2);
    net.start_all().unwrap();
    let rpc = clients(&net);
    let everyone = [0, 1, 2, 3];
    wait_for(&net, "all four validators to commit height 2", || all_at(&rpc, &everyone, 0, 2)).await;

    // A transfer becomes final and both balances move exactly.
    let (from, to) = (0, 1);
    let (before_from, _) = account(&rpc[0], &wallets.address(from)).await;
    let (before_to, _) = account(&rpc[0], &wallets.address(to)).await;
    let fee = Amount(1_000);
    let tx = wallets.transfer(from, wallets.address(to), pal(5), fee);
    let id = rpc[0].submit(&tx).await.unwrap().id;
    assert_eq!(final_shard(&rpc[1], &id).await, 0);
    let (after_from, nonce) = account(&rpc[1], &wallets.address(from)).await;
    let (after_to, _) = account(&rpc[1], &wallets.address(to)).await;
    assert_eq!(after_from, before_from - pal(5).units() - fee.units());
    assert_eq!(after_to, before_to + pal(5).units());
    assert_eq!(nonce, 1);

    // Bad input changes nothing and the node stays up: a wrongly signed
    // transaction, malformed JSON, an oversized body.
    let mut forged = wallets.transfer(from, wallets.address(to), pal(5), fee);
    forged.signature.0[0] ^= 1;
    let refused = rpc[0].submit(&forged).await.unwrap_err().to_string();
    assert!(refused.contains("signature"), "{refused}");
    wallets.set_nonce(from, 1);
    let url = net.nodes[0].rpc_url();
    assert!(raw_post(&url, b"{not json").await.contains("Parse error"));
    let huge = vec![b'x'; 8 * 1024 * 1024];
    let answer = raw_post(&url, &huge).await;
    assert!(answer.starts_with("HTTP/1.1 413") || answer.contains("too big"), "{answer}");
    assert_eq!(account(&rpc[0], &wallets.address(from)).await.1, 1);

    // kill -9 one validator: the other three keep committing, transfers too.
    net.kill("validator-0-3").unwrap();
    let h = height(&rpc, 0, 0).await;
    wait_for(&net, "three validators to commit 3 more heights", || all_at(&rpc, &[0, 1, 2], 0, h + 3)).await;
    let tx = wallets.transfer(from, wallets.address(to), pal(1), fee);
    let id = rpc[1].submit(&tx).await.unwrap().id;
    final_shard(&rpc[2], &id).await;

    // Restarted, it catches up from its store and its peers...
    net.start("validator-0-3").unwrap();
    let h = height(&rpc, 0, 0).await;
    wait_for(&net, "the restarted validator to catch up", || all_at(&rpc, &[3], 0, h)).await;
    // ...and votes again: with another validator down, no quorum forms
    // without the restarted one.
    net.kill("validator-0-2").unwrap();
    let h = height(&rpc, 0, 0).await;
    wait_for(&net, "commits that need the restarted validator's votes", || all_at(&rpc, &[0, 1, 3], 0, h + 3)).await;
    let tx = wallets.transfer(from, wallets.address(to), pal(1), fee);
    let id = rpc[3].submit(&tx).await.unwrap().id;
    final_shard(&rpc[0], &id).await;
    let (after, nonce) = account(&rpc[3], &wallets.address(from)).await;
    assert_eq!(nonce, 3);
    assert_eq!(after, before_from - pal(7).units() - 3 * fee.units());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_commit_independently() {
    let (mut net, mut wallets, rpc, _dir) = two_shards_running().await;

    // A transfer on each shard, each submitted to a validator of its shard.
    for (shard, node) in [(0u32, 0usize), (1, 4)] {
        let (from, to) = pair_on(&wallets, 2, shard);
        let tx = wallets.transfer(from, wallets.address(to), pal(2), Amount(1_000));
        let id = rpc[node].submit(&tx).await.unwrap().id;
        assert_eq!(final_shard(&rpc[node + 1], &id).await, shard);
    }

    // Halt shard 1 (two of four validators down: no quorum). Shard 0 goes on.
    net.kill("validator-1-2").unwrap();
    net.kill("validator-1-3").unwrap();
    let halted_at = height(&rpc, 4, 1).await;
    let h0 = height(&rpc, 0, 0).await;
    wait_for(&net, "shard 0 to commit 3 more heights while shard 1 is halted", || all_at(&rpc, &SHARD0, 0, h0 + 3))
        .await;
    let h1 = height(&rpc, 4, 1).await;
    // At most the height that was in flight when the kill landed.
    assert!(h1 <= halted_at + 1, "shard 1 committed without a quorum: {halted_at} → {h1}");
}

/// Transfers both ways between two shards, with a validator of each shard
/// killed between two rounds: every transfer is debited once at its source
/// and credited once at its destination, and the balances are exact on every
/// validator, the restarted ones included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_transfers_both_ways_survive_a_kill_on_each_shard() {
    let (mut net, mut wallets, rpc, _dir) = two_shards_running().await;
    let (a, _) = pair_on(&wallets, 2, 0);
    let (b, _) = pair_on(&wallets, 2, 1);
    let (a_start, _) = account(&rpc[0], &wallets.address(a)).await;
    let (b_start, _) = account(&rpc[4], &wallets.address(b)).await;
    let fee = Amount(1_000);
    // (id, destination shard); each side's expected balance change.
    let mut sent: Vec<(Hash, ShardId)> = Vec::new();
    let (mut a_expect, mut b_expect) = (i128::from(a_start), i128::from(b_start));
    let mut round = |wallets: &mut Wallets, amounts: &[u64], via: (usize, usize)| {
        let mut txs = Vec::new();
        for &units in amounts {
            txs.push((via.0, wallets.transfer(a, wallets.address(b), Amount(units), fee), 1));
            txs.push((via.1, wallets.transfer(b, wallets.address(a), Amount(units * 3), fee), 0));
            a_expect += i128::from(units * 3) - i128::from(units + fee.units());
            b_expect += i128::from(units) - i128::from(units * 3 + fee.units());
        }
        txs
    };

    let first = round(&mut wallets, &[1_000_000, 2_000_000], (0, 4));
    for (node, tx, dest) in first {
        sent.push((rpc[node].submit(&tx).await.unwrap().id, dest));
    }
    // Mid-way: one validator of each shard dies (each shard keeps a quorum).
    net.kill("validator-0-3").unwrap();
    net.kill("validator-1-1").unwrap();
    let second = round(&mut wallets, &[3_000_000, 4_000_000, 5_000_000], (1, 6));
    for (node, tx, dest) in second {
        sent.push((rpc[node].submit(&tx).await.unwrap().id, dest));
    }

    for (id, dest) in &sent {
        let source = 1 - dest;
        let at_source = if source == 0 { &rpc[2] } else { &rpc[6] };
        match at_source.wait_final(id, Duration::from_millis(100), WAIT).await.unwrap() {
            TransactionResponse::Final { shard, dest_shard, .. } => {
                assert_eq!((shard, dest_shard), (source, Some(*dest)), "{id}");
            }
            other => panic!("transfer {id} not final at its source: {other:?}\n{}", net.logs_tail(15)),
        }
        let at_dest = if *dest == 0 { &rpc[1] } else { &rpc[7] };
        match at_dest.wait_credited(id, *dest, Duration::from_millis(100), WAIT).await.unwrap() {
            ReceiptResponse::Credited { shard, source_shard, .. } => assert_eq!((shard, source_shard), (*dest, source)),
            other => panic!("transfer {id} not credited: {other:?}\n{}", net.logs_tail(15)),
        }
    }

    // Exact on the survivors, then on the restarted validators once caught up.
    net.start("validator-0-3").unwrap();
    net.start("validator-1-1").unwrap();
    let (a_address, b_address) = (wallets.address(a), wallets.address(b));
    wait_balance(&net, &rpc, &SHARD0, &a_address, u64::try_from(a_expect).unwrap()).await;
    wait_balance(&net, &rpc, &SHARD1, &b_address, u64::try_from(b_expect).unwrap()).await;
    // Sent 5 times each way: the senders' nonces say each was executed once.
    assert_eq!(account(&rpc[0], &a_address).await.1, 5);
    assert_eq!(account(&rpc[4], &b_address).await.1, 5);
}

/// A destination that is entirely down while money is sent to it: the
/// source is not blocked, and once the destination is back it finds the
/// receipts by scanning the source's chain (no node of it was up to hear
/// them relayed) and credits each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_destination_credits_what_it_missed_when_it_returns() {
    let (mut net, mut wallets, rpc, _dir) = two_shards_running().await;
    let (a, _) = pair_on(&wallets, 2, 0);
    let (b, _) = pair_on(&wallets, 2, 1);
    let (b_start, _) = account(&rpc[4], &wallets.address(b)).await;
    for name in ["validator-1-0", "validator-1-1", "validator-1-2", "validator-1-3"] {
        net.kill(name).unwrap();
    }

    let mut ids = Vec::new();
    for units in [7_000_000u64, 8_000_000] {
        let tx = wallets.transfer(a, wallets.address(b), Amount(units), Amount(1_000));
        ids.push(rpc[0].submit(&tx).await.unwrap().id);
    }
    for id in &ids {
        match rpc[1].wait_final(id, Duration::from_millis(100), WAIT).await.unwrap() {
            TransactionResponse::Final { dest_shard: Some(1), .. } => {}
            other => panic!("{id} not debited while its destination is down: {other:?}"),
        }
    }
    // The source keeps committing with its destination down.
    let h0 = height(&rpc, 0, 0).await;
    wait_for(&net, "shard 0 to go on", || all_at(&rpc, &SHARD0, 0, h0 + 3)).await;

    for name in ["validator-1-0", "validator-1-1", "validator-1-2", "validator-1-3"] {
        net.start(name).unwrap();
    }
    wait_for(&net, "shard 1 to answer again", || all_at(&rpc, &SHARD1, 1, 2)).await;
    for id in &ids {
        match rpc[6].wait_credited(id, 1, Duration::from_millis(200), WAIT).await.unwrap() {
            ReceiptResponse::Credited { shard: 1, source_shard: 0, .. } => {}
            other => panic!("{id} not credited after the destination returned: {other:?}\n{}", net.logs_tail(15)),
        }
    }
    wait_balance(&net, &rpc, &SHARD1, &wallets.address(b), b_start + 15_000_000).await;
}

/// Catch-up speed of a validator that missed 1,000+ blocks (a measurement,
/// not a pass/fail test): `cargo test --release -p palisade-testnet --test
/// e2e catch_up_speed -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run it by hand"]
async fn catch_up_speed() {
    const MISSED: u64 = 1_000;
    let mut genesis = Genesis::dev(1, 4);
    // Fast blocks, so 1,000 of them pass in a minute or two.
    genesis.params.block_interval_ms = 10;
    genesis.params.heartbeat_interval_ms = 20;
    // Few enough submissions to stay under each node's RPC rate limit.
    let mut wallets = Wallets::new(&genesis.chain_id, "e2e", 8);
    wallets.fund(&mut genesis, "e2e", pal(1_000));
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::create(dir.path(), genesis, find_node_binary(false).unwrap(), Ports::Free).unwrap();
    net.start_all().unwrap();
    let rpc = clients(&net);
    wait_for(&net, "height 2", || all_at(&rpc, &[0, 1, 2, 3], 0, 2)).await;
    net.kill("validator-0-3").unwrap();
    let start = height(&rpc, 0, 0).await;
    // Keep blocks non-empty while the validator is down.
    let mut sent = 0u64;
    while height(&rpc, 0, 0).await < start + MISSED {
        for i in 0..wallets.len() {
            let to = wallets.address((i + 1) % wallets.len());
            let tx = wallets.transfer(i, to, Amount(1), Amount(1));
            if rpc[i % 3].submit(&tx).await.is_ok() {
                sent += 1;
            } else {
                // Refused (e.g. nonce gap after a refusal): resync the nonce.
                if let Ok(account) = rpc[0].account(&wallets.address(i), false).await {
                    wallets.set_nonce(i, account.nonce);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = height(&rpc, 0, 0).await;
    let mut txs = 0usize;
    for h in 1..=target {
        // Spread over three nodes and pace, to stay under the RPC rate limit.
        let node = usize::try_from(h % 3).unwrap();
        let block = rpc[node].block(0, h).await.unwrap().expect("a final block below the tip");
        txs += block.txs.len();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let began = std::time::Instant::now();
    net.start("validator-0-3").unwrap();
    wait_for(&net, "the restarted validator to catch up", || all_at(&rpc, &[3], 0, target)).await;
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "catch-up: {target} blocks ({txs} txs, {sent} submitted) in {seconds:.1} s from process start: \
         {:.0} blocks/s, {:.0} txs/s",
        target as f64 / seconds,
        txs as f64 / seconds
    );
    assert!(height(&rpc, 3, 0).await >= target);
}

/// A short chaos run on two shards: faults come and go, the bank workload
/// keeps going (a third of its transfers cross shards), and the audit finds
/// agreement, exactly-once, every receipt credited once, exact balances and
/// the whole supply intact.
#[test]
fn chaos_on_two_shards_finds_no_violation() {
    use palisade_testnet::chaos::{self, ChaosOptions};
    let genesis = Genesis::dev(2, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::create(dir.path(), genesis, find_node_binary(true).unwrap(), Ports::Free).unwrap();
    net.start_all().unwrap();
    let rpc: Vec<String> = net.nodes.iter().map(|n| n.rpc_url()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clients: Vec<Client> = rpc.iter().map(|u| Client::new(u).unwrap()).collect();
        wait_for(&net, "height 2 everywhere", || async {
            all_at(&clients, &[0, 1, 2, 3], 0, 2).await && all_at(&clients, &[4, 5, 6, 7], 1, 2).await
        })
        .await;
    });
    let options = ChaosOptions { duration: Duration::from_secs(15), seed: 7, ..ChaosOptions::default() };
    let report = chaos::run(&mut net, &options).unwrap();
    println!("{}", report.render());
    assert!(report.violations.is_empty(), "{}", report.render());
    assert!(report.acknowledged > 0, "the workload got nothing final: {}", report.render());
    assert!(report.cross_shard > 0, "no cross-shard transfer was acknowledged: {}", report.render());
    assert!(report.supply.is_some(), "the supply was not read: {}", report.render());
    assert!(!report.applied.is_empty(), "no fault was injected");
}

/// `palisade-testnet failover`'s trials on a one-shard network: each kills
/// the leader of the next height, a survivor decides that height in a
/// later view, the victim comes back and catches up; then two of four are
/// killed and `/health` says the quorum is lost. Times are the
/// benchmark's business (docs/testnet.md), not this test's.
#[test]
fn failover_trials_kill_the_next_leader_then_a_lost_quorum_shows_on_health() {
    use palisade_testnet::failover::{self, FailoverOptions};
    let (mut net, _, _dir) = network(1, 1);
    net.start_all().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rpc = clients(&net);
    runtime.block_on(wait_for(&net, "height 2", || all_at(&rpc, &SHARD0, 0, 2)));
    let options = FailoverOptions { trials: 3, ..FailoverOptions::default() };
    let report = failover::run(&mut net, &options).unwrap();
    println!("{}", report.render());
    assert_eq!(report.trials.len(), 3, "{}", report.render());
    // A killed follower costs no view change, so a height decided in a
    // later view shows its leader was the one killed (the tool asks a node
    // who leads: the chain benches each victim, so the genesis rotation no
    // longer says).
    let committee = &net.genesis.committee(0).unwrap().validators;
    for trial in &report.trials {
        assert!(trial.view >= 1, "height {} was decided in view 0 without its leader", trial.height);
        let block = runtime.block_on(rpc[0].block(0, trial.height)).unwrap().unwrap();
        let proposer = committee.iter().find(|v| v.address == block.header.proposer).unwrap();
        assert_ne!(proposer.name, trial.killed, "height {}: the victim's own block", trial.height);
    }
    let spread = report.spread().unwrap();
    assert!(spread.min_ms > 0.0 && spread.min_ms <= spread.median_ms && spread.median_ms <= spread.max_ms);
    // Every victim is back and voting: the shard commits with all four.
    let top = runtime.block_on(height(&rpc, 0, 0));
    runtime.block_on(wait_for(&net, "all four past the trials", || all_at(&rpc, &SHARD0, 0, top + 2)));
    runtime.block_on(a_lost_quorum_shows_on_health_and_status(&mut net, &rpc));
}

/// Two of four killed: the survivors' `/health` turns 503 saying they lost
/// the quorum, `status` and the metrics say the same; back to 200 once
/// both return. Prints how long detection took (the 500 ms goal is the
/// benchmark's business: docs/testnet.md).
async fn a_lost_quorum_shows_on_health_and_status(net: &mut LocalNet, rpc: &[Client]) {
    let survivor = net.nodes[0].metrics_url();
    let (code, report) = operator::health(&survivor).await.unwrap();
    assert_eq!(code, 200, "{report:?}");
    assert_eq!((report.shards[0].validators_heard, report.shards[0].validators), (4, 4), "{report:?}");
    let killed_at = std::time::Instant::now();
    for victim in ["validator-0-2", "validator-0-3"] {
        net.kill(victim).unwrap();
    }
    let deadline = killed_at + Duration::from_secs(10);
    let report = loop {
        let (code, report) = operator::health(&survivor).await.unwrap();
        if code == 503 {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "still healthy 10 s after losing the quorum: {report:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("a lost quorum showed on /health after {} ms", killed_at.elapsed().as_millis());
    let reason = report.shards[0].reason.clone().unwrap_or_default();
    assert!(reason.starts_with("no quorum: hears 2 of 4 validators"), "{report:?}");
    let status = rpc[0].status().await.unwrap();
    assert!(!status.shards[0].healthy, "{status:?}");
    assert!(status.shards[0].health_reason.as_deref().is_some_and(|r| r.contains("no quorum")), "{status:?}");
    assert_eq!(operator::read_metric(&survivor, "palisade_shard_healthy", 0).await, Ok(0.0));
    assert_eq!(operator::read_metric(&survivor, "palisade_validators_heard", 0).await, Ok(2.0));
    for victim in ["validator-0-2", "validator-0-3"] {
        net.start(victim).unwrap();
    }
    wait_for(net, "/health to turn 200 again", || async {
        operator::health(&survivor).await.is_ok_and(|(code, _)| code == 200)
    })
    .await;
}

/// `palisade_evidence_total` of `shard` on a node's metrics port (`None`
/// if the node does not answer).
async fn evidence_detected(net: &LocalNet, node: usize, shard: u32) -> Option<u64> {
    let url = net.nodes[node].metrics_url();
    operator::read_metric(&url, "palisade_evidence_total", shard).await.ok().map(|count| count as u64)
}

/// The persisted vote guard, end to end: one validator of a fast shard is
/// SIGKILLed at 50 random moments (mid-vote, mid-commit, mid-start) and
/// restarted each time. It must never sign two conflicting votes: the three
/// validators that are never killed detect no equivocation, nothing is
/// slashed, and the shard commits on, the victim with it, once the kills
/// stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kill9_restarts_never_produce_evidence() {
    const RESTARTS: u64 = 50;
    const VICTIM: &str = "validator-0-0";
    let mut genesis = Genesis::dev(1, 4);
    // Blocks back to back, so most kills land while the victim is voting.
    genesis.params.block_interval_ms = 10;
    genesis.params.heartbeat_interval_ms = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::create(dir.path(), genesis, find_node_binary(true).unwrap(), Ports::Free).unwrap();
    net.start_all().unwrap();
    let rpc = clients(&net);
    wait_for(&net, "height 2", || all_at(&rpc, &[0, 1, 2, 3], 0, 2)).await;
    let start = height(&rpc, 1, 0).await;
    let mut rng = palisade_testnet::sim::rng::SimRng::new(0x6b69_6c6c);
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(rng.range(0, 400))).await;
        if let Err(e) = net.kill(VICTIM) {
            let log = std::fs::read_to_string(net.node(VICTIM).unwrap().log_path()).unwrap_or_default();
            let errors: Vec<&str> = log.lines().filter(|l| !l.contains(" INFO ")).collect();
            panic!("{e}: the victim exited by itself:\n{}", errors.join("\n"));
        }
        net.start(VICTIM).unwrap();
    }
    // The victim is back and the shard moved on with it.
    let target = height(&rpc, 1, 0).await + 5;
    wait_for(&net, "every validator past the kills", || all_at(&rpc, &[0, 1, 2, 3], 0, target)).await;
    for node in 1..4 {
        let detected = evidence_detected(&net, node, 0).await;
        assert_eq!(detected, Some(0), "node {node} saw the victim equivocate:\n{}", net.logs_tail(40));
    }
    let validators = rpc[1].validators().await.unwrap();
    let shard = validators.iter().find(|v| v.shard == 0).unwrap();
    assert_eq!(shard.burned_units, Some(0), "something was slashed: {shard:?}");
    let victim = shard.validators.iter().find(|v| v.name == VICTIM).unwrap();
    let state = victim.state.as_ref().unwrap();
    assert!(!state.jailed && state.slashed.is_none(), "{victim:?}");
    let end = height(&rpc, 1, 0).await;
    println!("{RESTARTS} kill -9 restarts of {VICTIM}: shard 0 went from height {start} to {end}, no evidence");
    // Safety is what this test holds to, not a pace (a timed bar flakes on
    // a loaded machine). The victim's failed turns bench it (32 heights,
    // then 64, 128, ...): on an idle 2-core machine the shard moved about
    // 490 heights during the kills, with view changes at four heights only,
    // where before benching it moved 7 to 10 on a loaded one. So the bar is
    // that it moved at all, and that every validator, the victim too,
    // passes the kills (above).
    assert!(end > start, "the shard never moved during the kills: {start} → {end}\n{}", net.logs_tail(60));
}

/// The node's test-only misbehaviours on a real shard of four, one at a
/// time (f = 1): `silent`, `invalid-proposals` and `flood` never stop the
/// shard nor make two honest validators disagree on a block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_invalid_and_flooding_validators_are_outvoted() {
    let (mut net, rpc, _dir) = one_shard_running().await;
    for mode in ["silent", "invalid-proposals", "flood"] {
        net.kill("validator-0-3").unwrap();
        net.start_misbehaving("validator-0-3", mode).unwrap();
        let target = height(&rpc, 0, 0).await + 6;
        wait_for(&net, &format!("the shard to go on beside a {mode} validator"), || {
            all_at(&rpc, &[0, 1, 2], 0, target)
        })
        .await;
        net.kill("validator-0-3").unwrap();
        net.start("validator-0-3").unwrap();
    }
    let top = height(&rpc, 0, 0).await.min(height(&rpc, 1, 0).await).min(height(&rpc, 2, 0).await);
    for h in 1..=top {
        let mut hashes = Vec::new();
        for client in &rpc[..3] {
            hashes.push(client.block(0, h).await.unwrap().unwrap().hash);
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "height {h}: {hashes:?}");
    }
}

/// `equivocate`: honest replicas catch the second votes, the evidence is
/// executed within a few blocks (stake burned, validator jailed, nobody else
/// touched), and the shard goes on with the other three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_validator_is_slashed_and_jailed_and_the_shard_goes_on() {
    let (mut net, rpc, _dir) = one_shard_running().await;
    net.kill("validator-0-1").unwrap();
    let started = height(&rpc, 0, 0).await;
    net.start_misbehaving("validator-0-1", "equivocate").unwrap();
    let slashed = wait_slashed_alone(&net, &rpc, 1).await;
    let target = slashed.included_at + 5;
    wait_for(&net, "the shard to go on without the equivocator", || all_at(&rpc, &[0, 2, 3], 0, target)).await;
    println!(
        "equivocator started at height {started}, offence at {}, slashed at {} ({} units burned)",
        slashed.offence_height, slashed.included_at, slashed.burned_units
    );
}

/// A twin (a second process with a validator's key, its own data directory,
/// honest code) equivocates as soon as the two sign different blocks for
/// one slot: the validator is slashed and jailed, nobody else, and the
/// shard goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_gets_its_validator_slashed_and_the_shard_goes_on() {
    let (mut net, rpc, _dir) = one_shard_running().await;
    let twin = net.add_twin("validator-0-2").unwrap();
    let started = height(&rpc, 0, 0).await;
    net.start(&twin).unwrap();
    let slashed = wait_slashed_alone(&net, &rpc, 2).await;
    wait_for(&net, "the shard to go on", || all_at(&rpc, &[0, 1, 3], 0, slashed.included_at + 5)).await;
    println!(
        "twin started at height {started}; offence ({}) at height {}, slashed by the block at {} ({} blocks later)",
        slashed.phase,
        slashed.offence_height,
        slashed.included_at,
        slashed.included_at - started
    );
    // Within its first three turns as leader: about 10 heights to catch up
    // and 10 for a turn, plus the benches between turns when a conflicting
    // turn ended in a view change before any replica saw both proposals
    // (the chain benches its leader for 32 heights, then 64; CI once saw
    // the offence at 68 heights).
    let bench = palisade_ledger::rotation::BENCH_HEIGHTS;
    let bound = started + 10 + 10 + bench + 2 * bench;
    assert!(slashed.included_at <= bound, "slow: started {started}, slashed {}", slashed.included_at);
}

/// A validator frozen (SIGSTOP) while another is jailed comes back to a
/// shard that cannot commit without it (three active members, quorum three).
/// It wakes at an old height under the old committee and sends view changes
/// whose prepared certificates may count the jailed validator: its peers must
/// not penalise it for them (gossip scoring would cut it off, and the shard
/// with it), and it must sync, adopt the new committee and vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_frozen_across_a_jailing_brings_the_shard_back() {
    let (mut net, rpc, _dir) = one_shard_running().await;
    net.pause("validator-0-3").unwrap();
    let frozen_at = height(&rpc, 0, 0).await;
    let twin = net.add_twin("validator-0-2").unwrap();
    net.start(&twin).unwrap();
    let Some(slashed) = palisade_testnet::drill::probe::wait_slashed(&rpc[0], 0, 2, WAIT).await.and_then(|s| s.slashed)
    else {
        panic!("validator 2 never slashed:\n{}", net.logs_tail(20));
    };
    // Without validator 3 the new committee has no quorum: the shard waits.
    net.resume("validator-0-3").unwrap();
    let target = slashed.included_at + 5;
    wait_for(&net, "the shard to go on with the woken validator", || all_at(&rpc, &[0, 1, 3], 0, target)).await;
    let validators = rpc[3].validators().await.unwrap();
    for v in &validators[0].validators {
        assert_eq!(v.state.as_ref().unwrap().jailed, v.index == 2, "{validators:?}");
    }
    println!(
        "validator 3 frozen at height {frozen_at}; validator 2 slashed by the block at {}; all at {target}",
        slashed.included_at
    );
}

/// Waits until shard 0's validator `index` is slashed (by node 0's state);
/// asserts it is jailed and no other validator is (by node 3's).
async fn wait_slashed_alone(net: &LocalNet, rpc: &[Client], index: u32) -> palisade_ledger::api::SlashJson {
    let Some(slashed) =
        palisade_testnet::drill::probe::wait_slashed(&rpc[0], 0, index, WAIT).await.and_then(|s| s.slashed)
    else {
        panic!("validator {index} never slashed:\n{}", net.logs_tail(20));
    };
    // Node 3 may be a block behind node 0: wait for it to agree.
    wait_for(net, "node 3 to commit the slashing", || all_at(rpc, &[3], 0, slashed.included_at)).await;
    let validators = rpc[3].validators().await.unwrap();
    for v in &validators[0].validators {
        assert_eq!(v.state.as_ref().unwrap().jailed, v.index == index, "{validators:?}");
    }
    slashed
}
