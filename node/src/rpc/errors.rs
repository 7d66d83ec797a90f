//! Constructors for the JSON-RPC errors Palisade returns. The codes live in
//! `palisade_ledger::api::code`, shared with clients; docs/rpc.md lists every
//! code.

use jsonrpsee::types::ErrorObjectOwned;
use palisade_ledger::ShardId;
use serde_json::json;
use tracing::error;

use crate::mempool::{FULL_RETRY_AFTER_MS, Rejection};
use crate::shard::ShardBusy;

pub use palisade_ledger::api::code::*;

/// How long a client should wait before retrying a busy shard.
pub const BUSY_RETRY_AFTER_MS: u64 = 200;

/// `-32602` with a message saying what is wrong.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, format!("invalid params: {}", message.into()), None::<()>)
}

/// `-32603`, after logging the cause (which may hold paths: not for clients).
pub fn internal(what: &str, cause: impl std::fmt::Display) -> ErrorObjectOwned {
    error!(error = %cause, "RPC: {what}");
    ErrorObjectOwned::owned(INTERNAL_ERROR, "internal error (see the node's log)", None::<()>)
}

/// `-32010` naming the shard.
pub fn shard_not_tracked(shard: ShardId) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        SHARD_NOT_TRACKED,
        format!("shard not tracked: this node does not run shard {shard}; ask a node that does"),
        Some(json!({ "shard": shard })),
    )
}

/// `-32020` with the mempool's reason label and message (and the retry hint
/// when the pool is full).
pub fn rejected(rejection: &Rejection) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(TX_REJECTED, format!("transaction rejected: {rejection}"), Some(rejection.to_api()))
}

/// `-32021` with a retry hint.
pub fn busy(reason: &ShardBusy) -> ErrorObjectOwned {
    let retry_after_ms = match reason {
        ShardBusy::Full(_) | ShardBusy::Timeout(_) => BUSY_RETRY_AFTER_MS,
        ShardBusy::Stopped(_) => FULL_RETRY_AFTER_MS,
    };
    ErrorObjectOwned::owned(SHARD_BUSY, reason.to_string(), Some(json!({ "retry_after_ms": retry_after_ms })))
}

/// `-32021` when the network's queue did not take a forwarded transaction.
pub fn forward_busy(shard: ShardId) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        SHARD_BUSY,
        format!("cannot forward to shard {shard} now (network queue full or stopped); retry shortly"),
        Some(json!({ "retry_after_ms": BUSY_RETRY_AFTER_MS })),
    )
}
