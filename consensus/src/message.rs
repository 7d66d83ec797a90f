//! Wire messages, and the only way to turn peer bytes into something the
//! replica accepts: [`decode`] (bounded) then [`SignedMessage::verify`], which
//! yields a [`Verified<SignedMessage>`].
//!
//! Verification is complete and stateless: chain id, shard, membership, the
//! sender's signature, and every embedded certificate and view change,
//! including the rule that a new-view proposal re-proposes the block of the
//! highest prepared certificate in its justification. The replica only adds
//! checks that need its state (leader of the view, block size, height and view
//! windows).

use std::ops::Deref;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::certificate::{CertError, CommitCertificate, PreparedCertificate};
use crate::committee::{Committee, ValidatorIndex};
use crate::crypto::{self, Batch, Signature, Statement};
// Defined in `crypto`, the lowest layer, because every signed statement is
// made of them; re-exported here, where the wire types that carry them live.
pub use crate::crypto::{BlockHash, Phase, ShardId};

/// A signed vote for a block at `(height, view)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The step voted on.
    pub phase: Phase,
    /// Height of the block.
    pub height: u64,
    /// View of the vote.
    pub view: u64,
    /// The block voted for.
    pub block_hash: BlockHash,
}

impl Vote {
    pub(crate) fn statement(&self) -> Statement {
        Statement::Vote { phase: self.phase, height: self.height, view: self.view, block_hash: self.block_hash }
    }
}

/// A leader's proposal for `(height, view)`. In view 0 the justification is
/// empty; in a later view it is the quorum of view changes that started the
/// view (PBFT's new-view message, merged with its pre-prepare).
///
/// The leader signs only `(Propose, height, view, block_hash)`. The block bytes
/// are bound by the host's hash check, the justification by its own
/// signatures, so evidence against a proposer stays small.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Height proposed for.
    pub height: u64,
    /// View proposed in.
    pub view: u64,
    /// Host-defined hash of `block`.
    pub block_hash: BlockHash,
    /// The opaque block.
    pub block: Vec<u8>,
    /// View changes for `view` from a quorum, sorted by signer (empty in view 0).
    pub justification: Vec<SignedViewChange>,
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal")
            .field("height", &self.height)
            .field("view", &self.view)
            .field("block_hash", &short(&self.block_hash))
            .field("block_len", &self.block.len())
            .field("justification_len", &self.justification.len())
            .finish()
    }
}

/// "I leave for view `view` at `height`", with the highest prepared
/// certificate the sender holds at this height (PBFT view-change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// Height of the view change.
    pub height: u64,
    /// The view the sender moves to (at least 1).
    pub view: u64,
    /// The sender's highest prepared certificate at `height`, from a view
    /// below `view`.
    pub prepared: Option<PreparedCertificate>,
    /// 0 when first sent; [P11] the n-th re-send carries n, signed, so its
    /// bytes differ from every earlier copy: gossip drops bytes it has
    /// seen, and only the sender can make a new copy.
    pub resend: u64,
}

impl ViewChange {
    pub(crate) fn statement(&self) -> Statement {
        Statement::ViewChange {
            height: self.height,
            view: self.view,
            prepared: self.prepared.as_ref().map(|p| (p.view, p.block_hash)),
            resend: self.resend,
        }
    }
}

/// A view change with its signature, as carried in a proposal's justification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedViewChange {
    /// Who sent it.
    pub signer: ValidatorIndex,
    /// What they sent.
    pub view_change: ViewChange,
    /// Their signature over the view change statement.
    pub signature: Signature,
}

/// "I am at `(height, view)` and alive". A leader with no proposal out
/// yet says so every beat, so followers can suspect a silent leader after
/// `Config::leader_timeout_ms` instead of after the whole view timeout,
/// which must cover an idle shard's wait for its heartbeat block. Every
/// other member says so every other beat while it is not re-sending a view
/// change, so that hosts can tell which members they hear (a lost quorum
/// shows within a leader timeout, idle or not). It commits the signer to
/// nothing: it is never persisted, counted or used as evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alive {
    /// The height the sender is deciding.
    pub height: u64,
    /// The view it is in.
    pub view: u64,
    /// Counts the sender's beats in this view. Signatures are
    /// deterministic: without it every beat of a view would be the same
    /// bytes, and gossip, which drops a message it has seen, would deliver
    /// only the first.
    pub beat: u64,
}

