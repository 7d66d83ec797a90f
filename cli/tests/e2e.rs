//! The wallet against real nodes: a one-shard local network of four
//! `palisade-node` processes. A new key is funded from a dev account, pays
//! another address, both balances are checked (one with a proof), a
//! validator is killed with SIGKILL and the wallet transfers again. Then a
//! two-shard network: transfers across shards, both ways.
//!
//! Needs a `palisade-node` binary: `$PALISADE_NODE_BIN`, else one next to
//! the test binary, else it is built (slow: RocksDB).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_cli::config::DEFAULT_FEE;
use palisade_ledger::api::client::Client;
use palisade_ledger::{Amount, Genesis};
use palisade_testnet::local::{LocalNet, Ports, find_node_binary};
use serde_json::Value;

/// Bound on waiting for the network to commit.
const WAIT: Duration = Duration::from_secs(90);
/// The wallet's default fee, in units.
const FEE_UNITS: u64 = DEFAULT_FEE.units();

struct Wallet {
    home: PathBuf,
    password: PathBuf,
    genesis: PathBuf,
    /// `--node`; without it, the config in `home` routes shards to nodes.
    node: Option<String>,
}

impl Wallet {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PALISADE_") {
                command.env_remove(name);
            }
        }
        command
            .arg("--home")
            .arg(&self.home)
            .arg("--password-file")
            .arg(&self.password)
            .arg("--genesis")
            .arg(&self.genesis);
        if let Some(node) = &self.node {
            command.arg("--node").arg(node);
        }
        command.args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "palisade {args:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).unwrap()
    }

    fn balance_units(&self, key: &str) -> u64 {
        self.json(&["balance", key])["balance"]["units"].as_u64().unwrap()
    }

    /// `transfer` in human form; checks the finality line and returns it.
    fn transfer(&self, from: &str, to: &str, amount: &str) -> String {
        let out = self.ok(&["--key", from, "transfer", "--to", to, "--amount", amount]);
        assert!(out.starts_with("final on shard 0 at height "), "{out}");
        assert!(out.lines().next().unwrap().ends_with(" ms"), "{out}");
        out
    }
}

fn units(pal: &str) -> u64 {
    Amount::parse_pal(pal).unwrap().units()
}

/// Waits until every node in `nodes` reports shard 0 at `height` or above.
async fn wait_for_height(net: &LocalNet, nodes: &[usize], height: u64) {
    wait_for_shard_height(net, nodes, 0, height).await;
}

/// A dev network of `shards` × 4 validators under `dir`, started, every
/// validator past height 2.
async fn running_network(dir: &Path, shards: u32) -> LocalNet {
    let genesis = Genesis::dev(shards, 4);
    let mut net = LocalNet::create(&dir.join("net"), genesis, find_node_binary(true).unwrap(), Ports::Free).unwrap();
    net.start_all().unwrap();
    for shard in 0..shards {
        let nodes: Vec<usize> = (0..4).map(|i| (shard * 4 + i) as usize).collect();
        wait_for_shard_height(&net, &nodes, shard, 2).await;
    }
    net
}

