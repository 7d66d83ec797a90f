//! The simulator's own tests: determinism, a few hundred seeds, one test per
//! Byzantine module, cross-shard receipts (relayed, pulled, waiting for a
//! halted destination, forged), and checkers that must fail on planted
//! faults.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::collections::BTreeMap;

use palisade_ledger::rotation::{BENCH_HEIGHTS, MAX_BENCH_DOUBLINGS};
use palisade_ledger::{Block, Hash, Receipt, receipt_proof};
use palisade_shard_core::byzantine::Misbehaviour;
use palisade_testnet::sim::byzantine::Kind;
use palisade_testnet::sim::scenario::{Crash, LIVENESS_BOUND_MS, Partition};
use palisade_testnet::sim::{Report, Scenario, Sim, Violation, replay_command, run_seed};

/// Seeds the CI test runs (see `many_seeds_hold_every_invariant`).
const CI_SEEDS: u64 = 200;

const EQUIVOCATE: Kind = Kind::Misbehave(Misbehaviour::Equivocate);
const EQUIVOCATE_PROPOSALS: Kind = Kind::Misbehave(Misbehaviour::EquivocateProposals);
const SILENT: Kind = Kind::Misbehave(Misbehaviour::Silent);
const INVALID_PROPOSALS: Kind = Kind::Misbehave(Misbehaviour::InvalidProposals);
const FLOOD: Kind = Kind::Misbehave(Misbehaviour::Flood);
const FORGE_RECEIPTS: Kind = Kind::Misbehave(Misbehaviour::ForgeReceipts);

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
    let mut failures = Vec::new();
    let (mut scanned, mut refused, mut twins) = (0, 0, 0);
    // Cross-shard receipts credited by each multi-shard seed.
    let mut credited = Vec::new();
    let jobs = palisade_testnet::sim::many::default_jobs();
    let summary = palisade_testnet::sim::many::run(0, CI_SEEDS, jobs, |report| {
        let seed = report.scenario.seed;
        if let Some(first) = report.violations.first() {
            failures.push(format!("seed {seed}: {first} (replay: {})", replay_command(seed)));
        }
        let stats = &report.stats;
        scanned += stats.batches_scanned;
        refused += stats.batches_refused;
        twins += report.scenario.byzantine.iter().filter(|(_, kind)| *kind == Kind::Twin).count();
        if report.scenario.shards > 1 {
            credited.push(stats.receipts_credited);
        }
    });
    failures.sort();
    credited.sort();
    let median = credited.get(credited.len() / 2).copied().unwrap_or(0);
    let total: u64 = credited.iter().sum();
    eprintln!(
        "{CI_SEEDS} seeds in {:?} ({:.1} seeds/s on {jobs} jobs): {total} cross-shard receipts credited ({} multi-shard seeds: median {median}, {}..={}), {scanned} batches brought by scans, {refused} forged batches refused, {twins} twins",
        summary.elapsed,
        summary.seeds_per_second(),
        credited.len(),
        credited.first().copied().unwrap_or(0),
        credited.last().copied().unwrap_or(0),
    );
    assert_eq!(summary.seeds, CI_SEEDS);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The seeds exercise what the checks are about.
    assert!(
        median > 0 && scanned > 0 && refused > 0 && twins > 0,
        "median credited {median}, scanned {scanned}, refused {refused}, twins {twins}"
    );
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
        let (report, sim) = calm(seed, 4, vec![(1, EQUIVOCATE_PROPOSALS)]);
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
        let (report, sim) = calm(seed, 4, vec![(2, EQUIVOCATE)]);
        assert_clean(&report);
        assert_eq!(evidence_against(&sim, 0), vec![2]);
        assert!(evidence_against(&sim, 1).is_empty());
    }
    // Two equivocating voters in a committee of seven (f = 2).
    let (report, sim) = calm(9, 7, vec![(0, EQUIVOCATE), (5, EQUIVOCATE)]);
    assert_clean(&report);
    assert_eq!(evidence_against(&sim, 0), vec![0, 5]);
}

#[test]
fn equivocators_are_slashed_once_and_the_shard_goes_on_without_them() {
    let mut slashed_runs = 0;
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(2, EQUIVOCATE)]);
        assert_clean(&report);
        let blocks = agreed_blocks(&sim, 0);
        let slashings: Vec<(u64, u32)> =
            blocks.iter().flat_map(|(h, b)| b.evidence.iter().map(move |e| (*h, e.signer.0))).collect();
        assert!(slashings.len() <= 1, "slashed more than once: {slashings:?}");
        let Some(&(height, offender)) = slashings.first() else { continue };
        slashed_runs += 1;
        assert_eq!(offender, 2);
        let tip = blocks.last().map_or(0, |(h, _)| *h);
        assert!(tip > height + 3, "shard 0 stopped after the jailing at {height} (tip {tip})");
        // The next block names the committee without v2, whose rotation skips it.
        let after = &blocks.iter().find(|(h, _)| *h == height + 1).unwrap().1;
        let genesis_committee = sim.genesis.consensus_committee(0).unwrap();
        let jailed = genesis_committee.jailing(&[palisade_consensus::ValidatorIndex(2)]).unwrap();
        assert_eq!(after.header.committee_hash, palisade_ledger::Hash(jailed.hash()));
        for node in sim.nodes.iter().filter(|n| n.honest() && n.shard == 0 && n.height() > height) {
            assert!(!node.committee().is_active(palisade_consensus::ValidatorIndex(2)), "node {}", node.id);
        }
        assert!(blocks.iter().filter(|(h, _)| *h > height).all(|(_, b)| b.header.proposer != sim.nodes[2].address));
    }
    assert!(slashed_runs > 0, "no run slashed the equivocating voter");
}

