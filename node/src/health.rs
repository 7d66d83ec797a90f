//! The operator's HTTP port: `GET /metrics` (Prometheus, OpenMetrics text)
//! and `GET /health` (200 or 503 with a JSON report per shard).
//!
//! A node is healthy when every shard it *validates* committed within
//! `health_stale_after_ms`: a validator that stopped committing needs a
//! human. Shards it only follows are reported the same way but never make
//! the node unhealthy (a follower may lag without harm).
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

/// The health of every running shard at `now_ms`.
pub fn report(ctx: &NodeContext, now_ms: u64) -> HealthReport {
    let limit_ms = ctx.health_stale_after_ms;
    let shards: Vec<ShardHealth> = ctx
        .shards
        .values()
        .map(|handle| {
            let status = handle.status();
            let since_ms = now_ms.saturating_sub(status.last_commit_unix_ms);
            let healthy = since_ms <= limit_ms;
            let seconds = seconds_since_commit(&status, now_ms);
            ShardHealth {
                shard: status.shard,
                validating: status.validator_index.is_some(),
                healthy,
                height: status.height,
                seconds_since_last_commit: seconds,
                reason: (!healthy)
                    .then(|| format!("no commit for {seconds:.1} s (limit {} s)", limit_ms as f64 / 1000.0)),
            }
        })
        .collect();
    let healthy = shards.iter().filter(|s| s.validating).all(|s| s.healthy);
    HealthReport { healthy, shards }
}

async fn health(State(ctx): State<Arc<NodeContext>>) -> Response {
    let report = report(&ctx, unix_ms());
    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report)).into_response()
}

async fn metrics(State(ctx): State<Arc<NodeContext>>) -> Response {
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
