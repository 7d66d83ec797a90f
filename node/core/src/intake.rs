//! The intake breakers: a sender, or a client (an IP address, as
//! [`ClientKey`] groups them), whose submissions spike far above its own
//! recent rate is refused for a while, so one flooding account or one
//! flooding client spreading its orders over many accounts cannot crowd out
//! everyone else's on its shard (the base fee, `palisade_ledger::fee`,
//! prices out what gets through).
//!
//! Time is cut into windows of [`WINDOW_MS`]. Each sender's (and client's)
//! *baseline* is a moving average of its submissions per window (weight
//! 1/[`BASELINE_WINDOWS`], in thousandths so integer arithmetic keeps
//! small rates). It trips when a window's submissions exceed
//! [`SPIKE_FACTOR`] times its baseline, and never below a floor
//! ([`FLOOR_PER_WINDOW`] for senders, the node's configured floor for
//! clients: a new or quiet one may always send that many). A tripped one is
//! refused for [`COOL_DOWN_MS`]; if it floods again when let back in, it
//! trips again within a second. Windows over the limit do not teach the
//! baseline, so a flood does not become the new normal.
//!
//! Only submissions from clients pass through here, never gossip (what a
//! peer relays was admitted by that peer's own breaker), and only those
//! the mempool admitted count: their signature was verified, so nobody can
//! trip another account's breaker with forged submissions. The breakers are
//! part of the shard core (time and the client's address come in from the
//! host), each bounded to [`MAX_SENDERS`] keys, least recently seen dropped
//! first.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

use hashlink::LruCache;
use palisade_ledger::Address;

/// Length of a counting window.
pub const WINDOW_MS: u64 = 1_000;
/// A window's submissions over this many times the baseline trip the breaker.
pub const SPIKE_FACTOR: u64 = 10;
/// Submissions per window a sender may always make.
pub const FLOOR_PER_WINDOW: u64 = 1_000;
/// The baseline moves by 1/this of the difference each window.
pub const BASELINE_WINDOWS: u64 = 16;
/// A tripped sender stays refused until this long after its last window
/// over the limit.
pub const COOL_DOWN_MS: u64 = 10_000;
/// Senders (and clients) tracked at most.
pub const MAX_SENDERS: usize = 65_536;
/// Submissions per window a client may always make, unless the node says
/// otherwise (`rpc.client_tx_floor_per_second`).
pub const DEFAULT_CLIENT_FLOOR_PER_WINDOW: u64 = 1_000;
/// Tripped senders remembered before those calm again are pruned.
const MAX_TRIPPED_KEPT: usize = 1_024;
/// Empty windows after which a baseline has decayed to nothing.
const MAX_DECAY_WINDOWS: u64 = 128;

/// A client as the breakers (and the RPC rate limit) see it: an IPv4
/// address, or the /64 prefix of an IPv6 address (one host usually holds a
/// whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of the client at `ip`.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let mut segments = v6.segments();
                    for segment in segments.iter_mut().skip(4) {
                        *segment = 0;
                    }
                    ClientKey(IpAddr::V6(Ipv6Addr::from(segments)))
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One key's counts.
#[derive(Clone, Copy, Debug)]
struct Rate {
    window_start_ms: u64,
    count: u64,
    /// Submissions per window, in thousandths.
    baseline_milli: u64,
}

/// Whose limit a submission went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The transaction's sender.
    Sender,
    /// The client that submitted it.
    Client(ClientKey),
}

/// A submission the breakers refused: whose limit, until when, at least.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// The sender's or the client's.
    pub who: Who,
    /// Its limit for the current window.
    pub limit_per_window: u64,
    /// When it may be admitted again if it calms down now (ms, host time).
    pub until_ms: u64,
    /// This submission tripped it (it was admitted until now).
    pub newly: bool,
}

/// One breaker: per key, a rate and its trip.
struct Breaker<K> {
    floor_per_window: u64,
    rates: LruCache<K, Rate>,
    /// Tripped keys and until when they are refused (at most those that
    /// tripped within a cool-down; pruned as they calm).
    tripped: BTreeMap<K, u64>,
}

