//! `silent`: the validator follows the chain but never sends a vote or a
//! proposal. Its shard keeps going while the others hold a quorum.

use palisade_consensus::SignedMessage;

/// Whether a silent validator withholds `message` (it withholds all it signs).
pub fn withholds(_message: &SignedMessage) -> bool {
    true
}
