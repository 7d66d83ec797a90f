//! What the surge measured and which of its expectations held (pure: the
//! surge fills it in, [`SurgeReport::render`] prints it, `--json` prints it
//! as JSON).

use std::collections::BTreeMap;
use std::fmt::Write;

use palisade_ledger::ShardId;
use serde::Serialize;

use super::flood::FloodCounts;
use crate::bench::report::{Latency, Summary};
use crate::drill::report::percent;
use crate::expect::Expectations;

/// One phase of the surge, as measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phase {
    /// The flooding client's rate, tx/s.
    pub flood_rate: u64,
    /// Committed tx/s of every shard over the phase.
    pub committed_tps: BTreeMap<ShardId, f64>,
    /// The flooded shard's high-fee (honest) transfers first sent in the
    /// phase: first send to final.
    pub latency: Option<Latency>,
    /// The flooded shard's base fee: at the phase's start, its highest, and
    /// at its end (units).
    pub base_fee_units: (u64, u64, u64),
    /// The most clients a validator of the flooded shard refused at once.
    pub throttled_clients: usize,
}

/// Whether the flood's admitted transactions are all accounted for.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloodFate {
    /// Final.
    pub final_txs: usize,
    /// Still waiting in a mempool (held back by the base fee, not lost).
    pub pending: usize,
    /// Neither: lost.
    pub lost: usize,
}

/// The whole surge.
#[derive(Debug, Default, Serialize)]
pub struct SurgeReport {
    /// The flooded shard.
    pub shard: ShardId,
    /// The surge factor.
    pub factor: u64,
    /// Before the surge: the flooding client at its usual rate.
    pub baseline: Phase,
    /// The flooding client at `factor` times that.
    pub surge: Phase,
    /// The flooding client back at its usual rate.
    pub calm: Phase,
    /// What the nodes answered the flooding client.
    pub flood: FloodCounts,
    /// Where its admitted transactions ended.
    pub flood_fate: FloodFate,
    /// The honest load's own summary.
    pub honest: Option<Summary>,
    /// Every expectation, in the order checked.
    pub expectations: Expectations,
}

impl SurgeReport {
    /// Records an expectation.
    pub fn expect(&mut self, what: impl Into<String>, held: bool, detail: impl Into<String>) {
        self.expectations.record("surge", what, held, detail);
    }

    /// The report, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let phases = [("baseline", &self.baseline), ("surge", &self.surge), ("calm", &self.calm)];
        let _ = writeln!(out, "committed tx/s per shard (baseline → surge → calm; shard {} flooded):", self.shard);
        for (shard, base) in &self.baseline.committed_tps {
            let surge = self.surge.committed_tps.get(shard).copied().unwrap_or(0.0);
            let calm = self.calm.committed_tps.get(shard).copied().unwrap_or(0.0);
            let share = percent(surge, *base);
            let _ = writeln!(out, "  shard {shard}: {base:>7.1} → {surge:>7.1} ({share}) → {calm:>7.1}");
        }
        for (name, phase) in phases {
            let latency =
                phase.latency.map_or("-".to_string(), |l| format!("p50 {:.0} ms, p99 {:.0} ms", l.p50_ms, l.p99_ms));
            let (start, high, end) = phase.base_fee_units;
            let _ = writeln!(
                out,
                "{name}: flood {} tx/s; shard {} high-fee transfers {latency}; base fee {start} → max {high} → {end} \
                 units; {} client(s) throttled at most",
                phase.flood_rate, self.shard, phase.throttled_clients
            );
        }
        let f = &self.flood;
        let other: u64 = f.other.values().sum();
        let _ = writeln!(
            out,
            "flood: {} sent, {} admitted, {} throttled, {} below the base fee, {other} refused otherwise; of the \
             admitted, {} final, {} pending, {} lost",
            f.sent,
            f.admitted,
            f.throttled,
            f.below_base_fee,
            self.flood_fate.final_txs,
            self.flood_fate.pending,
            self.flood_fate.lost
        );
        if let Some(s) = &self.honest {
            let _ = writeln!(
                out,
                "honest load: {} tx/s offered, {} final, {} not final",
                s.target_rate, s.committed, s.not_final
            );
        }
        self.expectations.render("surge", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_each_phase_and_counts_the_failed() {
        let phase = |tps: f64, fee: (u64, u64, u64)| Phase {
            flood_rate: 50,
            committed_tps: BTreeMap::from([(0, tps), (1, 50.0)]),
            latency: None,
            base_fee_units: fee,
            throttled_clients: 0,
        };
        let mut report = SurgeReport {
            shard: 0,
            factor: 10,
            baseline: phase(50.0, (10, 10, 10)),
            surge: Phase { throttled_clients: 1, ..phase(45.0, (10, 37, 20)) },
            calm: phase(50.0, (20, 20, 10)),
            ..SurgeReport::default()
        };
        report.expect("the base fee rises", true, "10 → 37");
        report.expect("others keep 90%", false, "shard 1: 85%");
        let text = report.render();
        assert!(text.contains("shard 0:    50.0 →    45.0 (90%) →    50.0"), "{text}");
        assert!(
            text.contains("surge: flood 50 tx/s; shard 0 high-fee transfers -; base fee 10 → max 37 → 20"),
            "{text}"
        );
        assert!(text.ends_with("surge: 2 expectations, 1 failed\n"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["expectations"][1]["held"], false);
        assert_eq!(json["surge"]["base_fee_units"][1], 37);
    }
}