/// A breaker's refusal: the limit and until when.
type Trip = (u64, u64);

impl<K: Copy + Eq + Hash + Ord> Breaker<K> {
    fn new(floor_per_window: u64) -> Breaker<K> {
        Breaker { floor_per_window, rates: LruCache::new(MAX_SENDERS), tripped: BTreeMap::new() }
    }

    fn check(&self, key: &K, now_ms: u64) -> Result<(), Trip> {
        match self.tripped.get(key) {
            Some(&until_ms) if now_ms < until_ms => {
                let limit = self.rates.peek(key).map_or(self.floor_per_window, |r| r.limit(self.floor_per_window));
                Err((limit, until_ms))
            }
            _ => Ok(()),
        }
    }

    /// Counts one; `Some((limit, until, newly))` if it is over the limit.
    fn count(&mut self, key: &K, now_ms: u64) -> Option<(u64, u64, bool)> {
        if !self.rates.contains_key(key) {
            self.rates.insert(*key, Rate { window_start_ms: now_ms, count: 0, baseline_milli: 0 });
        }
        let floor = self.floor_per_window;
        let rate = self.rates.get_mut(key)?;
        rate.roll(now_ms, floor);
        rate.count = rate.count.saturating_add(1);
        let limit = rate.limit(floor);
        if rate.count <= limit {
            return None;
        }
        if self.tripped.len() >= MAX_TRIPPED_KEPT {
            self.tripped.retain(|_, until_ms| now_ms < *until_ms);
        }
        let until_ms = now_ms.saturating_add(COOL_DOWN_MS);
        let newly = self.tripped.insert(*key, until_ms).is_none_or(|before| before <= now_ms);
        Some((limit, until_ms, newly))
    }

    fn tripped(&self, now_ms: u64) -> usize {
        self.tripped.values().filter(|until_ms| now_ms < **until_ms).count()
    }
}

/// The breakers of one shard.
pub struct Intake {
    senders: Breaker<Address>,
    clients: Breaker<ClientKey>,
}

impl Default for Intake {
    fn default() -> Self {
        Intake::new(DEFAULT_CLIENT_FLOOR_PER_WINDOW)
    }
}

impl fmt::Debug for Intake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intake")
            .field("senders", &self.senders.rates.len())
            .field("clients", &self.clients.rates.len())
            .finish()
    }
}

impl Rate {
    /// The most submissions the current window may hold.
    fn limit(&self, floor_per_window: u64) -> u64 {
        (self.baseline_milli.saturating_mul(SPIKE_FACTOR) / 1_000).max(floor_per_window)
    }

    /// Closes the windows that ended by `now_ms`, folding each into the
    /// baseline (except one over the limit: a flood is not the new normal).
    fn roll(&mut self, now_ms: u64, floor_per_window: u64) {
        let elapsed = now_ms.saturating_sub(self.window_start_ms) / WINDOW_MS;
        if elapsed == 0 {
            return;
        }
        if self.count <= self.limit(floor_per_window) {
            self.baseline_milli = ewma(self.baseline_milli, self.count.saturating_mul(1_000));
        }
        for _ in 1..elapsed.min(MAX_DECAY_WINDOWS) {
            self.baseline_milli = ewma(self.baseline_milli, 0);
        }
        if elapsed >= MAX_DECAY_WINDOWS {
            self.baseline_milli = 0;
        }
        self.count = 0;
        self.window_start_ms = self.window_start_ms.saturating_add(elapsed.saturating_mul(WINDOW_MS));
    }
}

/// One step of the moving average toward `sample`.
fn ewma(average: u64, sample: u64) -> u64 {
    let step = |from: u64, to: u64| from.saturating_sub(to) / BASELINE_WINDOWS;
    if sample >= average {
        average.saturating_add(step(sample, average))
    } else {
        average.saturating_sub(step(average, sample))
    }
}

impl Intake {
    /// Breakers whose clients may always send `client_floor_per_window`
    /// submissions per window (senders: [`FLOOR_PER_WINDOW`]).
    pub fn new(client_floor_per_window: u64) -> Intake {
        Intake { senders: Breaker::new(FLOOR_PER_WINDOW), clients: Breaker::new(client_floor_per_window.max(1)) }
    }

