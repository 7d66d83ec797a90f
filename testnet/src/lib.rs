//! palisade-testnet: run a whole Palisade network on one machine.
//!
//! - [`sim`]: the seeded, deterministic multi-shard simulator that drives the
//!   real consensus replica and the real ledger through hostile schedules.
//!
//! The binary (`palisade-testnet`) also writes the dev genesis.

pub mod sim;
