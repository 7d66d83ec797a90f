//! One replica, hand-fed: each protocol step in isolation, table-driven.
//!
//! Committee of four equal stakes (quorum 3, weak quorum 2). At height 1 the
//! leader of view v is validator (1 + v) mod 4.

mod harness;

use ed25519_dalek::SigningKey;
use harness::fixture::{Fixture, config, kinds, sent, votes};
use harness::{CHAIN, SHARD, block_hash, committee, keys, vote};
use palisade_consensus::{
    Action, CertError, CommitCertificate, Decision, Input, Message, Phase, Proposal, Rejected, Replica, SignedMessage,
    TimerId, TimerKind, ValidatorIndex, VerifyError, ViewChange, VoteSignature, decode, encode,
};

const BLOCK: &[u8] = b"block one";

/// Propose -> validate -> prepare -> commit -> certificate, one input at a
/// time, for a non-leader replica (validator 0; height 1 is led by 1).
#[test]
fn normal_case_step_by_step() {
    let mut fx = Fixture::new(0);
    let hash = block_hash(BLOCK);
    // [P0] not the leader of (1, 0): just the view's timer and [P10] the
    // leader timer.
    assert_eq!(kinds(&fx.start()), ["SetTimer", "SetTimer"]);

    type Step = (&'static str, Box<dyn Fn(&Fixture) -> Input>, &'static [&'static str]);
    let steps: Vec<Step> = vec![
        (
            "[P1] proposal from the leader: ask the host to validate",
            Box::new(|fx| Input::Message(fx.signed(1, fx.proposal(1, 0, BLOCK)))),
            &["ValidateBlock"],
        ),
        (
            "[P2] host says valid: persist, then prepare",
            Box::new(move |_| Input::BlockValidity { height: 1, block_hash: hash, valid: true }),
            &["Persist", "Broadcast(Prepare)"],
        ),
        (
            "a second prepare (2 of 4): not yet prepared",
            Box::new(move |fx| Input::Message(fx.signed(1, vote(Phase::Prepare, 1, 0, hash)))),
            &[],
        ),
        (
            "[P3] third prepare: prepared; persist the certificate, then commit",
            Box::new(move |fx| Input::Message(fx.signed(2, vote(Phase::Prepare, 1, 0, hash)))),
            &["Persist", "Broadcast(Commit)"],
        ),
        (
            "a second commit: not yet final",
            Box::new(move |fx| Input::Message(fx.signed(1, vote(Phase::Commit, 1, 0, hash)))),
            &[],
        ),
        (
            "[P4] third commit: final; nothing more until the host applied it",
            Box::new(move |fx| Input::Message(fx.signed(3, vote(Phase::Commit, 1, 0, hash)))),
            &["Commit"],
        ),
        (
            "the host committed it and names the next committee: next height's timers",
            Box::new(|fx| Input::Committed { height: 1, committee: fx.committee.clone() }),
            &["SetTimer", "SetTimer"],
        ),
    ];
    for (name, input, expected) in steps {
        let input = input(&fx);
        let out = fx.input(input);
        assert_eq!(kinds(&out), *expected, "{name}");
        if let Some(Action::Commit { height, block_hash: decided, block, certificate }) = out.first() {
            assert_eq!((*height, *decided, block.as_slice()), (1, hash, BLOCK));
            certificate.verify(&fx.committee, CHAIN, SHARD).unwrap();
            assert_eq!(fx.replica.height(), 2);
        }
        if let Some(Action::Persist(state)) = out.first() {
            assert_eq!(state, fx.replica.safety_state(), "{name}");
        }
    }
    assert!(fx.replica.safety_state().prepared.is_none(), "new height, fresh state");
}

#[test]
fn leader_asks_for_a_block_and_proposes_it() {
    let mut fx = Fixture::new(1);
    let out = fx.start();
    assert_eq!(kinds(&out), ["SetTimer", "RequestProposal"]);
    let out = fx.input(Input::Proposal { height: 1, view: 0, block_hash: block_hash(BLOCK), block: BLOCK.to_vec() });
    // The host built it, so the leader prepares at once; one Persist covers both.
    assert_eq!(kinds(&out), ["Persist", "Broadcast(Propose)", "Broadcast(Prepare)"]);
    let Action::Persist(state) = &out[0] else { unreachable!() };
    assert_eq!(state.proposed, Some(block_hash(BLOCK)));
    assert_eq!(state.prepare_vote, Some(block_hash(BLOCK)));
    // A late or duplicate host answer changes nothing.
    let out =
        fx.input(Input::Proposal { height: 1, view: 0, block_hash: block_hash(b"other"), block: b"other".to_vec() });
    assert!(out.is_empty());
}

#[test]
fn invalid_block_is_never_prepared_nor_committed() {
    let mut fx = Fixture::new(0);
    fx.start();
    let hash = block_hash(BLOCK);
    let mut all = fx.from(1, fx.proposal(1, 0, BLOCK));
    all.extend(fx.input(Input::BlockValidity { height: 1, block_hash: hash, valid: false }));
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, hash)));
    }
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Commit, 1, 0, hash)));
    }
    assert!(votes(&all).is_empty(), "voted for an invalid block: {:?}", kinds(&all));
    assert!(!kinds(&all).contains(&"Commit"));
    // A certificate for bytes our host rejects means our bytes are wrong: sync.
    assert!(kinds(&all).contains(&"SyncFrom"));
}

