//! `palisade-testnet failover`: leader failover, timed on a running local
//! network. Each trial waits for a fresh commit on the shard, SIGKILLs the
//! validator that leads the next height (the genesis rotation, the
//! committee at `(height + view) mod n`), times the next commit on a
//! survivor, checks that a survivor proposed it (otherwise the victim had
//! already proposed before it died: the trial is retried, not counted),
//! restarts the victim and waits until it has caught up. Optionally under
//! the bench's load. The goal, from the fault-reaction issue: median ≤ 600
//! ms and no trial over 1,000 ms.

mod report;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::ShardId;
use palisade_ledger::api::client::Client;
pub use report::{FailoverReport, Trial};

use crate::bench::{self, BenchArgs};
use crate::local::LocalNet;

/// The median failover the issue asks for.
pub const MEDIAN_GOAL_MS: f64 = 600.0;
/// The slowest failover the issue allows.
pub const WORST_GOAL_MS: f64 = 1_000.0;
/// How often the trial polls a survivor's height: the resolution of the
/// figures.
const POLL: Duration = Duration::from_millis(5);
/// How long one RPC poll may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per counted trial at most (an attempt races when the victim
/// proposed before it was killed).
const ATTEMPTS_PER_TRIAL: u32 = 3;
/// After the victim caught up, before the next trial: time for its
/// connections to settle so that the shard has all its voters again.
const SETTLE: Duration = Duration::from_secs(1);

/// What to run (also `palisade-testnet failover`'s flags).
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverOptions {
    /// Trials counted (kills whose next height a survivor proposed).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// The shard whose leaders are killed.
    #[arg(long, default_value_t = 0)]
    pub shard: ShardId,
    /// Offer the bench's load at this rate (tx/s over all shards) during
    /// the trials; none by default.
    #[arg(long)]
    pub load: Option<u64>,
    /// The longest any one wait may take (a commit, a catch-up).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl Default for FailoverOptions {
    /// The flags' defaults.
    fn default() -> Self {
        crate::flag_defaults()
    }
}

