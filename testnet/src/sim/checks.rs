//! Invariants checked after every run (host duties are checked during it).
//!
//! * **Agreement**: no two honest nodes committed different blocks at one
//!   height of one shard.
//! * **Validity**: replaying the agreed chain of each shard from genesis,
//!   every block's certificate verifies, its bytes hash to the certified
//!   hash, and `apply_block` accepts it: only valid blocks are final.
//! * **Money**: after the replay, Σ balances + stake + rewards of each shard
//!   equals its genesis total (no transfer crosses shards yet).
//! * **Liveness**: after the heal, every honest node of every shard (each
//!   with at most `f` Byzantine members) committed
//!   [`LIVENESS_HEIGHTS`](super::scenario::LIVENESS_HEIGHTS) heights past
//!   the highest honest height at the heal, within the bound.
//! * **Evidence soundness**: every piece of evidence an honest replica
//!   emitted verifies against the committee and accuses a Byzantine
//!   validator whose behaviour signs conflicting messages.
//! * **Evidence completeness**: an honest replica that was fed two different
//!   blocks for one `(signer, height, view, phase)` slot while it had to keep
//!   both (current height, inside the vote window) emitted evidence for it.

use std::collections::BTreeMap;
use std::fmt;

use palisade_consensus::BlockHash;
use palisade_ledger::{Block, execute::apply_block};

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
    /// Money appeared or vanished.
    Money {
        /// Shard.
        shard: u32,
        /// At genesis.
        genesis_units: u128,
        /// After the replay.
        final_units: u128,
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
            Violation::Money { shard, genesis_units, final_units } => {
                write!(f, "money: shard {shard} held {genesis_units} units at genesis, {final_units} at the end")
            }
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
        }
    }
}

/// Every post-run check.
pub fn check(sim: &Sim) -> Vec<Violation> {
    let mut violations = agreement(sim);
    for shard in 0..sim.scenario.shards {
        violations.extend(replay(sim, shard));
    }
    violations.extend(liveness(sim));
    violations.extend(evidence(sim));
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

/// Replays the longest honest chain of `shard` from genesis: validity and
/// money conservation.
pub fn replay(sim: &Sim, shard: u32) -> Vec<Violation> {
    let Some(longest) = sim.nodes.iter().filter(|n| n.honest() && n.shard == shard).max_by_key(|n| n.chain.len())
    else {
        return Vec::new();
    };
    let committee = &sim.committees[shard as usize];
    let mut state = sim.genesis_states[shard as usize].clone();
    let genesis_units = state.money().unwrap_or(u128::MAX);
    for (height, certified) in &longest.chain {
        let invalid = |reason: String| vec![Violation::Validity { shard, height: *height, reason }];
        if let Err(e) = certified.certificate.verify(committee, &sim.genesis.chain_id, shard) {
            return invalid(format!("certificate does not verify: {e}"));
        }
        let block = match Block::from_bytes(&certified.block, usize::MAX) {
            Ok(block) => block,
            Err(e) => return invalid(format!("block does not decode: {e}")),
        };
        if block.hash().0 != certified.certificate.block_hash {
            return invalid("bytes do not hash to the certified hash".to_owned());
        }
        match apply_block(&state, &block) {
            Ok(outcome) => state.commit(&outcome),
            Err(e) => return invalid(format!("apply_block refuses it: {e}")),
        }
    }
    let final_units = state.money().unwrap_or(u128::MAX);
    if final_units != genesis_units {
        return vec![Violation::Money { shard, genesis_units, final_units }];
    }
    Vec::new()
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
            if let Err(e) = evidence.verify(node.committee(), &sim.genesis.chain_id, shard) {
                violations.push(unsound(format!("does not verify: {e}")));
                continue;
            }
            let accused = shard as usize * n + evidence.signer.0 as usize;
            match sim.scenario.byzantine_kind(accused) {
                Some(kind) if kind.may_equivocate() => {}
                Some(kind) => {
                    violations.push(unsound(format!("accuses node {accused} ({kind}), which never equivocates")))
                }
                None => violations.push(unsound(format!("accuses honest node {accused}"))),
            }
        }
        for (slot, hashes) in &node.seen {
            if hashes.len() < 2 {
                continue;
            }
            let reported = node.evidence.iter().any(|e| {
                let (height, view, phase) = e.slot();
                (e.signer, height, view, phase) == *slot
            });
            if !reported {
                violations.push(Violation::MissingEvidence { shard, node: node.id, slot: *slot });
            }
        }
    }
    violations
}
