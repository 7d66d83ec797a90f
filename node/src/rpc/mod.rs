//! JSON-RPC 2.0 over HTTP and WebSocket, on one port (jsonrpsee).
//!
//! - [`methods`]: the `palisade_*` methods and the final-block subscription;
//! - `palisade_ledger::api`: the JSON shapes of their results, method names
//!   and error codes, shared with clients;
//! - [`errors`]: constructors of the errors clients switch on;
//! - [`limits`]: per-client rate limit, batch bound, timeout, call counting.
//!
//! Every bound is a [`RpcConfig`] field: request and response bytes (a body
//! over the limit gets HTTP 413 / a JSON-RPC error, and the connection goes
//! on serving), calls per batch, open TCP connections (beyond it new ones are
//! closed at once), calls per second per client IP (IPv6: per /64), and the
//! time one call may take. The accept loop is ours rather than jsonrpsee's
//! so each connection's middleware knows the client's address.

pub mod errors;
pub mod limits;
pub mod methods;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jsonrpsee::core::middleware::RpcServiceBuilder;
use jsonrpsee::server::{
    BatchRequestConfig, Methods, Server, ServerConfig, serve_with_graceful_shutdown, stop_channel,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::context::NodeContext;
use crate::metrics::MethodLabel;
use limits::{Guard, GuardShared, RateLimiter};

/// Default bound on a request body (or WebSocket message).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 1024 * 1024;
/// Default bound on a response: room for a full block (4 MiB of
/// transactions) in JSON.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;
/// Default bound on calls in one batch.
pub const DEFAULT_MAX_BATCH: u32 = 32;
/// Default bound on open connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// Default calls per second per client.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 200;
/// Default time one call (or batch) may take; above the shards' own reply
/// timeout, so a slow shard answers "busy" before the call times out.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscriptions one WebSocket connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 64;
/// How long shutdown waits for calls in flight.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The RPC server's address and bounds.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Where to listen (HTTP and WebSocket).
    pub listen: SocketAddr,
    /// Largest request body or WebSocket message, bytes.
    pub max_request_bytes: u32,
    /// Largest response, bytes.
    pub max_response_bytes: u32,
    /// Most calls in one batch.
    pub max_batch: u32,
    /// Most open TCP connections.
    pub max_connections: u32,
    /// Calls per second per client IP (bursts of as many); 0 disables.
    pub requests_per_second_per_client: u32,
    /// Longest one call or batch may run.
    pub request_timeout: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_batch: DEFAULT_MAX_BATCH,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            requests_per_second_per_client: DEFAULT_REQUESTS_PER_SECOND,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Starts the JSON-RPC server on `config.listen`; it runs until `shutdown`
/// turns true (or its sender is dropped), then lets calls in flight finish
/// for up to [`SHUTDOWN_DRAIN`]. Returns the bound address (useful with port
/// 0) and the server task.
pub async fn serve(
    ctx: Arc<NodeContext>,
    config: RpcConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("binding the RPC port {}", config.listen))?;
    let local = listener.local_addr().context("reading the RPC address")?;
    for method in methods::METHODS.iter().chain(["unknown"].iter()) {
        let _ = ctx.metrics.rpc_requests.get_or_create(&MethodLabel { method: (*method).to_string() });
    }
    let methods: Methods = methods::module(ctx.clone())?.into();
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_bytes)
        .max_response_body_size(config.max_response_bytes)
        .max_connections(config.max_connections)
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        // The batch bound is checked by `Guard`, which answers with our own
        // error (jsonrpsee's code would collide with -32010).
        .set_batch_request_config(BatchRequestConfig::Unlimited)
        .build();
    let builder = Server::builder().set_config(server_config).to_service_builder();
    let shared = Arc::new(GuardShared {
        limiter: RateLimiter::new(config.requests_per_second_per_client),
        metrics: ctx.metrics.clone(),
        max_batch: config.max_batch as usize,
        timeout: config.request_timeout,
    });
    let connections = Arc::new(Semaphore::new(config.max_connections as usize));
    let (stop_handle, server_handle) = stop_channel();

    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (socket, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "RPC: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                debug!(%remote, "RPC: connection limit reached; closing the new connection");
                continue;
            };
            let shared = shared.clone();
            let client = remote.ip();
            let middleware = RpcServiceBuilder::new().layer_fn(move |inner| Guard::new(inner, shared.clone(), client));
            let service = builder.clone().set_rpc_middleware(middleware).build(methods.clone(), stop_handle.clone());
            let stopped = stop_handle.clone().shutdown();
            tokio::spawn(async move {
                if let Err(e) = serve_with_graceful_shutdown(socket, service, stopped).await {
                    debug!(%remote, error = %e, "RPC: connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        let _ = server_handle.stop();
        drop(stop_handle);
        if tokio::time::timeout(SHUTDOWN_DRAIN, server_handle.stopped()).await.is_err() {
            warn!("RPC: calls still in flight after {SHUTDOWN_DRAIN:?}; leaving them");
        }
        info!("RPC server stopped");
    });
    Ok((local, task))
}
