//! `palisade-testnet surge`: one client floods one shard, and the surge must
//! stay local. On a network of its own (a dev genesis whose base fee moves
//! at a load this machine reaches, see [`surge_genesis`]), under an honest
//! load on every shard (the bench's, high-fee):
//!
//! 1. **baseline**: one more client ([`flood`], from an address of its own)
//!    sends low-fee transfers on the flooded shard at that shard's honest
//!    rate; each shard's committed tx/s and the flooded shard's high-fee
//!    latency are measured;
//! 2. **surge**: that client sends `--factor` times its rate;
//! 3. **calm**: it is back at its usual rate.
//!
//! Expected: the flooded shard's base fee rises during the surge and falls
//! after it; its high-fee transfers keep a p99 within `--max-p99-ratio`
//! (2) of the baseline's; every other shard keeps `--min-share` (90 %) of
//! its baseline throughput; the nodes' per-client breaker throttles the
//! flooder; and nothing acknowledged is lost (every honest transfer final,
//! every admitted flood transfer final or still pending). The command exits
//! non-zero if one fails.
//!
//! - [`flood`]: the flooding client;
//! - [`report`]: the figures and the expectations (pure).

pub mod flood;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::api::TransactionResponse;
use palisade_ledger::api::client::Client;
use palisade_ledger::{Genesis, ShardId};

use self::flood::Flood;
pub use self::report::SurgeReport;
use self::report::{FloodFate, Phase};
use crate::bench::accounts::ShardClients;
use crate::bench::{self, BenchArgs};
use crate::drill::probe;
use crate::local::{LocalNet, Ports};

/// The surge network's base fee target, transactions a block: above what
/// the honest load puts in a block, below what the flood does.
pub const TARGET_TXS: u32 = 16;
/// Its lowest base fee, units (the flood pays [`flood::FLOOD_FEE_UNITS`]).
pub const MIN_BASE_FEE_UNITS: u64 = 10;
/// Its highest, units: below the honest load's fee, which thus always pays.
pub const MAX_BASE_FEE_UNITS: u64 = 500;
/// Transactions per second per shard one client may always submit to a
/// node of the surge network (`rpc.client_tx_floor_per_second`): above the
/// honest load's and the flood's usual share of a node, below the surge's.
pub const CLIENT_FLOOR_PER_SECOND: u64 = 100;
/// How often the flooded shard's base fee and breakers are read.
const STATUS_POLL: Duration = Duration::from_millis(250);
/// One RPC call's bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What to run (also `palisade-testnet surge`'s flags).
#[derive(Clone, Debug, clap::Args)]
pub struct SurgeOptions {
    /// The shard the client floods.
    #[arg(long, default_value_t = 0)]
    pub shard: ShardId,
    /// How many times its usual rate the flooding client sends in the surge.
    #[arg(long, default_value_t = 10)]
    pub factor: u64,
    /// Each phase's length (baseline, surge, calm).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The honest load, tx/s over all shards (1,000-unit fees).
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Honest sending accounts per shard.
    #[arg(long, default_value_t = 16)]
    pub accounts_per_shard: usize,
    /// The share of its baseline tx/s every other shard must keep in the surge.
    #[arg(long, default_value_t = 0.9)]
    pub min_share: f64,
    /// How many times its baseline p99 the flooded shard's high-fee transfers may take in the surge.
    #[arg(long, default_value_t = 2.0)]
    pub max_p99_ratio: f64,
    /// The longest any one wait may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl Default for SurgeOptions {
    /// The flags' defaults.
    fn default() -> Self {
        crate::flag_defaults()
    }
}

/// A dev genesis of `shards` × 4 whose base fee moves at a load this
/// machine reaches ([`TARGET_TXS`], [`MIN_BASE_FEE_UNITS`],
/// [`MAX_BASE_FEE_UNITS`]).
pub fn surge_genesis(shards: u32) -> Genesis {
    let mut genesis = Genesis::dev(shards, 4);
    genesis.params.base_fee_target_txs = TARGET_TXS;
    genesis.params.min_base_fee_units = MIN_BASE_FEE_UNITS;
    genesis.params.max_base_fee_units = MAX_BASE_FEE_UNITS;
    genesis
}

/// Creates the surge's network of `shards` × 4 in `dir` ([`surge_genesis`],
/// free ports, `binary`'s nodes) and starts every node with the per-client
/// floor of [`CLIENT_FLOOR_PER_SECOND`].
pub fn start_network(dir: &Path, shards: u32, binary: PathBuf) -> Result<LocalNet> {
    let mut net = LocalNet::create(dir, surge_genesis(shards), binary, Ports::Free)?;
    let floor = CLIENT_FLOOR_PER_SECOND.to_string();
    let names: Vec<String> = net.nodes.iter().map(|n| n.name.clone()).collect();
    for name in &names {
        net.start_with(name, &["--rpc-client-tx-floor-per-second", &floor])?;
    }
    Ok(net)
}

