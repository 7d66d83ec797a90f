//! What validators send each other: gossip topics, the block-sync protocol's
//! request and response, and the size limits every peer byte is held to.
//!
//! Everything here is hostile until decoded under a limit and verified:
//! consensus messages by [`palisade_consensus::SignedMessage::verify`],
//! transactions by the mempool, synced blocks by their commit certificate.

use palisade_ledger::ShardId;
use serde::{Deserialize, Serialize};

/// Version of the gossip topics and sync protocol; bumped on any change to
/// their encoding. Nodes of different versions are on different topics and
/// drop each other at identify, rather than penalise each other's messages.
/// 4: gossip without libp2p envelope signatures, content-addressed ids;
/// transactions gossiped in batches ([`TX_BATCH_MAX_TXS`]).
pub const WIRE_VERSION: u32 = 4;

/// Most blocks one sync response carries.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes of blocks and certificates one sync response carries (the
/// server stops adding blocks past this; at least one block always fits,
/// since a block is at most `max_block_bytes`).
pub const MAX_SYNC_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest encoded sync request accepted.
pub const MAX_SYNC_REQUEST_BYTES: usize = 1024;
/// Most source blocks one receipt scan reads (its answer carries only the
/// receipts, so a scan can cover far more blocks than a block sync).
pub const MAX_RECEIPT_SCAN_BLOCKS: u32 = 256;
/// Most transactions one gossiped batch carries.
pub const TX_BATCH_MAX_TXS: usize = 512;
/// A node publishes the transactions its clients submitted in batches: once
/// this many bytes of them wait...
pub const TX_BATCH_FLUSH_BYTES: usize = 64 * 1024;
/// ...or, on a shard that commits at its block pace, this long before the
/// next proposal is due (`block_interval_ms` after the last commit): time
/// for the batch to reach the leader. One gossip message per batch and
/// about one batch per block, not per transaction: protobuf, caches, ids,
/// scoring and stream framing are paid per message.
pub const TX_BATCH_LEAD_MS: u64 = 15;
/// ...or this long after the first of them was admitted, on a shard whose
/// last commit is older than two block intervals (idle, or stalled): its
/// next leader proposes as soon as it holds a transaction.
pub const TX_BATCH_FLUSH_MS: u64 = 20;
/// Largest transaction batch accepted from gossip: a batch just under the
/// flush size, one largest transaction more, and the encoding's lengths.
pub const MAX_TX_GOSSIP_BYTES: usize =
    TX_BATCH_FLUSH_BYTES + palisade_ledger::tx::MAX_TX_BYTES + 16 * (TX_BATCH_MAX_TXS + 1);

/// A transaction topic message: transactions, each in its canonical
/// encoding (so a receiver hashes each for its id without encoding it
/// again).
pub fn encode_tx_batch(txs: &[serde_bytes::ByteBuf]) -> Vec<u8> {
    palisade_ledger::codec::encode(&txs)
}

/// Decodes a transaction topic message (bounded by [`MAX_TX_GOSSIP_BYTES`];
/// the transactions themselves are decoded, bounded, by the receiver).
pub fn decode_tx_batch(data: &[u8]) -> Result<Vec<serde_bytes::ByteBuf>, palisade_ledger::codec::DecodeError> {
    palisade_ledger::codec::decode(data, MAX_TX_GOSSIP_BYTES)
}

/// Which of a shard's gossip topics a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TopicKind {
    /// Signed consensus messages of the shard's committee.
    Consensus,
    /// Signed transactions whose sender lives on the shard.
    Txs,
    /// Certified receipt batches from other shards, for the shard to credit
    /// (an encoded `palisade_ledger::ReceiptBatch`).
    Receipts,
    /// Equivocation evidence against the shard's committee (an encoded
    /// `palisade_consensus::Evidence`), for its next proposer to execute.
    Evidence,
}

impl TopicKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            TopicKind::Consensus => "consensus",
            TopicKind::Txs => "txs",
            TopicKind::Receipts => "receipts",
            TopicKind::Evidence => "evidence",
        }
    }
}

/// The gossipsub topic name of `(chain_id, shard, kind)`. Binding the chain id
/// keeps two networks on one machine from hearing each other.
pub fn topic(chain_id: &str, shard: ShardId, kind: TopicKind) -> String {
    format!("/palisade/{WIRE_VERSION}/{chain_id}/shard/{shard}/{}", kind.label())
}

/// Asks a peer for committed blocks of `shard` from `from_height` on; or,
/// with `receipts_for`, for the receipts those blocks emit for that shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The shard.
    pub shard: ShardId,
    /// First height wanted (at least 1).
    pub from_height: u64,
    /// Most blocks wanted, or scanned for receipts (the server caps it at
    /// [`MAX_SYNC_BLOCKS`], or [`MAX_RECEIPT_SCAN_BLOCKS`]).
    pub max_blocks: u32,
    /// A receipt scan: the destination shard (run by the asking node) whose
    /// receipts are wanted, instead of the blocks.
    pub receipts_for: Option<ShardId>,
}

impl SyncRequest {
    /// Blocks of `shard` from `from_height`, as many as a response carries.
    pub fn blocks(shard: ShardId, from_height: u64) -> SyncRequest {
        SyncRequest { shard, from_height, max_blocks: MAX_SYNC_BLOCKS, receipts_for: None }
    }

    /// Receipts for `dest` emitted by blocks of `source` from `from_height`.
    pub fn receipts(source: ShardId, from_height: u64, dest: ShardId) -> SyncRequest {
        SyncRequest { shard: source, from_height, max_blocks: MAX_RECEIPT_SCAN_BLOCKS, receipts_for: Some(dest) }
    }

