//! What a run measured, as numbers and as text: rates, latency percentiles,
//! refusals grouped into short reasons, and whether a trial of `--find-max`
//! kept up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use palisade_ledger::api::client::ClientError;
use palisade_ledger::api::{code, reason};
use serde::Serialize;

use super::cost::Cost;

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest transaction.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

/// The nearest-rank `pct`-th percentile of ascending `sorted`: the smallest
/// sample with at least `pct` % of the samples at or below it.
pub fn percentile(sorted: &[u64], pct: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1).min(sorted.len() - 1)).copied()
}

impl Latency {
    /// Percentiles of `samples_us` (microseconds, in any order); `None` if
    /// there are none.
    pub fn of(samples_us: &mut [u64]) -> Option<Latency> {
        samples_us.sort_unstable();
        let ms = |pct: f64| percentile(samples_us, pct).map(|us| us as f64 / 1_000.0);
        let sum: u128 = samples_us.iter().map(|&us| u128::from(us)).sum();
        let mean_ms = sum as f64 / samples_us.len().max(1) as f64 / 1_000.0;
        Some(Latency { p50_ms: ms(50.0)?, p90_ms: ms(90.0)?, p99_ms: ms(99.0)?, max_ms: ms(100.0)?, mean_ms })
    }
}

/// What a node's answer means for the transaction it refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The very transaction is already pending (`duplicate`, `nonce_taken`:
    /// a bench transaction is a function of sender and nonce, so the pending
    /// one is this one): count it as accepted.
    AlreadyPending,
    /// Its nonce is already executed: nothing to resend.
    AlreadyExecuted,
    /// It is not in the pool: its sender's later transactions cannot execute
    /// until it is sent again.
    Dropped,
    /// An earlier transaction of its sender is in no pool (`nonce_gap`): one
    /// the load counted as admitted was lost with the node that held it (a
    /// node killed before it gossiped it). Its sender resends from its first
    /// transaction not yet final.
    Gap,
}

/// How the load generator treats a refusal with this reason.
pub fn refusal(reason: &str) -> Refusal {
    match reason {
        reason::DUPLICATE | reason::NONCE_TAKEN => Refusal::AlreadyPending,
        reason::STALE_NONCE => Refusal::AlreadyExecuted,
        reason::NONCE_GAP => Refusal::Gap,
        _ => Refusal::Dropped,
    }
}

