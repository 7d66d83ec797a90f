//! palisade-testnet: run a whole Palisade network on one machine.
//!
//! - [`sim`]: the seeded, deterministic multi-shard simulator that drives the
//!   real consensus replica and the real ledger through hostile schedules.
//! - [`local`]: a network of real `palisade-node` processes on 127.0.0.1
//!   (the end-to-end tests and the local testnet).
//! - [`chaos`]: a bank workload under injected faults on a local network,
//!   and the audit of what it left.
//! - [`bench`]: an open-loop load generator for a local network: offered
//!   and committed tx/s, finality latency, refusals by reason.
//! - [`drill`]: the failover drill: a halted shard, a twin, a restore, under
//!   load, with every expectation checked.
//! - [`failover`]: leader failover timed: kill the next leader, time the
//!   next commit, restart it, over many trials.
//! - [`surge`]: one client floods one shard: the base fee and the intake
//!   breakers keep it local, every expectation checked.
//! - [`expect`]: the expectations the drill and the surge check.
//!
//! The binary (`palisade-testnet`) also writes the dev genesis.

pub mod bench;
pub mod chaos;
pub mod drill;
pub mod expect;
pub mod failover;
pub mod local;
pub mod sim;
pub mod surge;

/// The runtime a command drives its clients on (chaos, the drill,
/// failover, the surge): two workers, so the clients stay light beside the
/// nodes they load on the same machine.
pub fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting a tokio runtime")
}

/// A command's flags (`T`, a `clap::Args`) at their defaults, as if none
/// was given: what a command run from code (the drill's load, say) starts
/// from, so defaults are written once, on the flags.
pub fn flag_defaults<T: clap::Args>() -> T {
    #[derive(clap::Parser)]
    struct Flags<T: clap::Args> {
        #[command(flatten)]
        flags: T,
    }
    <Flags<T> as clap::Parser>::parse_from(["defaults"]).flags
}
