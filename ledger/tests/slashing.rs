//! Executing equivocation evidence: slashing, jailing, the committee change
//! that follows, and every reason a block may not carry evidence.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_consensus::ValidatorIndex;
use palisade_ledger::execute::Extras;
use palisade_ledger::slashing::{self, EvidenceRefused};
use palisade_ledger::workload::dev_evidence;
use palisade_ledger::{
    Amount, BlockError, Genesis, Hash, State, StateExt, apply_block, build_block, committee, mem::MemState,
};

fn setup() -> (Genesis, MemState) {
    let (genesis, _) = network(1, 2);
    let state = MemState::genesis(&genesis, 0).unwrap();
    (genesis, state)
}

/// The committee index of the leader of the next height's view 0.
fn leader(state: &MemState) -> usize {
    committee::current(state).unwrap().leader(state.tip().height + 1, 0).as_usize()
}

fn member(genesis: &Genesis, index: usize) -> palisade_ledger::Address {
    genesis.committee(0).unwrap().validators[index].address
}

/// Builds, re-validates and commits the next block by the leader of its
/// view 0.
fn commit_next(genesis: &Genesis, state: &mut MemState, extras: Extras) -> palisade_ledger::Block {
    let by = leader(state);
    let built = build_block(state, member(genesis, by), genesis.genesis_time_ms, extras, []).unwrap();
    let outcome = apply_block(state, &built.block).unwrap();
    state.commit(&outcome);
    built.block
}

#[test]
fn evidence_burns_stake_jails_once_and_changes_the_committee() {
    let (genesis, mut state) = setup();
    let reward = Amount(genesis.params.block_reward_units);
    let supply = state.money().unwrap();
    let before = committee::current(&state).unwrap();
    commit_next(&genesis, &mut state, Extras::default());
    let evidence = dev_evidence(&genesis, 0, 2, 1);
    let offender = member(&genesis, 2);
    let stake = state.validator(&offender).unwrap().unwrap().stake;

    let block = commit_next(&genesis, &mut state, Extras { evidence: vec![evidence.clone()], ..Extras::default() });
    assert_eq!(block.evidence, vec![evidence.clone()]);
    assert_eq!(block.header.committee_hash, Hash(before.hash()), "jailing takes effect from the next height");
    let record = state.validator(&offender).unwrap().unwrap();
    let burned = slashing::burned(stake, genesis.params.slash_fraction_bps);
    assert!(burned > Amount::ZERO);
    assert!(record.jailed);
    assert_eq!(record.stake.checked_add(burned), Some(stake));
    let slash = state.slashed(&offender).unwrap().unwrap();
    assert_eq!((slash.height, slash.included_at, slash.burned), (1, 2, burned));
    assert_eq!(slash.evidence, slashing::evidence_hash(&evidence));
    let chain = state.chain().unwrap();
    assert_eq!((chain.minted, chain.burned), (Amount(reward.units() * 2), burned));
    assert_eq!(state.money().unwrap(), supply, "money less rewards plus burns is conserved");

    // The next committee: v2 keeps its index, with no stake and no turn.
    let after = committee::current(&state).unwrap();
    assert_ne!(after.hash(), before.hash());
    assert!(!after.is_active(ValidatorIndex(2)));
    assert_eq!(after.total_stake(), before.total_stake() - before.stake(ValidatorIndex(2)));
    assert_eq!(committee::jailed_at(&state, 2).unwrap(), vec![]);
    assert_eq!(committee::jailed_at(&state, 3).unwrap(), vec![ValidatorIndex(2)]);
    let next = commit_next(&genesis, &mut state, Extras::default());
    assert_eq!(next.header.committee_hash, Hash(after.hash()));

    // Never twice: not the same evidence, not another offence.
    let again = build_block(
        &state,
        member(&genesis, 0),
        genesis.genesis_time_ms,
        Extras { evidence: vec![evidence, dev_evidence(&genesis, 0, 2, 3)], ..Extras::default() },
        [],
    )
    .unwrap();
    assert!(again.block.evidence.is_empty());
    assert_eq!(again.refused_evidence.len(), 2);
    assert!(again.refused_evidence.iter().all(|(_, r)| *r == EvidenceRefused::AlreadyJailed(offender)));

    // A jailed validator may no longer propose.
    let by_jailed = build_block(&state, offender, genesis.genesis_time_ms, Extras::default(), []).err();
    assert!(matches!(by_jailed, Some(BlockError::UnknownProposer(a)) if a == offender));
}

