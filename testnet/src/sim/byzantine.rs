//! Byzantine validators in the simulator. A Byzantine validator runs the
//! same [`palisade_shard_core::ShardCore`] as everyone else, with one of the
//! node's test-only misbehaviours: the effect filters in
//! [`palisade_shard_core::byzantine`], one module each, which
//! `palisade-node run --misbehave` runs too. Or it is a **twin**: a second
//! core with the validator's key on a node of its own, both honest code,
//! which sign conflicting messages whenever their views of the network
//! differ (as a validator restored on a second machine would).
//!
//! | kind | behaviour |
//! |---|---|
//! | `equivocate` | signs a conflicting twin of every prepare and commit vote |
//! | `equivocate-proposals` | publishes a second valid block for every proposal |
//! | `silent` | follows the chain, never proposes, votes or asks for a view change |
//! | `invalid-proposals` | proposes blocks with a wrong state root |
//! | `flood` | bursts of junk on the consensus topic |
//! | `forge-receipts` | relays forged receipt batches to the other shards |
//! | `twin` | a second core with the same key |

use std::fmt;

use palisade_shard_core::byzantine::Misbehaviour;

/// The Byzantine behaviours a scenario can assign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The core runs with this misbehaviour's filter.
    Misbehave(Misbehaviour),
    /// A second core with the same key.
    Twin,
}

impl Kind {
    /// Every behaviour.
    pub const ALL: [Kind; 7] = [
        Kind::Misbehave(Misbehaviour::Equivocate),
        Kind::Misbehave(Misbehaviour::EquivocateProposals),
        Kind::Misbehave(Misbehaviour::Silent),
        Kind::Misbehave(Misbehaviour::InvalidProposals),
        Kind::Misbehave(Misbehaviour::Flood),
        Kind::Misbehave(Misbehaviour::ForgeReceipts),
        Kind::Twin,
    ];

    /// May this behaviour sign conflicting messages (so evidence against it
    /// is sound)?
    pub fn may_equivocate(self) -> bool {
        match self {
            Kind::Misbehave(mode) => mode.equivocates(),
            Kind::Twin => true,
        }
    }

    /// The filter its core runs with, if any.
    pub fn misbehaviour(self) -> Option<Misbehaviour> {
        match self {
            Kind::Misbehave(mode) => Some(mode),
            Kind::Twin => None,
        }
    }
}

/// The flag name of the mode, or `twin`.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Misbehave(mode) => write!(f, "{mode}"),
            Kind::Twin => f.write_str("twin"),
        }
    }
}
