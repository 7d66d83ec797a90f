//! The seeded, deterministic multi-shard simulator (`palisade-testnet sim`).
//!
//! One process runs every validator of several shards: the real
//! [`palisade_consensus::Replica`] and the real ledger
//! ([`palisade_ledger::execute`] over [`palisade_ledger::mem::MemState`]),
//! on simulated time, over a simulated network that delays, drops,
//! duplicates and reorders messages and forms and heals partitions, with
//! crashes and restarts from persisted state and Byzantine validators
//! written as code. Cross-shard transfers flow as certified receipt batches
//! that nodes relay and pull between shards. A run is a pure function of its
//! seed: no clock, no threads, no hash-map order, one seeded generator
//! ([`rng::SimRng`]).
//!
//! - [`scenario`]: what a seed means (shape, faults, Byzantine validators);
//! - [`runner`]: the event loop and the honest host's duties (receipt relay
//!   and pull included);
//! - [`node`]: one validator (replica, state, mempool, receipt pool, durable
//!   chain);
//! - [`network`]: the event queue and the wire;
//! - [`workload`]: clients submitting same- and cross-shard transfers;
//! - [`byzantine`]: misbehaviours, one module each;
//! - [`checks`]: agreement, validity, supply (money in shards + in flight),
//!   receipts credited exactly once and eventually, liveness, evidence.

pub mod byzantine;
pub mod checks;
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
