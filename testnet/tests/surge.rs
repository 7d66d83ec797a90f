//! The surge, shorter: 2 shards × 4 real `palisade-node` processes (debug
//! builds) under a light honest load; one client floods shard 0 with ten
//! times its usual rate from an address of its own. The base fee of shard 0
//! rises and falls, the nodes' per-client breaker throttles the flooder,
//! and nothing acknowledged is lost. Throughput shares and latency ratios
//! are a benchmark's business (`palisade-testnet surge`), so here they are
//! only required to hold loosely.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::time::Duration;

use palisade_testnet::local::find_node_binary;
use palisade_testnet::surge::{self, SurgeOptions};

#[test]
fn a_flooding_client_is_throttled_its_shard_prices_the_surge_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let net = surge::start_network(dir.path(), 2, find_node_binary(true).unwrap()).unwrap();
    let options = SurgeOptions {
        rate: 100,
        accounts_per_shard: 8,
        duration: Duration::from_secs(5),
        // Twenty times its usual rate, not the default ten: the breaker
        // trips at ten times a client's baseline and above the surge
        // network's floor of 100 tx/s per node, while the flood is spread
        // over four nodes and the rising base fee refuses much of it, so at
        // ten its admitted rate per node hovered at the floor and the test
        // failed about half the time.
        factor: 20,
        min_share: 0.0,
        max_p99_ratio: 50.0,
        timeout: Duration::from_secs(90),
        ..SurgeOptions::default()
    };
    let report = surge::run(&net, &options).unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs_tail(20)));
    let text = report.render();
    println!("{text}");
    assert_eq!(report.expectations.failed().count(), 0, "{text}\n{}", net.logs_tail(20));
    assert_eq!(report.expectations.len(), 6, "{text}");
    assert!(report.flood.throttled > 0 && report.flood.admitted > 0, "{text}");
    assert!(report.surge.base_fee_units.1 > surge::MIN_BASE_FEE_UNITS, "{text}");
}
