//! Executing blocks: pure functions over a [`State`](crate::state::State).
//!
//! [`apply_block`] decides whether a proposed block is valid and what it
//! changes; [`build_block`] is its mirror for proposers, choosing from
//! candidate transactions those that execute. Both run each transaction
//! through one function (`tx.rs`) and compute the header's commitments in
//! one place (`commit.rs`), so a builder cannot produce a block that
//! [`apply_block`] rejects for a transaction's or a root's sake.
//!
//! A block is valid only if every transaction in it executes: an invalid
//! transaction makes the whole block invalid (its proposer is faulty or
//! buggy), rather than being included as failed.
//!
//! A block first executes the equivocation evidence it carries (slashing
//! and jailing, see [`crate::slashing`]), then credits the receipts it
//! carries from other shards (each batch fully verified, each receipt id at
//! most once per shard, ever), then runs its transactions, and finally pays
//! its proposer the block reward. A transfer to another shard debits the
//! sender and emits a [`Receipt`](crate::receipt::Receipt) instead of
//! crediting anyone here (see [`crate::receipt`]).
//!
//! The committee that must certify a block, which its header names and
//! whose active members alone may propose it, is the one of the state it
//! extends ([`crate::committee::current`]).
//!
//! - `apply.rs`: validating a proposed block;
//! - `build.rs`: building a proposal;
//! - `commit.rs`: the header's roots, for both;
//! - `overlay.rs`: a block's pending changes and the writes they become;
//! - `evidence.rs`, `incoming.rs`, `tx.rs`: executing evidence, incoming
//!   receipts and transactions on those changes;
//! - `stake.rs`: bonds, unbonds and the end of an epoch ([`crate::stake`]);
//! - `error.rs`, `outcome.rs`: what execution answers.

mod apply;
mod build;
mod commit;
mod error;
mod evidence;
mod incoming;
mod outcome;
mod overlay;
mod stake;
mod tx;

pub use apply::{apply_block, apply_block_verified};
pub use build::{Built, Extras, build_block};
pub use error::{BlockError, TxError};
pub use incoming::verify_batch;
pub use outcome::{Outcome, TxReceipt};
pub use tx::{check_payable, verify_signatures, verify_signatures_with};
