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
//! 4. the halted shard's validators return: it catches up and resumes, and
//!    the in-flight transfers are credited;
//! 5. one validator of another shard restarts with a skewed clock: it
//!    quarantines itself while its shard goes on, and rejoins once
//!    restarted with the right clock ([`quarantine`]);
//!
//! and at the end the whole network's money adds up (the
//! [`crate::chaos::supply`] audit).
//!
//! Every expectation is recorded in a [`DrillReport`]; the command exits
//! non-zero if one fails.
//!
//! - [`report`]: the figures and the expectations (pure);
//! - [`probe`]: reading the network (heights, counters, health, slashings);
//! - [`quarantine`]: step 5.

pub mod probe;
pub mod quarantine;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::api::client::Client;
use palisade_ledger::api::{ReceiptResponse, TransactionResponse};
use palisade_ledger::genesis::shard_faucet_key;
use palisade_ledger::{Address, Amount, Hash, Keypair, ShardId, SignedTx, slashing};

pub use self::report::DrillReport;
use self::report::{RestoreFigures, Throughput, TwinFigures};
use crate::bench::{self, BenchArgs};
use crate::chaos;
use crate::local::{LocalNet, status};

/// The bound: evidence final within this many blocks of the offence.
pub const EVIDENCE_WITHIN: u64 = 10;
/// The shard whose quorum is killed.
pub const HALTED_SHARD: ShardId = 2;
/// The shard whose validator gets a twin.
pub const TWINNED_SHARD: ShardId = 1;
/// The smallest committee the drill runs on: one that tolerates a fault
/// (a twin must not halt its shard) and can lose its quorum with survivors
/// left to watch.
const MIN_COMMITTEE: usize = 4;
/// How long after the kills the drill waits before it measures (a block
/// already certified may still land).
const SETTLE: Duration = Duration::from_secs(2);
/// One RPC call's bound (a killed node must not stall the drill).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Each in-flight transfer, units.
const IN_FLIGHT_UNITS: u64 = 1_000_000;
/// Their fee, units.
const IN_FLIGHT_FEE: u64 = 1_000;
/// Heights around the halt whose blocks every validator of the halted shard
/// must agree on once it is back.
const FORK_CHECK_SPAN: u64 = 5;
/// After the load stops, how long its last transactions have to be final
/// (the halted shard's own ones were resent and must commit after it
/// returned).
const LOAD_DRAIN: Duration = Duration::from_secs(20);

/// What to run (also `palisade-testnet drill`'s flags).
#[derive(Clone, Debug, clap::Args)]
pub struct DrillOptions {
    /// Load offered, transactions per second over all shards.
    #[arg(long, default_value_t = 400)]
    pub rate: u64,
    /// Share of the load's transfers that cross shards.
    #[arg(long, default_value_t = 0.2)]
    pub cross_shard: f64,
    /// Sending accounts per shard.
    #[arg(long, default_value_t = 32)]
    pub accounts_per_shard: usize,
    /// Each throughput measurement window.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// The share of its baseline tx/s each other shard must keep while the
    /// halted shard is down (0: only that it keeps committing).
    #[arg(long, default_value_t = 0.9)]
    pub min_share: f64,
    /// Transfers sent into the halted shard while it is down.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// The longest any one wait may take (start, slashing, catch-up, credit).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl Default for DrillOptions {
    /// The flags' defaults.
    fn default() -> Self {
        crate::flag_defaults()
    }
}