#[test]
fn prepare_waits_for_validation_even_with_a_prepare_quorum() {
    let mut fx = Fixture::new(0);
    fx.start();
    let hash = block_hash(BLOCK);
    let mut all = fx.from(1, fx.proposal(1, 0, BLOCK));
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, hash)));
    }
    assert!(votes(&all).is_empty());
    let out = fx.input(Input::BlockValidity { height: 1, block_hash: hash, valid: true });
    assert_eq!(kinds(&out), ["Persist", "Broadcast(Prepare)", "Broadcast(Commit)"]);
}

#[test]
fn timeout_moves_to_the_next_view_with_backoff() {
    let mut fx = Fixture::new(0);
    fx.start();
    let out = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    // [P7] Until a quorum is in view 1, only its waiting timer runs.
    assert_eq!(kinds(&out), ["SetTimer", "Persist", "Broadcast(ViewChange)"]);
    assert!(matches!(
        out[0],
        Action::SetTimer { id: TimerId { height: 1, view: 1, kind: TimerKind::Leader(_) }, after_ms: 200 }
    ));
    assert_eq!(fx.replica.view(), 1);
    fx.from(1, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 }));
    let out = fx.from(3, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 }));
    assert_eq!(kinds(&out), ["SetTimer", "SetTimer"], "the view formed: its timers start");
    assert!(matches!(
        out[0],
        Action::SetTimer { id: TimerId { height: 1, view: 1, kind: TimerKind::View }, after_ms: 200 }
    ));
    assert!(matches!(
        out[1],
        Action::SetTimer { id: TimerId { height: 1, view: 1, kind: TimerKind::Leader(_) }, after_ms: 80 }
    ));
    // A stale timer is ignored.
    assert!(fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View })).is_empty());
    // Backoff doubles per view and is capped.
    let timeouts: Vec<u64> = (0..6).map(|v| fx.replica.config().timeout_ms(v)).collect();
    assert_eq!(timeouts, [100, 200, 400, 800, 1_000, 1_000]);
    assert_eq!(fx.replica.config().timeout_ms(u64::MAX), 1_000);
}

