//! palisade-node: the validator. It turns the pure consensus core and the
//! ledger into a running node:
//!
//! - [`net`]: the libp2p swarm (gossip per shard, block sync, discovery);
//! - [`shard`]: one thread per shard hosting its
//!   [`palisade_shard_core::ShardCore`] over the store;
//! - [`rpc`]: JSON-RPC 2.0 over HTTP and WebSocket;
//! - [`metrics`] and [`health`]: Prometheus metrics and `/health`;
//! - [`wire`], [`mempool`], [`byzantine`]: the core's, re-exported.

pub mod config;
pub mod context;
pub mod health;
pub mod metrics;
pub mod net;
pub mod node;
pub mod rpc;
pub mod shard;

pub use palisade_shard_core::{byzantine, mempool, wire};
