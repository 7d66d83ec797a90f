//! Invariants checked after every run (host duties are checked during it).
//!
//! * **Agreement**: no two honest nodes committed different blocks at one
//!   height of one shard.
//! * **Validity**: replaying the agreed chain of each shard from genesis,
//!   every block's certificate verifies, its bytes hash to the certified
//!   hash, and `apply_block` accepts it: only valid blocks are final.
//! * **Supply**: the replay walks every shard's agreed chain at once, one
//!   block at a time, a destination's block only after the source blocks
//!   whose receipts it credits (receipts come only from blocks honest nodes
//!   committed, so that order exists). Before the first block and after
//!   every block: genesis total supply = Σ over shards of balances + stake +
//!   rewards + the receipts emitted and not yet credited (in flight). A
//!   block that mints or loses money is named by shard and height. Each
//!   credit must match, field for field, a receipt in flight: one no final
//!   source block emitted, or emitted differently, is flagged at its block.
//!   A block crediting a source block that its source's agreed chain never
//!   reaches is flagged, then replayed anyway, so the supply check also
//!   names the money it conjures.
//! * **Durability**: every block an honest node reported final (kept across
//!   its crashes) is in its store as reported: nothing acknowledged is lost.
//! * **Exactly once**: read from the blocks alone (not from the state's
//!   records), no receipt id is credited twice on one shard's agreed chain.
//! * **Receipt liveness**: when every shard is live after the heal, every
//!   receipt emitted at or below its source's height at the heal has been
//!   credited by the end.
//! * **Liveness**: after the heal, every honest node of every shard (each
//!   with at most `f` Byzantine members) committed
//!   [`LIVENESS_HEIGHTS`](super::scenario::LIVENESS_HEIGHTS) heights past
//!   the highest honest height at the heal, within the bound.
//! * **Evidence soundness**: every piece of evidence an honest node
//!   published verifies against the committee and accuses a Byzantine
//!   validator whose behaviour signs conflicting messages.
//! * **Evidence completeness**: an honest replica that accepted two
//!   different blocks for one `(signer, height, view, phase)` slot while it
//!   had to keep both (current height, inside the vote window) detected the
//!   equivocation, unless the signer is jailed by now.
//! * **Slashing**: read from the blocks of each agreed chain, no honest
//!   validator is ever slashed, no validator twice; and every validator an
//!   honest replica proved an equivocation against is slashed once the
//!   shard committed [`SLASH_WITHIN`] heights past the offence.

use std::collections::BTreeMap;
use std::fmt;

use palisade_consensus::{BlockHash, Decision};
use palisade_ledger::{Block, Hash, Receipt, ShardId, execute::apply_block, mem::MemState, receipt_proof};

