//! The operator's HTTP port: `GET /metrics` (Prometheus, OpenMetrics text)
//! and `GET /health` (200 or 503 with a JSON report per shard).
//!
//! A node is healthy when every shard it *validates* is (see [`judge`]):
//! it hears a quorum of its committee, it is not behind its peers, it has
//! not quarantined itself, and it committed within `health_stale_after_ms`. Losing the quorum or falling
//! behind shows within a leader timeout (400 ms by default), idle or not,
//! so load balancers and wallets can route around the node. Shards it only
//! follows are reported the same way but never make the node unhealthy (a
//! follower may lag without harm). `/metrics` carries the same verdicts
//! (`palisade_shard_healthy`, `palisade_validators_heard`), and so does
//! `palisade_status`.
//!
//! This port is for the operator's network (scrapers, load balancers); it
//! has no rate limit and reads only in-memory state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use palisade_shard_core::presence::heard_within;

use crate::context::NodeContext;
use crate::shard::ShardStatus;

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since `status` last committed (or its shard started), at `now_ms`.
pub fn seconds_since_commit(status: &ShardStatus, now_ms: u64) -> f64 {
    // Millisecond counts below 2^53 are exact in an f64; ours are far below.
    now_ms.saturating_sub(status.last_commit_unix_ms) as f64 / 1000.0
}

pub use palisade_ledger::api::{HealthReport, ShardHealth};

/// A node behind its peers by `BEHIND_BLOCKS` must stay so this long to
/// count as behind: applying a burst of blocks takes a moment.
pub const BEHIND_GRACE_MS: u64 = 200;

/// The health of every running shard at `now_ms`.
pub fn report(ctx: &NodeContext, now_ms: u64) -> HealthReport {
    let shards: Vec<ShardHealth> =
        ctx.shards.values().map(|handle| judge(&handle.status(), now_ms, ctx.health_stale_after_ms)).collect();
    let healthy = shards.iter().filter(|s| s.validating).all(|s| s.healthy);
    HealthReport { healthy, shards }
}

/// One shard's health at `now_ms`: unhealthy if the members it hears no
/// longer make a quorum with it (the shard lost its quorum, or this node is
/// cut off), if it has been behind its peers for [`BEHIND_GRACE_MS`], if it
/// quarantined itself (`palisade_shard_core::quarantine`), or if it
/// committed nothing for `stale_after_ms`. Every reason that applies is
/// given. The first two show within a leader timeout; the last catches
/// everything else.
pub fn judge(status: &ShardStatus, now_ms: u64, stale_after_ms: u64) -> ShardHealth {
    let mut reasons = Vec::new();
    let heard = heard_within(&status.heard_unix_ms, now_ms, status.presence_window_ms);
    let members = status.heard_unix_ms.len();
    if now_ms > status.quorum_until_unix_ms {
        reasons
            .push(format!("no quorum: hears {heard} of {members} validators within {} ms", status.presence_window_ms));
    }
    if status.behind_since_unix_ms.is_some_and(|since| now_ms.saturating_sub(since) >= BEHIND_GRACE_MS) {
        reasons.push(format!("behind its peers: height {}, peers at {}", status.height, status.peer_height));
    }
    if let Some(cause) = &status.quarantined {
        reasons.push(format!("quarantined: {cause}"));
    }
    let seconds = seconds_since_commit(status, now_ms);
    if now_ms.saturating_sub(status.last_commit_unix_ms) > stale_after_ms {
        reasons.push(format!("no commit for {seconds:.1} s (limit {} s)", stale_after_ms as f64 / 1000.0));
    }
    ShardHealth {
        shard: status.shard,
        validating: status.validator_index.is_some(),
        healthy: reasons.is_empty(),
        height: status.height,
        peer_height: status.peer_height,
        validators_heard: heard,
        validators: members,
        seconds_since_last_commit: seconds,
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        degraded: degraded(status),
    }
}

/// Why a shard sheds load while healthy, if it does.
fn degraded(status: &ShardStatus) -> Option<String> {
    let count = |n: usize, what: &str| match n {
        0 => None,
        1 => Some(format!("1 {what} throttled")),
        n => Some(format!("{n} {what}s throttled")),
    };
    let parts: Vec<String> = [count(status.throttled_senders, "sender"), count(status.throttled_clients, "client")]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| format!("intake breaker: {}", parts.join(", ")))
}

async fn health(State(ctx): State<Arc<NodeContext>>) -> Response {
    let report = report(&ctx, unix_ms());
    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report)).into_response()
}

