//! A single replica under test, fed hand-made messages from the other
//! validators of a four-validator committee (equal stakes unless a test
//! builds its own).

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    Action, BlockHash, CommitCertificate, Committee, Config, ConfigError, Decision, Input, Message, Phase,
    PreparedCertificate, Proposal, Rejected, Replica, SafetyState, SignedMessage, SignedViewChange, ValidatorIndex,
    Verified, ViewChange, VoteSignature,
};

use super::{CHAIN, SHARD, block_hash, committee, keys, signed, vote};

pub struct Fixture {
    pub keys: Vec<SigningKey>,
    pub committee: Committee,
    pub me: usize,
    pub replica: Replica,
}

pub fn config(keys: &[SigningKey], committee: &Committee, me: usize) -> Config {
    let mut config = Config::new(CHAIN, SHARD, committee.clone(), Some(keys[me].clone()));
    config.base_timeout_ms = 100;
    config.max_timeout_ms = 1_000;
    config.leader_timeout_ms = 40;
    config.max_block_bytes = 1_000;
    config.future_heights = 2;
    config.future_views = 3;
    config.max_buffered_per_validator = 4;
    config
}

impl Fixture {
    pub fn new(me: usize) -> Fixture {
        let keys = keys(4);
        let committee = committee(&keys, &[1, 1, 1, 1]);
        let replica = Replica::new(config(&keys, &committee, me), 0).unwrap();
        Fixture { keys, committee, me, replica }
    }

    pub fn restored(&self, persisted: Option<SafetyState>, committed_height: u64) -> Replica {
        self.restored_with(persisted, committed_height, Vec::new()).unwrap()
    }