#[test]
fn new_leader_collects_a_quorum_of_view_changes_and_proposes() {
    // Validator 2 leads (height 1, view 1).
    let mut fx = Fixture::new(2);
    fx.start();
    fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    let out = fx.from(0, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 }));
    assert!(kinds(&out).is_empty(), "two view changes are not a quorum");
    let out = fx.from(3, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 }));
    assert_eq!(kinds(&out), ["SetTimer", "RequestProposal"], "the view formed: its timer, then a block");
    let block = b"fresh block".to_vec();
    let out = fx.input(Input::Proposal { height: 1, view: 1, block_hash: block_hash(&block), block: block.clone() });
    assert_eq!(kinds(&out), ["Persist", "Broadcast(Propose)", "Broadcast(Prepare)"]);
    // Its proposal is justified and passes anyone's verification.
    let Action::Broadcast(proposal) = &out[1] else { unreachable!() };
    let Message::Propose(p) = &proposal.message else { unreachable!() };
    assert_eq!(p.justification.len(), 3);
    proposal.clone().verify(&fx.committee, CHAIN, SHARD).unwrap();
}

#[test]
fn replica_joins_a_view_change_started_by_a_weak_quorum() {
    let mut fx = Fixture::new(0);
    fx.start();
    let out = fx.from(1, Message::ViewChange(ViewChange { height: 1, view: 2, prepared: None, resend: 0 }));
    assert!(out.is_empty(), "one validator (1/4) is not enough to follow");
    let out = fx.from(2, Message::ViewChange(ViewChange { height: 1, view: 3, prepared: None, resend: 0 }));
    // Two (1/2 > 1/3): join the smallest view they asked for, 2 (where
    // two of four are no quorum yet: its waiting timer runs).
    assert_eq!(kinds(&out), ["SetTimer", "Persist", "Broadcast(ViewChange)"]);
    assert_eq!(fx.replica.view(), 2);
}

#[test]
fn replica_follows_a_justified_new_view_proposal() {
    let mut fx = Fixture::new(0);
    fx.start();
    let block = b"view one block".to_vec();
    let justification =
        vec![fx.view_change(1, 1, 1, None), fx.view_change(2, 1, 1, None), fx.view_change(3, 1, 1, None)];
    let proposal =
        Message::Propose(Proposal { height: 1, view: 1, block_hash: block_hash(&block), block, justification });
    let out = fx.from(2, proposal);
    // Entering view 1 arms its waiting timer; the justified proposal shows
    // it formed, which arms its own timers (retiring the waiting one).
    assert_eq!(kinds(&out), ["SetTimer", "SetTimer", "SetTimer", "ValidateBlock"]);
    assert_eq!(fx.replica.view(), 1);
}

/// Messages the replica must refuse, with the typed error it must give.
#[test]
fn rejections_table() {
    let fx = Fixture::new(0);
    let hash = block_hash(BLOCK);
    let good = SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(1), vote(Phase::Prepare, 1, 0, hash), &fx.keys[1]);
    let outsider = SigningKey::from_bytes(&[99; 32]);
    let mut bad_signature = good.clone();
    bad_signature.signature.0[5] ^= 1;
    let mut other_vote = good.clone();
    other_vote.message = vote(Phase::Prepare, 1, 0, block_hash(b"x"));
    let cases: Vec<(&str, SignedMessage, VerifyError)> = vec![
        (
            "other chain",
            SignedMessage::sign("other-chain", SHARD, ValidatorIndex(1), vote(Phase::Prepare, 1, 0, hash), &fx.keys[1]),
            VerifyError::WrongChain { expected: CHAIN.into(), got: "other-chain".into() },
        ),
        (
            "other shard",
            SignedMessage::sign(CHAIN, SHARD + 1, ValidatorIndex(1), vote(Phase::Prepare, 1, 0, hash), &fx.keys[1]),
            VerifyError::WrongShard { expected: SHARD, got: SHARD + 1 },
        ),
        (
            "non-member index",
            SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(4), vote(Phase::Prepare, 1, 0, hash), &outsider),
            VerifyError::UnknownSigner(ValidatorIndex(4)),
        ),
        (
            "outsider claiming a member's index",
            SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(2), vote(Phase::Prepare, 1, 0, hash), &outsider),
            VerifyError::BadSignature,
        ),
        ("flipped signature bit", bad_signature, VerifyError::BadSignature),
        ("signature of another vote", other_vote, VerifyError::BadSignature),
        (
            "vote with phase Propose",
            SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(1), vote(Phase::Propose, 1, 0, hash), &fx.keys[1]),
            VerifyError::Malformed("a vote cannot have phase Propose"),
        ),
        (
            "view change to view 0",
            SignedMessage::sign(
                CHAIN,
                SHARD,
                ValidatorIndex(1),
                Message::ViewChange(ViewChange { height: 1, view: 0, prepared: None, resend: 0 }),
                &fx.keys[1],
            ),
            VerifyError::Malformed("view change to view 0"),
        ),
        (
            "view 1 proposal without justification",
            SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(2), fx.proposal(1, 1, BLOCK), &fx.keys[2]),
            VerifyError::Justification("view changes from less than a quorum"),
        ),
    ];
    for (name, message, expected) in cases {
        // Through the wire format, as a host would.
        let bytes = encode(&message);
        let decoded = decode(&bytes, 10_000).unwrap();
        assert_eq!(decoded.verify(&fx.committee, CHAIN, SHARD).unwrap_err(), expected, "{name}");
    }
    assert!(matches!(decode(&encode(&good), 10), Err(VerifyError::Decode(_))));
    assert!(matches!(decode(&[0xff; 40], 10_000), Err(VerifyError::Decode(_))));
    let mut trailing = encode(&good);
    trailing.push(0);
    assert!(matches!(decode(&trailing, 10_000), Err(VerifyError::Decode(_))));
}

