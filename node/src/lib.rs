//! palisade-node: the validator. It turns the pure consensus core and the
//! ledger into a running node:
//!
//! - [`net`]: the libp2p swarm (gossip per shard, block sync, discovery);
//! - [`shard`]: one thread per shard running its replica, store and mempool;
//! - [`mempool`]: a shard's pending transactions;
//! - [`rpc`]: JSON-RPC 2.0 over HTTP and WebSocket;
//! - [`metrics`] and [`health`]: Prometheus metrics and `/health`;
//! - [`wire`]: gossip topics, the sync protocol and size limits.

pub mod byzantine;
pub mod config;
pub mod context;
pub mod health;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod node;
pub mod rpc;
pub mod shard;
pub mod wire;
