//! What `palisade-testnet failover` measured: each counted trial, the
//! spread of failover times against the goal, and the load it ran under.

use serde::Serialize;

use super::{MEDIAN_GOAL_MS, WORST_GOAL_MS};
use palisade_ledger::ShardId;

/// One counted kill.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The validator killed (the leader of `height`'s view 0).
    pub killed: String,
    /// The height it was to propose.
    pub height: u64,
    /// The view `height` was decided in.
    pub view: u64,
    /// From SIGKILL to a survivor reporting `height` committed.
    pub failover_ms: f64,
}

/// The load offered during the trials.
#[derive(Clone, Debug, Serialize)]
pub struct Load {
    /// Submissions per second.
    pub offered_tps: f64,
    /// Final transactions per second.
    pub committed_tps: f64,
    /// Transactions sent but not final by the end of the drain.
    pub not_final: u64,
    /// Of those, the ones a node had admitted.
    pub admitted_not_final: u64,
}

/// Every trial, and the figures the goal is judged on.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    /// The shard whose leaders were killed.
    pub shard: ShardId,
    /// The load asked for, tx/s, if any.
    pub load_rate: Option<u64>,
    /// What the load did.
    pub load: Option<Load>,
    /// Kills not counted: the victim had proposed before it died.
    pub raced: u32,
    /// The counted trials, in order.
    pub trials: Vec<Trial>,
}

/// Minimum, median, 90th percentile and maximum, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Fastest.
    pub min_ms: f64,
    /// Median (nearest rank).
    pub median_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl FailoverReport {
    /// An empty report.
    pub fn new(shard: ShardId, load_rate: Option<u64>) -> FailoverReport {
        FailoverReport { shard, load_rate, load: None, raced: 0, trials: Vec::new() }
    }

    /// The spread of the counted trials; `None` without any.
    pub fn spread(&self) -> Option<Spread> {
        let mut times: Vec<f64> = self.trials.iter().map(|t| t.failover_ms).collect();
        times.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let index = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
            times.get(index).copied()
        };
        Some(Spread { min_ms: *times.first()?, median_ms: rank(0.5)?, p90_ms: rank(0.9)?, max_ms: *times.last()? })
    }

    /// The goal: median ≤ 600 ms, no trial over 1,000 ms, and (under load)
    /// every transaction a node admitted final (one refused and not sent
    /// again before the load stopped was never acknowledged).
    pub fn passed(&self) -> bool {
        let timely = self.spread().is_some_and(|s| s.median_ms <= MEDIAN_GOAL_MS && s.max_ms <= WORST_GOAL_MS);
        timely && self.load.as_ref().is_none_or(|l| l.admitted_not_final == 0)
    }

    /// The report as one JSON object (with the spread and the verdict).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "report": self,
            "spread": self.spread(),
            "median_goal_ms": MEDIAN_GOAL_MS,
            "worst_goal_ms": WORST_GOAL_MS,
            "passed": self.passed(),
        })
    }

    /// The table a person reads.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = self.load_rate.map_or("idle".to_owned(), |rate| format!("under {rate} tx/s"));
        out.push_str(&format!(
            "failover: shard {}, {load}, {} trials ({} not counted: the leader had proposed)\n",
            self.shard,
            self.trials.len(),
            self.raced
        ));
        out.push_str("  killed           height  view  failover ms\n");
        for t in &self.trials {
            out.push_str(&format!("  {:<16} {:>6}  {:>4}  {:>11.0}\n", t.killed, t.height, t.view, t.failover_ms));
        }
        if let Some(s) = self.spread() {
            out.push_str(&format!(
                "  min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms (goal: median ≤ {MEDIAN_GOAL_MS:.0}, max ≤ \
                 {WORST_GOAL_MS:.0})\n",
                s.min_ms, s.median_ms, s.p90_ms, s.max_ms
            ));
        }
        if let Some(l) = &self.load {
            out.push_str(&format!(
                "  load: offered {:.0} tx/s, committed {:.0} tx/s, {} not final ({} of them admitted)\n",
                l.offered_tps, l.committed_tps, l.not_final, l.admitted_not_final
            ));
        }
        out.push_str(if self.passed() { "  PASS\n" } else { "  FAIL\n" });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(times: &[f64]) -> FailoverReport {
        let mut report = FailoverReport::new(0, None);
        for (i, &ms) in times.iter().enumerate() {
            report.trials.push(Trial {
                killed: format!("validator-0-{i}"),
                height: i as u64,
                view: 1,
                failover_ms: ms,
            });
        }
        report
    }

    #[test]
    fn the_spread_uses_nearest_ranks_and_the_verdict_both_bounds() {
        let times: Vec<f64> = (1..=10).map(|i| f64::from(i) * 100.0).collect();
        let spread = report(&times).spread().unwrap();
        assert_eq!(spread, Spread { min_ms: 100.0, median_ms: 500.0, p90_ms: 900.0, max_ms: 1_000.0 });
        assert!(report(&times).passed());
        assert!(!report(&[500.0, 500.0, 1_001.0]).passed(), "one trial over the worst bound fails");
        assert!(!report(&[601.0, 601.0, 100.0]).passed(), "a median over the goal fails");
        assert!(!report(&[]).passed(), "no trial proves nothing");
        let mut lost = report(&[300.0]);
        lost.load = Some(Load { offered_tps: 10.0, committed_tps: 10.0, not_final: 5, admitted_not_final: 1 });
        assert!(!lost.passed(), "an admitted transaction left behind fails");
        lost.load = Some(Load { offered_tps: 10.0, committed_tps: 10.0, not_final: 5, admitted_not_final: 0 });
        assert!(lost.passed(), "refused ones the load stopped before resending were never acknowledged");
    }
}
