//! [P10] leader suspicion and [P11] retransmission, one replica hand-fed.
//!
//! Committee of four equal stakes; at height 1 the leader of view v is
//! validator (1 + v) mod 4. The fixture's view 0 times out after 100 ms,
//! its leader timer after 40 ms (doubling per view, capped by the view's).

mod harness;

use harness::fixture::{Fixture, kinds};
use harness::{CHAIN, SHARD, block_hash};
use palisade_consensus::replica::MAX_WAITS;
use palisade_consensus::{Action, Alive, Input, Message, SignedMessage, TimerId, TimerKind, ViewChange, encode};

const BLOCK: &[u8] = b"block one";

/// The leader timers `actions` arm, as (height, view, number, after_ms).
fn leader_timers(actions: &[Action]) -> Vec<(u64, u64, u64, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetTimer { id: TimerId { height, view, kind: TimerKind::Leader(n) }, after_ms } => {
                Some((*height, *view, *n, *after_ms))
            }
            _ => None,
        })
        .collect()
}

fn has_view_timer(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::SetTimer { id: TimerId { kind: TimerKind::View, .. }, .. }))
}

fn leader_timeout(height: u64, view: u64, n: u64) -> Input {
    Input::Timeout(TimerId { height, view, kind: TimerKind::Leader(n) })
}

fn alive(height: u64, view: u64) -> Message {
    Message::Alive(Alive { height, view, beat: 1 })
}

fn broadcasts(actions: &[Action]) -> Vec<&SignedMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_leader_is_left_after_the_leader_timeout_and_only_the_latest_timer_counts() {
    let mut fx = Fixture::new(0);
    let start = leader_timers(&fx.start());
    assert_eq!(start.len(), 1, "a follower arms one leader timer");
    let (_, _, first, after_ms) = start[0];
    assert_eq!(after_ms, 40, "the leader timer, not the 100 ms view timeout");
    // The leader beats: the timer is re-armed and the first one is stale.
    let rearmed = leader_timers(&fx.from(1, alive(1, 0)));
    assert_eq!(rearmed.len(), 1);
    let (_, _, second, _) = rearmed[0];
    assert_ne!(first, second);
    assert!(fx.input(leader_timeout(1, 0, first)).is_empty(), "a re-armed timer's predecessor is ignored");
    assert_eq!(fx.replica.view(), 0);
    // Silence after the last beat: leave the view, as a view timeout would.
    let out = fx.input(leader_timeout(1, 0, second));
    assert_eq!(fx.replica.view(), 1);
    assert!(kinds(&out).ends_with(&["Persist", "Broadcast(ViewChange)"]), "{:?}", kinds(&out));
    // [P7] View 1's timers wait for a quorum in it (only the waiting timer
    // runs): ours and one more view change are not one.
    assert!(!has_view_timer(&out), "{out:?}");
    let vc = |fx: &Fixture, from| Message::ViewChange(fx.view_change(from, 1, 1, None).view_change);
    let message = vc(&fx, 2);
    assert!(!has_view_timer(&fx.from(2, message)));
    // The third makes a quorum: the view's timers start, and its leader
    // timer backs off with the view.
    let message = vc(&fx, 3);
    let out = fx.from(3, message);
    assert_eq!(leader_timers(&out).iter().map(|t| (t.1, t.3)).collect::<Vec<_>>(), [(1, 80)]);
}

/// [P7] A replica whose timer fired first waits in the view it asked for:
/// without a quorum there, no timer runs and it never moves further ahead
/// on its own, whatever the beats; the others' view changes start the view.
#[test]
fn a_replica_alone_in_a_new_view_waits_there_for_a_quorum() {
    let mut fx = Fixture::new(0);
    fx.start();
    let out = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    assert_eq!(fx.replica.view(), 1);
    assert!(!has_view_timer(&out), "{out:?}");
    // Its waiting timer fires: it asks again, and stays, a bounded number
    // of times (a lost view change must not hold it there for good).
    let mut waiting = leader_timers(&out);
    for _ in 0..MAX_WAITS {
        let (height, view, n, _) = waiting[0];
        let out = fx.input(leader_timeout(height, view, n));
        assert_eq!(kinds(&out), ["SetTimer", "Broadcast(ViewChange)"], "wait again, re-sent");
        waiting = leader_timers(&out);
        assert!(fx.input(Input::Beat).iter().all(|a| !matches!(a, Action::SetTimer { .. })));
    }
    assert_eq!(fx.replica.view(), 1, "no quorum, no further view yet");
    let vc = |fx: &Fixture, from| Message::ViewChange(fx.view_change(from, 1, 1, None).view_change);
    let message = vc(&fx, 1);
    fx.from(1, message);
    let message = vc(&fx, 3);
    let out = fx.from(3, message);
    assert_eq!(fx.replica.view(), 1);
    let timers: Vec<TimerKind> = out
        .iter()
        .filter_map(|a| match a {
            Action::SetTimer { id, .. } => Some(id.kind),
            _ => None,
        })
        .collect();
    assert!(timers.contains(&TimerKind::View), "the view's own timer starts with its quorum: {out:?}");
}