/// A jailing under reordering: messages of the height after the jailing
/// block reach replicas that have not decided that block yet, and laggards'
/// messages of the jailing height reach replicas on the new committee. Each
/// height must be decided by its own committee, and the shard go on.
#[test]
fn a_jailing_under_reordering_never_stops_the_shard() {
    let mut slashed_runs = 0;
    for seed in 0..12 {
        let scenario = Scenario { max_delay_ms: 120, ..Scenario::calm(seed, 1, 4, vec![(2, EQUIVOCATE)]) };
        let (report, sim) = Sim::new(scenario).run();
        assert_clean(&report);
        let blocks = agreed_blocks(&sim, 0);
        let Some(height) = blocks.iter().find(|(_, b)| !b.evidence.is_empty()).map(|(h, _)| *h) else { continue };
        slashed_runs += 1;
        // The run stops once every shard is live; a late jailing needs
        // longer to show three heights past it.
        let past = |sim: &Sim| sim.nodes.iter().filter(|n| n.honest()).all(|n| n.height() >= height + 3);
        let (report, sim) = sim.run_on(LIVENESS_BOUND_MS, past);
        assert_clean(&report);
        for node in sim.nodes.iter().filter(|n| n.honest()) {
            assert!(
                node.height() >= height + 3,
                "seed {seed}: node {} stopped at {} after the jailing at {height}",
                node.id,
                node.height()
            );
        }
    }
    assert!(slashed_runs >= 6, "only {slashed_runs} of 12 runs slashed the equivocator");
}

/// Found by the simulator once it ran the shard core: a jailing left three
/// active members, whose quorum needs all three; one a view ahead of the
/// other two left each view by its own timeout before they arrived, forever,
/// because a single view change weighed less than a third of the stake.
/// Fixed in the consensus crate's [P8] (a blocking set is enough). The run
/// ends once every honest node is three heights past the heal (height 1
/// here): since leaders are suspected early ([P10]) it gets there at
/// 3.1 s, height 4, instead of 3.6 s, height 5.
#[test]
fn three_active_members_out_of_step_in_views_still_decide() {
    let report = run_seed(2030);
    assert_clean(&report);
    assert!(report.stats.slashed > 0 && report.heights[0] >= 4, "{:?}", report.heights);
}

/// Crashes took from every validator of shard 2 that could still lead the
/// bytes of the block a quorum had prepared at height 1; view changes carry
/// the certificate without the block, so no leader could re-propose it and
/// the shard stayed at height 0. Fixed by persisting the prepared block with
/// the replica's safety state (the sim restarts a node from its encoded
/// record, as a node reads it from disk). Since transactions travel in
/// batches the seed's schedule differs (shard 2 now reaches height 4 by the
/// end); the exact schedule is pinned by
/// `restored_replica_reproposes_its_prepared_block_as_the_next_leader` in
/// consensus/tests/safety.rs, and this stays a crash-heavy seed that must
/// keep every check and move every shard.
#[test]
fn leaders_that_crashed_after_preparing_re_propose_the_block_from_their_record() {
    let report = run_seed(1029);
    assert_clean(&report);
    assert!(!report.scenario.crashes.is_empty(), "{}", report.scenario);
    assert!(report.heights.iter().all(|&h| h >= 3), "{:?}", report.heights);
}

#[test]
fn slashing_checker_flags_a_planted_slashing_of_an_honest_validator() {
    let (report, mut sim) = calm(6, 4, Vec::new());
    assert_clean(&report);
    let evidence = palisade_ledger::workload::dev_evidence(&sim.genesis, 1, 3, 1);
    for node in sim.nodes.iter_mut().filter(|n| n.shard == 1) {
        let last = *node.chain.keys().last().unwrap();
        let certified = node.chain.get_mut(&last).unwrap();
        let mut block = Block::from_bytes(&certified.block, usize::MAX).unwrap();
        block.evidence.push(evidence.clone());
        certified.block = block.to_bytes();
    }
    let violations = sim.report().violations;
    assert!(
        violations.iter().any(|v| matches!(v, Violation::Slashing { shard: 1, what, .. } if what.contains("honest"))),
        "{violations:?}"
    );
}

