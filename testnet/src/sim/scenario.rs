//! What a seed means: the network's shape (shards, committee size), its
//! weather (delays, drops, duplicates, partitions), the crashes (sometimes
//! enough of one shard's validators to halt it for a while), whether honest
//! nodes relay receipts or other shards must pull them, and which validators
//! run which Byzantine module. Everything is drawn from the seed, so
//! `palisade-testnet sim --seed S` replays a failure exactly.

use std::fmt;

use super::byzantine::Kind;
use super::rng::SimRng;

/// Heights every shard must commit after the network heals.
pub const LIVENESS_HEIGHTS: u64 = 3;
/// Simulated time allowed for them.
pub const LIVENESS_BOUND_MS: u64 = 30_000;

/// One crash of an honest validator and its restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Global node index.
    pub node: usize,
    /// When it stops.
    pub at_ms: u64,
    /// When it comes back (at the latest when the network heals).
    pub restart_ms: u64,
}

/// A period in which one node's synced writes are slow (its host reports
/// each `Persist` as taking `took_ms`; others take 1 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowWrites {
    /// Global node index.
    pub node: usize,
    /// When its disk turns slow.
    pub from_ms: u64,
    /// When it is fast again.
    pub until_ms: u64,
    /// How long each synced write takes meanwhile.
    pub took_ms: u64,
}

/// A corrupted state value on one node's disk, and its repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tamper {
    /// Global node index.
    pub node: usize,
    /// When the value is corrupted (the node stops and restarts on it).
    pub at_ms: u64,
    /// When an operator restores it (stop, repair, restart).
    pub repair_ms: u64,
}

/// One partition: nodes in `side` cannot talk to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Global node indices cut off from the rest.
    pub side: Vec<usize>,
    /// When it forms.
    pub from_ms: u64,
    /// When it heals.
    pub until_ms: u64,
}

/// A run's full description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The seed it came from.
    pub seed: u64,
    /// Number of shards.
    pub shards: u32,
    /// Validators per shard (equal stake).
    pub committee_size: u32,
    /// Smallest one-way message delay.
    pub min_delay_ms: u64,
    /// Largest one-way message delay.
    pub max_delay_ms: u64,
    /// Per-mille chance a message is lost before the network heals.
    pub drop_per_mille: u64,
    /// Per-mille chance a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Partitions before the heal.
    pub partitions: Vec<Partition>,
    /// Crashes before the heal.
    pub crashes: Vec<Crash>,
    /// Byzantine validators: (global node index, behaviour).
    pub byzantine: Vec<(usize, Kind)>,
    /// When partitions end, drops stop and crashed nodes are back.
    pub heal_ms: u64,
    /// One transfer per shard every this many ms.
    pub tx_interval_ms: u64,
    /// The leader waits this long before building a block.
    pub block_interval_ms: u64,
    /// Do honest nodes relay the receipts of the blocks they commit? If not,
    /// destinations find every receipt by pulling.
    pub push_receipts: bool,
    /// Honest validators whose clock runs this many ms ahead of everyone
    /// else's, for the whole run: (global node index, ms ahead).
    pub clock_skew: Vec<(usize, u64)>,
    /// Slow disks (see [`SlowWrites`]).
    pub slow_writes: Vec<SlowWrites>,
    /// Corrupted state values (see [`Tamper`]).
    pub tampering: Vec<Tamper>,
    /// Staking on (one shard only): validators unbond, leave the committee
    /// at an epoch's end and bond again ([`super::workload`]).
    pub staking: bool,
}

impl Scenario {
    /// The scenario of `seed`: shapes and faults vary per seed.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = SimRng::new(seed);
        let shards = rng.range(1, 3) as u32;
        let committee_size = rng.range(4, 7) as u32;
        let n = committee_size as usize;
        let f = (n - 1) / 3;
        let nodes = shards as usize * n;
        let min_delay_ms = rng.range(1, 5);
        let max_delay_ms = min_delay_ms + rng.range(0, 50);
        let calm = rng.chance(200);
        let drop_per_mille = if calm { 0 } else { rng.range(0, 150) };
        let duplicate_per_mille = if calm { 0 } else { rng.range(0, 100) };
        let heal_ms = rng.range(800, 2_000);

