//! The bootstrap addresses: dialled at start, and again every little while
//! as long as the peer behind an address is not connected (it may have been
//! down when we started, or restarted since). Each address may name its peer
//! (`…/p2p/<peer id>`); if it does not, we learn the peer from the first
//! connection the address gives us. An address that turns out to be this
//! node itself is dropped.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

#[derive(Debug)]
struct Entry {
    address: Multiaddr,
    peer: Option<PeerId>,
    is_self: bool,
}

/// The bootstrap addresses and what we know of each.
#[derive(Debug, Default)]
pub(crate) struct Bootstrap {
    entries: Vec<Entry>,
    /// Dials in progress, to the index of their entry.
    dialling: HashMap<ConnectionId, usize>,
}

impl Bootstrap {
    /// The configured addresses (duplicates dropped).
    pub(crate) fn new(addresses: &[Multiaddr]) -> Bootstrap {
        let mut entries: Vec<Entry> = Vec::with_capacity(addresses.len());
        for address in addresses {
            if entries.iter().any(|e| &e.address == address) {
                continue;
            }
            let peer = match address.iter().last() {
                Some(Protocol::P2p(peer)) => Some(peer),
                _ => None,
            };
            entries.push(Entry { address: address.clone(), peer, is_self: false });
        }
        Bootstrap { entries, dialling: HashMap::new() }
    }

    /// Addresses to dial now (with their index, for [`Self::dialling`]):
    /// those whose peer is unknown or not connected, not banned, and not
    /// being dialled already.
    pub(crate) fn due(
        &self,
        is_connected: impl Fn(&PeerId) -> bool,
        is_banned: impl Fn(&PeerId) -> bool,
    ) -> Vec<(usize, Multiaddr)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, entry)| !entry.is_self && !self.dialling.values().any(|i| i == index))
            .filter(|(_, entry)| !entry.peer.is_some_and(|peer| is_connected(&peer) || is_banned(&peer)))
            .map(|(index, entry)| (index, entry.address.clone()))
            .collect()
    }

    /// Dial `id` was started for the address at `index`.
    pub(crate) fn dialling(&mut self, index: usize, id: ConnectionId) {
        if index < self.entries.len() {
            self.dialling.insert(id, index);
        }
    }

    /// A connection was established; if it was one of our dials, its address
    /// belongs to `peer`.
    pub(crate) fn established(&mut self, id: ConnectionId, peer: PeerId) {
        if let Some(index) = self.dialling.remove(&id)
            && let Some(entry) = self.entries.get_mut(index)
        {
            entry.peer = Some(peer);
        }
    }

    /// A dial failed; `is_self` when the address turned out to be our own.
    pub(crate) fn failed(&mut self, id: ConnectionId, is_self: bool) {
        if let Some(index) = self.dialling.remove(&id)
            && let Some(entry) = self.entries.get_mut(index)
        {
            entry.is_self |= is_self;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("valid address")
    }

    /// Runs one redial round; dials get ids `first_id`, `first_id + 1`, ...
    /// (or fail at once if `first_id` is `None`). Returns the addresses.
    fn round(bootstrap: &mut Bootstrap, connected: &[PeerId], first_id: Option<usize>) -> Vec<Multiaddr> {
        let due = bootstrap.due(|p| connected.contains(p), |_| false);
        if let Some(first) = first_id {
            for (n, (index, _)) in due.iter().enumerate() {
                bootstrap.dialling(*index, ConnectionId::new_unchecked(first + n));
            }
        }
        due.into_iter().map(|(_, address)| address).collect()
    }

    #[test]
    fn redials_until_connected_and_forgets_itself() {
        let peer = PeerId::random();
        let named = address(2).with(Protocol::P2p(peer));
        let mut bootstrap = Bootstrap::new(&[address(1), named.clone(), address(1), address(3)]);
        assert_eq!(round(&mut bootstrap, &[], Some(1)), vec![address(1), named.clone(), address(3)]);
        // All three still dialling: nothing new.
        assert!(round(&mut bootstrap, &[], Some(10)).is_empty());
        bootstrap.failed(ConnectionId::new_unchecked(1), false);
        bootstrap.established(ConnectionId::new_unchecked(2), peer);
        bootstrap.failed(ConnectionId::new_unchecked(3), true);
        // The first is retried; the second is connected; the third was us.
        assert_eq!(round(&mut bootstrap, &[peer], None), vec![address(1)]);
        // Its peer gone, the second is dialled again.
        assert_eq!(round(&mut bootstrap, &[], None), vec![address(1), named]);
        // A banned peer is not dialled.
        assert_eq!(bootstrap.due(|_| false, |p| *p == peer).len(), 1);
    }

    #[test]
    fn learns_the_peer_of_an_unnamed_address() {
        let peer = PeerId::random();
        let mut bootstrap = Bootstrap::new(&[address(1)]);
        assert_eq!(round(&mut bootstrap, &[], Some(7)).len(), 1);
        bootstrap.established(ConnectionId::new_unchecked(7), peer);
        assert!(round(&mut bootstrap, &[peer], None).is_empty());
    }
}