/// [P7] The wait is bounded: after `MAX_WAITS` waiting timers without a
/// quorum, a replica moves on as a timeout always did (a view change to
/// its view may have been lost by a member now ahead of it).
#[test]
fn a_replica_waits_a_bounded_time_then_moves_on() {
    let mut fx = Fixture::new(0);
    fx.start();
    let out = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    let mut waiting = leader_timers(&out);
    for _ in 0..MAX_WAITS {
        let (height, view, n, _) = waiting[0];
        waiting = leader_timers(&fx.input(leader_timeout(height, view, n)));
    }
    let (height, view, n, _) = waiting[0];
    let out = fx.input(leader_timeout(height, view, n));
    assert_eq!(fx.replica.view(), 2);
    assert!(kinds(&out).ends_with(&["Persist", "Broadcast(ViewChange)"]), "{:?}", kinds(&out));
}

#[test]
fn beats_from_anyone_but_the_leader_or_for_another_view_change_nothing() {
    let mut fx = Fixture::new(0);
    fx.start();
    // [P12] A follower's beat is presence: accepted, and nothing more.
    let (result, out) = fx.try_input(Input::Message(fx.signed(2, alive(1, 0))));
    assert_eq!(result, Ok(()));
    assert!(out.is_empty(), "a follower's beat re-arms nothing: {:?}", kinds(&out));
    assert!(fx.from(2, alive(1, 1)).is_empty(), "another view's beat is dropped");
    assert!(fx.from(2, alive(2, 0)).is_empty(), "another height's beat is dropped, not buffered");
    assert!(fx.from(1, alive(0, 0)).is_empty(), "a past height's beat is dropped");
}

#[test]
fn once_the_proposal_is_in_only_the_view_timer_bounds_the_round() {
    let mut fx = Fixture::new(0);
    let start = leader_timers(&fx.start());
    assert_eq!(kinds(&fx.from(1, fx.proposal(1, 0, BLOCK))), ["ValidateBlock"]);
    // The leader timer armed at the start no longer moves the view, nor do
    // later beats re-arm it.
    assert!(fx.input(leader_timeout(1, 0, start[0].2)).is_empty());
    assert!(fx.from(1, alive(1, 0)).is_empty());
    assert_eq!(fx.replica.view(), 0);
    // The view's own timer still does.
    fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    assert_eq!(fx.replica.view(), 1);
}

#[test]
fn a_leader_says_it_is_alive_on_each_beat_until_it_proposes() {
    // Validator 1 leads (1, 0) and does not suspect itself.
    let mut fx = Fixture::new(1);
    let start = fx.start();
    assert!(leader_timers(&start).is_empty());
    assert_eq!(kinds(&start), ["SetTimer", "RequestProposal"]);
    for beat in 1..=2 {
        let out = fx.input(Input::Beat);
        assert_eq!(kinds(&out), ["Broadcast(Alive)"], "no persist: a beat commits to nothing");
        let message = broadcasts(&out)[0].clone();
        // Numbered, so that gossip, which drops what it has seen, passes
        // every beat on.
        assert_eq!(message.message, Message::Alive(Alive { height: 1, view: 0, beat }));
        message.verify(&fx.committee, CHAIN, SHARD).expect("a beat verifies like any message");
    }
    let block = BLOCK.to_vec();
    fx.input(Input::Proposal { height: 1, view: 0, block_hash: block_hash(&block), block });
    // Proposed: from now on it beats like any member, every other beat.
    assert!(fx.input(Input::Beat).is_empty(), "beat 3: nothing to say");
    let out = fx.input(Input::Beat);
    assert_eq!(kinds(&out), ["Broadcast(Alive)"]);
    assert_eq!(broadcasts(&out)[0].message, Message::Alive(Alive { height: 1, view: 0, beat: 4 }));
}

