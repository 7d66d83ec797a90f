//! palisade-node: the validator. Today it holds the per-shard mempool; the
//! networking, per-shard drivers, sync, RPC and metrics land with issue 4.

pub mod mempool;
