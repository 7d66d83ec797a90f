//! Byzantine validators as code. Each module is one behaviour; a Byzantine
//! node still runs the real replica (so it follows the protocol where it
//! chooses to) and the simulator routes what that replica does through the
//! module, which may rewrite, multiply or withhold it, or add traffic of its
//! own. Modules sign with their validator's real key through the consensus
//! crate's public API, so honest nodes see exactly what a real attacker could
//! send.
//!
//! | module | behaviour |
//! |---|---|
//! | [`equivocating_leader`] | proposes two different valid blocks to two halves |
//! | [`equivocating_voter`] | signs conflicting prepares and commits |
//! | [`silent`] | sends nothing, answers nothing |
//! | [`invalid_proposer`] | proposes blocks that fail `apply_block` or do not decode |
//! | [`flooder`] | floods far-future, malformed and oversized messages |
//! | [`forging_relayer`] | relays forged cross-shard receipt batches |

pub mod equivocating_leader;
pub mod equivocating_voter;
pub mod flooder;
pub mod forging_relayer;
pub mod invalid_proposer;
pub mod silent;

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::SigningKey;
use palisade_consensus::{BlockHash, Decision, Message, ShardId, SignedMessage, ValidatorIndex, encode};
use palisade_ledger::{Address, Block, Genesis, ReceiptBatch, mem::MemState};

use super::rng::SimRng;

/// The Byzantine behaviours a scenario can assign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// [`equivocating_leader`].
    EquivocatingLeader,
    /// [`equivocating_voter`].
    EquivocatingVoter,
    /// [`silent`].
    Silent,
    /// [`invalid_proposer`].
    InvalidProposer,
    /// [`flooder`].
    Flooder,
    /// [`forging_relayer`].
    ForgingRelayer,
}

impl Kind {
    /// Every behaviour.
    pub const ALL: [Kind; 6] = [
        Kind::EquivocatingLeader,
        Kind::EquivocatingVoter,
        Kind::Silent,
        Kind::InvalidProposer,
        Kind::Flooder,
        Kind::ForgingRelayer,
    ];

    /// A fresh instance, with its own random stream.
    pub fn build(self, rng: SimRng) -> Box<dyn Byzantine> {
        match self {
            Kind::EquivocatingLeader => Box::new(equivocating_leader::EquivocatingLeader::new(rng)),
            Kind::EquivocatingVoter => Box::new(equivocating_voter::EquivocatingVoter::new(rng)),
            Kind::Silent => Box::new(silent::Silent),
            Kind::InvalidProposer => Box::new(invalid_proposer::InvalidProposer::new(rng)),
            Kind::Flooder => Box::new(flooder::Flooder::new(rng)),
            Kind::ForgingRelayer => Box::new(forging_relayer::ForgingRelayer::new(rng)),
        }
    }

    /// May this behaviour sign conflicting messages (so evidence against it
    /// is sound)? The flooder's junk proposals and far-future votes can
    /// collide with what its own replica later signs.
    pub fn may_equivocate(self) -> bool {
        matches!(self, Kind::EquivocatingLeader | Kind::EquivocatingVoter | Kind::Flooder)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::EquivocatingLeader => "equivocating-leader",
            Kind::EquivocatingVoter => "equivocating-voter",
            Kind::Silent => "silent",
            Kind::InvalidProposer => "invalid-proposer",
            Kind::Flooder => "flooder",
            Kind::ForgingRelayer => "forging-relayer",
        };
        f.write_str(name)
    }
}

/// What a module may look at: its identity, key, and its node's state.
pub struct Ctx<'a> {
    /// The chain.
    pub chain_id: &'a str,
    /// The network's genesis (dev committees: anyone can derive their keys).
    pub genesis: &'a Genesis,
    /// Its shard.
    pub shard: ShardId,
    /// Its committee index.
    pub me: ValidatorIndex,
    /// Its real signing key.
    pub key: &'a SigningKey,
    /// Its ledger address (the proposer field of its blocks).
    pub address: Address,
    /// Committee size (the same in every shard).
    pub committee_len: usize,
    /// Shards in the network.
    pub shard_count: u32,
    /// Its node's committed state.
    pub state: &'a MemState,
    /// Its node's committed chain with certificates, by height.
    pub chain: &'a BTreeMap<u64, Decision>,
    /// Where its replica stands.
    pub height: u64,
    /// Where its replica stands.
    pub view: u64,
    /// Simulated wall clock for block timestamps.
    pub timestamp_ms: u64,
    /// The wire limit honest nodes enforce.
    pub message_limit: usize,
}

