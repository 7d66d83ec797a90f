//! A shard's chain in the store, and the ledger duties the consensus host
//! owes the replica: validate proposed blocks, build proposals, commit
//! certified blocks (from the replica or from sync), and serve committed
//! blocks to peers that are behind.
//!
//! Execution results are cached per block hash on the current tip, so a
//! block validated (or built) once is not executed again when it commits.
//!
//! The chain also knows the committee that certifies its next block: the
//! genesis one minus the validators jailed so far (rebuilt whenever a
//! committed block slashes someone), with the next height's leader
//! rotation (refreshed after every commit: see `palisade_ledger::rotation`).
//!
//! Serving blocks to peers is [`crate::serve`]'s, over [`ChainRead`].

use std::collections::BTreeMap;

use palisade_consensus::{BlockHash, CommitCertificate, Committee, Decision, ShardId, ValidatorIndex};
use palisade_ledger::execute::{Built, Extras, apply_block, apply_block_verified, build_block};
use palisade_ledger::genesis::Genesis;
use palisade_ledger::slashing::{EvidenceRefused, SlashRecord};
use palisade_ledger::{Address, Amount, Block, Hash, Outcome, SignedTx, Tip, TxError, codec, committee, fee};

use crate::storage::{ChainStore, StorageError};

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
    Store(#[from] StorageError),
    /// A block the committee certified does not execute on our state: ours
    /// is wrong (see [`crate::quarantine`]).
    #[error("certified block at height {height} does not execute here: {reason}")]
    Diverged {
        /// The block's height.
        height: u64,
        /// What execution said.
        reason: String,
    },
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
pub struct Chain<S> {
    state: S,
    committee: Committee,
    /// The base fee the next block charges (`palisade_ledger::fee`).
    base_fee: Amount,
    chain_id: String,
    shard: ShardId,
    max_block_bytes: usize,
    outcomes: BTreeMap<BlockHash, Outcome>,
}

impl<S: ChainStore> Chain<S> {
    /// The chain of `shard` over its opened `state`.
    pub fn open(state: S, genesis: &Genesis, shard: ShardId, max_block_bytes: usize) -> Result<Chain<S>, StorageError> {
        let committee = committee::current(&state)?;
        let base_fee = fee::base_fee(&state)?;
        Ok(Chain {
            state,
            committee,
            base_fee,
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

    /// The base fee the next block charges.
    pub fn base_fee(&self) -> Amount {
        self.base_fee
    }

    /// The committed state (for the mempool's checks).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The store, for what the chain does not write itself (the receipt
    /// scans' resume points).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// Drops cached execution results, so the next validation or commit
    /// executes from the store again (a diverged node's re-check).
    pub fn forget_outcomes(&mut self) {
        self.outcomes.clear();
    }

    /// Gives the store back (a simulated crash keeps only what it holds).
    pub fn into_store(self) -> S {
        self.state
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
    /// on the committed tip. Transactions for which `verified(id)` holds (our
    /// mempool verified them) are not verified again.
    pub fn validate(
        &mut self,
        height: u64,
        block_hash: BlockHash,
        bytes: &[u8],
        now_ms: u64,
        verified: &dyn Fn(&Hash) -> bool,
    ) -> Result<(), Refused> {
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
        let outcome =
            apply_block_verified(&self.state, &block, verified).map_err(|e| Refused::Invalid(e.to_string()))?;
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
    ) -> Result<Proposed, StorageError> {
        let Built { block, outcome, rejected, refused_evidence } =
            build_block(&self.state, proposer, now_ms, extras, candidates).map_err(|e| match e {
                palisade_ledger::BlockError::State(e) => StorageError::from(e),
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
            // The certificate verified and the bytes are the certified
            // block: if it does not execute, our state is what is wrong.
            _ => apply_block(&self.state, &block).map_err(|e| match e {
                palisade_ledger::BlockError::State(e) => CommitError::Store(e.into()),
                other => CommitError::Diverged { height: expected, reason: other.to_string() },
            })?,
        };
        self.state.commit(&block, &codec::encode(&certificate), &outcome)?;
        self.outcomes.clear();
        let jailed = self.committee.inactive();
        // A jailing or the end of an epoch (a hand-over) rebuilds the
        // committee; otherwise only the rotation can change (a leader
        // benched for a failed turn, or back after its bench).
        let closes_epoch = self.state.context().staking.is_some_and(|s| s.closes_epoch(expected));
        self.committee = if outcome.slashed.is_empty() && !closes_epoch {
            committee::rotated(&self.state, &self.committee)
        } else {
            committee::current(&self.state)
        }
        .map_err(StorageError::from)?;
        self.base_fee = fee::base_fee(&self.state).map_err(StorageError::from)?;
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
    pub fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, StorageError> {
        let tip = self.tip().height;
        let mut decisions = Vec::new();
        let first = tip.saturating_sub(count as u64).saturating_add(1);
        for height in first..=tip {
            if height == 0 {
                continue;
            }
            let (Some(block), Some(certificate)) = (self.state.block_bytes(height)?, self.state.certificate(height)?)
            else {
                continue;
            };
            let certificate = decode_certificate(&certificate)
                .map_err(|e| StorageError(format!("stored certificate {}/{height}: {e}", self.shard)))?;
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
