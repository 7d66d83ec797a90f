//! Moving between heights: messages for later heights wait in a bounded
//! buffer, a weak quorum ahead makes the replica ask the host to sync
//! ([P9]), and a height starts only once the host's `Input::Committed`
//! names the committee deciding it (buffered messages are re-verified
//! against it).

use super::{Action, Config, Rejected, Replica, Round, SafetyState};
use crate::committee::Committee;
use crate::message::{SignedMessage, Verified};

impl Replica {
    pub(super) fn buffer_message(&mut self, message: Verified<SignedMessage>) -> Result<(), Rejected> {
        let signer = message.signer;
        let count = self.buffered_per_signer.entry(signer).or_insert(0);
        if *count >= self.config.max_buffered_per_validator {
            return Err(Rejected::BufferFull(signer));
        }
        *count = count.saturating_add(1);
        self.buffer.entry(message.message.height()).or_default().push(message);
        Ok(())
    }

    /// [P9] Validators with more than a third of the stake (so at least one
    /// honest) already work on later heights: we are behind, ask the host to
    /// sync rather than wait for the decisions to reach us.
    pub(super) fn check_behind(&mut self, out: &mut Vec<Action>) {
        let ahead = self.config.committee.stake_of(self.buffer.values().flatten().map(|m| m.signer));
        if ahead >= self.config.committee.weak_quorum_stake() {
            self.request_sync(out);
        }
    }

    pub(super) fn request_sync(&mut self, out: &mut Vec<Action>) {
        if self.sync_requested_at != Some(self.height()) {
            self.sync_requested_at = Some(self.height());
            out.push(Action::SyncFrom { height: self.height() });
        }
    }

    /// [P4]/[P9] The host committed up to `height` (our decision, or sync)
    /// and `committee` decides the next height: start it.
    pub(super) fn on_committed(&mut self, height: u64, committee: Committee, out: &mut Vec<Action>) {
        let Some(next) = height.checked_add(1) else {
            return;
        };
        if next < self.height() || (next == self.height() && !self.awaiting_commit) {
            // Already there: a sync that raced our own decision.
            return;
        }
        self.flush(out);
        if next > self.height() {
            self.leave_height(next);
        }
        self.awaiting_commit = false;
        self.adopt_committee(committee);
        self.start_height(out);
    }

    /// The committee of the height about to start. Buffered messages were
    /// verified against the previous one: those the new one refuses (a
    /// certificate counting a jailed validator's stake) are dropped. A new
    /// rotation alone (a leader benched or back) changes who may propose,
    /// which is checked when a proposal is handled, not when it is verified.
    fn adopt_committee(&mut self, committee: Committee) {
        if committee == self.config.committee {
            return;
        }
        let same_members = committee.validators() == self.config.committee.validators();
        self.config.committee = committee;
        if same_members {
            return;
        }
        // The key and bounds were validated at construction; only membership
        // can differ, and a member no longer in the committee follows.
        self.me = self.config.validate().unwrap_or(None);
        let Config { committee, chain_id, shard, .. } = &self.config;
        let buffered = std::mem::take(&mut self.buffer);
        for (height, messages) in buffered {
            let kept: Vec<Verified<SignedMessage>> = messages
                .into_iter()
                .filter_map(|message| message.into_inner().verify(committee, chain_id, *shard).ok())
                .collect();
            if !kept.is_empty() {
                self.buffer.insert(height, kept);
            }
        }
    }

    /// Moves to `height`, dropping everything of the heights below. The
    /// height starts (timer, buffered messages) in [`Replica::start_height`].
    pub(super) fn leave_height(&mut self, height: u64) {
        assert!(height > self.height(), "height is monotonic");
        self.safety = match self.restored_ahead.take() {
            Some(state) if state.height == height => state,
            Some(state) if state.height > height => {
                self.restored_ahead = Some(state);
                SafetyState::new(height)
            }
            _ => SafetyState::new(height),
        };
        self.dirty = false;
        self.round = Round::default();
        self.reinstate_prepared_block();
        // Drop buffered messages of heights now past.
        self.buffer = self.buffer.split_off(&height);
        self.recount_buffered();
    }

    /// Starts the current height, under the committee now known to decide
    /// it: replays its buffered messages, arms view 0, and checks whether
    /// what is buffered for later heights shows it behind.
    fn start_height(&mut self, out: &mut Vec<Action>) {
        if let Some(messages) = self.buffer.remove(&self.height()) {
            self.replay.extend(messages);
        }
        self.recount_buffered();
        self.arm_view(out);
        self.check_behind(out);
    }

    fn recount_buffered(&mut self) {
        self.buffered_per_signer.clear();
        for message in self.buffer.values().flatten() {
            let count = self.buffered_per_signer.entry(message.signer).or_insert(0);
            *count = count.saturating_add(1);
        }
    }
}
