//! Blocks: one per shard per height. The header commits to everything (parent,
//! transactions, receipts out and in, evidence, resulting state, committee); its hash
//! is what consensus agrees on.

use palisade_consensus::Evidence;
use rs_merkle::MerkleTree;
use serde::{Deserialize, Serialize};

// The header is its own module so receipt batches, which carry a source
// header, sit below the blocks that carry them; re-exported here.
pub use crate::header::BlockHeader;
use crate::{
    codec::{self, DecodeError},
    hash::{Hash, MerkleBlake3, domain},
    receipt::ReceiptBatch,
    tx::SignedTx,
};

/// Backstop on an encoded block from outside; genesis `max_block_bytes` is
/// the tighter, configured limit.
pub const MAX_BLOCK_BYTES_HARD: usize = 32 * 1024 * 1024;

/// A header and the transactions it commits to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Executed in order, after `incoming`.
    pub txs: Vec<SignedTx>,
    /// Receipts from other shards credited by this block, in canonical
    /// order (see [`crate::receipt`]).
    pub incoming: Vec<ReceiptBatch>,
    /// Equivocation evidence executed first of all (see [`crate::slashing`]).
    pub evidence: Vec<Evidence>,
}

impl Block {
    /// Hash of the header.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes hostile bytes, at most `limit` long. Does not validate.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Block, DecodeError> {
        codec::decode(bytes, limit.min(MAX_BLOCK_BYTES_HARD))
    }

    /// The header alone, from the front of a block's encoding (a block
    /// encodes its header first): what a reader needs to skip a block
    /// without decoding its transactions.
    pub fn header_from_bytes(bytes: &[u8], limit: usize) -> Result<BlockHeader, DecodeError> {
        codec::decode_prefix(bytes, limit.min(MAX_BLOCK_BYTES_HARD))
    }
}

/// The Merkle root over `txs`' ids. Leaves are domain-separated from inner
/// nodes so no inner node can pose as a transaction. Empty → [`Hash::ZERO`].
pub fn tx_root(txs: &[SignedTx]) -> Hash {
    let ids: Vec<Hash> = txs.iter().map(SignedTx::id).collect();
    tx_root_of_ids(&ids)
}

/// [`tx_root`] from already computed transaction ids.
pub fn tx_root_of_ids(ids: &[Hash]) -> Hash {
    let leaves: Vec<[u8; 32]> = ids.iter().map(|id| tx_leaf(id).0).collect();
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    Hash(MerkleTree::<MerkleBlake3>::from_leaves(&leaves).root().unwrap_or([0; 32]))
}

/// The leaf of a transaction id in [`tx_root`].
pub fn tx_leaf(id: &Hash) -> Hash {
    Hash::digest(domain::TX_LEAF, &id.0)
}

/// Verifies `id` is at `index` of `total` in a block with `root`.
pub fn verify_tx_inclusion(root: &Hash, id: &Hash, index: usize, total: usize, proof: &[[u8; 32]]) -> bool {
    let proof = rs_merkle::MerkleProof::<MerkleBlake3>::new(proof.to_vec());
    proof.verify(root.0, &[index], &[tx_leaf(id).0], total)
}

/// The sibling hashes proving the transaction at `index` is in `txs`.
pub fn tx_inclusion_proof(txs: &[SignedTx], index: usize) -> Vec<[u8; 32]> {
    let leaves: Vec<[u8; 32]> = txs.iter().map(|tx| tx_leaf(&tx.id()).0).collect();
    MerkleTree::<MerkleBlake3>::from_leaves(&leaves).proof(&[index]).proof_hashes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        amount::Amount,
        keys::Keypair,
        tx::{TxBody, TxKind},
    };

    fn txs(n: u64) -> Vec<SignedTx> {
        let alice = Keypair::dev("alice");
        (0..n)
            .map(|nonce| {
                TxBody {
                    chain_id: "c".into(),
                    sender: alice.address(),
                    nonce,
                    fee: Amount(1),
                    kind: TxKind::Transfer { to: alice.address(), amount: Amount(nonce) },
                    expires_at: None,
                }
                .sign(&alice)
            })
            .collect()
    }

    #[test]
    fn tx_root_commits_to_content_and_order() {
        let mut list = txs(5);
        let root = tx_root(&list);
        list.swap(1, 2);
        assert_ne!(tx_root(&list), root);
        assert_eq!(tx_root(&[]), Hash::ZERO);
    }

    #[test]
    fn inclusion_proofs_verify_only_at_their_position() {
        let list = txs(7);
        let root = tx_root(&list);
        for (index, tx) in list.iter().enumerate() {
            let proof = tx_inclusion_proof(&list, index);
            assert!(verify_tx_inclusion(&root, &tx.id(), index, list.len(), &proof));
            let other = (index + 1) % list.len();
            assert!(!verify_tx_inclusion(&root, &tx.id(), other, list.len(), &proof));
        }
    }

    #[test]
    fn the_header_reads_from_the_front_of_a_block() {
        let header = BlockHeader {
            chain_id: "c".into(),
            shard: 2,
            height: 7,
            parent: Hash::plain(b"parent"),
            proposer: Keypair::dev("bob").address(),
            timestamp_ms: 1_000,
            tx_root: Hash::plain(b"txs"),
            receipts_root: Hash::plain(b"receipts"),
            inbound_root: Hash::ZERO,
            evidence_root: Hash::ZERO,
            state_root: Hash::plain(b"state"),
            committee_hash: Hash::plain(b"committee"),
            next_committee_hash: Hash::ZERO,
        };
        let block = Block { header: header.clone(), txs: txs(3), incoming: Vec::new(), evidence: Vec::new() };
        let bytes = block.to_bytes();
        assert_eq!(Block::header_from_bytes(&bytes, bytes.len()).ok(), Some(header));
        assert!(Block::header_from_bytes(&bytes[..20], bytes.len()).is_err(), "a cut header is refused");
        assert!(Block::header_from_bytes(&bytes, 10).is_err(), "the limit holds");
    }
}
