//! The node's Prometheus metrics, all named `palisade_*`, with a `shard`
//! label where they are about one shard. Every per-shard series is created
//! at start (value zero), so a dashboard sees a shard before its first event.
//!
//! One [`Metrics`] is shared (behind an `Arc`) by the network task, every
//! shard thread and the RPC server; prometheus-client's types are atomics, so
//! recording never blocks.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::mempool::Rejection;
use crate::wire::TopicKind;

/// `shard` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    /// The shard.
    pub shard: u32,
}

/// `shard` and `reason` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The shard.
    pub shard: u32,
    /// Why (a fixed, small set of values).
    pub reason: &'static str,
}

/// `shard` and gossip `topic` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    /// The shard.
    pub shard: u32,
    /// `consensus` or `txs`.
    pub topic: Topic,
}

/// `shard`, gossip `topic` and `reason` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicReasonLabel {
    /// The shard.
    pub shard: u32,
    /// `consensus` or `txs`.
    pub topic: Topic,
    /// Why it was refused.
    pub reason: &'static str,
}

/// `method` label of RPC metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// The JSON-RPC method.
    pub method: String,
}

/// The gossip topic kind as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Topic {
    consensus,
    txs,
    receipts,
    evidence,
}

impl From<TopicKind> for Topic {
    fn from(kind: TopicKind) -> Topic {
        match kind {
            TopicKind::Consensus => Topic::consensus,
            TopicKind::Txs => Topic::txs,
            TopicKind::Receipts => Topic::receipts,
            TopicKind::Evidence => Topic::evidence,
        }
    }
}

/// Reasons a mempool refuses a transaction (its metric labels), so every
/// series exists from the start.
const MEMPOOL_REASONS: &[&str] = Rejection::LABELS;
/// Reasons a gossip message is refused before it reaches the replica or mempool.
pub const GOSSIP_REASONS: &[&str] = &["too_large", "decode", "invalid", "wrong_shard", "queue_full"];

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// Committed height.
    pub height: Family<ShardLabel, Gauge>,
    /// Current consensus view at the height being decided.
    pub view: Family<ShardLabel, Gauge>,
    /// Views entered above 0 (each one a view change).
    pub view_changes: Family<ShardLabel, Counter>,
    /// Members left out of the leader rotation for failed turns.
    pub benched: Family<ShardLabel, Gauge>,
    /// The base fee the shard's next block charges, in units.
    pub base_fee: Family<ShardLabel, Gauge>,
    /// Senders the intake breaker refuses now.
    pub throttled: Family<ShardLabel, Gauge>,
    /// Clients (IP addresses) the intake breaker refuses now.
    pub throttled_clients: Family<ShardLabel, Gauge>,
    /// 1 while this validator has quarantined itself on the shard.
    pub quarantined: Family<ShardLabel, Gauge>,
    /// From entering a height to committing it.
    pub commit_latency: Family<ShardLabel, Histogram>,
    /// Transactions per committed block.
    pub block_txs: Family<ShardLabel, Histogram>,
    /// Encoded bytes per committed block.
    pub block_bytes: Family<ShardLabel, Histogram>,
    /// Transactions committed.
    pub committed_txs: Family<ShardLabel, Counter>,
    /// Transactions in the mempool.
    pub mempool_txs: Family<ShardLabel, Gauge>,
    /// Bytes in the mempool.
    pub mempool_bytes: Family<ShardLabel, Gauge>,
    /// Transactions refused by the mempool, by reason.
    pub mempool_rejected: Family<ReasonLabel, Counter>,
    /// Connected peers.
    pub peers: Gauge,
    /// Gossip messages received, by shard and topic.
    pub gossip_in: Family<TopicLabel, Counter>,
    /// Gossip messages published, by shard and topic.
    pub gossip_out: Family<TopicLabel, Counter>,
    /// Gossip messages refused, by shard, topic and reason.
    pub gossip_rejected: Family<TopicReasonLabel, Counter>,
    /// Blocks committed through sync (not through this node's own votes).
    pub sync_blocks: Family<ShardLabel, Counter>,
    /// Highest height a peer reported for the shard (sync target).
    pub sync_target: Family<ShardLabel, Gauge>,
    /// Evidence of equivocation detected.
    pub evidence: Family<ShardLabel, Counter>,
    /// Validators slashed and jailed by committed blocks.
    pub slashed: Family<ShardLabel, Counter>,
    /// Receipts from other shards waiting to be credited here.
    pub receipts_pooled: Family<ShardLabel, Gauge>,
    /// Receipts from other shards credited by blocks committed here.
    pub receipts_credited: Family<ShardLabel, Counter>,
    /// Receipts this shard's committed blocks emitted for other shards.
    pub receipts_emitted: Family<ShardLabel, Counter>,
    /// JSON-RPC calls, by method.
    pub rpc_requests: Family<MethodLabel, Counter>,
    /// JSON-RPC calls refused by the per-client rate limit.
    pub rpc_rate_limited: Counter,
    /// 1 while the shard is healthy here, as `/health` says.
    pub healthy: Family<ShardLabel, Gauge>,
    /// Committee members heard within a leader timeout, this node included.
    pub validators_heard: Family<ShardLabel, Gauge>,
}

