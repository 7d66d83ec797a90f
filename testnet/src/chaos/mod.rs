//! `palisade-testnet chaos`: a bank workload on a running local network
//! (a third of its transfers cross shards) while validators are killed,
//! paused, stopped and brought back (never more than `f` per shard at
//! once), then an audit ([`audit`], [`supply`]): agreement on every block,
//! every acknowledged transfer final exactly once and, if cross-shard,
//! credited once from the block it was final in, every bank account's
//! balance exact, the genesis supply all accounted for with nothing left in
//! flight, and every shard still committing.
//!
//! - [`faults`]: the seeded fault injector;
//! - [`bank`]: the workload and its acknowledgements;
//! - [`audit`]: the end-of-run checks of the run's blocks and the bank;
//! - [`supply`]: the whole network's money at one cut.

pub mod audit;
pub mod bank;
pub mod faults;
pub mod supply;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::ShardId;
use palisade_ledger::api::client::Client;

use self::bank::{Ack, Bank, SenderReport};
use self::faults::Injector;
use self::supply::{Chains, Credits, Readers, ShardCut, Supply};
use crate::local::LocalNet;

/// How long one RPC call of the workload or the audit may take: a paused
/// node never answers, and must not stall a sender for long.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the healed network has to catch up before the audit.
const CATCH_UP: Duration = Duration::from_secs(120);
/// How long the caught-up network has to credit every cross-shard receipt
/// before the supply cut.
const RECEIPT_WAIT: Duration = Duration::from_secs(60);
/// How long one call of the supply audit may take (it reads whole blocks).
const AUDIT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer the supply audit accepts (the nodes refuse answers
/// beyond 16 MiB; the audit then reads one block at a time).
const AUDIT_MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// How long faults and the workload run.
    pub duration: Duration,
    /// Seeds the fault schedule and the workload's choices.
    pub seed: u64,
    /// Bank accounts per shard.
    pub accounts_per_shard: usize,
    /// Concurrent senders per shard.
    pub senders_per_shard: usize,
    /// Time between fault decisions.
    pub fault_every: Duration,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            duration: Duration::from_secs(60),
            seed: 1,
            accounts_per_shard: 6,
            senders_per_shard: 2,
            fault_every: Duration::from_millis(1_500),
        }
    }
}

/// What happened and what the audit found.
#[derive(Debug, Default)]
pub struct ChaosReport {
    /// Every fault and heal, with its time.
    pub faults: Vec<String>,
    /// Faults by kind.
    pub applied: BTreeMap<&'static str, usize>,
    /// Transfers the workload saw final.
    pub acknowledged: usize,
    /// Of those, the cross-shard ones.
    pub cross_shard: usize,
    /// Transfers submitted and not seen final in time.
    pub abandoned: usize,
    /// Submissions no validator took.
    pub refused: usize,
    /// Per shard: heights at the start and after catch-up.
    pub heights: BTreeMap<ShardId, (u64, u64)>,
    /// Fees the bank paid, by the blocks.
    pub fees: u64,
    /// The supply at the audit's cut, if it could be read.
    pub supply: Option<Supply>,
    /// Every violated property, one line each. Empty means the run passed.
    pub violations: Vec<String>,
}

pub(crate) fn clients(net: &LocalNet) -> Result<BTreeMap<ShardId, Vec<Client>>> {
    let mut rpc: BTreeMap<ShardId, Vec<Client>> = BTreeMap::new();
    for node in net.validators() {
        rpc.entry(node.shard).or_default().push(Client::with_timeout(&node.rpc_url(), CALL_TIMEOUT)?);
    }
    Ok(rpc)
}

/// Heights of `shard` on each of `rpc` (None: did not answer).
async fn heights(shard: ShardId, rpc: &[Client]) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(rpc.len());
    for client in rpc {
        out.push(client.height(shard).await.ok().flatten());
    }
    out
}

/// Per shard, a client (with the audit's bounds) of its first validator
/// that answers.
async fn readers(rpc: &BTreeMap<ShardId, Vec<Client>>) -> Result<Readers, String> {
    let mut out = Readers::new();
    for (&shard, clients) in rpc {
        for client in clients {
            if client.height(shard).await.ok().flatten().is_some() {
                let reader = Client::with_limits(client.url(), AUDIT_CALL_TIMEOUT, AUDIT_MAX_RESPONSE_BYTES)
                    .map_err(|e| e.to_string())?;
                out.insert(shard, reader);
                break;
            }
        }
        if !out.contains_key(&shard) {
            return Err(format!("no validator of shard {shard} answers"));
        }
    }
    Ok(out)
}

