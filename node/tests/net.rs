//! The network task end to end, on loopback: real swarms (TCP, Noise,
//! Yamux, gossipsub, the sync protocol) started with `net::spawn`, each with
//! one local shard whose queues the test reads in place of a shard thread.
//!
//! - gossip reaches peers, and is forwarded only once its shard accepted it;
//! - a sync request is answered by another node's sync server;
//! - an oversized message from a hostile peer is refused, a normal one from
//!   the same peer is not;
//! - a peer whose messages are rejected is disconnected and refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, noise, tcp, yamux};
use palisade_ledger::Hash;
use palisade_node::metrics::{Metrics, TopicLabel, TopicReasonLabel};
use palisade_node::net::{self, COMMAND_QUEUE, NetConfig, NetHandle, Started, SyncServer, Verdict};
use palisade_node::shard::{GossipInput, QueueBounds, ShardQueues, ShardStatus, SyncAnswer, TxInput, shard_channel};
use palisade_node::wire::{
    self, MAX_SYNC_BLOCKS, MAX_TX_GOSSIP_BYTES, SyncRequest, SyncResponse, SyncedBlock, TopicKind,
};
use tokio::sync::{mpsc, watch};

const CHAIN: &str = "net-test";
const SHARD: u32 = 0;
/// Upper bound on any one wait; generous for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// One network task and the shard queues it feeds.
struct Node {
    started: Started,
    net: NetHandle,
    queues: ShardQueues,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
}

struct Options {
    bootstrap: Vec<Multiaddr>,
    max_connections: u32,
    ban_duration: Duration,
    sync_server: SyncServer,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bootstrap: Vec::new(),
            max_connections: 16,
            ban_duration: Duration::from_secs(60),
            sync_server: Arc::new(|request: SyncRequest| SyncResponse::empty(&request)),
        }
    }
}

fn status(shard: u32) -> ShardStatus {
    ShardStatus::initial(shard, 0, Hash::ZERO, 0)
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().expect("valid address")
}

async fn start(options: Options) -> Node {
    let (net, commands) = NetHandle::channel(COMMAND_QUEUE);
    let (handle, queues) = shard_channel(status(SHARD), QueueBounds::default());
    let metrics = Arc::new(Metrics::new([SHARD]));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let config = NetConfig {
        chain_id: CHAIN.to_owned(),
        keypair: Keypair::generate_ed25519(),
        listen: vec![loopback()],
        bootstrap: options.bootstrap,
        shards: vec![SHARD],
        max_consensus_bytes: 64 * 1024,
        max_connections: options.max_connections,
        max_connections_per_peer: 2,
        ban_duration: options.ban_duration,
    };
    let started = net::spawn(
        config,
        commands,
        BTreeMap::from([(SHARD, handle)]),
        options.sync_server,
        metrics.clone(),
        shutdown_rx,
    )
    .await
    .expect("the network starts");
    assert_eq!(started.listen_addrs.len(), 1, "one listen address, bound");
    Node { started, net, queues, metrics, shutdown }
}

impl Node {
    /// Where others reach this node, peer id included.
    fn address(&self) -> Multiaddr {
        self.started.listen_addrs[0].clone().with(Protocol::P2p(self.started.peer_id))
    }

    fn peer_id(&self) -> PeerId {
        self.started.peer_id
    }

    fn peers(&self) -> i64 {
        self.metrics.peers.get()
    }

    fn refused(&self, kind: TopicKind, reason: &'static str) -> u64 {
        self.metrics.gossip_rejected.get_or_create(&TopicReasonLabel { shard: SHARD, topic: kind.into(), reason }).get()
    }

    fn gossip_in(&self, kind: TopicKind) -> u64 {
        self.metrics.gossip_in.get_or_create(&TopicLabel { shard: SHARD, topic: kind.into() }).get()
    }

    /// Consensus messages waiting in the shard's queue.
    fn consensus(&self) -> Vec<GossipInput> {
        self.queues.consensus.try_iter().collect()
    }

    /// Gossiped transactions waiting in the shard's queue.
    fn txs(&self) -> Vec<GossipInput> {
        self.queues
            .txs
            .try_iter()
            .filter_map(|input| match input {
                TxInput::Gossip(gossip) => Some(gossip),
                TxInput::Submit { .. } => None,
            })
            .collect()
    }

    async fn stop(self) {
        self.shutdown.send(true).expect("the task listens");
        tokio::time::timeout(WAIT, self.started.task).await.expect("stops in time").expect("no panic");
    }
}

