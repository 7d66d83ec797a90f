//! Test-only misbehaviour: `palisade-node run --misbehave MODE` makes a
//! validator Byzantine on purpose, so the local testnet can show what the
//! honest ones do about it (evidence, slashing, view changes, gossip
//! scoring). Refused unless the genesis is a dev chain.
//!
//! Each mode is its own module and a filter on one kind of the core's
//! effects: [`equivocate`] and [`equivocate_proposals`] what it
//! broadcasts, [`silent`] whether it broadcasts, [`invalid_proposals`] what
//! it proposes, [`flood`] what else it gossips, [`forge_receipts`] what it
//! relays to other shards. The node's `--misbehave` and the simulator both
//! run a [`crate::ShardCore`] with one of them.

pub mod equivocate;
pub mod equivocate_proposals;
pub mod flood;
pub mod forge_receipts;
pub mod invalid_proposals;
pub mod silent;

use palisade_ledger::genesis::Genesis;

/// How a validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Misbehaviour {
    /// Sign a second, conflicting vote for every prepare and commit vote.
    Equivocate,
    /// Receive everything, never vote or propose.
    Silent,
    /// Propose blocks that do not execute (a wrong state root).
    InvalidProposals,
    /// Spam the shard's consensus topic with junk.
    Flood,
    /// Publish a second, conflicting block for every proposal.
    EquivocateProposals,
    /// Relay forged receipt batches to the other shards.
    ForgeReceipts,
}

impl Misbehaviour {
    /// Every mode.
    pub const ALL: [Misbehaviour; 6] = [
        Misbehaviour::Equivocate,
        Misbehaviour::Silent,
        Misbehaviour::InvalidProposals,
        Misbehaviour::Flood,
        Misbehaviour::EquivocateProposals,
        Misbehaviour::ForgeReceipts,
    ];

    /// Its flag value, as clap names it (kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Misbehaviour::Equivocate => "equivocate",
            Misbehaviour::Silent => "silent",
            Misbehaviour::InvalidProposals => "invalid-proposals",
            Misbehaviour::Flood => "flood",
            Misbehaviour::EquivocateProposals => "equivocate-proposals",
            Misbehaviour::ForgeReceipts => "forge-receipts",
        }
    }

    /// Does this mode sign conflicting messages (so evidence against it is
    /// sound)?
    pub fn equivocates(self) -> bool {
        matches!(self, Misbehaviour::Equivocate | Misbehaviour::EquivocateProposals)
    }
}

/// Its flag value (`invalid-proposals`, …).
impl std::fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
        #[cfg(feature = "clap")]
        for mode in Misbehaviour::ALL {
            use clap::ValueEnum;
            assert_eq!(mode.to_possible_value().map(|v| v.get_name().to_owned()), Some(mode.name().to_owned()));
        }
        let mut genesis = Genesis::dev(1, 4);
        assert_eq!(check_allowed(Misbehaviour::Flood, &genesis), Ok(()));
        genesis.chain_id = "palisade-mainnet".into();
        let refused = check_allowed(Misbehaviour::InvalidProposals, &genesis).unwrap_err();
        assert!(refused.starts_with("--misbehave invalid-proposals is a test-only mode"), "{refused}");
    }
}
