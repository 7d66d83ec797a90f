//! `palisade-testnet`: run a whole Palisade network on one machine.
//!
//! It writes the dev genesis (`genesis`), runs the deterministic simulator
//! (`sim`), and runs a local network of real node processes in the
//! background (`up`, `status`, `down`, and per node `kill`, `stop`, `pause`,
//! `resume`, `restart`, `logs`; see [`control`]).

mod control;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use palisade_ledger::Genesis;
use palisade_testnet::chaos::{self, ChaosOptions};
use palisade_testnet::drill::{self, DrillOptions};
use palisade_testnet::failover::{self, FailoverOptions};
use palisade_testnet::local::{self, LocalNet, Ports};
use palisade_testnet::sim::{self, Scenario, Sim};
use palisade_testnet::surge::{self, SurgeOptions};

#[derive(Parser)]
#[command(name = "palisade-testnet", version, about = "Run a whole Palisade network on one machine")]
struct Cli {
    /// Where the local network lives (genesis, keys, data, logs, PIDs).
    #[arg(long, global = true, default_value = ".testnet", env = "PALISADE_TESTNET_DIR")]
    dir: PathBuf,
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
    /// every validator runs the node's own shard core (replica, ledger,
    /// mempool, pools, sync, gossip admission) under message delay, loss,
    /// duplication and reordering, partitions, crashes and restarts, and
    /// Byzantine validators (the node's misbehaviours, and twins). Each seed
    /// picks its own scenario. Checks agreement, validity, money, liveness
    /// after healing, evidence, slashing and the host contract. Prints one
    /// line per failing seed with the command that replays it, and ends with
    /// `sim: N seeds, V violations` and the seeds per second; exits non-zero
    /// on a violation.
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
        /// Seeds run at once, one thread each (default: the core count).
        #[arg(long)]
        jobs: Option<usize>,
        /// Progress line on stderr every this many seeds (0: none).
        #[arg(long, default_value_t = 100)]
        progress_every: u64,
    },
    /// Start a local network of real `palisade-node` processes on 127.0.0.1,
    /// one per validator of the genesis, each with its own data directory
    /// and ports under the state directory, and print where each node's RPC
    /// and metrics are. The nodes keep running in the background (`down`
    /// stops them); running `up` again resumes the same chain.
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
        /// First port: node i uses base+3i (p2p), +1 (RPC), +2 (metrics).
        #[arg(long, default_value_t = palisade_ledger::api::local::BASE_PORT)]
        base_port: u16,
        /// Stop any network in the state directory, delete it, start a new chain.
        #[arg(long)]
        fresh: bool,
        /// Stay in the foreground; Ctrl-C stops every node gracefully.
        #[arg(long)]
        foreground: bool,
        /// Use this palisade-node binary instead of building one.
        #[arg(long, env = "PALISADE_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
    /// A table per shard (healthy, degraded or halted; height, last commit age, view, validators up) and
    /// per node (process, height, RPC).
    Status {
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node gracefully (SIGTERM; SIGKILL after --grace).
    Down {
        /// Seconds each node has to exit by itself.
        #[arg(long, default_value_t = 15)]
        grace: u64,
    },
    /// SIGKILL one node (nothing flushed: a crash).
    Kill {
        /// The node (`validator-S-I`, see `status`).
        node: String,
    },
    /// Stop one node gracefully.
    Stop {
        /// The node.
        node: String,
    },
    /// Freeze one node (SIGSTOP): its process stays, silent.
    Pause {
        /// The node.
        node: String,
    },
    /// Thaw a paused node (SIGCONT).
    Resume {
        /// The node.
        node: String,
    },
    /// Stop (if running) and start one node; waits until it answers.
    Restart {
        /// The node.
        node: String,
        /// Start it misbehaving on purpose (test-only; dev chains): equivocate, silent, invalid-proposals, flood
        #[arg(long, value_name = "MODE")]
        misbehave: Option<String>,
    },
    /// Start a twin of one validator: a second process with its key and its own data directory (honest code
    /// that equivocates, so the validator is slashed and jailed). `restart NODE-twin` / `kill NODE-twin` as usual
    Twin {
        /// The validator to twin.
        node: String,
    },
    /// Run a bank workload (a third of its transfers cross shards) on the
    /// running network while killing, pausing, stopping and restarting
    /// random validators (at most f per shard at once), then check: every
    /// validator agrees on every block, every acknowledged transfer is final
    /// exactly once (and, cross-shard, credited once), every bank balance is
    /// exact, and genesis supply = balances + stake + rewards + in flight,
    /// with nothing left in flight. Exits non-zero on any violation.
    Chaos {
        /// How long faults run ("60s", "5m").
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Seeds the fault schedule and the workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Bank accounts per shard.
        #[arg(long, default_value_t = 6)]
        accounts_per_shard: usize,
    },
    /// Print the end of one node's log.
    Logs {
        /// The node.
        node: String,
        /// Lines to print.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Keep printing what the node appends, until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
    },
    /// One client floods one shard, on a fresh network of its own (in
    /// --net-dir, on free ports; a genesis whose base fee moves at this
    /// machine's load): an honest high-fee load on every shard, then the
    /// flooding client sends --factor times its usual rate of low-fee
    /// transfers to --shard, then calms. Reports the base fee's rise and
    /// fall, the flooded shard's high-fee p99 (≤ 2× its baseline), the other
    /// shards' throughput (≥ 90%), the flooder throttled, and nothing
    /// acknowledged lost; exits non-zero if an expectation failed.
    Surge {
        /// Where the surge's network lives (deleted and recreated; it must
        /// be a network's directory or absent).
        #[arg(long, default_value = ".testnet-surge")]
        net_dir: PathBuf,
        /// Shards.
        #[arg(long, default_value_t = 4)]
        shards: u32,
        #[command(flatten)]
        options: SurgeOptions,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Leave the network running afterwards (`--dir NET_DIR status`).
        #[arg(long)]
        keep: bool,
        /// Use this palisade-node binary instead of building one.
        #[arg(long, env = "PALISADE_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
    /// The failover drill, on a fresh network of its own (in --net-dir, on
    /// free ports): 4 shards × 4 validators under the bench load; kills 2 of
    /// shard 2's validators (it halts, never forks, /health and status say
    /// so, transfers into it wait in flight, the others keep ≥ 90% of their
    /// tx/s); starts a twin of a shard 1 validator (slashed within 10
    /// blocks, jailed, shard 1 goes on, nobody else touched); restores
    /// shard 2 (it catches up, credits what waited); restarts a shard 0
    /// validator with its clock 20 s ahead (it quarantines itself, shard 0
    /// goes on, it rejoins with the right clock); and the network's money
    /// adds up. Prints a report; exits non-zero if an expectation failed.
    Drill {
        /// Where the drill's network lives (deleted and recreated; it must
        /// be a network's directory or absent).
        #[arg(long, default_value = ".testnet-drill")]
        net_dir: PathBuf,
        /// Shards (at least 3: 2 is halted, 1 gets a twin).
        #[arg(long, default_value_t = 4)]
        shards: u32,
        #[command(flatten)]
        options: DrillOptions,
        /// Leave the network running afterwards (`--dir NET_DIR status`).
        #[arg(long)]
        keep: bool,
        /// Use this palisade-node binary instead of building one.
        #[arg(long, env = "PALISADE_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
    /// Leader failover, timed on the running network: waits for a commit on
    /// --shard, SIGKILLs the validator that leads the next height, times
    /// the next commit on a survivor, restarts the victim and waits until
    /// it caught up; --trials times (a kill that came after the victim had
    /// proposed is retried, not counted). Prints min/median/p90/max; exits
    /// non-zero when the median exceeds 600 ms or any trial 1,000 ms (or,
    /// with --load, a transaction is not final).
    Failover(FailoverOptions),
    /// Open-loop load: fund accounts on every shard, submit signed
    /// transfers at --rate for --duration whatever the network answers, and
    /// measure each from submit to final (--cross-shard: a share to another
    /// shard, measured until credited there). Prints offered and committed
    /// tx/s, p50/p90/p99/max latency and refusals by reason; --find-max
    /// searches the highest rate with p99 under --p99-ms. See docs/bench.md.
    Bench(palisade_testnet::bench::BenchArgs),
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    let dir = cli.dir;
    match cli.command {
        Command::Genesis { shards, validators_per_shard, out, check } => {
            genesis(shards, validators_per_shard, &out, check).map(|()| ExitCode::SUCCESS)
        }
        Command::Sim { seed: Some(seed), .. } => Ok(sim_one(seed)),
        Command::Sim { seed: None, seeds, start, jobs, progress_every } => {
            Ok(sim_many(start, seeds, jobs.unwrap_or_else(sim::many::default_jobs), progress_every))
        }
        Command::Up { genesis, shards, validators_per_shard, base_port, fresh, foreground, node_bin } => {
            let genesis = match shards {
                Some(shards) => Genesis::dev(shards, validators_per_shard),
                None => {
                    let (genesis, warnings) = Genesis::load(&genesis)
                        .with_context(|| format!("loading {} (or pass --shards S)", genesis.display()))?;
                    for warning in warnings {
                        eprintln!("warning: {}: {}", warning.field, warning.reason);
                    }
                    genesis
                }
            };
            if fresh {
                LocalNet::wipe(&dir, Duration::from_secs(15))?;
            }
            let binary = match node_bin {
                Some(path) => path,
                None => local::node_binary_for_network()?,
            };
            let net = LocalNet::create(&dir, genesis, binary, Ports::From(base_port))?;
            control::up(net, foreground)
        }
        Command::Status { json } => control::status(&mut LocalNet::open(&dir)?, json),
        Command::Down { grace } => control::down(&mut LocalNet::open(&dir)?, Duration::from_secs(grace)),
        Command::Kill { node } => control::each(&mut LocalNet::open(&dir)?, &node, "killed", |net, n| net.kill(n)),
        Command::Stop { node } => control::each(&mut LocalNet::open(&dir)?, &node, "stopped", |net, n| {
            net.stop(n, Duration::from_secs(15)).map(drop)
        }),
        Command::Pause { node } => control::each(&mut LocalNet::open(&dir)?, &node, "paused", |net, n| net.pause(n)),
        Command::Resume { node } => control::each(&mut LocalNet::open(&dir)?, &node, "resumed", |net, n| net.resume(n)),
        Command::Twin { node } => control::twin(&mut LocalNet::open(&dir)?, &node),
        Command::Restart { node, misbehave } => {
            control::restart(&mut LocalNet::open(&dir)?, &node, misbehave.as_deref())
        }
        Command::Chaos { duration, seed, accounts_per_shard } => {
            let options = ChaosOptions { duration, seed, accounts_per_shard, ..ChaosOptions::default() };
            let report = chaos::run(&mut LocalNet::open(&dir)?, &options)?;
            print!("{}", report.render());
            Ok(if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Logs { node, lines, follow } => control::logs(&LocalNet::open(&dir)?, &node, lines, follow),
        Command::Bench(args) => palisade_testnet::bench::run(&dir, &args),
        Command::Failover(options) => {
            let report = failover::run(&mut LocalNet::open(&dir)?, &options)?;
            if options.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render());
            }
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Drill { net_dir, shards, options, keep, node_bin } => {
            drill(&net_dir, shards, &options, keep, node_bin)
        }
        Command::Surge { net_dir, shards, options, json, keep, node_bin } => {
            surge(&net_dir, shards, &options, json, keep, node_bin)
        }
    }
}

/// `palisade-testnet drill`: a fresh network, the drill, the report.
fn drill(dir: &Path, shards: u32, options: &DrillOptions, keep: bool, node_bin: Option<PathBuf>) -> Result<ExitCode> {
    LocalNet::wipe(dir, Duration::from_secs(15))?;
    let binary = node_binary(node_bin)?;
    let mut net = LocalNet::create(dir, Genesis::dev(shards, 4), binary, Ports::Free)?;
    eprintln!("drill: starting {shards} shards × 4 validators in {}", net.dir.display());
    net.start_all()?;
    let outcome = drill::run(&mut net, options);
    // The report first: a failure to stop the nodes must not hide it.
    if let Ok(report) = &outcome {
        print!("{}", report.render());
    }
    keep_or_stop("drill", net, dir, keep);
    Ok(if outcome?.failed().next().is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `--node-bin`, or the binary built for a network.
fn node_binary(node_bin: Option<PathBuf>) -> Result<PathBuf> {
    match node_bin {
        Some(path) => Ok(path),
        None => local::node_binary_for_network(),
    }
}

/// Leaves a command's network running (`--keep`) or stops it, saying so as
/// `tool`.
fn keep_or_stop(tool: &str, mut net: LocalNet, dir: &Path, keep: bool) {
    if keep {
        net.detach();
        eprintln!("{tool}: the network keeps running: `palisade-testnet --dir {} status`", dir.display());
    } else if let Err(e) = net.stop_all(Duration::from_secs(15)) {
        eprintln!("{tool}: stopping the network: {e:#}");
    }
}

/// `palisade-testnet surge`: a fresh network, the surge, the report.
fn surge(
    dir: &Path,
    shards: u32,
    options: &SurgeOptions,
    json: bool,
    keep: bool,
    node_bin: Option<PathBuf>,
) -> Result<ExitCode> {
    if shards < 2 {
        bail!("the surge needs at least 2 shards (one flooded, one to stay unharmed)");
    }
    LocalNet::wipe(dir, Duration::from_secs(15))?;
    let binary = node_binary(node_bin)?;
    eprintln!("surge: starting {shards} shards × 4 validators in {}", dir.display());
    let net = surge::start_network(dir, shards, binary)?;
    let outcome = surge::run(&net, options);
    if let Ok(report) = &outcome {
        if json {
            println!("{}", serde_json::to_string(report)?);
        } else {
            print!("{}", report.render());
        }
    }
    keep_or_stop("surge", net, dir, keep);
    Ok(if outcome?.expectations.failed().next().is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs one seed verbosely.
fn sim_one(seed: u64) -> ExitCode {
    let scenario = Scenario::generate(seed);
    println!("{scenario}");
    let (report, _) = Sim::new(scenario).run();
    let stats = &report.stats;
    println!(
        "heights {:?}, {} commits ({} by sync), {} messages ({} lost, {} rejected), {} evidence, {} slashed, {} events, \
         ended at {} ms",
        report.heights,
        stats.commits,
        stats.synced,
        stats.messages,
        stats.lost,
        stats.rejected,
        stats.evidence,
        stats.slashed,
        stats.events,
        stats.end_ms
    );
    println!(
        "receipts: {} credited; batches {} relayed, {} pooled, {} refused, {} brought by scans",
        stats.receipts_credited,
        stats.batches_relayed,
        stats.batches_pooled,
        stats.batches_refused,
        stats.batches_scanned
    );
    println!("digest {}", report.digest.iter().map(|b| format!("{b:02x}")).collect::<String>());
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    println!("sim: 1 seeds, {} violations", report.violations.len());
    if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs `count` seeds from `start` on `jobs` threads; one line per failing
/// seed.
fn sim_many(start: u64, count: u64, jobs: usize, progress_every: u64) -> ExitCode {
    let mut violations = 0usize;
    let mut done = 0u64;
    let summary = sim::many::run(start, count, jobs, |report| {
        done += 1;
        let seed = report.scenario.seed;
        if let Some(first) = report.violations.first() {
            violations += report.violations.len();
            eprintln!("seed {seed}: {first} (replay: {})", sim::replay_command(seed));
        }
        if progress_every > 0 && done.is_multiple_of(progress_every) && done < count {
            eprintln!("sim: {done}/{count} seeds, {violations} violations so far");
        }
    });
    println!(
        "sim: {} seeds, {} violations ({:.1} seeds/s, {jobs} jobs, {:.1} s)",
        summary.seeds,
        summary.violations,
        summary.seeds_per_second(),
        summary.elapsed.as_secs_f64()
    );
    if summary.violations == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