/// Runs the trials on `net`, whose validators must all be running; the
/// network keeps running afterwards. Progress goes to stderr.
pub fn run(net: &mut LocalNet, options: &FailoverOptions) -> Result<FailoverReport> {
    if options.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let committee =
        net.genesis.committee(options.shard).with_context(|| format!("the network has no shard {}", options.shard))?;
    if committee.validators.len() < 4 {
        bail!(
            "failover needs a shard of 4 validators or more (shard {} has {})",
            options.shard,
            committee.validators.len()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    // A network from `LocalNet::open` leaves the restarted victims running
    // when this process exits; one a test created kills them with the rest.
    runtime.block_on(trials(net, options))
}

async fn trials(net: &mut LocalNet, options: &FailoverOptions) -> Result<FailoverReport> {
    let load = match options.load {
        Some(rate) => {
            // Stopped when the trials end; this only bounds it, by the most
            // transactions one load signs ahead.
            let seconds = (bench::plan::MAX_PLANNED_TXS / rate.max(1)).clamp(1, 3_600);
            let args = BenchArgs { rate, duration: Duration::from_secs(seconds), ..crate::flag_defaults() };
            eprintln!("failover: starting the load at {rate} tx/s");
            Some(bench::background(&net.dir, &args).await?)
        }
        None => None,
    };
    let mut report = FailoverReport::new(options.shard, options.load);
    let ran = run_trials(net, options, &mut report).await;
    if let Some(load) = load {
        eprintln!("failover: stopping the load");
        let summary = load.stop().await?;
        report.load = Some(report::Load {
            offered_tps: summary.offered_tps,
            committed_tps: summary.committed_tps,
            not_final: summary.not_final,
        });
    }
    ran?;
    Ok(report)
}

async fn run_trials(net: &mut LocalNet, options: &FailoverOptions, report: &mut FailoverReport) -> Result<()> {
    let shard = options.shard;
    let genesis = net.genesis.clone();
    let committee = genesis.consensus_committee(shard).context("the shard's committee")?;
    let members = &genesis.committee(shard).context("the shard's committee")?.validators;
    let clients: Vec<(String, Client)> = members
        .iter()
        .map(|v| Ok((v.name.clone(), Client::with_timeout(&net.node(&v.name)?.rpc_url(), CALL_TIMEOUT)?)))
        .collect::<Result<_>>()?;
    let attempts = options.trials.saturating_mul(ATTEMPTS_PER_TRIAL);
    for attempt in 1..=attempts {
        if report.trials.len() >= options.trials as usize {
            break;
        }
        // The observer: a validator that will not be the victim (the leader
        // of the next height is decided below, after a commit).
        let (_, observer) = &clients[0];
        let before = height(observer, shard, options.timeout).await?;
        let tip = wait_above(observer, shard, before, options.timeout).await?;
        let victim = committee.leader(tip.saturating_add(1), 0);
        let victim_index = victim.0 as usize;
        let observer_index = (victim_index + 1) % clients.len();
        let (victim_name, _) = &clients[victim_index];
        let (observer_name, observer) = &clients[observer_index];
        let killed_at = Instant::now();
        net.kill(victim_name).with_context(|| format!("killing {victim_name}"))?;
        let next = wait_above(observer, shard, tip, options.timeout)
            .await
            .with_context(|| format!("waiting for shard {shard} to commit after {victim_name} was killed"))?;
        let failover = killed_at.elapsed();
        let block = observer
            .block(shard, tip.saturating_add(1))
            .await
            .with_context(|| format!("reading block {} from {observer_name}", tip + 1))?
            .with_context(|| format!("{observer_name} lacks block {}", tip + 1))?;
        let proposer = members.iter().find(|v| v.address == block.header.proposer).map(|v| v.name.clone());
        let raced = proposer.as_deref() == Some(victim_name.as_str());
        eprintln!(
            "failover: attempt {attempt}: killed {victim_name} (leader of height {}); {} ms to height {next} \
             (view {}, proposer {}){}",
            tip + 1,
            failover.as_millis(),
            block.certificate.view,
            proposer.as_deref().unwrap_or("?"),
            if raced { ": it had proposed already, not counted" } else { "" }
        );
        if !raced {
            report.trials.push(Trial {
                killed: victim_name.clone(),
                height: tip.saturating_add(1),
                view: block.certificate.view,
                failover_ms: failover.as_secs_f64() * 1_000.0,
            });
        } else {
            report.raced += 1;
        }
        net.start(victim_name).with_context(|| format!("restarting {victim_name}"))?;
        let (_, restarted) = &clients[victim_index];
        wait_caught_up(restarted, observer, shard, options.timeout)
            .await
            .with_context(|| format!("waiting for {victim_name} to catch up"))?;
        tokio::time::sleep(SETTLE).await;
    }
    if report.trials.len() < options.trials as usize {
        bail!(
            "only {} of {} trials counted in {attempts} attempts: the victim kept proposing before it was killed",
            report.trials.len(),
            options.trials
        );
    }
    Ok(())
}

/// `shard`'s committed height on `client`, retried until `timeout`.
async fn height(client: &Client, shard: ShardId, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.height(shard).await {
            Ok(Some(height)) => return Ok(height),
            Ok(None) => bail!("{} does not run shard {shard}", client.url()),
            Err(e) if Instant::now() >= deadline => return Err(e).context(format!("asking {}", client.url())),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Polls until `shard`'s height on `client` exceeds `above`; returns it.
async fn wait_above(client: &Client, shard: ShardId, above: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(height)) = client.height(shard).await
            && height > above
        {
            return Ok(height);
        }
        if Instant::now() >= deadline {
            bail!("{} stayed at height {above} or below for {timeout:?}", client.url());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until `node` is at least as high as `reference` was when asked.
async fn wait_caught_up(node: &Client, reference: &Client, shard: ShardId, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let target = height(reference, shard, timeout).await?;
        if let Ok(Some(height)) = node.height(shard).await
            && height >= target
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{} did not reach height {target} in {timeout:?}", node.url());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
