//! A flooder: its replica behaves, but every [`super::TICK_MS`] it also sends
//! each peer a burst of validly signed messages far in the future (votes for
//! heights thousands ahead, view changes for huge views, proposals it does
//! not lead), undecodable garbage, and now and then a message over the wire
//! limit. Honest replicas must stay within their bounds and keep deciding.

use palisade_consensus::{Message, Phase, Proposal, ValidatorIndex, ViewChange, Vote, encode};

use super::{Byzantine, Ctx, Kind, Outgoing};
use crate::sim::rng::SimRng;

/// Messages of each kind per peer per tick.
const BURST: usize = 4;

/// Floods its peers.
pub struct Flooder {
    rng: SimRng,
    /// Messages sent beyond the protocol.
    pub sent: u64,
}

impl Flooder {
    /// A fresh one.
    pub fn new(rng: SimRng) -> Flooder {
        Flooder { rng, sent: 0 }
    }

    fn burst(&mut self, ctx: &Ctx<'_>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for _ in 0..BURST {
            let far_height = ctx.height.saturating_add(self.rng.range(1, 5_000));
            let block_hash: [u8; 32] = self.rng.bytes(32).try_into().unwrap_or([1; 32]);
            let phase = if self.rng.chance(500) { Phase::Prepare } else { Phase::Commit };
            let view = self.rng.range(0, 3);
            out.push(encode(&ctx.sign(Message::Vote(Vote { phase, height: far_height, view, block_hash }))));
            let far_view = ctx.view.saturating_add(self.rng.range(1, 1_000_000));
            let view_change = ViewChange { height: ctx.height, view: far_view, prepared: None };
            out.push(encode(&ctx.sign(Message::ViewChange(view_change))));
            let proposal = Proposal {
                height: ctx.height.saturating_add(self.rng.range(0, 3)),
                view: 0,
                block_hash,
                block: self.rng.bytes(64),
                justification: Vec::new(),
            };
            out.push(encode(&ctx.sign(Message::Propose(proposal))));
            let len = self.rng.range(1, 300) as usize;
            out.push(self.rng.bytes(len));
        }
        if self.rng.chance(20) {
            out.push(vec![0; ctx.message_limit.saturating_add(1)]);
        }
        out
    }
}

impl Byzantine for Flooder {
    fn kind(&self) -> Kind {
        Kind::Flooder
    }

    fn tick(&mut self, ctx: &Ctx<'_>, recipients: &[ValidatorIndex]) -> Outgoing {
        let mut out = Vec::new();
        for to in recipients {
            for bytes in self.burst(ctx) {
                self.sent += 1;
                out.push((*to, bytes));
            }
        }
        out
    }
}
