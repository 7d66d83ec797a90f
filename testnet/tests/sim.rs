//! The simulator's own tests: determinism, a few hundred seeds, one test per
//! Byzantine module, and checkers that must fail on planted faults.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::time::Instant;

use palisade_testnet::sim::byzantine::Kind;
use palisade_testnet::sim::{Report, Scenario, Sim, Violation, replay_command, run_seed};

/// Seeds the CI test runs (see `many_seeds_hold_every_invariant`).
const CI_SEEDS: u64 = 300;

fn assert_clean(report: &Report) {
    let seed = report.scenario.seed;
    assert!(
        report.violations.is_empty(),
        "{}\nviolations: {:#?}\nreplay: {}",
        report.scenario,
        report.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
        replay_command(seed)
    );
}

#[test]
fn same_seed_same_run() {
    for seed in [0, 7, 42] {
        let a = run_seed(seed);
        let b = run_seed(seed);
        assert_eq!(a.digest, b.digest, "seed {seed} is not deterministic");
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.heights, b.heights);
        assert!(a.stats.commits > 0);
    }
    assert_ne!(run_seed(1).digest, run_seed(2).digest);
}

#[test]
fn many_seeds_hold_every_invariant() {
    let started = Instant::now();
    let mut failures = Vec::new();
    for seed in 0..CI_SEEDS {
        let report = run_seed(seed);
        if let Some(first) = report.violations.first() {
            failures.push(format!("seed {seed}: {first} (replay: {})", replay_command(seed)));
        }
    }
    eprintln!("{CI_SEEDS} seeds in {:?}", started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A calm two-shard network of `n` validators per shard with `byzantine` in shard 0.
fn calm(seed: u64, n: u32, byzantine: Vec<(usize, Kind)>) -> (Report, Sim) {
    Sim::new(Scenario::calm(seed, 2, n, byzantine)).run()
}

fn evidence_against(sim: &Sim, shard: u32) -> Vec<u32> {
    let mut accused: Vec<u32> = sim
        .nodes
        .iter()
        .filter(|n| n.honest() && n.shard == shard)
        .flat_map(|n| n.evidence.iter().map(|e| e.signer.0))
        .collect();
    accused.sort();
    accused.dedup();
    accused
}

#[test]
fn equivocating_leader_is_caught_and_safety_holds() {
    let mut caught = 0;
    for seed in 0..4 {
        let (report, sim) = calm(seed, 4, vec![(1, Kind::EquivocatingLeader)]);
        assert_clean(&report);
        let accused = evidence_against(&sim, 0);
        assert!(accused.iter().all(|a| *a == 1), "evidence against {accused:?}");
        caught += accused.len();
        assert!(evidence_against(&sim, 1).is_empty());
    }
    assert!(caught > 0, "no honest replica ever reported the equivocating leader");
}

#[test]
fn equivocating_voter_is_caught_and_safety_holds() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(2, Kind::EquivocatingVoter)]);
        assert_clean(&report);
        assert_eq!(evidence_against(&sim, 0), vec![2]);
        assert!(evidence_against(&sim, 1).is_empty());
    }
    // Two equivocating voters in a committee of seven (f = 2).
    let (report, sim) = calm(9, 7, vec![(0, Kind::EquivocatingVoter), (5, Kind::EquivocatingVoter)]);
    assert_clean(&report);
    assert_eq!(evidence_against(&sim, 0), vec![0, 5]);
}

#[test]
fn silent_validator_cannot_stop_the_shard() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(3, Kind::Silent)]);
        assert_clean(&report);
        assert!(evidence_against(&sim, 0).is_empty());
    }
}

#[test]
fn invalid_blocks_never_become_final() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(1, Kind::InvalidProposer)]);
        assert_clean(&report);
        assert!(evidence_against(&sim, 0).is_empty());
        // It led some views, and none of its blocks is in the chain.
        let invalid = sim.nodes[1].address;
        let honest = sim.nodes.iter().find(|n| n.honest() && n.shard == 0).unwrap();
        for certified in honest.chain.values() {
            let block = palisade_ledger::Block::from_bytes(&certified.block, usize::MAX).unwrap();
            assert_ne!(block.header.proposer, invalid, "a block of the invalid proposer is final");
        }
        assert!(report.heights[0] >= 8, "shard 0 too slow: {:?}", report.heights);
    }
}

#[test]
fn flood_does_not_stop_the_shard() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(0, Kind::Flooder)]);
        assert_clean(&report);
        assert!(report.stats.rejected > 0);
        assert!(evidence_against(&sim, 0).iter().all(|a| *a == 0));
    }
}

#[test]
fn agreement_checker_flags_a_planted_fork() {
    let (report, mut sim) = calm(3, 4, Vec::new());
    assert_clean(&report);
    // Node 2 "committed" height 2's block at height 1.
    let other = sim.nodes[2].chain[&2].clone();
    sim.nodes[2].chain.insert(1, other);
    let violations = sim.report().violations;
    assert!(violations.iter().any(|v| matches!(v, Violation::Agreement { shard: 0, height: 1, .. })), "{violations:?}");
}

#[test]
fn validity_checker_flags_a_bad_final_block() {
    let (report, mut sim) = calm(4, 4, Vec::new());
    assert_clean(&report);
    // Every honest node of shard 1 "committed" garbage at its last height.
    for node in sim.nodes.iter_mut().filter(|n| n.shard == 1) {
        let last = *node.chain.keys().last().unwrap();
        node.chain.get_mut(&last).unwrap().block = vec![1, 2, 3];
    }
    let violations = sim.report().violations;
    assert!(violations.iter().any(|v| matches!(v, Violation::Validity { shard: 1, .. })), "{violations:?}");
}

#[test]
fn liveness_checker_flags_too_many_faults() {
    // Two silent validators of four: more than f, no quorum, no progress.
    let (report, _) = calm(5, 4, vec![(0, Kind::Silent), (1, Kind::Silent)]);
    assert!(report.violations.iter().any(|v| matches!(v, Violation::Liveness { shard: 0, .. })), "{report:?}");
    assert!(!report.violations.iter().any(|v| matches!(v, Violation::Liveness { shard: 1, .. })));
}
