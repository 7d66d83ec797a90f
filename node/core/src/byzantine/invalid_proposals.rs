//! `invalid-proposals`: the validator proposes blocks that do not execute
//! (its own block with a wrong state root). Honest validators refuse to
//! prepare them and change views; nothing invalid becomes final.

use palisade_ledger::{Block, Hash};

/// `block` (encoded) with its state root corrupted, and the new hash; `None`
/// if it does not decode.
pub fn corrupt(block: &[u8], limit: usize) -> Option<(Vec<u8>, [u8; 32])> {
    let mut block = Block::from_bytes(block, limit).ok()?;
    block.header.state_root = Hash(*blake3::hash(&block.header.state_root.0).as_bytes());
    let hash = block.hash().0;
    Some((block.to_bytes(), hash))
}
