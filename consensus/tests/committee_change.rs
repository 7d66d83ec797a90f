//! A committee change between heights (a jailing): each height is decided by
//! the committee its parent block defines, which the host names in
//! `Input::Committed`. Until then the replica signs nothing at the new height.
//!
//! Committee of four equal stakes; jailing validator 2 leaves {0, 1, 3}
//! (quorum 3 of 3). At height 2 view 0 the leader is validator 2 under the old
//! committee and validator 3 under the new one.

mod harness;

use harness::fixture::{Fixture, kinds, last_persisted, votes};
use harness::{CHAIN, SHARD, block_hash, committee, vote};
use palisade_consensus::{
    Action, Committee, Decision, Input, Message, Phase, SignedMessage, TimerKind, ValidatorIndex, VerifyError,
    ViewChange,
};

const FIRST: &[u8] = b"block one";
const NEXT: &[u8] = b"block two";

/// The fixture's committee with validator 2 jailed.
fn without_two(fx: &Fixture) -> Committee {
    committee(&fx.keys, &[1, 1, 0, 1])
}

fn committed(fx: &mut Fixture, height: u64, committee: Committee) -> Vec<Action> {
    fx.input(Input::Committed { height, committee })
}

/// The drill's stall: messages of the next height arrived before this one
/// was decided. Acting on them under the old committee signed votes that
/// counted a jailed validator, and a prepared certificate no view change of
/// the new committee could carry.
#[test]
fn nothing_is_signed_at_the_next_height_before_the_host_names_its_committee() {
    let mut fx = Fixture::new(0);
    fx.start();
    let next = block_hash(NEXT);
    // Height 2's proposal (from its leader under the old committee) and two
    // prepares arrive early.
    fx.from(2, fx.proposal(2, 0, NEXT));
    fx.from(2, vote(Phase::Prepare, 2, 0, next));
    fx.from(3, vote(Phase::Prepare, 2, 0, next));
    let out = fx.decide_height_one(FIRST);
    assert_eq!(kinds(&out), ["Commit"]);
    // More of height 2 while the host applies height 1: held back too.
    let mut all = fx.from(1, vote(Phase::Prepare, 2, 0, next));
    all.extend(fx.input(Input::BlockValidity { height: 2, block_hash: next, valid: true }));
    all.extend(fx.input(Input::Timeout(palisade_consensus::TimerId { height: 2, view: 0, kind: TimerKind::View })));
    assert!(all.is_empty(), "acted at height 2 before its committee was known: {:?}", kinds(&all));
    assert_eq!(fx.replica.height(), 2);
}

#[test]
fn the_new_committee_picks_the_leader_and_the_quorum() {
    let mut fx = Fixture::new(0);
    fx.start();
    // The old committee's leader of (2, 0) proposes early; under the new
    // committee it leads nothing.
    fx.from(2, fx.proposal(2, 0, b"from the jailed one"));
    fx.decide_height_one(FIRST);
    let new = without_two(&fx);
    let out = committed(&mut fx, 1, new.clone());
    assert_eq!(kinds(&out), ["SetTimer", "SetTimer"], "the jailed validator's proposal is not followed");
    // Validator 3 leads (2, 0) now.
    let next = block_hash(NEXT);
    assert_eq!(kinds(&fx.from(3, fx.proposal(2, 0, NEXT))), ["ValidateBlock"]);
    let out = fx.input(Input::BlockValidity { height: 2, block_hash: next, valid: true });
    assert_eq!(votes(&out), [(Phase::Prepare, 2, 0, next)]);
    // Prepares from 0 and 1 are 2 of 3 units: not a quorum any more.
    assert!(votes(&fx.from(1, vote(Phase::Prepare, 2, 0, next))).is_empty());
    // The jailed validator's prepare weighs nothing.
    assert!(votes(&fx.from(2, vote(Phase::Prepare, 2, 0, next))).is_empty());
    let out = fx.from(3, vote(Phase::Prepare, 2, 0, next));
    assert_eq!(votes(&out), [(Phase::Commit, 2, 0, next)]);
    let prepared = fx.replica.safety_state().prepared.clone().expect("prepared under the new committee");
    prepared.verify(&new, CHAIN, SHARD).unwrap();
}

/// Buffered messages were verified against the old committee; a certificate
/// counting the jailed validator's stake is no proof under the new one.
#[test]
fn buffered_messages_are_verified_again_against_the_new_committee() {
    let decided_by = |signers: &[usize]| {
        let fx = Fixture::new(0);
        let certificate = fx.commit_certificate(2, 0, block_hash(NEXT), signers);
        Message::Decided(Decision { certificate, block: NEXT.to_vec() })
    };
    for (signers, replayed) in [(&[1, 2, 3][..], false), (&[0, 1, 3][..], true)] {
        let mut fx = Fixture::new(0);
        fx.start();
        fx.from(1, decided_by(signers));
        fx.decide_height_one(FIRST);
        let new = without_two(&fx);
        let out = committed(&mut fx, 1, new.clone());
        let validating = out.iter().any(|a| matches!(a, Action::ValidateBlock { height: 2, .. }));
        assert_eq!(validating, replayed, "decision signed by {signers:?}");
        let refused = fx.signed(1, decided_by(signers)).into_inner().verify(&new, CHAIN, SHARD).err();
        assert_eq!(refused.as_ref().is_some_and(VerifyError::is_stake_shortfall), !replayed);
    }
}

