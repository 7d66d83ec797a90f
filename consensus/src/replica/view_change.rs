//! Views: [P7] a timeout leaves the view with a view change carrying the
//! highest prepared certificate ([P5] from peers), [P8] a weak quorum ahead
//! is joined, [P6] the new leader proposes from a quorum of view changes.
//! Entering a view never signs; its timers start once it has formed (a
//! quorum is in it).

use std::collections::BTreeMap;

use super::{Action, OLD_VIEWS_KEPT, Replica, TimerId, TimerKind};
use crate::committee::ValidatorIndex;
use crate::crypto::Signature;
use crate::message::{Message, SignedViewChange, ViewChange, highest_prepared};

/// [P7] Waiting timers a replica sits out in an unformed view it asked for
/// before it moves on regardless.
pub const MAX_WAITS: u32 = 2;

impl Replica {
    /// [P7] The view's timer expired without a decision, or [P10] its
    /// leader timer without a sign of life from the leader.
    pub(super) fn on_timeout(&mut self, id: TimerId, out: &mut Vec<Action>) {
        if !self.timer_stands(id) {
            return;
        }
        // A sync asked for at this height may have found nothing yet.
        self.sync_requested_at = None;
        if self.own_view_change().is_some() && !self.view_formed() && self.round.waits < MAX_WAITS {
            // Still no quorum in the view we asked for: ask again, stay. (A
            // replica restored into a view has no view change of its own to
            // repeat: it moves on, signing one for the next view.)
            self.round.waits = self.round.waits.saturating_add(1);
            self.resend_view_change();
            self.arm_waiting_timer(out);
            return;
        }
        let next = self.view().saturating_add(1);
        self.start_view_change(next, out);
    }

    /// [P5] A view change from a peer.
    pub(super) fn on_view_change(
        &mut self,
        signer: ValidatorIndex,
        view_change: ViewChange,
        signature: Signature,
        out: &mut Vec<Action>,
    ) {
        if view_change.view < self.view() {
            return;
        }
        self.round.view_changes.entry(view_change.view).or_default().entry(signer).or_insert(SignedViewChange {
            signer,
            view_change,
            signature,
        });
        self.join_view_change(out);
        self.arm_if_formed(out);
        self.try_new_view(out);
    }

    /// [P8] A view change beyond the view window: keep only the sender's
    /// highest, and follow if a weak quorum is that far ahead.
    pub(super) fn on_far_view_change(
        &mut self,
        signer: ValidatorIndex,
        view_change: ViewChange,
        signature: Signature,
        out: &mut Vec<Action>,
    ) {
        let higher =
            self.round.far_view_changes.get(&signer).is_none_or(|known| known.view_change.view < view_change.view);
        if higher {
            self.round.far_view_changes.insert(signer, SignedViewChange { signer, view_change, signature });
        }
        self.join_view_change(out);
    }

    /// [P7] Leaves the current view for `target`: PBFT view-change, carrying
    /// the highest prepared certificate.
    pub(super) fn start_view_change(&mut self, target: u64, out: &mut Vec<Action>) {
        let height = self.height();
        self.enter_view(target, out);
        // The view change below is signed for exactly the view we now stand in.
        assert_eq!((self.height(), self.view()), (height, target), "entering a view moved on");
        if self.can_sign()
            && let Some(me) = self.me
        {
            let prepared = self.safety.prepared.clone();
            assert!(prepared.as_ref().is_none_or(|p| p.view < target), "prepared certificate from a view not yet left");
            let view_change = ViewChange { height: self.height(), view: target, prepared, resend: 0 };
            if let Some(message) = self.sign(Message::ViewChange(view_change.clone())) {
                self.round
                    .view_changes
                    .entry(target)
                    .or_default()
                    .insert(me, SignedViewChange { signer: me, view_change, signature: message.signature });
                self.outbox.push(Action::Broadcast(message));
            }
        }
        self.arm_if_formed(out);
        self.try_new_view(out);
    }

    /// [P8] PBFT's liveness rule: when validators that can block every
    /// quorum (more than `total - quorum`: PBFT's f + 1) asked for views
    /// above ours, no quorum can form in ours; join the smallest such view
    /// rather than wait for our timer. Weighing them against a third of the
    /// stake instead stalled a shard of three active members for good (two
    /// a view behind the third, each leaving its view by its own timeout
    /// before the others arrived: seed 2030).
    fn join_view_change(&mut self, out: &mut Vec<Action>) {
        loop {
            let current = self.view();
            let mut highest: BTreeMap<ValidatorIndex, u64> = BTreeMap::new();
            for (view, senders) in self.round.view_changes.range(current.saturating_add(1)..) {
                for signer in senders.keys() {
                    highest.insert(*signer, *view);
                }
            }
            for (signer, far) in &self.round.far_view_changes {
                let view = far.view_change.view;
                if view > current && highest.get(signer).is_none_or(|v| *v < view) {
                    highest.insert(*signer, view);
                }
            }
            let stake = self.config.committee.stake_of(highest.keys().copied());
            if stake < self.config.committee.blocking_stake() {
                return;
            }
            let Some(target) = highest.values().min().copied() else {
                return;
            };
            self.start_view_change(target, out);
        }
    }