#[test]
fn silent_validator_cannot_stop_the_shard() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(3, SILENT)]);
        assert_clean(&report);
        assert!(evidence_against(&sim, 0).is_empty());
    }
}

#[test]
fn invalid_blocks_never_become_final() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(1, INVALID_PROPOSALS)]);
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
        let (report, sim) = calm(seed, 4, vec![(0, FLOOD)]);
        assert_clean(&report);
        assert!(report.stats.rejected > 0);
        assert!(evidence_against(&sim, 0).iter().all(|a| *a == 0));
    }
}

/// Twins: two honest cores with one key sign conflicting messages whenever
/// their views differ; the others report it, the shard slashes the key.
#[test]
fn a_twin_is_slashed_and_the_shard_goes_on() {
    let mut slashed_runs = 0;
    for seed in 0..4 {
        let (report, sim) = calm(seed, 4, vec![(2, Kind::Twin)]);
        assert_clean(&report);
        let accused = evidence_against(&sim, 0);
        assert!(accused.iter().all(|a| *a == 2), "evidence against {accused:?}");
        assert!(evidence_against(&sim, 1).is_empty());
        let blocks = agreed_blocks(&sim, 0);
        if blocks.iter().any(|(_, b)| b.evidence.iter().any(|e| e.signer.0 == 2)) {
            slashed_runs += 1;
        }
    }
    assert!(slashed_runs > 0, "no run slashed the twin");
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
fn host_checker_flags_a_vote_sent_before_it_is_persisted() {
    let mut sim = Sim::new(Scenario::calm(3, 1, 4, Vec::new()));
    sim.forget_persists.push(2);
    let (report, _) = sim.run();
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Host { node: 2, what, .. } if what.contains("before persisting"))),
        "{:?}",
        report.violations
    );
}

/// A core that failed to report a pool change would have the node's RPC
/// answer from a stale read view; a host that drops the reports looks the
/// same to the check.
#[test]
fn host_checker_flags_a_read_view_that_drifts_from_the_pools() {
    let mut sim = Sim::new(Scenario::calm(3, 1, 4, Vec::new()));
    sim.forget_views.push(1);
    let (report, _) = sim.run();
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Host { node: 1, what, .. } if what.starts_with("read view"))),
        "{:?}",
        report.violations
    );
}

#[test]
fn host_checker_flags_an_honest_peer_penalised() {
    // A flooder the checks take for honest: its junk is refused as it
    // must be, which would be an honest peer penalised.
    let mut sim = Sim::new(Scenario::calm(3, 1, 4, vec![(0, FLOOD)]));
    sim.nodes[0].kind = None;
    let (report, _) = sim.run();
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Host { what, .. } if what.contains("from honest node 0"))),
        "{:?}",
        report.violations
    );
}

#[test]
fn durability_checker_flags_an_acknowledged_block_the_store_lost() {
    let (report, mut sim) = calm(3, 4, Vec::new());
    assert_clean(&report);
    // Node 1 reported one more block final than its store holds.
    let (&tip, last) = sim.nodes[1].chain.last_key_value().unwrap();
    let last = last.clone();
    sim.nodes[1].chain.insert(tip + 1, last);
    let violations = sim.report().violations;
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::Host { node: 1, what, .. } if what.contains("its store does not hold"))),
        "{violations:?}"
    );
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
    let (report, _) = calm(5, 4, vec![(0, SILENT), (1, SILENT)]);
    assert!(report.violations.iter().any(|v| matches!(v, Violation::Liveness { shard: 0, .. })), "{report:?}");
    assert!(!report.violations.iter().any(|v| matches!(v, Violation::Liveness { shard: 1, .. })));
}

/// Every receipt the agreed chain of `shard` emitted, by id, with the
/// simulated time its block was first committed.
fn emitted(sim: &Sim, shard: u32) -> BTreeMap<Hash, (Receipt, u64)> {
    let mut out = BTreeMap::new();
    for (height, block) in agreed_blocks(sim, shard) {
        let at = sim.committed_at_ms[&(shard, height)];
        for r in receipt_proof::outgoing(&block, sim.scenario.shards) {
            out.insert(r.id, (r, at));
        }
    }
    out
}

/// Every receipt the agreed chain of `shard` credited, by id, with the
/// simulated time its crediting block was first committed.
fn credited(sim: &Sim, shard: u32) -> BTreeMap<Hash, (Receipt, u64)> {
    let mut out = BTreeMap::new();
    for (height, block) in agreed_blocks(sim, shard) {
        let at = sim.committed_at_ms[&(shard, height)];
        for proven in block.incoming.iter().flat_map(|b| &b.receipts) {
            let previous = out.insert(proven.receipt.id, (proven.receipt.clone(), at));
            assert!(previous.is_none(), "receipt {} credited twice", proven.receipt.id);
        }
    }
    out
}