/// The network's money at a cut: gives the receipts [`RECEIPT_WAIT`] to
/// be credited, then cuts every shard (covering the `bank` accounts too).
async fn cut_network(
    rpc: &BTreeMap<ShardId, Vec<Client>>,
    genesis: &palisade_ledger::Genesis,
    bank: &[palisade_ledger::Address],
) -> Result<(BTreeMap<ShardId, ShardCut>, Chains, Credits), String> {
    let readers = readers(rpc).await?;
    let mut chains = Chains::default();
    let mut credits = Credits::new();
    supply::settle(&readers, genesis, &mut chains, &mut credits, RECEIPT_WAIT).await?;
    let cuts = supply::cut_all(&readers, genesis, bank, &mut chains, &mut credits).await?;
    Ok((cuts, chains, credits))
}

/// What a cut of the whole network read ([`cut_network`]).
pub(crate) type NetworkCut = (BTreeMap<ShardId, ShardCut>, Chains, Credits);

/// The supply check at a cut of the whole network (covering the `extra`
/// accounts too): violations appended; the tally and what was read, if the
/// network could be read.
pub(crate) async fn audit_supply(
    rpc: &BTreeMap<ShardId, Vec<Client>>,
    genesis: &palisade_ledger::Genesis,
    extra: &[palisade_ledger::Address],
    violations: &mut Vec<String>,
) -> Option<(Supply, NetworkCut)> {
    let (cuts, chains, credits) = match cut_network(rpc, genesis, extra).await {
        Ok(read) => read,
        Err(e) => {
            violations.push(format!("supply: {e}"));
            return None;
        }
    };
    let total = genesis.total_supply().map_or(0, |a| u128::from(a.units()));
    let tally = supply::tally(total, &cuts, &chains, &credits);
    supply::check(&tally, RECEIPT_WAIT, violations);
    Some((tally, (cuts, chains, credits)))
}

/// The money checks at a cut of the whole network: the supply
/// ([`audit_supply`]), each bank account's balance since the `start` cut,
/// and every acknowledged cross-shard transfer credited from its block.
/// Returns the supply's tally, if the network could be read.
async fn audit_money(
    rpc: &BTreeMap<ShardId, Vec<Client>>,
    genesis: &palisade_ledger::Genesis,
    bank: &[palisade_ledger::Address],
    start: &BTreeMap<ShardId, ShardCut>,
    acks: &[Ack],
    violations: &mut Vec<String>,
) -> Option<Supply> {
    let (tally, (cuts, chains, credits)) = audit_supply(rpc, genesis, bank, violations).await?;
    audit::money(start, &cuts, &chains, &credits, violations);
    audit::credited(acks, &credits, violations);
    Some(tally)
}

