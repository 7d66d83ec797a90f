//! Gossipsub peer scoring: how much a peer's behaviour on our topics is
//! worth, and where the thresholds lie.
//!
//! What matters on a validator network is P4, invalid messages: every
//! message a shard reports [`Verdict::Reject`](super::Verdict::Reject) costs
//! its sender `50 × count²` (decaying over about ten minutes), so a peer that
//! sends three or four invalid messages falls below the graylist threshold;
//! the network task then disconnects it and refuses it for the configured
//! ban duration. The positive part of a score is small (at most +8 per
//! topic), so good behaviour on the topics of a few shards cannot hide more
//! than a few invalid messages.
//!
//! Deliberately off:
//! - P3/P3b (mesh delivery deficits): consensus topics are quiet between
//!   blocks, so a delivery quota would punish honest peers of an idle shard;
//! - P6 (IP colocation): a local testnet runs every node on 127.0.0.1, and
//!   one operator may run several validators behind one address; Sybil
//!   resistance comes from stake and signatures, not addresses.

use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams, score_parameter_decay};

/// Below this score gossipsub ignores a peer's messages, and the network
/// task disconnects and bans it.
pub(crate) const GRAYLIST_THRESHOLD: f64 = -400.0;
/// Below this we stop gossiping (IHAVE/IWANT) with the peer.
const GOSSIP_THRESHOLD: f64 = -100.0;
/// Below this we stop publishing our own messages to the peer.
const PUBLISH_THRESHOLD: f64 = -200.0;
/// Cost of invalid messages, times the square of their (decaying) count.
const INVALID_MESSAGE_WEIGHT: f64 = -50.0;
/// How long an invalid message keeps counting (decays to a tenth).
const INVALID_MESSAGE_MEMORY: Duration = Duration::from_secs(600);
/// Cap on the positive score a peer can earn across all topics.
const TOPIC_SCORE_CAP: f64 = 40.0;

/// The score thresholds.
pub(crate) fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        // Peer exchange is off; make sure nobody qualifies anyway.
        accept_px_threshold: 1_000.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Score parameters with the same weights on every one of `topics`.
pub(crate) fn params<'a>(topics: impl IntoIterator<Item = &'a TopicHash>) -> PeerScoreParams {
    let defaults = PeerScoreParams::default();
    PeerScoreParams {
        topics: topics.into_iter().map(|t| (t.clone(), topic_params())).collect(),
        topic_score_cap: TOPIC_SCORE_CAP,
        // No application score is set.
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        // P7: broken IHAVE promises and early re-grafts, tolerated up to six.
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: score_parameter_decay(Duration::from_secs(600)),
        ..defaults
    }
}

fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: up to +3 for five minutes in the mesh (no mesh is kept, see
        // behaviour.rs, so nobody earns it today; bounded all the same).
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        // P2: up to +5 for being first to deliver valid messages.
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 10.0,
        // P3, P3b: off (see the module doc).
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: invalid messages.
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: score_parameter_decay(INVALID_MESSAGE_MEMORY),
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_valid() {
        let topic = TopicHash::from_raw("t");
        assert!(params([&topic]).validate().is_ok());
        assert!(thresholds().validate().is_ok());
    }

    #[test]
    fn a_few_invalid_messages_graylist_even_a_well_scored_peer() {
        let t = topic_params();
        let best_per_topic = t.time_in_mesh_weight * t.time_in_mesh_cap
            + t.first_message_deliveries_weight * t.first_message_deliveries_cap;
        let invalid = |n: f64| n * n * INVALID_MESSAGE_WEIGHT;
        // A peer at its best on both topics of eight shards.
        assert!(16.0 * best_per_topic + invalid(4.0) < GRAYLIST_THRESHOLD);
        // ... and on one topic only.
        assert!(best_per_topic + invalid(3.0) < GRAYLIST_THRESHOLD);
        // One mistake does not even stop gossip with the peer.
        assert!(invalid(1.0) > GOSSIP_THRESHOLD);
    }
}