/// The blocks of the longest honest chain of `shard`, by height.
fn agreed_blocks(sim: &Sim, shard: u32) -> Vec<(u64, Block)> {
    let longest = sim.nodes.iter().filter(|n| n.honest() && n.shard == shard).max_by_key(|n| n.chain.len()).unwrap();
    longest.chain.iter().map(|(h, c)| (*h, Block::from_bytes(&c.block, usize::MAX).unwrap())).collect()
}

/// Every credited receipt is one a source block emitted, unchanged.
fn assert_credits_match_emissions(sim: &Sim) {
    let shards = sim.scenario.shards;
    let all_emitted: BTreeMap<Hash, Receipt> =
        (0..shards).flat_map(|s| emitted(sim, s)).map(|(id, (r, _))| (id, r)).collect();
    for dest in 0..shards {
        for (id, (r, _)) in credited(sim, dest) {
            assert_eq!(all_emitted.get(&id), Some(&r), "shard {dest} credited a receipt no source emitted so");
            assert_eq!(r.dest_shard, dest);
        }
    }
}

#[test]
fn cross_shard_receipts_are_credited_once_and_money_is_conserved() {
    for seed in 0..2 {
        let (report, sim) = Sim::new(Scenario::calm(seed, 3, 4, Vec::new())).run();
        assert_clean(&report);
        assert_credits_match_emissions(&sim);
        let credits: Vec<_> = (0..3).map(|s| credited(&sim, s)).collect();
        let count: usize = credits.iter().map(|c| c.len()).sum();
        assert!(count >= 20, "only {count} receipts credited");
        assert_eq!(report.stats.receipts_credited, count as u64);
        // Emitted well before the end: credited.
        for source in 0..3 {
            let end = report.stats.end_ms;
            for (id, (r, at)) in emitted(&sim, source) {
                if at + 1_000 < end {
                    assert!(
                        credits[r.dest_shard as usize].contains_key(&id),
                        "receipt {id} from shard {source} at {at} ms never credited"
                    );
                }
            }
        }
    }
}

#[test]
fn receipts_are_found_by_pull_alone() {
    for seed in 0..2 {
        let mut scenario = Scenario::calm(seed, 2, 4, Vec::new());
        scenario.push_receipts = false;
        let (report, sim) = Sim::new(scenario).run();
        assert_clean(&report);
        assert_credits_match_emissions(&sim);
        assert_eq!(report.stats.batches_relayed, 0);
        assert_eq!(report.stats.batches_pooled, 0);
        assert!(report.stats.batches_scanned > 0, "{:?}", report.stats);
        assert!(report.stats.receipts_credited >= 10, "{:?}", report.stats);
    }
}

#[test]
fn halted_destination_credits_its_receipts_after_recovery() {
    // f + 1 = 2 of shard 1's four validators (nodes 4..8) are down: no
    // quorum, so receipts for shard 1 wait until they are back.
    let (halt_ms, resume_ms) = (300, 1_100);
    for seed in 0..2 {
        let mut scenario = Scenario::calm(seed, 2, 4, Vec::new());
        scenario.crashes = [5, 6].map(|node| Crash { node, at_ms: halt_ms, restart_ms: resume_ms }).to_vec();
        let (report, sim) = Sim::new(scenario).run();
        assert_clean(&report);
        assert_credits_match_emissions(&sim);
        let halted =
            sim.committed_at_ms.iter().filter(|((s, _), at)| *s == 1 && (halt_ms + 100..resume_ms).contains(*at));
        assert_eq!(halted.count(), 0, "shard 1 committed while halted");
        let credited = credited(&sim, 1);
        let waited = emitted(&sim, 0)
            .iter()
            .filter(|(id, (_, at))| {
                (halt_ms..resume_ms).contains(at) && credited.get(*id).is_some_and(|(_, c)| *c >= resume_ms)
            })
            .count();
        assert!(waited >= 5, "only {waited} receipts emitted during the halt were credited after it");
    }
}

#[test]
fn forged_receipts_are_refused_and_never_credited() {
    for seed in 0..3 {
        let (report, sim) = calm(seed, 4, vec![(1, FORGE_RECEIPTS)]);
        // Money conservation, exactly once and receipt liveness hold.
        assert_clean(&report);
        assert_credits_match_emissions(&sim);
        let stats = &report.stats;
        // Forgeries reached honest nodes and were refused as invalid (one
        // that arrives after the honest batch of its block is only a
        // duplicate); pooling them would mint money the supply check sees.
        assert!(stats.batches_refused > 0 && stats.receipts_credited > 0, "{stats:?}");
    }
}

#[test]
fn supply_checker_flags_an_unbalanced_genesis() {
    let (report, mut sim) = calm(6, 4, Vec::new());
    assert_clean(&report);
    // The books say one more unit exists than the shards and flights hold.
    std::sync::Arc::make_mut(&mut sim.genesis).accounts[0].balance_units += 1;
    let violations = sim.report().violations;
    assert!(violations.iter().any(|v| matches!(v, Violation::Money { after: None, .. })), "{violations:?}");
}

