//! Test-only misbehaviour: `palisade-node run --misbehave MODE` makes a
//! validator Byzantine on purpose, so the local testnet can show what the
//! honest ones do about it (evidence, slashing, view changes, gossip
//! scoring). Refused unless the genesis is a dev chain.
//!
//! Each mode is its own module and hooks one host duty of the shard thread:
//! [`equivocate`] what it broadcasts, [`silent`] whether it broadcasts,
//! [`invalid_proposals`] what it proposes, [`flood`] what else it gossips.

pub mod equivocate;
pub mod flood;
pub mod invalid_proposals;
pub mod silent;

use palisade_ledger::genesis::Genesis;

/// How a validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Misbehaviour {
    /// Sign a second, conflicting vote for every prepare and commit vote.
    Equivocate,
    /// Receive everything, never vote or propose.
    Silent,
    /// Propose blocks that do not execute (a wrong state root).
    InvalidProposals,
    /// Spam the shard's consensus topic with junk.
    Flood,
}

impl std::fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Misbehaviour::Equivocate => "equivocate",
            Misbehaviour::Silent => "silent",
            Misbehaviour::InvalidProposals => "invalid-proposals",
            Misbehaviour::Flood => "flood",
        };
        f.write_str(name)
    }
}

/// Refuses a misbehaviour on anything but a dev chain.
pub fn check_allowed(mode: Misbehaviour, genesis: &Genesis) -> Result<(), String> {
    if genesis.is_dev_chain() {
        Ok(())
    } else {
        Err(format!(
            "--misbehave {mode} is a test-only mode, refused on chain `{}` (dev chains only)",
            genesis.chain_id
        ))
    }
}
