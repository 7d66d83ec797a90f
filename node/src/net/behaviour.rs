//! The libp2p behaviours the swarm runs, and how each is configured:
//! the block list (bans) and connection limits first, so refused
//! connections are refused before anything else sees them; identify, ping
//! and Kademlia (server mode) for discovery and liveness; gossipsub with
//! content-addressed message ids, application validation and peer scoring;
//! and the sync protocol.
//!
//! Gossip messages carry no libp2p envelope (no author, sequence number or
//! signature): every payload carries its own signatures (a user's on a
//! transaction, a validator's on a consensus message, a commit certificate
//! on a receipt batch), which the shard verifies before anything is
//! forwarded. Signing each message again as its publisher, and verifying
//! that at every hop, cost an ed25519 signature per message per node for
//! nothing. A message's id is the hash of its topic and bytes, so nobody can
//! claim the id of a message they did not send (with unsigned author and
//! sequence-number ids, a peer could announce a junk message under the id
//! of an honest one and have it dropped as a duplicate), and the same
//! payload published by several nodes (a receipt batch every validator of
//! its source relays, a transaction a wallet submits twice) travels once.
//! The price: identical bytes published again within gossipsub's duplicate
//! window are not delivered again, so nothing may rely on re-sending the
//! same message; block sync is what recovers a peer that missed one.
//!
//! No mesh: a topic's subscribers are one shard's validators (and the
//! nodes that follow it), which connect to each other directly, so a
//! publisher's flood publish (to every subscribed peer) already reaches
//! them all. A mesh would have every receiver forward every message to the
//! others, who already have it: with four validators, nine transmissions
//! for three deliveries, which a profile of the bench showed as 40 % of the
//! nodes' gossip CPU. What a direct publish missed (a lost connection, a
//! peer reached only through another) is repaired lazily: each heartbeat,
//! every node announces what it accepted in the last one (IHAVE) to its
//! topic peers, who fetch what they lack (IWANT); so a message crosses a
//! hop per heartbeat (1 s) instead of at once, and only accepted messages
//! ever travel on.

use std::time::Duration;

use libp2p::gossipsub::{self, MaxCountSubscriptionFilter, MessageAuthenticity, ValidationMode};
use libp2p::kad::store::MemoryStore;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, allow_block_list, connection_limits, identify, kad, ping};

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
            gossipsub: gossipsub(&config.chain_id, topics)?,
            sync: sync::behaviour(),
        })
    }
}

/// Most message ids in one IHAVE or IWANT: 1,000 ids are about 34 KB.
const MAX_CONTROL_IDS: usize = 1_000;

fn gossipsub(chain_id: &str, topics: &Topics) -> Result<Gossipsub, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        // No mesh, no eager forwarding (see the module docs).
        .mesh_outbound_min(0)
        .mesh_n_low(0)
        .mesh_n(0)
        .mesh_n_high(0)
        .flood_publish(true)
        // Each accepted message is announced once, at the next heartbeat.
        .history_gossip(1)
        // A control message (IHAVE/IWANT ids) over the receiver's limit
        // kills the sender's stream to it for good: the receiver drops the
        // stream, the sender keeps writing into it, and nothing it sends
        // arrives again while the connection lives. The defaults allow
        // sending 5,000 ids (about 170 KB) against a 16 KB receive limit,
        // and a restarted validator asks for every id it is offered: 10
        // leader kills in a row left shards deaf. So ids per control message
        // stay far below a limit that is itself as large as a message.
        .max_control_messages_sent(MAX_CONTROL_IDS)
        .max_control_message_size(topics.max_transmit_bytes())
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(content_id)
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
    let mut gossipsub = Gossipsub::new_with_subscription_filter(MessageAuthenticity::Anonymous, config, filter)
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

/// A gossip message's id: blake3 of its topic and its bytes (see the module
/// docs for why content, not author and sequence number).
fn content_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut hasher = blake3::Hasher::new();
    let topic = message.topic.as_str().as_bytes();
    hasher.update(&(topic.len() as u64).to_le_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::from(hasher.finalize().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use libp2p::gossipsub::TopicHash;

    use super::*;

    fn message(topic: &str, data: &[u8]) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data: data.to_vec(),
            sequence_number: None,
            topic: TopicHash::from_raw(topic),
        }
    }

    #[test]
    fn ids_name_the_topic_and_the_bytes() {
        let id = content_id(&message("/palisade/t/shard/0/txs", b"tx"));
        assert_eq!(id, content_id(&message("/palisade/t/shard/0/txs", b"tx")), "the same payload, the same id");
        assert_ne!(id, content_id(&message("/palisade/t/shard/0/txs", b"tx2")));
        assert_ne!(id, content_id(&message("/palisade/t/shard/1/txs", b"tx")), "another topic, another id");
        // The topic's length is hashed, so topic and bytes cannot trade places.
        assert_ne!(content_id(&message("ab", b"c")), content_id(&message("a", b"bc")));
    }
}