#[test]
fn supply_checker_flags_a_credit_beyond_the_source_chain_at_its_height() {
    let (report, mut sim) = calm(7, 4, Vec::new());
    assert_clean(&report);
    // Shard 0's chain loses the last source block shard 1 credited from.
    let (dest_height, source_height) = agreed_blocks(&sim, 1)
        .iter()
        .flat_map(|(h, b)| b.incoming.iter().map(move |batch| (*h, batch.source().1)))
        .max_by_key(|(_, source)| *source)
        .unwrap();
    for node in sim.nodes.iter_mut().filter(|n| n.shard == 0) {
        node.chain.split_off(&source_height);
    }
    let violations = sim.report().violations;
    let first_credit = agreed_blocks(&sim, 1)
        .iter()
        .find(|(_, b)| b.incoming.iter().any(|batch| batch.source() == (0, source_height)))
        .map(|(h, _)| *h)
        .unwrap();
    assert!(first_credit <= dest_height);
    assert!(
        violations.contains(&Violation::MissingSource { shard: 1, height: first_credit, source: (0, source_height) }),
        "{violations:?}"
    );
    // Replayed anyway, that block credits money no final block debited:
    // the supply check names it.
    assert!(
        violations.iter().any(|v| matches!(v, Violation::Money { after: Some((1, h)), supply_units, found_units }
            if *h == first_credit && found_units > supply_units)),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::UnbackedCredit { shard: 1, height, .. } if *height == first_credit))
    );
}

#[test]
fn exactly_once_checker_flags_a_planted_double_credit() {
    let (report, mut sim) = calm(8, 4, Vec::new());
    assert_clean(&report);
    // Shard 1's last block is replaced by an earlier one that credited receipts.
    let blocks = agreed_blocks(&sim, 1);
    let (early, _) = blocks.iter().find(|(_, b)| !b.incoming.is_empty()).unwrap();
    let (last, _) = blocks.last().unwrap();
    let (early, last) = (*early, *last);
    assert!(early < last);
    for node in sim.nodes.iter_mut().filter(|n| n.shard == 1) {
        let copy = node.chain[&early].clone();
        node.chain.insert(last, copy);
    }
    let violations = sim.report().violations;
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::CreditedTwice { shard: 1, heights, .. } if *heights == (early, last))),
        "{violations:?}"
    );
}

/// [P10] Slow but honest links: one-way delays of 15 to 35 ms, so round
/// trips stay under half the simulated 150 ms leader timeout, and a
/// transfer only every 300 ms, so leaders often wait out the 150 ms idle
/// heartbeat before proposing (saying they are alive meanwhile). No honest
/// validator ever suspects a leader or leaves a view.
#[test]
fn slow_honest_links_cause_no_view_change() {
    for seed in 0..3 {
        let mut scenario = Scenario::calm(seed, 2, 4, Vec::new());
        scenario.min_delay_ms = 15;
        scenario.max_delay_ms = 35;
        scenario.tx_interval_ms = 300;
        let (report, _) = Sim::new(scenario).run();
        assert_clean(&report);
        assert_eq!(report.stats.view_changes, 0, "seed {seed}: needless view changes");
        assert!(report.heights.iter().all(|&h| h >= 5), "seed {seed}: {:?}", report.heights);
    }
}

/// Heights shard 0 committed (first honest commit) by `at_ms`.
fn heights_by(sim: &Sim, at_ms: u64) -> usize {
    sim.committed_at_ms.iter().filter(|((shard, _), when)| *shard == 0 && **when <= at_ms).count()
}

/// Shard 0's chain as honest node `node` committed it: per height, the
/// view its certificate was signed in and the block's proposer.
fn turns(sim: &Sim, node: usize) -> Vec<(u64, u64, palisade_ledger::Address)> {
    sim.nodes[node]
        .chain
        .iter()
        .map(|(height, decision)| {
            let block = Block::from_bytes(&decision.block, usize::MAX).unwrap();
            (*height, decision.certificate.view, block.header.proposer)
        })
        .collect()
}