    /// A restart that also hands back the host's recent decisions.
    pub fn restored_with(
        &self,
        persisted: Option<SafetyState>,
        committed_height: u64,
        recent: Vec<Decision>,
    ) -> Result<Replica, ConfigError> {
        Replica::restore(config(&self.keys, &self.committee, self.me), persisted, committed_height, recent)
    }

    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.replica.start(&mut out);
        out
    }

    pub fn input(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.replica.handle(input, &mut out).unwrap();
        out
    }

    /// The host applied every height up to `height` (the replica's decision
    /// or sync); the committee stays the same.
    pub fn committed(&mut self, height: u64) -> Vec<Action> {
        let committee = self.committee.clone();
        self.input(Input::Committed { height, committee })
    }

    /// Height 1 (led by validator 1) up to the last vote before its
    /// decision, for `block`, the replica being any validator but 1: the
    /// proposal, the host's verdict, prepares from two peers and one peer's
    /// commit. Returns every action.
    pub fn vote_height_one(&mut self, block: &[u8]) -> Vec<Action> {
        let hash = block_hash(block);
        let [first, second] = self.peers();
        let mut all = self.from(1, self.proposal(1, 0, block));
        all.extend(self.input(Input::BlockValidity { height: 1, block_hash: hash, valid: true }));
        for from in [first, second] {
            all.extend(self.from(from, vote(Phase::Prepare, 1, 0, hash)));
        }
        all.extend(self.from(first, vote(Phase::Commit, 1, 0, hash)));
        all
    }

    /// Decides height 1 for `block` (see [`Fixture::vote_height_one`]);
    /// returns the deciding step's actions.
    pub fn decide_height_one(&mut self, block: &[u8]) -> Vec<Action> {
        self.vote_height_one(block);
        let [_, second] = self.peers();
        self.from(second, vote(Phase::Commit, 1, 0, block_hash(block)))
    }

    /// Two validators other than this one: with it, a quorum of four.
    fn peers(&self) -> [usize; 2] {
        let mut others = (1..4).filter(|&i| i != self.me);
        [others.next().unwrap(), others.next().unwrap()]
    }

    pub fn try_input(&mut self, input: Input) -> (Result<(), Rejected>, Vec<Action>) {
        let mut out = Vec::new();
        let result = self.replica.handle(input, &mut out);
        (result, out)
    }

    pub fn signed(&self, from: usize, message: Message) -> Verified<SignedMessage> {
        signed(&self.keys, &self.committee, from, message)
    }

    pub fn from(&mut self, from: usize, message: Message) -> Vec<Action> {
        let message = self.signed(from, message);
        self.input(Input::Message(message))
    }

    pub fn proposal(&self, height: u64, view: u64, block: &[u8]) -> Message {
        Message::Propose(Proposal {
            height,
            view,
            block_hash: block_hash(block),
            block: block.to_vec(),
            justification: Vec::new(),
        })
    }

    pub fn vote_signatures(
        &self,
        phase: Phase,
        height: u64,
        view: u64,
        hash: BlockHash,
        signers: &[usize],
    ) -> Vec<VoteSignature> {
        signers
            .iter()
            .map(|&i| VoteSignature {
                signer: ValidatorIndex(i as u32),
                signature: self.signed(i, vote(phase, height, view, hash)).signature,
            })
            .collect()
    }

    pub fn commit_certificate(&self, height: u64, view: u64, hash: BlockHash, signers: &[usize]) -> CommitCertificate {
        CommitCertificate {
            height,
            view,
            block_hash: hash,
            signatures: self.vote_signatures(Phase::Commit, height, view, hash, signers),
        }
    }

    pub fn prepared_certificate(
        &self,
        height: u64,
        view: u64,
        hash: BlockHash,
        signers: &[usize],
    ) -> PreparedCertificate {
        PreparedCertificate {
            height,
            view,
            block_hash: hash,
            signatures: self.vote_signatures(Phase::Prepare, height, view, hash, signers),
        }
    }

    /// A view change signed by `from`, unchecked (it may carry a forged
    /// certificate).
    pub fn view_change(
        &self,
        from: usize,
        height: u64,
        view: u64,
        prepared: Option<PreparedCertificate>,
    ) -> SignedViewChange {
        let view_change = ViewChange { height, view, prepared, resend: 0 };
        let message = SignedMessage::sign(
            CHAIN,
            SHARD,
            ValidatorIndex(from as u32),
            Message::ViewChange(view_change.clone()),
            &self.keys[from],
        );
        SignedViewChange { signer: ValidatorIndex(from as u32), view_change, signature: message.signature }
    }
}

/// The state of the last `Persist` in `actions`.
pub fn last_persisted(actions: &[Action]) -> SafetyState {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a Persist action")
}

/// The messages broadcast or sent in `actions`.
pub fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m) | Action::Send { message: m, .. } => Some(m.message.clone()),
            _ => None,
        })
        .collect()
}

pub fn votes(actions: &[Action]) -> Vec<(Phase, u64, u64, BlockHash)> {
    sent(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Vote(v) => Some((v.phase, v.height, v.view, v.block_hash)),
            _ => None,
        })
        .collect()
}

pub fn kinds(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::Broadcast(m) => match m.message {
                Message::Propose(_) => "Broadcast(Propose)",
                Message::Vote(v) if v.phase == Phase::Prepare => "Broadcast(Prepare)",
                Message::Vote(_) => "Broadcast(Commit)",
                Message::ViewChange(_) => "Broadcast(ViewChange)",
                Message::Decided(_) => "Broadcast(Decided)",
                Message::Alive(_) => "Broadcast(Alive)",
            },
            Action::Send { .. } => "Send",
            Action::Persist(_) => "Persist",
            Action::SetTimer { .. } => "SetTimer",
            Action::Commit { .. } => "Commit",
            Action::Evidence(_) => "Evidence",
            Action::RequestProposal { .. } => "RequestProposal",
            Action::ValidateBlock { .. } => "ValidateBlock",
            Action::SyncFrom { .. } => "SyncFrom",
        })
        .collect()
}
