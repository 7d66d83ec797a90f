//! Cross-shard receipts: how money leaves one shard's chain and arrives on
//! another's, exactly once, on proof alone.
//!
//! A transfer whose recipient lives on another shard executes on the
//! sender's shard (the *source*): it debits amount + fee there and emits a
//! [`Receipt`]. A block's receipts are derived from its transactions (the
//! cross-shard transfers, in block order) and committed to by the header's
//! `receipts_root`, so a certified header proves them.
//!
//! The recipient's shard (the *destination*) credits a receipt only inside
//! a [`ReceiptBatch`]: the source header, its commit certificate, and each
//! receipt's Merkle path to the header's `receipts_root`.
//! [`ReceiptBatch::verify`] checks all of it against the source shard's
//! committee, so a relayer needs no trust and a forged or mis-certified
//! receipt is refused. The destination's state records every receipt id it
//! credited ([`crate::state::StateKey::Applied`]); execution refuses a
//! replay, so relaying a receipt many times credits it once.
//!
//! Receipts are credited in a canonical order inside a block: batches by
//! (source shard, source height), strictly increasing, and receipts by their
//! index in the source block, strictly increasing.
//!
//! This module holds the data (it sits below blocks, which carry batches);
//! building batches from a block and checking them against a committee are
//! in [`crate::receipt_proof`].

use std::collections::BTreeMap;

use palisade_consensus::{CommitCertificate, ValidatorIndex};
use rs_merkle::MerkleTree;
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    codec,
    hash::{Hash, MerkleBlake3, domain},
    header::BlockHeader,
    tx::{SignedTx, TxKind},
};

/// Money in flight from one shard to another: what the source debited and
/// the destination must credit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Receipt {
    /// The id of the transfer that emitted it (unique per chain).
    pub id: Hash,
    /// The shard that debited the sender.
    pub source_shard: ShardId,
    /// The source block's height.
    pub source_height: u64,
    /// The shard the recipient lives on.
    pub dest_shard: ShardId,
    /// Who is credited.
    pub recipient: Address,
    /// How much.
    pub amount: Amount,
}

impl Receipt {
    /// The receipt `tx` (whose id is `id`) emits as a transaction of block
    /// `height` of `shard`, if it pays an account on another shard.
    pub fn emitted_by(tx: &SignedTx, id: Hash, shard: ShardId, height: u64, shard_count: u32) -> Option<Receipt> {
        let dest_shard = dest_shard(tx, shard, shard_count)?;
        let TxKind::Transfer { to, amount } = &tx.body.kind else { return None };
        Some(Receipt { id, source_shard: shard, source_height: height, dest_shard, recipient: *to, amount: *amount })
    }

    /// Its leaf in a block's receipts tree (domain-separated from inner
    /// nodes and from transaction leaves).
    pub fn leaf(&self) -> Hash {
        Hash::digest(domain::RECEIPT_LEAF, &codec::encode(self))
    }
}

/// Where `tx`, executed on `shard`, pays: another shard, or `None` if its
/// recipient lives on `shard` itself or it is no transfer (a bond stays on
/// its shard). The one definition of "cross-shard".
pub fn dest_shard(tx: &SignedTx, shard: ShardId, shard_count: u32) -> Option<ShardId> {
    let TxKind::Transfer { to, .. } = &tx.body.kind else { return None };
    Some(to.shard(shard_count)).filter(|&dest| dest != shard)
}

/// The Merkle root over `receipts`' leaves, in order; [`Hash::ZERO`] if none.
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    match tree(receipts) {
        Some(tree) => Hash(tree.root().unwrap_or([0; 32])),
        None => Hash::ZERO,
    }
}

fn tree(receipts: &[Receipt]) -> Option<MerkleTree<MerkleBlake3>> {
    if receipts.is_empty() {
        return None;
    }
    let leaves: Vec<[u8; 32]> = receipts.iter().map(|r| r.leaf().0).collect();
    Some(MerkleTree::<MerkleBlake3>::from_leaves(&leaves))
}

/// One receipt and its path to the source block's `receipts_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Its position among the source block's receipts.
    pub index: u32,
    /// Sibling hashes from its leaf to the root.
    pub path: Vec<[u8; 32]>,
}

/// Receipts of one certified source block, all for one destination, with
/// everything needed to check them: the header and its commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBatch {
    /// The source block's header.
    pub header: BlockHeader,
    /// Its commit certificate from the source shard's committee.
    pub certificate: CommitCertificate,
    /// The source committee's members jailed at the source height, which
    /// fixes the committee the certificate is checked against (see
    /// [`crate::committee::verify_certified`]; the list need not be trusted).
    pub jailed: Vec<ValidatorIndex>,
    /// How many receipts the source block emitted (the tree's leaf count).
    pub total: u32,
    /// Some of them, by strictly increasing index.
    pub receipts: Vec<ProvenReceipt>,
}

impl ReceiptBatch {
    /// One batch per destination for `outgoing`, all the receipts the block
    /// with `header` (and `certificate`) emitted, building its tree once.
    pub fn by_dest(
        header: &BlockHeader,
        certificate: &CommitCertificate,
        jailed: &[ValidatorIndex],
        outgoing: &[Receipt],
    ) -> BTreeMap<ShardId, ReceiptBatch> {
        let mut batches = BTreeMap::new();
        let Some(tree) = tree(outgoing) else { return batches };
        let total = u32::try_from(outgoing.len()).unwrap_or(u32::MAX);
        for (i, r) in outgoing.iter().enumerate() {
            let proven = ProvenReceipt {
                receipt: r.clone(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                path: tree.proof(&[i]).proof_hashes().to_vec(),
            };
            batches
                .entry(r.dest_shard)
                .or_insert_with(|| ReceiptBatch {
                    header: header.clone(),
                    certificate: certificate.clone(),
                    jailed: jailed.to_vec(),
                    total,
                    receipts: Vec::new(),
                })
                .receipts
                .push(proven);
        }
        batches
    }

    /// Where the batch comes from: (source shard, source height).
    pub fn source(&self) -> (ShardId, u64) {
        (self.header.shard, self.header.height)
    }

    /// Sum of the batch's amounts, or `None` on overflow.
    pub fn amount(&self) -> Option<Amount> {
        self.receipts.iter().try_fold(Amount::ZERO, |sum, p| sum.checked_add(p.receipt.amount))
    }
}

/// The hash the header's `inbound_root` commits to: the encoded batches a
/// block credits, in block order ([`Hash::ZERO`] if none).
pub fn inbound_root(batches: &[ReceiptBatch]) -> Hash {
    inbound_root_of(batches, &codec::encode(&batches))
}

/// [`inbound_root`] from the batches' encoding, for callers that need its size too.
pub fn inbound_root_of(batches: &[ReceiptBatch], encoded: &[u8]) -> Hash {
    if batches.is_empty() {
        return Hash::ZERO;
    }
    Hash::digest(domain::INBOUND, encoded)
}