/// A decided block with its certificate, sent to a peer still working on
/// that height.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Proof of finality.
    pub certificate: CommitCertificate,
    /// The block bytes (the host checks they hash to the certificate's hash).
    pub block: Vec<u8>,
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("height", &self.certificate.height)
            .field("view", &self.certificate.view)
            .field("block_hash", &short(&self.certificate.block_hash))
            .field("block_len", &self.block.len())
            .finish()
    }
}

/// The consensus messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A leader's proposal (pre-prepare, or new-view in a later view).
    Propose(Proposal),
    /// A prepare or commit vote. `Phase::Propose` is not valid here.
    Vote(Vote),
    /// A view change.
    ViewChange(ViewChange),
    /// A decided block, for a lagging peer.
    Decided(Decision),
    /// A member's liveness beat.
    Alive(Alive),
}

impl Message {
    /// The height the message is about.
    pub fn height(&self) -> u64 {
        match self {
            Message::Propose(p) => p.height,
            Message::Vote(v) => v.height,
            Message::ViewChange(vc) => vc.height,
            Message::Decided(d) => d.certificate.height,
            Message::Alive(a) => a.height,
        }
    }

    /// The view the message is about.
    pub fn view(&self) -> u64 {
        match self {
            Message::Propose(p) => p.view,
            Message::Vote(v) => v.view,
            Message::ViewChange(vc) => vc.view,
            Message::Decided(d) => d.certificate.view,
            Message::Alive(a) => a.view,
        }
    }

    pub(crate) fn statement(&self) -> Statement {
        match self {
            Message::Propose(p) => {
                Statement::Vote { phase: Phase::Propose, height: p.height, view: p.view, block_hash: p.block_hash }
            }
            Message::Vote(v) => v.statement(),
            Message::ViewChange(vc) => vc.statement(),
            Message::Decided(d) => {
                Statement::Decided { height: d.certificate.height, block_hash: d.certificate.block_hash }
            }
            Message::Alive(a) => Statement::Alive { height: a.height, view: a.view, beat: a.beat },
        }
    }
}

/// A message as it travels: the envelope names chain, shard and signer in
/// the clear so a mismatch gets a precise error before any crypto runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The chain the signer meant.
    pub chain_id: String,
    /// The shard the signer meant.
    pub shard: ShardId,
    /// The signer's committee index.
    pub signer: ValidatorIndex,
    /// The content.
    pub message: Message,
    /// Signature over the message's statement digest (see `crypto`).
    pub signature: Signature,
}

/// Proof of checking: only [`SignedMessage::verify`] makes a
/// `Verified<SignedMessage>`, and only a verified message reaches the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    /// The verified value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why a message was rejected before reaching the replica. Every variant is
/// the sending peer's fault.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The bytes do not decode, or exceed the size limit.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// Meant for another chain.
    #[error("message for chain {got:?}, expected {expected:?}")]
    WrongChain {
        /// Our chain id.
        expected: String,
        /// The message's chain id.
        got: String,
    },
    /// Meant for another shard.
    #[error("message for shard {got}, expected {expected}")]
    WrongShard {
        /// Our shard.
        expected: ShardId,
        /// The message's shard.
        got: ShardId,
    },
    /// The signer is not in the committee.
    #[error("signer {0} is not a committee member")]
    UnknownSigner(ValidatorIndex),
    /// A signature (the sender's or an embedded one) does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Structurally wrong (e.g. a vote with phase `Propose`, a view change to view 0).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// An embedded certificate does not prove what it claims.
    #[error("invalid certificate: {0}")]
    Certificate(#[from] CertError),
    /// A later-view proposal's justification is wrong.
    #[error("invalid new-view justification: {0}")]
    Justification(&'static str),
}

/// [`VerifyError::Justification`]'s reason when the view changes hold less
/// than a quorum of stake.
pub const SHORT_OF_QUORUM: &str = "view changes from less than a quorum";

impl VerifyError {
    /// Genuine signatures (every one the message carries verifies) that hold
    /// less than a quorum of the committee checked against. Only the
    /// committee deciding the message's height can tell: under an earlier or
    /// later one (a jailing in between) an honest peer's message may fall
    /// short. A forged message short of a quorum is [`VerifyError::BadSignature`].
    pub fn is_stake_shortfall(&self) -> bool {
        matches!(self, VerifyError::Certificate(CertError::InsufficientStake { .. }))
            || *self == VerifyError::Justification(SHORT_OF_QUORUM)
    }
}

/// Hard cap on what one message may claim while decoding, whatever the
/// caller's limit: 64 MiB.
pub const DECODE_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Decodes a message from peer bytes, refusing anything over `limit_bytes`
/// (see [`max_message_bytes`]).
pub fn decode(bytes: &[u8], limit_bytes: usize) -> Result<SignedMessage, VerifyError> {
    if bytes.len() > limit_bytes {
        return Err(VerifyError::Decode(format!("{} bytes exceeds limit {limit_bytes}", bytes.len())));
    }
    decode_exact(bytes).map_err(VerifyError::Decode)
}

/// Decodes exactly one `T` (canonical encoding, no trailing bytes) from
/// `bytes`, whose length the caller bounded.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // The slice length bounds what the decoder reads; the configured limit
    // also bounds what a forged length prefix can make it allocate.
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT_BYTES>();
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, config).map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err("trailing bytes".to_owned());
    }
    Ok(value)
}

