//! `equivocate`: for every prepare or commit vote the validator signs, it
//! also signs one for a different block in the same slot and sends both.
//! Honest replicas that see both report evidence; the shard slashes and
//! jails the validator.

use ed25519_dalek::SigningKey;
use palisade_consensus::{Message, Phase, SignedMessage, Vote};

/// The conflicting twin of `message`, if it is a prepare or commit vote.
pub fn conflicting(message: &SignedMessage, key: &SigningKey) -> Option<SignedMessage> {
    let Message::Vote(vote) = &message.message else { return None };
    if !matches!(vote.phase, Phase::Prepare | Phase::Commit) {
        return None;
    }
    // Any other hash will do: derived, so the twin is deterministic.
    let other = *blake3::hash(&vote.block_hash).as_bytes();
    let twin = Vote { block_hash: other, ..*vote };
    Some(SignedMessage::sign(&message.chain_id, message.shard, message.signer, Message::Vote(twin), key))
}