/// [P10] and the ledger's rotation: a validator whose clock runs 20 s
/// ahead proposes blocks that its peers refuse for their timestamp. They
/// leave its view as soon as they have judged its block, so its turn costs
/// one quick view change; the block that ends the height records the failed
/// turn, and the chain benches it (32 heights, then 64, ...), so it does
/// not cost its shard a view change every fourth height. None of its
/// blocks is ever final.
#[test]
fn a_validator_with_a_skewed_clock_is_benched_after_its_first_failed_turn() {
    const RUN_MS: u64 = 20_000;
    let scenario = |skewed: bool| {
        let mut scenario = Scenario::calm(3, 1, 4, Vec::new());
        scenario.heal_ms = RUN_MS;
        if skewed {
            scenario.clock_skew = vec![(1, 20_000)];
        }
        scenario
    };
    let (clean, clean_sim) = Sim::new(scenario(false)).run();
    assert_clean(&clean);
    let (report, sim) = Sim::new(scenario(true)).run();
    assert_clean(&report);
    let skewed = sim.nodes[1].address;
    let turns = turns(&sim, 0);
    assert!(turns.iter().all(|(_, _, proposer)| *proposer != skewed), "a block stamped 20 s ahead is final");
    let failed: Vec<u64> = turns.iter().filter(|(_, view, _)| *view > 0).map(|(height, _, _)| *height).collect();
    let (pace, clean_pace) = (heights_by(&sim, RUN_MS), heights_by(&clean_sim, RUN_MS));
    // Its first turn fails, and then one turn after each bench, which
    // doubles: before benching, one height in four failed (59 of 232).
    assert!(!failed.is_empty(), "it led no view");
    for (i, pair) in failed.windows(2).enumerate() {
        let bench = BENCH_HEIGHTS << i.min(MAX_BENCH_DOUBLINGS as usize);
        assert!(pair[1] - pair[0] > bench, "failed turns at heights {failed:?}: bench {i} was {bench} heights");
    }
    // A quarantined member also stops voting, so each height waits for the
    // slowest of the other three: 89 % of the clean pace (99 % with benching
    // alone, when it still voted; 92 % with neither).
    assert!(pace * 100 >= clean_pace * 85, "{pace} heights in {RUN_MS} ms against {clean_pace} without the skew");
    // It sees its skew in the others' blocks and quarantines itself for
    // good (its clock never heals): from then on it signs nothing, which
    // the runner checks on every input.
    let quarantines = &sim.nodes[1].quarantines;
    assert!(matches!(quarantines.as_slice(), [(from, None, "clock")] if *from < 2_000), "{quarantines:?}");
    let cause = sim.nodes[1].core().unwrap().status().quarantined.unwrap();
    assert!(cause.starts_with("clock skewed: 20"), "{cause}");
    assert!(sim.nodes.iter().filter(|n| n.id != 1).all(|n| n.quarantines.is_empty()), "an honest clock quarantined");
}

/// The quarantine on divergence: a validator whose disk corrupts a state
/// value (its shard's fee record) cannot execute the blocks the others
/// certify. Instead of stopping (the replica path used to panic) it
/// quarantines itself, signs nothing, and keeps re-checking; the shard goes
/// on without it. Once an operator restores the value it catches up and
/// votes again, and no block it acknowledged differs from the others' (the
/// agreement check).
#[test]
fn a_validator_with_a_corrupted_state_quarantines_itself_and_returns_once_repaired() {
    use palisade_testnet::sim::scenario::Tamper;
    const RUN_MS: u64 = 12_000;
    let (at_ms, repair_ms) = (2_000, 6_000);
    let mut scenario = Scenario::calm(9, 1, 4, Vec::new());
    scenario.heal_ms = RUN_MS;
    scenario.tampering = vec![Tamper { node: 3, at_ms, repair_ms }];
    let (report, sim) = Sim::new(scenario).run();
    assert_clean(&report);
    let quarantines = &sim.nodes[3].quarantines;
    // Entered at its first commit after the restart; the repair's stop ends it.
    let [(entered, Some(left), "diverged")] = quarantines.as_slice() else { panic!("{quarantines:?}") };
    assert!((at_ms..at_ms + 1_000).contains(entered) && *left == repair_ms, "{quarantines:?}");
    let muted = signers_between(&sim, entered + 100, *left);
    assert!(muted.len() > 10, "{} heights while it was quarantined", muted.len());
    assert!(muted.iter().all(|(_, signers)| !signers.contains(&3)), "{muted:?}");
    let back = signers_between(&sim, repair_ms + 1_000, RUN_MS);
    assert!(back.iter().any(|(_, signers)| signers.contains(&3)), "never voted again: {back:?}");
}

