//! `palisade-testnet`: run a whole Palisade network on one machine.
//!
//! Today it generates the dev genesis and runs the deterministic simulator
//! (`sim`); the local process testnet (`up`, `status`, `bench`, `chaos`, …)
//! lands with its issues. Commands that do not exist yet are not listed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use palisade_ledger::Genesis;
use palisade_testnet::local::{self, LocalNet, Ports};
use palisade_testnet::sim::{self, Scenario, Sim};

#[derive(Parser)]
#[command(name = "palisade-testnet", version, about = "Run a whole Palisade network on one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the dev genesis: S shards × N validators and the well-known dev
    /// accounts (alice, bob, carol, dave, faucet), all with keys derived from
    /// their names. INSECURE by design: for local networks only.
    Genesis {
        /// Number of shards.
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Validators on each shard's committee.
        #[arg(long, default_value_t = 4)]
        validators_per_shard: u32,
        /// Where to write it; `-` for stdout.
        #[arg(long, default_value = "genesis.json")]
        out: PathBuf,
        /// Do not write: fail if the file differs from what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Simulate whole multi-shard networks in one process, deterministically:
    /// the real consensus replica and ledger under message delay, loss,
    /// duplication and reordering, partitions, crashes and restarts, and
    /// Byzantine validators. Each seed picks its own scenario. Checks
    /// agreement, validity, money, liveness after healing, and evidence.
    /// Prints one line per violation with the command that replays it, and
    /// ends with `sim: N seeds, V violations`; exits non-zero on a violation.
    Sim {
        /// Run exactly this seed, and describe its scenario and outcome.
        #[arg(long, conflicts_with_all = ["seeds", "start"])]
        seed: Option<u64>,
        /// How many seeds to run.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed of the range.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Progress line on stderr every this many seeds (0: none).
        #[arg(long, default_value_t = 100)]
        progress_every: u64,
    },
    /// Start a local network of real `palisade-node` processes on 127.0.0.1,
    /// one per validator of the genesis, each with its own data directory
    /// and ports under the state directory. Runs in the foreground: Ctrl-C
    /// stops every node gracefully. Running it again resumes the same chain.
    Up {
        /// The genesis to run (by default the committed dev genesis).
        #[arg(long, default_value = "genesis.json", conflicts_with = "shards")]
        genesis: PathBuf,
        /// Generate a dev genesis with this many shards instead.
        #[arg(long)]
        shards: Option<u32>,
        /// Validators per shard of a generated genesis.
        #[arg(long, default_value_t = 4, requires = "shards")]
        validators_per_shard: u32,
        /// Where the network lives (genesis, keys, data, logs).
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// First port: node i uses base+3i (p2p), +1 (RPC), +2 (metrics).
        #[arg(long, default_value_t = 27_000)]
        base_port: u16,
        /// Delete the state directory first and start a new chain.
        #[arg(long)]
        fresh: bool,
        /// Use this palisade-node binary instead of building one.
        #[arg(long, env = "PALISADE_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
}

fn main() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Genesis { shards, validators_per_shard, out, check } => {
            genesis(shards, validators_per_shard, &out, check).map(|()| ExitCode::SUCCESS)
        }
        Command::Sim { seed: Some(seed), .. } => Ok(sim_one(seed)),
        Command::Sim { seed: None, seeds, start, progress_every } => Ok(sim_many(start, seeds, progress_every)),
        Command::Up { genesis, shards, validators_per_shard, dir, base_port, fresh, node_bin } => {
            let genesis = match shards {
                Some(shards) => Genesis::dev(shards, validators_per_shard),
                None => {
                    let (genesis, warnings) = Genesis::load(&genesis)?;
                    for warning in warnings {
                        eprintln!("warning: {}: {}", warning.field, warning.reason);
                    }
                    genesis
                }
            };
            if fresh && dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            let binary = match node_bin {
                Some(path) => path,
                None => local::find_node_binary(false)?,
            };
            up(&dir, genesis, binary, base_port)
        }
    }
}