#[test]
fn replica_rejections_table() {
    let hash = block_hash(BLOCK);
    type Case = (&'static str, Box<dyn Fn(&Fixture) -> Message>, usize, Rejected, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            "proposal from a validator that does not lead the view",
            Box::new(|fx| fx.proposal(1, 0, BLOCK)),
            3,
            Rejected::NotLeader { signer: ValidatorIndex(3), height: 1, view: 0 },
            &[],
        ),
        (
            "block over max_block_bytes",
            Box::new(|fx| fx.proposal(1, 0, &[7u8; 1_001])),
            1,
            Rejected::BlockTooLarge { len: 1_001, max: 1_000 },
            &[],
        ),
        (
            "height beyond the window: rejected, and ask the host to sync",
            Box::new(move |_| vote(Phase::Prepare, 4, 0, hash)),
            1,
            Rejected::TooFarAhead { height: 4, view: 0 },
            &["SyncFrom"],
        ),
        (
            "view beyond the window",
            Box::new(move |_| vote(Phase::Prepare, 1, 4, hash)),
            1,
            Rejected::TooFarAhead { height: 1, view: 4 },
            &[],
        ),
    ];
    for (name, message, from, expected, actions) in cases {
        let mut fx = Fixture::new(0);
        fx.start();
        let message = fx.signed(from, message(&fx));
        let (result, out) = fx.try_input(Input::Message(message));
        assert_eq!(result, Err(expected), "{name}");
        assert_eq!(kinds(&out), *actions, "{name}");
    }
}

#[test]
fn future_buffer_is_bounded_per_validator() {
    let mut fx = Fixture::new(0);
    fx.start();
    for view in 0..4 {
        let m = fx.signed(1, vote(Phase::Prepare, 2, view, block_hash(BLOCK)));
        assert_eq!(fx.try_input(Input::Message(m)).0, Ok(()));
    }
    let m = fx.signed(1, vote(Phase::Prepare, 2, 4, block_hash(BLOCK)));
    assert_eq!(fx.try_input(Input::Message(m)).0, Err(Rejected::BufferFull(ValidatorIndex(1))));
    // Another validator still has its own share.
    let m = fx.signed(2, vote(Phase::Prepare, 2, 0, block_hash(BLOCK)));
    assert_eq!(fx.try_input(Input::Message(m)).0, Ok(()));
}

