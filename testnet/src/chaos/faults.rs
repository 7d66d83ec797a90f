//! The fault injector: kills, pauses and stops random validators of a local
//! network and later heals them, never leaving more than `f` validators of
//! one shard faulty at once (so every shard keeps a quorum and must keep
//! committing).
//!
//! Decisions are seeded ([`SimRng`]), so a run's schedule of faults can be
//! replayed; the network's timing is real and is not.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use crate::local::LocalNet;
use crate::sim::rng::SimRng;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL; healed by a restart.
    Kill,
    /// SIGSTOP; healed by SIGCONT.
    Pause,
    /// SIGTERM (graceful); healed by a restart.
    Stop,
}

/// A fault in place, and when it heals.
#[derive(Clone, Debug)]
struct Active {
    fault: Fault,
    heal_at: Duration,
}

/// Picks and applies faults; heals them when due.
pub struct Injector {
    rng: SimRng,
    /// Per shard, how many validators may be faulty at once.
    budget: BTreeMap<u32, usize>,
    active: BTreeMap<String, Active>,
    /// One line per action, for the report.
    pub log: Vec<String>,
    /// Faults applied, by kind.
    pub applied: BTreeMap<&'static str, usize>,
}

/// Most validators of a committee of `n` that may fail: `f = ⌊(n − 1) / 3⌋`.
pub fn tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

impl Injector {
    /// An injector for `net`'s committees.
    pub fn new(net: &LocalNet, seed: u64) -> Injector {
        let mut sizes = BTreeMap::new();
        for node in net.validators() {
            *sizes.entry(node.shard).or_insert(0usize) += 1;
        }
        let budget = sizes.into_iter().map(|(shard, n)| (shard, tolerated(n))).collect();
        Injector { rng: SimRng::new(seed), budget, active: BTreeMap::new(), log: Vec::new(), applied: BTreeMap::new() }
    }

    fn faulty_on(&self, net: &LocalNet, shard: u32) -> usize {
        self.active.keys().filter(|name| net.node(name).is_ok_and(|n| n.shard == shard)).count()
    }

    /// One step at time `now` (since the run began): heals what is due,
    /// then maybe injects one new fault on a validator whose shard has
    /// budget left.
    pub fn step(&mut self, net: &mut LocalNet, now: Duration) -> Result<()> {
        let due: Vec<String> =
            self.active.iter().filter(|(_, a)| a.heal_at <= now).map(|(name, _)| name.clone()).collect();
        for name in due {
            self.heal(net, &name, now)?;
        }
        let candidates: Vec<(String, u32)> = net
            .validators()
            .filter(|n| !self.active.contains_key(&n.name))
            .filter(|n| self.faulty_on(net, n.shard) < self.budget.get(&n.shard).copied().unwrap_or(0))
            .map(|n| (n.name.clone(), n.shard))
            .collect();
        if candidates.is_empty() || !self.rng.chance(600) {
            return Ok(());
        }
        let (name, _) = &candidates[self.rng.index(candidates.len())];
        let fault = match self.rng.range(0, 3) {
            0 => Fault::Kill,
            1 => Fault::Pause,
            _ => Fault::Stop,
        };
        let heal_at = now + Duration::from_millis(self.rng.range(1_000, 6_000));
        match fault {
            Fault::Kill => net.kill(name)?,
            Fault::Pause => net.pause(name)?,
            Fault::Stop => {
                net.stop(name, Duration::from_secs(15))?;
            }
        }
        *self.applied.entry(label(fault)).or_insert(0) += 1;
        self.log.push(format!("{:>6.1}s {} {name}", now.as_secs_f64(), label(fault)));
        self.active.insert(name.clone(), Active { fault, heal_at });
        Ok(())
    }

    fn heal(&mut self, net: &mut LocalNet, name: &str, now: Duration) -> Result<()> {
        let Some(active) = self.active.remove(name) else { return Ok(()) };
        match active.fault {
            Fault::Pause => net.resume(name)?,
            Fault::Kill | Fault::Stop => {
                net.start(name)?;
            }
        }
        self.log.push(format!("{:>6.1}s heal {name}", now.as_secs_f64()));
        Ok(())
    }

    /// Heals every fault still in place.
    pub fn heal_all(&mut self, net: &mut LocalNet, now: Duration) -> Result<()> {
        let names: Vec<String> = self.active.keys().cloned().collect();
        for name in names {
            self.heal(net, &name, now)?;
        }
        Ok(())
    }

    /// Validators faulty right now.
    pub fn faulty(&self) -> Vec<String> {
        self.active.keys().cloned().collect()
    }
}

fn label(fault: Fault) -> &'static str {
    match fault {
        Fault::Kill => "kill",
        Fault::Pause => "pause",
        Fault::Stop => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bft_committee_tolerates_a_third_minus_one() {
        assert_eq!(tolerated(1), 0);
        assert_eq!(tolerated(3), 0);
        assert_eq!(tolerated(4), 1);
        assert_eq!(tolerated(7), 2);
        assert_eq!(tolerated(10), 3);
    }
}