/// Waits until every node in `nodes` reports `shard` at `height` or above.
async fn wait_for_shard_height(net: &LocalNet, nodes: &[usize], shard: u32, height: u64) {
    let deadline = Instant::now() + WAIT;
    let clients: Vec<Client> = nodes.iter().map(|&i| Client::new(&net.nodes[i].rpc_url()).unwrap()).collect();
    loop {
        let mut lowest = u64::MAX;
        for client in &clients {
            lowest = lowest.min(client.height(shard).await.ok().flatten().unwrap_or(0));
        }
        if lowest >= height {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for height {height}\n{}", net.logs_tail(15));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn key_address(wallet: &Wallet, name: &str) -> String {
    wallet.json(&["keys", "show", name])["address"].as_str().unwrap().to_string()
}

fn write_password(dir: &Path) -> PathBuf {
    let path = dir.join("wallet-password");
    std::fs::write(&path, "e2e wallet password\n").unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fund_a_new_key_transfer_check_balances_kill_a_validator_and_transfer_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = running_network(dir.path(), 1).await;

    let wallet = Wallet {
        home: dir.path().join("wallet"),
        password: write_password(dir.path()),
        genesis: net.dir.join("genesis.json"),
        node: Some(net.nodes[0].rpc_url()),
    };
    // A funded dev account and two new keys.
    wallet.ok(&["keys", "import-dev", "alice", "--insecure-fast-kdf"]);
    wallet.ok(&["keys", "create", "fresh"]);
    wallet.ok(&["keys", "create", "other"]);
    let fresh = key_address(&wallet, "fresh");
    let other = key_address(&wallet, "other");
    let alice_before = wallet.balance_units("alice");
    assert_eq!(wallet.balance_units("fresh"), 0);

    // Fund the new key, then pay another address from it.
    wallet.transfer("alice", &fresh, "10");
    assert_eq!(wallet.balance_units("alice"), alice_before - units("10") - FEE_UNITS);
    let sent = wallet.transfer("fresh", &other, "2.5");
    let proven = wallet.json(&["balance", "fresh", "--prove"]);
    assert_eq!(proven["verified"], true, "{proven}");
    assert_eq!(proven["balance"]["units"], units("7.5") - FEE_UNITS);
    assert_eq!(proven["nonce"], 1);
    assert!(proven["proof"]["signers"].as_array().unwrap().len() >= 3, "{proven}");
    let human = wallet.ok(&["balance", "other", "--prove"]);
    assert!(human.contains("balance: 2.5 PAL") && human.contains("proof:   verified against block"), "{human}");

    // More than it holds: refused locally, saying both numbers.
    let output = wallet.run(&["--key", "other", "transfer", "--to", &fresh, "--amount", "100"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("insufficient funds") && stderr.contains("holds 2.5 PAL"), "{stderr}");
    assert!(stderr.contains("needs 100.000001 PAL"), "{stderr}");

    // The transaction, its block (verified) and the status, as scripts see them.
    let id = sent.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_string();
    let tx = wallet.json(&["tx", &id]);
    assert_eq!(tx["state"], "final", "{tx}");
    let height = tx["height"].as_u64().unwrap().to_string();
    let block = wallet.json(&["block", "0", &height]);
    assert_eq!(block["verified"], true);
    assert!(block["txs"].as_array().unwrap().iter().any(|t| t["id"] == id.as_str()), "{block}");
    let status = wallet.json(&["status"]);
    assert_eq!(status["shards"][0]["health"], "ok", "{status}");

    // The fee: an idle shard's base fee is the genesis minimum (0), so the
    // default fee is the tip alone; a cap below it refuses to send.
    let fee = wallet.json(&["fee"]);
    assert_eq!(fee["shards"][0]["base_fee"]["units"], 0, "{fee}");
    let capped = wallet.run(&["--key", "fresh", "transfer", "--to", &other, "--amount", "1", "--max-fee", "0.0000001"]);
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert_eq!(capped.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("above --max-fee 0.0000001 PAL") && stderr.contains("hint:"), "{stderr}");
    let at_once = wallet.run(&["--key", "fresh", "transfer", "--to", &other, "--amount", "1", "--expires-in", "0"]);
    assert!(String::from_utf8_lossy(&at_once.stderr).contains("--expires-in 0 expires at once"));
    // A transfer with an expiry in reach is final, and says its last height.
    let expiring =
        wallet.json(&["--key", "fresh", "transfer", "--to", &other, "--amount", "0.5", "--expires-in", "20"]);
    assert_eq!(expiring["state"], "final", "{expiring}");
    assert!(expiring["height"].as_u64() <= expiring["expires_at"].as_u64(), "{expiring}");

    // A wallet whose genesis is not the node's refuses to talk to it.
    let mismatch = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["--home", wallet.home.to_str().unwrap(), "--node", wallet.node.as_deref().unwrap(), "balance", &fresh])
        .env_remove("PALISADE_GENESIS")
        .env_remove("PALISADE_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&mismatch.stderr);
    assert_eq!(mismatch.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the built-in dev genesis") && stderr.contains("hint: pass --genesis"), "{stderr}");

    // kill -9 a validator: the other three still make transfers final.
    net.kill("validator-0-3").unwrap();
    let tip = Client::new(wallet.node.as_deref().unwrap()).unwrap().height(0).await.unwrap().unwrap();
    wait_for_height(&net, &[0, 1, 2], tip + 2).await;
    let fresh_before = wallet.balance_units("fresh");
    let other_before = wallet.balance_units("other");
    wallet.transfer("fresh", &other, "1");
    assert_eq!(wallet.balance_units("fresh"), fresh_before - units("1") - FEE_UNITS);
    assert_eq!(wallet.balance_units("other"), other_before + units("1"));
    let proven = wallet.json(&["balance", "other", "--prove"]);
    assert_eq!(proven["balance"]["units"], units("4"));
    assert!(!net.is_running("validator-0-3"));
    net.start("validator-0-3").unwrap();
    a_wallet_routes_around_a_dead_node(&mut net, &wallet, &other).await;
}

/// The same wallet home, routed by its config to all four validators of
/// shard 0 instead of `--node`: a transfer waiting on the first node when
/// it is killed completes on another without the user retrying, and reads
/// go to the next node while the first is dead.
async fn a_wallet_routes_around_a_dead_node(net: &mut LocalNet, wallet: &Wallet, other: &str) {
    let urls: Vec<String> = (0..4).map(|i| format!("\"{}\"", net.nodes[i].rpc_url())).collect();
    std::fs::write(wallet.home.join("config.toml"), format!("[shard_nodes]\n0 = [{}]\n", urls.join(", "))).unwrap();
    let routed = Wallet {
        node: None,
        home: wallet.home.clone(),
        password: wallet.password.clone(),
        genesis: wallet.genesis.clone(),
    };
    let tip = Client::new(&net.nodes[1].rpc_url()).unwrap().height(0).await.unwrap().unwrap();
    wait_for_height(net, &[0, 1, 2, 3], tip + 1).await;
    let fresh_before = routed.balance_units("fresh");
    assert_eq!(routed.balance_units("other"), units("4"));

    // The transfer goes to the first node; it is killed as soon as it has
    // the transaction (a block takes 100 ms here, so the wallet is still
    // waiting), and the wallet must finish on another node.
    let first = Client::new(&net.nodes[0].rpc_url()).unwrap();
    let transfer = routed
        .command(&["--key", "fresh", "transfer", "--to", other, "--amount", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while first.status().await.map_or(0, |s| s.shards[0].mempool_txs) == 0 {
        assert!(Instant::now() < deadline, "the transfer never reached the first node");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    net.kill("validator-0-0").unwrap();
    let output = tokio::task::spawn_blocking(move || transfer.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("final on shard 0 at height "), "{stdout}");
    // The first node is dead: the next one answers.
    assert_eq!(routed.balance_units("other"), units("4.5"));
    assert_eq!(routed.balance_units("fresh"), fresh_before - units("0.5") - FEE_UNITS, "debited once");
}

/// Two shards, routed by the wallet's config: money sent to an address on
/// the other shard is debited at once and credited there, both ways, and
/// `tx` shows both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_cross_shards_both_ways_and_tx_shows_debit_and_credit() {
    let dir = tempfile::tempdir().unwrap();
    let net = running_network(dir.path(), 2).await;
    let home = dir.path().join("wallet");
    std::fs::create_dir_all(&home).unwrap();
    let config =
        format!("node = \"{}\"\n\n[shard_nodes]\n1 = \"{}\"\n", net.nodes[0].rpc_url(), net.nodes[5].rpc_url());
    std::fs::write(home.join("config.toml"), config).unwrap();
    let wallet =
        Wallet { home, password: write_password(dir.path()), genesis: net.dir.join("genesis.json"), node: None };

    let alice = wallet.json(&["keys", "import-dev", "alice", "--insecure-fast-kdf"]);
    let alice_shard = alice["shard"].as_u64().unwrap();
    // New keys land on a shard at random: make one on the other shard.
    let far = (0..64)
        .map(|i| wallet.json(&["keys", "create", &format!("far-{i}")]))
        .find(|k| k["shard"].as_u64() != Some(alice_shard))
        .expect("one of 64 new keys lands on the other shard");
    let far_address = far["address"].as_str().unwrap().to_string();
    let far_name = far["name"].as_str().unwrap().to_string();
    let alice_before = wallet.balance_units("alice");

    let there = wallet.json(&["--key", "alice", "transfer", "--to", &far_address, "--amount", "10"]);
    assert_eq!(there["state"], "credited", "{there}");
    assert_eq!(there["credit"]["shard"], 1 - alice_shard, "{there}");
    assert_eq!(wallet.balance_units("alice"), alice_before - units("10") - FEE_UNITS);
    assert_eq!(wallet.balance_units(&far_name), units("10"));

    let alice_address = alice["address"].as_str().unwrap().to_string();
    let back = wallet.ok(&["--key", &far_name, "transfer", "--to", &alice_address, "--amount", "4"]);
    assert!(back.starts_with(&format!("debited on shard {} ", 1 - alice_shard)), "{back}");
    assert!(back.contains(&format!("credited on shard {alice_shard} at height ")), "{back}");
    assert_eq!(wallet.balance_units(&far_name), units("6") - FEE_UNITS);
    assert_eq!(wallet.balance_units("alice"), alice_before - units("6") - FEE_UNITS);

    let id = back.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_string();
    let tx = wallet.json(&["tx", &id]);
    assert_eq!((tx["state"].as_str(), tx["dest_shard"].as_u64()), (Some("final"), Some(alice_shard)), "{tx}");
    assert_eq!(tx["credit"]["state"], "credited", "{tx}");
    let human = wallet.ok(&["tx", &id]);
    assert!(human.contains("debited on shard") && human.contains("credited on shard"), "{human}");
}

/// Slashing end to end: evidence that validator-0-2 signed two prepare votes
/// is submitted with `palisade evidence submit`; the next blocks burn its
/// stake and jail it, `palisade validators` shows it, and the shard goes on
/// committing with the three others (so their quorum is recomputed on the
/// remaining stake), every node agreeing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_evidence_slashes_and_jails_and_the_shard_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let net = running_network(dir.path(), 1).await;
    let genesis: Genesis =
        serde_json::from_str(&std::fs::read_to_string(net.dir.join("genesis.json")).unwrap()).unwrap();
    let wallet = Wallet {
        home: dir.path().join("wallet"),
        password: write_password(dir.path()),
        genesis: net.dir.join("genesis.json"),
        node: Some(net.nodes[0].rpc_url()),
    };
    let before = wallet.json(&["validators", "0"]);
    let member = |answer: &Value, i: usize| answer["shards"][0]["validators"][i]["state"].clone();
    assert_eq!(member(&before, 2)["jailed"], false);
    let stake = member(&before, 2)["stake_units"].as_u64().unwrap();

    // Junk is refused, nothing changes.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not evidence").unwrap();
    let refused = wallet.run(&["evidence", "submit", junk.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("neither evidence JSON nor hex"));

    let evidence = palisade_ledger::workload::dev_evidence(&genesis, 0, 2, 1);
    let file = dir.path().join("evidence.hex");
    std::fs::write(&file, hex::encode(palisade_ledger::codec::encode(&evidence))).unwrap();
    let accepted = wallet.json(&["evidence", "submit", file.to_str().unwrap()]);
    assert_eq!(accepted["shard"], 0);
    assert_eq!(accepted["offender"], genesis.committee(0).unwrap().validators[2].address.to_bech32());

    // Final within a few blocks, on every node.
    let deadline = Instant::now() + WAIT;
    let jailed_at = loop {
        let now = wallet.json(&["validators", "0"]);
        if member(&now, 2)["jailed"] == true {
            break now;
        }
        assert!(Instant::now() < deadline, "not jailed in time:\n{}", net.logs_tail(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let state = member(&jailed_at, 2);
    let burned = state["slashed"]["burned_units"].as_u64().unwrap();
    assert_eq!(burned, stake / 10_000 * u64::from(genesis.params.slash_fraction_bps));
    assert_eq!(state["stake_units"].as_u64().unwrap(), stake - burned);
    assert_eq!(jailed_at["shards"][0]["burned_units"].as_u64().unwrap(), burned);
    let included = state["slashed"]["included_at"].as_u64().unwrap();
    // Nobody else was touched; the shard keeps committing without v2.
    for i in [0, 1, 3] {
        assert_eq!(member(&jailed_at, i)["jailed"], false);
    }
    wait_for_height(&net, &[0, 1, 2, 3], included + 5).await;
    let client = Client::new(&net.nodes[1].rpc_url()).unwrap();
    for height in included + 2..=included + 5 {
        let block = client.block(0, height).await.unwrap().unwrap();
        assert_ne!(block.header.proposer, genesis.committee(0).unwrap().validators[2].address, "a jailed leader");
        assert!(!block.certificate.signers.contains(&2) || block.certificate.jailed.contains(&2));
        assert_eq!(block.certificate.jailed, vec![2]);
    }
    // The same evidence again: refused, it is jailed already.
    let again = wallet.run(&["evidence", "submit", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already jailed"), "{again:?}");
}
