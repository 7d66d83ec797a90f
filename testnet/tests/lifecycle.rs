//! The `palisade-testnet` binary's background lifecycle on real node
//! processes: `up` returns with the nodes running, `status` sees them,
//! `kill`/`pause`/`resume`/`restart` act on one node by PID, `down` stops
//! them all. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::path::Path;
use std::process::{Command, Output};

use palisade_testnet::local::find_node_binary;

fn testnet(dir: &Path, args: &[&str]) -> Output {
    let node = find_node_binary(true).unwrap();
    Command::new(env!("CARGO_BIN_EXE_palisade-testnet"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("PALISADE_NODE_BIN", node)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = testnet(dir, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "palisade-testnet {args:?} failed:\n{text}");
    text
}

fn node_state(dir: &Path, node: &str) -> String {
    let status: serde_json::Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    let entry = status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == node).unwrap().clone();
    entry["process"].as_str().unwrap().to_string()
}

/// Runs `down` when dropped, so a failing test leaves no node behind.
/// A network of `shards` × 4 validators started by `up` in a temporary
/// directory, on ports no other test of this process uses; brought `down`
/// when dropped, so a failing test leaves no process behind.
struct Up {
    dir: std::path::PathBuf,
    /// What `up` printed.
    printed: String,
    _tmp: tempfile::TempDir,
}

fn up(shards: u16) -> Up {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    // 3 ports per node, below the OS's own picks.
    let base = palisade_testnet::local::free_ports(shards * 4 * 3).unwrap();
    let printed = ok(&dir, &["up", "--shards", &shards.to_string(), "--base-port", &base.to_string()]);
    Up { dir, printed, _tmp: tmp }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = testnet(&self.dir, &["down", "--grace", "5"]);
    }
}

#[test]
fn up_status_kill_pause_restart_down() {
    let net = up(1);
    let (dir, up) = (&net.dir, &net.printed);
    assert!(up.contains("validator-0-3"), "{up}");
    assert!(up.contains("running in the background"), "{up}");

    // Nodes outlive the `up` process; status finds them by PID.
    let status = ok(dir, &["status"]);
    assert!(status.contains("4/4"), "{status}");

    ok(dir, &["kill", "validator-0-1"]);
    assert_eq!(node_state(dir, "validator-0-1"), "down");
    // Three of four still commit: degraded, not halted.
    let status: serde_json::Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    assert_eq!(status["shards"][0]["state"], "degraded", "{status}");
    ok(dir, &["pause", "validator-0-2"]);
    assert_eq!(node_state(dir, "validator-0-2"), "paused");
    ok(dir, &["resume", "validator-0-2"]);
    assert_eq!(node_state(dir, "validator-0-2"), "running");
    ok(dir, &["restart", "validator-0-1"]);
    assert_eq!(node_state(dir, "validator-0-1"), "running");

    let unknown = testnet(dir, &["kill", "validator-9-9"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("validator-0-0"), "lists the nodes there");

    let logs = ok(dir, &["logs", "validator-0-0", "-n", "5"]);
    assert!(!logs.trim().is_empty());

    ok(dir, &["down"]);
    for i in 0..4 {
        assert_eq!(node_state(dir, &format!("validator-0-{i}")), "down");
    }
}

/// `drill` and `up --fresh` delete their directory first, but only a
/// network's: any other directory is refused and left as it was.
#[test]
fn a_directory_that_is_not_a_network_is_never_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let precious = tmp.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let elsewhere = tmp.path().join("unused");
    for (dir, args) in [
        (elsewhere.as_path(), vec!["drill", "--net-dir", tmp.path().to_str().unwrap()]),
        (tmp.path(), vec!["up", "--fresh", "--shards", "1"]),
    ] {
        let out = testnet(dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} went ahead: {stderr}");
        assert!(stderr.contains("is not a local network: refusing to delete it"), "{args:?}: {stderr}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    }
}

/// `bench` against a real one-shard network: funds its accounts, offers a
/// small open-loop load, and every transaction it sent is final and timed.
#[test]
fn bench_measures_a_small_load_end_to_end() {
    let net = up(1);
    let dir = &net.dir;
    let out = testnet(dir, &["bench", "--rate", "100", "--duration", "3s", "--accounts-per-shard", "8", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let sent = summary["sent"].as_u64().unwrap();
    assert!(sent >= 200, "100 tx/s for 3 s sent only {sent}: {summary}");
    assert_eq!(summary["committed"], summary["transactions"], "{summary}");
    assert_eq!(summary["not_final"], 0, "{summary}");
    let p99 = summary["latency"]["p99_ms"].as_f64().unwrap();
    let max = summary["latency"]["max_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 <= max, "{summary}");
    ok(dir, &["down"]);
}

/// `bench --cross-shard` against a real two-shard network: half of the
/// transfers pay an account on the other shard, and every one of them is
/// final at its source, credited at its destination, and timed until then.
#[test]
fn bench_times_cross_shard_transfers_until_credited() {
    let net = up(2);
    let dir = &net.dir;
    let args = ["bench", "--rate", "100", "--duration", "3s", "--accounts-per-shard", "8", "--cross-shard", "0.5"];
    let out = testnet(dir, &[&args[..], &["--json"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["committed"], summary["transactions"], "{summary}");
    let cross = &summary["cross_shard"];
    let sent = cross["transactions"].as_u64().unwrap();
    let all = summary["transactions"].as_u64().unwrap();
    // Half of the slots, give or take a few.
    assert!(sent > 0 && (2 * sent).abs_diff(all) <= all / 10, "{sent} of {all} cross: {summary}");
    assert_eq!(cross["final_at_source"], sent, "{summary}");
    assert_eq!(cross["credited"], sent, "{summary}");
    assert_eq!(cross["not_credited"], 0, "{summary}");
    let (p50, p99) = (cross["latency"]["p50_ms"].as_f64().unwrap(), cross["latency"]["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{summary}");
    // The same-shard figures stay where they were.
    assert!(summary["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{summary}");
    // Not a fraction: refused up front.
    let text = String::from_utf8_lossy(&testnet(dir, &["bench", "--cross-shard", "1.5"]).stderr).to_string();
    assert!(text.contains("--cross-shard must be a fraction"), "{text}");
    ok(dir, &["down"]);
}