/// Starts the network, prints where everything is, waits for Ctrl-C.
fn up(dir: &std::path::Path, genesis: Genesis, binary: PathBuf, base_port: u16) -> Result<ExitCode> {
    let mut net = LocalNet::create(dir, genesis, binary, Ports::From(base_port))?;
    net.start_all()?;
    println!("{:<16} {:>5}  {:<24} {:<24} log", "node", "shard", "rpc", "metrics");
    for node in &net.nodes {
        println!(
            "{:<16} {:>5}  {:<24} {:<24} {}",
            node.name,
            node.shard,
            node.rpc_url(),
            format!("{}/metrics", node.metrics_url()),
            node.log_path().display()
        );
    }
    println!("\n{} nodes running; state in {}. Ctrl-C stops them.", net.nodes.len(), net.dir.display());
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(runtime) = runtime {
            let _ = runtime.block_on(tokio::signal::ctrl_c());
        }
        let _ = stop_tx.send(());
    });
    // Report nodes that exit on their own while we wait.
    let names: Vec<String> = net.nodes.iter().map(|n| n.name.clone()).collect();
    let mut reported = std::collections::BTreeSet::new();
    while stop_rx.recv_timeout(std::time::Duration::from_secs(1)).is_err() {
        for name in &names {
            if !net.is_running(name) && reported.insert(name.clone()) {
                eprintln!("{name} exited; its log:\n{}", net.log_tail(name, 10));
            }
        }
    }
    let _ = stopper.join();
    println!("stopping…");
    let mut unclean = 0;
    for name in &names {
        if net.is_running(name) && !net.stop(name, std::time::Duration::from_secs(15))? {
            unclean += 1;
        }
    }
    println!("stopped ({unclean} did not exit cleanly)");
    Ok(if unclean == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs one seed verbosely.
fn sim_one(seed: u64) -> ExitCode {
    let scenario = Scenario::generate(seed);
    println!("{scenario}");
    let (report, _) = Sim::new(scenario).run();
    let stats = &report.stats;
    println!(
        "heights {:?}, {} commits ({} by sync), {} messages ({} lost, {} rejected), {} evidence, {} events, ended at {} ms",
        report.heights,
        stats.commits,
        stats.synced,
        stats.messages,
        stats.lost,
        stats.rejected,
        stats.evidence,
        stats.events,
        stats.end_ms
    );
    println!("digest {}", report.digest.iter().map(|b| format!("{b:02x}")).collect::<String>());
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    println!("sim: 1 seeds, {} violations", report.violations.len());
    if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs `count` seeds from `start`; one line per failing seed.
fn sim_many(start: u64, count: u64, progress_every: u64) -> ExitCode {
    let mut violations = 0usize;
    for (done, seed) in (start..start.saturating_add(count)).enumerate() {
        let report = sim::run_seed(seed);
        if let Some(first) = report.violations.first() {
            violations += report.violations.len();
            eprintln!("seed {seed}: {first} (replay: {})", sim::replay_command(seed));
        }
        let done = done as u64 + 1;
        if progress_every > 0 && done.is_multiple_of(progress_every) && done < count {
            eprintln!("sim: {done}/{count} seeds, {violations} violations so far");
        }
    }
    println!("sim: {count} seeds, {violations} violations");
    if violations == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn genesis(shards: u32, validators_per_shard: u32, out: &PathBuf, check: bool) -> Result<()> {
    let genesis = Genesis::dev(shards, validators_per_shard);
    let warnings = genesis.validate().context("generated genesis is invalid")?;
    for warning in warnings {
        eprintln!("warning: {}: {}", warning.field, warning.reason);
    }
    let text = genesis.to_json();
    if check {
        let existing = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
        if existing != text {
            bail!(
                "{} differs from the generated dev genesis; regenerate it with `palisade-testnet genesis`",
                out.display()
            );
        }
        println!("{} is the dev genesis ({shards} shards × {validators_per_shard} validators)", out.display());
        return Ok(());
    }
    if out.as_os_str() == "-" {
        print!("{text}");
    } else {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {} ({shards} shards × {validators_per_shard} validators, chain {})",
            out.display(),
            genesis.chain_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_genesis_is_the_generated_dev_genesis() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../genesis.json");
        let committed = std::fs::read_to_string(path).expect("genesis.json at the repository root");
        assert_eq!(committed, Genesis::dev(4, 4).to_json(), "regenerate with `palisade-testnet genesis`");
        let (loaded, warnings) = Genesis::from_json(&committed).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(loaded.shard_count, 4);
        assert_eq!(loaded.committees.iter().map(|c| c.validators.len()).sum::<usize>(), 16);
    }
}
