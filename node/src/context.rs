//! What the node's services share: the genesis, the store, the running
//! shards, the network handle and the metrics. The RPC server and the health
//! endpoint read through it; only shard threads write the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_ledger::genesis::Genesis;
use palisade_ledger::state::ShardContext;
use palisade_ledger::store::Store;
use palisade_ledger::{Hash, ShardId};

use crate::metrics::Metrics;
use crate::net::NetHandle;
use crate::shard::ShardHandle;

/// The node's shared, read-mostly state.
pub struct NodeContext {
    /// The network's genesis.
    pub genesis: Arc<Genesis>,
    /// Its hash (the network's identity).
    pub genesis_hash: Hash,
    /// Every shard's fixed facts, by shard.
    pub contexts: BTreeMap<ShardId, ShardContext>,
    /// The node's database.
    pub store: Arc<Store>,
    /// The shards this node runs (validates or follows), by shard.
    pub shards: BTreeMap<ShardId, ShardHandle>,
    /// The network task.
    pub net: NetHandle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// A validated shard whose last commit is older than this is unhealthy.
    pub health_stale_after_ms: u64,
}

impl NodeContext {
    /// Builds the per-shard contexts from `genesis`.
    pub fn shard_contexts(genesis: &Genesis) -> BTreeMap<ShardId, ShardContext> {
        (0..genesis.shard_count).filter_map(|shard| genesis.shard_context(shard).map(|c| (shard, c))).collect()
    }
}
