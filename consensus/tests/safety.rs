//! Safety across views, crashes and Byzantine behaviour: the cases that break
//! naive implementations.

mod harness;

use harness::fixture::{Fixture, kinds, last_persisted, sent, votes};
use harness::{CHAIN, Net, SHARD, block_hash, vote};
use palisade_consensus::{
    Action, ConfigError, Decision, Evidence, EvidenceError, Input, Message, Phase, Proposal, SignedMessage, SignedVote,
    TimerId, TimerKind, ValidatorIndex, VerifyError, ViewChange,
};
use proptest::prelude::*;

const X: &[u8] = b"block X";
const Y: &[u8] = b"block Y";
const MAX_STEPS: u64 = 2_000_000;

fn valid(fx: &mut Fixture, height: u64, block: &[u8]) -> Vec<Action> {
    fx.input(Input::BlockValidity { height, block_hash: block_hash(block), valid: true })
}

fn proposals(actions: &[Action]) -> Vec<Proposal> {
    sent(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Propose(p) => Some(p),
            _ => None,
        })
        .collect()
}

// ----- view change ----------------------------------------------------------

/// Validator 2 leads (1, 1). Only validator 0 saw X prepared in view 0; its
/// view change is in the quorum, so the new leader must re-propose X, in
/// whatever order the view changes arrive.
#[test]
fn new_leader_reproposes_a_block_prepared_by_a_minority() {
    for certificate_first in [true, false] {
        let mut fx = Fixture::new(2);
        fx.start();
        fx.from(1, fx.proposal(1, 0, X));
        valid(&mut fx, 1, X);
        fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
        let with_cert = fx.view_change(0, 1, 1, Some(fx.prepared_certificate(1, 0, block_hash(X), &[0, 1, 3])));
        let without = fx.view_change(3, 1, 1, None);
        let order = if certificate_first { [with_cert, without] } else { [without, with_cert] };
        let mut out = Vec::new();
        for signed in order {
            out.extend(fx.from(signed.signer.0 as usize, Message::ViewChange(signed.view_change)));
        }
        let proposed = proposals(&out);
        assert_eq!(proposed.len(), 1, "{:?}", kinds(&out));
        assert_eq!(proposed[0].block_hash, block_hash(X));
        assert_eq!(proposed[0].view, 1);
        assert!(!kinds(&out).contains(&"RequestProposal"), "must not ask for a fresh block");
    }
}

/// Certificates from two views: the higher one wins. Validator 3 leads (1, 2).
#[test]
fn new_leader_picks_the_highest_prepared_certificate() {
    let mut fx = Fixture::new(3);
    fx.start();
    fx.from(1, fx.proposal(1, 0, X));
    valid(&mut fx, 1, X);
    fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    let justification =
        vec![fx.view_change(0, 1, 1, None), fx.view_change(1, 1, 1, None), fx.view_change(2, 1, 1, None)];
    let proposal_y =
        Message::Propose(Proposal { height: 1, view: 1, block_hash: block_hash(Y), block: Y.to_vec(), justification });
    fx.from(2, proposal_y);
    valid(&mut fx, 1, Y);
    fx.input(Input::Timeout(TimerId { height: 1, view: 1, kind: TimerKind::View }));
    let old = fx.view_change(0, 1, 2, Some(fx.prepared_certificate(1, 0, block_hash(X), &[0, 1, 2])));
    let new = fx.view_change(1, 1, 2, Some(fx.prepared_certificate(1, 1, block_hash(Y), &[0, 1, 2])));
    let mut out = fx.from(0, Message::ViewChange(old.view_change));
    out.extend(fx.from(1, Message::ViewChange(new.view_change)));
    let proposed = proposals(&out);
    assert_eq!(proposed.len(), 1);
    assert_eq!(proposed[0].block_hash, block_hash(Y));
}