/// A short, stable label for a failed call: the node's own
/// [`reason`](palisade_ledger::api::reason) for a rejected transaction
/// (`full`, `nonce_gap`, …), else one named after the error code, or the
/// client's own (`timeout`, `unreachable`, `malformed_answer`).
pub fn label(error: &ClientError) -> String {
    if let Some(rejection) = error.rejection() {
        // Only the documented labels: a node's data never grows the table.
        let known = reason::ALL.iter().copied().find(|&known| known == rejection.reason);
        return known.unwrap_or("rejected").to_string();
    }
    let label = match error {
        ClientError::Refused { code, .. } => match *code {
            code::TX_REJECTED => "rejected",
            code::SHARD_BUSY => "busy",
            code::RATE_LIMITED => "rate_limited",
            code::TIMED_OUT => "server_timeout",
            code::INVALID_REQUEST => "batch_refused",
            code::INVALID_PARAMS => "invalid_params",
            code::SHARD_NOT_TRACKED => "shard_not_tracked",
            code::INTERNAL_ERROR => "internal_error",
            code::REQUEST_TOO_BIG => "request_too_big",
            code::RESPONSE_TOO_BIG => "response_too_big",
            other => return format!("code_{other}"),
        },
        ClientError::Unreachable { timed_out: true, .. } => "timeout",
        ClientError::Unreachable { .. } => "unreachable",
        ClientError::Malformed { .. } => "malformed_answer",
        ClientError::BadUrl { .. } => "bad_url",
    };
    label.to_string()
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Shards loaded.
    pub shards: u32,
    /// Sending accounts (over all shards).
    pub accounts: usize,
    /// The rate asked for, transactions per second.
    pub target_rate: u64,
    /// How long load was offered, seconds.
    pub duration_s: f64,
    /// Slots in the schedule (`rate × duration`).
    pub scheduled: u64,
    /// Submissions sent (including resent transactions).
    pub sent: u64,
    /// Distinct transactions sent.
    pub transactions: u64,
    /// Slots not sent because too many batches to their node were in flight.
    pub client_backlog: u64,
    /// Submissions of a transaction that had been sent before and dropped
    /// (its own refusal, or a refusal of an earlier nonce of its sender).
    pub resent: u64,
    /// Submissions the nodes accepted.
    pub accepted: u64,
    /// Distinct transactions seen in final blocks (cross-shard ones: at
    /// their source).
    pub committed: u64,
    /// Transactions sent but not seen final by the end of the drain.
    pub not_final: u64,
    /// Of those, the ones a node admitted (the rest were refused or never
    /// answered, and the load stopped before sending them again): what a
    /// client was told is on its way.
    pub admitted_not_final: u64,
    /// `sent ÷ duration`.
    pub offered_tps: f64,
    /// `committed ÷ (last final − first send)`.
    pub committed_tps: f64,
    /// Submit (first send) to final-block notice, of same-shard transfers;
    /// `None` if none was final.
    pub latency: Option<Latency>,
    /// Refused submissions by reason.
    pub rejected: BTreeMap<String, u64>,
    /// The latest the load generator released a due slot, milliseconds
    /// (a busy client offers less than asked when this grows).
    pub max_ticker_lag_ms: f64,
    /// Final blocks announced but not fetched (their transactions count as
    /// not final).
    pub missed_blocks: u64,
    /// The cross-shard transfers, with `--cross-shard` (absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_shard: Option<CrossShard>,
    /// What the run cost the nodes, and the machine's verification bound
    /// (flattened: `node_cpu_us_per_tx`, `verify_bound_tps`, …).
    #[serde(flatten)]
    pub cost: Option<Cost>,
}

/// What the cross-shard transfers of a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct CrossShard {
    /// The share of transfers asked to pay an account on another shard.
    pub fraction: f64,
    /// Distinct cross-shard transfers sent.
    pub transactions: u64,
    /// Of those, final at their source.
    pub final_at_source: u64,
    /// Of those, seen credited at their destination.
    pub credited: u64,
    /// Final at their source but not seen credited by the end of the drain.
    pub not_credited: u64,
    /// Submit (first send) to the final-block notice of the destination
    /// block that credited it; `None` if none was credited.
    pub latency: Option<Latency>,
    /// Submit (first send) to the final-block notice of the source block
    /// that carries it: the part before the receipt leaves.
    pub source_latency: Option<Latency>,
    /// Credits timed when seen rather than by their block's notice, which
    /// was too old to be kept (an upper bound on their latency).
    pub late_timed: u64,
}

/// Transactions per second.
pub fn per_second(count: u64, over: Duration) -> f64 {
    if over.is_zero() { 0.0 } else { count as f64 / over.as_secs_f64() }
}