/// Runs the surge on `net` (started by [`start_network`]); progress goes
/// to stderr. An error
/// means it could not run; a failed expectation is in the report.
pub fn run(net: &LocalNet, options: &SurgeOptions) -> Result<SurgeReport> {
    let shards = net.genesis.shard_count;
    if options.shard >= shards {
        bail!("--shard {} does not exist (the network has {shards})", options.shard);
    }
    if options.factor < 2 {
        bail!("--factor must be at least 2");
    }
    if !(0.0..=1.0).contains(&options.min_share) || options.max_p99_ratio < 1.0 {
        bail!("--min-share must be between 0 and 1, --max-p99-ratio at least 1");
    }
    let runtime = crate::client_runtime()?;
    runtime.block_on(surge(net, options))
}

fn say(line: &str) {
    eprintln!("surge: {line}");
}

/// The flooded shard's base fee and throttled clients over time.
#[derive(Default)]
struct Watch {
    /// (when, highest base fee over its validators, most throttled clients).
    samples: Vec<(Instant, u64, usize)>,
}

impl Watch {
    /// The base fee at the phase's start, its highest and at its end, and
    /// the most clients throttled, over `from..to`.
    fn over(&self, from: Instant, to: Instant) -> ((u64, u64, u64), usize) {
        let inside: Vec<&(Instant, u64, usize)> =
            self.samples.iter().filter(|(at, ..)| (from..to).contains(at)).collect();
        let start = inside.first().map_or(0, |s| s.1);
        let end = inside.last().map_or(0, |s| s.1);
        let high = inside.iter().map(|s| s.1).max().unwrap_or(0);
        let throttled = inside.iter().map(|s| s.2).max().unwrap_or(0);
        ((start, high, end), throttled)
    }
}

async fn surge(net: &LocalNet, options: &SurgeOptions) -> Result<SurgeReport> {
    let shard = options.shard;
    let shards = net.genesis.shard_count;
    let refs: Vec<usize> = (0..shards)
        .map(|s| net.nodes.iter().position(|n| n.shard == s).context("a shard without validators"))
        .collect::<Result<_>>()?;
    let mut via = ShardClients::new();
    for (s, &i) in refs.iter().enumerate() {
        via.insert(ShardId::try_from(s)?, Client::with_timeout(&net.nodes[i].rpc_url(), CALL_TIMEOUT)?);
    }
    say("waiting for every shard to commit");
    for (&s, client) in &via {
        probe_height(client, s, 2, options.timeout).await?;
    }
    let usual = options.rate / u64::from(shards);
    let phase_txs = usize::try_from(usual.saturating_mul(options.duration.as_secs().max(1)))?;
    say(&format!("starting the honest load: {} tx/s over {shards} shards", options.rate));
    let honest = bench::background(
        &net.dir,
        &BenchArgs {
            rate: options.rate,
            duration: options.duration * 4 + options.timeout,
            accounts_per_shard: options.accounts_per_shard,
            drain: Duration::from_secs(20),
            ..crate::flag_defaults()
        },
    )
    .await?;
    say(&format!("funding and signing the flood on shard {shard}"));
    let flood_total = phase_txs.saturating_mul(usize::try_from(options.factor)? + 3);
    let flood = Flood::start(net, &via, shard, flood_total, usual).await?;
    let watch = Arc::new(Mutex::new(Watch::default()));
    let watcher = tokio::spawn(watch_shard(shard_clients(net, shard), shard, Arc::clone(&watch)));
    // The flooder's usual rate becomes its baseline at the nodes.
    tokio::time::sleep(options.duration / 2).await;
    let mut report = SurgeReport { shard, factor: options.factor, ..SurgeReport::default() };
    let mut windows = Vec::new();
    for (name, rate) in [("baseline", usual), ("surge", usual * options.factor), ("calm", usual)] {
        flood.set_rate(rate);
        say(&format!("{name}: the flooding client sends {rate} tx/s to shard {shard} for {:?}", options.duration));
        let before = probe::committed(&net.nodes, &refs).await?;
        let from = Instant::now();
        tokio::time::sleep(options.duration).await;
        let to = Instant::now();
        let after = probe::committed(&net.nodes, &refs).await?;
        windows.push((from, to, rate, probe::rates(&before, &after, to - from)));
    }
    report.flood = flood.stop();
    watcher.abort();
    let watch = std::mem::take(&mut *watch.lock().unwrap_or_else(PoisonError::into_inner));
    let mut phases = windows.into_iter().map(|(from, to, flood_rate, committed_tps)| {
        let (base_fee_units, throttled_clients) = watch.over(from, to);
        let latency = honest.latency_between(shard, from, to);
        Phase { flood_rate, committed_tps, latency, base_fee_units, throttled_clients }
    });
    let (Some(baseline), Some(surge), Some(calm)) = (phases.next(), phases.next(), phases.next()) else {
        bail!("a phase went unmeasured");
    };
    (report.baseline, report.surge, report.calm) = (baseline, surge, calm);
    say("stopping the honest load and draining");
    report.honest = Some(honest.stop().await?);
    report.flood_fate = fate(&shard_clients(net, shard), &report.flood).await;
    judge(&mut report, options);
    Ok(report)
}