#[test]
fn near_future_messages_are_buffered_and_replayed() {
    let mut fx = Fixture::new(0);
    fx.start();
    let next = b"block two";
    // Height 2 is led by validator 2; its proposal arrives early.
    let out = fx.from(2, fx.proposal(2, 0, next));
    assert!(out.is_empty(), "buffered, not acted on");
    let out = fx.decide_height_one(BLOCK);
    assert_eq!(kinds(&out), ["Commit"], "height 2 starts once the host applied height 1");
    let out = fx.committed(1);
    assert_eq!(kinds(&out), ["SetTimer", "SetTimer", "ValidateBlock"]);
    assert!(out.iter().any(|a| matches!(a, Action::ValidateBlock { height: 2, .. })));
}

#[test]
fn lagging_peer_is_sent_the_decision_once() {
    let mut fx = Fixture::new(0);
    fx.start();
    fx.decide_height_one(BLOCK);
    let stuck = Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 });
    let out = fx.from(3, stuck.clone());
    assert_eq!(kinds(&out), ["Send"]);
    let Action::Send { to, message } = &out[0] else { unreachable!() };
    assert_eq!(*to, ValidatorIndex(3));
    let Message::Decided(decision) = &message.message else { unreachable!() };
    decision.certificate.verify(&fx.committee, CHAIN, SHARD).unwrap();
    assert!(fx.from(3, stuck).is_empty(), "answered once per peer and height");

    // The laggard decides from the decision: validate, then commit.
    let mut laggard = Fixture::new(3);
    laggard.start();
    let decision: Decision = decision.clone();
    let out = laggard.input(Input::Message(message.clone().verify(&laggard.committee, CHAIN, SHARD).unwrap()));
    assert_eq!(kinds(&out), ["ValidateBlock"]);
    let out =
        laggard.input(Input::BlockValidity { height: 1, block_hash: decision.certificate.block_hash, valid: true });
    assert_eq!(kinds(&out)[0], "Commit");
    assert_eq!(laggard.replica.height(), 2);
}

#[test]
fn committed_host_moves_the_replica_on() {
    let mut fx = Fixture::new(0);
    fx.start();
    let out = fx.committed(5);
    assert_eq!(fx.replica.height(), 6);
    assert!(matches!(
        out[..],
        [
            Action::SetTimer { id: TimerId { height: 6, view: 0, kind: TimerKind::View }, .. },
            Action::SetTimer { id: TimerId { height: 6, view: 0, kind: TimerKind::Leader(_) }, .. }
        ]
    ));
    // Syncing to a height already passed does nothing.
    assert!(fx.committed(3).is_empty());
}

#[test]
fn follower_tracks_decisions_without_voting() {
    let keys = keys(4);
    let committee = committee(&keys, &[1, 1, 1, 1]);
    let mut config = config(&keys, &committee, 0);
    config.signing_key = None;
    let mut fx = Fixture { replica: Replica::new(config, 0).unwrap(), keys, committee, me: 0 };
    fx.start();
    let hash = block_hash(BLOCK);
    let mut all = fx.from(1, fx.proposal(1, 0, BLOCK));
    all.extend(fx.input(Input::BlockValidity { height: 1, block_hash: hash, valid: true }));
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, hash)));
    }
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Commit, 1, 0, hash)));
    }
    assert!(sent(&all).is_empty());
    assert!(!kinds(&all).contains(&"Persist"));
    assert!(kinds(&all).contains(&"Commit"));
}

#[test]
fn config_rejects_a_key_outside_the_committee() {
    let fx = Fixture::new(0);
    let mut config = config(&fx.keys, &fx.committee, 0);
    config.signing_key = Some(SigningKey::from_bytes(&[42; 32]));
    assert_eq!(Replica::new(config, 0).unwrap_err(), palisade_consensus::ConfigError::NotAMember);
}

