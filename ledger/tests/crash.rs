//! `kill -9` at random moments never leaves a partial block in RocksDB.
//!
//! The test binary runs itself as a child ([`crash_writer_child`]) that
//! commits blocks as fast as it can; the parent SIGKILLs it at seeded random
//! moments, reopens the database and checks that it holds exactly the state
//! after some committed block: replaying the stored blocks from genesis in
//! memory gives the stored tip, every stored value, and the transaction
//! index, and no block exists beyond the tip.
#![cfg(feature = "storage")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use palisade_ledger::{
    Amount, Genesis, Hash, State, apply_block, build_block,
    mem::MemState,
    store::{ShardStore, Store, StoreConfig},
    workload::Wallets,
};

const CHILD_DIR_ENV: &str = "PALISADE_CRASH_DIR";
const SEED_ENV: &str = "PALISADE_CRASH_SEED";
const KILLS: u64 = 30;
const WALLETS: usize = 64;
const TXS_PER_BLOCK: usize = 40;
/// The child stops on its own after this long, so no orphan outlives the test.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn test_network() -> (Genesis, Wallets) {
    network(1, WALLETS)
}

/// A deterministic pseudo-random number from `seed` and `i`.
fn draw(seed: u64, i: u64) -> u64 {
    let digest = Hash::plain(&[seed.to_le_bytes(), i.to_le_bytes()].concat());
    u64::from_le_bytes(digest.0[..8].try_into().unwrap())
}

/// The writer: commits blocks of transfers until killed (or its lifetime ends).
#[test]
#[ignore = "run by kill9_never_leaves_a_partial_block as a child process"]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else { return };
    let (genesis, mut users) = test_network();
    let store = Store::open_with(Path::new(&dir), StoreConfig { state_history: 8 }).unwrap();
    let mut shard = ShardStore::open(store, &genesis, 0).unwrap();
    let proposer = proposer(&genesis, 0);
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let height = shard.tip().height + 1;
        let txs: Vec<_> = (0..TXS_PER_BLOCK)
            .map(|k| {
                let from = (height as usize * 7 + k) % WALLETS;
                let nonce = palisade_ledger::StateExt::account(&shard, &users.address(from)).unwrap().nonce;
                users.set_nonce(from, nonce);
                users.transfer(from, users.address(from + 1 + k), Amount(1 + k as u64), Amount(1))
            })
            .collect();
        let built = build_block(&shard, proposer, genesis.genesis_time_ms + height, Vec::new(), txs).unwrap();
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let certificate = height.to_le_bytes();
        shard.commit(&built.block, &certificate, &built.outcome).unwrap();
    }
}

/// Reopens the store and checks it equals a replay of its own blocks.
/// Returns the tip height.
fn check_store(dir: &Path, genesis: &Genesis) -> u64 {
    let store = Store::open(dir).unwrap();
    let Some(tip) = store.tip(0).unwrap() else {
        // Killed before genesis was written: nothing may be there at all.
        assert!(store.block_heights(0).unwrap().is_empty());
        return 0;
    };
    let heights = store.block_heights(0).unwrap();
    assert_eq!(heights, (1..=tip.height).collect::<Vec<_>>(), "blocks beyond the tip or missing below it");
    let shard = ShardStore::open(store.clone(), genesis, 0).unwrap();
    let mut replay = MemState::genesis(genesis, 0).unwrap();
    for height in 1..=tip.height {
        let block = store.block(0, height).unwrap().unwrap();
        assert_eq!(store.certificate(0, height).unwrap().unwrap(), height.to_le_bytes());
        let outcome = apply_block(&replay, &block).unwrap();
        for (position, tx) in block.txs.iter().enumerate() {
            let receipt = store.transaction(&tx.id()).unwrap().expect("indexed");
            assert_eq!((receipt.height, receipt.position as usize), (height, position));
        }
        replay.commit(&outcome);
    }
    assert_eq!(replay.tip(), tip, "replayed tip differs from the stored tip");
    for (key, value) in replay.values() {
        assert_eq!(shard.get_raw(key).unwrap().as_ref(), Some(value), "{key:?}");
    }
    // The store proves its state against the committed root, as wallets will ask it to.
    let (key, value) = replay.values().iter().next().unwrap();
    let proof = shard.prove(*key, tip.height).unwrap();
    assert_eq!(proof.value.as_ref(), Some(value));
    proof.verify(&tip.state_root).unwrap();
    tip.height
}

#[test]
fn kill9_never_leaves_a_partial_block() {
    let seed = std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    eprintln!("crash test seed {seed} (replay with {SEED_ENV}={seed})");
    let dir = tempfile::tempdir().unwrap();
    let (genesis, _) = test_network();
    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash_writer_child", "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Early kills hit startup and genesis; later ones land mid-commit.
        let delay = Duration::from_millis(10 + draw(seed, kill) % 400);
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            panic!("writer exited on its own ({status}) before kill {kill}; seed {seed}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let height = check_store(dir.path(), &genesis);
        assert!(height >= last, "tip went backwards: {last} -> {height}; seed {seed}");
        last = height;
    }
    assert!(last >= 20, "writer made too little progress ({last} blocks) for the test to mean much");
    eprintln!("crash test: {KILLS} kills, {last} blocks committed and replayed");
}
