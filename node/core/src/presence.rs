//! Which committee members this node hears from, and whether they make a
//! quorum with it.
//!
//! Every verified consensus message shows its signer alive and reachable
//! (gossip may have carried it through others: reachable is what counts).
//! Members sign an `Alive` at least twice per leader timeout even when
//! idle (consensus P12), so a member unheard for a whole leader timeout is
//! gone or cut off. [`Presence::quorum_until_ms`] turns the last-heard
//! times into one deadline, so that a reader (the node's `/health`) can
//! judge at its own time without asking the core.

use std::collections::BTreeMap;

use palisade_consensus::{Committee, ValidatorIndex};

/// The last time each member was heard from.
#[derive(Clone, Debug, Default)]
pub struct Presence {
    heard_ms: BTreeMap<ValidatorIndex, u64>,
    /// The last `Alive` of each member: only members that are not
    /// quarantined sign those (see [`crate::quarantine`]).
    beat_ms: BTreeMap<ValidatorIndex, u64>,
}

impl Presence {
    /// `member` was heard from at `now_ms`.
    pub fn heard(&mut self, member: ValidatorIndex, now_ms: u64) {
        let at = self.heard_ms.entry(member).or_default();
        *at = (*at).max(now_ms);
    }

    /// `member`'s `Alive` arrived at `now_ms`.
    pub fn beat(&mut self, member: ValidatorIndex, now_ms: u64) {
        let at = self.beat_ms.entry(member).or_default();
        *at = (*at).max(now_ms);
    }

    /// Until when the members heard within `window_ms` of their last
    /// message, with `me` (always present to itself), hold a quorum of
    /// `committee`'s stake: 0 if they never did, `u64::MAX` if `me` alone
    /// is a quorum. Jailed members (no stake) count for nothing.
    pub fn quorum_until_ms(&self, committee: &Committee, me: Option<ValidatorIndex>, window_ms: u64) -> u64 {
        until(&self.heard_ms, committee, me, window_ms)
    }

    /// Whether the other members that beat within `window_ms` of `now_ms`
    /// hold a quorum without `me`: if not, a quarantined `me` is needed.
    pub fn others_beat_a_quorum(
        &self,
        committee: &Committee,
        me: Option<ValidatorIndex>,
        now_ms: u64,
        window_ms: u64,
    ) -> bool {
        let others: BTreeMap<ValidatorIndex, u64> =
            self.beat_ms.iter().filter(|(member, _)| Some(**member) != me).map(|(m, at)| (*m, *at)).collect();
        until(&others, committee, None, window_ms) >= now_ms
    }

    /// When each active member was last heard, in index order: 0 if never,
    /// `u64::MAX` for `me` (always present to itself).
    pub fn heard_times(&self, committee: &Committee, me: Option<ValidatorIndex>) -> Vec<u64> {
        (0..committee.len())
            .filter_map(|i| u32::try_from(i).ok().map(ValidatorIndex))
            .filter(|member| committee.is_active(*member))
            .map(|member| if Some(member) == me { u64::MAX } else { self.heard_ms.get(&member).copied().unwrap_or(0) })
            .collect()
    }
}

/// [`Presence::quorum_until_ms`] over the times in `heard_ms`.
fn until(
    heard_ms: &BTreeMap<ValidatorIndex, u64>,
    committee: &Committee,
    me: Option<ValidatorIndex>,
    window_ms: u64,
) -> u64 {
    let quorum = committee.quorum_stake();
    let mut stake = me.map_or(0, |me| committee.stake(me));
    if stake >= quorum {
        return u64::MAX;
    }
    // The most recently heard first: the quorum that lasts longest.
    let mut heard: Vec<(u64, ValidatorIndex)> = heard_ms
        .iter()
        .filter(|(member, _)| Some(**member) != me && committee.is_active(**member))
        .map(|(member, at)| (*at, *member))
        .collect();
    heard.sort_unstable_by(|a, b| b.cmp(a));
    for (at, member) in heard {
        stake = stake.saturating_add(committee.stake(member));
        if stake >= quorum {
            return at.saturating_add(window_ms);
        }
    }
    0
}

/// How many of `heard_times` lie within `window_ms` before `now_ms`.
pub fn heard_within(heard_times: &[u64], now_ms: u64, window_ms: u64) -> usize {
    heard_times.iter().filter(|at| now_ms.saturating_sub(**at) <= window_ms).count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ed25519_dalek::SigningKey;
    use palisade_consensus::committee::Validator;

    use super::*;

    fn committee(n: u8) -> Committee {
        let validators = (1..=n)
            .map(|i| Validator { public_key: SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes(), stake: 10 })
            .collect();
        Committee::new(validators).unwrap()
    }

    const WINDOW: u64 = 400;

    #[test]
    fn a_quorum_lasts_a_window_after_its_member_heard_last() {
        let four = committee(4);
        let me = Some(ValidatorIndex(0));
        let mut presence = Presence::default();
        assert_eq!(presence.quorum_until_ms(&four, me, WINDOW), 0, "nobody heard yet");
        presence.heard(ValidatorIndex(1), 1_000);
        assert_eq!(presence.quorum_until_ms(&four, me, WINDOW), 0, "2 of 4 is no quorum");
        presence.heard(ValidatorIndex(2), 1_100);
        // Me, 1 (last at 1,000) and 2: the quorum holds until 1 goes quiet.
        assert_eq!(presence.quorum_until_ms(&four, me, WINDOW), 1_400);
        presence.heard(ValidatorIndex(3), 1_200);
        // Now me, 3 and 2: the freshest three.
        assert_eq!(presence.quorum_until_ms(&four, me, WINDOW), 1_500);
        presence.heard(ValidatorIndex(2), 900);
        assert_eq!(presence.quorum_until_ms(&four, me, WINDOW), 1_500, "an older time never goes back");
        let times = presence.heard_times(&four, me);
        assert_eq!(times, [u64::MAX, 1_000, 1_100, 1_200]);
        assert_eq!(heard_within(&times, 1_450, WINDOW), 3);
        assert_eq!(heard_within(&times, 1_550, WINDOW), 2);
        assert_eq!(heard_within(&times, 5_000, WINDOW), 1, "me alone");
    }

    #[test]
    fn jailed_members_and_a_non_member_count_for_nothing() {
        let four = committee(4).jailing(&[ValidatorIndex(3)]).unwrap();
        let mut presence = Presence::default();
        for member in 0..4 {
            presence.heard(ValidatorIndex(member), 2_000);
        }
        // A follower (no index) needs the quorum of the three with stake,
        // and hears exactly them.
        assert_eq!(presence.quorum_until_ms(&four, None, WINDOW), 2_400);
        assert_eq!(presence.heard_times(&four, None), [2_000; 3], "the jailed member is left out");
        let mut two = Presence::default();
        two.heard(ValidatorIndex(3), 2_000);
        two.heard(ValidatorIndex(1), 2_000);
        assert_eq!(two.quorum_until_ms(&four, Some(ValidatorIndex(0)), WINDOW), 0, "the jailed one adds no stake");
    }

    #[test]
    fn a_committee_of_one_is_its_own_quorum() {
        let one = committee(1);
        assert_eq!(Presence::default().quorum_until_ms(&one, Some(ValidatorIndex(0)), WINDOW), u64::MAX);
    }
}
