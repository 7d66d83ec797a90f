//! An equivocating leader: whenever its replica proposes, it builds a second,
//! equally valid block for the same `(height, view)` (same parent, a later
//! timestamp, no transactions), signs it with its real key, and sends one
//! proposal to some peers, the other to the rest, and both to a few. Honest
//! replicas must not finalise both (agreement), and those that see both must
//! report the leader (evidence).

use palisade_consensus::{Message, Proposal, SignedMessage, ValidatorIndex};
use palisade_ledger::{
    Block,
    execute::{Extras, build_block},
};

use super::{Byzantine, Ctx, Kind, Outgoing, equivocate, honest, split};
use crate::sim::rng::SimRng;

/// Proposes two blocks per view it leads.
pub struct EquivocatingLeader {
    rng: SimRng,
    /// Conflicting proposals sent.
    pub equivocations: u64,
}

impl EquivocatingLeader {
    /// A fresh equivocator.
    pub fn new(rng: SimRng) -> EquivocatingLeader {
        EquivocatingLeader { rng, equivocations: 0 }
    }

    /// A different valid block at the same height as `original`, if the
    /// node's state is where the proposal builds.
    fn twin_block(ctx: &Ctx<'_>, original: &[u8]) -> Option<Block> {
        let block = Block::from_bytes(original, ctx.message_limit).ok()?;
        let built = build_block(
            ctx.state,
            ctx.address,
            block.header.timestamp_ms.saturating_add(1),
            Extras::default(),
            Vec::new(),
        )
        .ok()?;
        (built.block.header.height == block.header.height && built.block.hash() != block.hash()).then_some(built.block)
    }
}

impl Byzantine for EquivocatingLeader {
    fn kind(&self) -> Kind {
        Kind::EquivocatingLeader
    }

    fn outgoing(&mut self, ctx: &Ctx<'_>, message: SignedMessage, recipients: &[ValidatorIndex]) -> Outgoing {
        let Message::Propose(proposal) = &message.message else {
            return honest(&message, recipients);
        };
        let Some(twin) = Self::twin_block(ctx, &proposal.block) else {
            return honest(&message, recipients);
        };
        let second = ctx.sign(Message::Propose(Proposal {
            height: proposal.height,
            view: proposal.view,
            block_hash: twin.hash().0,
            block: twin.to_bytes(),
            justification: proposal.justification.clone(),
        }));
        self.equivocations += 1;
        let splits = split(&mut self.rng, recipients);
        equivocate(&splits, &message, &second)
    }
}