use super::node::Slot;
use super::runner::Sim;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two blocks final at one height.
    Agreement {
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// (node, hash) of the first commit seen.
        first: (usize, BlockHash),
        /// (node, hash) of the conflicting one.
        second: (usize, BlockHash),
    },
    /// A final block that the honest replay refuses.
    Validity {
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// Money appeared or vanished: Σ money + in flight ≠ total supply.
    Money {
        /// The block after which it first happened, as (shard, height);
        /// `None` at genesis.
        after: Option<(u32, u64)>,
        /// The genesis total supply.
        supply_units: u128,
        /// Σ balances + stake + rewards over shards, plus receipts in flight.
        found_units: u128,
    },
    /// A block credits a receipt that is not in flight: never emitted by a
    /// final source block, emitted with other contents, or already credited.
    UnbackedCredit {
        /// The crediting shard.
        shard: u32,
        /// Its height.
        height: u64,
        /// The receipt id.
        id: Hash,
        /// Why.
        reason: String,
    },
    /// A block credits receipts of a source block that the source shard's
    /// agreed chain never reaches.
    MissingSource {
        /// The crediting shard.
        shard: u32,
        /// Its height.
        height: u64,
        /// The source block, as (shard, height).
        source: (u32, u64),
    },
    /// One shard's agreed chain credits a receipt twice.
    CreditedTwice {
        /// Shard.
        shard: u32,
        /// The receipt id.
        id: Hash,
        /// The heights that credit it.
        heights: (u64, u64),
    },
    /// Receipts emitted before the heal were never credited although every
    /// shard was live.
    ReceiptNotCredited {
        /// The destination.
        dest: u32,
        /// How many.
        count: usize,
        /// The first: (source shard, source height, id).
        first: (u32, u64, Hash),
    },
    /// A shard did not progress after the heal.
    Liveness {
        /// Shard.
        shard: u32,
        /// Honest height at the heal.
        base: u64,
        /// Lowest honest height at the end.
        lowest: u64,
        /// The node that lags most.
        node: usize,
    },
    /// Evidence that does not verify or accuses an honest validator.
    UnsoundEvidence {
        /// Shard.
        shard: u32,
        /// The reporting node.
        reporter: usize,
        /// Why.
        reason: String,
    },
    /// An equivocation an honest replica saw but did not report.
    MissingEvidence {
        /// Shard.
        shard: u32,
        /// The node that saw it.
        node: usize,
        /// The slot.
        slot: Slot,
    },
    /// A slashing that should not have happened, or should have.
    Slashing {
        /// Shard.
        shard: u32,
        /// The height it is judged at.
        height: u64,
        /// What.
        what: String,
    },
    /// An honest host's duty failed (bad certificate, out-of-order commit,
    /// sent before persisting, …).
    Host {
        /// Shard.
        shard: u32,
        /// Node.
        node: usize,
        /// What.
        what: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |h: &BlockHash| h.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Violation::Agreement { shard, height, first, second } => write!(
                f,
                "agreement: shard {shard} height {height}: node {} committed {}, node {} committed {}",
                first.0,
                short(&first.1),
                second.0,
                short(&second.1)
            ),
            Violation::Validity { shard, height, reason } => {
                write!(f, "validity: shard {shard} height {height}: {reason}")
            }
            Violation::Money { after, supply_units, found_units } => {
                let when = match after {
                    Some((shard, height)) => format!("after shard {shard} height {height}"),
                    None => "at genesis".to_owned(),
                };
                write!(
                    f,
                    "money: {when}, balances + stake + rewards + in flight = {found_units} units, supply {supply_units}"
                )
            }
            Violation::UnbackedCredit { shard, height, id, reason } => {
                write!(f, "unbacked credit: shard {shard} height {height} credits receipt {id}: {reason}")
            }
            Violation::MissingSource { shard, height, source } => write!(
                f,
                "missing source: shard {shard} height {height} credits receipts of shard {} height {}, beyond its agreed chain",
                source.0, source.1
            ),
            Violation::CreditedTwice { shard, id, heights } => {
                write!(f, "exactly once: shard {shard} credits receipt {id} at heights {} and {}", heights.0, heights.1)
            }
            Violation::ReceiptNotCredited { dest, count, first } => write!(
                f,
                "receipt liveness: {count} receipt(s) for shard {dest} emitted before the heal were never credited, first {} from shard {} height {}",
                first.2, first.0, first.1
            ),
            Violation::Liveness { shard, base, lowest, node } => {
                write!(f, "liveness: shard {shard} was at height {base} at the heal; node {node} reached only {lowest}")
            }
            Violation::UnsoundEvidence { shard, reporter, reason } => {
                write!(f, "evidence soundness: shard {shard}, reported by node {reporter}: {reason}")
            }
            Violation::MissingEvidence { shard, node, slot } => write!(
                f,
                "evidence completeness: shard {shard} node {node} saw validator {} sign two blocks at height {} view {} {:?} and reported nothing",
                slot.0.0, slot.1, slot.2, slot.3
            ),
            Violation::Host { shard, node, what } => write!(f, "host: shard {shard} node {node}: {what}"),
            Violation::Slashing { shard, height, what } => write!(f, "slashing: shard {shard} height {height}: {what}"),
        }
    }
}

/// Every post-run check.
pub fn check(sim: &Sim) -> Vec<Violation> {
    let mut violations = agreement(sim);
    violations.extend(durability(sim));
    let live = liveness(sim);
    let replayed = replay(sim);
    violations.extend(replayed.violations.iter().cloned());
    violations.extend(exactly_once(sim));
    if live.is_empty() && replayed.complete {
        violations.extend(receipt_liveness(sim, &replayed.in_flight));
    }
    violations.extend(live);
    violations.extend(evidence(sim));
    violations.extend(slashing(sim));
    violations
}

