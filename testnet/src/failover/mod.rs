//! `palisade-testnet failover`: leader failover, timed on a running local
//! network. Each trial waits for a fresh commit on the shard, SIGKILLs the
//! validator that leads the next height (as a survivor's status names it:
//! the rotation leaves out members benched for failed turns, so the victim
//! of one trial sits out the next ones), times the next commit on a
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
use crate::drill::probe;
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

/// How long the load has, once stopped, for what it sent to be final.
const LOAD_DRAIN: Duration = Duration::from_secs(60);

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
    let runtime = crate::client_runtime()?;
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
            // The drain ends as soon as everything admitted is final; an
            // overloaded network has a backlog to commit first.
            let args =
                BenchArgs { rate, duration: Duration::from_secs(seconds), drain: LOAD_DRAIN, ..crate::flag_defaults() };
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
            admitted_not_final: summary.admitted_not_final,
        });
    }
    ran?;
    Ok(report)
}

async fn run_trials(net: &mut LocalNet, options: &FailoverOptions, report: &mut FailoverReport) -> Result<()> {
    let members = net.genesis.committee(options.shard).context("the shard's committee")?.validators.clone();
    let clients: Vec<Client> = members
        .iter()
        .map(|v| Ok(Client::with_timeout(&net.node(&v.name)?.rpc_url(), CALL_TIMEOUT)?))
        .collect::<Result<_>>()?;
    let shard = Shard { id: options.shard, members, clients, timeout: options.timeout };
    let attempts = options.trials.saturating_mul(ATTEMPTS_PER_TRIAL);
    for attempt in 1..=attempts {
        if report.trials.len() >= options.trials as usize {
            return Ok(());
        }
        match shard.trial(net, attempt).await? {
            Some(trial) => report.trials.push(trial),
            None => report.raced += 1,
        }
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

/// The shard under trial: its committee in genesis order and a client per
/// member.
struct Shard {
    id: ShardId,
    members: Vec<palisade_ledger::genesis::GenesisValidator>,
    clients: Vec<Client>,
    timeout: Duration,
}

impl Shard {
    /// One kill of the next height's leader, timed; `None` if the victim
    /// had proposed that height before it died. Leaves the victim running
    /// and caught up.
    async fn trial(&self, net: &mut LocalNet, attempt: u32) -> Result<Option<Trial>> {
        // Wait for a fresh commit, on a member that was caught up already.
        let current = self.wait_above(0, 0).await?;
        self.wait_above(0, current).await?;
        let (tip, victim) = self.next_leader(0).await?;
        let height = tip.saturating_add(1);
        let observer = (victim + 1) % self.members.len();
        let (victim_name, observer_name) = (&self.members[victim].name, &self.members[observer].name);
        let killed_at = Instant::now();
        net.kill(victim_name).with_context(|| format!("killing {victim_name}"))?;
        let next = self
            .wait_above(observer, tip)
            .await
            .with_context(|| format!("waiting for shard {} to commit after {victim_name} was killed", self.id))?;
        let failover = killed_at.elapsed();
        let block = self.clients[observer]
            .block(self.id, height)
            .await
            .with_context(|| format!("reading block {height} from {observer_name}"))?
            .with_context(|| format!("{observer_name} lacks block {height}"))?;
        let proposer = self.members.iter().find(|v| v.address == block.header.proposer).map(|v| v.name.as_str());
        let raced = proposer == Some(victim_name.as_str());
        eprintln!(
            "failover: attempt {attempt}: killed {victim_name} (leader of height {height}); {} ms to height {next} \
             (view {}, proposer {}){}",
            failover.as_millis(),
            block.certificate.view,
            proposer.unwrap_or("?"),
            if raced { ": it had proposed already, not counted" } else { "" }
        );
        net.start(victim_name).with_context(|| format!("restarting {victim_name}"))?;
        let target = self.wait_above(observer, 0).await?;
        self.wait_above(victim, target.saturating_sub(1))
            .await
            .with_context(|| format!("waiting for {victim_name} to catch up"))?;
        tokio::time::sleep(SETTLE).await;
        Ok((!raced).then(|| Trial {
            killed: victim_name.clone(),
            height,
            view: block.certificate.view,
            failover_ms: failover.as_secs_f64() * 1_000.0,
        }))
    }

    /// Member `member`'s committed height and who leads view 0 of the next
    /// one there: the rotation leaves out benched members, which only the
    /// chain knows.
    async fn next_leader(&self, member: usize) -> Result<(u64, usize)> {
        let client = &self.clients[member];
        let status = client.status().await.with_context(|| format!("asking {} for its status", client.url()))?;
        let shard = status
            .shards
            .iter()
            .find(|s| s.shard == self.id)
            .with_context(|| format!("{} does not run shard {}", client.url(), self.id))?;
        let leader = shard.next_leader.with_context(|| format!("{} names no next leader yet", client.url()))?;
        let leader = usize::try_from(leader).ok().filter(|&i| i < self.members.len());
        let leader = leader.with_context(|| format!("{} names a leader outside the committee", client.url()))?;
        Ok((shard.height, leader))
    }

    /// Polls member `member` until its height exceeds `above` (so `above =
    /// 0` is its current height once it answers); returns that height.
    async fn wait_above(&self, member: usize, above: u64) -> Result<u64> {
        let deadline = Instant::now() + self.timeout;
        let client = &self.clients[member];
        loop {
            if let Some(height) = probe::height(client, self.id).await
                && height > above
            {
                return Ok(height);
            }
            if Instant::now() >= deadline {
                bail!("{} stayed at height {above} or below for {:?}", client.url(), self.timeout);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