#[test]
fn a_jailed_replica_signs_nothing() {
    let mut fx = Fixture::new(2);
    fx.start();
    fx.decide_height_one(FIRST);
    let new = without_two(&fx);
    committed(&mut fx, 1, new);
    assert_eq!(fx.replica.index(), None);
    let next = block_hash(NEXT);
    let mut all = fx.from(3, fx.proposal(2, 0, NEXT));
    all.extend(fx.input(Input::BlockValidity { height: 2, block_hash: next, valid: true }));
    all.extend(fx.input(Input::Timeout(palisade_consensus::TimerId { height: 2, view: 0, kind: TimerKind::View })));
    assert!(votes(&all).is_empty() && !kinds(&all).contains(&"Broadcast(ViewChange)"), "{:?}", kinds(&all));
    // It still follows: a decision of the new committee commits.
    let certificate = fx.commit_certificate(2, 0, next, &[0, 1, 3]);
    let out = fx.from(1, Message::Decided(Decision { certificate, block: NEXT.to_vec() }));
    assert_eq!(kinds(&out), ["Commit"]);
}

#[test]
fn stale_and_repeated_answers_change_nothing() {
    let mut fx = Fixture::new(0);
    fx.start();
    fx.decide_height_one(FIRST);
    assert!(fx.committed(0).is_empty(), "below the decided height");
    assert_eq!(kinds(&fx.committed(1)), ["SetTimer", "SetTimer"]);
    assert!(fx.committed(1).is_empty(), "height 2 already started");
    // A jump by sync still works after it.
    assert_eq!(kinds(&fx.committed(4)), ["SetTimer", "SetTimer"]);
    assert_eq!(fx.replica.height(), 5);
}

/// A shortfall excuses a message as another committee's only if every
/// signature it carries is genuine; a forged one is a forgery.
#[test]
fn a_forged_message_short_of_a_quorum_is_a_forgery() {
    let fx = Fixture::new(0);
    let new = without_two(&fx);
    let mut certificate = fx.commit_certificate(2, 0, block_hash(NEXT), &[1, 2, 3]);
    let decided = |certificate| Message::Decided(Decision { certificate, block: NEXT.to_vec() });
    let genuine = fx.signed(1, decided(certificate.clone())).into_inner();
    assert!(genuine.verify(&new, CHAIN, SHARD).unwrap_err().is_stake_shortfall());
    certificate.signatures[2].signature.0[0] ^= 1;
    let forged = SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(1), decided(certificate), &fx.keys[1]);
    assert_eq!(forged.clone().verify(&new, CHAIN, SHARD).unwrap_err(), VerifyError::BadSignature);
    // So is a sender's signature forged on a view change short of a quorum.
    let prepared = fx.prepared_certificate(2, 0, block_hash(NEXT), &[1, 2, 3]);
    let mut view_change = fx
        .signed(1, Message::ViewChange(ViewChange { height: 2, view: 1, prepared: Some(prepared), resend: 0 }))
        .into_inner();
    assert!(view_change.clone().verify(&new, CHAIN, SHARD).unwrap_err().is_stake_shortfall());
    view_change.signature.0[0] ^= 1;
    assert_eq!(view_change.verify(&new, CHAIN, SHARD).unwrap_err(), VerifyError::BadSignature);
}

/// A crash between the replica's decision and the host's answer: whatever
/// the host made durable, the restarted replica signs nothing new that
/// conflicts, and goes on.
#[test]
fn a_crash_between_the_decision_and_the_answer_loses_nothing() {
    let mut fx = Fixture::new(0);
    fx.start();
    let mut all = fx.vote_height_one(FIRST);
    all.extend(fx.from(2, vote(Phase::Commit, 1, 0, block_hash(FIRST))));
    assert!(kinds(&all).ends_with(&["Commit"]), "{:?}", kinds(&all));
    let persisted = last_persisted(&all);
    assert_eq!((persisted.height, persisted.commit_vote), (1, Some(block_hash(FIRST))));
    // The block was durable: height 2 starts afresh.
    fx.replica = fx.restored(Some(persisted.clone()), 1);
    let out = fx.start();
    assert_eq!(kinds(&out), ["SetTimer", "SetTimer"]);
    assert_eq!(fx.replica.height(), 2);
    // It was not: height 1 resumes, its votes re-sent as they were.
    fx.replica = fx.restored(Some(persisted), 0);
    let out = fx.start();
    assert_eq!(votes(&out), [(Phase::Prepare, 1, 0, block_hash(FIRST)), (Phase::Commit, 1, 0, block_hash(FIRST))]);
    let certificate = fx.commit_certificate(1, 0, block_hash(FIRST), &[1, 2, 3]);
    let out = fx.from(2, Message::Decided(Decision { certificate, block: FIRST.to_vec() }));
    let out = [out, fx.input(Input::BlockValidity { height: 1, block_hash: block_hash(FIRST), valid: true })].concat();
    assert!(kinds(&out).contains(&"Commit"), "{:?}", kinds(&out));
    assert_eq!(kinds(&fx.committed(1)), ["SetTimer", "SetTimer"]);
}