/// A Byzantine new leader cannot hide a prepared block: every way of doing
/// it fails verification.
#[test]
fn byzantine_new_leader_cannot_skip_a_prepared_block() {
    let fx = Fixture::new(0);
    let cert_x = fx.prepared_certificate(1, 0, block_hash(X), &[0, 1, 3]);
    let honest = vec![
        fx.view_change(0, 1, 1, Some(cert_x.clone())),
        fx.view_change(1, 1, 1, None),
        fx.view_change(3, 1, 1, None),
    ];
    let propose = |justification, block: &[u8]| {
        SignedMessage::sign(
            CHAIN,
            SHARD,
            ValidatorIndex(2),
            Message::Propose(Proposal {
                height: 1,
                view: 1,
                block_hash: block_hash(block),
                block: block.to_vec(),
                justification,
            }),
            &fx.keys[2],
        )
        .verify(&fx.committee, CHAIN, SHARD)
    };
    // The honest new view re-proposes X.
    propose(honest.clone(), X).unwrap();

    let mut stripped = honest.clone();
    stripped[0].view_change.prepared = None;
    let mut too_few = honest.clone();
    too_few.remove(0);
    let mut duplicated = honest.clone();
    duplicated[2] = duplicated[1].clone();
    let mut other_view = honest.clone();
    other_view[1] = fx.view_change(1, 1, 2, None);
    let mut forged_cert = honest.clone();
    forged_cert[0] = fx.view_change(0, 1, 1, Some(fx.prepared_certificate(1, 0, block_hash(Y), &[0, 1])));
    let cases: Vec<(&str, Vec<_>, &[u8], VerifyError)> = vec![
        (
            "proposes Y despite a certificate for X",
            honest.clone(),
            Y,
            VerifyError::Justification("does not re-propose the block of the highest prepared certificate"),
        ),
        ("strips the certificate from a view change", stripped, Y, VerifyError::BadSignature),
        (
            "leaves out the view change with the certificate",
            too_few,
            Y,
            VerifyError::Justification("view changes from less than a quorum"),
        ),
        ("pads with a duplicate", duplicated, Y, VerifyError::Justification("signers not strictly ascending")),
        (
            "uses a view change for another view",
            other_view,
            Y,
            VerifyError::Justification("view change for another height or view"),
        ),
        (
            "cites a certificate without quorum",
            forged_cert,
            Y,
            VerifyError::Certificate(palisade_consensus::CertError::InsufficientStake { have: 2, need: 3 }),
        ),
    ];
    for (name, justification, block, expected) in cases {
        assert_eq!(propose(justification, block).unwrap_err(), expected, "{name}");
    }
}

/// X is prepared by everyone but only validator 0 sees the commit quorum and
/// decides. The others must decide X too, through a view change.
#[test]
fn block_committed_by_one_replica_is_the_only_one_others_can_commit() {
    let mut net = Net::new(4);
    net.drop_rule = Box::new(|_, to, m| match &m.message {
        Message::Vote(v) => v.phase == Phase::Commit && v.height == 1 && v.view == 0 && to != 0,
        Message::Decided(_) => true,
        _ => false,
    });
    net.start();
    assert!(net.run_until(MAX_STEPS, |n| { n.nodes.iter().all(|node| node.committed_height >= 1) }));
    assert_eq!(net.nodes[0].committed[&1], net.decided[&1].0);
    let first = net.decided[&1].0;
    // Node 0 decided in view 0, the others in a later view, and the new
    // leader re-proposed the same block.
    assert_eq!(net.decided[&1].2.view, 0);
    let reproposed = net.nodes[2]
        .sent
        .iter()
        .any(|m| matches!(&m.message, Message::Propose(p) if p.height == 1 && p.view >= 1 && p.block_hash == first));
    assert!(reproposed, "the leader of view 1 must re-propose the committed block");
    assert!(net.run_to_height(10, MAX_STEPS));
    net.check_agreement();
    net.check_no_double_signing();
}

