//! Whole-committee runs on the deterministic harness: progress with all
//! replicas, with a silent one, with a crashed leader, with crashes and
//! restarts, and agreement throughout.

mod harness;

use harness::Net;

const HEIGHTS: u64 = 25;
const MAX_STEPS: u64 = 2_000_000;

fn finish(net: &Net) {
    net.check_agreement();
    for (i, node) in net.nodes.iter().enumerate() {
        assert!(node.persisted_before_send, "node {i} sent a vote before persisting it");
    }
    assert_eq!(net.evidence_count(), 0, "honest traffic produced evidence");
}

#[test]
fn four_replicas_decide_many_heights() {
    let mut net = Net::new(4);
    net.start();
    assert!(net.run_to_height(HEIGHTS, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
    // All in view 0: no timer ever fired a view change.
    assert_eq!(net.now_ms, 0, "no time should pass with a perfect network");
}

#[test]
fn one_silent_replica_does_not_stop_progress() {
    let mut net = Net::new(4);
    net.crash(3);
    net.start();
    assert!(net.run_to_height(HEIGHTS, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
    assert!(net.now_ms > 0, "heights led by the silent replica need a view change");
}

#[test]
fn crashed_leader_is_replaced_by_view_change() {
    let mut net = Net::new(4);
    net.start();
    assert!(net.run_to_height(5, MAX_STEPS));
    // Height 6 is led by index (6 + 0) mod 4 = 2.
    net.crash(2);
    assert!(net.run_to_height(HEIGHTS, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
    net.restart(2);
    assert!(net.run_to_height(HEIGHTS + 5, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
}

#[test]
fn crash_and_restart_every_replica_in_turn() {
    let mut net = Net::new(4);
    net.start();
    let mut target = 3;
    for round in 0..8usize {
        let victim = round % 4;
        net.crash(victim);
        target += 3;
        assert!(net.run_to_height(target, MAX_STEPS), "stuck at {:?}", heights(&net));
        net.restart(victim);
        target += 2;
        assert!(net.run_to_height(target, MAX_STEPS), "stuck at {:?}", heights(&net));
    }
    finish(&net);
}

#[test]
fn seven_replicas_with_two_silent_and_unequal_stake() {
    // Stakes 10+10+10+10+10+5+5 = 60; quorum 41. The two silent ones hold 15
    // (< 1/3), so the five others (50) still decide.
    let mut net = Net::with_stakes(&[10, 10, 10, 10, 10, 5, 5]);
    net.crash(5);
    net.crash(6);
    net.start();
    assert!(net.run_to_height(HEIGHTS, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
}

#[test]
fn proposer_of_invalid_blocks_is_routed_around() {
    let mut net = Net::new(4);
    // Every block node 1 builds is invalid to every honest host.
    net.invalid_rule = Box::new(|block| block.windows(5).any(|w| w == b"by=1 "));
    net.start();
    assert!(net.run_to_height(HEIGHTS, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
    for (height, (_, block, _)) in &net.decided {
        let text = String::from_utf8_lossy(block);
        assert!(!text.contains("by=1 "), "invalid block decided at {height}");
    }
}

#[test]
fn lossy_links_heal_and_everyone_catches_up() {
    let mut net = Net::new(4);
    // Node 3 hears nothing for a while: the others decide without it.
    net.drop_rule = Box::new(|_, to, _| to == 3);
    net.start();
    assert!(net.run_until(MAX_STEPS, |n| n.nodes[0].committed_height >= 10));
    net.drop_rule = Box::new(|_, _, _| false);
    // It catches up (via decisions from peers and host sync), then all go on.
    assert!(net.run_to_height(20, MAX_STEPS), "stuck at {:?}", heights(&net));
    finish(&net);
}

#[test]
fn same_run_twice_is_identical() {
    let run = || {
        let mut net = Net::new(4);
        net.crash(1);
        net.start();
        assert!(net.run_to_height(12, MAX_STEPS));
        (net.messages, net.bytes, net.now_ms, net.decided.values().map(|d| d.0).collect::<Vec<_>>())
    };
    assert_eq!(run(), run());
}

fn heights(net: &Net) -> Vec<(u64, u64, u64)> {
    net.nodes.iter().map(|n| (n.committed_height, n.replica.height(), n.replica.view())).collect()
}
