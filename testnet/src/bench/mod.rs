//! `palisade-testnet bench`: an open-loop load generator for a running local
//! network (`palisade-testnet up`).
//!
//! It funds a set of accounts on every shard, signs `rate × duration`
//! transfers, releases them on schedule across all shards whatever the
//! network answers, and measures each from its first send to the arrival of
//! the final-block notice that carries it. With `--cross-shard F`, a share
//! F of the transfers pays an account on another shard, and is measured
//! from its first send to the arrival of the notice of the destination
//! block that credited it. It reports offered and committed tx/s, latency
//! percentiles (same-shard and cross-shard) and refusals by reason.
//! `--find-max` runs short trials to find the highest rate the network
//! sustains with p99 under a bound. docs/bench.md describes the method and
//! how to read the figures.
//!
//! - [`schedule`]: which slot is due when, and whose it is (pure);
//! - [`accounts`]: the bench accounts and their funding;
//! - [`plan`]: the transactions, signed before the clock starts;
//! - [`load`]: the ticker and the lanes that send them;
//! - `book`: where every sent transaction stands, latencies, arrivals;
//! - [`finality`]: final-block subscriptions and block matching;
//! - [`cost`]: the nodes' CPU per transaction, and the verification bound;
//! - [`report`]: percentiles, reasons, the summary (pure);
//! - [`search`]: the `--find-max` rate search (pure);
//! - [`rpc`]: each validator's client, and batches of any length.

pub mod accounts;
mod book;
pub mod cost;
pub mod finality;
pub mod load;
pub mod plan;
pub mod report;
pub mod rpc;
pub mod schedule;
pub mod search;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use palisade_ledger::ShardId;
use serde::Serialize;

use self::accounts::{BenchAccount, ShardClients};
use self::load::Run;
use self::plan::{Plan, Sender};
use self::report::Summary;
use self::rpc::Node;
use self::search::{Search, next_probe};
use crate::local::{LocalNet, status};

/// Most accounts per shard.
const MAX_ACCOUNTS_PER_SHARD: usize = 4_096;
/// How long a run waits for the previous run's transactions to leave the
/// mempools before it starts.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A validator further behind its shard's highest is not loaded.
const MAX_LAG_BLOCKS: u64 = 10;
/// How often the drain and the settling poll.
const POLL: Duration = Duration::from_millis(50);
/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// `palisade-testnet bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Transactions per second offered, over all shards (with --find-max:
    /// the first rate tried).
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// How long load is offered: `30s`, `2m`, `1500ms`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Sending accounts on each shard. Each may have at most 64 transactions
    /// pending (the mempool's nonce gap), so this bounds what can be in flight.
    #[arg(long, default_value_t = 256)]
    pub accounts_per_shard: usize,
    /// After the last send, how long to wait for transactions to be final.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Find the highest rate whose trials keep p99 under --p99-ms and commit
    /// at least 90% of what they offer: doubling from --rate, then bisecting.
    #[arg(long)]
    pub find_max: bool,
    /// The p99 latency bound of --find-max, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub p99_ms: u64,
    /// How long each --find-max trial offers load.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub trial: Duration,
    /// Share of the transfers (0 to 1) that pay an account on another shard;
    /// their latency runs until the destination credits them, and is
    /// reported next to the same-shard latency. Needs two shards or more.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub cross_shard: f64,
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if self.rate == 0 || self.rate > search::MAX_RATE {
            bail!("--rate must be between 1 and {} tx/s", search::MAX_RATE);
        }
        if !(2..=MAX_ACCOUNTS_PER_SHARD).contains(&self.accounts_per_shard) {
            bail!("--accounts-per-shard must be between 2 and {MAX_ACCOUNTS_PER_SHARD}");
        }
        let period = if self.find_max { self.trial } else { self.duration };
        if period < Duration::from_secs(1) {
            bail!("offer load for at least 1 s");
        }
        if self.p99_ms == 0 {
            bail!("--p99-ms must be positive");
        }
        if !(0.0..=1.0).contains(&self.cross_shard) {
            bail!("--cross-shard must be a fraction between 0 and 1");
        }
        Ok(())
    }

    /// `--cross-shard` in per mille (what the plan uses).
    fn cross_per_mille(&self) -> u64 {
        (self.cross_shard * 1_000.0).round() as u64
    }
}