/// Runs the drill on `net`, whose nodes must all be running (see
/// [`LocalNet::start_all`]); progress goes to stderr. An error means the
/// drill could not start; a step that fails is a failed expectation.
pub fn run(net: &mut LocalNet, options: &DrillOptions) -> Result<DrillReport> {
    let genesis = &net.genesis;
    if genesis.shard_count <= HALTED_SHARD.max(TWINNED_SHARD) {
        bail!(
            "the drill needs at least {} shards (this network has {})",
            HALTED_SHARD.max(TWINNED_SHARD) + 1,
            genesis.shard_count
        );
    }
    for shard in [HALTED_SHARD, TWINNED_SHARD, quarantine::QUARANTINED_SHARD] {
        let size = genesis.committee(shard).map_or(0, |c| c.validators.len());
        if size < MIN_COMMITTEE {
            bail!("the drill needs {MIN_COMMITTEE} validators or more on shard {shard} (it has {size})");
        }
    }
    if !(0.0..=1.0).contains(&options.min_share) {
        bail!("--min-share must be between 0 and 1");
    }
    let runtime = crate::client_runtime()?;
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
        Ok(Drill { net, options, rpc, in_flight: None, report: DrillReport::default() })
    }

    fn say(line: &str) {
        eprintln!("drill: {line}");
    }

    /// Indices (into `net.nodes`) of `shard`'s validators in committee
    /// order, twins left out.
    fn validators(&self, shard: ShardId) -> Vec<usize> {
        (0..self.net.nodes.len())
            .filter(|&i| self.net.nodes[i].shard == shard && !self.net.nodes[i].is_twin())
            .collect()
    }

    /// Per shard, the validator the drill reads it from: its first, which
    /// is never killed nor twinned (every shard has one: the layout runs
    /// every genesis validator).
    fn reference(&self, shard: ShardId) -> usize {
        self.validators(shard).first().copied().unwrap_or_default()
    }

    async fn run(mut self) -> Result<DrillReport> {
        let shards: Vec<ShardId> = (0..self.net.genesis.shard_count).collect();
        Self::say("waiting for every validator to commit");
        for &shard in &shards {
            let all = self.validators(shard);
            self.wait_heights(&all, shard, 2, "every validator at height 2").await?;
        }
        let args = BenchArgs {
            rate: self.options.rate,
            // The three measured windows and a step's wait, with room to
            // spare: the whole load is signed and funded before it starts,
            // and it is stopped at the drill's end.
            duration: self.options.window * 4 + self.options.timeout,
            accounts_per_shard: self.options.accounts_per_shard,
            drain: LOAD_DRAIN,
            cross_shard: self.options.cross_shard,
            ..crate::flag_defaults()
        };
        Self::say(&format!("starting the load: {} tx/s, {:.0}% cross-shard", args.rate, args.cross_shard * 100.0));
        let load = bench::background(&self.net.dir, &args).await?;
        let ran = self.steps(&shards).await;
        Self::say("stopping the load and draining");
        let summary = load.stop().await?;
        self.report.expect(
            "the load committed",
            summary.committed > 0,
            format!("{} of {} transactions final", summary.committed, summary.transactions),
        );
        self.report.load = Some(summary);
        match ran {
            Ok(()) => self.money().await,
            // The network is left mid-drill: the audit would only add noise.
            Err(e) => self.report.expect("every step of the drill ran", false, format!("{e:#}")),
        }
        Ok(self.report)
    }

    /// The baseline, then steps 2–5.
    async fn steps(&mut self, shards: &[ShardId]) -> Result<()> {
        // The first blocks under load carry the backlog of the start.
        tokio::time::sleep(self.options.window / 4).await;
        Self::say(&format!("measuring the baseline for {:?}", self.options.window));
        self.report.baseline = self.throughput(shards).await?;
        let halted_at = self.halt(shards).await?;
        self.twin().await?;
        self.restore(halted_at).await?;
        self.quarantine().await
    }

    /// Step 2: kills the halted shard's quorum and checks what everyone
    /// sees. Returns the height it halted at.
    async fn halt(&mut self, shards: &[ShardId]) -> Result<u64> {
        let members = self.validators(HALTED_SHARD);
        let committee =
            self.net.genesis.consensus_committee(HALTED_SHARD).context("the halted shard has no committee")?;
        // The fewest validators, from the last, whose loss leaves the rest
        // short of a quorum.
        let keep = (0..members.len())
            .rev()
            .find(|&k| {
                let left = (0..k).filter_map(|i| u32::try_from(i).ok()).map(palisade_consensus::ValidatorIndex);
                committee.stake_of(left) < committee.quorum_stake()
            })
            .filter(|&k| k > 0)
            .context("no survivor would be left to watch the halted shard")?;
        let (survivors, victims) = members.split_at(keep);
        for &i in victims {
            let name = self.net.nodes[i].name.clone();
            self.net.kill(&name)?;
            self.report.killed.push(name);
        }
        Self::say(&format!("killed {} of shard {HALTED_SHARD}", self.report.killed.join(", ")));
        tokio::time::sleep(SETTLE).await;
        let before = self.tips(survivors, HALTED_SHARD).await;
        let halted_at =
            before.first().copied().flatten().map(|(h, _)| h).context("the halted shard's survivors do not answer")?;
        self.send_in_flight().await?;
        Self::say(&format!("measuring shard {HALTED_SHARD} halted for {:?}", self.options.window));
        let started = Instant::now();
        self.report.during_halt = self.throughput(shards).await?;
        // /health goes 503 once the last commit is older than its limit.
        let stale = Duration::from_secs_f64(status::HALTED_AFTER_S + 1.0);
        if let Some(rest) = stale.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let after = self.tips(survivors, HALTED_SHARD).await;
        self.report.expect(
            format!("shard {HALTED_SHARD} stops committing without a quorum"),
            before == after && before.iter().all(Option::is_some),
            format!("survivors' (height, block) {} before the window, {} after", show_tips(&before), show_tips(&after)),
        );
        let one_block = after.iter().all(|tip| tip.is_some() && tip == &after[0]);
        self.report.expect(
            format!("shard {HALTED_SHARD} does not fork while halted"),
            one_block,
            format!("survivors' tips {}", show_tips(&after)),
        );
        self.check_isolation(shards);
        self.check_health(shards).await;
        self.check_in_flight(survivors[0]).await;
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
    /// faucets into a fresh account on the halted shard, and waits until
    /// each is final at its source.
    async fn send_in_flight(&mut self) -> Result<()> {
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
            match client.wait_final(id, probe::POLL, self.options.timeout).await? {
                TransactionResponse::Final { dest_shard: Some(HALTED_SHARD), .. } => {}
                other => bail!("the in-flight transfer {id} on shard {shard} is not debited: {other:?}"),
            }
        }
        self.report.in_flight = sent.ids.len();
        Self::say(&format!("{} transfers into shard {HALTED_SHARD} final at their sources", sent.ids.len()));
        self.in_flight = Some(sent);
        Ok(())
    }

    /// The transfers into the halted shard, debited at their sources, are
    /// not credited by it.
    async fn check_in_flight(&mut self, asked: usize) {
        let ids: Vec<Hash> = self.in_flight.iter().flat_map(|s| s.ids.iter().map(|(_, id)| *id)).collect();
        let mut waiting = 0;
        for id in &ids {
            if let Ok(ReceiptResponse::NotCredited { .. }) = self.rpc[asked].receipt(id, HALTED_SHARD).await {
                waiting += 1;
            }
        }
        self.report.expect(
            format!("transfers into shard {HALTED_SHARD} wait in flight"),
            waiting == ids.len() && waiting > 0,
            format!("{} debited at their sources, {waiting} not credited by {}", ids.len(), self.net.nodes[asked].name),
        );
    }

    /// Step 3: a twin of the twinned shard's last validator, killed again
    /// however the step ends.
    async fn twin(&mut self) -> Result<()> {
        let members = self.validators(TWINNED_SHARD);
        let original = *members.last().context("an empty committee")?;
        let name = self.net.nodes[original].name.clone();
        let twin = self.net.add_twin(&name)?;
        let reference = self.reference(TWINNED_SHARD);
        let started_at = probe::height(&self.rpc[reference], TWINNED_SHARD).await.unwrap_or(0);
        let before = probe::committed(&self.net.nodes, &self.references()).await?;
        let clock = Instant::now();
        self.net.start(&twin)?;
        Self::say(&format!("started {twin} at shard {TWINNED_SHARD} height {started_at}"));
        let index = u32::try_from(members.len() - 1)?;
        let slashed = probe::wait_slashed(&self.rpc[reference], TWINNED_SHARD, index, self.options.timeout).await;
        let after = probe::committed(&self.net.nodes, &self.references()).await;
        self.net.kill(&twin)?;
        self.report.during_twin = probe::rates(&before, &after?, clock.elapsed());
        let Some((slash, state)) = slashed.and_then(|mut s| Some((s.slashed.take()?, s))) else {
            self.report.expect(
                format!("a twin of {name} is slashed"),
                false,
                format!("not slashed within {:?} of starting at height {started_at}", self.options.timeout),
            );
            return Ok(());
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
        let stake = self.net.genesis.committee(TWINNED_SHARD).and_then(|c| c.validators.get(index as usize));
        let stake = Amount(stake.map_or(0, |v| v.stake_units));
        let bps = self.net.genesis.params.slash_fraction_bps;
        let burn = slashing::burned(stake, bps).units();
        let left = state.stake_units;
        self.report.expect(
            format!("{name} is jailed and its stake cut by {bps} bps"),
            state.jailed && slash.burned_units == burn && burn > 0 && left == stake.units() - burn,
            format!(
                "jailed: {}; {} of {} units burned (expected {burn}); {left} units left",
                state.jailed,
                slash.burned_units,
                stake.units()
            ),
        );
        self.report.twin = Some(TwinFigures {
            validator: name.clone(),
            index,
            started_at,
            offence_at: slash.offence_height,
            phase: slash.phase.clone(),
            included_at: slash.included_at,
            burned_units: slash.burned_units,
            stake_units: stake.units(),
        });
        self.check_punished("").await;
        let honest = &members[..members.len() - 1];
        let target = slash.included_at + 3;
        let went_on = self.wait_heights(honest, TWINNED_SHARD, target, "the twinned shard to go on").await;
        self.report.expect(
            format!("shard {TWINNED_SHARD} goes on without {name}"),
            went_on.is_ok(),
            went_on.map_or_else(|e| e.to_string(), |()| format!("its other validators reached height {target}")),
        );
        Ok(())
    }

    /// Every shard's reference validator, in shard order.
    fn references(&self) -> Vec<usize> {
        (0..self.net.genesis.shard_count).map(|s| self.reference(s)).collect()
    }

    /// Nobody but the twinned validator (if it was caught) is jailed or has
    /// a slash record, on any shard, and the stake burned over all shards
    /// is its one burn. `when` ends the expectation's name.
    async fn check_punished(&mut self, when: &str) {
        let expected: Vec<(ShardId, u32)> = self.report.twin.iter().map(|t| (TWINNED_SHARD, t.index)).collect();
        let burn: u64 = self.report.twin.iter().map(|t| t.burned_units).sum();
        let mut punished = Vec::new();
        let mut burned = 0u64;
        let mut unread = Vec::new();
        for shard in 0..self.net.genesis.shard_count {
            match probe::punished(&self.rpc[self.reference(shard)], shard).await {
                Ok((list, units)) => {
                    punished.extend(list.into_iter().map(|i| (shard, i)));
                    burned = burned.saturating_add(units);
                }
                Err(e) => unread.push(format!("shard {shard}: {e}")),
            }
        }
        let unread = if unread.is_empty() { String::new() } else { format!("; unread: {}", unread.join(", ")) };
        self.report.expect(
            format!("no honest validator is jailed or slashed, on any shard{when}"),
            punished == expected && burned == burn && unread.is_empty(),
            format!("punished (shard, index): {punished:?}, {burned} units burned in all{unread}"),
        );
    }

    /// Step 4: restarts the halted shard's validators; it must resume,
    /// catch up, agree on its blocks and credit what was sent to it.
    async fn restore(&mut self, halted_at: u64) -> Result<()> {
        let clock = Instant::now();
        for name in self.report.killed.clone() {
            self.net.start(&name)?;
        }
        Self::say(&format!("restarted {}", self.report.killed.join(", ")));
        let Some(Resumed { resumed_s, caught_up_s, top }) = self.resume(halted_at, clock).await else { return Ok(()) };
        self.agree(halted_at, top).await;
        let credited_s = self.credited(clock).await;
        self.report.restore = Some(RestoreFigures { halted_at, resumed_s, caught_up_s, credited_s });
        Ok(())
    }

    /// The halted shard commits again and every validator reaches its
    /// height; `None` (a failed expectation) if it does not.
    async fn resume(&mut self, halted_at: u64, clock: Instant) -> Option<Resumed> {
        let members = self.validators(HALTED_SHARD);
        let reference = self.reference(HALTED_SHARD);
        let resumed = self.wait_heights(&[reference], HALTED_SHARD, halted_at + 1, "the halted shard to resume").await;
        let resumed_s = clock.elapsed().as_secs_f64();
        let top = probe::height(&self.rpc[reference], HALTED_SHARD).await.unwrap_or(0).max(halted_at + 1);
        let caught = match resumed {
            Ok(()) => self.wait_heights(&members, HALTED_SHARD, top, "its validators to catch up").await,
            Err(e) => Err(e),
        };
        let caught_up_s = clock.elapsed().as_secs_f64();
        let detail = match &caught {
            Ok(()) => format!(
                "resumed from height {halted_at} in {resumed_s:.1} s; all {} validators at {top} by {caught_up_s:.1} s",
                members.len()
            ),
            Err(e) => e.to_string(),
        };
        self.report.expect(format!("shard {HALTED_SHARD} resumes and catches up"), caught.is_ok(), detail);
        caught.ok().map(|()| Resumed { resumed_s, caught_up_s, top })
    }

    /// Every validator of the halted shard holds the same blocks around the
    /// halt (`top` is at least `halted_at + 1`, so the span is not empty).
    async fn agree(&mut self, halted_at: u64, top: u64) {
        let members = self.validators(HALTED_SHARD);
        let (from, to) = (halted_at.saturating_sub(FORK_CHECK_SPAN).max(1), (halted_at + FORK_CHECK_SPAN).min(top));
        let mut diverged = None;
        for h in from..=to {
            let hashes = probe::block_hashes(&self.rpc, &members, HALTED_SHARD, h).await;
            if hashes.iter().any(|x| x.is_none() || *x != hashes[0]) {
                diverged = Some(format!("height {h}: {hashes:?}"));
                break;
            }
        }
        self.report.expect(
            format!("shard {HALTED_SHARD}'s validators agree on every block around the halt"),
            diverged.is_none(),
            diverged.unwrap_or_else(|| format!("heights {from}..={to} identical on all {}", members.len())),
        );
    }

    /// The in-flight transfers are credited once each, and the recipient
    /// holds exactly their sum on every validator of the shard, all within
    /// one timeout. Returns the seconds since `clock` it took.
    async fn credited(&mut self, clock: Instant) -> f64 {
        let Some(sent) = self.in_flight.clone() else { return 0.0 };
        let deadline = Instant::now() + self.options.timeout;
        let reference = self.reference(HALTED_SHARD);
        let mut credited = 0;
        for (_, id) in &sent.ids {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.rpc[reference].wait_credited(id, HALTED_SHARD, probe::POLL, left).await;
            if matches!(answer, Ok(ReceiptResponse::Credited { .. })) {
                credited += 1;
            }
        }
        let credited_s = clock.elapsed().as_secs_f64();
        let want = IN_FLIGHT_UNITS * sent.ids.len() as u64;
        let mut balances = Vec::new();
        for i in self.validators(HALTED_SHARD) {
            balances.push(probe::wait_balance(&self.rpc[i], &sent.recipient, want, deadline).await);
        }
        self.report.expect(
            "the in-flight transfers are credited exactly once",
            credited == sent.ids.len() && balances.iter().all(|b| *b == Some(want)),
            format!(
                "{credited}/{} credited by {credited_s:.1} s; the recipient holds {balances:?} units on the shard's \
                 validators (expected {want})",
                sent.ids.len()
            ),
        );
        credited_s
    }

    /// The whole network's money, after the receipts settle, and nobody
    /// punished who should not be.
    async fn money(&mut self) {
        self.check_punished(", at the end").await;
        Self::say("waiting for cross-shard receipts, then reading every shard's money");
        let rpc = match chaos::clients(self.net) {
            Ok(rpc) => rpc,
            Err(e) => return self.report.expect("money is conserved", false, e.to_string()),
        };
        let extra: Vec<Address> = self.in_flight.iter().map(|s| s.recipient).collect();
        let mut violations = Vec::new();
        let audit = chaos::audit_supply(&rpc, &self.net.genesis, &extra, &mut violations).await;
        let detail = match (&audit, violations.is_empty()) {
            (Some((tally, _)), true) => {
                format!("{} units accounted at heights {:?}", tally.accounted(), tally.heights)
            }
            _ => violations.join("; "),
        };
        self.report.expect(
            "money is conserved across the whole network, nothing left in flight",
            audit.is_some() && violations.is_empty(),
            detail,
        );
        self.report.supply = audit.map(|(tally, _)| tally);
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
        // Bounded by the deadline.
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
            tokio::time::sleep(probe::POLL).await;
        }
    }
}

/// How the halted shard came back, in seconds since its validators were
/// restarted.
struct Resumed {
    resumed_s: f64,
    caught_up_s: f64,
    /// The height all its validators reached.
    top: u64,
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
    let shown: Vec<String> = tips
        .iter()
        .map(|t| t.map_or("-".into(), |(h, hash)| format!("{h}:{}", hash.to_string().get(..8).unwrap_or_default())))
        .collect();
    format!("[{}]", shown.join(", "))
}