/// A cause shared by half a committee: two of four validators' disks turn
/// slow at once and both quarantine themselves. Without them the other two
/// are no quorum, so each keeps voting (it still never proposes nor beats):
/// the shard goes on instead of halting until their disks recover.
#[test]
fn two_quarantined_validators_of_four_keep_voting_so_their_shard_goes_on() {
    use palisade_testnet::sim::scenario::SlowWrites;
    const RUN_MS: u64 = 12_000;
    let mut scenario = Scenario::calm(13, 1, 4, Vec::new());
    scenario.heal_ms = RUN_MS;
    scenario.slow_writes =
        [1, 2].map(|node| SlowWrites { node, from_ms: 1_000, until_ms: RUN_MS, took_ms: 800 }).into();
    let (report, sim) = Sim::new(scenario).run();
    assert_clean(&report);
    for node in [1, 2] {
        let quarantines = &sim.nodes[node].quarantines;
        assert!(matches!(quarantines.as_slice(), [(_, None, "slow_storage")]), "node {node}: {quarantines:?}");
    }
    let entered = sim.nodes[1].quarantines[0].0.max(sim.nodes[2].quarantines[0].0);
    let during = signers_between(&sim, entered + 500, RUN_MS);
    assert!(during.len() > 20, "{} heights while both were quarantined", during.len());
    // Each certificate needs one of them, and no block is theirs.
    assert!(during.iter().all(|(_, signers)| signers.iter().any(|s| [1, 2].contains(s))), "{during:?}");
    let proposers = turns(&sim, 0);
    let theirs: Vec<_> = proposers
        .iter()
        .filter(|(h, _, p)| {
            sim.committed_at_ms.get(&(0, *h)).is_some_and(|at| *at > entered + 500)
                && (*p == sim.nodes[1].address || *p == sim.nodes[2].address)
        })
        .collect();
    assert!(theirs.is_empty(), "a quarantined validator proposed: {theirs:?}");
}

/// Shard 0's heights committed between `from_ms` and `until_ms`, with the
/// committee members whose commit votes their certificates carry.
fn signers_between(sim: &Sim, from_ms: u64, until_ms: u64) -> Vec<(u64, Vec<u32>)> {
    sim.nodes[0]
        .chain
        .iter()
        .filter(|(height, _)| {
            sim.committed_at_ms.get(&(0, **height)).is_some_and(|at| (from_ms..until_ms).contains(at))
        })
        .map(|(height, d)| (*height, d.certificate.signatures.iter().map(|s| s.signer.0).collect()))
        .collect()
}

/// The quarantine on slow storage: a validator whose synced writes take
/// 800 ms for 6 s quarantines itself once they have been slow for
/// `SUSTAINED_MS`, signs nothing meanwhile (no certificate carries its
/// vote; the runner checks every message), and rejoins by itself once its
/// writes have been fast as long. The shard keeps its pace without it.
#[test]
fn a_validator_with_a_slow_disk_quarantines_itself_and_rejoins_when_it_is_fast_again() {
    use palisade_shard_core::quarantine::SUSTAINED_MS;
    use palisade_testnet::sim::scenario::SlowWrites;
    const RUN_MS: u64 = 16_000;
    let (from_ms, until_ms) = (2_000, 8_000);
    let scenario = |slow: bool| {
        let mut scenario = Scenario::calm(7, 1, 4, Vec::new());
        scenario.heal_ms = RUN_MS;
        if slow {
            scenario.slow_writes = vec![SlowWrites { node: 2, from_ms, until_ms, took_ms: 800 }];
        }
        scenario
    };
    let (clean, clean_sim) = Sim::new(scenario(false)).run();
    assert_clean(&clean);
    let (report, sim) = Sim::new(scenario(true)).run();
    assert_clean(&report);
    let quarantines = &sim.nodes[2].quarantines;
    let [(entered, Some(left), "slow_storage")] = quarantines.as_slice() else { panic!("{quarantines:?}") };
    // Writes come with its votes, several a height: the streak is judged
    // within a height or two of its bounds (it began with the first slow
    // write, 800 ms before that write's report).
    let start = from_ms + SUSTAINED_MS - 800;
    assert!((start..start + 500).contains(entered), "entered at {entered}");
    assert!((until_ms + SUSTAINED_MS..until_ms + SUSTAINED_MS + 500).contains(left), "left at {left}");
    let muted = signers_between(&sim, entered + 100, *left);
    assert!(muted.len() > 10, "{} heights while it was quarantined", muted.len());
    assert!(muted.iter().all(|(_, signers)| !signers.contains(&2)), "{muted:?}");
    let back = signers_between(&sim, left + 500, RUN_MS);
    assert!(back.iter().any(|(_, signers)| signers.contains(&2)), "never voted again: {back:?}");
    let (pace, clean_pace) = (heights_by(&sim, RUN_MS), heights_by(&clean_sim, RUN_MS));
    assert!(pace * 100 >= clean_pace * 85, "{pace} heights in {RUN_MS} ms against {clean_pace} with a fast disk");
}

