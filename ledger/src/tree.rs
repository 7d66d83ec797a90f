//! The authenticated state commitment: a Jellyfish Merkle tree (the `jmt`
//! crate) hashed with blake3, versioned by block height.
//!
//! Updating it costs the keys a block touches times the log of all keys, and
//! it proves both presence and absence of an account against a state root.
//! This module holds what every store shares: proofs, and [`MemTree`], the
//! in-memory node store that tests and the simulator use.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use jmt::{
    JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, Version,
    storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
};
use serde::{Deserialize, Serialize};

use crate::{
    hash::{Hash, JmtBlake3},
    state::{StateError, StateKey},
};

/// The tree type every store uses.
pub type Tree<'a, R> = JellyfishMerkleTree<'a, R, JmtBlake3>;

/// Computes the root and node changes for `writes` at `version` over `reader`.
/// An empty write set is not allowed (every block writes its chain record).
pub fn update<R: TreeReader>(
    reader: &R,
    version: Version,
    writes: &BTreeMap<StateKey, Vec<u8>>,
) -> Result<(Hash, TreeUpdateBatch), StateError> {
    assert!(!writes.is_empty(), "every version writes at least the chain record");
    let set: Vec<(KeyHash, OwnedValue)> = writes.iter().map(|(k, v)| (k.key_hash(), v.clone())).collect();
    let (roots, batch) = Tree::new(reader)
        .batch_put_value_sets(vec![set], None, version)
        .map_err(|e| StateError::Storage(format!("state tree update at version {version}: {e:#}")))?;
    let root = roots.first().ok_or_else(|| StateError::Storage("tree returned no root".into()))?;
    Ok((Hash(root.0), batch))
}

/// A value (or its absence) with a proof against a state root.
#[derive(Serialize, Deserialize)]
pub struct StateProof {
    /// The proven key.
    pub key: StateKey,
    /// Its encoded value, or `None` if the proof shows it is absent.
    pub value: Option<Vec<u8>>,
    /// The sibling path.
    pub proof: jmt::proof::SparseMerkleProof<JmtBlake3>,
}

impl StateProof {
    /// Reads `key` at `version` with a proof.
    pub fn read<R: TreeReader>(reader: &R, key: StateKey, version: Version) -> Result<StateProof, StateError> {
        let (value, proof) = Tree::new(reader)
            .get_with_proof(key.key_hash(), version)
            .map_err(|e| StateError::Storage(format!("proof of {key:?} at {version}: {e:#}")))?;
        Ok(StateProof { key, value, proof })
    }

    /// Checks the proof against `root`: `Ok` means `value` is exactly what
    /// the state with that root holds at `key` (including "nothing").
    pub fn verify(&self, root: &Hash) -> Result<(), String> {
        self.proof.verify(RootHash(root.0), self.key.key_hash(), self.value.as_deref()).map_err(|e| format!("{e:#}"))
    }
}

/// Tree nodes and versioned values in memory.
#[derive(Default, Clone)]
pub struct MemTree {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl MemTree {
    /// Stores what an update produced.
    pub fn apply(&mut self, batch: &TreeUpdateBatch) {
        for (key, node) in batch.node_batch.nodes() {
            self.nodes.insert(key.clone(), node.clone());
        }
        for ((version, key_hash), value) in batch.node_batch.values() {
            self.values.insert((*key_hash, *version), value.clone());
        }
    }
}

impl TreeReader for MemTree {
    fn get_node_option(&self, node_key: &NodeKey) -> Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> Result<Option<OwnedValue>> {
        Ok(self.values.range((key_hash, 0)..=(key_hash, max_version)).next_back().and_then(|(_, value)| value.clone()))
    }

    fn get_rightmost_leaf(&self) -> Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's state-sync restore uses this; Palisade syncs blocks instead.
        Err(anyhow!("rightmost-leaf lookup is not supported"))
    }
}