/// Runs `bench` against the network in `dir`.
pub fn run(dir: &Path, args: &BenchArgs) -> Result<ExitCode> {
    args.validate()?;
    let net = LocalNet::open(dir)?;
    if args.cross_shard > 0.0 && net.genesis.shard_count < 2 {
        bail!("--cross-shard needs a network of two shards or more (this one has {})", net.genesis.shard_count);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let mut bench = Bench::new(net, args)?;
        if args.find_max { bench.find_max().await } else { bench.once().await }
    })
}

/// A bench session against one network.
struct Bench<'a> {
    args: &'a BenchArgs,
    net: LocalNet,
    /// A client per validator, in the order of `net.nodes`.
    nodes: Vec<Node>,
    accounts: Vec<BenchAccount>,
    /// No progress bars (a background load).
    quiet: bool,
}

/// A single run's JSON.
#[derive(Serialize)]
struct RunJson<'a> {
    node_binary: &'a Path,
    #[serde(flatten)]
    summary: &'a Summary,
}

/// One `--find-max` trial.
#[derive(Serialize)]
struct Trial {
    rate: u64,
    /// Offered after the search, in search of the peak.
    probe: bool,
    kept_up: bool,
    shortfall: Option<String>,
    summary: Summary,
}

/// `--find-max`'s JSON.
#[derive(Serialize)]
struct SearchJson<'a> {
    node_binary: &'a Path,
    p99_bound_ms: u64,
    trials: &'a [Trial],
    best_rate: Option<u64>,
    peak_committed_tps: f64,
}

/// A trial ready to offer load: the signed plan, its bookkeeping, the
/// validators it goes to and their final-block subscriptions.
struct Ready {
    plan: Arc<Plan>,
    run: Arc<Run>,
    usable: Vec<Node>,
    watchers: finality::Watchers,
    /// The network's node processes (for their CPU time).
    pids: Vec<u32>,
    /// This machine's verification bound, measured just before the load.
    verify_bound_tps: f64,
}

/// Load offered in the background ([`background`]): the drill's and the
/// surge's.
pub struct Background {
    run: Arc<Run>,
    /// Each sending account's shard, in the plan's order.
    shard_of: Vec<ShardId>,
    task: tokio::task::JoinHandle<Result<Summary>>,
}

/// Starts `args`' load on the network in `dir` in a task of the current
/// runtime and returns once it is offered (settled, funded, signed); it
/// goes on until `args.duration` ends or [`Background::stop`]. Progress
/// bars are hidden.
pub async fn background(dir: &Path, args: &BenchArgs) -> Result<Background> {
    args.validate()?;
    let net = LocalNet::open(dir)?;
    let args = args.clone();
    let shard_of =
        accounts::derive("bench", net.genesis.shard_count, args.accounts_per_shard)?.iter().map(|a| a.shard).collect();
    let (tell, started) = tokio::sync::oneshot::channel();
    let mut task = tokio::spawn(async move {
        let mut bench = Bench::new(net, &args)?;
        bench.quiet = true;
        let ready = bench.prepare(args.rate, args.duration).await?;
        let _ = tell.send(Arc::clone(&ready.run));
        Ok(bench.drive(ready, args.duration).await)
    });
    match started.await {
        Ok(run) => Ok(Background { run, shard_of, task }),
        // The task ended before starting: its error says why.
        Err(_) => match (&mut task).await {
            Ok(Err(e)) => Err(e.context("the load never started")),
            Ok(Ok(_)) => bail!("the load never started: it ended at once"),
            Err(e) => bail!("the load never started: it panicked: {e}"),
        },
    }
}

