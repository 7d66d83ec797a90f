//! What validators send each other: gossip topics, the block-sync protocol's
//! request and response, and the size limits every peer byte is held to.
//!
//! Everything here is hostile until decoded under a limit and verified:
//! consensus messages by [`palisade_consensus::SignedMessage::verify`],
//! transactions by the mempool, synced blocks by their commit certificate.

use palisade_ledger::ShardId;
use serde::{Deserialize, Serialize};

/// Version of the gossip topics and sync protocol; bumped on any change to
/// their encoding.
pub const WIRE_VERSION: u32 = 1;

/// Most blocks one sync response carries.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes of blocks and certificates one sync response carries (the
/// server stops adding blocks past this; at least one block always fits,
/// since a block is at most `max_block_bytes`).
pub const MAX_SYNC_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest encoded sync request accepted.
pub const MAX_SYNC_REQUEST_BYTES: usize = 1024;
/// Largest encoded transaction accepted from gossip.
pub const MAX_TX_GOSSIP_BYTES: usize = palisade_ledger::tx::MAX_TX_BYTES;

/// Which of a shard's two gossip topics a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TopicKind {
    /// Signed consensus messages of the shard's committee.
    Consensus,
    /// Signed transactions whose sender lives on the shard.
    Txs,
}

impl TopicKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            TopicKind::Consensus => "consensus",
            TopicKind::Txs => "txs",
        }
    }
}

/// The gossipsub topic name of `(chain_id, shard, kind)`. Binding the chain id
/// keeps two networks on one machine from hearing each other.
pub fn topic(chain_id: &str, shard: ShardId, kind: TopicKind) -> String {
    format!("/palisade/{WIRE_VERSION}/{chain_id}/shard/{shard}/{}", kind.label())
}

/// Asks a peer for committed blocks of `shard` from `from_height` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The shard.
    pub shard: ShardId,
    /// First height wanted (at least 1).
    pub from_height: u64,
    /// Most blocks wanted (the server caps it at [`MAX_SYNC_BLOCKS`]).
    pub max_blocks: u32,
}

/// One committed block as stored: the encoded ledger block and its encoded
/// commit certificate. The receiver verifies both before using either.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedBlock {
    /// `palisade_ledger::Block` bytes.
    #[serde(with = "serde_bytes")]
    pub block: Vec<u8>,
    /// `palisade_consensus::CommitCertificate` bytes (bincode).
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
}

/// The answer to a [`SyncRequest`]: consecutive blocks starting at the
/// requested height (possibly none: the server has nothing that high), and
/// the server's committed height for that shard so the client knows whether
/// to ask again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The shard.
    pub shard: ShardId,
    /// The server's committed height of `shard` (0 if it does not track it).
    pub tip_height: u64,
    /// Consecutive blocks from the requested height.
    pub blocks: Vec<SyncedBlock>,
}