/// X is prepared by a quorum but every commit vote is delayed past the view
/// change: the new view must carry X, and when the old commits finally
/// arrive they can only agree.
#[test]
fn block_prepared_by_a_quorum_but_committed_by_nobody_is_carried_over() {
    let mut net = Net::new(4);
    net.hold_rule = Box::new(
        |_, _, m| matches!(&m.message, Message::Vote(v) if v.phase == Phase::Commit && v.height == 1 && v.view == 0),
    );
    net.start();
    assert!(net.run_until(MAX_STEPS, |n| { n.nodes.iter().all(|node| node.committed_height >= 1) }));
    let x = net.nodes[1].sent.iter().find_map(|m| match &m.message {
        Message::Propose(p) if p.height == 1 && p.view == 0 => Some(p.block_hash),
        _ => None,
    });
    assert_eq!(Some(net.decided[&1].0), x, "the block prepared in view 0 must be decided");
    assert!(net.decided[&1].2.view >= 1);
    net.release_held();
    assert!(net.run_to_height(8, MAX_STEPS));
    net.check_agreement();
    net.check_no_double_signing();
}

/// Only validator 0 gathers a prepare quorum in view 0 and votes to commit;
/// nobody else prepared. Whatever the next view decides, the stale commit
/// can never complete a conflicting certificate.
#[test]
fn block_prepared_by_a_minority_never_conflicts() {
    let mut net = Net::new(4);
    net.drop_rule = Box::new(
        |_, to, m| matches!(&m.message, Message::Vote(v) if v.phase == Phase::Prepare && v.height == 1 && v.view == 0 && to != 0),
    );
    net.hold_rule = Box::new(
        |_, _, m| matches!(&m.message, Message::Vote(v) if v.phase == Phase::Commit && v.height == 1 && v.view == 0),
    );
    net.start();
    assert!(net.run_to_height(1, MAX_STEPS));
    net.release_held();
    assert!(net.run_to_height(6, MAX_STEPS));
    net.check_agreement();
    net.check_no_double_signing();
    assert_eq!(net.evidence_count(), 0);
}

// ----- crash and restore ----------------------------------------------------

#[test]
fn restored_replica_never_prepares_a_conflicting_block() {
    let mut fx = Fixture::new(0);
    fx.start();
    fx.from(1, fx.proposal(1, 0, X));
    let before = valid(&mut fx, 1, X);
    let state = last_persisted(&before);
    assert_eq!(state.prepare_vote, Some(block_hash(X)));

    // Crash; restart from what was persisted.
    fx.replica = fx.restored(Some(state), 0);
    let out = fx.start();
    // It re-sends its vote: the very same bytes.
    assert_eq!(sent(&out), sent(&before));
    // An equivocating leader now offers Y for the same slot.
    let mut all = fx.from(1, fx.proposal(1, 0, Y));
    all.extend(valid(&mut fx, 1, Y));
    for from in [1, 2, 3] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, block_hash(Y))));
    }
    assert!(votes(&all).is_empty(), "signed a conflicting vote: {:?}", votes(&all));
    assert_eq!(fx.replica.safety_state().prepare_vote, Some(block_hash(X)));

    // Restarted again, the original block can still go ahead once its
    // proposal comes again.
    fx.replica = fx.restored(Some(last_persisted(&before)), 0);
    fx.start();
    let mut all = fx.from(1, fx.proposal(1, 0, Y));
    assert!(all.is_empty(), "a proposal conflicting with our prepare is not even validated");
    all.extend(fx.from(1, fx.proposal(1, 0, X)));
    all.extend(valid(&mut fx, 1, X));
    for from in [1, 2] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, block_hash(X))));
    }
    assert_eq!(votes(&all), [(Phase::Commit, 1, 0, block_hash(X))]);
}