    /// The most blocks the server reads for this request.
    pub fn cap(&self) -> u32 {
        let limit = if self.receipts_for.is_some() { MAX_RECEIPT_SCAN_BLOCKS } else { MAX_SYNC_BLOCKS };
        self.max_blocks.min(limit)
    }

    /// The shard whose node asked (and gets the answer).
    pub fn asker(&self) -> ShardId {
        self.receipts_for.unwrap_or(self.shard)
    }

    /// A server's check of an inbound request before its store is read: the
    /// shard must be one it runs (`serves`), the range must start at height
    /// 1 or above and ask for something, and a receipt scan must be for
    /// another shard; the block count is capped ([`SyncRequest::cap`]).
    pub fn admit(mut self, serves: impl Fn(ShardId) -> bool) -> Result<SyncRequest, &'static str> {
        if !serves(self.shard) {
            return Err("shard not run here");
        }
        if self.receipts_for == Some(self.shard) {
            return Err("receipts of a shard for itself");
        }
        if self.from_height == 0 {
            return Err("from_height 0");
        }
        if self.max_blocks == 0 {
            return Err("asks for no blocks");
        }
        self.max_blocks = self.cap();
        Ok(self)
    }
}

impl SyncResponse {
    /// Blocks of `shard` from a server at `tip_height`.
    pub fn blocks(shard: ShardId, tip_height: u64, blocks: Vec<SyncedBlock>) -> SyncResponse {
        SyncResponse { shard, tip_height, blocks, receipts_for: None, scanned_to: 0, receipts: Vec::new() }
    }

    /// A client's check of an answer against the request it answers (the
    /// blocks themselves are the shard's to verify).
    pub fn check(&self, request: &SyncRequest) -> Result<(), String> {
        if self.shard != request.shard {
            return Err(format!("answered for shard {} instead of {}", self.shard, request.shard));
        }
        if self.receipts_for != request.receipts_for {
            return Err("answered another kind of request".to_owned());
        }
        let asked = request.cap();
        if self.blocks.len() > usize::try_from(asked).unwrap_or(usize::MAX) {
            return Err(format!("sent {} blocks, {asked} asked for", self.blocks.len()));
        }
        if request.receipts_for.is_some() {
            let last = request.from_height.saturating_add(u64::from(asked)).saturating_sub(1);
            if !self.blocks.is_empty()
                || self.scanned_to > last
                || self.receipts.len() > usize::try_from(asked).unwrap_or(usize::MAX)
            {
                return Err(format!("a receipt scan answer beyond the {asked} blocks asked for"));
            }
        } else if !self.receipts.is_empty() {
            return Err("receipts in a block sync answer".to_owned());
        }
        Ok(())
    }

    /// What a server answers `request` when it will not (or cannot) serve
    /// it: nothing, with a tip of 0 so the client does not wait on us.
    pub fn empty(request: &SyncRequest) -> SyncResponse {
        SyncResponse {
            receipts_for: request.receipts_for,
            scanned_to: request.from_height.saturating_sub(1),
            ..SyncResponse::blocks(request.shard, 0, Vec::new())
        }
    }
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
    /// Consecutive blocks from the requested height (none for a receipt scan).
    pub blocks: Vec<SyncedBlock>,
    /// For a receipt scan: the destination it was for.
    pub receipts_for: Option<ShardId>,
    /// For a receipt scan: the last height scanned (every block from the
    /// requested height through this one); below the requested height if
    /// nothing was.
    pub scanned_to: u64,
    /// For a receipt scan: the encoded `ReceiptBatch` of each scanned block
    /// that emitted receipts for the destination, in height order.
    pub receipts: Vec<serde_bytes::ByteBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(max_blocks: u32) -> SyncRequest {
        SyncRequest { max_blocks, ..SyncRequest::blocks(1, 5) }
    }

    fn block(size: usize) -> SyncedBlock {
        SyncedBlock { block: vec![7; size], certificate: vec![9; 100] }
    }

    #[test]
    fn admit_checks_shard_and_range_and_caps_the_count() {
        let admit = |request: SyncRequest| request.admit(|shard| shard == 1);
        assert_eq!(admit(request(1_000)).map(|r| r.max_blocks), Ok(MAX_SYNC_BLOCKS));
        assert!(admit(SyncRequest { shard: 2, ..request(1) }).is_err());
        assert!(admit(SyncRequest { from_height: 0, ..request(1) }).is_err());
        assert!(admit(request(0)).is_err());
        assert_eq!(admit(SyncRequest::receipts(1, 5, 0)).map(|r| r.max_blocks), Ok(MAX_RECEIPT_SCAN_BLOCKS));
        assert!(admit(SyncRequest::receipts(1, 5, 1)).is_err(), "receipts for the source itself");
    }

    #[test]
    fn check_response_matches_the_request() {
        let ok = SyncResponse::blocks(1, 9, vec![block(1); 2]);
        assert!(ok.check(&request(2)).is_ok());
        assert!(ok.check(&request(1)).is_err());
        assert!(ok.check(&SyncRequest { shard: 2, ..request(2) }).is_err());
        let scan = SyncRequest::receipts(1, 5, 0);
        assert!(ok.check(&scan).is_err(), "blocks for a receipt scan");
        let mut answer = SyncResponse::empty(&scan);
        assert!(answer.check(&scan).is_ok());
        answer.scanned_to = 5 + u64::from(MAX_RECEIPT_SCAN_BLOCKS);
        assert!(answer.check(&scan).is_err(), "scanned past what was asked");
    }
}
