//! A shard's chain in the store, and the ledger duties the consensus host
//! owes the replica: validate proposed blocks, build proposals, commit
//! certified blocks (from the replica or from sync), and serve committed
//! blocks to peers that are behind.
//!
//! Execution results are cached per block hash on the current tip, so a
//! block validated (or built) once is not executed again when it commits.
//!
//! The chain also knows the committee that certifies its next block: the
//! genesis one minus the validators jailed so far, refreshed whenever a
//! committed block slashes someone.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_consensus::{BlockHash, CommitCertificate, Committee, Decision, ShardId, ValidatorIndex};
use palisade_ledger::execute::{Built, Extras, apply_block, build_block};
use palisade_ledger::genesis::Genesis;
use palisade_ledger::slashing::{EvidenceRefused, SlashRecord};
use palisade_ledger::store::{ShardStore, Store, StoreError};
use palisade_ledger::{Address, Block, Hash, Outcome, ReceiptBatch, SignedTx, State, Tip, TxError, codec, committee};

use crate::wire::{MAX_SYNC_BLOCKS, MAX_SYNC_RESPONSE_BYTES, SyncRequest, SyncResponse, SyncedBlock};

/// Most execution results cached on one tip (the replica keeps at most
/// `MAX_BLOCKS_PER_HEIGHT` blocks per height; this is a backstop).
const MAX_CACHED_OUTCOMES: usize = 16;
/// Largest encoded commit certificate accepted: a full committee of
/// signatures with generous room.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// How far ahead of our clock a proposed block's timestamp may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// Why a block from a peer cannot be used. The peer's fault, never ours.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The bytes do not decode.
    #[error("undecodable {what}: {reason}")]
    Decode {
        /// Block or certificate.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The block is not what the certificate or proposal claims.
    #[error("{0}")]
    Mismatch(String),
    /// The certificate does not prove finality for this committee.
    #[error("certificate does not verify: {0}")]
    Certificate(String),
    /// The block does not execute on our tip.
    #[error("invalid block: {0}")]
    Invalid(String),
}

/// A failure committing: the peer's data, or our storage (fatal).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Bad data from a peer.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A block this node built to propose.
pub struct Proposed {
    /// The encoded block.
    pub block: Vec<u8>,
    /// Its hash.
    pub hash: BlockHash,
    /// Candidates that no longer execute, and why.
    pub rejected: Vec<(Hash, TxError)>,
    /// Evidence the block could not carry, and why.
    pub refused_evidence: Vec<(Hash, EvidenceRefused)>,
}

/// A block just made final here.
pub struct Committed {
    /// The block.
    pub block: Block,
    /// Its header hash.
    pub hash: Hash,
    /// Its certificate.
    pub certificate: CommitCertificate,
    /// Its encoded size.
    pub bytes: usize,
    /// Receipts it emitted for other shards, in block order.
    pub outgoing: Vec<palisade_ledger::Receipt>,
    /// The members jailed in the committee that certified it.
    pub jailed: Vec<ValidatorIndex>,
    /// Validators it slashed; when not empty the committee changed from the
    /// next height on ([`Chain::committee`]).
    pub slashed: Vec<(Address, SlashRecord)>,
}

/// One shard's chain and execution cache.
pub struct Chain {
    state: ShardStore,
    committee: Committee,
    chain_id: String,
    shard: ShardId,
    max_block_bytes: usize,
    outcomes: BTreeMap<BlockHash, Outcome>,
}

impl Chain {
    /// Opens `shard` in `store` (writing its genesis state the first time).
    pub fn open(
        store: Arc<Store>,
        genesis: &Genesis,
        shard: ShardId,
        max_block_bytes: usize,
    ) -> Result<Chain, StoreError> {
        let state = ShardStore::open(store, genesis, shard)?;
        let committee = committee::current(&state)?;
        Ok(Chain {
            state,
            committee,
            chain_id: genesis.chain_id.clone(),
            shard,
            max_block_bytes,
            outcomes: BTreeMap::new(),
        })
    }

    /// The committed tip.
    pub fn tip(&self) -> Tip {
        self.state.tip()
    }

