//! The base fee on a chain: full blocks raise it, quiet ones lower it, a
//! transaction below it is refused, and what it burns is accounted for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_ledger::fee;
use palisade_ledger::{
    Address, Amount, BlockError, Genesis, State, StateExt, TxError, apply_block, build_block, committee, mem::MemState,
    workload::Wallets,
};

/// One shard whose base fee starts at 800 units and holds still at two
/// transactions per block.
fn setup() -> (Genesis, Wallets, MemState) {
    let mut genesis = Genesis::dev(1, 4);
    genesis.params.min_base_fee_units = 800;
    genesis.params.max_base_fee_units = 1_000;
    genesis.params.base_fee_target_txs = 2;
    let users = Wallets::new(&genesis.chain_id, "user", 8);
    users.fund(&mut genesis, "user", START_BALANCE);
    genesis.validate().unwrap();
    let state = MemState::genesis(&genesis, 0).unwrap();
    (genesis, users, state)
}

/// The view-0 leader of the next height.
fn leader(genesis: &Genesis, state: &MemState) -> Address {
    let index = committee::current(state).unwrap().leader(state.tip().height + 1, 0);
    genesis.committee(0).unwrap().validators[index.as_usize()].address
}

/// Builds and commits the next block over `txs`; returns how many it took.
fn commit(genesis: &Genesis, state: &mut MemState, txs: Vec<palisade_ledger::SignedTx>) -> usize {
    let built = build_block(state, leader(genesis, state), genesis.genesis_time_ms, Vec::new(), txs).unwrap();
    state.commit(&apply_block(state, &built.block).unwrap());
    built.block.txs.len()
}

#[test]
fn busy_blocks_raise_the_base_fee_and_quiet_ones_lower_it_within_its_bounds() {
    let (genesis, mut users, mut state) = setup();
    assert_eq!(fee::base_fee(&state).unwrap(), Amount(800), "genesis: the minimum");
    let supply = state.money().unwrap();
    let to = users.address(7);
    let txs: Vec<_> = (0..4).map(|i| users.transfer(i, to, Amount(1), Amount(1_000))).collect();
    let proposer = leader(&genesis, &state);
    let rewards_before = state.validator(&proposer).unwrap().unwrap().rewards;
    assert_eq!(commit(&genesis, &mut state, txs), 4);
    // Twice the target: up by an eighth.
    assert_eq!(fee::base_fee(&state).unwrap(), Amount(900));
    let market = fee::market(&state).unwrap();
    assert_eq!(market.burned, Amount(4 * 800), "the base fee is burned");
    let earned = state.validator(&proposer).unwrap().unwrap().rewards.units() - rewards_before.units();
    assert_eq!(earned, genesis.params.block_reward_units + 4 * 200, "the proposer earns the tips");
    assert_eq!(state.money().unwrap(), supply, "money less rewards plus burns is conserved");

    // Again: capped at the maximum.
    let txs: Vec<_> = (0..4).map(|i| users.transfer(i, to, Amount(1), Amount(1_000))).collect();
    commit(&genesis, &mut state, txs);
    assert_eq!(fee::base_fee(&state).unwrap(), Amount(1_000));
    // Empty blocks: down by an eighth each, to the minimum and no further.
    commit(&genesis, &mut state, Vec::new());
    assert_eq!(fee::base_fee(&state).unwrap(), Amount(875));
    for _ in 0..3 {
        commit(&genesis, &mut state, Vec::new());
    }
    assert_eq!(fee::base_fee(&state).unwrap(), Amount(800));
    assert_eq!(state.money().unwrap(), supply);
}

#[test]
fn a_fee_below_the_base_fee_is_left_out_by_builders_and_refused_in_blocks() {
    let (genesis, mut users, state) = setup();
    let to = users.address(7);
    let cheap = users.transfer(0, to, Amount(1), Amount(799));
    let built =
        build_block(&state, leader(&genesis, &state), genesis.genesis_time_ms, Vec::new(), [cheap.clone()]).unwrap();
    assert!(built.block.txs.is_empty());
    assert_eq!(built.rejected[0].1, TxError::FeeBelowBase { fee: Amount(799), base_fee: Amount(800) });
    // A proposer that includes it anyway has its block refused.
    let mut block = built.block;
    block.txs = vec![cheap];
    block.header.tx_root = palisade_ledger::block::tx_root(&block.txs);
    let refused = apply_block(&state, &block).err();
    assert!(
        matches!(refused, Some(BlockError::Tx { index: 0, reason: TxError::FeeBelowBase { .. }, .. })),
        "{refused:?}"
    );
}
