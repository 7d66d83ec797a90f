//! `equivocate-proposals`: whenever the validator proposes, it also signs a
//! second, equally valid block for the same `(height, view)` (same parent, a
//! later timestamp, no transactions) and publishes both. Peers take
//! whichever arrives first, so the shard splits on which block it prepares;
//! honest replicas must never finalise both (agreement), and those that see
//! both report the leader (evidence).

use ed25519_dalek::SigningKey;
use palisade_consensus::{Message, Proposal, SignedMessage};
use palisade_ledger::execute::{Extras, build_block};
use palisade_ledger::{Address, Block, State};

/// The conflicting twin of `message`, if it is a proposal whose block builds
/// on `state`'s tip: a different valid block, signed with `key`.
pub fn conflicting<S: State + ?Sized>(
    message: &SignedMessage,
    state: &S,
    proposer: Address,
    key: &SigningKey,
    limit_bytes: usize,
) -> Option<SignedMessage> {
    let Message::Propose(proposal) = &message.message else { return None };
    let original = Block::from_bytes(&proposal.block, limit_bytes).ok()?;
    let timestamp_ms = original.header.timestamp_ms.saturating_add(1);
    let twin = build_block(state, proposer, timestamp_ms, Extras::default(), Vec::new()).ok()?.block;
    if twin.header.height != original.header.height || twin.hash() == original.hash() {
        return None;
    }
    let second = Proposal {
        height: proposal.height,
        view: proposal.view,
        block_hash: twin.hash().0,
        block: twin.to_bytes(),
        justification: proposal.justification.clone(),
    };
    Some(SignedMessage::sign(&message.chain_id, message.shard, message.signer, Message::Propose(second), key))
}