/// Certificate verification: the good one passes; each mutation fails with
/// the right error.
#[test]
fn commit_certificate_verification_table() {
    let fx = Fixture::new(0);
    let hash = block_hash(BLOCK);
    let good = fx.commit_certificate(1, 0, hash, &[0, 1, 2]);
    good.verify(&fx.committee, CHAIN, SHARD).unwrap();
    fx.commit_certificate(1, 0, hash, &[0, 1, 2, 3]).verify(&fx.committee, CHAIN, SHARD).unwrap();

    type Mutation = (&'static str, Box<dyn Fn(&mut CommitCertificate)>, CertError);
    let outsider = SigningKey::from_bytes(&[99; 32]);
    let outsider_sig =
        SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(4), vote(Phase::Commit, 1, 0, hash), &outsider).signature;
    let prepare_sig = fx.vote_signatures(Phase::Prepare, 1, 0, hash, &[2])[0];
    let mutations: Vec<Mutation> = vec![
        (
            "missing stake",
            Box::new(|c| {
                c.signatures.pop();
            }),
            CertError::InsufficientStake { have: 2, need: 3 },
        ),
        ("empty", Box::new(|c| c.signatures.clear()), CertError::InsufficientStake { have: 0, need: 3 }),
        (
            "duplicate signer",
            Box::new(|c| {
                let first = c.signatures[1];
                c.signatures[2] = first;
            }),
            CertError::DuplicateSigner(ValidatorIndex(1)),
        ),
        ("unsorted", Box::new(|c| c.signatures.swap(0, 1)), CertError::UnsortedSigners),
        (
            "non-member",
            Box::new(move |c| c.signatures.push(VoteSignature { signer: ValidatorIndex(4), signature: outsider_sig })),
            CertError::UnknownSigner(ValidatorIndex(4)),
        ),
        ("bad signature", Box::new(|c| c.signatures[0].signature.0[0] ^= 1), CertError::BadSignature),
        ("wrong height", Box::new(|c| c.height = 2), CertError::BadSignature),
        ("wrong view", Box::new(|c| c.view = 1), CertError::BadSignature),
        ("wrong hash", Box::new(|c| c.block_hash = block_hash(b"other")), CertError::BadSignature),
        (
            "a prepare signature in a commit certificate",
            Box::new(move |c| c.signatures[2] = prepare_sig),
            CertError::BadSignature,
        ),
    ];
    for (name, mutate, expected) in mutations {
        let mut cert = good.clone();
        mutate(&mut cert);
        assert_eq!(cert.verify(&fx.committee, CHAIN, SHARD), Err(expected), "{name}");
    }
    assert_eq!(good.verify(&fx.committee, "other-chain", SHARD), Err(CertError::BadSignature));
    assert_eq!(good.verify(&fx.committee, CHAIN, SHARD + 1), Err(CertError::BadSignature));
    let other_committee = committee(&keys(5)[1..], &[1, 1, 1, 1]);
    assert!(good.verify(&other_committee, CHAIN, SHARD).is_err());
}

#[test]
fn stake_weighted_certificate_needs_more_than_two_thirds_of_stake() {
    let keys = keys(4);
    // Total 100, quorum 67: {0, 1} = 70 suffices; {1, 2, 3} = 40 does not.
    let committee = committee(&keys, &[60, 10, 15, 15]);
    let fx = Fixture { replica: Replica::new(config(&keys, &committee, 0), 0).unwrap(), keys, committee, me: 0 };
    let hash = block_hash(BLOCK);
    fx.commit_certificate(1, 0, hash, &[0, 1]).verify(&fx.committee, CHAIN, SHARD).unwrap();
    assert_eq!(
        fx.commit_certificate(1, 0, hash, &[1, 2, 3]).verify(&fx.committee, CHAIN, SHARD),
        Err(CertError::InsufficientStake { have: 40, need: 67 })
    );
    assert_eq!(
        fx.commit_certificate(1, 0, hash, &[0]).verify(&fx.committee, CHAIN, SHARD),
        Err(CertError::InsufficientStake { have: 60, need: 67 })
    );
}
