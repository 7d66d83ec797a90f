//! palisade-testnet: run a whole Palisade network on one machine.
//!
//! - [`sim`]: the seeded, deterministic multi-shard simulator that drives the
//!   real consensus replica and the real ledger through hostile schedules.
//! - [`local`]: a network of real `palisade-node` processes on 127.0.0.1
//!   (the end-to-end tests and the local testnet).
//!
//! The binary (`palisade-testnet`) also writes the dev genesis.

pub mod local;
pub mod sim;
