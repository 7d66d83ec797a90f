//! `cargo bench -p palisade-ledger --features storage --bench apply_block`
//!
//! - `ed25519_batch_verify/N`: the raw rate of ed25519-dalek batch verification
//!   over N signatures: the floor any block validation pays.
//! - `apply_block_only/N`: the same validation and execution, without the
//!   RocksDB commit: with the group below it splits the cost in two.
//! - `apply_block_and_commit/N`: a block of N signed transfers validated
//!   (batch signature check, execution, state-tree update) by
//!   `apply_block` and committed to RocksDB in one synced WriteBatch.
//!
//! The goal is that execution plus storage costs at most 25 % on top of
//! verification. Building and signing each block happens outside the timing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use palisade_ledger::{
    Amount, Genesis, Keypair,
    execute::{apply_block, build_block},
    store::{ShardStore, Store},
    workload::Wallets,
};

const SIZES: [usize; 2] = [1_000, 10_000];

fn batch_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("ed25519_batch_verify");
    for n in SIZES {
        let keys: Vec<SigningKey> =
            (0..n).map(|i| SigningKey::from_bytes(&Keypair::dev(&format!("k{i}")).seed())).collect();
        let messages: Vec<[u8; 32]> = (0..n).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
        let signatures: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        let verifying: Vec<_> = keys.iter().map(SigningKey::verifying_key).collect();
        let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| ed25519_dalek::verify_batch(&refs, &signatures, &verifying).unwrap())
        });
    }
    group.finish();
}

/// One shard on a fresh RocksDB store, with 2·n funded accounts: every
/// block has n distinct senders and n distinct recipients, the realistic
/// worst case for the state tree.
struct Network {
    genesis: Genesis,
    users: Wallets,
    _dir: tempfile::TempDir,
    shard: ShardStore,
    proposer: palisade_ledger::Address,
}

fn network(n: usize) -> Network {
    let mut genesis = Genesis::dev(1, 4);
    genesis.params.max_block_txs = n as u32;
    genesis.params.max_block_bytes = 64 * 1024 * 1024;
    let users = Wallets::new(&genesis.chain_id, "bench", 2 * n);
    users.fund(&mut genesis, "bench", Amount::from_pal(1_000_000).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let shard = ShardStore::open(Store::open(dir.path()).unwrap(), &genesis, 0).unwrap();
    let proposer = genesis.committee(0).unwrap().validators[0].address;
    Network { genesis, users, _dir: dir, shard, proposer }
}

fn apply_and_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_block_and_commit");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for n in SIZES {
        let Network { genesis, mut users, _dir, mut shard, proposer } = network(n);
        let mut round = 0usize;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let offset = round % 2 * n;
                    let txs: Vec<_> = (0..n)
                        .map(|i| {
                            users.transfer(
                                offset + i,
                                users.address(n - offset + (i + round) % n),
                                Amount(1),
                                Amount(1),
                            )
                        })
                        .collect();
                    let built = build_block(&shard, proposer, genesis.genesis_time_ms, Vec::new(), txs).unwrap();
                    assert_eq!(built.block.txs.len(), n, "{:?}", built.rejected.first());
                    let started = Instant::now();
                    let outcome = apply_block(&shard, &built.block).unwrap();
                    shard.commit(&built.block, &[], &outcome).unwrap();
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

fn apply_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_block_only");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for n in SIZES {
        let Network { genesis, mut users, _dir, shard, proposer } = network(n);
        let txs: Vec<_> = (0..n).map(|i| users.transfer(i, users.address(n + i), Amount(1), Amount(1))).collect();
        let block = build_block(&shard, proposer, genesis.genesis_time_ms, Vec::new(), txs).unwrap().block;
        group.throughput(Throughput::Elements(n as u64));
        // Nothing is committed, so the same block stays valid on the same tip.
        group.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| apply_block(&shard, &block).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, batch_verify, apply_only, apply_and_commit);
criterion_main!(benches);