/// Heights after an offence by which its evidence must be final (every
/// honest node pools it at once; some honest leader proposes it).
pub const SLASH_WITHIN: u64 = 20;

/// No honest validator slashed, none twice, every proven equivocator
/// slashed (see the module docs).
pub fn slashing(sim: &Sim) -> Vec<Violation> {
    let mut violations = Vec::new();
    let n = sim.scenario.committee_size as usize;
    for shard in 0..sim.scenario.shards {
        let chain = agreed_chain(sim, shard);
        let tip = chain.len() as u64;
        let mut slashed: BTreeMap<u32, u64> = BTreeMap::new();
        for decision in &chain {
            let Ok(block) = Block::from_bytes(&decision.block, usize::MAX) else { continue };
            let height = block.header.height;
            for evidence in &block.evidence {
                let offender = evidence.signer.0;
                let node = shard as usize * n + offender as usize;
                let bad = |what: String| Violation::Slashing { shard, height, what };
                if let Some(first) = slashed.insert(offender, height) {
                    violations.push(bad(format!("validator {offender} slashed again (first at height {first})")));
                }
                if !sim.scenario.byzantine_kind(node).is_some_and(|kind| kind.may_equivocate()) {
                    violations.push(bad(format!("honest validator {offender} (node {node}) slashed")));
                }
            }
        }
        let proven = sim
            .nodes
            .iter()
            .filter(|node| node.honest() && node.shard == shard)
            .flat_map(|node| node.evidence.iter().map(|e| (e.signer.0, e.slot().0)));
        let mut first_offence: BTreeMap<u32, u64> = BTreeMap::new();
        for (offender, height) in proven {
            let first = first_offence.entry(offender).or_insert(height);
            *first = (*first).min(height);
        }
        for (offender, height) in first_offence {
            if tip >= height.saturating_add(SLASH_WITHIN) && !slashed.contains_key(&offender) {
                violations.push(Violation::Slashing {
                    shard,
                    height: tip,
                    what: format!(
                        "validator {offender} equivocated at height {height} (proven by an honest replica) and is \
                         not slashed by height {tip}"
                    ),
                });
            }
        }
    }
    violations
}

/// Agreement across every honest node's committed chain.
pub fn agreement(sim: &Sim) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut first: BTreeMap<(u32, u64), (usize, BlockHash)> = BTreeMap::new();
    for node in sim.nodes.iter().filter(|n| n.honest()) {
        for (height, certified) in &node.chain {
            let hash = certified.certificate.block_hash;
            let entry = *first.entry((node.shard, *height)).or_insert((node.id, hash));
            if entry.1 != hash {
                violations.push(Violation::Agreement {
                    shard: node.shard,
                    height: *height,
                    first: entry,
                    second: (node.id, hash),
                });
            }
        }
    }
    violations
}

/// Every block an honest node reported final is in its store, as reported.
pub fn durability(sim: &Sim) -> Vec<Violation> {
    let mut violations = Vec::new();
    for node in sim.nodes.iter().filter(|n| n.honest()) {
        let stored = node.store().chain();
        for (height, acknowledged) in &node.chain {
            if stored.get(height).is_none_or(|(block, _)| *block != acknowledged.block) {
                violations.push(Violation::Host {
                    shard: node.shard,
                    node: node.id,
                    what: format!("height {height} was reported final but its store does not hold that block"),
                });
            }
        }
    }
    violations
}

/// The agreed chain of `shard`: the longest chain of its honest nodes
/// (agreement makes every other a prefix of it).
fn agreed_chain(sim: &Sim, shard: u32) -> Vec<&Decision> {
    sim.nodes
        .iter()
        .filter(|n| n.honest() && n.shard == shard)
        .max_by_key(|n| n.chain.len())
        .map(|n| n.chain.values().collect())
        .unwrap_or_default()
}

/// What the replay found.
pub struct Replayed {
    /// Validity, supply and credit violations.
    pub violations: Vec<Violation>,
    /// Receipts emitted and not credited at the end, by id.
    pub in_flight: BTreeMap<Hash, Receipt>,
    /// Every block of every agreed chain was replayed.
    pub complete: bool,
}