/// Checks each expectation of the module docs.
fn judge(report: &mut SurgeReport, options: &SurgeOptions) {
    let shard = report.shard;
    let (_, base_high, _) = report.baseline.base_fee_units;
    let (_, surge_high, surge_end) = report.surge.base_fee_units;
    let (_, _, calm_end) = report.calm.base_fee_units;
    report.expect(
        format!("shard {shard}'s base fee rises under the surge"),
        surge_high > base_high,
        format!("highest {base_high} units before it, {surge_high} during it"),
    );
    report.expect(
        format!("shard {shard}'s base fee falls once it calms"),
        calm_end < surge_high,
        format!("{surge_high} units at its highest, {surge_end} at the surge's end, {calm_end} after the calm"),
    );
    let p99 = |phase: &Phase| phase.latency.map(|l| l.p99_ms);
    let (before, during) = (p99(&report.baseline), p99(&report.surge));
    report.expect(
        format!("shard {shard}'s high-fee transfers keep p99 within {}× of the baseline's", options.max_p99_ratio),
        matches!((before, during), (Some(b), Some(d)) if d <= b * options.max_p99_ratio),
        format!("p99 {} ms before, {} ms during", show(before), show(during)),
    );
    let mut held = true;
    let mut lines = Vec::new();
    for (other, base) in report.baseline.committed_tps.iter().filter(|(s, _)| **s != shard) {
        let now = report.surge.committed_tps.get(other).copied().unwrap_or(0.0);
        held &= now > 0.0 && now >= base * options.min_share;
        lines.push(format!("shard {other} {now:.1}/{base:.1} tx/s"));
    }
    report.expect(
        format!("the other shards keep ≥ {:.0}% of their throughput", options.min_share * 100.0),
        held,
        lines.join(", "),
    );
    let (f, throttled_at_once) = (&report.flood, report.surge.throttled_clients);
    let held = f.throttled > 0 && throttled_at_once > 0;
    let detail = format!(
        "{} of its {} submissions refused as throttled; {throttled_at_once} client(s) throttled at once",
        f.throttled, f.sent
    );
    report.expect("the flooding client is throttled", held, detail);
    let not_final = report.honest.as_ref().map_or(u64::MAX, |s| s.admitted_not_final);
    let (fate, admitted) = (&report.flood_fate, report.flood.admitted_ids.len());
    let held = not_final == 0 && fate.lost == 0;
    let detail = format!(
        "admitted honest transfers not final: {not_final}; of {admitted} admitted flood transfers {} final, {} pending, \
         {} lost",
        fate.final_txs, fate.pending, fate.lost
    );
    report.expect("nothing acknowledged is lost", held, detail);
}

fn show(ms: Option<f64>) -> String {
    ms.map_or("-".into(), |ms| format!("{ms:.0}"))
}

/// Waits until `client` has `shard` at `height`.
async fn probe_height(client: &Client, shard: ShardId, height: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline.
    while probe::height(client, shard).await.unwrap_or(0) < height {
        if Instant::now() >= deadline {
            bail!("{} did not reach shard {shard} height {height} within {timeout:?}", client.url());
        }
        tokio::time::sleep(probe::POLL).await;
    }
    Ok(())
}

/// A client for each validator of `shard`.
fn shard_clients(net: &LocalNet, shard: ShardId) -> Vec<Client> {
    net.nodes
        .iter()
        .filter(|n| n.shard == shard)
        .filter_map(|n| Client::with_timeout(&n.rpc_url(), CALL_TIMEOUT).ok())
        .collect()
}

/// Reads the flooded shard's validators every [`STATUS_POLL`] until
/// aborted.
async fn watch_shard(clients: Vec<Client>, shard: ShardId, watch: Arc<Mutex<Watch>>) {
    loop {
        let (mut fee, mut throttled, mut read) = (0, 0, false);
        for client in &clients {
            if let Ok(status) = client.status().await
                && let Some(s) = status.shards.iter().find(|s| s.shard == shard)
            {
                fee = fee.max(s.base_fee_units);
                throttled = throttled.max(s.throttled_clients);
                read = true;
            }
        }
        // No answer is no sample (not a base fee of 0).
        if read {
            watch.lock().unwrap_or_else(PoisonError::into_inner).samples.push((Instant::now(), fee, throttled));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Where each admitted flood transaction stands now, as the flooded
/// shard's validators (`clients`) see it: final on one is final; pending on
/// one is waiting, not lost.
async fn fate(clients: &[Client], flood: &flood::FloodCounts) -> FloodFate {
    let mut fate = FloodFate::default();
    for id in &flood.admitted_ids {
        let mut pending = false;
        let mut done = false;
        for client in clients {
            match client.transaction(id).await {
                Ok(TransactionResponse::Final { .. }) => {
                    done = true;
                    break;
                }
                Ok(TransactionResponse::Pending { .. }) => pending = true,
                _ => {}
            }
        }
        match (done, pending) {
            (true, _) => fate.final_txs += 1,
            (false, true) => fate.pending += 1,
            (false, false) => fate.lost += 1,
        }
    }
    fate
}