impl Background {
    /// Latencies of `shard`'s same-shard transfers first sent in
    /// `from..to` and final by now.
    pub fn latency_between(&self, shard: ShardId, from: Instant, to: Instant) -> Option<report::Latency> {
        self.run.latency_between(|account| self.shard_of.get(account) == Some(&shard), from, to)
    }

    /// Stops offering, drains (for `args.drain` at most) and summarises.
    pub async fn stop(self) -> Result<Summary> {
        self.run.stop();
        self.task.await.context("the load task panicked")?
    }
}

impl<'a> Bench<'a> {
    fn new(net: LocalNet, args: &'a BenchArgs) -> Result<Bench<'a>> {
        let nodes: Vec<Node> = net.nodes.iter().map(Node::new).collect::<Result<_>>()?;
        let accounts = accounts::derive("bench", net.genesis.shard_count, args.accounts_per_shard)?;
        Ok(Bench { args, net, nodes, accounts, quiet: false })
    }

    /// Per account, the node (an index into `usable`) it submits to: account
    /// `j` of a shard to its shard's `j mod V`-th usable validator.
    fn assign(&self, usable: &[Node]) -> Result<Vec<usize>> {
        let mut by_shard: BTreeMap<ShardId, Vec<usize>> = BTreeMap::new();
        for (i, node) in usable.iter().enumerate() {
            by_shard.entry(node.shard).or_default().push(i);
        }
        self.accounts
            .iter()
            .map(|account| {
                let validators = by_shard.get(&account.shard).map_or(&[][..], Vec::as_slice);
                validators
                    .get(account.index_in_shard % validators.len().max(1))
                    .copied()
                    .with_context(|| format!("no usable validator on shard {}", account.shard))
            })
            .collect()
    }

    fn say(&self, line: &str) {
        eprintln!("bench: {line}");
    }

    fn binary(&self) -> &Path {
        &self.net.binary
    }

    /// One run at `--rate` for `--duration`.
    async fn once(&mut self) -> Result<ExitCode> {
        self.say(&format!(
            "{} shards × {} validators, node binary {}",
            self.net.genesis.shard_count,
            self.nodes.len() / self.net.genesis.shard_count.max(1) as usize,
            self.binary().display()
        ));
        let summary = self.trial(self.args.rate, self.args.duration).await?;
        if self.args.json {
            println!("{}", serde_json::to_string(&RunJson { node_binary: self.binary(), summary: &summary })?);
        } else {
            println!("{}", summary.render());
        }
        Ok(if summary.committed > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }

    /// `--find-max`.
    async fn find_max(&mut self) -> Result<ExitCode> {
        self.say(&format!(
            "finding the highest rate with p99 ≤ {} ms, {:?} trials from {} tx/s; node binary {}",
            self.args.p99_ms,
            self.args.trial,
            self.args.rate,
            self.binary().display()
        ));
        let mut search = Search::default();
        let mut trials: Vec<Trial> = Vec::new();
        while let Some(rate) = search.next(self.args.rate) {
            let trial = self.search_trial(trials.len() + 1, rate, false).await?;
            search.record(rate, trial.kept_up);
            trials.push(trial);
        }
        // The peak: offer more while the highest rate offered was nearly
        // all committed, or committed clearly more than lower ones.
        let mut probes = 0;
        loop {
            let offered: Vec<(u64, f64)> = trials.iter().map(|t| (t.rate, t.summary.committed_tps)).collect();
            let Some(rate) = next_probe(&offered, probes) else { break };
            probes += 1;
            trials.push(self.search_trial(trials.len() + 1, rate, true).await?);
        }
        let best = trials.iter().filter(|t| t.kept_up).max_by_key(|t| t.rate);
        // The saturation throughput: the most any trial committed, kept up or not.
        let peak = trials.iter().max_by(|a, b| a.summary.committed_tps.total_cmp(&b.summary.committed_tps));
        let peak_committed_tps = peak.map_or(0.0, |t| t.summary.committed_tps);
        if self.args.json {
            let json = SearchJson {
                node_binary: self.binary(),
                p99_bound_ms: self.args.p99_ms,
                trials: &trials,
                best_rate: best.map(|t| t.rate),
                peak_committed_tps,
            };
            println!("{}", serde_json::to_string(&json)?);
        } else {
            match best {
                Some(t) => println!(
                    "highest sustained rate: {} tx/s (committed {:.1} tx/s, p99 {:.0} ms)",
                    t.rate,
                    t.summary.committed_tps,
                    t.summary.latency.map_or(0.0, |l| l.p99_ms)
                ),
                None => println!("no rate tried kept p99 ≤ {} ms", self.args.p99_ms),
            }
            if let Some(t) = peak {
                println!("peak committed: {peak_committed_tps:.1} tx/s (offering {} tx/s)", t.rate);
            }
        }
        Ok(if best.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }

    /// Trial `number` of `--find-max`, at `rate`, judged and printed (a
    /// `probe` marked so).
    async fn search_trial(&mut self, number: usize, rate: u64, probe: bool) -> Result<Trial> {
        let most = Duration::from_millis(plan::MAX_PLANNED_TXS.saturating_mul(1_000) / rate.max(1));
        let summary = self.trial(rate, self.args.trial.min(most)).await?;
        let shortfall = report::shortfall(&summary, self.args.p99_ms as f64);
        let note = if probe { " (peak probe)" } else { "" };
        let line = format!("{}{note}", trial_line(number, &summary, shortfall.as_deref()));
        if self.args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        Ok(Trial { rate, probe, kept_up: shortfall.is_none(), shortfall, summary })
    }

    /// Settles, funds, signs, then offers `rate` for `duration`, drains, and
    /// summarises.
    async fn trial(&mut self, rate: u64, duration: Duration) -> Result<Summary> {
        let ready = self.prepare(rate, duration).await?;
        Ok(self.drive(ready, duration).await)
    }

    /// Everything before the clock starts: settles, funds the accounts,
    /// signs the plan and subscribes to final blocks.
    async fn prepare(&mut self, rate: u64, duration: Duration) -> Result<Ready> {
        let usable = self.settle().await?;
        let node_of = self.assign(&usable)?;
        // Owned: the trial also needs `self` mutably (status::gather).
        let genesis = &self.net.genesis.clone();
        let shards = genesis.shard_count;
        // Set-up calls go to each shard's first usable validator, which also
        // carries its final-block subscription.
        let mut via = ShardClients::new();
        for shard in 0..shards {
            via.insert(shard, accounts::first_of_shard(&usable, shard)?.client.clone());
        }
        let states = accounts::read_states(&via, &self.accounts)
            .await
            .context("reading the bench accounts (is the network up? `palisade-testnet up`)")?;
        let total = schedule::total(rate, duration);
        let per_tx = plan::TRANSFER_UNITS.saturating_add(plan::FEE_UNITS);
        let needed: Vec<u64> = (0..self.accounts.len())
            .map(|a| schedule::slots_of(a, self.accounts.len(), total).saturating_mul(per_tx))
            .collect();
        let bar = self.bar("funding", "{prefix} [{bar:30}] {pos}/{len} accounts ({elapsed})");
        let funded = accounts::fund(genesis, &via, &self.accounts, &states, &needed, &bar).await?;
        bar.finish_and_clear();
        if funded > 0 {
            self.say(&format!("funded {funded} accounts"));
            let targets = accounts::funded_heights(&via).await?;
            self.await_heights(&targets, &usable).await.context("waiting for the funding to reach every validator")?;
        }
        let mut senders = Vec::with_capacity(self.accounts.len());
        for (i, ((account, state), &node)) in self.accounts.iter().zip(&states).zip(&node_of).enumerate() {
            let to = accounts::recipient(&self.accounts, i, shards).context("no bench accounts")?.address;
            let across = accounts::cross_recipient(&self.accounts, i).map(|a| (a.address, a.shard));
            senders.push(Sender { key: &account.key, to, across, nonce: state.nonce, node });
        }
        let bar = self.bar("signing", "{prefix} [{bar:30}] {pos}/{len} transactions ({elapsed})");
        let signing = Instant::now();
        let cross = self.args.cross_per_mille();
        let plan = Arc::new(Plan::sign(&genesis.chain_id, &senders, rate, duration, cross, &bar)?);
        bar.finish_and_clear();
        self.say(&format!("signed {} transactions in {:.1} s", plan.total, signing.elapsed().as_secs_f64()));
        let run = Run::new(&plan);
        let watchers = finality::watch(&usable, shards, &run, cross > 0).await?;
        let names: Vec<String> = self.net.nodes.iter().map(|n| n.name.clone()).collect();
        let pids = names.iter().filter_map(|name| self.net.pid(name).ok().flatten()).collect();
        let committee = (0..shards).filter_map(|s| genesis.consensus_committee(s)).map(|c| c.len()).max().unwrap_or(1);
        let verify_bound_tps = tokio::task::spawn_blocking(move || cost::verify_bound(committee, cost::BOUND_SAMPLE))
            .await
            .context("measuring the verification bound")?;
        Ok(Ready { plan, run, usable, watchers, pids, verify_bound_tps })
    }

    /// Offers `ready`'s plan (for up to `duration`; less if its run is
    /// stopped), drains, and summarises.
    async fn drive(&self, ready: Ready, duration: Duration) -> Summary {
        let Ready { plan, run, usable, watchers, pids, verify_bound_tps } = ready;
        let bar = self.bar(&format!("{} tx/s", plan.rate), "{prefix} {elapsed:>4} [{bar:24}] {pos}/{len} sent  {msg}");
        bar.set_length(plan.total);
        let progress = tokio::spawn(progress(Arc::clone(&run), bar.clone()));
        let cpu = cost::CpuClock::start(&pids);
        let start = Instant::now();
        let lanes = load::offer(Arc::clone(&plan), &usable, Arc::clone(&run), start).await;
        let offered = start.elapsed().min(duration);
        let deadline = Instant::now() + self.args.drain;
        // Bounded by the drain deadline.
        while run.open() > 0 && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        for lane in lanes {
            lane.abort();
        }
        watchers.stop().await;
        progress.abort();
        bar.finish_and_clear();
        let mut summary = run.summary(&plan, offered, self.net.genesis.shard_count, self.args.cross_shard);
        summary.cost = Some(cost::Cost::of(&cpu, summary.committed, verify_bound_tps));
        summary
    }

    /// Waits until every validator in `usable` is at its shard's height in
    /// `targets`, asking them all at once ([`status::gather`]), for at most
    /// [`accounts::FUND_WAVE_TIMEOUT`].
    async fn await_heights(&mut self, targets: &BTreeMap<ShardId, u64>, usable: &[Node]) -> Result<()> {
        let deadline = Instant::now() + accounts::FUND_WAVE_TIMEOUT;
        // Bounded by the deadline.
        loop {
            let seen = status::gather(&mut self.net).await;
            let behind = seen.nodes.iter().find(|node| {
                usable.iter().any(|u| u.name == node.name)
                    && targets.get(&node.shard).is_some_and(|&target| node.height.unwrap_or(0) < target)
            });
            let Some(behind) = behind else { return Ok(()) };
            if Instant::now() >= deadline {
                bail!(
                    "{} is at height {:?}, not {:?}, {:?} after funding",
                    behind.name,
                    behind.height,
                    targets.get(&behind.shard),
                    accounts::FUND_WAVE_TIMEOUT
                );
            }
            tokio::time::sleep(accounts::FUND_POLL).await;
        }
    }

    /// The validators fit to take load: those whose process runs, that
    /// answer (see [`status::gather`]) and are at most [`MAX_LAG_BLOCKS`]
    /// behind the highest of their shard (a validator that fell behind
    /// checks transactions against stale state, and would strand its
    /// accounts' transactions). Waits until none of them holds pending
    /// transactions (a previous run's), for at most [`SETTLE_TIMEOUT`].
    async fn settle(&mut self) -> Result<Vec<Node>> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        // Bounded by the deadline.
        loop {
            let seen = status::gather(&mut self.net).await;
            let mut usable = Vec::new();
            let mut pending = 0;
            let mut unfit = Vec::new();
            // `gather` answers in the order of `net.nodes`, as `self.nodes` is.
            for (node, answer) in self.nodes.iter().zip(&seen.nodes) {
                let top = seen.shards.iter().find(|s| s.shard == node.shard).and_then(|s| s.height).unwrap_or(0);
                match answer.height.zip(answer.mempool_txs) {
                    Some((height, mempool)) if height.saturating_add(MAX_LAG_BLOCKS) >= top => {
                        pending += mempool;
                        usable.push(node.clone());
                    }
                    Some((height, _)) => {
                        unfit.push(format!("{} ({} blocks behind)", node.name, top.saturating_sub(height)));
                    }
                    None => unfit.push(format!("{} ({})", node.name, answer.error.as_deref().unwrap_or("no answer"))),
                }
            }
            let timed_out = Instant::now() >= deadline;
            if pending == 0 || timed_out {
                if timed_out {
                    self.say(&format!(
                        "{pending} transactions still pending after {SETTLE_TIMEOUT:?}; starting anyway"
                    ));
                }
                if !unfit.is_empty() {
                    self.say(&format!("not loading {}", unfit.join(", ")));
                }
                if usable.is_empty() {
                    bail!("no validator answers (is the network up? `palisade-testnet up`)");
                }
                return Ok(usable);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn bar(&self, prefix: &str, template: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0).with_prefix(prefix.to_string());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }
}

/// Redraws the run's progress: sent, final, refused, and the rates over
/// the last second.
async fn progress(run: Arc<Run>, bar: ProgressBar) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut window: VecDeque<(Instant, u64, u64)> = VecDeque::new();
    // Ends when the run aborts it.
    loop {
        tick.tick().await;
        let now = Instant::now();
        let load::Progress { sent, committed, rejected, open } = run.progress();
        window.push_back((now, sent, committed));
        while window.len() > 1
            && window.front().is_some_and(|(t, _, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            window.pop_front();
        }
        let (rate_sent, rate_final) = match window.front() {
            Some(&(t, s, c)) if now > t => {
                let over = now.duration_since(t);
                (
                    report::per_second(sent.saturating_sub(s), over),
                    report::per_second(committed.saturating_sub(c), over),
                )
            }
            _ => (0.0, 0.0),
        };
        bar.set_position(sent);
        bar.set_message(format!(
            "({rate_sent:.0}/s)  final {committed} ({rate_final:.0}/s)  rejected {rejected}  open {open}"
        ));
    }
}

/// One line per `--find-max` trial.
fn trial_line(n: usize, s: &Summary, shortfall: Option<&str>) -> String {
    let p99 = s.latency.map_or("-".to_string(), |l| format!("{:.0} ms", l.p99_ms));
    let verdict = match shortfall {
        None => "ok".to_string(),
        Some(why) => format!("no ({why})"),
    };
    format!(
        "trial {n:>2}: {:>6} tx/s  offered {:>8.1}  committed {:>8.1} tx/s  p99 {p99:>7}  rejected {:>6}  {verdict}",
        s.target_rate,
        s.offered_tps,
        s.committed_tps,
        s.rejected_total()
    )
}