    /// The committee that certifies the next block.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The committed state (for the mempool's checks).
    pub fn state(&self) -> &ShardStore {
        &self.state
    }

    fn decode_block(&self, bytes: &[u8]) -> Result<Block, Refused> {
        Block::from_bytes(bytes, self.max_block_bytes)
            .map_err(|e| Refused::Decode { what: "block", reason: e.to_string() })
    }

    fn cache(&mut self, hash: BlockHash, outcome: Outcome) {
        if self.outcomes.len() >= MAX_CACHED_OUTCOMES {
            self.outcomes.pop_first();
        }
        self.outcomes.insert(hash, outcome);
    }

    /// `ValidateBlock`: the bytes decode (bounded), hash to `block_hash`, are
    /// for `height`, carry a timestamp not too far in our future, and execute
    /// on the committed tip.
    pub fn validate(&mut self, height: u64, block_hash: BlockHash, bytes: &[u8], now_ms: u64) -> Result<(), Refused> {
        let block = self.decode_block(bytes)?;
        if block.hash().0 != block_hash {
            return Err(Refused::Mismatch("block bytes do not hash to the proposed hash".into()));
        }
        if block.header.height != height {
            return Err(Refused::Mismatch(format!(
                "block is for height {}, proposed at {height}",
                block.header.height
            )));
        }
        if block.header.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
            return Err(Refused::Invalid(format!(
                "timestamp {} is more than {MAX_CLOCK_DRIFT_MS} ms ahead of ours ({now_ms})",
                block.header.timestamp_ms
            )));
        }
        if self.outcomes.contains_key(&block_hash) {
            return Ok(());
        }
        let outcome = apply_block(&self.state, &block).map_err(|e| Refused::Invalid(e.to_string()))?;
        self.cache(block_hash, outcome);
        Ok(())
    }

    /// Builds the next block from evidence and receipt batches `extras` and
    /// `candidates` as `proposer`.
    pub fn build(
        &mut self,
        proposer: Address,
        now_ms: u64,
        extras: Extras,
        candidates: Vec<SignedTx>,
    ) -> Result<Proposed, StoreError> {
        let Built { block, outcome, rejected, refused_evidence } =
            build_block(&self.state, proposer, now_ms, extras, candidates).map_err(|e| match e {
                palisade_ledger::BlockError::State(e) => StoreError::State(e),
                // Building on our own tip from our own state fails only on
                // storage errors; anything else is a bug worth stopping for.
                other => panic!("building a block on our own tip failed: {other}"),
            })?;
        let hash = block.hash().0;
        self.cache(hash, outcome);
        Ok(Proposed { block: block.to_bytes(), hash, rejected, refused_evidence })
    }

    /// Commits a certified block at the next height. The certificate must
    /// verify against the committee and the bytes must be the certified block
    /// and execute on our tip.
    pub fn commit(&mut self, certificate: CommitCertificate, bytes: &[u8]) -> Result<Committed, CommitError> {
        let expected = self.tip().height.saturating_add(1);
        if certificate.height != expected {
            return Err(Refused::Mismatch(format!(
                "certificate for height {}, expected {expected}",
                certificate.height
            ))
            .into());
        }
        certificate
            .verify(&self.committee, &self.chain_id, self.shard)
            .map_err(|e| Refused::Certificate(e.to_string()))?;
        let block = self.decode_block(bytes)?;
        let hash = block.hash();
        if hash.0 != certificate.block_hash {
            return Err(Refused::Mismatch("block bytes do not hash to the certified hash".into()).into());
        }
        let tip = self.tip();
        let outcome = match self.outcomes.remove(&certificate.block_hash) {
            Some(outcome) if outcome.parent == tip => outcome,
            _ => apply_block(&self.state, &block).map_err(|e| match e {
                palisade_ledger::BlockError::State(e) => CommitError::Store(StoreError::State(e)),
                other => CommitError::Refused(Refused::Invalid(other.to_string())),
            })?,
        };
        self.state.commit(&block, &codec::encode(&certificate), &outcome)?;
        self.outcomes.clear();
        let jailed = self.committee.inactive();
        if !outcome.slashed.is_empty() {
            self.committee = committee::current(&self.state).map_err(StoreError::State)?;
        }
        Ok(Committed {
            block,
            hash,
            certificate,
            bytes: bytes.len(),
            outgoing: outcome.outgoing,
            jailed,
            slashed: outcome.slashed,
        })
    }

    /// The last `count` committed blocks with their certificates, oldest
    /// first, for [`palisade_consensus::Replica::restore`].
    pub fn recent_decisions(&self, store: &Store, count: usize) -> Result<Vec<Decision>, StoreError> {
        let tip = self.tip().height;
        let mut decisions = Vec::new();
        let first = tip.saturating_sub(count as u64).saturating_add(1);
        for height in first..=tip {
            if height == 0 {
                continue;
            }
            let (Some(block), Some(certificate)) =
                (store.block_bytes(self.shard, height)?, store.certificate(self.shard, height)?)
            else {
                continue;
            };
            let certificate = decode_certificate(&certificate).map_err(|e| StoreError::Corrupt {
                what: format!("certificate {}/{height}", self.shard),
                reason: e.to_string(),
            })?;
            decisions.push(Decision { certificate, block });
        }
        Ok(decisions)
    }
}

