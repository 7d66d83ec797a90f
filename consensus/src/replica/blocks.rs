//! The blocks seen at the height being decided: storage bounded by
//! [`MAX_BLOCKS_PER_HEIGHT`], and the host's verdict on each
//! ([`Action::ValidateBlock`] out, [`Input::BlockValidity`](super::Input::BlockValidity) in).
//! A replica prepares and decides only blocks the host called valid.

use super::types::{Block, Validity};
use super::{Action, MAX_BLOCKS_PER_HEIGHT, Replica};
use crate::message::BlockHash;

impl Replica {
    pub(super) fn on_block_validity(&mut self, height: u64, block_hash: BlockHash, valid: bool, out: &mut Vec<Action>) {
        if height != self.height() {
            return;
        }
        if let Some(block) = self.round.blocks.get_mut(&block_hash)
            && matches!(block.validity, Validity::Unknown | Validity::Pending)
        {
            block.validity = if valid { Validity::Valid } else { Validity::Invalid };
        }
        if !valid && self.round.proposal == Some(block_hash) && !self.awaiting_commit && self.can_sign() {
            // [P10] This replica will never prepare the leader's block, so
            // waiting out the view helps nobody: leave it now. If a weak
            // quorum agrees, no quorum can prepare the block and the others
            // follow (P8); if not, they decide without us.
            let next = self.view().saturating_add(1);
            self.start_view_change(next, out);
            return;
        }
        self.progress(out);
    }

    pub(super) fn validity(&self, block_hash: &BlockHash) -> Validity {
        self.round.blocks.get(block_hash).map_or(Validity::Unknown, |b| b.validity)
    }

    pub(super) fn store_block(&mut self, block_hash: BlockHash, bytes: Vec<u8>, view: u64) {
        if self.round.blocks.contains_key(&block_hash) {
            return;
        }
        self.round.blocks.insert(block_hash, Block { bytes, validity: Validity::Unknown, view });
        if self.round.blocks.len() > MAX_BLOCKS_PER_HEIGHT {
            let protected = [
                self.round.proposal,
                self.safety.prepared.as_ref().map(|p| p.block_hash),
                self.round.decided.as_ref().map(|c| c.block_hash),
                Some(block_hash),
            ];
            let victim = self
                .round
                .blocks
                .iter()
                .filter(|(hash, _)| !protected.contains(&Some(**hash)))
                .min_by_key(|(hash, block)| (block.view, **hash))
                .map(|(hash, _)| *hash);
            if let Some(victim) = victim {
                self.round.blocks.remove(&victim);
            }
        }
    }

    pub(super) fn request_validation(&mut self, block_hash: BlockHash, out: &mut Vec<Action>) {
        let height = self.height();
        let Some(block) = self.round.blocks.get_mut(&block_hash) else {
            return;
        };
        if block.validity != Validity::Unknown {
            return;
        }
        block.validity = Validity::Pending;
        out.push(Action::ValidateBlock { height, view: block.view, block_hash, block: block.bytes.clone() });
    }
}