/// The canonical encoding of a message.
pub fn encode(message: &SignedMessage) -> Vec<u8> {
    bincode::serde::encode_to_vec(message, bincode::config::standard())
        .expect("encoding plain data into a Vec cannot fail")
}

/// An upper bound on the encoded size of any valid message for a committee of
/// `committee_len` validators and blocks of at most `max_block_bytes`: the
/// largest message is a new-view proposal carrying a block and a view change
/// (with a full prepared certificate) from every validator.
pub fn max_message_bytes(committee_len: usize, max_block_bytes: usize) -> usize {
    // Generous per-item sizes: a vote signature is an index varint (<= 5) and
    // 64 bytes; a view change header is under 64 bytes plus its certificate.
    const ENVELOPE_BYTES: usize = 512;
    const SIGNATURE_ENTRY_BYTES: usize = 69;
    const VIEW_CHANGE_BYTES: usize = 192;
    let per_view_change = committee_len.saturating_mul(SIGNATURE_ENTRY_BYTES).saturating_add(VIEW_CHANGE_BYTES);
    committee_len.saturating_mul(per_view_change).saturating_add(max_block_bytes).saturating_add(ENVELOPE_BYTES)
}

impl SignedMessage {
    /// Signs `message` as validator `signer` with `key`.
    pub fn sign(
        chain_id: &str,
        shard: ShardId,
        signer: ValidatorIndex,
        message: Message,
        key: &SigningKey,
    ) -> SignedMessage {
        let signature = crypto::sign(key, chain_id, shard, &message.statement());
        SignedMessage { chain_id: chain_id.to_owned(), shard, signer, message, signature }
    }

    /// Checks everything that can be checked without replica state, and
    /// returns the message as [`Verified`].
    pub fn verify(
        self,
        committee: &Committee,
        chain_id: &str,
        shard: ShardId,
    ) -> Result<Verified<SignedMessage>, VerifyError> {
        if self.chain_id != chain_id {
            return Err(VerifyError::WrongChain { expected: chain_id.to_owned(), got: self.chain_id });
        }
        if self.shard != shard {
            return Err(VerifyError::WrongShard { expected: shard, got: self.shard });
        }
        let key = committee.verifying_key(self.signer).ok_or(VerifyError::UnknownSigner(self.signer))?;
        let mut batch = Batch::default();
        batch.push(key, crypto::digest(chain_id, shard, &self.message.statement()), &self.signature);
        // A stake shortfall is judged after the signatures: only genuine
        // signatures short of a quorum may be another committee's quorum.
        let shortfall = match &self.message {
            Message::Vote(vote) => {
                if vote.phase == Phase::Propose {
                    return Err(VerifyError::Malformed("a vote cannot have phase Propose"));
                }
                None
            }
            Message::ViewChange(view_change) => check_view_change(committee, chain_id, shard, view_change, &mut batch)?,
            Message::Propose(proposal) => check_justification(committee, chain_id, shard, proposal, &mut batch)?,
            Message::Decided(decision) => {
                deferred(decision.certificate.check(committee, chain_id, shard, &mut batch).map_err(VerifyError::from))?
            }
            Message::Alive(_) => None,
        };
        if !batch.verify() {
            return Err(VerifyError::BadSignature);
        }
        match shortfall {
            Some(shortfall) => Err(shortfall),
            None => Ok(Verified(self)),
        }
    }
}

