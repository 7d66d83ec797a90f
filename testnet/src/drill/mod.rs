//! `palisade-testnet drill`: the failover drill. A faulty shard must never
//! halt the others, and a lying validator must pay; this shows both on a
//! real network of `palisade-node` processes under the bench load:
//!
//! 1. the load runs and each shard's committed tx/s is measured;
//! 2. enough of one shard's validators are killed to lose its quorum: that
//!    shard stops committing and never forks, the others keep their
//!    throughput, `/health` and `status` tell which shard is halted, and
//!    transfers into it wait in flight;
//! 3. a twin of another shard's validator starts: the evidence is final
//!    within [`EVIDENCE_WITHIN`] blocks, its stake is cut, it is jailed,
//!    its shard goes on, and no honest validator is touched;
//! 4. the halted shard's validators return: it catches up and resumes, the
//!    in-flight transfers are credited, and the whole network's money adds
//!    up (the [`crate::chaos::supply`] audit).
//!
//! Every expectation is recorded in a [`DrillReport`]; the command exits
//! non-zero if one fails.
//!
//! - [`report`]: the figures and the expectations (pure);
//! - [`probe`]: reading the network (heights, counters, health, slashings).

pub mod probe;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::api::ReceiptResponse;
use palisade_ledger::api::client::Client;
use palisade_ledger::genesis::shard_faucet_key;
use palisade_ledger::{Address, Amount, Hash, Keypair, ShardId, SignedTx};

pub use self::report::DrillReport;
use self::report::{RestoreFigures, Throughput, TwinFigures};
use crate::bench::{self, BenchArgs};
use crate::chaos::{self, supply};
use crate::local::{LocalNet, status};

/// The bound: evidence final within this many blocks of the offence.
pub const EVIDENCE_WITHIN: u64 = 10;
/// The shard whose quorum is killed.
pub const HALTED_SHARD: ShardId = 2;
/// The shard whose validator gets a twin.
pub const TWINNED_SHARD: ShardId = 1;
/// How long after the kills the drill waits before it measures (a block
/// already certified may still land).
const SETTLE: Duration = Duration::from_secs(2);
/// How often the drill polls.
const POLL: Duration = Duration::from_millis(200);
/// One RPC call's bound (a killed node must not stall the drill).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Each in-flight transfer, units.
const IN_FLIGHT_UNITS: u64 = 1_000_000;
/// Their fee, units.
const IN_FLIGHT_FEE: u64 = 1_000;
/// Heights around the halt whose blocks every validator of the halted shard
/// must agree on once it is back.
const FORK_CHECK_SPAN: u64 = 5;