/// Decodes a commit certificate from stored or peer bytes (bounded).
pub fn decode_certificate(bytes: &[u8]) -> Result<CommitCertificate, Refused> {
    codec::decode(bytes, MAX_CERTIFICATE_BYTES)
        .map_err(|e| Refused::Decode { what: "certificate", reason: e.to_string() })
}

/// Answers a peer's sync request from the store: consecutive committed blocks
/// from the requested height, bounded in count and bytes; or, for a receipt
/// scan, the receipts those blocks emitted for the asking shard.
pub fn serve_sync(store: &Arc<Store>, genesis: &Genesis, request: &SyncRequest) -> Result<SyncResponse, StoreError> {
    if let Some(dest) = request.receipts_for {
        return serve_receipts(store, genesis, request, dest);
    }
    let tip_height = store.tip(request.shard)?.map_or(0, |tip| tip.height);
    let mut response = SyncResponse::blocks(request.shard, tip_height, Vec::new());
    let count = u64::from(request.max_blocks.clamp(1, MAX_SYNC_BLOCKS));
    let mut bytes = 0usize;
    let from = request.from_height.max(1);
    for height in from..from.saturating_add(count) {
        if height > tip_height {
            break;
        }
        let (Some(block), Some(certificate)) =
            (store.block_bytes(request.shard, height)?, store.certificate(request.shard, height)?)
        else {
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

/// A receipt scan: reads the requested range of our chain (bounded in
/// blocks) and returns, per block that emitted receipts for `dest`, its
/// proven batch; stops early rather than exceed the response's byte bound.
fn serve_receipts(
    store: &Arc<Store>,
    genesis: &Genesis,
    request: &SyncRequest,
    dest: ShardId,
) -> Result<SyncResponse, StoreError> {
    let shard = request.shard;
    // Who was jailed at each height comes from the current state (slash
    // records are never removed), read once for the whole range.
    let reader = match genesis.shard_context(shard) {
        Some(context) => ShardStore::reader(store.clone(), context)?,
        None => None,
    };
    let jailings = match &reader {
        Some(reader) => committee::Jailings::read(reader)?,
        None => committee::Jailings::default(),
    };
    let tip_height = store.tip(shard)?.map_or(0, |tip| tip.height);
    let mut response = SyncResponse::empty(request);
    response.tip_height = tip_height;
    let from = request.from_height.max(1);
    let last = from.saturating_add(u64::from(request.cap().max(1))).saturating_sub(1).min(tip_height);
    let mut bytes = 0usize;
    for height in from..=last {
        let (Some(block), Some(certificate)) = (store.block(shard, height)?, store.certificate(shard, height)?) else {
            break;
        };
        let certificate = decode_certificate(&certificate).map_err(|e| StoreError::Corrupt {
            what: format!("certificate {shard}/{height}"),
            reason: e.to_string(),
        })?;
        let jailed = jailings.at(height);
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
