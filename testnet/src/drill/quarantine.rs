//! The drill's step 5, self-quarantine: one validator of
//! [`QUARANTINED_SHARD`] restarts with its clock [`SKEW_MS`] ahead
//! (`palisade-node run --dev-clock-offset-ms`, dev chains only). It must
//! see the skew in the others' blocks and quarantine itself (its `/health`
//! answers 503 with `quarantined: clock skewed ...` for the shard), while the
//! shard goes on without its vote; restarted with the right clock, it must
//! rejoin: healthy, at the shard's height, voting.

use std::time::Instant;

use anyhow::{Context, Result};
use palisade_ledger::ShardId;
use palisade_ledger::api::ShardHealth;

use super::report::QuarantineFigures;
use super::{Drill, probe};
use crate::local::operator;

/// The shard one of whose validators gets a skewed clock (neither the
/// halted nor the twinned one).
pub const QUARANTINED_SHARD: ShardId = 0;
/// How far ahead its clock runs: twice the block-time bound.
pub const SKEW_MS: i64 = 20_000;
/// Heights the shard must commit while that validator is quarantined.
const WENT_ON_HEIGHTS: u64 = 3;

impl Drill<'_> {
    /// Step 5 (see the module docs).
    pub(super) async fn quarantine(&mut self) -> Result<()> {
        let shard = QUARANTINED_SHARD;
        let members = self.validators(shard);
        let victim = *members.last().context("an empty committee")?;
        let name = self.net.nodes[victim].name.clone();
        self.net.kill(&name)?;
        self.net.start_with(&name, &["--dev-clock-offset-ms", &SKEW_MS.to_string()])?;
        Self::say(&format!("restarted {name} with its clock {SKEW_MS} ms ahead"));
        let clock = Instant::now();
        let quarantined =
            self.wait_health(victim, |h| h.reason.as_deref().is_some_and(|r| r.contains("quarantined: clock"))).await;
        let quarantined_s = clock.elapsed().as_secs_f64();
        self.report.expect(
            format!("{name}, its clock {SKEW_MS} ms ahead, quarantines itself"),
            quarantined.as_ref().is_some_and(|(code, _)| *code == 503),
            match &quarantined {
                Some((code, h)) => format!("/health {code} after {quarantined_s:.1} s: {}", reason(h)),
                None => format!("not quarantined within {:?}", self.options.timeout),
            },
        );
        let reference = self.reference(shard);
        let from = probe::height(&self.rpc[reference], shard).await.unwrap_or(0);
        let target = from + WENT_ON_HEIGHTS;
        let went_on = self.wait_heights(&[reference], shard, target, "the shard to go on").await;
        self.report.expect(
            format!("shard {shard} goes on while {name} is quarantined"),
            went_on.is_ok(),
            went_on.map_or_else(|e| e.to_string(), |()| format!("from height {from} to {target}")),
        );
        self.net.kill(&name)?;
        self.net.start(&name)?;
        Self::say(&format!("restarted {name} with the right clock"));
        let clock = Instant::now();
        let healthy = self.wait_health(victim, |h| h.healthy).await;
        let top = probe::height(&self.rpc[reference], shard).await.unwrap_or(0);
        let caught = self.wait_heights(&[victim], shard, top, "it to catch up").await;
        let returned_s = clock.elapsed().as_secs_f64();
        self.report.expect(
            format!("{name} rejoins once its clock is right"),
            healthy.is_some() && caught.is_ok(),
            match (&healthy, &caught) {
                (Some((code, _)), Ok(())) => format!("/health {code}, at height {top} within {returned_s:.1} s"),
                (None, _) => format!("not healthy within {:?}", self.options.timeout),
                (_, Err(e)) => e.to_string(),
            },
        );
        self.report.quarantine = Some(QuarantineFigures { validator: name, quarantined_s, returned_s });
        Ok(())
    }

    /// Polls `node`'s `/health` until its shard's report satisfies `done`,
    /// for at most the drill's timeout: the code and that report.
    async fn wait_health(&self, node: usize, done: impl Fn(&ShardHealth) -> bool) -> Option<(u16, ShardHealth)> {
        let spec = &self.net.nodes[node];
        let deadline = Instant::now() + self.options.timeout;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if let Ok((code, report)) = operator::health(&spec.metrics_url()).await
                && let Some(health) = report.shards.into_iter().find(|s| s.shard == spec.shard && done(s))
            {
                return Some((code, health));
            }
            tokio::time::sleep(probe::POLL).await;
        }
        None
    }
}

/// A shard report's reason, or "healthy".
fn reason(health: &ShardHealth) -> String {
    health.reason.clone().unwrap_or_else(|| "healthy".into())
}
