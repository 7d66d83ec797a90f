//! Peers refused for a while: who is banned and until when.
//!
//! The network task bans a peer whose gossipsub score fell below the graylist
//! threshold (see [`super::scoring`]): it puts the peer on libp2p's block
//! list (which closes its connections and refuses new ones) and records the
//! ban here; when the ban expires the peer is taken off the block list. Peer
//! ids cost nothing to make, so the record is bounded: when full, the ban
//! closest to expiry is lifted early to make room.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Most peers banned at once.
pub(crate) const MAX_BANNED: usize = 4_096;

/// Banned peers and when each ban ends.
#[derive(Debug)]
pub(crate) struct Bans {
    duration: Duration,
    until: HashMap<PeerId, Instant>,
}

impl Bans {
    /// No bans yet; each will last `duration`.
    pub(crate) fn new(duration: Duration) -> Bans {
        Bans { duration, until: HashMap::new() }
    }

    /// How long a ban lasts.
    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    /// Bans `peer` from `now`; returns a peer whose ban was lifted early to
    /// make room, if any (the caller unblocks it).
    pub(crate) fn ban(&mut self, peer: PeerId, now: Instant) -> Option<PeerId> {
        let mut lifted = None;
        if self.until.len() >= MAX_BANNED && !self.until.contains_key(&peer) {
            let soonest = self.until.iter().min_by_key(|(_, until)| **until).map(|(peer, _)| *peer);
            if let Some(soonest) = soonest {
                self.until.remove(&soonest);
                lifted = Some(soonest);
            }
        }
        self.until.insert(peer, now.checked_add(self.duration).unwrap_or(now));
        lifted
    }

    /// Whether `peer` is banned.
    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.until.contains_key(peer)
    }

    /// Removes and returns the peers whose ban has ended by `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self.until.iter().filter(|(_, until)| **until <= now).map(|(peer, _)| *peer).collect();
        for peer in &ended {
            self.until.remove(peer);
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_end_after_their_duration() {
        let now = Instant::now();
        let mut bans = Bans::new(Duration::from_secs(10));
        let peer = PeerId::random();
        assert_eq!(bans.ban(peer, now), None);
        assert!(bans.is_banned(&peer));
        assert!(bans.expire(now + Duration::from_secs(9)).is_empty());
        assert_eq!(bans.expire(now + Duration::from_secs(10)), vec![peer]);
        assert!(!bans.is_banned(&peer));
    }

    #[test]
    fn a_full_list_lifts_the_ban_closest_to_expiry() {
        let now = Instant::now();
        let mut bans = Bans::new(Duration::from_secs(10));
        let first = PeerId::random();
        bans.ban(first, now);
        for i in 1..MAX_BANNED {
            assert_eq!(bans.ban(PeerId::random(), now + Duration::from_millis(i as u64)), None);
        }
        let newcomer = PeerId::random();
        assert_eq!(bans.ban(newcomer, now + Duration::from_secs(5)), Some(first));
        assert!(bans.is_banned(&newcomer));
        assert!(!bans.is_banned(&first));
    }
}