impl Ctx<'_> {
    /// Signs `message` as this validator.
    pub fn sign(&self, message: Message) -> SignedMessage {
        SignedMessage::sign(self.chain_id, self.shard, self.me, message, self.key)
    }
}

/// Bytes for one recipient.
pub type Outgoing = Vec<(ValidatorIndex, Vec<u8>)>;

/// A Byzantine behaviour. Defaults are honest.
pub trait Byzantine {
    /// Which behaviour this is.
    fn kind(&self) -> Kind;

    /// The node's replica sends `message` to `recipients`; return what
    /// actually goes out.
    fn outgoing(&mut self, ctx: &Ctx<'_>, message: SignedMessage, recipients: &[ValidatorIndex]) -> Outgoing {
        let _ = ctx;
        honest(&message, recipients)
    }

    /// The node leads and its host built `block`; return the `(hash, bytes)`
    /// to hand to the replica.
    fn proposal(&mut self, ctx: &Ctx<'_>, block: Block) -> (BlockHash, Vec<u8>) {
        let _ = ctx;
        (block.hash().0, block.to_bytes())
    }

    /// Called every [`TICK_MS`]: extra traffic of its own.
    fn tick(&mut self, ctx: &Ctx<'_>, recipients: &[ValidatorIndex]) -> Outgoing {
        let _ = (ctx, recipients);
        Vec::new()
    }

    /// Called every [`TICK_MS`]: receipt batches of its own making, each
    /// for every node of the given destination shard.
    fn receipts(&mut self, ctx: &Ctx<'_>) -> Vec<(ShardId, ReceiptBatch)> {
        let _ = ctx;
        Vec::new()
    }

    /// Does it answer peers' sync requests?
    fn answers_sync(&self) -> bool {
        true
    }
}

/// How often [`Byzantine::tick`] runs.
pub const TICK_MS: u64 = 40;

/// `message` to every recipient, unchanged.
pub fn honest(message: &SignedMessage, recipients: &[ValidatorIndex]) -> Outgoing {
    let bytes = encode(message);
    recipients.iter().map(|to| (*to, bytes.clone())).collect()
}

/// Splits `recipients` at random: `(first, second, both)` where `both` get
/// both versions, in the order given by the bool (true: first version first).
pub fn split(rng: &mut SimRng, recipients: &[ValidatorIndex]) -> Vec<(ValidatorIndex, Split)> {
    let mut shuffled = recipients.to_vec();
    rng.shuffle(&mut shuffled);
    let half = shuffled.len() / 2;
    shuffled
        .into_iter()
        .enumerate()
        .map(|(i, to)| {
            let split = match rng.range(0, 5) {
                0 => Split::BothFirstFirst,
                1 => Split::BothSecondFirst,
                _ if i < half => Split::First,
                _ => Split::Second,
            };
            (to, split)
        })
        .collect()
}

/// Which versions one recipient of an equivocation gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Only the first.
    First,
    /// Only the second.
    Second,
    /// Both, the first first.
    BothFirstFirst,
    /// Both, the second first.
    BothSecondFirst,
}

/// Sends `a` and `b` according to `splits`.
pub fn equivocate(splits: &[(ValidatorIndex, Split)], a: &SignedMessage, b: &SignedMessage) -> Outgoing {
    let (a, b) = (encode(a), encode(b));
    let mut out = Vec::new();
    for (to, split) in splits {
        match split {
            Split::First => out.push((*to, a.clone())),
            Split::Second => out.push((*to, b.clone())),
            Split::BothFirstFirst => {
                out.push((*to, a.clone()));
                out.push((*to, b.clone()));
            }
            Split::BothSecondFirst => {
                out.push((*to, b.clone()));
                out.push((*to, a.clone()));
            }
        }
    }
    out
}
