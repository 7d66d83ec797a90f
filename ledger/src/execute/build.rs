//! Building a proposal: [`build_block`] chooses, from what a proposer
//! offers, the evidence, receipts and transactions that execute, and
//! writes the header that commits to them.

use palisade_consensus::Evidence;

use crate::{
    address::Address,
    block::Block,
    codec, committee,
    hash::Hash,
    receipt::ReceiptBatch,
    slashing::{self, EvidenceRefused, MAX_BLOCK_EVIDENCE},
    state::State,
    tx::SignedTx,
};

use super::{
    BlockError, Outcome, TxError,
    commit::{BodyRoots, seal},
    error::Failure,
    incoming::select_incoming,
    outcome::tx_receipt,
    overlay::Overlay,
    tx::execute_tx,
};

/// A block a proposer built, with what committing it writes and the
/// candidates it left out (and why).
pub struct Built {
    /// The proposal.
    pub block: Block,
    /// Its execution.
    pub outcome: Outcome,
    /// Candidates that do not execute on this state.
    pub rejected: Vec<(Hash, TxError)>,
    /// Candidate evidence the block may not carry, by [`slashing::evidence_hash`].
    pub refused_evidence: Vec<(Hash, EvidenceRefused)>,
}

/// What a proposer offers [`build_block`] besides its transactions.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Receipt batches from other shards (verified on admission).
    pub incoming: Vec<ReceiptBatch>,
    /// Equivocation evidence against this shard's committee.
    pub evidence: Vec<Evidence>,
}

/// Receipt batches only, no evidence.
impl From<Vec<ReceiptBatch>> for Extras {
    fn from(incoming: Vec<ReceiptBatch>) -> Self {
        Extras { incoming, evidence: Vec::new() }
    }
}

/// Builds the next block: first the pieces of evidence that may execute (up
/// to [`MAX_BLOCK_EVIDENCE`]), then the receipts of `extras.incoming` not
/// yet credited (in canonical order, up to the receipt limit), then
/// `candidates`, in order, skipping those that do not execute, up to the
/// block limits. Candidates must already have valid signatures and batches
/// must already verify (the mempool and the receipt pool check on
/// admission); a bad one makes [`apply_block`](super::apply_block) reject the result.
pub fn build_block<S: State + ?Sized>(
    state: &S,
    proposer: Address,
    timestamp_ms: u64,
    extras: impl Into<Extras>,
    candidates: impl IntoIterator<Item = SignedTx>,
) -> Result<Built, BlockError> {
    let extras = extras.into();
    let context = state.context();
    let parent = state.tip();
    let height = parent.height.checked_add(1).ok_or(BlockError::WrongHeight { expected: u64::MAX, got: u64::MAX })?;
    let timestamp_ms = timestamp_ms.max(parent.timestamp_ms);
    let committee = committee::current(state)?;
    if !committee::is_active_member(&committee, &proposer) {
        return Err(BlockError::UnknownProposer(proposer));
    }
    if !committee::is_in_rotation(&committee, &proposer) {
        return Err(BlockError::BenchedProposer(proposer));
    }
    let mut overlay = Overlay::new(state)?;
    let (mut evidence, mut refused_evidence) = (Vec::new(), Vec::new());
    for candidate in extras.evidence {
        if evidence.len() >= MAX_BLOCK_EVIDENCE {
            break;
        }
        match overlay.slash(context, &committee, height, &candidate)? {
            Ok(()) => evidence.push(candidate),
            Err(reason) => refused_evidence.push((slashing::evidence_hash(&candidate), reason)),
        }
    }
    let incoming = select_incoming(&mut overlay, context, height, extras.incoming)?;
    let (mut txs, mut receipts, mut rejected, mut outgoing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0usize;
    for tx in candidates {
        if txs.len() >= context.max_block_txs {
            break;
        }
        let encoded = tx.to_bytes();
        let size = encoded.len();
        if bytes.saturating_add(size) > context.max_block_bytes {
            break;
        }
        match execute_tx(&mut overlay, context, &proposer, height, &tx) {
            Ok(()) => {
                receipts.push(tx_receipt(context, height, txs.len(), Hash::plain(&encoded), &tx, &mut outgoing));
                bytes = bytes.saturating_add(size);
                txs.push(tx);
            }
            Err(Failure::Tx(reason)) => rejected.push((tx.id(), reason)),
            Err(Failure::Block(e)) => return Err(e),
        }
    }
    let ids: Vec<Hash> = receipts.iter().map(|r| r.id).collect();
    let body = BodyRoots::of(&ids, &incoming, &codec::encode(&incoming), &evidence);
    let sealed = seal(overlay, &committee, &proposer, height, parent.hash, body, &outgoing)?;
    let header =
        sealed.commitments.header(context, height, parent.hash, proposer, timestamp_ms, Hash(committee.hash()));
    let outcome = sealed.into_outcome(&header, parent, receipts, outgoing);
    Ok(Built { block: Block { header, txs, incoming, evidence }, outcome, rejected, refused_evidence })
}
