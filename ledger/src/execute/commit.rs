//! A header's commitments, computed one way for the builder and the
//! validator: [`build_block`](super::build_block) writes them into the
//! header it makes, [`apply_block`](super::apply_block) checks a proposed
//! header against them. Sharing the computation is what keeps a built block
//! acceptable to every validator.
//!
//! The body's roots (transactions, incoming receipts, evidence) need no
//! execution, so a validator computes and checks them before the costly
//! work: signatures, receipt proofs, execution. The execution's roots
//! (outgoing receipts, state) come when the block has run ([`seal`]).

use std::collections::BTreeMap;

use jmt::storage::TreeUpdateBatch;
use palisade_consensus::{Committee, Evidence};

use crate::{
    address::Address,
    block::{BlockHeader, tx_root_of_ids},
    hash::Hash,
    receipt::{self, Receipt, ReceiptBatch},
    slashing::{self, Slashings},
    state::{ShardContext, State, StateError, StateKey, Tip},
};

use super::{BlockError, Outcome, TxReceipt, overlay::Overlay};

/// The roots a header commits to that depend on the body alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BodyRoots {
    tx_root: Hash,
    inbound_root: Hash,
    evidence_root: Hash,
}

impl BodyRoots {
    /// The roots of a body with transactions `tx_ids`, receipt batches
    /// `incoming` (whose encoding is `incoming_encoded`) and `evidence`.
    pub(super) fn of(
        tx_ids: &[Hash],
        incoming: &[ReceiptBatch],
        incoming_encoded: &[u8],
        evidence: &[Evidence],
    ) -> BodyRoots {
        BodyRoots {
            tx_root: tx_root_of_ids(tx_ids),
            inbound_root: receipt::inbound_root_of(incoming, incoming_encoded),
            evidence_root: slashing::evidence_root(evidence),
        }
    }

    /// Whether `header` commits to this body.
    pub(super) fn check(&self, header: &BlockHeader) -> Result<(), BlockError> {
        if self.tx_root != header.tx_root {
            return Err(BlockError::TxRootMismatch { header: header.tx_root, computed: self.tx_root });
        }
        if self.evidence_root != header.evidence_root {
            return Err(BlockError::EvidenceRootMismatch {
                header: header.evidence_root,
                computed: self.evidence_root,
            });
        }
        if self.inbound_root != header.inbound_root {
            return Err(BlockError::InboundRootMismatch { header: header.inbound_root, computed: self.inbound_root });
        }
        Ok(())
    }
}

/// Every root a header commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Commitments {
    body: BodyRoots,
    receipts_root: Hash,
    state_root: Hash,
    next_committee_hash: Hash,
}

/// An executed block, sealed: its commitments and what committing it writes.
pub(super) struct Sealed {
    pub(super) commitments: Commitments,
    writes: BTreeMap<StateKey, Vec<u8>>,
    tree: TreeUpdateBatch,
    slashed: Slashings,
}

/// Ends the execution of the block at `height` on `parent` (whose body has
/// `body`'s roots and which emitted `outgoing`), certified by `committee`:
/// pays `proposer` the block reward, judges the leaders of the height
/// ([`crate::rotation`]), gathers the writes and computes the roots that
/// need execution.
pub(super) fn seal<S: State + ?Sized>(
    mut overlay: Overlay<'_, S>,
    committee: &Committee,
    proposer: &Address,
    height: u64,
    parent: Hash,
    body: BodyRoots,
    outgoing: &[Receipt],
) -> Result<Sealed, BlockError> {
    let receipts_root = receipt::receipts_root(outgoing);
    let context = overlay.state.context();
    overlay.reward(context, proposer)?;
    overlay.judge_leaders(committee, height, proposer)?;
    overlay.close_epoch(context, height)?;
    let next_committee_hash = match &overlay.committee {
        Some(record) => Hash(
            record
                .committee()
                .map_err(|e| StateError::Corrupt { key: StateKey::Committee(record.epoch), reason: e.to_string() })?
                .hash(),
        ),
        None => Hash::ZERO,
    };
    let state = overlay.state;
    let (writes, slashed) = overlay.into_writes(height, parent);
    let (state_root, tree) = state.tree_update(height, &writes)?;
    let commitments = Commitments { body, receipts_root, state_root, next_committee_hash };
    Ok(Sealed { commitments, writes, tree, slashed })
}

impl Commitments {
    /// The header of the block at `height` on `parent`, proposed by
    /// `proposer` at `timestamp_ms` and certified by the committee with
    /// hash `committee_hash`, that commits to these roots.
    pub(super) fn header(
        &self,
        context: &ShardContext,
        height: u64,
        parent: Hash,
        proposer: Address,
        timestamp_ms: u64,
        committee_hash: Hash,
    ) -> BlockHeader {
        BlockHeader {
            chain_id: context.chain_id.clone(),
            shard: context.shard,
            height,
            parent,
            proposer,
            timestamp_ms,
            tx_root: self.body.tx_root,
            receipts_root: self.receipts_root,
            inbound_root: self.body.inbound_root,
            evidence_root: self.body.evidence_root,
            state_root: self.state_root,
            committee_hash,
            next_committee_hash: self.next_committee_hash,
        }
    }

    /// Whether `header`'s execution roots are these (its body roots were
    /// checked before execution, by [`BodyRoots::check`]).
    pub(super) fn check_execution(&self, header: &BlockHeader) -> Result<(), BlockError> {
        if self.receipts_root != header.receipts_root {
            return Err(BlockError::ReceiptsRootMismatch {
                header: header.receipts_root,
                computed: self.receipts_root,
            });
        }
        if self.state_root != header.state_root {
            return Err(BlockError::StateRootMismatch { header: header.state_root, computed: self.state_root });
        }
        if self.next_committee_hash != header.next_committee_hash {
            return Err(BlockError::NextCommitteeMismatch {
                header: header.next_committee_hash,
                computed: self.next_committee_hash,
            });
        }
        Ok(())
    }
}

impl Sealed {
    /// What committing the sealed block with `header` on `parent` writes.
    pub(super) fn into_outcome(
        self,
        header: &BlockHeader,
        parent: Tip,
        receipts: Vec<TxReceipt>,
        outgoing: Vec<Receipt>,
    ) -> Outcome {
        let Sealed { commitments, writes, tree, slashed } = self;
        let tip = Tip {
            height: header.height,
            hash: header.hash(),
            state_root: commitments.state_root,
            timestamp_ms: header.timestamp_ms,
        };
        Outcome { tip, parent, writes, tree, receipts, outgoing, slashed }
    }
}
