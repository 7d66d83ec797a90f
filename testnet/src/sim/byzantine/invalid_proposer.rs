//! A proposer of invalid blocks: when it leads, it takes the block its host
//! built and breaks it (a wrong state root, a transaction with a forged
//! signature, a wrong parent or height, or bytes that are not a block at
//! all), then proposes it
//! with a correct hash and signature. Honest hosts must refuse it in
//! `ValidateBlock`, so it can never become final (validity), and the next
//! leader must make progress (liveness).

use palisade_consensus::BlockHash;
use palisade_ledger::{Block, Hash, block::tx_root};

use super::{Byzantine, Ctx, Kind};
use crate::sim::rng::SimRng;

/// Proposes only broken blocks.
pub struct InvalidProposer {
    rng: SimRng,
    /// Broken blocks proposed.
    pub proposed: u64,
}

impl InvalidProposer {
    /// A fresh one.
    pub fn new(rng: SimRng) -> InvalidProposer {
        InvalidProposer { rng, proposed: 0 }
    }
}

impl Byzantine for InvalidProposer {
    fn kind(&self) -> Kind {
        Kind::InvalidProposer
    }

    fn proposal(&mut self, _ctx: &Ctx<'_>, mut block: Block) -> (BlockHash, Vec<u8>) {
        self.proposed += 1;
        let junk = Hash(self.rng.bytes(32).try_into().unwrap_or([7; 32]));
        match self.rng.range(0, 4) {
            0 => block.header.state_root = junk,
            1 if !block.txs.is_empty() => {
                // A transaction whose signature does not verify, under a
                // header that is otherwise consistent.
                if let Some(tx) = block.txs.first_mut() {
                    tx.signature.0[0] ^= 1;
                }
                block.header.tx_root = tx_root(&block.txs);
            }
            1 | 2 => block.header.parent = junk,
            3 => block.header.height = block.header.height.saturating_add(1),
            _ => {
                let bytes = self.rng.bytes(200);
                return (*blake3::hash(&bytes).as_bytes(), bytes);
            }
        }
        (block.hash().0, block.to_bytes())
    }
}