#[test]
fn restored_replica_reports_its_prepared_certificate() {
    let mut fx = Fixture::new(0);
    fx.start();
    fx.from(1, fx.proposal(1, 0, X));
    let mut all = valid(&mut fx, 1, X);
    for from in [1, 2] {
        all.extend(fx.from(from, vote(Phase::Prepare, 1, 0, block_hash(X))));
    }
    let state = last_persisted(&all);
    assert_eq!(state.prepared.as_ref().map(|p| p.block_hash), Some(block_hash(X)));
    assert_eq!(state.commit_vote, Some(block_hash(X)));
    fx.replica = fx.restored(Some(state), 0);
    fx.start();
    let out = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    let change = sent(&out)
        .into_iter()
        .find_map(|m| match m {
            Message::ViewChange(vc) => Some(vc),
            _ => None,
        })
        .unwrap();
    let prepared = change.prepared.unwrap();
    assert_eq!((prepared.view, prepared.block_hash), (0, block_hash(X)));
    prepared.verify(&fx.committee, CHAIN, SHARD).unwrap();
}

#[test]
fn restored_leader_does_not_propose_again() {
    let mut fx = Fixture::new(1);
    fx.start();
    let out = fx.input(Input::Proposal { height: 1, view: 0, block_hash: block_hash(X), block: X.to_vec() });
    let state = last_persisted(&out);
    fx.replica = fx.restored(Some(state), 0);
    let out = fx.start();
    assert!(!kinds(&out).contains(&"RequestProposal"));
    // Even a host that answers anyway cannot make it sign a second proposal.
    let out = fx.input(Input::Proposal { height: 1, view: 0, block_hash: block_hash(Y), block: Y.to_vec() });
    assert!(proposals(&out).is_empty());
}

/// Simulator seed 1029: every leader that could re-propose the block a
/// quorum had prepared lost its bytes in a crash, and view changes carry
/// certificates, not blocks, so the shard stalled. The prepared block is
/// persisted with the certificate: validator 2 prepares X in view 0,
/// crashes, and, leading view 1 after the view change, re-proposes X from
/// its record, through the host's validation.
#[test]
fn restored_replica_reproposes_its_prepared_block_as_the_next_leader() {
    for keep_block in [true, false] {
        let mut fx = Fixture::new(2);
        fx.start();
        let state = last_persisted(&fx.vote_height_one(X));
        assert_eq!(state.prepared.as_ref().map(|p| p.block_hash), Some(block_hash(X)));
        assert_eq!(state.prepared_block.as_deref(), Some(X), "the block is persisted with its certificate");
        let mut state = palisade_consensus::SafetyState::decode(&state.encode(), 1_000).unwrap();
        if !keep_block {
            // A record without the block (as written before it was kept).
            state.prepared_block = None;
        }

        fx.replica = fx.restored(Some(state), 0);
        fx.start();
        let mut all = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
        for from in [0, 3] {
            all.extend(
                fx.from(from, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 })),
            );
        }
        let reproposed = proposals(&all);
        if !keep_block {
            assert!(reproposed.is_empty(), "without the bytes it cannot re-propose");
            continue;
        }
        assert_eq!(reproposed.len(), 1, "{:?}", kinds(&all));
        let proposal = &reproposed[0];
        assert_eq!((proposal.view, proposal.block_hash, proposal.block.as_slice()), (1, block_hash(X), X));
        let signed =
            SignedMessage::sign(CHAIN, SHARD, ValidatorIndex(2), Message::Propose(proposal.clone()), &fx.keys[2]);
        signed.verify(&fx.committee, CHAIN, SHARD).expect("a valid new-view proposal");
        // Restored blocks are not trusted: the host validates it first.
        assert!(
            all.iter().any(|a| matches!(a, Action::ValidateBlock { block, .. } if block == X)),
            "{:?}",
            kinds(&all)
        );
        assert!(votes(&all).is_empty(), "no prepare before the host's verdict");
        let out = valid(&mut fx, 1, X);
        assert_eq!(votes(&out), vec![(Phase::Prepare, 1, 1, block_hash(X))]);
    }
}