impl Summary {
    /// Refused submissions over all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The human form: one figure per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bench: {} tx/s for {:.1} s over {} shards ({} accounts)",
            self.target_rate, self.duration_s, self.shards, self.accounts
        );
        let _ = writeln!(
            out,
            "  offered     {:>9.1} tx/s  ({} sent of {} scheduled; {} client backlog, {} resent)",
            self.offered_tps, self.sent, self.scheduled, self.client_backlog, self.resent
        );
        let _ = writeln!(out, "  accepted    {:>9}", self.accepted);
        let _ = writeln!(
            out,
            "  committed   {:>9.1} tx/s  ({} of {} transactions final, {} not final, {} of them admitted)",
            self.committed_tps, self.committed, self.transactions, self.not_final, self.admitted_not_final
        );
        let what = if self.cross_shard.is_some() { "  (same-shard: submit → final)" } else { "" };
        let _ = writeln!(out, "  latency     {}{what}", percentiles(self.latency.as_ref(), "nothing final"));
        if let Some(c) = &self.cross_shard {
            let _ = writeln!(
                out,
                "  cross-shard {}  (submit → credited at the destination)",
                percentiles(c.latency.as_ref(), "nothing credited")
            );
            let _ = writeln!(
                out,
                "   at source  {}  (submit → final at the source)",
                percentiles(c.source_latency.as_ref(), "nothing final")
            );
            let _ = write!(
                out,
                "              {:.0}% asked: {} transfers, {} final at their source, {} credited, {} not credited",
                c.fraction * 100.0,
                c.transactions,
                c.final_at_source,
                c.credited,
                c.not_credited
            );
            if c.late_timed > 0 {
                let _ = write!(out, " ({} timed when seen)", c.late_timed);
            }
            let _ = writeln!(out);
        }
        let rejected = if self.rejected.is_empty() {
            "none".to_string()
        } else {
            self.rejected.iter().map(|(reason, n)| format!("{reason} {n}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "  rejected    {rejected}");
        if let Some(cost) = &self.cost {
            let per_tx = cost.node_cpu_us_per_tx.map_or("-".to_owned(), |us| format!("{us:.0} µs/tx"));
            let _ = writeln!(
                out,
                "  node cpu    {per_tx}  ({:.1} CPU-s over {} node processes)",
                cost.node_cpu_s, cost.processes
            );
            if let (Some(peak), Some(total)) = (cost.node_peak_rss_mib, cost.node_peak_rss_total_mib) {
                let _ = writeln!(out, "  node memory peak RSS {peak:.0} MiB at most per node, {total:.0} MiB summed");
            }
            let share =
                if cost.verify_bound_tps > 0.0 { self.committed_tps / cost.verify_bound_tps * 100.0 } else { 0.0 };
            let _ = writeln!(
                out,
                "  bound       {:>9.1} tx/s  (ed25519 batch verification on all cores ÷ committee; committed = {share:.1}% of it)",
                cost.verify_bound_tps
            );
        }
        let _ = write!(out, "  client      max ticker lag {:.0} ms", self.max_ticker_lag_ms);
        if self.missed_blocks > 0 {
            let _ = write!(out, "; {} final blocks not fetched", self.missed_blocks);
        }
        out
    }
}

/// `p50 … ms  p90 …  p99 …  max …  (mean …)`, or `- (none)`.
fn percentiles(latency: Option<&Latency>, none: &str) -> String {
    match latency {
        Some(l) => format!(
            "p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms  (mean {:.0} ms)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
        ),
        None => format!("- ({none})"),
    }
}

/// The share of the target rate a trial must offer, and of the
/// transactions it sent that must be final by the end of the drain, to
/// keep up.
pub const MIN_SHARE: f64 = 0.9;

/// Why a `--find-max` trial did not keep up, or `None` if it did: the
/// client offered at least [`MIN_SHARE`] of the target rate, at least that
/// share of the transactions sent became final, and p99 is within
/// `p99_bound_ms`.
///
/// The final share is counted, not compared as rates: committed tx/s is
/// measured up to the last final transaction, so on a short trial the
/// latency tail alone would pull it below 90 % of offered.
pub fn shortfall(summary: &Summary, p99_bound_ms: f64) -> Option<String> {
    let target = summary.target_rate as f64;
    if summary.offered_tps < MIN_SHARE * target {
        return Some(format!("client offered only {:.0} of {target:.0} tx/s", summary.offered_tps));
    }
    if (summary.committed as f64) < MIN_SHARE * summary.transactions as f64 {
        return Some(format!(
            "only {} of {} transactions final (< {:.0}%)",
            summary.committed,
            summary.transactions,
            MIN_SHARE * 100.0
        ));
    }
    match &summary.latency {
        None => Some("nothing final".to_string()),
        Some(l) if l.p99_ms > p99_bound_ms => Some(format!("p99 {:.0} ms > {p99_bound_ms:.0} ms", l.p99_ms)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50));
        assert_eq!(percentile(&samples, 90.0), Some(90));
        assert_eq!(percentile(&samples, 99.0), Some(99));
        assert_eq!(percentile(&samples, 100.0), Some(100));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // Few samples: p99 is the maximum, not an interpolation below it.
        assert_eq!(percentile(&[1, 2, 3, 1_000], 99.0), Some(1_000));
        assert_eq!(percentile(&[1, 2, 3, 1_000], 50.0), Some(2));
    }

    #[test]
    fn latency_sorts_and_converts_to_milliseconds() {
        let mut samples: Vec<u64> = (1..=1_000).rev().map(|ms| ms * 1_000).collect();
        let l = Latency::of(&mut samples).unwrap();
        assert_eq!((l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms), (500.0, 900.0, 990.0, 1_000.0));
        assert!((l.mean_ms - 500.5).abs() < 1e-9);
        assert_eq!(Latency::of(&mut []), None);
    }

    fn refused(code: i32, message: &str, data: Option<serde_json::Value>) -> ClientError {
        let url = "http://127.0.0.1:27001".to_string();
        ClientError::Refused { url, method: "palisade_submitTransaction", code, message: message.into(), data }
    }

    #[test]
    fn reasons_come_from_the_node_label_then_the_code() {
        let data = json!({"reason": "full", "message": "mempool full; …", "retry_after_ms": 500});
        assert_eq!(label(&refused(code::TX_REJECTED, "transaction rejected: mempool full", Some(data))), "full");
        assert_eq!(label(&refused(code::TX_REJECTED, "something new", None)), "rejected");
        assert_eq!(label(&refused(code::SHARD_BUSY, "shard 2 busy", Some(json!({"retry_after_ms": 100})))), "busy");
        assert_eq!(label(&refused(code::RESPONSE_TOO_BIG, "too big", None)), "response_too_big");
        assert_eq!(label(&refused(-32099, "?", None)), "code_-32099");
        // A label that is not one of the documented ones is not trusted verbatim.
        let odd = json!({"reason": "Mempool Full!", "message": "mempool full"});
        assert_eq!(label(&refused(code::TX_REJECTED, "mempool full", Some(odd))), "rejected");
        let url = String::new();
        let lost = ClientError::Unreachable { url: url.clone(), cause: "request timeout".into(), timed_out: true };
        assert_eq!(label(&lost), "timeout");
        let down = ClientError::Unreachable { url, cause: "connection refused".into(), timed_out: false };
        assert_eq!(label(&down), "unreachable");
    }

    #[test]
    fn refusals_that_mean_the_transaction_is_in_or_done() {
        assert_eq!(refusal("duplicate"), Refusal::AlreadyPending);
        assert_eq!(refusal("nonce_taken"), Refusal::AlreadyPending);
        assert_eq!(refusal("stale_nonce"), Refusal::AlreadyExecuted);
        assert_eq!(refusal("nonce_gap"), Refusal::Gap);
        for dropped in ["full", "busy", "timeout", "unreachable", "insufficient_funds"] {
            assert_eq!(refusal(dropped), Refusal::Dropped, "{dropped}");
        }
    }

    fn summary(target: u64, offered: f64, committed: f64, p99_ms: Option<f64>) -> Summary {
        Summary {
            shards: 4,
            accounts: 16,
            target_rate: target,
            duration_s: 10.0,
            scheduled: target * 10,
            sent: (offered * 10.0) as u64,
            transactions: (offered * 10.0) as u64,
            client_backlog: 0,
            resent: 0,
            accepted: 0,
            committed: (committed * 10.0) as u64,
            not_final: 0,
            admitted_not_final: 0,
            offered_tps: offered,
            committed_tps: committed,
            latency: p99_ms.map(|p99| Latency { p50_ms: 1.0, p90_ms: 1.0, p99_ms: p99, max_ms: p99, mean_ms: 1.0 }),
            rejected: BTreeMap::new(),
            max_ticker_lag_ms: 0.0,
            missed_blocks: 0,
            cross_shard: None,
            cost: None,
        }
    }

    #[test]
    fn json_carries_the_cost_at_the_top_level() {
        let mut s = summary(1_000, 1_000.0, 990.0, Some(300.0));
        let cost = Cost {
            node_cpu_s: 5.0,
            processes: 16,
            node_cpu_us_per_tx: Some(500.0),
            verify_bound_tps: 9_000.0,
            node_peak_rss_mib: Some(80.0),
            node_peak_rss_total_mib: Some(1_000.0),
        };
        s.cost = Some(cost);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["node_cpu_us_per_tx"], json!(500.0));
        assert_eq!(json["node_peak_rss_mib"], json!(80.0));
        assert!(s.render().contains("peak RSS 80 MiB at most per node, 1000 MiB summed"), "{}", s.render());
        assert_eq!(json["verify_bound_tps"], json!(9_000.0));
        assert!(s.render().contains("500 µs/tx"), "{}", s.render());
        assert!(s.render().contains("11.0% of it"), "{}", s.render());
    }

    #[test]
    fn a_trial_keeps_up_only_within_every_bound() {
        assert_eq!(shortfall(&summary(1_000, 1_000.0, 980.0, Some(300.0)), 500.0), None);
        let slow = shortfall(&summary(1_000, 1_000.0, 980.0, Some(501.0)), 500.0).unwrap();
        assert!(slow.starts_with("p99 501 ms"), "{slow}");
        let behind = shortfall(&summary(1_000, 1_000.0, 850.0, Some(300.0)), 500.0).unwrap();
        assert!(behind.starts_with("only 8500 of 10000 transactions final"), "{behind}");
        // A short trial's rates differ by the latency tail; its counts do not.
        let mut short = summary(1_000, 1_000.0, 800.0, Some(300.0));
        short.committed = short.transactions;
        assert_eq!(shortfall(&short, 500.0), None);
        let client = shortfall(&summary(1_000, 700.0, 700.0, Some(300.0)), 500.0).unwrap();
        assert!(client.starts_with("client offered only 700"), "{client}");
        assert_eq!(shortfall(&summary(1_000, 1_000.0, 950.0, None), 500.0).unwrap(), "nothing final");
    }

    #[test]
    fn the_human_summary_names_every_figure() {
        let mut s = summary(2_000, 1_999.5, 1_990.0, Some(420.0));
        s.rejected.insert("busy".into(), 3);
        s.rejected.insert("full".into(), 1);
        let text = s.render();
        for needle in ["1999.5 tx/s", "1990.0 tx/s", "p99 420 ms", "busy 3, full 1", "ticker lag"] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("cross-shard"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("cross_shard").is_none(), "no cross-shard figures without --cross-shard: {json}");
    }

    #[test]
    fn cross_shard_latency_sits_next_to_same_shard_latency() {
        let mut s = summary(300, 300.0, 299.0, Some(420.0));
        let latency = Latency { p50_ms: 700.0, p90_ms: 800.0, p99_ms: 950.0, max_ms: 990.0, mean_ms: 710.0 };
        s.cross_shard = Some(CrossShard {
            fraction: 0.5,
            transactions: 1_500,
            final_at_source: 1_500,
            credited: 1_498,
            not_credited: 2,
            latency: Some(latency),
            source_latency: Some(Latency { p50_ms: 210.0, ..latency }),
            late_timed: 0,
        });
        let text = s.render();
        for needle in [
            "p99 420 ms  max 420 ms  (mean 1 ms)  (same-shard",
            "cross-shard p50 700 ms",
            "p99 950 ms",
            "at source  p50 210 ms",
            "1498 credited, 2 not",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["cross_shard"]["latency"]["p99_ms"], 950.0);
        assert_eq!(json["cross_shard"]["not_credited"], 2);
    }
}