    /// Whether a submission by `sender` from `client` is refused at
    /// `now_ms` (counts nothing: a submission is counted only once
    /// admitted, see [`Intake::count`]).
    pub fn check(&self, sender: &Address, client: Option<ClientKey>, now_ms: u64) -> Result<(), Throttled> {
        if let Some(client) = client
            && let Err((limit_per_window, until_ms)) = self.clients.check(&client, now_ms)
        {
            return Err(Throttled { who: Who::Client(client), limit_per_window, until_ms, newly: false });
        }
        self.senders.check(sender, now_ms).map_err(|(limit_per_window, until_ms)| Throttled {
            who: Who::Sender,
            limit_per_window,
            until_ms,
            newly: false,
        })
    }

    /// Counts one admitted submission by `sender` from `client` at
    /// `now_ms`; `Some` if it tripped a breaker (the client's first): that
    /// sender or client is refused from now on. Only what was admitted
    /// counts, its signature verified: bytes naming someone else as sender
    /// cannot trip that sender's breaker.
    pub fn count(&mut self, sender: &Address, client: Option<ClientKey>, now_ms: u64) -> Option<Throttled> {
        let client_trip = client.and_then(|key| {
            let (limit_per_window, until_ms, newly) = self.clients.count(&key, now_ms)?;
            Some(Throttled { who: Who::Client(key), limit_per_window, until_ms, newly })
        });
        let sender_trip = self.senders.count(sender, now_ms).map(|(limit_per_window, until_ms, newly)| Throttled {
            who: Who::Sender,
            limit_per_window,
            until_ms,
            newly,
        });
        client_trip.or(sender_trip)
    }

    /// [`Intake::check`], then [`Intake::count`], for a submission that
    /// would be admitted: what the tests drive.
    #[cfg(test)]
    fn admit(&mut self, sender: &Address, now_ms: u64) -> Result<(), Throttled> {
        self.admit_from(sender, None, now_ms)
    }

    #[cfg(test)]
    fn admit_from(&mut self, sender: &Address, client: Option<ClientKey>, now_ms: u64) -> Result<(), Throttled> {
        self.check(sender, client, now_ms)?;
        match self.count(sender, client, now_ms) {
            Some(throttled) => Err(throttled),
            None => Ok(()),
        }
    }

    /// Senders refused at `now_ms`.
    pub fn tripped(&self, now_ms: u64) -> usize {
        self.senders.tripped(now_ms)
    }

