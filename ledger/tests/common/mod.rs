//! Test networks shared by the ledger's integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use palisade_ledger::{Address, Amount, Genesis, State, StateExt, mem::MemState, workload::Wallets};

/// Units each test wallet starts with.
pub const START_BALANCE: Amount = Amount(1_000_000);

/// A dev genesis of `shards` × 4 validators plus `wallets` funded test accounts.
pub fn network(shards: u32, wallets: usize) -> (Genesis, Wallets) {
    let mut genesis = Genesis::dev(shards, 4);
    let users = Wallets::new(&genesis.chain_id, "user", wallets);
    users.fund(&mut genesis, "user", START_BALANCE);
    genesis.validate().expect("test genesis is valid");
    (genesis, users)
}

/// The first validator of `shard`.
pub fn proposer(genesis: &Genesis, shard: u32) -> Address {
    genesis.committee(shard).unwrap().validators[0].address
}

/// Balance of `address` in `state`.
pub fn balance(state: &MemState, address: &Address) -> u64 {
    state.account(address).unwrap().balance.units()
}

/// The first `n` wallet indices whose accounts live in `shard`.
pub fn wallets_in(genesis: &Genesis, users: &Wallets, shard: u32, n: usize) -> Vec<usize> {
    (0..users.len()).filter(|i| users.address(*i).shard(genesis.shard_count) == shard).take(n).collect()
}

/// Asserts the tip did not move.
pub fn assert_unchanged(state: &MemState, before: &palisade_ledger::Tip) {
    assert_eq!(&state.tip(), before);
}