#[test]
fn restored_prepared_block_is_kept_only_under_its_certificate_and_bound() {
    let mut fx = Fixture::new(2);
    fx.start();
    let state = last_persisted(&fx.vote_height_one(X));
    assert_eq!(fx.restored(Some(state.clone()), 0).safety_state().prepared_block.as_deref(), Some(X));
    let mut oversized = state.clone();
    oversized.prepared_block = Some(vec![0; fx.replica.config().max_block_bytes + 1]);
    assert_eq!(fx.restored(Some(oversized), 0).safety_state().prepared_block, None);
    let mut unclaimed = state;
    unclaimed.prepared = None;
    assert_eq!(fx.restored(Some(unclaimed), 0).safety_state().prepared_block, None);

    // A record ahead of the host's chain gets its block back once reached.
    let mut ahead = palisade_consensus::SafetyState::new(3);
    ahead.prepared = Some(fx.prepared_certificate(3, 0, block_hash(Y), &[0, 1, 3]));
    ahead.prepared_block = Some(Y.to_vec());
    fx.replica = fx.restored(Some(ahead), 1);
    assert_eq!(fx.replica.safety_state().prepared_block, None);
    fx.start();
    fx.committed(2);
    assert_eq!(fx.replica.height(), 3);
    assert_eq!(fx.replica.safety_state().prepared_block.as_deref(), Some(Y));
}

#[test]
fn persisted_state_ahead_of_the_host_blocks_signing_below_it() {
    let mut fx = Fixture::new(0);
    fx.start();
    let mut state = palisade_consensus::SafetyState::new(3);
    state.prepare_vote = Some(block_hash(X));
    // The host only durably committed height 1; we had voted at height 3.
    fx.replica = fx.restored(Some(state), 1);
    assert_eq!(fx.replica.height(), 2);
    fx.start();
    // Height 2 is led by validator 2.
    let mut all = fx.from(2, fx.proposal(2, 0, Y));
    all.extend(valid(&mut fx, 2, Y));
    assert!(votes(&all).is_empty(), "must not sign below the persisted height");
    // Once at height 3, the restored record guards the slot.
    fx.committed(2);
    assert_eq!(fx.replica.height(), 3);
    assert_eq!(fx.replica.safety_state().prepare_vote, Some(block_hash(X)));
    let mut all = fx.from(3, fx.proposal(3, 0, Y));
    all.extend(valid(&mut fx, 3, Y));
    assert!(votes(&all).is_empty());
}

/// Simulator seed 719: a replica that decided a height, crashed and
/// restarted must still be able to hand laggards that decision, or a minority
/// stuck at the height can stop the shard for good.
#[test]
fn restarted_replica_answers_laggards_with_decisions_the_host_hands_back() {
    let mut fx = Fixture::new(0);
    fx.replica = fx.restored(None, 2);
    let decided = |actions: &[Action]| sent(actions).into_iter().any(|m| matches!(m, Message::Decided(_)));
    let stuck = |view| Message::ViewChange(ViewChange { height: 2, view, prepared: None, resend: 0 });
    assert!(!decided(&fx.from(1, stuck(1))), "nothing to answer with before the host hands the decision back");

    let decision = |height, signers: &[usize]| Decision {
        certificate: fx.commit_certificate(height, 0, block_hash(X), signers),
        block: X.to_vec(),
    };
    let refused = |recent| matches!(fx.restored_with(None, 2, recent), Err(ConfigError::BadDecision { .. }));
    assert!(refused(vec![decision(2, &[0, 1])]), "no quorum");
    assert!(refused(vec![decision(3, &[0, 1, 2])]), "not decided yet");
    let certificate = decision(2, &[0, 1, 2]).certificate;
    fx.replica = fx.restored_with(None, 2, vec![decision(2, &[0, 1, 2])]).unwrap();

    let replies = sent(&fx.from(1, stuck(2)));
    assert!(
        replies.iter().any(|m| matches!(m, Message::Decided(d) if d.certificate == certificate && d.block == X)),
        "{replies:?}"
    );
}