#[test]
fn a_follower_says_it_is_present_every_other_beat_but_never_while_re_sending_its_view_change() {
    let mut fx = Fixture::new(0);
    fx.start();
    let said: Vec<Vec<&str>> = (0..4).map(|_| kinds(&fx.input(Input::Beat))).collect();
    assert_eq!(said, [vec![], vec!["Broadcast(Alive)"], vec![], vec!["Broadcast(Alive)"]]);
    // In a view change the re-sent view change is its presence.
    fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    for _ in 0..4 {
        assert_eq!(kinds(&fx.input(Input::Beat)), ["Broadcast(ViewChange)"]);
    }
}

#[test]
fn a_view_change_is_sent_again_on_each_beat_until_the_new_view_has_a_proposal() {
    let mut fx = Fixture::new(0);
    fx.start();
    assert!(fx.input(Input::Beat).is_empty(), "beat 1: a follower in view 0 has nothing to send");
    let out = fx.input(Input::Timeout(TimerId { height: 1, view: 0, kind: TimerKind::View }));
    let first = broadcasts(&out)[0].clone();
    assert!(matches!(first.message, Message::ViewChange(ViewChange { height: 1, view: 1, .. })));
    let Message::ViewChange(original) = &first.message else { unreachable!() };
    let mut seen = vec![encode(&first)];
    for _ in 0..3 {
        let out = fx.input(Input::Beat);
        assert_eq!(kinds(&out), ["Broadcast(ViewChange)"], "no persist: the view was persisted when entered");
        let again = broadcasts(&out)[0].clone();
        let Message::ViewChange(copy) = &again.message else { unreachable!() };
        assert_eq!(ViewChange { resend: 0, ..copy.clone() }, *original, "the same view change");
        assert!(copy.resend > 0);
        // Signed anew and numbered: gossip, which drops bytes it has seen,
        // passes every copy on.
        assert!(!seen.contains(&encode(&again)), "a copy repeats earlier bytes");
        seen.push(encode(&again));
        again.verify(&fx.committee, CHAIN, SHARD).expect("a re-sent view change verifies");
    }
    // Validator 2 leads view 1 and proposes: retransmission stops.
    let justification =
        vec![fx.view_change(0, 1, 1, None), fx.view_change(1, 1, 1, None), fx.view_change(3, 1, 1, None)];
    let block = BLOCK.to_vec();
    let proposal = Message::Propose(palisade_consensus::Proposal {
        height: 1,
        view: 1,
        block_hash: block_hash(&block),
        block,
        justification,
    });
    // The proposal shows the view formed: its timers start.
    assert_eq!(kinds(&fx.from(2, proposal)), ["SetTimer", "SetTimer", "ValidateBlock"]);
    assert!(fx.input(Input::Beat).is_empty());
}

/// [P11] Copies of one validator's view change count once: two copies
/// from one peer are not the weak quorum that P8 follows.
#[test]
fn re_sent_copies_of_a_view_change_count_as_one() {
    let mut fx = Fixture::new(0);
    fx.start();
    for resend in 0..3 {
        let out = fx.from(1, Message::ViewChange(ViewChange { height: 1, view: 2, prepared: None, resend }));
        assert!(out.is_empty(), "copy {resend}: one validator (1/4) is not enough to follow");
    }
    assert_eq!(fx.replica.view(), 0);
    let out = fx.from(2, Message::ViewChange(ViewChange { height: 1, view: 2, prepared: None, resend: 5 }));
    assert!(kinds(&out).ends_with(&["Persist", "Broadcast(ViewChange)"]), "{:?}", kinds(&out));
    assert_eq!(fx.replica.view(), 2);
}

#[test]
fn an_invalid_proposal_is_left_at_once() {
    let mut fx = Fixture::new(0);
    fx.start();
    fx.from(1, fx.proposal(1, 0, BLOCK));
    let out = fx.input(Input::BlockValidity { height: 1, block_hash: block_hash(BLOCK), valid: false });
    assert_eq!(fx.replica.view(), 1, "no wait for the view timer");
    assert!(kinds(&out).ends_with(&["Persist", "Broadcast(ViewChange)"]), "{:?}", kinds(&out));
    assert!(!kinds(&out).contains(&"Broadcast(Prepare)"));
}
