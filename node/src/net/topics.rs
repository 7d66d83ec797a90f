//! The gossip topics this node subscribes to (every topic of every shard it
//! runs), the way back from a topic hash to `(shard, kind)`, and the size
//! limit each kind of message is held to.

use std::collections::HashMap;

use libp2p::gossipsub::{IdentTopic, TopicHash, TopicSubscriptionFilter};
use palisade_ledger::ShardId;

use crate::wire::{self, MAX_TX_GOSSIP_BYTES, TopicKind, WIRE_VERSION};

/// Room for gossipsub's own framing around a message (protobuf fields,
/// source peer id, sequence number, signature and public key, topic name).
const FRAME_SLACK_BYTES: usize = 2 * 1024;

/// Topic names and hashes of the shards this node runs, and the size limits.
pub(crate) struct Topics {
    chain_id: String,
    subscribed: Vec<IdentTopic>,
    by_hash: HashMap<TopicHash, (ShardId, TopicKind)>,
    max_consensus_bytes: usize,
}

impl Topics {
    /// Both topics of each of `shards` on chain `chain_id`.
    pub(crate) fn new(chain_id: &str, shards: &[ShardId], max_consensus_bytes: usize) -> Topics {
        let mut subscribed = Vec::with_capacity(shards.len().saturating_mul(2));
        let mut by_hash = HashMap::with_capacity(shards.len().saturating_mul(2));
        for &shard in shards {
            for kind in [TopicKind::Consensus, TopicKind::Txs, TopicKind::Receipts, TopicKind::Evidence] {
                let topic = IdentTopic::new(wire::topic(chain_id, shard, kind));
                if by_hash.insert(topic.hash(), (shard, kind)).is_none() {
                    subscribed.push(topic);
                }
            }
        }
        Topics { chain_id: chain_id.to_owned(), subscribed, by_hash, max_consensus_bytes }
    }

    /// The topics to subscribe to.
    pub(crate) fn subscribed(&self) -> &[IdentTopic] {
        &self.subscribed
    }

    /// The hash of a shard's topic (subscribed to or not).
    pub(crate) fn hash(&self, shard: ShardId, kind: TopicKind) -> TopicHash {
        IdentTopic::new(wire::topic(&self.chain_id, shard, kind)).hash()
    }

    /// Which subscribed topic `hash` is.
    pub(crate) fn lookup(&self, hash: &TopicHash) -> Option<(ShardId, TopicKind)> {
        self.by_hash.get(hash).copied()
    }

    /// Largest message accepted on a topic of `kind`.
    pub(crate) fn limit(&self, kind: TopicKind) -> usize {
        match kind {
            // A receipt batch is bounded like a block.
            TopicKind::Consensus | TopicKind::Receipts | TopicKind::Evidence => self.max_consensus_bytes,
            TopicKind::Txs => MAX_TX_GOSSIP_BYTES,
        }
    }

    /// Gossipsub's transmit limit: the largest of the per-kind limits plus
    /// framing. Each kind's own, tighter limit is checked on receipt.
    pub(crate) fn max_transmit_bytes(&self) -> usize {
        self.max_consensus_bytes.max(MAX_TX_GOSSIP_BYTES).saturating_add(FRAME_SLACK_BYTES)
    }
}

/// Accepts subscriptions (ours and those peers announce) only to this
/// chain's shard topics, so a peer cannot make us track arbitrary topics.
/// (The number per peer is capped by gossipsub's `MaxCountSubscriptionFilter`
/// around it.)
#[derive(Clone, Debug)]
pub(crate) struct ChainTopics {
    prefix: String,
}

impl ChainTopics {
    /// The filter for chain `chain_id`.
    pub(crate) fn new(chain_id: &str) -> ChainTopics {
        ChainTopics { prefix: format!("/palisade/{WIRE_VERSION}/{chain_id}/shard/") }
    }
}

impl TopicSubscriptionFilter for ChainTopics {
    fn can_subscribe(&mut self, topic_hash: &TopicHash) -> bool {
        topic_hash.as_str().starts_with(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hashes_back_to_shard_and_kind() {
        let topics = Topics::new("test-chain", &[0, 3], 100_000);
        assert_eq!(topics.subscribed().len(), 8, "four topics per shard");
        let hash = topics.hash(3, TopicKind::Txs);
        assert_eq!(topics.lookup(&hash), Some((3, TopicKind::Txs)));
        assert_eq!(topics.lookup(&topics.hash(1, TopicKind::Consensus)), None);
        assert_eq!(topics.limit(TopicKind::Txs), MAX_TX_GOSSIP_BYTES);
        assert_eq!(topics.limit(TopicKind::Consensus), 100_000);
        assert_eq!(topics.limit(TopicKind::Receipts), 100_000);
        assert_eq!(topics.lookup(&topics.hash(0, TopicKind::Receipts)), Some((0, TopicKind::Receipts)));
        assert!(topics.max_transmit_bytes() > 100_000);
    }

    #[test]
    fn filter_allows_this_chains_shard_topics_only() {
        let mut filter = ChainTopics::new("c");
        let ours = Topics::new("c", &[0, 7], 1_000);
        for topic in ours.subscribed() {
            assert!(filter.can_subscribe(&topic.hash()), "{topic}");
        }
        let theirs = Topics::new("c2", &[0], 1_000);
        assert!(!filter.can_subscribe(&theirs.hash(0, TopicKind::Txs)));
        assert!(!filter.can_subscribe(&TopicHash::from_raw("/something/else")));
    }

    #[test]
    fn another_chain_has_other_topics() {
        let ours = Topics::new("a", &[0], 1_000);
        let theirs = Topics::new("b", &[0], 1_000);
        assert_eq!(ours.lookup(&theirs.hash(0, TopicKind::Consensus)), None);
    }
}