/// One shard's agreed chain as the replay walks it.
struct Walk<'a> {
    chain: Vec<&'a Decision>,
    /// Blocks replayed so far (the state's height).
    done: usize,
    state: MemState,
    /// `state.money()`, kept current.
    money: u128,
    /// A block was refused: the rest of this chain is not replayed.
    stopped: bool,
}

/// What one step of a walk did.
enum Step {
    /// It replayed a block.
    Applied,
    /// Its next block credits a source block not replayed yet.
    Waiting,
    /// Nothing more to replay (the end, or a refused block).
    Over,
}

/// Replays every shard's agreed chain from genesis, in an order where each
/// block comes after the source blocks it credits; checks validity, the
/// supply and every credit after each block (see the module docs).
pub fn replay(sim: &Sim) -> Replayed {
    let mut replay = Replay::new(sim);
    let mut complete = true;
    loop {
        let mut progressed = false;
        for shard in 0..replay.walks.len() {
            while let Step::Applied = replay.step(shard, false) {
                progressed = true;
            }
        }
        if progressed {
            continue;
        }
        // Every walk left waits for a source block no walk can supply: the
        // first is reported and replayed anyway, so the supply and credit
        // checks name what it does to the money.
        let Some((shard, height, source)) = replay.first_waiting() else { break };
        complete = false;
        if replay.walks.get(source.0 as usize).is_some_and(|w| w.stopped) {
            // Its source stopped on an invalid block (reported): nothing
            // more to learn from this chain.
            replay.walks[shard].stopped = true;
            continue;
        }
        replay.violations.push(Violation::MissingSource { shard: shard as u32, height, source });
        replay.step(shard, true);
    }
    complete &= replay.walks.iter().all(|w| !w.stopped);
    Replayed { violations: replay.violations, in_flight: replay.in_flight, complete }
}

/// The state of a [`replay`].
struct Replay<'a> {
    sim: &'a Sim,
    walks: Vec<Walk<'a>>,
    supply: u128,
    in_flight: BTreeMap<Hash, Receipt>,
    in_flight_units: u128,
    /// The supply check failed once: later blocks would only repeat it.
    unbalanced: bool,
    violations: Vec<Violation>,
}