#[test]
fn stale_persisted_state_starts_fresh() {
    let fx = Fixture::new(0);
    let mut state = palisade_consensus::SafetyState::new(1);
    state.view = 5;
    let replica = fx.restored(Some(state), 3);
    assert_eq!((replica.height(), replica.view()), (4, 0));
}

// ----- equivocation ---------------------------------------------------------

#[test]
fn conflicting_votes_produce_exactly_one_evidence_per_offence() {
    const Z: &[u8] = b"block Z";
    for phase in [Phase::Prepare, Phase::Commit] {
        let mut fx = Fixture::new(0);
        fx.start();
        let mut evidence = Vec::new();
        for block in [X, X, Y, Z, X, Y] {
            for action in fx.from(2, vote(phase, 1, 0, block_hash(block))) {
                if let Action::Evidence(e) = action {
                    evidence.push(e);
                }
            }
        }
        assert_eq!(evidence.len(), 1, "{phase:?}");
        let e = &evidence[0];
        e.verify(&fx.committee, CHAIN, SHARD).unwrap();
        assert_eq!(e.signer, ValidatorIndex(2));
        assert_eq!((e.first.vote.block_hash, e.second.vote.block_hash), (block_hash(X), block_hash(Y)));
        // A different slot (next view) is a different offence.
        let mut more = fx.from(2, vote(phase, 1, 1, block_hash(X)));
        more.extend(fx.from(2, vote(phase, 1, 1, block_hash(Y))));
        assert_eq!(kinds(&more).iter().filter(|k| **k == "Evidence").count(), 1);
    }
}

#[test]
fn equivocating_leader_is_reported_and_the_first_proposal_stands() {
    let mut fx = Fixture::new(0);
    fx.start();
    let mut out = fx.from(1, fx.proposal(1, 0, X));
    out.extend(fx.from(1, fx.proposal(1, 0, Y)));
    assert_eq!(kinds(&out), ["ValidateBlock", "Evidence"]);
    let Some(Action::Evidence(e)) = out.last() else { unreachable!() };
    assert_eq!(e.slot(), (1, 0, Phase::Propose));
    e.verify(&fx.committee, CHAIN, SHARD).unwrap();
    let out = valid(&mut fx, 1, X);
    assert_eq!(votes(&out), [(Phase::Prepare, 1, 0, block_hash(X))]);
}