        let mut byzantine = Vec::new();
        for shard in 0..shards as usize {
            if rng.chance(400) {
                continue;
            }
            let count = rng.range(1, f as u64) as usize;
            let mut members: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut members);
            for &member in members.iter().take(count) {
                let kind = Kind::ALL[rng.index(Kind::ALL.len())];
                byzantine.push((shard * n + member, kind));
            }
        }
        byzantine.sort();
        let is_byzantine = |node: usize| byzantine.iter().any(|(b, _)| *b == node);

        let mut crashes = Vec::new();
        if !calm {
            for _ in 0..rng.range(0, 2 * shards as u64) {
                let node = rng.index(nodes);
                if is_byzantine(node) || crashes.iter().any(|c: &Crash| c.node == node) {
                    continue;
                }
                let at_ms = rng.range(0, heal_ms);
                let restart_ms = (at_ms + rng.range(50, 1_500)).min(heal_ms);
                crashes.push(Crash { node, at_ms, restart_ms });
            }
        }
        if shards > 1 && !calm && rng.chance(150) {
            // A halted destination: f + 1 validators of one shard down at
            // once, so receipts for it pile up until they are back. Only in a
            // shard with no other fault: the restarted lose the bytes of any
            // block they prepared, and the consensus crate re-proposes a
            // prepared block only from a member that still holds it (see its
            // deviations), so that member must be honest and up.
            let quiet = |shard: &usize| {
                (shard * n..(shard + 1) * n).all(|node| !is_byzantine(node) && !crashes.iter().any(|c| c.node == node))
            };
            let candidates: Vec<usize> = (0..shards as usize).filter(quiet).collect();
            if !candidates.is_empty() {
                let shard = candidates[rng.index(candidates.len())];
                let at_ms = rng.range(0, heal_ms / 2);
                let restart_ms = (at_ms + rng.range(300, 1_200)).min(heal_ms);
                for node in shard * n..=shard * n + f {
                    crashes.push(Crash { node, at_ms, restart_ms });
                }
            }
        }
        let mut partitions = Vec::new();
        if !calm {
            for _ in 0..rng.range(0, 2) {
                let size = rng.range(1, (nodes / 2).max(1) as u64) as usize;
                let mut all: Vec<usize> = (0..nodes).collect();
                rng.shuffle(&mut all);
                let mut side: Vec<usize> = all.into_iter().take(size).collect();
                side.sort();
                let from_ms = rng.range(0, heal_ms);
                let until_ms = (from_ms + rng.range(100, 1_500)).min(heal_ms);
                partitions.push(Partition { side, from_ms, until_ms });
            }
        }
        let tx_interval_ms = rng.range(10, 60);
        let push_receipts = !rng.chance(150);
        // Drawn last, so the draws above (and the seeds they shaped) stay.
        let mut slow_writes = Vec::new();
        if !calm && rng.chance(100) {
            // A slow disk on an honest node, over by the heal: it may
            // quarantine itself (a write as long as the sustain period
            // trips it at once) and must be back within the liveness bound.
            let node = rng.index(nodes);
            if !is_byzantine(node) {
                let from_ms = rng.range(0, heal_ms);
                let until_ms = (from_ms + rng.range(200, 1_500)).min(heal_ms);
                slow_writes.push(SlowWrites { node, from_ms, until_ms, took_ms: rng.range(600, 4_000) });
            }
        }
        Scenario {
            seed,
            shards,
            committee_size,
            min_delay_ms,
            max_delay_ms,
            drop_per_mille,
            duplicate_per_mille,
            partitions,
            crashes,
            byzantine,
            heal_ms,
            tx_interval_ms,
            block_interval_ms: 50,
            push_receipts,
            clock_skew: Vec::new(),
            slow_writes,
            tampering: Vec::new(),
            // Odd single-shard seeds with a member to spare stake and unstake
            // (drawn without the generator, so other seeds stay as they were).
            staking: shards == 1 && committee_size >= 5 && seed % 2 == 1,
        }
    }

    /// A calm network with the given Byzantine validators and nothing else
    /// (for the per-module tests).
    pub fn calm(seed: u64, shards: u32, committee_size: u32, byzantine: Vec<(usize, Kind)>) -> Scenario {
        Scenario {
            seed,
            shards,
            committee_size,
            min_delay_ms: 1,
            max_delay_ms: 20,
            drop_per_mille: 0,
            duplicate_per_mille: 50,
            partitions: Vec::new(),
            crashes: Vec::new(),
            byzantine,
            heal_ms: 1_500,
            tx_interval_ms: 20,
            block_interval_ms: 50,
            push_receipts: true,
            clock_skew: Vec::new(),
            slow_writes: Vec::new(),
            tampering: Vec::new(),
            staking: false,
        }
    }

    /// How far ahead of the others node `node`'s clock runs, ms.
    pub fn skew_ms(&self, node: usize) -> u64 {
        self.clock_skew.iter().find(|(n, _)| *n == node).map_or(0, |(_, ms)| *ms)
    }

    /// How long node `node`'s synced write takes at `now_ms`.
    pub fn write_ms(&self, node: usize, now_ms: u64) -> u64 {
        self.slow_writes
            .iter()
            .find(|s| s.node == node && (s.from_ms..s.until_ms).contains(&now_ms))
            .map_or(1, |s| s.took_ms)
    }

    /// The behaviour of global node `node`, if Byzantine.
    pub fn byzantine_kind(&self, node: usize) -> Option<Kind> {
        self.byzantine.iter().find(|(b, _)| *b == node).map(|(_, kind)| *kind)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} shard(s) × {} validators, delay {}..{} ms, drop {}‰, dup {}‰, {} partition(s), {} crash(es), heal at {} ms",
            self.seed,
            self.shards,
            self.committee_size,
            self.min_delay_ms,
            self.max_delay_ms,
            self.drop_per_mille,
            self.duplicate_per_mille,
            self.partitions.len(),
            self.crashes.len(),
            self.heal_ms
        )?;
        if !self.push_receipts {
            write!(f, ", receipts by pull only")?;
        }
        if self.staking {
            write!(f, ", staking (validators leave and rejoin by epoch)")?;
        }
        for (node, kind) in &self.byzantine {
            write!(f, ", node {node} {kind}")?;
        }
        for (node, ms) in &self.clock_skew {
            write!(f, ", node {node}'s clock {ms} ms ahead")?;
        }
        for t in &self.tampering {
            write!(f, ", node {}'s state corrupted from {} to {} ms", t.node, t.at_ms, t.repair_ms)?;
        }
        for s in &self.slow_writes {
            write!(f, ", node {}'s writes take {} ms from {} to {} ms", s.node, s.took_ms, s.from_ms, s.until_ms)?;
        }
        Ok(())
    }
}