/// What to run.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// Transactions per second the load offers, over all shards.
    pub rate: u64,
    /// Share of the load's transfers that cross shards.
    pub cross_shard: f64,
    /// Sending accounts per shard.
    pub accounts_per_shard: usize,
    /// Each throughput measurement window.
    pub window: Duration,
    /// The share of its baseline throughput each healthy shard must keep
    /// while the halted shard is down (0 judges only that they commit).
    pub min_share: f64,
    /// Transfers sent into the halted shard while it is down.
    pub in_flight: usize,
    /// The longest any one wait may take (start, slashing, catch-up, credit).
    pub timeout: Duration,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            rate: 400,
            cross_shard: 0.2,
            accounts_per_shard: 32,
            window: Duration::from_secs(20),
            min_share: 0.9,
            in_flight: 4,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Runs the drill on `net`, whose nodes must all be running (see
/// [`LocalNet::start_all`]); progress goes to stderr.
pub fn run(net: &mut LocalNet, options: &DrillOptions) -> Result<DrillReport> {
    let shards = net.genesis.shard_count;
    if shards <= HALTED_SHARD.max(TWINNED_SHARD) {
        bail!("the drill needs at least {} shards (this network has {shards})", HALTED_SHARD.max(TWINNED_SHARD) + 1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    runtime.block_on(Drill::new(net, options)?.run())
}

/// One drill in progress.
struct Drill<'a> {
    net: &'a mut LocalNet,
    options: &'a DrillOptions,
    /// A client per node, in the order of `net.nodes`.
    rpc: Vec<Client>,
    /// The transfers sent into the halted shard.
    in_flight: Option<InFlight>,
    report: DrillReport,
}

impl<'a> Drill<'a> {
    fn new(net: &'a mut LocalNet, options: &'a DrillOptions) -> Result<Drill<'a>> {
        let rpc =
            net.nodes.iter().map(|n| Client::with_timeout(&n.rpc_url(), CALL_TIMEOUT)).collect::<Result<_, _>>()?;
        let report = DrillReport { halted: HALTED_SHARD, ..DrillReport::default() };
        Ok(Drill { net, options, rpc, in_flight: None, report })
    }

    fn say(line: &str) {
        eprintln!("drill: {line}");
    }

    /// Indices (into `net.nodes`) of `shard`'s validators, twins left out.
    fn validators(&self, shard: ShardId) -> Vec<usize> {
        (0..self.net.nodes.len())
            .filter(|&i| self.net.nodes[i].shard == shard && self.net.nodes[i].twin_of.is_none())
            .collect()
    }

    /// Per shard, the validator the drill reads it from: its first, which
    /// is never killed nor twinned.
    fn reference(&self, shard: ShardId) -> usize {
        self.validators(shard).first().copied().unwrap_or(0)
    }

    async fn run(mut self) -> Result<DrillReport> {
        let shards: Vec<ShardId> = (0..self.net.genesis.shard_count).collect();
        Self::say("waiting for every validator to commit");
        for &shard in &shards {
            let all = self.validators(shard);
            self.wait_heights(&all, shard, 2, "every validator at height 2").await?;
        }
        let budget = self.options.window * 4 + self.options.timeout * 3;
        let args = BenchArgs {
            rate: self.options.rate,
            duration: budget,
            accounts_per_shard: self.options.accounts_per_shard,
            drain: Duration::from_secs(20),
            json: false,
            find_max: false,
            p99_ms: 500,
            trial: Duration::from_secs(10),
            cross_shard: self.options.cross_shard,
        };
        Self::say(&format!("starting the load: {} tx/s, {:.0}% cross-shard", args.rate, args.cross_shard * 100.0));
        let mut load = bench::background(&self.net.dir, &args)?;
        load.started().await?;
        tokio::time::sleep(self.options.window / 4).await;
        Self::say(&format!("measuring the baseline for {:?}", self.options.window));
        self.report.baseline = self.throughput(&shards).await?;

        let halted_at = self.halt(&shards).await?;
        self.twin().await?;
        self.restore(halted_at).await?;

        Self::say("stopping the load and draining");
        let summary = load.stop().await?;
        self.report.expect(
            "the load committed",
            summary.committed > 0,
            format!("{} of {} transactions final", summary.committed, summary.transactions),
        );
        self.report.load = Some(summary);
        self.money().await;
        Ok(self.report)
    }

    /// Step 2: kills the halted shard's quorum and checks what everyone
    /// sees. Returns the height it halted at.
    async fn halt(&mut self, shards: &[ShardId]) -> Result<u64> {
        let members = self.validators(HALTED_SHARD);
        let n = members.len();
        // Equal dev stakes: a quorum is n − f with f = ⌊(n − 1)/3⌋.
        let quorum = n - (n.saturating_sub(1)) / 3;
        let victims: Vec<usize> = members[quorum - 1..].to_vec();
        let survivors: Vec<usize> = members[..quorum - 1].to_vec();
        for &i in &victims {
            let name = self.net.nodes[i].name.clone();
            self.net.kill(&name)?;
            self.report.killed.push(name);
        }
        Self::say(&format!("killed {} of shard {HALTED_SHARD}", self.report.killed.join(", ")));
        tokio::time::sleep(SETTLE).await;
        let before = self.tips(&survivors, HALTED_SHARD).await;
        let sent = self.send_in_flight().await?;
        Self::say(&format!("measuring shard {HALTED_SHARD} halted for {:?}", self.options.window));
        let started = Instant::now();
        self.report.during_halt = self.throughput(shards).await?;
        // /health goes 503 once the last commit is older than its limit.
        let stale = Duration::from_secs_f64(status::HALTED_AFTER_S + 1.0);
        if let Some(rest) = stale.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let after = self.tips(&survivors, HALTED_SHARD).await;
        let halted_at = before.first().copied().flatten().map_or(0, |(h, _)| h);
        self.report.expect(
            format!("shard {HALTED_SHARD} stops committing without a quorum"),
            before == after && before.iter().all(Option::is_some),
            format!("survivors' (height, block) {} before the window, {} after", show_tips(&before), show_tips(&after)),
        );
        let one_block = after.iter().flatten().all(|tip| Some(tip) == after.first().and_then(Option::as_ref));
        self.report.expect(
            format!("shard {HALTED_SHARD} does not fork while halted"),
            one_block,
            format!("survivors' tips {}", show_tips(&after)),
        );
        self.check_isolation(shards);
        self.check_health(shards).await;
        self.check_in_flight(&sent, &survivors).await;
        Ok(halted_at)
    }

    /// The healthy shards kept their throughput.
    fn check_isolation(&mut self, shards: &[ShardId]) {
        let floor = self.options.min_share;
        let mut lines = Vec::new();
        let mut held = true;
        for &shard in shards.iter().filter(|&&s| s != HALTED_SHARD) {
            let base = self.report.baseline.get(&shard).copied().unwrap_or(0.0);
            let now = self.report.during_halt.get(&shard).copied().unwrap_or(0.0);
            held &= now > 0.0 && now >= base * floor;
            lines.push(format!("shard {shard} {now:.1}/{base:.1} tx/s ({})", report::percent(now, base)));
        }
        let what = if floor > 0.0 {
            format!("the other shards keep ≥ {:.0}% of their throughput", floor * 100.0)
        } else {
            "the other shards keep committing".to_string()
        };
        self.report.expect(what, held, lines.join(", "));
    }

    /// `/health` of each shard's reference validator and `status` both
    /// name the halted shard and only it.
    async fn check_health(&mut self, shards: &[ShardId]) {
        let mut lines = Vec::new();
        let mut held = true;
        for &shard in shards {
            let node = &self.net.nodes[self.reference(shard)];
            match crate::local::operator::health(&node.metrics_url()).await {
                Ok((code, health)) => {
                    let mine = health.shards.iter().find(|s| s.shard == shard && s.validating);
                    let halted = shard == HALTED_SHARD;
                    let right = mine.is_some_and(|s| s.healthy != halted) && (code == 503) == halted;
                    held &= right;
                    let reason = mine.and_then(|s| s.reason.clone()).unwrap_or_else(|| "healthy".into());
                    lines.push(format!("{} {code} ({reason})", node.name));
                }
                Err(e) => {
                    held = false;
                    lines.push(format!("{}: {e}", node.name));
                }
            }
        }
        self.report.expect(format!("/health: shard {HALTED_SHARD} halted, the others healthy"), held, lines.join("; "));
        let seen = status::gather(self.net).await;
        let states: Vec<String> = seen.shards.iter().map(|s| format!("shard {} {}", s.shard, s.state)).collect();
        let right = seen.shards.iter().all(|s| {
            if s.shard == HALTED_SHARD {
                s.state == status::ShardState::Halted
            } else {
                s.state == status::ShardState::Healthy
            }
        });
        self.report.expect(
            format!("`palisade-testnet status`: shard {HALTED_SHARD} halted, the others healthy"),
            right,
            states.join(", "),
        );
    }

    /// Sends [`DrillOptions::in_flight`] transfers from the other shards'
    /// faucets into a fresh account on the halted shard; returns their ids
    /// and the recipient.
    async fn send_in_flight(&mut self) -> Result<InFlight> {
        let shard_count = self.net.genesis.shard_count;
        let recipient = bench::accounts::derive("drill-in-flight", shard_count, 1)?
            .into_iter()
            .find(|a| a.shard == HALTED_SHARD)
            .context("no in-flight recipient on the halted shard")?
            .address;
        let sources: Vec<ShardId> = (0..shard_count).filter(|&s| s != HALTED_SHARD).collect();
        let mut sent = InFlight { recipient, ids: Vec::new() };
        let mut nonces: BTreeMap<ShardId, u64> = BTreeMap::new();
        for k in 0..self.options.in_flight {
            let shard = sources[k % sources.len()];
            let key: Keypair = shard_faucet_key(shard, shard_count).context("no faucet")?;
            let client = &self.rpc[self.reference(shard)];
            let nonce = match nonces.get(&shard) {
                Some(&n) => n,
                None => client.account(&key.address(), false).await?.nonce,
            };
            nonces.insert(shard, nonce + 1);
            let chain = &self.net.genesis.chain_id;
            let tx = SignedTx::transfer(&key, chain, nonce, recipient, Amount(IN_FLIGHT_UNITS), Amount(IN_FLIGHT_FEE));
            let id = client.submit(&tx).await.with_context(|| format!("sending an in-flight transfer on {shard}"))?.id;
            sent.ids.push((shard, id));
        }
        for (shard, id) in &sent.ids {
            let client = &self.rpc[self.reference(*shard)];
            client.wait_final(id, POLL, self.options.timeout).await?;
        }
        self.report.in_flight = sent.ids.len();
        Self::say(&format!("{} transfers into shard {HALTED_SHARD} final at their sources", sent.ids.len()));
        self.in_flight = Some(sent.clone());
        Ok(sent)
    }

    /// The transfers into the halted shard are debited and not credited.
    async fn check_in_flight(&mut self, sent: &InFlight, survivors: &[usize]) {
        let Some(&asked) = survivors.first() else { return };
        let mut waiting = 0;
        for (_, id) in &sent.ids {
            if let Ok(ReceiptResponse::NotCredited { .. }) = self.rpc[asked].receipt(id, HALTED_SHARD).await {
                waiting += 1;
            }
        }
        self.report.expect(
            format!("transfers into shard {HALTED_SHARD} wait in flight"),
            waiting == sent.ids.len() && waiting > 0,
            format!(
                "{} debited at their sources, {waiting} not credited by {}",
                sent.ids.len(),
                self.net.nodes[asked].name
            ),
        );
    }

    /// Step 3: a twin of the twinned shard's last validator.
    async fn twin(&mut self) -> Result<()> {
        let members = self.validators(TWINNED_SHARD);
        let original = members.last().copied().context("an empty committee")?;
        let name = self.net.nodes[original].name.clone();
        let index = u32::try_from(members.len() - 1)?;
        let reference = self.reference(TWINNED_SHARD);
        let started_at = probe::height(&self.rpc[reference], TWINNED_SHARD).await.unwrap_or(0);
        let twin = self.net.add_twin(&name)?;
        let before = probe::committed(&self.net.nodes, &self.validators_of_all()).await?;
        let clock = Instant::now();
        self.net.start(&twin)?;
        Self::say(&format!("started {twin} at shard {TWINNED_SHARD} height {started_at}"));
        let slash = probe::wait_slashed(&self.rpc[reference], TWINNED_SHARD, index, self.options.timeout).await;
        let after = probe::committed(&self.net.nodes, &self.validators_of_all()).await?;
        self.report.during_twin = probe::rates(&before, &after, clock.elapsed());
        self.net.kill(&twin)?;
        let Some(slash) = slash else {
            self.report.expect(
                format!("a twin of {name} is slashed"),
                false,
                format!("not slashed within {:?} of starting at height {started_at}", self.options.timeout),
            );
            return Ok(());
        };
        let stake = self
            .net
            .genesis
            .committee(TWINNED_SHARD)
            .and_then(|c| c.validators.get(index as usize))
            .map_or(0, |v| v.stake_units);
        let expected_burn =
            u64::try_from(u128::from(stake) * u128::from(self.net.genesis.params.slash_fraction_bps) / 10_000)?;
        let figures = TwinFigures {
            validator: name.clone(),
            started_at,
            offence_at: slash.offence_height,
            phase: slash.phase.clone(),
            included_at: slash.included_at,
            burned_units: slash.burned_units,
            stake_units: stake,
        };
        let lag = slash.included_at.saturating_sub(slash.offence_height);
        self.report.expect(
            format!("the twin's evidence is final within {EVIDENCE_WITHIN} blocks"),
            lag <= EVIDENCE_WITHIN,
            format!(
                "offence at height {}, executed by the block at {} ({lag} blocks)",
                slash.offence_height, slash.included_at
            ),
        );
        self.report.expect(
            format!("{name}'s stake is cut by {} bps", self.net.genesis.params.slash_fraction_bps),
            slash.burned_units == expected_burn && expected_burn > 0,
            format!("{} of {stake} units burned (expected {expected_burn})", slash.burned_units),
        );
        self.report.twin = Some(figures);
        self.check_jailed(Some((TWINNED_SHARD, index))).await;
        let honest: Vec<usize> = members[..members.len() - 1].to_vec();
        let target = slash.included_at + 3;
        let went_on = self.wait_heights(&honest, TWINNED_SHARD, target, "the twinned shard to go on").await.is_ok();
        self.report.expect(
            format!("shard {TWINNED_SHARD} goes on without {name}"),
            went_on,
            format!("its other validators {} height {target}", if went_on { "reached" } else { "did not reach" }),
        );
        Ok(())
    }

    /// Every shard's reference validator, in shard order.
    fn validators_of_all(&self) -> Vec<usize> {
        (0..self.net.genesis.shard_count).map(|s| self.reference(s)).collect()
    }

    /// Nobody is jailed but `expected` (shard, index), on any shard.
    async fn check_jailed(&mut self, expected: Option<(ShardId, u32)>) {
        let mut jailed = Vec::new();
        let mut unread = Vec::new();
        for shard in 0..self.net.genesis.shard_count {
            match probe::jailed(&self.rpc[self.reference(shard)], shard).await {
                Ok(list) => jailed.extend(list.into_iter().map(|i| (shard, i))),
                Err(e) => unread.push(format!("shard {shard}: {e}")),
            }
        }
        let want: Vec<(ShardId, u32)> = expected.into_iter().collect();
        self.report.expect(
            "only the twinned validator is jailed (no honest validator slashed)",
            jailed == want && unread.is_empty(),
            format!(
                "jailed (shard, index): {jailed:?}{}",
                if unread.is_empty() { String::new() } else { format!("; unread: {}", unread.join(", ")) }
            ),
        );
    }

    /// Step 4: restarts the halted shard's validators; it must resume,
    /// catch up, agree on its blocks and credit what was sent to it.
    async fn restore(&mut self, halted_at: u64) -> Result<()> {
        let killed = self.report.killed.clone();
        let clock = Instant::now();
        for name in &killed {
            self.net.start(name)?;
        }
        Self::say(&format!("restarted {}", killed.join(", ")));
        let members = self.validators(HALTED_SHARD);
        let reference = self.reference(HALTED_SHARD);
        let resumed = self.wait_heights(&[reference], HALTED_SHARD, halted_at + 1, "the halted shard to resume").await;
        let resumed_s = clock.elapsed().as_secs_f64();
        let top = probe::height(&self.rpc[reference], HALTED_SHARD).await.unwrap_or(0);
        let caught = self.wait_heights(&members, HALTED_SHARD, top, "its validators to catch up").await;
        let caught_up_s = clock.elapsed().as_secs_f64();
        self.report.expect(
            format!("shard {HALTED_SHARD} resumes and catches up"),
            resumed.is_ok() && caught.is_ok(),
            format!(
                "resumed from height {halted_at} in {resumed_s:.1} s; all {} validators at {top} by {caught_up_s:.1} s",
                members.len()
            ),
        );
        let mut agree = true;
        let mut diverged = String::new();
        let from = halted_at.saturating_sub(FORK_CHECK_SPAN).max(1);
        for h in from..=(halted_at + FORK_CHECK_SPAN).min(top) {
            let hashes = probe::block_hashes(&self.rpc, &members, HALTED_SHARD, h).await;
            if hashes.iter().any(|x| x.is_none() || *x != hashes[0]) {
                agree = false;
                diverged = format!("height {h}: {hashes:?}");
                break;
            }
        }
        self.report.expect(
            format!("shard {HALTED_SHARD}'s validators agree on every block around the halt"),
            agree,
            if agree {
                format!(
                    "heights {from}..={} identical on all {}",
                    (halted_at + FORK_CHECK_SPAN).min(top),
                    members.len()
                )
            } else {
                diverged
            },
        );
        let mut credited = 0;
        if let Some(sent) = self.in_flight.clone() {
            for (_, id) in &sent.ids {
                let answer = self.rpc[reference].wait_credited(id, HALTED_SHARD, POLL, self.options.timeout).await;
                if matches!(answer, Ok(ReceiptResponse::Credited { .. })) {
                    credited += 1;
                }
            }
            let credited_s = clock.elapsed().as_secs_f64();
            let want = IN_FLIGHT_UNITS * sent.ids.len() as u64;
            let mut balances = Vec::new();
            for &i in &members {
                let wait = self.wait_balance(i, &sent.recipient, want).await;
                balances.push(wait);
            }
            self.report.expect(
                "the in-flight transfers are credited exactly once",
                credited == sent.ids.len() && balances.iter().all(|b| *b == Some(want)),
                format!("{credited}/{} credited by {credited_s:.1} s; recipient holds {balances:?} units on the shard's validators (expected {want})", sent.ids.len()),
            );
            self.report.restore = Some(RestoreFigures { halted_at, resumed_s, caught_up_s, credited_s });
        }
        Ok(())
    }

    /// Waits (bounded) until node `i` shows `address` holding `units`;
    /// returns what it last showed.
    async fn wait_balance(&self, i: usize, address: &Address, units: u64) -> Option<u64> {
        let deadline = Instant::now() + self.options.timeout;
        let mut seen = None;
        while Instant::now() < deadline {
            seen = self.rpc[i].account(address, false).await.ok().map(|a| a.balance_units);
            if seen == Some(units) {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        seen
    }

    /// The whole network's money, after the receipts settle.
    async fn money(&mut self) {
        Self::say("waiting for cross-shard receipts, then reading every shard's money");
        self.check_jailed(
            self.report.twin.as_ref().map(|_| (TWINNED_SHARD, self.validators(TWINNED_SHARD).len() as u32 - 1)),
        )
        .await;
        let rpc = match chaos::clients(self.net) {
            Ok(rpc) => rpc,
            Err(e) => {
                self.report.expect("money is conserved", false, e.to_string());
                return;
            }
        };
        let extra: Vec<Address> = self.in_flight.iter().map(|s| s.recipient).collect();
        match chaos::cut_network(&rpc, &self.net.genesis, &extra).await {
            Ok((cuts, chains, credits)) => {
                let total = self.net.genesis.total_supply().map_or(0, |a| u128::from(a.units()));
                let tally = supply::tally(total, &cuts, &chains, &credits);
                let mut violations = Vec::new();
                supply::check(&tally, chaos::RECEIPT_WAIT, &mut violations);
                self.report.expect(
                    "money is conserved across the whole network, nothing left in flight",
                    violations.is_empty(),
                    if violations.is_empty() {
                        format!("{} units accounted at heights {:?}", tally.accounted(), tally.heights)
                    } else {
                        violations.join("; ")
                    },
                );
                self.report.supply = Some(tally);
            }
            Err(e) => self.report.expect("money is conserved", false, e),
        }
    }

    /// Committed tx/s of every shard over one window, read from each
    /// shard's reference validator.
    async fn throughput(&self, shards: &[ShardId]) -> Result<Throughput> {
        let refs: Vec<usize> = shards.iter().map(|&s| self.reference(s)).collect();
        let before = probe::committed(&self.net.nodes, &refs).await?;
        let clock = Instant::now();
        tokio::time::sleep(self.options.window).await;
        let after = probe::committed(&self.net.nodes, &refs).await?;
        Ok(probe::rates(&before, &after, clock.elapsed()))
    }

    /// `(height, block hash)` of `shard` on each of `nodes`.
    async fn tips(&self, nodes: &[usize], shard: ShardId) -> Vec<Option<(u64, Hash)>> {
        let mut out = Vec::new();
        for &i in nodes {
            out.push(probe::tip(&self.rpc[i], shard).await);
        }
        out
    }

    /// Waits until every node of `nodes` is at `shard` height `target`,
    /// for at most the drill's timeout.
    async fn wait_heights(&self, nodes: &[usize], shard: ShardId, target: u64, what: &str) -> Result<()> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            let mut lowest = u64::MAX;
            for &i in nodes {
                lowest = lowest.min(probe::height(&self.rpc[i], shard).await.unwrap_or(0));
            }
            if lowest >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out waiting for {what}: shard {shard} at {lowest}, not {target}, after {:?}",
                    self.options.timeout
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Transfers sent into the halted shard.
#[derive(Clone, Debug)]
struct InFlight {
    recipient: Address,
    /// (source shard, id).
    ids: Vec<(ShardId, Hash)>,
}

/// `(height, block)` pairs, short.
fn show_tips(tips: &[Option<(u64, Hash)>]) -> String {
    let shown: Vec<String> =
        tips.iter().map(|t| t.map_or("-".into(), |(h, hash)| format!("{h}:{}", &hash.to_string()[..8]))).collect();
    format!("[{}]", shown.join(", "))
}