    /// [P6] As leader of the current view v > 0, with view changes from a
    /// quorum: re-propose the block of the highest prepared certificate among
    /// them, or, if none, ask the host for a fresh block.
    fn try_new_view(&mut self, out: &mut Vec<Action>) {
        let view = self.view();
        if view == 0
            || !self.is_leader()
            || !self.can_sign()
            || self.safety.proposed.is_some()
            || self.round.awaiting_proposal.is_some()
        {
            return;
        }
        let Some(senders) = self.round.view_changes.get(&view) else {
            return;
        };
        if self.config.committee.stake_of(senders.keys().copied()) < self.config.committee.quorum_stake() {
            return;
        }
        let justification: Vec<SignedViewChange> = senders.values().cloned().collect();
        match highest_prepared(&justification) {
            Some((_, block_hash)) => {
                // Without the block we cannot re-propose it; the view times
                // out and a later leader that holds it will.
                if let Some(block) = self.round.blocks.get(&block_hash).map(|b| b.bytes.clone()) {
                    self.propose(block_hash, block, justification, out);
                }
            }
            None => {
                self.round.awaiting_proposal = Some(justification);
                out.push(Action::RequestProposal { height: self.height(), view });
            }
        }
    }

    /// Moves to a strictly higher `view` at this height. Only sets the timer
    /// (and, in view 0, asks for a block): it never signs or decides, so
    /// callers still stand at `(height, view)` afterwards.
    pub(super) fn enter_view(&mut self, view: u64, out: &mut Vec<Action>) {
        assert!(view > self.safety.view, "view is monotonic within a height");
        self.safety.view = view;
        self.safety.proposed = None;
        self.safety.prepare_vote = None;
        self.safety.commit_vote = None;
        self.dirty = true;
        self.round.proposal = None;
        self.round.awaiting_proposal = None;
        let keep_from = view.saturating_sub(OLD_VIEWS_KEPT);
        self.round.votes.retain(|(v, _), _| *v >= keep_from);
        self.round.reported.retain(|(_, v, _)| *v >= keep_from);
        self.round.view_changes.retain(|v, _| *v >= view);
        // Far view changes now inside the window join the table.
        let window_end = view.saturating_add(self.config.future_views);
        let far = std::mem::take(&mut self.round.far_view_changes);
        for (signer, signed) in far {
            let v = signed.view_change.view;
            if v > window_end {
                self.round.far_view_changes.insert(signer, signed);
            } else if v >= view {
                self.round.view_changes.entry(v).or_default().entry(signer).or_insert(signed);
            }
        }
        self.round.armed = false;
        self.round.waiting = false;
        self.round.waits = 0;
        self.arm_if_formed(out);
    }

    /// [P7] Whether the current view has formed: view 0 always does; a
    /// later one once view changes for it from a quorum were seen, or a
    /// proposal in it (whose justification is such a quorum).
    pub(super) fn view_formed(&self) -> bool {
        let view = self.view();
        view == 0
            || self.round.proposal.is_some()
            || self.round.view_changes.get(&view).is_some_and(|senders| {
                self.config.committee.stake_of(senders.keys().copied()) >= self.config.committee.quorum_stake()
            })
    }

    /// [P7] Arms the current view's timers once it has formed. PBFT starts
    /// a new view's timer when a quorum of view changes for it arrives, not
    /// when a replica leaves the previous view: a replica whose timer fires
    /// first waits in the view it asked for (re-sending its view change on
    /// every beat, [P11]) until the others join it or a blocking set shows a
    /// higher view ([P8]). Arming at once let such a replica run a view
    /// ahead of the rest for good, each leaving its view by its own timer
    /// before the others arrived, with no quorum in either (simulator seed
    /// 188: five needed, one always a view ahead). The wait is bounded: after
    /// [`MAX_WAITS`] waiting timers it moves on as before. A view change to
    /// it may have been lost by a member that has since gone ahead, and no
    /// one re-sends a view change for a view it left: without the bound, two
    /// members waiting a view below a third, with the fourth silent, could
    /// neither form their view nor follow the third (one member is no
    /// blocking set: simulator seed 799).
    pub(super) fn arm_if_formed(&mut self, out: &mut Vec<Action>) {
        if self.round.armed {
            return;
        }
        if self.view_formed() {
            self.arm_view(out);
        } else if !self.round.waiting {
            self.arm_waiting_timer(out);
        }
    }

    /// [P7] While the view waits for its quorum, the leader-timer slot
    /// (numbered, so arming the view retires it) holds a timer of the
    /// view's length that only re-sends our view change, for a host that
    /// beats slowly or not at all.
    fn arm_waiting_timer(&mut self, out: &mut Vec<Action>) {
        self.round.waiting = true;
        self.retire_leader_timer();
        let (height, view) = (self.height(), self.view());
        out.push(Action::SetTimer {
            id: TimerId { height, view, kind: TimerKind::Leader(self.round.leader_timer) },
            after_ms: self.config.timeout_ms(view),
        });
    }

    /// Sets the view's timers; as leader of view 0, asks the host for a block.
    pub(super) fn arm_view(&mut self, out: &mut Vec<Action>) {
        self.round.armed = true;
        let (height, view) = (self.height(), self.view());
        out.push(Action::SetTimer {
            id: TimerId { height, view, kind: TimerKind::View },
            after_ms: self.config.timeout_ms(view),
        });
        self.arm_leader_timer(out);
        // Later views start from view changes (`try_new_view`), which callers
        // run once the transition is complete: entering a view never signs.
        if view == 0
            && self.is_leader()
            && self.can_sign()
            && self.safety.proposed.is_none()
            && self.round.awaiting_proposal.is_none()
        {
            self.round.awaiting_proposal = Some(Vec::new());
            out.push(Action::RequestProposal { height, view });
        }
    }
}
