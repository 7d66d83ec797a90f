//! The seeded, deterministic multi-shard simulator (`palisade-testnet sim`).
//!
//! One process runs every validator of several shards, each as the
//! [`palisade_shard_core::ShardCore`] that `palisade-node` runs for a shard
//! (replica, chain, mempool, receipt and evidence pools, sync client,
//! pacing, gossip admission) over an in-memory store, on simulated time,
//! over a simulated network that delays, drops, duplicates and reorders
//! gossip and requests alike and forms and heals partitions, with crashes
//! and restarts from what was durable, and Byzantine validators: the node's
//! own misbehaviour filters, and twins. A run is a pure function of its
//! seed: no clock, no threads, no hash-map order, one seeded generator
//! ([`rng::SimRng`]).
//!
//! - [`scenario`]: what a seed means (shape, faults, Byzantine validators);
//! - [`runner`]: the event loop, the cores' host, and the host contract
//!   checked on every effect;
//! - [`node`]: one validator (its core, and what survives a crash);
//! - [`network`]: the event queue and the wire;
//! - [`workload`]: clients submitting same- and cross-shard transfers;
//! - [`byzantine`]: which misbehaviour a validator runs, or a twin;
//! - [`checks`]: agreement, validity, supply (money in shards + in flight),
//!   receipts credited exactly once and eventually, liveness, evidence,
//!   slashing;
//! - [`many`]: many seeds on all cores.

pub mod byzantine;
pub mod checks;
pub mod many;
pub mod network;
pub mod node;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod workload;

pub use checks::Violation;
pub use runner::{Report, Sim, Stats, run_seed};
pub use scenario::Scenario;

/// The command that replays `seed`.
pub fn replay_command(seed: u64) -> String {
    format!("palisade-testnet sim --seed {seed}")
}
