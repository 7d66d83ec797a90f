//! The server side of block sync and receipt scans: answers a peer's
//! [`SyncRequest`] from a [`ChainRead`], bounded in blocks and bytes. The
//! node serves from RocksDB on the network task's blocking threads, the
//! simulator from a core's in-memory store; both run this code.

use palisade_ledger::{Block, Genesis, Hash, ReceiptBatch, ShardId, codec};

use crate::chain::decode_certificate;
use crate::storage::{ChainRead, StorageError};
use crate::wire::{MAX_SYNC_BLOCKS, MAX_SYNC_RESPONSE_BYTES, SyncRequest, SyncResponse, SyncedBlock};

/// Answers a peer's sync request from `chain` (the chain of
/// `request.shard`): consecutive committed blocks from the requested height,
/// bounded in count and bytes; or, for a receipt scan, the receipts those
/// blocks emitted for the asking shard.
pub fn serve_sync<R: ChainRead + ?Sized>(
    chain: &R,
    genesis: &Genesis,
    request: &SyncRequest,
) -> Result<SyncResponse, StorageError> {
    if let Some(dest) = request.receipts_for {
        return serve_receipts(chain, genesis, request, dest);
    }
    let tip_height = chain.tip_height()?;
    let mut response = SyncResponse::blocks(request.shard, tip_height, Vec::new());
    let count = u64::from(request.max_blocks.clamp(1, MAX_SYNC_BLOCKS));
    let mut bytes = 0usize;
    let from = request.from_height.max(1);
    for height in from..from.saturating_add(count) {
        if height > tip_height {
            break;
        }
        let (Some(block), Some(certificate)) = (chain.block_bytes(height)?, chain.certificate(height)?) else {
            break;
        };
        let size = block.len().saturating_add(certificate.len());
        // Always send at least one block, so a large block still syncs.
        if !response.blocks.is_empty() && bytes.saturating_add(size) > MAX_SYNC_RESPONSE_BYTES {
            break;
        }
        bytes = bytes.saturating_add(size);
        response.blocks.push(SyncedBlock { block, certificate });
    }
    Ok(response)
}

/// A receipt scan: reads the requested range of the chain (bounded in
/// blocks) and returns, per block that emitted receipts for `dest`, its
/// proven batch; stops early rather than exceed the response's byte bound.
/// A block that emitted no receipts at all (its header's receipts root is
/// empty: most blocks) is skipped on its header alone, so an idle scan
/// costs a few point reads, not a decode of every transaction.
fn serve_receipts<R: ChainRead + ?Sized>(
    chain: &R,
    genesis: &Genesis,
    request: &SyncRequest,
    dest: ShardId,
) -> Result<SyncResponse, StorageError> {
    let shard = request.shard;
    // Who was jailed at each height: read once, when a batch needs it.
    let mut jailings = None;
    let tip_height = chain.tip_height()?;
    let mut response = SyncResponse::empty(request);
    response.tip_height = tip_height;
    let from = request.from_height.max(1);
    let last = from.saturating_add(u64::from(request.cap().max(1))).saturating_sub(1).min(tip_height);
    let max_block_bytes = crate::max_block_bytes(genesis);
    let mut bytes = 0usize;
    for height in from..=last {
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| StorageError(format!("stored {what} {shard}/{height}: {e}"));
        let Some(block) = chain.block_bytes(height)? else { break };
        let header = Block::header_from_bytes(&block, max_block_bytes).map_err(|e| corrupt("block header", &e))?;
        if header.receipts_root == Hash::ZERO {
            response.scanned_to = height;
            continue;
        }
        let Some(certificate) = chain.certificate(height)? else { break };
        let block = Block::from_bytes(&block, max_block_bytes).map_err(|e| corrupt("block", &e))?;
        let certificate = decode_certificate(&certificate).map_err(|e| corrupt("certificate", &e))?;
        let jailed = match &jailings {
            Some(jailings) => jailings,
            None => jailings.insert(chain.jailings()?),
        }
        .at(height);
        if let Some(batch) = ReceiptBatch::for_dest(&block, &certificate, &jailed, genesis.shard_count, dest) {
            let encoded = codec::encode(&batch);
            if bytes.saturating_add(encoded.len()) > MAX_SYNC_RESPONSE_BYTES {
                break;
            }
            bytes = bytes.saturating_add(encoded.len());
            response.receipts.push(serde_bytes::ByteBuf::from(encoded));
        }
        response.scanned_to = height;
    }
    Ok(response)
}