/// A validator that crashes and restarts every few hundred ms (a crash
/// loop) fails the turns it leads while down; the rotation benches it, so
/// its shard goes on at nearly its usual pace instead of paying a leader
/// timeout every fourth height.
#[test]
fn a_validator_in_a_crash_loop_is_benched_and_its_shard_keeps_its_pace() {
    const RUN_MS: u64 = 20_000;
    let scenario = |looping: bool| {
        let mut scenario = Scenario::calm(5, 1, 4, Vec::new());
        scenario.heal_ms = RUN_MS;
        if looping {
            scenario.crashes = (0..RUN_MS / 700)
                .map(|i| Crash { node: 2, at_ms: 300 + i * 700, restart_ms: 300 + i * 700 + 400 })
                .collect();
        }
        scenario
    };
    let (clean, clean_sim) = Sim::new(scenario(false)).run();
    assert_clean(&clean);
    let (report, sim) = Sim::new(scenario(true)).run();
    assert_clean(&report);
    let turns = turns(&sim, 0);
    let failed: Vec<u64> = turns.iter().filter(|(_, view, _)| *view > 0).map(|(height, _, _)| *height).collect();
    let (pace, clean_pace) = (heights_by(&sim, RUN_MS), heights_by(&clean_sim, RUN_MS));
    // A turn it leads while up clears its strikes, so each failure benches
    // it afresh: one failed turn per bench at most (before benching: 28
    // failed turns in 197 heights, 79 % of the pace).
    assert!(!failed.is_empty(), "it failed no turn");
    assert!(failed.windows(2).all(|pair| pair[1] - pair[0] > BENCH_HEIGHTS), "failed turns at heights {failed:?}");
    assert!(pace * 100 >= clean_pace * 85, "{pace} heights in {RUN_MS} ms against {clean_pace} without the loop");
}

/// The base fee moves with the load (the simulated genesis puts its
/// target at two transactions a block) and every replica computes the same
/// values: they are in the state root the agreement checker compares. Each
/// transaction burns the base fee of its block, at least one unit; a burn
/// above the transaction count shows the fee rose.
#[test]
fn the_base_fee_rises_with_the_load_and_every_replica_agrees_on_it() {
    let (report, sim) = Sim::new(Scenario::calm(11, 2, 4, Vec::new())).run();
    assert_clean(&report);
    for shard in 0..2u32 {
        let node = sim.nodes.iter().find(|n| n.shard == shard).unwrap();
        let txs: usize = agreed_blocks(&sim, shard).iter().map(|(_, block)| block.txs.len()).sum();
        let burned = palisade_ledger::fee::market(node.store()).unwrap().burned.units();
        assert!(txs > 0, "shard {shard} executed no transaction");
        assert!(burned > txs as u64, "shard {shard}: {burned} units burned by {txs} transactions");
    }
}

/// [P11] A 2 | 2 partition of a shard for 20 s: no quorum, and the views
/// back off to their cap meanwhile. Each side sends its view change again
/// on every beat, so within a beat of the heal the lower side learns of
/// the higher view and joins it (P8), and the shard commits again within a
/// few simulated beats (a real network's second), not after whatever the
/// capped timeout has left to run (up to 3.2 s here).
#[test]
fn after_a_long_partition_heals_the_shard_commits_within_a_second() {
    const HEAL_MS: u64 = 20_300;
    for seed in 0..4 {
        let mut scenario = Scenario::calm(seed, 1, 4, Vec::new());
        scenario.partitions = vec![Partition { side: vec![0, 1], from_ms: 300, until_ms: HEAL_MS }];
        scenario.heal_ms = HEAL_MS;
        let (report, sim) = Sim::new(scenario).run();
        assert_clean(&report);
        let stalled = sim.committed_at_ms.iter().filter(|((_, _), at)| (2_000..HEAL_MS).contains(*at)).count();
        assert_eq!(stalled, 0, "seed {seed}: a side without a quorum committed");
        let first = sim.committed_at_ms.values().copied().filter(|at| *at >= HEAL_MS).min().unwrap();
        assert!(first - HEAL_MS <= 250, "seed {seed}: first commit {} ms after the heal", first - HEAL_MS);
    }
}

/// How many members were active in the committee of each block of the
/// agreed chain of shard 0, replayed from genesis.
fn committee_sizes(sim: &Sim) -> Vec<usize> {
    let mut state = palisade_ledger::mem::MemState::genesis(&sim.genesis, 0).unwrap();
    let mut sizes = Vec::new();
    for (_, block) in agreed_blocks(sim, 0) {
        sizes.push(palisade_ledger::committee::current(&state).unwrap().active().len());
        state.commit(&palisade_ledger::apply_block(&state, &block).unwrap());
    }
    sizes
}

#[test]
fn validators_leave_and_rejoin_by_epoch_and_every_invariant_holds() {
    for seed in 0..3 {
        let mut scenario = Scenario::calm(seed, 1, 5, Vec::new());
        scenario.staking = true;
        scenario.heal_ms = 6_000;
        scenario.drop_per_mille = 20;
        let (report, sim) = Sim::new(scenario).run();
        assert_clean(&report);
        let sizes = committee_sizes(&sim);
        let left = sizes.iter().position(|&n| n == 4);
        let came_back = left.and_then(|at| sizes[at..].iter().position(|&n| n == 5));
        assert!(
            left.is_some() && came_back.is_some(),
            "seed {seed}: a validator should leave and come back over {} heights; committee sizes {sizes:?}",
            sizes.len()
        );
        assert!(sizes.iter().all(|&n| n >= 4), "seed {seed}: never fewer than four members: {sizes:?}");
    }
}
