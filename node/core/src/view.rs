//! The read view: what a node's RPC asks about a shard's memory (is this
//! transaction pending, why was it refused, is this receipt pooled), kept by
//! the host outside the core so that a query never waits behind consensus
//! work on the shard's thread.
//!
//! The core reports each change as it happens ([`ViewChange`], carried by
//! `Effect::View` once per input), so keeping the view costs the changes
//! an input made, never a copy of the pools. The simulator keeps one per
//! core too and checks that it always equals the pools it mirrors.

use std::collections::{HashMap, HashSet, VecDeque};

use palisade_ledger::Hash;

use crate::effect::TxState;

/// Refusal reasons a view remembers, oldest forgotten first.
pub const REJECTIONS_KEPT: usize = 10_000;

/// One change to what a shard holds in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewChange {
    /// A transaction entered the mempool.
    TxPending(Hash),
    /// A transaction left the mempool (committed, replaced, evicted).
    TxGone(Hash),
    /// A transaction was refused (by the mempool or the block builder).
    TxRejected(Hash, String),
    /// A receipt entered the receipt pool.
    ReceiptPooled(Hash),
    /// A receipt left the receipt pool (credited by a committed block).
    ReceiptGone(Hash),
}

/// What the host's RPC reads; fed only by [`ReadView::apply`].
#[derive(Debug, Default)]
pub struct ReadView {
    pending: HashSet<Hash>,
    rejections: HashMap<Hash, String>,
    rejection_order: VecDeque<Hash>,
    pooled: HashSet<Hash>,
}

impl ReadView {
    /// Applies the changes of one input, in order.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = ViewChange>) {
        for change in changes {
            match change {
                ViewChange::TxPending(id) => {
                    self.pending.insert(id);
                }
                ViewChange::TxGone(id) => {
                    self.pending.remove(&id);
                }
                ViewChange::TxRejected(id, reason) => self.remember_rejection(id, reason),
                ViewChange::ReceiptPooled(id) => {
                    self.pooled.insert(id);
                }
                ViewChange::ReceiptGone(id) => {
                    self.pooled.remove(&id);
                }
            }
        }
    }

    /// Where a transaction stands in the shard's memory.
    pub fn tx_state(&self, id: &Hash) -> TxState {
        if self.pending.contains(id) {
            TxState::Pending
        } else if let Some(reason) = self.rejections.get(id) {
            TxState::Rejected { reason: reason.clone() }
        } else {
            TxState::Unknown
        }
    }

    /// Whether receipt `id` waits in the receipt pool.
    pub fn receipt_pooled(&self, id: &Hash) -> bool {
        self.pooled.contains(id)
    }

    /// The pending transactions (for checks).
    pub fn pending(&self) -> &HashSet<Hash> {
        &self.pending
    }

    /// The pooled receipts (for checks).
    pub fn pooled(&self) -> &HashSet<Hash> {
        &self.pooled
    }

    fn remember_rejection(&mut self, id: Hash, reason: String) {
        if self.rejections.insert(id, reason).is_none() {
            self.rejection_order.push_back(id);
        }
        while self.rejection_order.len() > REJECTIONS_KEPT {
            if let Some(old) = self.rejection_order.pop_front() {
                self.rejections.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash::plain(&[n])
    }

    #[test]
    fn follows_a_transaction_through_the_pool() {
        let mut view = ReadView::default();
        assert_eq!(view.tx_state(&id(1)), TxState::Unknown);
        view.apply([ViewChange::TxPending(id(1))]);
        assert_eq!(view.tx_state(&id(1)), TxState::Pending);
        view.apply([ViewChange::TxGone(id(1)), ViewChange::TxRejected(id(1), "nonce".into())]);
        assert_eq!(view.tx_state(&id(1)), TxState::Rejected { reason: "nonce".into() });
        view.apply([ViewChange::ReceiptPooled(id(2))]);
        assert!(view.receipt_pooled(&id(2)));
        view.apply([ViewChange::ReceiptGone(id(2))]);
        assert!(!view.receipt_pooled(&id(2)));
    }

    #[test]
    fn forgets_the_oldest_rejections_first() {
        let mut view = ReadView::default();
        let ids: Vec<Hash> = (0..=REJECTIONS_KEPT as u32).map(|n| Hash::plain(&n.to_le_bytes())).collect();
        view.apply(ids.iter().map(|id| ViewChange::TxRejected(*id, "fee".into())));
        assert_eq!(view.rejections.len(), REJECTIONS_KEPT);
        assert_eq!(view.tx_state(&ids[0]), TxState::Unknown);
        assert!(matches!(view.tx_state(&ids[REJECTIONS_KEPT]), TxState::Rejected { .. }));
    }
}
