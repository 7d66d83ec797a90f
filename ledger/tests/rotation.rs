//! Leader rotation on a chain: a failed turn benches its leader, a benched
//! member may not propose, and it returns and is cleared by a good turn.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_consensus::ValidatorIndex;
use palisade_ledger::execute::Extras;
use palisade_ledger::rotation::{BENCH_HEIGHTS, BenchRecord};
use palisade_ledger::{
    Address, BlockError, Genesis, State, StateExt, apply_block, build_block, committee, mem::MemState,
};

fn member(genesis: &Genesis, index: u32) -> Address {
    genesis.committee(0).unwrap().validators[index as usize].address
}

/// Commits the next block, proposed by member `by`.
fn commit_by(genesis: &Genesis, state: &mut MemState, by: u32) {
    let built = build_block(state, member(genesis, by), genesis.genesis_time_ms, Extras::default(), []).unwrap();
    state.commit(&apply_block(state, &built.block).unwrap());
}

/// Who leads view `view` of the next height.
fn leader(state: &MemState, view: u64) -> u32 {
    committee::current(state).unwrap().leader(state.tip().height + 1, view).0
}

#[test]
fn a_failed_turn_benches_its_leader_until_it_has_sat_out_its_heights() {
    let (genesis, _) = network(1, 0);
    let mut state = MemState::genesis(&genesis, 0).unwrap();
    for _ in 0..4 {
        let by = leader(&state, 0);
        commit_by(&genesis, &mut state, by);
    }
    let (failed, next) = (leader(&state, 0), leader(&state, 1));
    let root_before = state.tip().state_root;
    assert!(state.bench(&member(&genesis, failed)).unwrap().is_none(), "good turns write no record");

    // Height 5: view 0's leader failed, view 1's proposes.
    commit_by(&genesis, &mut state, next);
    assert_ne!(state.tip().state_root, root_before);
    let record = state.bench(&member(&genesis, failed)).unwrap().unwrap();
    assert_eq!(record, BenchRecord { strikes: 1, until_height: 6 + BENCH_HEIGHTS });
    let rotated = committee::current(&state).unwrap();
    assert_eq!(rotated.benched(), vec![ValidatorIndex(failed)]);
    assert!(rotated.is_active(ValidatorIndex(failed)), "a benched member keeps its vote");
    let unbenched = genesis.consensus_committee(0).unwrap();
    assert_eq!(rotated.hash(), unbenched.hash(), "certificates verify as before");

    // It may not propose, neither built nor claimed by another's block.
    let refused = build_block(&state, member(&genesis, failed), genesis.genesis_time_ms, Extras::default(), []);
    assert!(matches!(refused.err(), Some(BlockError::BenchedProposer(_))));
    let mut claimed =
        build_block(&state, member(&genesis, leader(&state, 0)), genesis.genesis_time_ms, Extras::default(), [])
            .unwrap()
            .block;
    claimed.header.proposer = member(&genesis, failed);
    assert!(matches!(apply_block(&state, &claimed).err(), Some(BlockError::BenchedProposer(_))));

    // It sits out BENCH_HEIGHTS heights, then leads again.
    while state.tip().height + 1 < record.until_height {
        let by = leader(&state, 0);
        assert_ne!(by, failed, "height {}: a benched member leads", state.tip().height + 1);
        commit_by(&genesis, &mut state, by);
    }
    assert!(committee::current(&state).unwrap().benched().is_empty());
    while leader(&state, 0) != failed {
        let by = leader(&state, 0);
        commit_by(&genesis, &mut state, by);
    }
    // A good turn clears its strikes; the next failure benches it afresh.
    commit_by(&genesis, &mut state, failed);
    assert_eq!(state.bench(&member(&genesis, failed)).unwrap(), Some(BenchRecord::default()));
    let again = leader(&state, 0);
    let by = leader(&state, 1);
    commit_by(&genesis, &mut state, by);
    let height = state.tip().height;
    assert_eq!(
        state.bench(&member(&genesis, again)).unwrap(),
        Some(BenchRecord { strikes: 1, until_height: height + 1 + BENCH_HEIGHTS })
    );
}

#[test]
fn repeated_failures_bench_longer_and_at_most_one_member_in_four_sits_out() {
    let (genesis, _) = network(1, 0);
    let mut state = MemState::genesis(&genesis, 0).unwrap();
    // Height 1: views 0..=2 failed (v1, v2, v3); view 3's leader, v0, proposes.
    assert_eq!(leader(&state, 3), 0);
    commit_by(&genesis, &mut state, 0);
    let strikes: Vec<u32> =
        (0..4).map(|i| state.bench(&member(&genesis, i)).unwrap().map_or(0, |r| r.strikes)).collect();
    assert_eq!(strikes, vec![0, 1, 1, 1]);
    let benched = committee::current(&state).unwrap().benched();
    assert_eq!(benched, vec![ValidatorIndex(1)], "one of four at most, the lowest index among equals");

    // The same member failing again sits out twice as long.
    let first = state.bench(&member(&genesis, 2)).unwrap().unwrap();
    let mut second = first;
    for _ in 0..40 {
        let failed = leader(&state, 0);
        let by = leader(&state, 1);
        commit_by(&genesis, &mut state, by);
        if failed == 2 {
            second = state.bench(&member(&genesis, 2)).unwrap().unwrap();
            break;
        }
    }
    assert_eq!(second.strikes, 2, "v2 never led view 0 again: {second:?}");
    assert_eq!(second.until_height, state.tip().height + 1 + 2 * BENCH_HEIGHTS);
}
