//! The load generator's connections to the nodes: one [`Client`] per
//! validator, bounded for the bench's batches and blocks.

use std::time::Duration;

use anyhow::Result;
use palisade_ledger::ShardId;
use palisade_ledger::api::client::Client;

use crate::local::NodeSpec;

/// How long a batch may take before its calls count as `timeout`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer accepted: a full block of 10,000 transactions is
/// about 6 MB of JSON; the nodes refuse answers beyond 16 MiB.
const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;

/// One validator the load generator talks to.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its name (`validator-S-I`).
    pub name: String,
    /// The shard it validates.
    pub shard: ShardId,
    /// Its JSON-RPC WebSocket URL.
    pub ws_url: String,
    /// Its JSON-RPC client (pools connections; cheap to clone).
    pub client: Client,
}

impl Node {
    /// A client for `spec`.
    pub fn new(spec: &NodeSpec) -> Result<Node> {
        let client = Client::with_limits(&spec.rpc_url(), CALL_TIMEOUT, MAX_RESPONSE_BYTES)?;
        Ok(Node { name: spec.name.clone(), shard: spec.shard, ws_url: spec.ws_url(), client })
    }
}
