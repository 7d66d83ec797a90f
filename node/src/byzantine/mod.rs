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

/// Its flag value (`invalid-proposals`, …), as clap names it.
impl std::fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_named_as_their_flag_and_refused_off_dev_chains() {
        assert_eq!(Misbehaviour::InvalidProposals.to_string(), "invalid-proposals");
        let mut genesis = Genesis::dev(1, 4);
        assert_eq!(check_allowed(Misbehaviour::Flood, &genesis), Ok(()));
        genesis.chain_id = "palisade-mainnet".into();
        let refused = check_allowed(Misbehaviour::InvalidProposals, &genesis).unwrap_err();
        assert!(refused.starts_with("--misbehave invalid-proposals is a test-only mode"), "{refused}");
    }
}
