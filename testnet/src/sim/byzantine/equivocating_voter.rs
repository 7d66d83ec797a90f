//! An equivocating voter: for every prepare or commit its replica signs, it
//! also signs the same vote for a different block, and splits the two among
//! its peers (some get both). A Byzantine minority voting both ways must not
//! make two blocks final, and honest replicas that see both votes must report
//! exactly this validator.

use palisade_consensus::{Message, SignedMessage, ValidatorIndex, Vote};

use super::{Byzantine, Ctx, Kind, Outgoing, equivocate, honest, split};
use crate::sim::rng::SimRng;

/// Votes for two blocks in every slot.
pub struct EquivocatingVoter {
    rng: SimRng,
    /// Conflicting votes sent.
    pub equivocations: u64,
}

impl EquivocatingVoter {
    /// A fresh equivocator.
    pub fn new(rng: SimRng) -> EquivocatingVoter {
        EquivocatingVoter { rng, equivocations: 0 }
    }
}

impl Byzantine for EquivocatingVoter {
    fn kind(&self) -> Kind {
        Kind::EquivocatingVoter
    }

    fn outgoing(&mut self, ctx: &Ctx<'_>, message: SignedMessage, recipients: &[ValidatorIndex]) -> Outgoing {
        let Message::Vote(vote) = &message.message else {
            return honest(&message, recipients);
        };
        let mut other = *blake3::hash(&vote.block_hash).as_bytes();
        if self.rng.chance(500) {
            // Sometimes a hash no block has, sometimes a fresh random one.
            other = self.rng.bytes(32).try_into().unwrap_or(other);
        }
        let second = ctx.sign(Message::Vote(Vote { block_hash: other, ..*vote }));
        self.equivocations += 1;
        let splits = split(&mut self.rng, recipients);
        equivocate(&splits, &message, &second)
    }
}
