//! What the drill measured and which of its expectations held (pure: the
//! drill fills it in, [`DrillReport::render`] prints it).

use std::collections::BTreeMap;
use std::fmt::Write;

use palisade_ledger::ShardId;

use super::HALTED_SHARD;
use crate::bench::report::Summary;
use crate::chaos::supply::Supply;

pub use crate::expect::{Expectation, Expectations};

/// Committed transactions per second of each shard over one window.
pub type Throughput = BTreeMap<ShardId, f64>;

/// How the twin was caught.
#[derive(Clone, Debug, Default)]
pub struct TwinFigures {
    /// The validator twinned.
    pub validator: String,
    /// Its committee index.
    pub index: u32,
    /// Its shard's height when the twin started.
    pub started_at: u64,
    /// Height of its first conflicting signature.
    pub offence_at: u64,
    /// Phase of that signature.
    pub phase: String,
    /// The block that executed the evidence.
    pub included_at: u64,
    /// Stake burned, base units.
    pub burned_units: u64,
    /// Its genesis stake, base units.
    pub stake_units: u64,
}

/// How the halted shard came back.
#[derive(Clone, Debug, Default)]
pub struct RestoreFigures {
    /// The shard's height while halted.
    pub halted_at: u64,
    /// Seconds from restarting its validators to its next commit.
    pub resumed_s: f64,
    /// Seconds from restarting them to all of them at the shard's height.
    pub caught_up_s: f64,
    /// Seconds from restarting them to the last in-flight transfer credited.
    pub credited_s: f64,
}

/// How the skewed validator quarantined itself and came back.
#[derive(Clone, Debug, Default)]
pub struct QuarantineFigures {
    /// Its name.
    pub validator: String,
    /// Seconds from its restart with the skewed clock to `/health` saying
    /// it is quarantined.
    pub quarantined_s: f64,
    /// Seconds from its restart with the right clock to healthy and level.
    pub returned_s: f64,
}

/// The whole drill.
#[derive(Debug, Default)]
pub struct DrillReport {
    /// Committed tx/s per shard before the fault.
    pub baseline: Throughput,
    /// Committed tx/s per shard while the halted shard was down.
    pub during_halt: Throughput,
    /// Committed tx/s per shard while the twin ran.
    pub during_twin: Throughput,
    /// Its validators killed.
    pub killed: Vec<String>,
    /// Transfers sent into the halted shard while it was down.
    pub in_flight: usize,
    /// The twin, if it was caught.
    pub twin: Option<TwinFigures>,
    /// The restore, if the shard came back.
    pub restore: Option<RestoreFigures>,
    /// The quarantine step, if it ran.
    pub quarantine: Option<QuarantineFigures>,
    /// The load's own summary.
    pub load: Option<Summary>,
    /// The whole network's money at the end.
    pub supply: Option<Supply>,
    /// Every expectation, in the order checked.
    pub expectations: Expectations,
}

impl DrillReport {
    /// Records an expectation.
    pub fn expect(&mut self, what: impl Into<String>, held: bool, detail: impl Into<String>) {
        self.expectations.record("drill", what, held, detail);
    }

    /// The expectations that did not hold.
    pub fn failed(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations.failed()
    }

    /// The short report the drill ends with.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "committed tx/s per shard (baseline → shard {HALTED_SHARD} halted → twin running):");
        for (shard, base) in &self.baseline {
            let halt = self.during_halt.get(shard).copied().unwrap_or(0.0);
            let twin = self.during_twin.get(shard).copied().unwrap_or(0.0);
            let share = if *shard == HALTED_SHARD { String::new() } else { format!("  ({})", percent(halt, *base)) };
            let _ = writeln!(out, "  shard {shard}: {base:>7.1} → {halt:>7.1}{share:<10} → {twin:>7.1}");
        }
        let _ = writeln!(
            out,
            "halt: killed {}; {} transfers sent into shard {} waited in flight",
            self.killed.join(", "),
            self.in_flight,
            HALTED_SHARD
        );
        if let Some(t) = &self.twin {
            let _ = writeln!(
                out,
                "twin of {}: started at height {}, first conflicting {} at {}, slashed by the block at {} ({} blocks \
                 after the offence); {} of {} units burned, jailed",
                t.validator,
                t.started_at,
                t.phase,
                t.offence_at,
                t.included_at,
                t.included_at.saturating_sub(t.offence_at),
                t.burned_units,
                t.stake_units
            );
        }
        if let Some(r) = &self.restore {
            let _ = writeln!(
                out,
                "restore: shard {} resumed from height {} {:.1} s after its validators restarted, all caught up at \
                 {:.1} s, in-flight transfers credited by {:.1} s",
                HALTED_SHARD, r.halted_at, r.resumed_s, r.caught_up_s, r.credited_s
            );
        }
        if let Some(q) = &self.quarantine {
            let _ = writeln!(
                out,
                "quarantine: {} with a skewed clock quarantined itself {:.1} s after its restart; healthy and level \
                 {:.1} s after its restart with the right clock",
                q.validator, q.quarantined_s, q.returned_s
            );
        }
        if let Some(s) = &self.load {
            let latency =
                s.latency.map_or("-".to_string(), |l| format!("p50 {:.0} ms, p99 {:.0} ms", l.p50_ms, l.p99_ms));
            let _ = writeln!(
                out,
                "load: {} tx/s offered for {:.0} s, {} transactions final ({:.1} tx/s), same-shard {latency}",
                s.target_rate, s.duration_s, s.committed, s.committed_tps
            );
        }
        if let Some(s) = &self.supply {
            let _ = writeln!(
                out,
                "money: genesis {} + minted {} − slashed {} − base fees {} = {} balances + {} stake + {} rewards + {} \
                 in flight",
                s.genesis, s.minted, s.burned, s.fees_burned, s.balances, s.stake, s.rewards, s.in_flight
            );
        }
        self.expectations.render("drill", &mut out);
        out
    }
}

/// `part` as a share of `whole`, e.g. `97%`.
pub fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.0}%", part / whole * 100.0) } else { "-".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_every_expectation_and_counts_the_failed() {
        let mut report = DrillReport {
            baseline: Throughput::from([(0, 100.0), (2, 100.0)]),
            during_halt: Throughput::from([(0, 95.0), (2, 0.0)]),
            ..DrillReport::default()
        };
        report.expect("shard 2 halted", true, "height 40 throughout");
        report.expect("others kept 90%", false, "shard 0: 85%");
        let text = report.render();
        assert!(text.contains("shard 0:   100.0 →    95.0  (95%)"), "{text}");
        assert!(text.contains("ok     shard 2 halted: height 40 throughout"), "{text}");
        assert!(text.contains("FAILED others kept 90%: shard 0: 85%"), "{text}");
        assert!(text.ends_with("drill: 2 expectations, 1 failed\n"), "{text}");
        assert_eq!(report.failed().count(), 1);
    }
}