#[test]
fn evidence_verification_table() {
    let fx = Fixture::new(0);
    let signed_vote = |from: usize, vote_message: Message| {
        let m = fx.signed(from, vote_message);
        let Message::Vote(v) = m.message else { unreachable!() };
        SignedVote { vote: v, signature: m.signature }
    };
    let good = Evidence {
        shard: SHARD,
        signer: ValidatorIndex(2),
        first: signed_vote(2, vote(Phase::Commit, 1, 0, block_hash(X))),
        second: signed_vote(2, vote(Phase::Commit, 1, 0, block_hash(Y))),
    };
    good.verify(&fx.committee, CHAIN, SHARD).unwrap();
    type Mutation = (&'static str, Box<dyn Fn(&mut Evidence)>, EvidenceError);
    let other_slot = signed_vote(2, vote(Phase::Commit, 1, 1, block_hash(Y)));
    let other_phase = signed_vote(2, vote(Phase::Prepare, 1, 0, block_hash(Y)));
    let someone_else = signed_vote(3, vote(Phase::Commit, 1, 0, block_hash(Y)));
    let mutations: Vec<Mutation> = vec![
        ("same block", Box::new(|e| e.second = e.first), EvidenceError::SameBlock),
        ("different views", Box::new(move |e| e.second = other_slot), EvidenceError::DifferentSlots),
        ("different phases", Box::new(move |e| e.second = other_phase), EvidenceError::DifferentSlots),
        ("second vote by someone else", Box::new(move |e| e.second = someone_else), EvidenceError::BadSignature),
        ("tampered signature", Box::new(|e| e.first.signature.0[9] ^= 1), EvidenceError::BadSignature),
        ("non-member", Box::new(|e| e.signer = ValidatorIndex(9)), EvidenceError::UnknownSigner(ValidatorIndex(9))),
        (
            "other shard",
            Box::new(|e| e.shard = SHARD + 1),
            EvidenceError::WrongShard { expected: SHARD, got: SHARD + 1 },
        ),
    ];
    for (name, mutate, expected) in mutations {
        let mut e = good.clone();
        mutate(&mut e);
        assert_eq!(e.verify(&fx.committee, CHAIN, SHARD), Err(expected), "{name}");
    }
    assert_eq!(good.verify(&fx.committee, "other-chain", SHARD), Err(EvidenceError::BadSignature));
}

/// Twins: two honest copies of validator 3's key equivocate for real. The
/// others report it, keep agreeing and keep deciding.
#[test]
fn twins_are_reported_and_safety_holds() {
    let mut net = Net::with_twin();
    net.start();
    assert!(net.run_until(MAX_STEPS, |n| { n.nodes[..3].iter().all(|node| node.committed_height >= 12) }));
    net.check_agreement();
    assert!(net.evidence_count() > 0, "twins leading a height must equivocate");
    for node in &net.nodes[..3] {
        for e in &node.evidence {
            assert_eq!(e.signer, ValidatorIndex(3));
        }
        // At most one report per offence per observer.
        let mut slots: Vec<_> = node.evidence.iter().map(Evidence::slot).collect();
        let before = slots.len();
        slots.dedup();
        assert_eq!(before, slots.len());
    }
}

#[test]
fn view_change_messages_alone_never_produce_evidence() {
    let mut fx = Fixture::new(0);
    fx.start();
    let mut out = fx.from(2, Message::ViewChange(ViewChange { height: 1, view: 1, prepared: None, resend: 0 }));
    out.extend(fx.from(2, Message::ViewChange(ViewChange { height: 1, view: 2, prepared: None, resend: 0 })));
    assert!(!kinds(&out).contains(&"Evidence"));
}

// ----- randomized: drops, delays, crashes -----------------------------------

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

proptest! {
    // A fixed RNG seed keeps CI reproducible; change it (or raise `cases`)
    // locally to explore new schedules. Failures found are kept in
    // safety.proptest-regressions and replayed first.
    #![proptest_config(ProptestConfig {
        cases: 16,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7061_6c69_7361_6465),
        ..ProptestConfig::default()
    })]

    /// Random message loss and crash/restart schedules: never two commits at
    /// one height, never a double signature, and progress once faults heal.
    #[test]
    fn random_faults_keep_safety_and_heal(seed in 1u64.., drop_percent in 0u64..40, crashes in proptest::collection::vec((0usize..4, 1u64..100), 0..4)) {
        let mut net = Net::new(4);
        let mut rng = seed;
        net.drop_rule = Box::new(move |_, _, _| xorshift(&mut rng) % 100 < drop_percent);
        net.start();
        for (victim, steps) in crashes {
            net.run_until(steps * 50, |_| false);
            net.crash(victim);
            net.run_until(steps * 50, |_| false);
            net.restart(victim);
        }
        net.run_until(10_000, |_| false);
        net.check_agreement();
        net.check_no_double_signing();
        prop_assert_eq!(net.evidence_count(), 0);
        // Heal: a perfect network from here on.
        net.drop_rule = Box::new(|_, _, _| false);
        let target = net.nodes.iter().map(|n| n.committed_height).max().unwrap_or(0) + 3;
        prop_assert!(net.run_to_height(target, 200_000), "no progress after healing (seed {})", seed);
        net.check_agreement();
        net.check_no_double_signing();
    }
}
