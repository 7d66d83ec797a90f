//! What every JSON-RPC call passes before it reaches a method: the call
//! counter, the per-client token bucket, the batch bound and the request
//! timeout. [`Guard`] is jsonrpsee RPC middleware, built once per TCP
//! connection so it knows the client's IP address.
//!
//! jsonrpsee's own batch handling bypasses middleware for the calls inside a
//! batch, so [`Guard::batch`] applies the same checks to each call itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, Notification, RpcServiceT};
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id, Request};
use serde_json::json;

use super::errors::{INVALID_REQUEST, RATE_LIMITED, TIMED_OUT};
use super::methods::method_label;
use crate::metrics::{MethodLabel, Metrics};

/// Most clients whose buckets are remembered; beyond it, idle buckets are
/// forgotten (and, if every bucket is busy, all are reset).
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// A client as the rate limit (and the intake breaker) sees it: an IPv4
/// address, or the /64 prefix of an IPv6 address.
pub use palisade_shard_core::intake::ClientKey;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A token bucket per client: `per_second` calls per second, bursts of up to
/// `per_second` calls. Zero disables the limit.
pub struct RateLimiter {
    per_second: u32,
    buckets: Mutex<HashMap<ClientKey, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` calls per second per client.
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter { per_second, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `client` at `now`; `Err(retry_after_ms)` if its
    /// bucket is empty.
    pub fn take(&self, client: ClientKey, now: Instant) -> Result<(), u64> {
        match self.take_up_to(client, 1, now) {
            (1, _) => Ok(()),
            (_, retry_after_ms) => Err(retry_after_ms),
        }
    }

    /// Takes as many of `wanted` tokens for `client` at `now` as its bucket
    /// holds: how many it took, and (when short) the milliseconds until the
    /// next one.
    pub fn take_up_to(&self, client: ClientKey, wanted: usize, now: Instant) -> (usize, u64) {
        if self.per_second == 0 {
            return (wanted, 0);
        }
        let rate = f64::from(self.per_second);
        // A poisoned lock only means another call panicked mid-update; the
        // buckets are still plain numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&client) && buckets.len() >= MAX_TRACKED_CLIENTS {
            // A bucket idle for a second is full again: forgetting it changes nothing.
            buckets.retain(|_, b| now.saturating_duration_since(b.refilled) < Duration::from_secs(1));
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: rate, refilled: now });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled = now;
        // At most `rate` tokens are held: the casts cannot overflow.
        let taken = (bucket.tokens.floor() as usize).min(wanted);
        bucket.tokens -= taken as f64;
        if taken == wanted {
            return (taken, 0);
        }
        let wait_s = (1.0 - bucket.tokens) / rate;
        (taken, (wait_s * 1000.0).ceil() as u64)
    }
}

/// The rate limit as a method sees it (from the request's extensions), with
/// the client it counts: a call that carries many transactions
/// (`palisade_submitTransactions`) takes a token for each beyond the first,
/// which the guard took.
#[derive(Clone)]
pub struct Allowance {
    shared: Arc<GuardShared>,
    client: ClientKey,
}

impl Allowance {
    /// The calling client (the intake breaker's key).
    pub fn client(&self) -> ClientKey {
        self.client
    }

    /// Takes up to `wanted` more tokens now: how many it got and, when
    /// short, the error for the calls it could not cover (each counted as
    /// a rate-limited call).
    pub fn take_up_to(&self, wanted: usize) -> (usize, Option<ErrorObjectOwned>) {
        let limiter = &self.shared.limiter;
        let (taken, retry_after_ms) = limiter.take_up_to(self.client, wanted, Instant::now());
        if taken == wanted {
            return (taken, None);
        }
        self.shared.metrics.rpc_rate_limited.inc_by(wanted.saturating_sub(taken) as u64);
        (taken, Some(rate_limited(limiter.per_second, retry_after_ms)))
    }
}

/// What all connections' guards share.
pub struct GuardShared {
    /// The per-client buckets.
    pub limiter: RateLimiter,
    /// Where calls are counted.
    pub metrics: Arc<Metrics>,
    /// Most calls in one batch.
    pub max_batch: usize,
    /// Longest a call (or a whole batch) may run.
    pub timeout: Duration,
}

/// The middleware of one connection.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<GuardShared>,
    client: ClientKey,
}

impl<S> Guard<S> {
    /// Wraps `inner` for a connection from `client`.
    pub fn new(inner: S, shared: Arc<GuardShared>, client: IpAddr) -> Guard<S> {
        Guard { inner, shared, client: ClientKey::of(client) }
    }

    fn allowance(&self) -> Allowance {
        Allowance { shared: self.shared.clone(), client: self.client }
    }

    /// Counts one call of `method` and takes a token for it.
    fn admit(&self, method: &str) -> Result<(), ErrorObjectOwned> {
        let label = MethodLabel { method: method_label(method).to_string() };
        self.shared.metrics.rpc_requests.get_or_create(&label).inc();
        self.shared.limiter.take(self.client, Instant::now()).map_err(|retry_after_ms| {
            self.shared.metrics.rpc_rate_limited.inc();
            rate_limited(self.shared.limiter.per_second, retry_after_ms)
        })
    }
}

/// `-32005` with the allowance and a retry hint.
fn rate_limited(per_second: u32, retry_after_ms: u64) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        RATE_LIMITED,
        "rate limited",
        Some(json!({ "limit_per_second": per_second, "retry_after_ms": retry_after_ms })),
    )
}

fn timed_out(timeout: Duration) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        TIMED_OUT,
        format!("request timed out after {} ms", timeout.as_millis()),
        Some(json!({ "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) })),
    )
}

impl<S> RpcServiceT for Guard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, mut request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let admitted = self.admit(request.method_name());
        // Methods that count clients (the intake breaker) or take more
        // tokens read it here.
        request.extensions_mut().insert(self.allowance());
        let inner = self.inner.clone();
        let timeout = self.shared.timeout;
        async move {
            let id = request.id();
            if let Err(e) = admitted {
                return MethodResponse::error(id, e);
            }
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(response) => response,
                Err(_) => MethodResponse::error(id, timed_out(timeout)),
            }
        }
    }

    fn batch<'a>(&self, mut batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let calls = batch.len();
        let too_big = calls > self.shared.max_batch;
        if !too_big {
            for entry in batch.iter_mut() {
                let refused = match entry {
                    Ok(BatchEntry::Call(request)) => {
                        request.extensions_mut().insert(self.allowance());
                        self.admit(request.method_name()).err().map(|e| (request.id(), e))
                    }
                    _ => None,
                };
                if let Some((id, e)) = refused {
                    *entry = Err(BatchEntryErr::new(id, e));
                }
            }
        }
        let inner = self.inner.clone();
        let (timeout, max) = (self.shared.timeout, self.shared.max_batch);
        async move {
            if too_big {
                return MethodResponse::error(
                    Id::Null,
                    ErrorObjectOwned::owned(
                        INVALID_REQUEST,
                        format!("batch of {calls} calls exceeds the limit of {max}"),
                        Some(json!({ "max_batch": max, "calls": calls })),
                    ),
                );
            }
            match tokio::time::timeout(timeout, inner.batch(batch)).await {
                Ok(response) => response,
                Err(_) => MethodResponse::error(Id::Null, timed_out(timeout)),
            }
        }
    }

    fn notification<'a>(&self, notification: Notification<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        // Notifications run no method (jsonrpsee answers nothing), so they
        // cost no token.
        self.inner.notification(notification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let limiter = RateLimiter::new(10);
        let client = ClientKey::of("10.0.0.1".parse().unwrap());
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.take(client, start).is_ok());
        }
        let retry = limiter.take(client, start).unwrap_err();
        assert!(retry > 0 && retry <= 100, "retry hint {retry} ms");
        // Another client is not affected.
        assert!(limiter.take(ClientKey::of("10.0.0.2".parse().unwrap()), start).is_ok());
        // 100 ms later one token is back.
        let later = start + Duration::from_millis(100);
        assert!(limiter.take(client, later).is_ok());
        assert!(limiter.take(client, later).is_err());
    }

    #[test]
    fn a_call_of_many_takes_what_the_bucket_holds() {
        let limiter = RateLimiter::new(10);
        let client = ClientKey::of("10.0.0.1".parse().unwrap());
        let start = Instant::now();
        assert_eq!(limiter.take_up_to(client, 4, start), (4, 0));
        let (taken, retry) = limiter.take_up_to(client, 20, start);
        assert_eq!(taken, 6, "the rest of the bucket");
        assert!(retry > 0 && retry <= 100, "retry hint {retry} ms");
        assert!(limiter.take(client, start).is_err());
        assert_eq!(RateLimiter::new(0).take_up_to(client, 1_000, start), (1_000, 0), "zero disables");
    }

    #[test]
    fn zero_disables_and_ipv6_groups_by_prefix() {
        let open = RateLimiter::new(0);
        let client = ClientKey::of("10.0.0.1".parse().unwrap());
        for _ in 0..1_000 {
            assert!(open.take(client, Instant::now()).is_ok());
        }
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = ClientKey::of("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(mapped, client);
    }
}