fn latency_buckets() -> Histogram {
    // 5 ms .. ~20 s.
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0])
}

fn count_buckets() -> Histogram {
    Histogram::new([0.0, 1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0])
}

fn byte_buckets() -> Histogram {
    Histogram::new([256.0, 1024.0, 16_384.0, 131_072.0, 1_048_576.0, 4_194_304.0, 16_777_216.0])
}

impl Metrics {
    /// Registers every metric and creates the per-shard series for `shards`.
    pub fn new(shards: impl IntoIterator<Item = u32>) -> Metrics {
        let mut registry = Registry::with_prefix("palisade");
        let metrics = Metrics {
            height: Family::default(),
            view: Family::default(),
            view_changes: Family::default(),
            benched: Family::default(),
            base_fee: Family::default(),
            throttled: Family::default(),
            throttled_clients: Family::default(),
            quarantined: Family::default(),
            commit_latency: Family::new_with_constructor(latency_buckets),
            block_txs: Family::new_with_constructor(count_buckets),
            block_bytes: Family::new_with_constructor(byte_buckets),
            committed_txs: Family::default(),
            mempool_txs: Family::default(),
            mempool_bytes: Family::default(),
            mempool_rejected: Family::default(),
            peers: Gauge::default(),
            gossip_in: Family::default(),
            gossip_out: Family::default(),
            gossip_rejected: Family::default(),
            sync_blocks: Family::default(),
            sync_target: Family::default(),
            evidence: Family::default(),
            slashed: Family::default(),
            receipts_pooled: Family::default(),
            receipts_credited: Family::default(),
            receipts_emitted: Family::default(),
            rpc_requests: Family::default(),
            rpc_rate_limited: Counter::default(),
            healthy: Family::default(),
            validators_heard: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("shard_height", "Committed height", metrics.height.clone());
        r.register("shard_view", "Consensus view at the height being decided", metrics.view.clone());
        r.register("view_changes", "Views entered above view 0", metrics.view_changes.clone());
        r.register(
            "benched_validators",
            "Committee members left out of the leader rotation for failing their recent turns",
            metrics.benched.clone(),
        );
        r.register(
            "base_fee_units",
            "The base fee the shard's next block charges, in units (rises while blocks are over target)",
            metrics.base_fee.clone(),
        );
        r.register(
            "throttled_senders",
            "Senders whose submissions the intake breaker refuses now (ten times over their usual rate)",
            metrics.throttled.clone(),
        );
        r.register(
            "throttled_clients",
            "Client addresses whose submissions the intake breaker refuses now (ten times over their usual rate)",
            metrics.throttled_clients.clone(),
        );
        r.register(
            "quarantined",
            "1 while this validator withholds its votes on the shard because it cannot trust its state, clock or disk",
            metrics.quarantined.clone(),
        );
        r.register(
            "commit_latency_seconds",
            "Time from entering a height to committing it",
            metrics.commit_latency.clone(),
        );
        r.register("block_txs", "Transactions per committed block", metrics.block_txs.clone());
        r.register("block_bytes", "Encoded bytes per committed block", metrics.block_bytes.clone());
        r.register("committed_txs", "Transactions committed", metrics.committed_txs.clone());
        r.register("mempool_txs", "Transactions in the mempool", metrics.mempool_txs.clone());
        r.register("mempool_bytes", "Encoded bytes in the mempool", metrics.mempool_bytes.clone());
        r.register("mempool_rejected", "Transactions refused by the mempool", metrics.mempool_rejected.clone());
        r.register("peers", "Connected libp2p peers", metrics.peers.clone());
        r.register("gossip_messages_in", "Gossip messages received", metrics.gossip_in.clone());
        r.register("gossip_messages_out", "Gossip messages published", metrics.gossip_out.clone());
        r.register("gossip_rejected", "Gossip messages refused", metrics.gossip_rejected.clone());
        r.register("sync_blocks", "Blocks committed through sync", metrics.sync_blocks.clone());
        r.register("sync_target_height", "Highest height peers reported", metrics.sync_target.clone());
        r.register("evidence", "Equivocation evidence detected", metrics.evidence.clone());
        r.register("slashed", "Validators slashed and jailed by committed blocks", metrics.slashed.clone());
        r.register(
            "receipts_pooled",
            "Receipts from other shards waiting to be credited",
            metrics.receipts_pooled.clone(),
        );
        r.register("receipts_credited", "Receipts from other shards credited", metrics.receipts_credited.clone());
        r.register("receipts_emitted", "Receipts emitted for other shards", metrics.receipts_emitted.clone());
        r.register("rpc_requests", "JSON-RPC calls by method", metrics.rpc_requests.clone());
        r.register("rpc_rate_limited", "JSON-RPC calls refused by the rate limit", metrics.rpc_rate_limited.clone());
        r.register("shard_healthy", "1 while the shard is healthy here, as /health says", metrics.healthy.clone());
        r.register(
            "validators_heard",
            "Committee members heard within a leader timeout, this node included",
            metrics.validators_heard.clone(),
        );
        let mut metrics = Metrics { registry, ..metrics };
        for shard in shards {
            metrics.init_shard(shard);
        }
        metrics
    }

    fn init_shard(&mut self, shard: u32) {
        let label = ShardLabel { shard };
        let _ = self.height.get_or_create(&label);
        let _ = self.view.get_or_create(&label);
        let _ = self.view_changes.get_or_create(&label);
        let _ = self.benched.get_or_create(&label);
        let _ = self.base_fee.get_or_create(&label);
        let _ = self.throttled.get_or_create(&label);
        let _ = self.throttled_clients.get_or_create(&label);
        let _ = self.quarantined.get_or_create(&label);
        let _ = self.commit_latency.get_or_create(&label);
        let _ = self.block_txs.get_or_create(&label);
        let _ = self.block_bytes.get_or_create(&label);
        let _ = self.committed_txs.get_or_create(&label);
        let _ = self.mempool_txs.get_or_create(&label);
        let _ = self.mempool_bytes.get_or_create(&label);
        let _ = self.sync_blocks.get_or_create(&label);
        let _ = self.sync_target.get_or_create(&label);
        let _ = self.evidence.get_or_create(&label);
        let _ = self.slashed.get_or_create(&label);
        let _ = self.receipts_pooled.get_or_create(&label);
        let _ = self.receipts_credited.get_or_create(&label);
        let _ = self.receipts_emitted.get_or_create(&label);
        let _ = self.healthy.get_or_create(&label);
        let _ = self.validators_heard.get_or_create(&label);
        for reason in MEMPOOL_REASONS {
            let _ = self.mempool_rejected.get_or_create(&ReasonLabel { shard, reason });
        }
        for topic in [Topic::consensus, Topic::txs, Topic::receipts] {
            let _ = self.gossip_in.get_or_create(&TopicLabel { shard, topic });
            let _ = self.gossip_out.get_or_create(&TopicLabel { shard, topic });
            for reason in GOSSIP_REASONS {
                let _ = self.gossip_rejected.get_or_create(&TopicReasonLabel { shard, topic, reason });
            }
        }
    }

    /// Counts a refused gossip message.
    pub fn gossip_refused(&self, shard: u32, kind: TopicKind, reason: &'static str) {
        let _ = self.gossip_rejected.get_or_create(&TopicReasonLabel { shard, topic: kind.into(), reason }).inc();
    }

    /// Sets the health gauges of `health`'s shard.
    pub fn record_health(&self, health: &palisade_ledger::api::ShardHealth) {
        let label = ShardLabel { shard: health.shard };
        self.healthy.get_or_create(&label).set(i64::from(health.healthy));
        self.validators_heard.get_or_create(&label).set(i64::try_from(health.validators_heard).unwrap_or(i64::MAX));
    }

    /// Prometheus text exposition (OpenMetrics format).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
