//! `silent`: the validator follows the chain but never proposes, votes or
//! asks for a view change. Its shard keeps going while the others hold a
//! quorum. It still passes decisions on to laggards: those carry others'
//! signatures, not a vote of its own.

use palisade_consensus::{Message, SignedMessage};

/// Whether a silent validator withholds `message`: everything it would sign
/// as a participant.
pub fn withholds(message: &SignedMessage) -> bool {
    !matches!(message.message, Message::Decided(_))
}
