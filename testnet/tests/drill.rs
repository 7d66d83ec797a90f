//! The failover drill, shorter: 3 shards × 4 real `palisade-node`
//! processes under a light bench load. Shard 2 loses its quorum and halts
//! without forking while the others go on, `/health` and `status` say so,
//! transfers into it wait; a twin on shard 1 is slashed within 10 blocks and
//! jailed, nobody else; shard 2 returns, catches up, credits what waited;
//! a validator of shard 0 restarted with its clock 20 s ahead quarantines
//! itself while shard 0 goes on, and rejoins with the right clock; and the
//! network's money adds up. Throughput shares are a benchmark's
//! business (`palisade-testnet drill`), so here they are only required to be
//! above zero.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::time::Duration;

use palisade_ledger::Genesis;
use palisade_testnet::drill::{self, DrillOptions};
use palisade_testnet::local::{LocalNet, Ports, find_node_binary};

#[test]
fn a_halted_shard_halts_only_itself_a_twin_is_slashed_and_the_shard_returns_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut net =
        LocalNet::create(dir.path(), Genesis::dev(3, 4), find_node_binary(true).unwrap(), Ports::Free).unwrap();
    net.start_all().unwrap();
    let options = DrillOptions {
        rate: 60,
        accounts_per_shard: 8,
        window: Duration::from_secs(4),
        min_share: 0.0,
        timeout: Duration::from_secs(90),
        ..DrillOptions::default()
    };
    let report = drill::run(&mut net, &options).unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs_tail(20)));
    let text = report.render();
    println!("{text}");
    assert_eq!(report.failed().count(), 0, "{text}\n{}", net.logs_tail(20));
    // Every step ran and was judged.
    assert!(report.expectations.len() >= 17, "{text}");
    let twin = report.twin.as_ref().expect("the twin was never slashed");
    assert!(twin.included_at <= twin.offence_at + drill::EVIDENCE_WITHIN, "{text}");
    assert!(report.restore.is_some() && report.quarantine.is_some() && report.supply.is_some(), "{text}");
    assert!(report.during_halt.iter().all(|(&shard, &tps)| shard == drill::HALTED_SHARD || tps > 0.0), "{text}");
    assert_eq!(report.during_halt.get(&drill::HALTED_SHARD), Some(&0.0), "{text}");
}