    /// Clients refused at `now_ms`.
    pub fn tripped_clients(&self, now_ms: u64) -> usize {
        self.clients.tripped(now_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;

    const ALICE: Address = Address([1; 32]);
    const BOB: Address = Address([2; 32]);

    /// Submits `n` by `sender` spread over the window starting at `start_ms`;
    /// returns how many were admitted.
    fn burst(intake: &mut Intake, sender: &Address, start_ms: u64, n: u64) -> u64 {
        (0..n).filter(|i| intake.admit(sender, start_ms + i * (WINDOW_MS - 1) / n.max(1)).is_ok()).count() as u64
    }

    #[test]
    fn a_steady_sender_is_never_refused_and_the_floor_lets_anyone_start() {
        let mut intake = Intake::default();
        assert_eq!(burst(&mut intake, &ALICE, 0, FLOOR_PER_WINDOW), FLOOR_PER_WINDOW, "a new sender up to the floor");
        for second in 1..100 {
            assert_eq!(burst(&mut intake, &ALICE, second * WINDOW_MS, 150), 150);
        }
        assert_eq!(intake.tripped(100 * WINDOW_MS), 0);
    }

    #[test]
    fn a_tenfold_spike_trips_only_that_sender_until_it_calms() {
        let mut intake = Intake::default();
        // Alice sends 300 a second for a minute: her baseline learns it.
        for second in 0..60 {
            assert_eq!(burst(&mut intake, &ALICE, second * WINDOW_MS, 300), 300);
            burst(&mut intake, &BOB, second * WINDOW_MS, 100);
        }
        // Five times that is fine (and raises her baseline a little, to
        // about 370); fifteen times trips at about ten times.
        assert_eq!(burst(&mut intake, &ALICE, 60 * WINDOW_MS, 1_500), 1_500);
        let admitted = burst(&mut intake, &ALICE, 61 * WINDOW_MS, 4_500);
        assert!((3_000..=3_800).contains(&admitted), "admitted {admitted} of 4,500");
        assert_eq!(intake.tripped(62 * WINDOW_MS), 1, "Alice, and only Alice");
        assert_eq!(burst(&mut intake, &BOB, 62 * WINDOW_MS, 100), 100, "others are not affected");
        // Still hammering within the cool-down: still refused.
        assert_eq!(burst(&mut intake, &ALICE, 62 * WINDOW_MS, 4_500), 0);
        // After it: back in, at her old pace.
        let back = 63 * WINDOW_MS + COOL_DOWN_MS;
        assert_eq!(burst(&mut intake, &ALICE, back, 300), 300);
        assert_eq!(intake.tripped(back + WINDOW_MS), 0);
    }

    #[test]
    fn a_flood_does_not_become_the_baseline_and_quiet_senders_decay() {
        let mut intake = Intake::default();
        for second in 0..30 {
            burst(&mut intake, &ALICE, second * WINDOW_MS, 100);
        }
        // A minute of flooding, refused beyond its limit each window.
        for second in 30..90 {
            burst(&mut intake, &ALICE, second * WINDOW_MS, 10_000);
        }
        let limit = intake.senders.rates.get(&ALICE).unwrap().limit(FLOOR_PER_WINDOW);
        assert_eq!(limit, FLOOR_PER_WINDOW, "the flood taught the limit");
        // Gone for an hour: the baseline is back to nothing, the floor holds.
        intake.admit(&ALICE, 3_600_000 + 90 * WINDOW_MS).unwrap_or(());
        assert_eq!(intake.senders.rates.get(&ALICE).unwrap().limit(FLOOR_PER_WINDOW), FLOOR_PER_WINDOW);
    }

    fn sender(i: u64) -> Address {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        Address(bytes)
    }

    #[test]
    fn a_client_spreading_a_flood_over_many_senders_trips_its_own_breaker() {
        let mut intake = Intake::new(100);
        let flooder = ClientKey::of("10.0.0.2".parse().unwrap());
        let honest = ClientKey::of("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(honest, ClientKey::of("10.0.0.1".parse().unwrap()), "an IPv4-mapped address is its IPv4 one");
        // Both send 20 a second, from 20 accounts each, for half a minute.
        for second in 0..30 {
            for i in 0..20 {
                let at = second * WINDOW_MS + i * 40;
                assert!(intake.admit_from(&sender(i), Some(flooder), at).is_ok());
                assert!(intake.admit_from(&sender(1_000 + i), Some(honest), at).is_ok());
            }
        }
        // Then one of them sends 1,000 in a second, each from a new account:
        // no sender is over its floor, the client is over ten times its
        // baseline (about 17 a second) and trips.
        let start = 30 * WINDOW_MS;
        let admitted = (0..1_000u64)
            .filter(|&i| {
                intake.admit_from(&sender(10_000 + i), Some(flooder), start + i * (WINDOW_MS - 1) / 1_000).is_ok()
            })
            .count();
        assert!((150..=200).contains(&admitted), "admitted {admitted} of 1,000");
        assert_eq!((intake.tripped_clients(start + WINDOW_MS), intake.tripped(start + WINDOW_MS)), (1, 0));
        let refused = intake.admit_from(&sender(20_000), Some(flooder), start + WINDOW_MS).unwrap_err();
        assert_eq!(refused.who, Who::Client(flooder));
        assert!(refused.until_ms > start + COOL_DOWN_MS && !refused.newly, "{refused:?}");
        // The other client, and the same senders without the flooder's
        // address, go on.
        assert!(intake.admit_from(&sender(1_000), Some(honest), start + WINDOW_MS).is_ok());
        assert!(intake.admit_from(&sender(0), None, start + WINDOW_MS).is_ok());
    }
}
