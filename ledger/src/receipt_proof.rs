//! Receipt proofs: the receipts a block emits, the batches that prove them
//! to each destination shard, and checking a batch against its source
//! shard's committee (see [`crate::receipt`] for the receipts themselves).
//!
//! This is the rules half of cross-shard receipts: it needs blocks and
//! committees, which themselves carry receipt batches, so it sits above
//! both while the data types stay below.

use palisade_consensus::{CommitCertificate, ValidatorIndex};
use serde::{Deserialize, Serialize};

use crate::{
    address::ShardId,
    block::Block,
    committee::{CertifiedError, verify_certified},
    hash::{Hash, MerkleBlake3},
    receipt::{Receipt, ReceiptBatch},
    state::Committees,
};

/// The receipts `block` emits: one per cross-shard transfer, in block
/// order. Needs no state: a block is valid only if all its transfers
/// executed. (Execution collects the same list as it goes.)
pub fn outgoing(block: &Block, shard_count: u32) -> Vec<Receipt> {
    let (shard, height) = (block.header.shard, block.header.height);
    block.txs.iter().filter_map(|tx| Receipt::emitted_by(tx, tx.id(), shard, height, shard_count)).collect()
}

/// Why a receipt batch proves nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReceiptError {
    /// Its header is for another network.
    #[error("the source header is for chain `{0}`")]
    WrongChain(String),
    /// The source is not another shard of this network.
    #[error("source shard {source_shard} cannot send receipts to shard {dest}")]
    BadSource {
        /// The header's shard.
        source_shard: ShardId,
        /// The destination checking it.
        dest: ShardId,
    },
    /// The certificate does not prove the source header final.
    #[error(transparent)]
    Certified(#[from] CertifiedError),
    /// No receipts, more than the block emitted, or not strictly ordered.
    #[error("receipts are empty, too many, or not in strictly increasing index order")]
    BadList,
    /// A receipt names another source block or destination than the batch.
    #[error("receipt {0} does not belong to this source block and destination")]
    Misplaced(Hash),
    /// A receipt's Merkle path does not lead to the header's `receipts_root`.
    #[error("receipt {0} is not in the source block")]
    NotIncluded(Hash),
}

impl ReceiptBatch {
    /// Proofs for the receipts of `block` (with `certificate`, and
    /// `jailed` its committee's jailed members) bound for `dest`, or `None`
    /// if it emitted none for `dest`.
    pub fn for_dest(
        block: &Block,
        certificate: &CommitCertificate,
        jailed: &[ValidatorIndex],
        shard_count: u32,
        dest: ShardId,
    ) -> Option<ReceiptBatch> {
        let outgoing = outgoing(block, shard_count);
        ReceiptBatch::by_dest(&block.header, certificate, jailed, &outgoing).remove(&dest)
    }

    /// Checks everything: the header is of another shard of `chain_id`,
    /// certified final by that shard's committee (from its genesis one in
    /// `committees` and the batch's jailed list), and every
    /// receipt is for `dest`, of that block, in index order, and on a Merkle
    /// path to its `receipts_root`. Says nothing about whether a receipt was
    /// already credited: that is the destination's state's business.
    pub fn verify(
        &self,
        chain_id: &str,
        committees: &Committees,
        shard_count: u32,
        dest: ShardId,
    ) -> Result<(), ReceiptError> {
        let header = &self.header;
        if header.chain_id != chain_id {
            return Err(ReceiptError::WrongChain(header.chain_id.clone()));
        }
        let source_shard = header.shard;
        let committee = committees.get(&source_shard).filter(|_| source_shard != dest);
        let Some(committee) = committee else { return Err(ReceiptError::BadSource { source_shard, dest }) };
        self.check_list(shard_count, dest)?;
        verify_certified(committee, &self.jailed, chain_id, header, &self.certificate).map(drop)?;
        Ok(())
    }

    /// The receipts' order, placement and inclusion (no signatures).
    fn check_list(&self, shard_count: u32, dest: ShardId) -> Result<(), ReceiptError> {
        let total = usize::try_from(self.total).map_err(|_| ReceiptError::BadList)?;
        if self.receipts.is_empty() || self.receipts.len() > total {
            return Err(ReceiptError::BadList);
        }
        let mut previous: Option<u32> = None;
        for proven in &self.receipts {
            if previous.is_some_and(|p| p >= proven.index) || proven.index >= self.total {
                return Err(ReceiptError::BadList);
            }
            previous = Some(proven.index);
            let r = &proven.receipt;
            if r.source_shard != self.header.shard
                || r.source_height != self.header.height
                || r.dest_shard != dest
                || r.recipient.shard(shard_count) != dest
            {
                return Err(ReceiptError::Misplaced(r.id));
            }
            let index = usize::try_from(proven.index).map_err(|_| ReceiptError::BadList)?;
            let proof = rs_merkle::MerkleProof::<MerkleBlake3>::new(proven.path.clone());
            if !proof.verify(self.header.receipts_root.0, &[index], &[r.leaf().0], total) {
                return Err(ReceiptError::NotIncluded(r.id));
            }
        }
        Ok(())
    }
}
