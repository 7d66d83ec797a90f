//! Decisions per second and messages and bytes per decision, for committees
//! of 4, 7, 16 and 64 equal-stake validators, all replicas simulated on one
//! thread by the test harness (a perfect network: one view per height).
//!
//! The time covers the whole committee: every replica's state machine, the
//! canonical encoding and decoding of every message, and one signature
//! verification per message sent (the harness verifies a broadcast once and
//! hands the verified message to every recipient; a real node verifies each
//! message it receives, so per-node verification cost is `messages/n` per
//! decision on top).

#![allow(missing_docs, clippy::unwrap_used, clippy::arithmetic_side_effects)]

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use harness::Net;

const SIZES: [usize; 4] = [4, 7, 16, 64];

fn heights_for(n: usize) -> u64 {
    if n >= 64 { 4 } else { 20 }
}

fn run(n: usize, heights: u64) -> Net {
    let mut net = Net::new(n);
    net.start();
    assert!(net.run_to_height(heights, u64::MAX), "no progress with {n} validators");
    net
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        let heights = heights_for(n);
        let net = run(n, heights);
        let decisions = heights;
        println!(
            "committee {n:>2}: {:>7} messages/decision, {:>10} bytes/decision",
            net.messages / decisions,
            net.bytes / decisions
        );
    }
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let heights = heights_for(n);
        group.throughput(Throughput::Elements(heights));
        group.bench_function(format!("committee_{n}"), |b| {
            b.iter_batched(
                || {
                    let mut net = Net::new(n);
                    net.start();
                    net
                },
                |mut net| {
                    assert!(net.run_to_height(heights, u64::MAX));
                    black_box(net.messages)
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