impl<'a> Replay<'a> {
    fn new(sim: &'a Sim) -> Replay<'a> {
        let walks: Vec<Walk<'a>> = (0..sim.scenario.shards)
            .map(|shard| {
                let state = sim.genesis_states[shard as usize].clone();
                let money = state.money().unwrap_or(u128::MAX);
                Walk { chain: agreed_chain(sim, shard), done: 0, state, money, stopped: false }
            })
            .collect();
        let supply = sim.genesis.total_supply().map_or(u128::MAX, |a| u128::from(a.units()));
        let mut replay = Replay {
            sim,
            walks,
            supply,
            in_flight: BTreeMap::new(),
            in_flight_units: 0,
            unbalanced: false,
            violations: Vec::new(),
        };
        replay.check_supply(None);
        replay
    }

    /// The first walk that waits: (shard, its next height, the source block
    /// it waits for).
    fn first_waiting(&self) -> Option<(usize, u64, (ShardId, u64))> {
        self.walks.iter().enumerate().find_map(|(shard, walk)| {
            let next = walk.chain.get(walk.done).filter(|_| !walk.stopped)?;
            let block = Block::from_bytes(&next.block, usize::MAX).ok()?;
            Some((shard, walk.done as u64 + 1, self.missing_source(&block)?))
        })
    }

    /// The first source block `block` credits that is not replayed yet.
    fn missing_source(&self, block: &Block) -> Option<(ShardId, u64)> {
        block.incoming.iter().map(|b| b.source()).find(|(source, height)| {
            // A batch from this or an unknown shard is `apply_block`'s to refuse.
            self.walks.get(*source as usize).is_some_and(|w| (w.done as u64) < *height) && *source != block.header.shard
        })
    }

    /// Replays the next block of `shard`'s chain, if its sources are
    /// replayed (or `force`).
    fn step(&mut self, shard: usize, force: bool) -> Step {
        let sim = self.sim;
        let Some(walk) = self.walks.get(shard) else { return Step::Over };
        let Some(certified) = walk.chain.get(walk.done).copied().filter(|_| !walk.stopped) else {
            return Step::Over;
        };
        let (shard_id, height) = (shard as u32, walk.done as u64 + 1);
        let block = match self.certified_block(shard_id, height, certified) {
            Ok(block) => block,
            Err(reason) => return self.stop(shard, height, reason),
        };
        if !force && self.missing_source(&block).is_some() {
            return Step::Waiting;
        }
        let outcome = match apply_block(&self.walks[shard].state, &block) {
            Ok(outcome) => outcome,
            Err(e) => return self.stop(shard, height, format!("apply_block refuses it: {e}")),
        };
        let walk = &mut self.walks[shard];
        walk.state.commit(&outcome);
        walk.money = walk.state.money().unwrap_or(u128::MAX);
        walk.done += 1;
        self.account(shard_id, height, &block, sim.scenario.shards);
        self.check_supply(Some((shard_id, height)));
        Step::Applied
    }

    /// The block at `height` of `shard`, if its certificate verifies and its
    /// bytes are the certified block.
    fn certified_block(&self, shard: u32, height: u64, certified: &Decision) -> Result<Block, String> {
        // The committee of the walked state: genesis minus the jailed so far.
        let state = &self.walks[shard as usize].state;
        let committee =
            &palisade_ledger::committee::current(state).map_err(|e| format!("reading the committee: {e}"))?;
        if certified.certificate.height != height {
            return Err(format!("certificate is for height {}", certified.certificate.height));
        }
        if let Err(e) = certified.certificate.verify(committee, &self.sim.genesis.chain_id, shard) {
            return Err(format!("certificate does not verify: {e}"));
        }
        let block =
            Block::from_bytes(&certified.block, usize::MAX).map_err(|e| format!("block does not decode: {e}"))?;
        if block.hash().0 != certified.certificate.block_hash {
            return Err("bytes do not hash to the certified hash".to_owned());
        }
        Ok(block)
    }

    fn stop(&mut self, shard: usize, height: u64, reason: String) -> Step {
        self.violations.push(Violation::Validity { shard: shard as u32, height, reason });
        if let Some(walk) = self.walks.get_mut(shard) {
            walk.stopped = true;
        }
        Step::Over
    }

    /// Moves what `block` credits out of flight (each must be there, as
    /// emitted) and what it emits into flight.
    fn account(&mut self, shard: u32, height: u64, block: &Block, shard_count: u32) {
        for proven in block.incoming.iter().flat_map(|b| &b.receipts) {
            let credited = &proven.receipt;
            let unbacked =
                |reason: &str| Violation::UnbackedCredit { shard, height, id: credited.id, reason: reason.into() };
            match self.in_flight.remove(&credited.id) {
                Some(emitted) if emitted == *credited && emitted.dest_shard == shard => {
                    self.in_flight_units = self.in_flight_units.saturating_sub(u128::from(emitted.amount.units()));
                }
                Some(emitted) => {
                    self.violations.push(unbacked(&format!("the source emitted {emitted:?}")));
                    self.in_flight.insert(emitted.id, emitted);
                }
                None => self.violations.push(unbacked("not in flight (never emitted by a final block, or credited)")),
            }
        }
        for emitted in receipt_proof::outgoing(block, shard_count) {
            self.in_flight_units = self.in_flight_units.saturating_add(u128::from(emitted.amount.units()));
            self.in_flight.insert(emitted.id, emitted);
        }
    }

    /// Total supply = Σ money + in flight, on the cut the replay is at.
    fn check_supply(&mut self, after: Option<(u32, u64)>) {
        if self.unbalanced {
            return;
        }
        let money = self.walks.iter().fold(0u128, |sum, w| sum.saturating_add(w.money));
        let found_units = money.saturating_add(self.in_flight_units);
        if found_units != self.supply {
            self.unbalanced = true;
            self.violations.push(Violation::Money { after, supply_units: self.supply, found_units });
        }
    }
}

/// No receipt id credited twice by one shard's agreed chain, read from the
/// blocks (a replay that trusted `apply_block`'s replay protection would not
/// see a double credit it let through).
pub fn exactly_once(sim: &Sim) -> Vec<Violation> {
    let mut violations = Vec::new();
    for shard in 0..sim.scenario.shards {
        let mut credited: BTreeMap<Hash, u64> = BTreeMap::new();
        for (index, certified) in agreed_chain(sim, shard).into_iter().enumerate() {
            let Ok(block) = Block::from_bytes(&certified.block, usize::MAX) else { continue };
            // The chain position, not the header's claim.
            let height = index as u64 + 1;
            for proven in block.incoming.iter().flat_map(|b| &b.receipts) {
                let id = proven.receipt.id;
                if let Some(first) = credited.insert(id, height) {
                    violations.push(Violation::CreditedTwice { shard, id, heights: (first, height) });
                }
            }
        }
    }
    violations
}

/// Receipts still in flight at the end that were emitted at or below their
/// source's height at the heal (only meaningful when every shard was live).
pub fn receipt_liveness(sim: &Sim, in_flight: &BTreeMap<Hash, Receipt>) -> Vec<Violation> {
    let Some(base) = &sim.liveness_base else {
        return Vec::new();
    };
    let mut lost: BTreeMap<u32, (usize, (u32, u64, Hash))> = BTreeMap::new();
    for r in in_flight.values() {
        if base.get(r.source_shard as usize).is_some_and(|b| r.source_height <= *b) {
            let first = (r.source_shard, r.source_height, r.id);
            let entry = lost.entry(r.dest_shard).or_insert((0, first));
            entry.0 += 1;
            entry.1 = entry.1.min(first);
        }
    }
    lost.into_iter().map(|(dest, (count, first))| Violation::ReceiptNotCredited { dest, count, first }).collect()
}

/// Liveness after the heal.
pub fn liveness(sim: &Sim) -> Vec<Violation> {
    let Some(base) = &sim.liveness_base else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    for shard in 0..sim.scenario.shards {
        let base = base[shard as usize];
        let laggard = sim.nodes.iter().filter(|n| n.honest() && n.shard == shard).min_by_key(|n| (n.height(), n.id));
        if let Some(node) = laggard
            && node.height() < base + super::scenario::LIVENESS_HEIGHTS
        {
            violations.push(Violation::Liveness { shard, base, lowest: node.height(), node: node.id });
        }
    }
    violations
}

/// Evidence soundness and completeness.
pub fn evidence(sim: &Sim) -> Vec<Violation> {
    let mut violations = Vec::new();
    let n = sim.scenario.committee_size as usize;
    for node in sim.nodes.iter().filter(|n| n.honest()) {
        let shard = node.shard;
        for evidence in &node.evidence {
            let unsound = |reason: String| Violation::UnsoundEvidence { shard, reporter: node.id, reason };
            // Signed under the committee of its offence's epoch (staking
            // renumbers members at each hand-over).
            let (offence, _, _) = evidence.slot();
            let judge = palisade_ledger::committee::for_offence(node.store().mem_state(), offence)
                .ok()
                .flatten()
                .unwrap_or_else(|| node.committee().clone());
            if let Err(e) = evidence.verify(&judge, &sim.genesis.chain_id, shard) {
                violations.push(unsound(format!("does not verify: {e}")));
                continue;
            }
            // The accused node: the genesis seat of the signer's key.
            let key = judge.validator(evidence.signer).map(|v| v.public_key);
            let seats = sim.genesis.committee(shard).map(|c| c.validators.as_slice()).unwrap_or_default();
            let Some(seat) = seats.iter().position(|v| Some(v.address.0) == key) else {
                violations.push(unsound(format!("accuses {}, no genesis validator", evidence.signer)));
                continue;
            };
            let accused = shard as usize * n + seat;
            match sim.scenario.byzantine_kind(accused) {
                Some(kind) if kind.may_equivocate() => {}
                Some(kind) => {
                    violations.push(unsound(format!("accuses node {accused} ({kind}), which never equivocates")))
                }
                None => violations.push(unsound(format!("accuses honest node {accused}"))),
            }
        }
        for (slot, hashes) in &node.seen {
            // A jailed signer's votes weigh nothing and it was punished
            // already: replicas do not report it again.
            if hashes.len() < 2 || !node.committee().is_active(slot.0) {
                continue;
            }
            // Detected is enough: the core pools and publishes it unless
            // the same evidence reached it from a peer first.
            let reported = node.detected.contains(slot);
            if !reported {
                violations.push(Violation::MissingEvidence { shard, node: node.id, slot: *slot });
            }
        }
    }
    violations
}
