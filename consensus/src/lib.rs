//! palisade-consensus: the PBFT-style replica for one shard's committee.
//!
//! This crate is pure: it depends on no runtime, no network, no storage, no
//! clock and no randomness, so a seeded simulator can drive it
//! deterministically. The host feeds [`Input`]s to [`Replica::handle`] and
//! carries out the [`Action`]s it appends, in order.
//!
//! # Why classic PBFT view change, not Tendermint locks
//!
//! Both families keep safety across views; they differ in where the evidence
//! for "this block may have been committed" lives. Tendermint keeps it in each
//! replica's lock and relies on the gossip layer eventually delivering the
//! old-round prevotes that justify a re-proposal (`validRound`). PBFT puts it
//! in the messages: a view change carries its sender's highest *prepared
//! certificate*, and the new leader's proposal carries the quorum of view
//! changes that justifies it. We chose PBFT because
//!
//! * every step is checkable from the message alone ([`SignedMessage::verify`]
//!   rejects a new-view proposal that does not re-propose the highest prepared
//!   block), which suits a sans-IO core driven over a lossy network with no
//!   gossip guarantees;
//! * the persisted state is small: the votes of the current view and one
//!   prepared certificate with its block ([`SafetyState`]);
//! * the certificates it produces are exactly what the rest of the system
//!   needs ([`CommitCertificate`] for finality and sync).
//!
//! # The protocol, per height (tags used in the code)
//!
//! Stake-weighted: a *quorum* is any set of validators holding more than 2/3
//! of the committee's stake ([`Committee::quorum_stake`]); a *weak quorum*
//! more than 1/3. The leader of `(height, view)` is the member at position
//! `(height + view) mod n` of the `n` members of the rotation, in index
//! order ([`Committee::leader`]). The rotation is the active (unjailed)
//! members less those the host benched for failing their recent turns
//! ([`Committee::benching`]); the host derives both from the chain, so
//! every replica agrees on them (deviation from PBFT's fixed `v mod n`).
//!
//! * **P0** On entering view 0 of a height, the leader asks the host for a
//!   block ([`Action::RequestProposal`]); every replica sets the view's timer.
//! * **P1** The leader broadcasts `Propose(h, v, block_hash, block,
//!   justification)`. A replica accepts the first proposal of its view from
//!   the view's leader and asks the host to validate it
//!   ([`Action::ValidateBlock`]).
//! * **P2** Once the host says the block is valid, the replica persists and
//!   broadcasts `Prepare(h, v, block_hash)`. It never prepares a block the
//!   host has not validated, nor two blocks in one view.
//! * **P3** *Prepared*: the accepted proposal plus prepares from a quorum.
//!   The replica records the prepared certificate, persists, and broadcasts
//!   `Commit(h, v, block_hash)`.
//! * **P4** Commits from a quorum for one `(h, v, block_hash)` form the
//!   [`CommitCertificate`]: the height is final ([`Action::Commit`]). Once
//!   the host has applied it and named the committee of `h + 1`
//!   ([`Input::Committed`]), the replica moves to `h + 1`, view 0. A
//!   certificate received from a peer (`Decided`) decides the same way.
//! * **P5/P7** When a view's timer fires, the replica moves to `v + 1`: it
//!   persists, stops voting in `v`, and broadcasts `ViewChange(h, v + 1,
//!   highest prepared certificate)`. As in PBFT, the new view's timer,
//!   `base * 2^view` capped at `max_timeout_ms` (so an unlucky streak of
//!   leaders cannot starve progress once the network stabilises), starts
//!   only once the view has *formed*: view changes for it from a quorum, or
//!   a justified proposal in it. Until then the replica waits there and
//!   repeats its view change (P11, and a waiting timer of the view's
//!   length), never moving further on its own: a replica whose timers ran
//!   a little ahead of the others otherwise stayed a view ahead of them for
//!   good, leaving each view just before they arrived, so no view ever had
//!   its quorum (simulator seed 188, a shard that needed all five honest
//!   members). The wait is bounded ([`replica::MAX_WAITS`] waiting timers):
//!   a view change lost on its way from a member now a view ahead is never
//!   re-sent, and waiting for it for good deadlocked (seed 799). A replica
//!   restored into a view it has no view change for moves on at its timer,
//!   as before.
//! * **P10** Leader suspicion (not in the paper, whose timer is the only
//!   failure detector). A view's timer must cover an idle leader's wait
//!   for its heartbeat block, so it is slow to notice a dead leader. So the
//!   host also hands the replica a beat ([`Input::Beat`]): a leader with
//!   no proposal out signs an [`Alive`] for its view on each, and a
//!   follower that hears nothing from the leader (entering the view, an
//!   `Alive`, the proposal) for `leader_timeout_ms * 2^view` (capped by the
//!   view timeout) leaves the view as P7 does. An `Alive` only delays this
//!   earlier timer, never the view's own, so a leader that beats but never
//!   proposes costs one view timeout, as before. A follower also leaves at
//!   once when the host finds the leader's block invalid: it will never
//!   prepare it, and if a weak quorum agrees no quorum can.
//! * **P11** Retransmission: on each beat, a replica in a view above 0 with
//!   no proposal yet sends its view change for that view again, signed anew
//!   with the beat's number (`ViewChange::resend`: identical bytes would be
//!   dropped by gossip as already seen). View changes lost to a partition
//!   are then re-learnt within a beat of the heal, and P8 brings the lower
//!   side up, however far the timers backed off meanwhile.
//! * **P12** Presence: on every other beat, a member that is neither
//!   awaited as leader nor re-sending a view change signs an `Alive` too.
//!   The replica ignores it; hosts count who they heard from within a
//!   leader timeout, to tell a lost quorum (or a node cut off from its
//!   shard) while the shard is idle.
//! * **P6** New view: the leader of `v + 1`, holding view changes for `v + 1`
//!   from a quorum, proposes with those view changes as justification. If any
//!   carries a prepared certificate, it must re-propose the block of the
//!   highest one (by view); otherwise it asks the host for a fresh block. A
//!   replica receiving a justified proposal for a higher view moves there.
//! * **P8** A replica that sees view changes above its view from validators
//!   that can block every quorum (more than `total - quorum` of the stake:
//!   PBFT's f + 1, and a single member of three) joins the smallest such view
//!   without waiting for its own timer. View
//!   changes beyond the view window are not dropped: each validator's highest
//!   one is kept (bounded by the committee size), so a replica that fell far
//!   behind in views can still follow.
//! * **P9** Catch-up: a replica that decided `h` answers a view change for `h`
//!   with the decision (again for each higher view, at most
//!   [`replica::MAX_DECISION_REPLIES`] times per peer); a replica that sees
//!   messages beyond its height window, or buffered messages for later heights
//!   from a weak quorum, asks the host to sync ([`Action::SyncFrom`], at most
//!   once per height and view, answered by [`Input::Committed`]).
//!
//! **Safety argument.** If `B` is committed in view `v`, a quorum sent
//! `Commit(v, B)`, and each of them held a prepared certificate for `B` at
//! `v`. The honest ones persisted it before voting, never vote in `v` again
//! once they leave it, and report it (or a later one) in every view change
//! they send afterwards. Any quorum of view changes for a later view shares
//! more than a third of the stake with the commit quorum, hence an honest
//! validator, so the highest prepared certificate in any valid justification
//! is from a view `>= v`; by induction every prepared certificate from a view
//! `>= v` is for `B`. So every later leader must re-propose `B`, and no other
//! block can be prepared, let alone committed, at that height.
//!
//! # Deviations from the paper (Castro and Liskov, OSDI 1999)
//!
//! * One instance per height, no pipelining of sequence numbers, hence no
//!   watermarks and no checkpoint protocol: a [`CommitCertificate`] plus host
//!   sync replaces checkpoints and state transfer.
//! * Stake-weighted quorums instead of `2f + 1` out of `3f + 1`.
//! * Signatures (ed25519 over domain-separated blake3 digests) instead of
//!   MACs; certificates are transferable and verifiable by anyone.
//! * The new-view message and the new leader's pre-prepare are one message,
//!   and only one block is re-proposed (one sequence number per instance).
//!   Blocks are opaque; the host defines their hash and must check it when
//!   validating. The leader signs only `(height, view, block_hash)`.
//! * View changes carry the prepared certificate without the block bytes; a
//!   new leader that does not hold the block of the highest certificate
//!   cannot re-propose and lets its view time out. A later leader will hold
//!   it: every replica that formed a prepared certificate persisted the
//!   block with it ([`SafetyState::prepared_block`]), and gets it back from
//!   [`Replica::restore`] after a crash (without that, crashes could take
//!   it from every leader and stall the height for good: simulator seed
//!   1029). This costs views, never safety.
//! * The leader treats a block the host built for it as valid, and counts
//!   its own prepare like any other (PBFT counts the pre-prepare instead).
//! * Block validity is external: the replica prepares only what the host
//!   validated ([`Input::BlockValidity`]).
//! * Timeouts double per view (capped) and restart at view 0 each height.
//! * Equivocation (two signed proposals or votes for one `(height, view,
//!   phase)` with different blocks) produces transferable [`Evidence`].
//! * A replica accepts a justified new-view proposal for any higher view (the
//!   paper bounds views by the log's watermarks); votes beyond the view
//!   window are refused.
//!
//! # Bounds
//!
//! Blocks: `Config::max_block_bytes`. Wire messages: [`max_message_bytes`]
//! and [`message::DECODE_LIMIT_BYTES`]. Future heights:
//! `Config::future_heights`, at most `Config::max_buffered_per_validator`
//! messages per validator. Votes: views within `OLD_VIEWS_KEPT` below and
//! `Config::future_views` above the current one. Blocks per height:
//! [`replica::MAX_BLOCKS_PER_HEIGHT`]. Decisions kept for laggards:
//! [`replica::DECISIONS_KEPT`]. Evidence: one per offence (per
//! `(signer, view, phase)`), within the vote bounds.
//!
//! # What the host must do
//!
//! Verify every peer message ([`decode`] then [`SignedMessage::verify`],
//! against the committee of the height after the committed tip, the one the
//! last [`Input::Committed`] named) and feed only [`Verified`] ones; persist each [`Action::Persist`] before
//! carrying out the actions after it; check in [`Action::ValidateBlock`]
//! that the bytes hash to the claimed hash; route [`Action::Broadcast`] to
//! every other validator (a replica ignores messages signed with its own
//! index); hand back timers and answers; after every [`Action::Commit`] and
//! every sync, send [`Input::Committed`] with the committee the committed
//! chain defines for the next height.
//!
//! # Committee changes
//!
//! A committed block may change the committee (slashing jails a validator).
//! Each height is decided by one committee, the one its parent block
//! defines, so the safety argument above holds per height. The replica
//! signs nothing at `h + 1` until the host, having applied `h`, names that
//! committee: were it to vote at `h + 1` under the old one (messages for
//! `h + 1` arrive before `h` is decided), its votes and prepared
//! certificate would count a jailed validator's stake, and the view changes
//! carrying that certificate would never verify under the new committee,
//! halting the shard. Messages buffered for later heights were verified
//! against the old committee and are verified again against the new one.
//!
//! # Crash safety
//!
//! Every signed message is preceded by [`Action::Persist`] of the
//! [`SafetyState`] it depends on; [`Replica::restore`] resumes from it and
//! refuses to sign anything conflicting. The host stores the record
//! [`SafetyState::encode`] writes and reads it back with
//! [`SafetyState::decode`] (bounded by `max_block_bytes`), which also reads
//! the unversioned records written before the prepared block was kept.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod certificate;
pub mod committee;
mod crypto;
pub mod evidence;
pub mod message;
pub mod replica;

pub use certificate::{CertError, CommitCertificate, PreparedCertificate, VoteSignature};
pub use committee::{Committee, CommitteeError, Validator, ValidatorIndex};
pub use crypto::{MESSAGE_CONTEXT, Signature};
pub use evidence::{Evidence, EvidenceError, SignedVote};
pub use message::{
    Alive, BlockHash, Decision, Message, Phase, Proposal, ShardId, SignedMessage, SignedViewChange, Verified,
    VerifyError, ViewChange, Vote, decode, encode, max_message_bytes,
};
pub use replica::{
    Action, Config, ConfigError, Input, RecordError, Rejected, Replica, SafetyState, TimerId, TimerKind,
};