#[test]
fn blocks_refuse_evidence_that_does_not_hold() {
    let (genesis, mut state) = setup();
    for _ in 0..3 {
        commit_next(&genesis, &mut state, Extras::default());
    }
    let next = state.tip().height + 1;
    let mut forged = dev_evidence(&genesis, 0, 1, 2);
    forged.second.signature = forged.first.signature;
    let mut same_block = dev_evidence(&genesis, 0, 1, 2);
    same_block.second = same_block.first;
    let other_shard = {
        let mut e = dev_evidence(&genesis, 0, 1, 2);
        e.shard = 1;
        e
    };
    type Case = (&'static str, palisade_consensus::Evidence, fn(&EvidenceRefused) -> bool);
    let cases: Vec<Case> = vec![
        ("bad signature", forged, |r| matches!(r, EvidenceRefused::Invalid(_))),
        ("same block", same_block, |r| matches!(r, EvidenceRefused::Invalid(_))),
        ("other shard", other_shard, |r| matches!(r, EvidenceRefused::Invalid(_))),
        ("not a member", dev_evidence(&genesis, 0, 7, 2), |r| matches!(r, EvidenceRefused::Invalid(_))),
        ("future", dev_evidence(&genesis, 0, 1, next + 1), |r| matches!(r, EvidenceRefused::Future { .. })),
    ];
    for (name, evidence, expected) in cases {
        let built = build_block(
            &state,
            member(&genesis, 0),
            genesis.genesis_time_ms,
            Extras { evidence: vec![evidence.clone()], ..Extras::default() },
            [],
        )
        .unwrap();
        assert!(built.block.evidence.is_empty(), "{name}: left out by the builder");
        assert!(expected(&built.refused_evidence[0].1), "{name}: {:?}", built.refused_evidence);
        // A proposer that includes it anyway has its block refused.
        let mut block = built.block;
        block.evidence = vec![evidence];
        block.header.evidence_root = slashing::evidence_root(&block.evidence);
        let err = apply_block(&state, &block).err().expect("refused");
        assert!(matches!(err, BlockError::Evidence { index: 0, .. }), "{name}: {err}");
    }
    // The evidence root binds the list.
    let mut block =
        build_block(&state, member(&genesis, 0), genesis.genesis_time_ms, Extras::default(), []).unwrap().block;
    block.evidence = vec![dev_evidence(&genesis, 0, 1, 2)];
    assert!(matches!(apply_block(&state, &block), Err(BlockError::EvidenceRootMismatch { .. })));

    // Too old: an offence more than the window below the block (tip 3,
    // next block 4, window 1: height 3 is in, height 2 is out).
    let mut short = genesis.clone();
    short.params.evidence_window_blocks = 1;
    let mut state = MemState::genesis(&short, 0).unwrap();
    for _ in 0..3 {
        commit_next(&short, &mut state, Extras::default());
    }
    let built = build_block(
        &state,
        member(&short, 0),
        short.genesis_time_ms,
        Extras { evidence: vec![dev_evidence(&short, 0, 1, 3), dev_evidence(&short, 0, 3, 2)], ..Extras::default() },
        [],
    )
    .unwrap();
    assert_eq!(built.block.evidence, vec![dev_evidence(&short, 0, 1, 3)]);
    assert!(matches!(built.refused_evidence[0].1, EvidenceRefused::Expired { offence: 2, height: 4, window: 1 }));
}

#[test]
fn the_last_member_with_stake_is_never_jailed() {
    let genesis = Genesis::dev(1, 1);
    genesis.validate().unwrap();
    let mut state = MemState::genesis(&genesis, 0).unwrap();
    commit_next(&genesis, &mut state, Extras::default());
    let built = build_block(
        &state,
        member(&genesis, 0),
        genesis.genesis_time_ms,
        Extras { evidence: vec![dev_evidence(&genesis, 0, 0, 1)], ..Extras::default() },
        [],
    )
    .unwrap();
    assert_eq!(built.refused_evidence[0].1, EvidenceRefused::LastActive(member(&genesis, 0)));
}

#[test]
fn every_block_pays_its_proposer_the_reward() {
    let (genesis, mut state) = setup();
    let reward = genesis.params.block_reward_units;
    // Heights 1..=4 are led by v1, v2, v3, v0 in turn.
    for _ in 0..4 {
        commit_next(&genesis, &mut state, Extras::default());
    }
    let rewards = |state: &MemState, i| state.validator(&member(&genesis, i)).unwrap().unwrap().rewards.units();
    assert_eq!((0..4).map(|i| rewards(&state, i)).collect::<Vec<_>>(), vec![reward; 4]);
    // Height 5's view 0 (v1) failed: view 1's leader (v2) proposes and is paid.
    let built = build_block(&state, member(&genesis, 2), genesis.genesis_time_ms, Extras::default(), []).unwrap();
    state.commit(&apply_block(&state, &built.block).unwrap());
    assert_eq!(rewards(&state, 2), 2 * reward);
    assert_eq!(state.chain().unwrap().minted.units(), 5 * reward);
}