async fn metrics(State(ctx): State<Arc<NodeContext>>) -> Response {
    // The health gauges say what `/health` would say now.
    for shard in report(&ctx, unix_ms()).shards {
        ctx.metrics.record_health(&shard);
    }
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], ctx.metrics.encode()).into_response()
}

/// The router, for tests that want to call it without a socket.
pub fn router(ctx: Arc<NodeContext>) -> Router {
    Router::new().route("/metrics", get(metrics)).route("/health", get(health)).with_state(ctx)
}

/// Serves `/metrics` and `/health` on `listen` until `shutdown` turns true
/// (or its sender is dropped). Returns the bound address (useful with port
/// 0) and the server task.
pub async fn serve(
    ctx: Arc<NodeContext>,
    listen: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics/health port {listen}"))?;
    let local = listener.local_addr().context("reading the metrics/health address")?;
    let app = router(ctx);
    let task = tokio::spawn(async move {
        let stopping = async move {
            // An error means the sender is gone: stop as well.
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopping).await {
            warn!(error = %e, "metrics/health server failed");
        }
        info!("metrics/health server stopped");
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use palisade_consensus::ValidatorIndex;
    use palisade_ledger::Hash;

    use super::*;

    const NOW: u64 = 1_000_000;
    const STALE: u64 = 5_000;

    /// A validator of a 4-member shard that committed 100 ms ago, hears
    /// everyone and is level with its peers.
    fn fine() -> ShardStatus {
        ShardStatus {
            validator_index: Some(ValidatorIndex(1)),
            quorum_until_unix_ms: NOW + 350,
            heard_unix_ms: vec![NOW - 100, u64::MAX, NOW - 50, NOW],
            presence_window_ms: 400,
            peer_height: 10,
            height: 10,
            ..ShardStatus::initial(2, 10, Hash([7; 32]), NOW - 100)
        }
    }

    #[test]
    fn a_shard_that_hears_its_quorum_and_keeps_up_is_healthy() {
        let health = judge(&fine(), NOW, STALE);
        assert!(health.healthy && health.validating, "{health:?}");
        assert_eq!((health.shard, health.validators_heard, health.validators, health.reason), (2, 4, 4, None));
        assert_eq!(health.degraded, None);
    }

    #[test]
    fn a_tripped_intake_breaker_degrades_a_healthy_shard_and_says_so() {
        let health = judge(&ShardStatus { throttled_senders: 3, ..fine() }, NOW, STALE);
        assert!(health.healthy, "shedding a flood is no outage: {health:?}");
        assert_eq!(health.degraded.as_deref(), Some("intake breaker: 3 senders throttled"));
        let health = judge(&ShardStatus { throttled_senders: 1, throttled_clients: 1, ..fine() }, NOW, STALE);
        assert_eq!(health.degraded.as_deref(), Some("intake breaker: 1 sender throttled, 1 client throttled"));
    }

    #[test]
    fn a_quarantined_validator_is_unhealthy_and_says_why() {
        let cause = "clock skewed: 20000 ms ahead of the committee's blocks (bound 10000 ms)";
        let health = judge(&ShardStatus { quarantined: Some(cause.into()), ..fine() }, NOW, STALE);
        assert!(!health.healthy, "{health:?}");
        assert_eq!(health.reason, Some(format!("quarantined: {cause}")));
    }

    #[test]
    fn a_lost_quorum_shows_the_moment_its_window_ends() {
        let status = fine();
        assert!(judge(&status, NOW + 350, STALE).healthy, "the last quorum still counts");
        let health = judge(&status, NOW + 351, STALE);
        assert!(!health.healthy);
        assert_eq!(health.reason.as_deref(), Some("no quorum: hears 2 of 4 validators within 400 ms"));
    }

    #[test]
    fn behind_counts_after_its_grace_and_every_reason_is_given() {
        let status = ShardStatus { peer_height: 20, behind_since_unix_ms: Some(NOW - BEHIND_GRACE_MS + 1), ..fine() };
        assert!(judge(&status, NOW, STALE).healthy, "within the grace");
        let status = ShardStatus { behind_since_unix_ms: Some(NOW - BEHIND_GRACE_MS), ..status };
        let health = judge(&status, NOW, STALE);
        assert_eq!(health.reason.as_deref(), Some("behind its peers: height 10, peers at 20"));
        let later = NOW + STALE;
        let health = judge(&status, later, STALE);
        assert_eq!(
            health.reason.as_deref(),
            Some(
                "no quorum: hears 1 of 4 validators within 400 ms; behind its peers: height 10, peers at 20; \
                 no commit for 5.1 s (limit 5 s)"
            )
        );
    }
}