/// A check's stake shortfall, deferred until the signatures are verified
/// (the check queued them all before weighing their stake); any other error
/// is final.
fn deferred(checked: Result<(), VerifyError>) -> Result<Option<VerifyError>, VerifyError> {
    match checked {
        Ok(()) => Ok(None),
        Err(e) if e.is_stake_shortfall() => Ok(Some(e)),
        Err(e) => Err(e),
    }
}

/// A view change moves to view >= 1 and its certificate, if any, is for the
/// same height and an earlier view.
fn check_view_change(
    committee: &Committee,
    chain_id: &str,
    shard: ShardId,
    view_change: &ViewChange,
    batch: &mut Batch,
) -> Result<Option<VerifyError>, VerifyError> {
    if view_change.view == 0 {
        return Err(VerifyError::Malformed("view change to view 0"));
    }
    let Some(prepared) = &view_change.prepared else {
        return Ok(None);
    };
    if prepared.height != view_change.height || prepared.view >= view_change.view {
        return Err(VerifyError::Malformed("prepared certificate not from an earlier view of this height"));
    }
    deferred(prepared.check(committee, chain_id, shard, batch).map_err(VerifyError::from))
}

/// PBFT new-view rule: a proposal in view v > 0 carries view changes for
/// (height, v) from a quorum, and proposes the block of the highest prepared
/// certificate among them, if there is one. In view 0 there is nothing to
/// justify.
fn check_justification(
    committee: &Committee,
    chain_id: &str,
    shard: ShardId,
    proposal: &Proposal,
    batch: &mut Batch,
) -> Result<Option<VerifyError>, VerifyError> {
    if proposal.view == 0 {
        return if proposal.justification.is_empty() {
            Ok(None)
        } else {
            Err(VerifyError::Justification("view 0 needs no justification"))
        };
    }
    let mut previous: Option<ValidatorIndex> = None;
    let mut shortfall = None;
    for signed in &proposal.justification {
        if previous.is_some_and(|p| p >= signed.signer) {
            return Err(VerifyError::Justification("signers not strictly ascending"));
        }
        previous = Some(signed.signer);
        let view_change = &signed.view_change;
        if view_change.height != proposal.height || view_change.view != proposal.view {
            return Err(VerifyError::Justification("view change for another height or view"));
        }
        let key = committee.verifying_key(signed.signer).ok_or(VerifyError::UnknownSigner(signed.signer))?;
        batch.push(key, crypto::digest(chain_id, shard, &view_change.statement()), &signed.signature);
        let short = check_view_change(committee, chain_id, shard, view_change, batch)?;
        shortfall = shortfall.or(short);
    }
    if let Some((_, block_hash)) = highest_prepared(&proposal.justification)
        && block_hash != proposal.block_hash
    {
        return Err(VerifyError::Justification("does not re-propose the block of the highest prepared certificate"));
    }
    let stake = committee.stake_of(proposal.justification.iter().map(|s| s.signer));
    if stake < committee.quorum_stake() {
        return Ok(Some(VerifyError::Justification(SHORT_OF_QUORUM)));
    }
    Ok(shortfall)
}

/// The `(view, block_hash)` of the highest prepared certificate among view
/// changes. Ties on view are broken by hash so every replica picks the same
/// one; with less than a third of the stake Byzantine two certificates of one
/// view always name the same block anyway.
pub(crate) fn highest_prepared(view_changes: &[SignedViewChange]) -> Option<(u64, BlockHash)> {
    view_changes.iter().filter_map(|s| s.view_change.prepared.as_ref()).map(|p| (p.view, p.block_hash)).max()
}

/// The first bytes of a hash, for logs.
pub(crate) fn short(hash: &BlockHash) -> String {
    hash.iter().take(4).map(|b| format!("{b:02x}")).collect()
}
