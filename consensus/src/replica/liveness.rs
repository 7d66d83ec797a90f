//! [P10] Leader suspicion and [P11] retransmission, both driven by the
//! host's beat ([`Input::Beat`](super::Input::Beat)).
//!
//! A view's own timer (P7) has to cover an idle leader's wait for its
//! heartbeat block, so on its own it notices a dead leader only after that
//! whole wait. Here a leader with no proposal out signs an [`Alive`] on each
//! beat, and a follower arms a second, shorter timer that every sign of
//! life from the leader re-arms: entering the view, an `Alive`, the
//! proposal (which retires it: from then on the view's own timer bounds the
//! round). The leader timer never outlives the view's own, so a leader that
//! beats but never proposes still loses the view when that timer fires.
//!
//! [P12] Presence: every member also signs an `Alive` every
//! [`PRESENCE_EVERY_BEATS`] beats (a leader awaited for its proposal, every
//! beat). Hosts count who they hear from: a shard that lost its quorum, or
//! a node cut off from it, shows within a leader timeout even when idle.
//!
//! On each beat, a replica in a view above 0 that has seen no proposal
//! also sends its own view change again, signed anew with the beat's
//! number: those sent into a partition are re-learnt within a beat of the
//! heal, and P8 brings the lower side up, whatever the timers backed off to
//! meanwhile. Both messages carry that number because gossip drops bytes
//! it has seen, and signatures are deterministic.

use super::{Action, Rejected, Replica, TimerId, TimerKind};
use crate::committee::ValidatorIndex;
use crate::message::{Alive, Message, SignedViewChange, ViewChange};

/// [P12] A member not awaited as leader says it is alive once every this
/// many beats: twice per leader timeout, so one lost beat never makes a
/// member look gone to a host that waits a leader timeout.
pub const PRESENCE_EVERY_BEATS: u64 = 2;

impl Replica {
    /// [P10]/[P11] The host's beat.
    pub(super) fn on_beat(&mut self) {
        if self.awaiting_commit || !self.can_sign() {
            return;
        }
        let (height, view) = (self.height(), self.view());
        // Every message a beat sends is numbered with the round's beat count,
        // so no two are the same bytes (gossip drops bytes it has seen).
        let beat = self.round.beats.wrapping_add(1);
        self.round.beats = beat;
        let again = self.view_change_again(beat);
        // [P10] the leader before its proposal, every beat; [P12] anyone
        // else every other beat, unless the view change says it already.
        let awaited = self.is_leader() && self.safety.proposed.is_none();
        let present = again.is_none() && beat.is_multiple_of(PRESENCE_EVERY_BEATS);
        let alive = (awaited || present).then_some(Alive { height, view, beat });
        let messages = alive.map(Message::Alive).into_iter().chain(again.map(Message::ViewChange));
        for message in messages.filter_map(|m| self.sign(m)).collect::<Vec<_>>() {
            self.outbox.push(Action::Broadcast(message));
        }
    }

    /// Our own view change for the current view, if we sent one.
    pub(super) fn own_view_change(&self) -> Option<&SignedViewChange> {
        self.me.and_then(|me| self.round.view_changes.get(&self.view())?.get(&me))
    }

    /// [P11] Our view change for the current view to send again, numbered
    /// `beat` (gossip drops bytes it has seen), while no proposal came in it.
    fn view_change_again(&self, beat: u64) -> Option<ViewChange> {
        if self.view() == 0 || self.round.proposal.is_some() {
            return None;
        }
        self.own_view_change().map(|own| ViewChange { resend: beat, ..own.view_change.clone() })
    }

    /// [P11] Sends our view change for the current view again, numbered
    /// with a fresh beat, while no proposal came in it.
    pub(super) fn resend_view_change(&mut self) {
        if !self.can_sign() {
            return;
        }
        let beat = self.round.beats.wrapping_add(1);
        self.round.beats = beat;
        if let Some(message) = self.view_change_again(beat).and_then(|again| self.sign(Message::ViewChange(again))) {
            self.outbox.push(Action::Broadcast(message));
        }
    }

    /// [P10] A member's liveness beat: re-arms the leader timer if it comes
    /// from the leader of the current view before its proposal. Other
    /// members' beats, and beats for other heights or views, change nothing
    /// here (the host counts them as presence) and are never buffered: the
    /// next one comes within a beat or two.
    pub(super) fn on_alive(
        &mut self,
        signer: ValidatorIndex,
        alive: Alive,
        out: &mut Vec<Action>,
    ) -> Result<(), Rejected> {
        let Alive { height, view, .. } = alive;
        if (height, view) != (self.height(), self.view()) || self.awaiting_commit {
            return Ok(());
        }
        if signer == self.leader() && self.round.proposal.is_none() {
            self.arm_leader_timer(out);
        }
        Ok(())
    }

    /// [P10] (Re-)arms the leader timer of the current view; the previous
    /// one, if pending, is ignored when it fires. A leader does not suspect
    /// itself.
    pub(super) fn arm_leader_timer(&mut self, out: &mut Vec<Action>) {
        self.retire_leader_timer();
        if self.is_leader() {
            return;
        }
        let (height, view) = (self.height(), self.view());
        out.push(Action::SetTimer {
            id: TimerId { height, view, kind: TimerKind::Leader(self.round.leader_timer) },
            after_ms: self.config.leader_timeout_ms(view),
        });
    }

    /// Makes every pending leader timer stale.
    pub(super) fn retire_leader_timer(&mut self) {
        self.round.leader_timer = self.round.leader_timer.wrapping_add(1);
    }

    /// Whether a fired timer still stands: the current view's own timer, or
    /// its latest leader timer while no proposal was accepted.
    pub(super) fn timer_stands(&self, id: TimerId) -> bool {
        if (id.height, id.view) != (self.height(), self.view()) || self.awaiting_commit {
            return false;
        }
        match id.kind {
            TimerKind::View => true,
            TimerKind::Leader(n) => n == self.round.leader_timer && self.round.proposal.is_none(),
        }
    }
}