/// Polls `done` until it holds; fails the test after [`WAIT`].
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Checks for `period` that `holds` keeps holding.
async fn stays(what: &str, period: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < deadline {
        assert!(holds(), "{what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Publishes numbered messages from `from` (one every 200 ms, since its
/// first ones may go out before it knows who subscribed) until `received`
/// returns something; returns that and the number of messages published.
async fn publish_until<T>(from: &Node, kind: TopicKind, tag: &str, mut received: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut next_publish = tokio::time::Instant::now();
    let mut n = 0u32;
    loop {
        if let Some(found) = received() {
            return found;
        }
        let now = tokio::time::Instant::now();
        assert!(now < deadline, "timed out waiting for {tag} messages to arrive");
        if now >= next_publish {
            assert!(from.net.publish(SHARD, kind, format!("{tag}-{n}").into_bytes()), "command queue has room");
            n += 1;
            next_publish = now + Duration::from_millis(200);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn is_tagged(input: &GossipInput, tag: &str) -> bool {
    input.data.starts_with(format!("{tag}-").as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_delivered_and_forwarded_only_once_accepted() {
    // A hub and two leaves that may hold one connection each, so a message
    // from one leaf reaches the other only through the hub.
    let hub = start(Options::default()).await;
    let leaf = |hub: &Node| Options { bootstrap: vec![hub.address()], max_connections: 1, ..Options::default() };
    let b = start(leaf(&hub)).await;
    let c = start(leaf(&hub)).await;
    wait_for("the leaves to connect to the hub", || hub.peers() == 2 && b.peers() == 1 && c.peers() == 1).await;

    // (1) Published by the hub: both leaves get it, straight from the hub.
    let mut at_b = Vec::new();
    let mut at_c = Vec::new();
    publish_until(&hub, TopicKind::Consensus, "from-hub", || {
        at_b.extend(b.consensus());
        at_c.extend(c.consensus());
        (!at_b.is_empty() && !at_c.is_empty()).then_some(())
    })
    .await;
    for input in at_b.iter().chain(&at_c) {
        assert!(is_tagged(input, "from-hub"), "unexpected message {:?}", input.data);
        assert_eq!(input.kind, TopicKind::Consensus);
        assert_eq!(input.source.peer, hub.peer_id());
    }
    assert!(b.gossip_in(TopicKind::Consensus) >= 1);
    // The leaves' shards have no use for them: not forwarded, no penalty.
    for (node, inputs) in [(&b, at_b), (&c, at_c)] {
        for input in inputs {
            assert!(node.net.report(input.source, Verdict::Ignore));
        }
    }

    // (1b) Published by leaf B: the hub gets it and holds it for its
    // shard's verdict; leaf C sees nothing until the hub accepts it.
    let first = publish_until(&b, TopicKind::Consensus, "from-b", || hub.consensus().into_iter().next()).await;
    assert!(is_tagged(&first, "from-b"));
    assert_eq!(first.source.peer, b.peer_id());
    let mut late = Vec::new();
    stays("nothing is forwarded before the verdict", Duration::from_millis(1500), || {
        // Earlier copies B published may still trickle in at the hub:
        // those are ignored (not forwarded, no penalty).
        late.extend(hub.consensus());
        c.consensus().iter().all(|input| !is_tagged(input, "from-b"))
    })
    .await;
    for input in late.into_iter().chain(hub.consensus()) {
        assert!(hub.net.report(input.source, Verdict::Ignore));
    }
    let accepted = first.data.clone();
    assert!(hub.net.report(first.source, Verdict::Accept));
    let mut forwarded = Vec::new();
    wait_for("the accepted message to be forwarded to C", || {
        forwarded.extend(c.consensus());
        forwarded.iter().any(|input| input.data == accepted)
    })
    .await;
    for input in &forwarded {
        assert_eq!(input.data, accepted, "only the accepted message is forwarded");
        assert_eq!(input.source.peer, hub.peer_id(), "it came through the hub");
    }
    // The hub counts the message it published.
    assert!(
        hub.metrics.gossip_out.get_or_create(&TopicLabel { shard: SHARD, topic: TopicKind::Consensus.into() }).get()
            >= 1
    );

    for node in [hub, b, c] {
        node.stop().await;
    }
}

/// A sync server that serves heights `1..=tip` (the block's bytes are its
/// height) and remembers the requests it saw.
fn serving_tip(tip: u64, seen: Arc<Mutex<Vec<SyncRequest>>>) -> SyncServer {
    Arc::new(move |request: SyncRequest| {
        seen.lock().expect("not poisoned").push(request.clone());
        let last = tip.min(request.from_height.saturating_add(u64::from(request.max_blocks)).saturating_sub(1));
        let blocks = (request.from_height..=last)
            .map(|height| SyncedBlock { block: height.to_le_bytes().to_vec(), certificate: b"cert".to_vec() })
            .collect();
        SyncResponse::blocks(request.shard, tip, blocks)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_request_is_answered_by_a_peer() {
    // Alone, nobody can answer: the shard hears so at once.
    let a = start(Options::default()).await;
    assert!(a.net.sync(SyncRequest { max_blocks: 4, ..SyncRequest::blocks(SHARD, 1) }));
    let mut answer = None;
    wait_for("the answer of a lone node", || {
        answer = a.queues.sync.try_recv().ok();
        answer.is_some()
    })
    .await;
    match answer {
        Some(SyncAnswer { answer: Err(reason), .. }) => {
            assert!(reason.contains("no peer follows shard 0"), "{reason}")
        }
        other => panic!("expected a sync failure, got {other:?}"),
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let b = start(Options {
        bootstrap: vec![a.address()],
        sync_server: serving_tip(100, seen.clone()),
        ..Options::default()
    })
    .await;
    let c = start(Options {
        bootstrap: vec![a.address()],
        sync_server: serving_tip(100, seen.clone()),
        ..Options::default()
    })
    .await;
    wait_for("B and C to connect", || a.peers() == 2).await;

    // Ask (again, while A does not yet know who follows the shard) for far
    // more blocks than a response may carry.
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for a sync answer");
        assert!(a.net.sync(SyncRequest { max_blocks: 1_000, ..SyncRequest::blocks(SHARD, 10) }));
        let mut answer = None;
        wait_for("a sync answer", || {
            answer = a.queues.sync.try_recv().ok();
            answer.is_some()
        })
        .await;
        match answer {
            Some(SyncAnswer { answer: Ok(response), .. }) => break response,
            Some(SyncAnswer { answer: Err(reason), .. }) if reason.contains("no peer follows") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    };
    assert_eq!(response.shard, SHARD);
    assert_eq!(response.tip_height, 100);
    let heights: Vec<u64> =
        response.blocks.iter().map(|b| u64::from_le_bytes(b.block.as_slice().try_into().expect("8 bytes"))).collect();
    assert_eq!(heights, (10..10 + u64::from(MAX_SYNC_BLOCKS)).collect::<Vec<_>>());
    assert!(response.blocks.iter().all(|b| b.certificate == b"cert"));
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 1, "one server was asked once");
    assert_eq!(seen[0], SyncRequest::blocks(SHARD, 10), "capped");

    for node in [a, b, c] {
        node.stop().await;
    }
}

/// A bare gossipsub peer that publishes whatever it is given on the
/// transaction topic of shard 0, whatever its size.
fn hostile_peer(target: Multiaddr) -> mpsc::UnboundedSender<Vec<u8>> {
    let key = Keypair::generate_ed25519();
    // It speaks the node's gossip (no envelope, content ids); only its
    // payloads are hostile.
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m| gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec()))
        .max_transmit_size(1 << 20)
        .build()
        .expect("valid config");
    let behaviour: gossipsub::Behaviour =
        gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).expect("valid behaviour");
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("transport")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = IdentTopic::new(wire::topic(CHAIN, SHARD, TopicKind::Txs));
    swarm.behaviour_mut().subscribe(&topic).expect("subscribes");
    swarm.dial(target).expect("dials");
    let (send, mut to_publish) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut queue = std::collections::VecDeque::new();
        let mut retry = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                data = to_publish.recv() => match data {
                    Some(data) => queue.push_back(data),
                    None => break,
                },
                _ = retry.tick() => {
                    // Until the target's subscription is known, publishing
                    // finds nobody: keep the message and try again.
                    while let Some(data) = queue.front() {
                        if swarm.behaviour_mut().publish(topic.clone(), data.clone()).is_err() {
                            break;
                        }
                        queue.pop_front();
                    }
                }
            }
        }
    });
    send
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gossip_is_refused() {
    let b = start(Options::default()).await;
    let hostile = hostile_peer(b.address());
    let oversized = vec![0xAB; MAX_TX_GOSSIP_BYTES + 1];
    hostile.send(oversized).expect("running");
    hostile.send(b"small enough".to_vec()).expect("running");

    let mut delivered = Vec::new();
    wait_for("the normal message to arrive", || {
        delivered.extend(b.txs());
        delivered.iter().any(|input| input.data == b"small enough")
    })
    .await;
    assert_eq!(b.refused(TopicKind::Txs, "too_large"), 1);
    stays("the oversized message is never delivered", Duration::from_millis(500), || {
        delivered.extend(b.txs());
        delivered.iter().all(|input| input.data.len() <= MAX_TX_GOSSIP_BYTES)
    })
    .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(b.gossip_in(TopicKind::Txs), 1, "only the normal message counts as received");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_messages_are_rejected_is_banned() {
    // A redials B every few seconds; B must keep refusing it.
    let b = start(Options::default()).await;
    let a = start(Options { bootstrap: vec![b.address()], ..Options::default() }).await;
    wait_for("A and B to connect", || a.peers() == 1 && b.peers() == 1).await;

    // B's shard finds every message from A invalid.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut rejected = 0;
    let mut n = 0u32;
    while b.peers() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "A was not disconnected after {rejected} rejected messages");
        if a.peers() > 0 {
            a.net.publish(SHARD, TopicKind::Consensus, format!("bad-{n}").into_bytes());
            n += 1;
        }
        for input in b.consensus() {
            assert_eq!(input.source.peer, a.peer_id());
            assert!(b.net.report(input.source, Verdict::Reject));
            rejected += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rejected >= 3, "banned after {rejected} rejected messages: too eager");
    assert!(rejected <= 10, "banned only after {rejected} rejected messages");

    // Refused for longer than A's redial interval, and nothing of A's gets in.
    stays("B keeps refusing A", Duration::from_secs(6), || {
        let _ = a.net.publish(SHARD, TopicKind::Consensus, b"more".to_vec());
        b.peers() == 0 && b.consensus().is_empty()
    })
    .await;
    for node in [a, b] {
        node.stop().await;
    }
}