/// Runs chaos on `net` (every node must be up) and audits it. Progress
/// lines go to stderr.
pub fn run(net: &mut LocalNet, options: &ChaosOptions) -> Result<ChaosReport> {
    let runtime = crate::client_runtime()?;
    let rpc = clients(net)?;
    let genesis = net.genesis.clone();
    let bank = std::sync::Arc::new(Bank::new(&genesis, options.accounts_per_shard)?);
    let addresses = bank.addresses();
    let mut report = ChaosReport::default();

    // Set-up: everyone answers, the bank is funded, the start is cut: each
    // shard's bank accounts read at one height.
    let start: BTreeMap<ShardId, ShardCut> = runtime.block_on(async {
        for (shard, clients) in &rpc {
            if heights(*shard, clients).await.iter().any(Option::is_none) {
                bail!("every validator of shard {shard} must be up before chaos (see `palisade-testnet status`)");
            }
        }
        eprintln!("chaos: funding {} bank accounts", addresses.len());
        bank.fund(&genesis, &rpc).await?;
        let mut start = BTreeMap::new();
        for (shard, clients) in &rpc {
            let mine: BTreeSet<_> =
                addresses.iter().copied().filter(|a| a.shard(genesis.shard_count) == *shard).collect();
            // The validator that funded them.
            let client = clients.first().context("a shard without validators")?;
            start.insert(*shard, supply::cut(client, *shard, &mine).await.map_err(anyhow::Error::msg)?);
        }
        Ok(start)
    })?;

    // The workload and the faults, side by side.
    eprintln!("chaos: {} s of faults (seed {})", options.duration.as_secs(), options.seed);
    let stop = tokio::time::Instant::now() + options.duration;
    let mut senders = Vec::new();
    for (shard, clients) in &rpc {
        for s in 0..options.senders_per_shard {
            let own: Vec<usize> =
                (0..options.accounts_per_shard).filter(|i| i % options.senders_per_shard == s).collect();
            let (bank, clients, shard) = (bank.clone(), clients.clone(), *shard);
            let seed = options.seed ^ (u64::from(shard) << 32) ^ s as u64;
            senders.push(runtime.spawn(async move { bank.sender(shard, own, clients, seed, stop).await }));
        }
    }
    let mut injector = Injector::new(net, options.seed);
    let began = Instant::now();
    while began.elapsed() < options.duration {
        injector.step(net, began.elapsed())?;
        std::thread::sleep(options.fault_every);
    }
    injector.heal_all(net, began.elapsed())?;
    report.faults = std::mem::take(&mut injector.log);
    report.applied = std::mem::take(&mut injector.applied);
    let mut acks = Vec::new();
    for sender in senders {
        let done: SenderReport = runtime.block_on(sender).context("a sender panicked")?;
        acks.extend(done.acks);
        report.abandoned += done.abandoned;
        report.refused += done.refused;
    }
    report.acknowledged = acks.len();
    report.cross_shard = acks.iter().filter(|a| a.dest.is_some()).count();
    eprintln!("chaos: healed; {} transfers acknowledged; waiting for every validator to catch up", acks.len());

    // Catch-up, then the audit.
    runtime.block_on(async {
        let mut targets = BTreeMap::new();
        for (shard, clients) in &rpc {
            targets.insert(*shard, heights(*shard, clients).await.into_iter().flatten().max().unwrap_or(0));
        }
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        for (shard, clients) in &rpc {
            let target = targets.get(shard).copied().unwrap_or(0);
            loop {
                let now = heights(*shard, clients).await;
                if now.iter().all(|h| h.is_some_and(|h| h >= target)) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    report.violations.push(format!(
                        "liveness: shard {shard} validators at {now:?} did not all reach {target} within {CATCH_UP:?} \
                         of healing"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        for (shard, clients) in &rpc {
            let from = start.get(shard).map_or(0, |c| c.height);
            let to = heights(*shard, clients).await.into_iter().flatten().min().unwrap_or(0);
            report.heights.insert(*shard, (from, to));
            if to <= from {
                report.violations.push(format!("liveness: shard {shard} committed nothing during the run"));
            }
            let audit = audit::shard(*shard, clients, from, to, &addresses, &acks, &mut report.violations).await;
            report.fees += audit.bank_fees;
        }
        for (shard, clients) in &rpc {
            let mine: Vec<_> = addresses.iter().copied().filter(|a| a.shard(genesis.shard_count) == *shard).collect();
            let mut reference = None;
            for client in clients {
                match audit::balances(client, &mine).await {
                    Ok(balances) => match &reference {
                        None => reference = Some(balances),
                        Some(first) if *first != balances => report.violations.push(format!(
                            "agreement: {} reports other balances for shard {shard}'s bank accounts",
                            client.url()
                        )),
                        Some(_) => {}
                    },
                    Err(e) => report.violations.push(format!("balances: {e}")),
                }
            }
        }
        eprintln!("chaos: waiting for cross-shard receipts, then reading every shard's money");
        report.supply = audit_money(&rpc, &genesis, &addresses, &start, &acks, &mut report.violations).await;
    });
    Ok(report)
}

impl ChaosReport {
    /// A human summary.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let applied: Vec<String> = self.applied.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(out, "faults: {}", if applied.is_empty() { "none".into() } else { applied.join(", ") });
        let _ = writeln!(
            out,
            "transfers: {} acknowledged final ({} cross-shard), {} abandoned, {} refused; bank fees {} units",
            self.acknowledged, self.cross_shard, self.abandoned, self.refused, self.fees
        );
        for (shard, (from, to)) in &self.heights {
            let _ = writeln!(out, "shard {shard}: heights {from} → {to} audited on every validator");
        }
        if let Some(s) = &self.supply {
            let _ = writeln!(
                out,
                "supply: {} units at genesis; at heights {:?}: {} balances + {} stake + {} rewards + {} in flight",
                s.genesis, s.heights, s.balances, s.stake, s.rewards, s.in_flight
            );
        }
        for violation in &self.violations {
            let _ = writeln!(out, "violation: {violation}");
        }
        let _ = writeln!(out, "chaos: {} violations", self.violations.len());
        out
    }
}
