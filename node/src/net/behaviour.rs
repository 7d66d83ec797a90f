//! The libp2p behaviours the swarm runs, and how each is configured:
//! the block list (bans) and connection limits first, so refused
//! connections are refused before anything else sees them; identify, ping
//! and Kademlia (server mode) for discovery and liveness; gossipsub with
//! strict signing, application validation and peer scoring; and the sync
//! protocol.

use std::time::Duration;

use libp2p::gossipsub::{self, MaxCountSubscriptionFilter, MessageAuthenticity, ValidationMode};
use libp2p::kad::store::MemoryStore;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, allow_block_list, connection_limits, identify, identity, kad, ping};

use super::sync::{self, SyncBehaviour};
use super::topics::{ChainTopics, Topics};
use super::{NetConfig, NetError, scoring};

/// Kademlia's protocol name.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/palisade/kad/1");
/// How often Kademlia looks for new peers.
const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// Topics one peer may be subscribed to (all shards of any sane network).
const MAX_TOPICS_PER_PEER: usize = 1_024;

/// Gossipsub with our subscription filter.
pub(crate) type Gossipsub = gossipsub::Behaviour<gossipsub::IdentityTransform, MaxCountSubscriptionFilter<ChainTopics>>;

/// Everything the swarm runs.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Banned peers.
    pub(crate) block_list: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Connection limits.
    pub(crate) limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and protocols.
    pub(crate) identify: identify::Behaviour,
    /// Keeps an eye on liveness.
    pub(crate) ping: ping::Behaviour,
    /// Peer discovery.
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    /// Shard topics.
    pub(crate) gossipsub: Gossipsub,
    /// Block sync.
    pub(crate) sync: SyncBehaviour,
}

/// The identify protocol version of chain `chain_id`: peers announcing
/// another are on another network and are dropped.
pub(crate) fn protocol_version(chain_id: &str) -> String {
    format!("/palisade/{}/{chain_id}", crate::wire::WIRE_VERSION)
}

impl Behaviour {
    /// The behaviours for `config`, subscribed to every topic of `topics`.
    pub(crate) fn new(config: &NetConfig, topics: &Topics) -> Result<Behaviour, NetError> {
        let key = &config.keypair;
        let peer_id = key.public().to_peer_id();
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_periodic_bootstrap_interval(Some(KAD_BOOTSTRAP_INTERVAL));
        // We store no records: keep peers from filling our store.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));

        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_connections))
            .with_max_pending_outgoing(Some(config.max_connections));

        Ok(Behaviour {
            block_list: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new(protocol_version(&config.chain_id), key.public())
                    .with_agent_version(format!("palisade-node/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            kad,
            gossipsub: gossipsub(key, &config.chain_id, topics)?,
            sync: sync::behaviour(),
        })
    }
}

fn gossipsub(key: &identity::Keypair, chain_id: &str, topics: &Topics) -> Result<Gossipsub, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        // Nothing is forwarded before its shard has said it is valid.
        .validate_messages()
        .max_transmit_size(topics.max_transmit_bytes())
        .build()
        .map_err(|e| NetError::Setup(format!("gossipsub configuration: {e}")))?;
    let filter = MaxCountSubscriptionFilter {
        filter: ChainTopics::new(chain_id),
        max_subscribed_topics: MAX_TOPICS_PER_PEER,
        max_subscriptions_per_request: MAX_TOPICS_PER_PEER,
    };
    let mut gossipsub =
        Gossipsub::new_with_subscription_filter(MessageAuthenticity::Signed(key.clone()), config, filter)
            .map_err(|e| NetError::Setup(format!("gossipsub: {e}")))?;
    let hashes: Vec<_> = topics.subscribed().iter().map(|t| t.hash()).collect();
    gossipsub
        .with_peer_score(scoring::params(&hashes), scoring::thresholds())
        .map_err(|e| NetError::Setup(format!("gossipsub scoring: {e}")))?;
    for topic in topics.subscribed() {
        gossipsub.subscribe(topic).map_err(|e| NetError::Setup(format!("subscribing to {topic}: {e}")))?;
    }
    Ok(gossipsub)
}
