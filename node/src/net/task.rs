//! The swarm loop: one task owns the swarm and serves, one at a time, the
//! node's commands, the swarm's events, finished sync reads, and two timers
//! (peer-score checks and bootstrap redials), until shutdown.
//!
//! Nothing here blocks: shards are reached through `try_send` (a full queue
//! means the message is ignored, not waited for), and sync requests are
//! served on blocking threads, at most [`sync::MAX_SERVING`] at once, their
//! answers coming back to this loop to be sent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId, PublishError};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, kad, noise, tcp, yamux};
use palisade_ledger::ShardId;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, trace, warn};

use super::bans::Bans;
use super::behaviour::{self, Behaviour, BehaviourEvent, KAD_PROTOCOL};
use super::bootstrap::Bootstrap;
use super::scoring::GRAYLIST_THRESHOLD;
use super::sync::{self, Pending, SyncPeers};
use super::topics::Topics;
use super::{Command, CommandReceiver, GossipSource, NetConfig, NetError, Started, SyncServer, Verdict};
use crate::metrics::{Metrics, TopicLabel};
use crate::shard::{GossipInput, ShardHandle, SyncAnswer};
use crate::wire::{SyncRequest, SyncResponse, TopicKind};

/// How long [`spawn`] waits for the listen addresses to be bound.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often peer scores are checked and ended bans lifted.
const SCORE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How often bootstrap addresses whose peer is not connected are redialled.
const REDIAL_INTERVAL: Duration = Duration::from_secs(5);
/// A connection no protocol keeps busy closes after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Listen addresses taken from one identify message.
const MAX_ADDRS_PER_PEER: usize = 8;

/// A sync request served on a blocking thread: where to send the answer, and
/// the answer.
type Served = (ResponseChannel<SyncResponse>, SyncResponse);

/// The state of the network task.
struct NetTask {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    shards: BTreeMap<ShardId, ShardHandle>,
    /// Shards whose blocks we serve.
    served_shards: BTreeSet<ShardId>,
    sync_server: SyncServer,
    metrics: Arc<Metrics>,
    bans: Bans,
    bootstrap: Bootstrap,
    sync_peers: SyncPeers,
    /// Our sync requests waiting for an answer (at most
    /// [`sync::MAX_REQUESTING`]).
    requests: HashMap<OutboundRequestId, Pending>,
    /// Inbound sync requests being served (at most [`sync::MAX_SERVING`]).
    serving: FuturesUnordered<JoinHandle<Served>>,
    protocol_version: String,
    max_connections: u32,
}

/// Starts the network task: builds the swarm, subscribes to the shards'
/// topics, binds the listen addresses (waiting until each is bound), dials
/// the bootstrap peers, and runs until `shutdown` becomes true.
///
/// Inbound gossip goes to `shards` (a shard not in it is not run here: its
/// messages are ignored); sync requests are answered by `sync_server`.
pub async fn spawn(
    config: NetConfig,
    commands: CommandReceiver,
    shards: BTreeMap<ShardId, ShardHandle>,
    sync_server: SyncServer,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Started, NetError> {
    let topics = Topics::new(&config.chain_id, &config.shards, config.max_consensus_bytes);
    let behaviour = Behaviour::new(&config, &topics)?;
    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_| behaviour)
        .unwrap_or_else(|never| match never {})
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    let mut task = NetTask {
        swarm,
        topics,
        shards,
        served_shards: config.shards.iter().copied().collect(),
        sync_server,
        metrics,
        bans: Bans::new(config.ban_duration),
        bootstrap: Bootstrap::new(&config.bootstrap),
        sync_peers: SyncPeers::default(),
        requests: HashMap::new(),
        serving: FuturesUnordered::new(),
        protocol_version: behaviour::protocol_version(&config.chain_id),
        max_connections: config.max_connections,
    };
    let listen_addrs = task.listen(&config.listen).await?;
    task.redial();
    let peer_id = *task.swarm.local_peer_id();
    info!(peer = %peer_id, listen = ?listen_addrs, shards = ?config.shards, "network started");
    let task = tokio::spawn(task.run(commands, shutdown));
    Ok(Started { peer_id, listen_addrs, task })
}

impl NetTask {
    /// Listens on `addresses` and waits until each is bound.
    async fn listen(&mut self, addresses: &[Multiaddr]) -> Result<Vec<Multiaddr>, NetError> {
        let mut waiting = HashMap::new();
        for address in addresses {
            let id = self
                .swarm
                .listen_on(address.clone())
                .map_err(|e| NetError::Listen { address: address.clone(), reason: e.to_string() })?;
            waiting.insert(id, address.clone());
        }
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        let mut bound = Vec::with_capacity(addresses.len());
        while !waiting.is_empty() {
            let Ok(event) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await else {
                let address = waiting.into_values().next().unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen { address, reason: format!("not bound within {LISTEN_TIMEOUT:?}") });
            };
            match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    waiting.remove(&listener_id);
                    bound.push(address);
                }
                SwarmEvent::ListenerError { listener_id, error } if waiting.contains_key(&listener_id) => {
                    let address = waiting.remove(&listener_id).unwrap_or_else(Multiaddr::empty);
                    return Err(NetError::Listen { address, reason: error.to_string() });
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } if waiting.contains_key(&listener_id) => {
                    let address = waiting.remove(&listener_id).unwrap_or_else(Multiaddr::empty);
                    let reason = match reason {
                        Ok(()) => "closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    return Err(NetError::Listen { address, reason });
                }
                other => self.on_swarm_event(other),
            }
        }
        Ok(bound)
    }

    async fn run(mut self, mut commands: CommandReceiver, mut shutdown: watch::Receiver<bool>) {
        let mut score_check = tokio::time::interval(SCORE_CHECK_INTERVAL);
        score_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick of each is immediate; bootstrap was dialled already.
        redial.reset();
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // Whoever could signal shutdown is gone.
                        break;
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        info!("the network's command queue closed");
                        break;
                    }
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(served) = self.serving.next(), if !self.serving.is_empty() => self.on_served(served),
                _ = score_check.tick() => self.check_scores(),
                _ = redial.tick() => self.redial(),
            }
        }
        info!("network stopped");
    }

    // ----- commands from the node -------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { shard, kind, data } => self.publish(shard, kind, data),
            Command::Report { source, verdict } => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                };
                self.report(&source.message_id, &source.peer, acceptance);
            }
            Command::Sync(request) => self.request_sync(request),
        }
    }

    fn report(&mut self, message_id: &MessageId, peer: &PeerId, acceptance: MessageAcceptance) {
        // False when the message already left gossipsub's cache (a late
        // verdict): nothing more to do then.
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(message_id, peer, acceptance);
    }

    fn publish(&mut self, shard: ShardId, kind: TopicKind, data: Vec<u8>) {
        let limit = self.topics.limit(kind);
        if data.len() > limit {
            // Honest peers would reject it and score us down for it.
            warn!(shard, topic = kind.label(), bytes = data.len(), limit, "not publishing an oversized message");
            return;
        }
        let topic = self.topics.hash(shard, kind);
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => {
                self.metrics.gossip_out.get_or_create(&TopicLabel { shard, topic: kind.into() }).inc();
            }
            Err(e @ (PublishError::NoPeersSubscribedToTopic | PublishError::Duplicate)) => {
                debug!(shard, topic = kind.label(), error = %e, "not published");
            }
            Err(e) => warn!(shard, topic = kind.label(), error = %e, "cannot publish"),
        }
    }

    /// Asks a peer that runs `request.shard`; the answer goes to the shard
    /// that asked ([`SyncRequest::asker`]: the same shard for blocks, the
    /// destination for a receipt scan of another shard).
    fn request_sync(&mut self, request: SyncRequest) {
        let (shard, asker) = (request.shard, request.asker());
        if !self.shards.contains_key(&asker) {
            debug!(shard = asker, "sync asked for by a shard not run here");
            return;
        }
        if self.requests.len() >= sync::MAX_REQUESTING {
            self.deliver(&request, Err("too many sync requests in flight".to_owned()));
            return;
        }
        let topic = self.topics.hash(shard, TopicKind::Consensus);
        let candidates: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(peer, topics)| topics.contains(&&topic) && !self.bans.is_banned(peer))
            .map(|(peer, _)| *peer)
            .collect();
        let Some(peer) = self.sync_peers.pick(candidates, Instant::now()) else {
            self.deliver(&request, Err(format!("no peer follows shard {shard}")));
            return;
        };
        let request = SyncRequest { max_blocks: request.cap(), ..request };
        debug!(peer = %peer, shard, from_height = request.from_height, "asking for blocks");
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request.clone());
        self.requests.insert(id, Pending { request });
    }

    /// Hands a sync answer to the shard that asked.
    fn deliver(&self, request: &SyncRequest, answer: Result<SyncResponse, String>) {
        let shard = request.asker();
        if let Some(handle) = self.shards.get(&shard)
            && let Err(e) = handle.synced(SyncAnswer { request: request.clone(), answer })
        {
            debug!(shard, error = %e, "sync answer dropped");
        }
    }

    // ----- swarm events -----------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                self.bootstrap.established(connection_id, peer_id);
                debug!(peer = %peer_id, address = %endpoint.get_remote_address(), connections = num_established.get(), "connected");
                self.count_peers();
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                debug!(peer = %peer_id, connections = num_established, cause = ?cause, "connection closed");
                self.count_peers();
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                self.bootstrap.failed(connection_id, matches!(error, DialError::LocalPeerId { .. }));
                debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(address = %send_back_addr, error = %error, "inbound connection failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ExpiredListenAddr { address, .. } => info!(%address, "no longer listening"),
            SwarmEvent::ListenerError { error, .. } => warn!(error = %error, "listener error"),
            SwarmEvent::ListenerClosed { addresses, reason, .. } => {
                warn!(addresses = ?addresses, reason = ?reason, "listener closed");
            }
            _ => {}
        }
    }

    fn count_peers(&self) {
        let peers = self.swarm.connected_peers().count();
        self.metrics.peers.set(i64::try_from(peers).unwrap_or(i64::MAX));
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossipsub(event),
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Identify(event) => self.on_identify(event),
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Ping(_) | BehaviourEvent::BlockList(_) | BehaviourEvent::Limits(_) => {}
        }
    }

    // ----- gossip -----------------------------------------------------------------

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                self.on_gossip(propagation_source, message_id, message);
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                debug!(peer = %peer_id, "peer does not speak gossipsub");
            }
            other => trace!(event = ?other, "gossipsub"),
        }
    }

    /// A message to validate: size-check it against its kind's limit, then
    /// hand it to its shard, whose verdict comes back as a `Report`.
    fn on_gossip(&mut self, peer: PeerId, message_id: MessageId, message: gossipsub::Message) {
        let Some((shard, kind)) = self.topics.lookup(&message.topic) else {
            // Gossipsub only delivers topics we subscribed to.
            self.report(&message_id, &peer, MessageAcceptance::Ignore);
            return;
        };
        let limit = self.topics.limit(kind);
        if message.data.len() > limit {
            debug!(peer = %peer, shard, topic = kind.label(), bytes = message.data.len(), limit, "oversized gossip");
            self.metrics.gossip_refused(shard, kind, "too_large");
            self.report(&message_id, &peer, MessageAcceptance::Reject);
            return;
        }
        self.metrics.gossip_in.get_or_create(&TopicLabel { shard, topic: kind.into() }).inc();
        let Some(handle) = self.shards.get(&shard) else {
            self.report(&message_id, &peer, MessageAcceptance::Ignore);
            return;
        };
        let input = GossipInput { kind, data: message.data, source: GossipSource { message_id, peer } };
        let Err(refused) = handle.gossip(input) else { return };
        match *refused {
            TrySendError::Full(input) => {
                debug!(peer = %peer, shard, topic = kind.label(), "shard queue full; message ignored");
                self.metrics.gossip_refused(shard, kind, "queue_full");
                self.report(&input.source.message_id, &peer, MessageAcceptance::Ignore);
            }
            TrySendError::Disconnected(input) => {
                debug!(peer = %peer, shard, "shard stopped; message ignored");
                self.report(&input.source.message_id, &peer, MessageAcceptance::Ignore);
            }
        }
    }

    // ----- sync -------------------------------------------------------------------

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.serve_sync(peer, request, channel),
                request_response::Message::Response { request_id, response } => {
                    let Some(pending) = self.requests.remove(&request_id) else { return };
                    let shard = pending.request.shard;
                    let answer = match response.check(&pending.request) {
                        Ok(()) => {
                            self.sync_peers.succeeded(&peer);
                            Ok(response)
                        }
                        Err(e) => {
                            debug!(peer = %peer, shard, error = %e, "bad sync response");
                            self.sync_peers.failed(peer, Instant::now());
                            Err(format!("peer {peer}: {e}"))
                        }
                    };
                    self.deliver(&pending.request, answer);
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                let Some(pending) = self.requests.remove(&request_id) else { return };
                let shard = pending.request.shard;
                debug!(peer = %peer, shard, error = %error, "sync request failed");
                self.sync_peers.failed(peer, Instant::now());
                self.deliver(&pending.request, Err(format!("sync request to {peer} failed: {error}")));
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(peer = %peer, error = %error, "serving a sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// An inbound request: checked, then read from the store on a blocking
    /// thread if one of the serving slots is free, else answered empty.
    fn serve_sync(&mut self, peer: PeerId, request: SyncRequest, channel: ResponseChannel<SyncResponse>) {
        let shard = request.shard;
        let empty = SyncResponse::empty(&request);
        match request.admit(|shard| self.served_shards.contains(&shard)) {
            Err(reason) => {
                debug!(peer = %peer, shard, reason, "sync request refused");
                self.respond(channel, empty);
            }
            Ok(_) if self.serving.len() >= sync::MAX_SERVING => {
                debug!(peer = %peer, shard, "busy serving sync requests; answering empty");
                self.respond(channel, empty);
            }
            Ok(request) => {
                trace!(peer = %peer, shard, from_height = request.from_height, "serving blocks");
                let server = Arc::clone(&self.sync_server);
                self.serving.push(tokio::task::spawn_blocking(move || {
                    let mut response = server(request.clone());
                    sync::trim(&mut response, &request);
                    (channel, response)
                }));
            }
        }
    }

    fn on_served(&mut self, served: Result<Served, JoinError>) {
        match served {
            Ok((channel, response)) => self.respond(channel, response),
            // The channel went down with the thread; the peer sees the
            // stream close and asks someone else.
            Err(e) => error!(error = %e, "the sync server failed"),
        }
    }

    fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
            debug!("sync response dropped: the request timed out or its connection closed");
        }
    }

    // ----- discovery --------------------------------------------------------------

    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else { return };
        if info.protocol_version != self.protocol_version {
            debug!(peer = %peer_id, version = %info.protocol_version, "peer is on another network; disconnecting");
            self.swarm.behaviour_mut().kad.remove_peer(&peer_id);
            let _ = self.swarm.disconnect_peer_id(peer_id);
            return;
        }
        if info.protocols.contains(&KAD_PROTOCOL) {
            for address in info.listen_addrs.into_iter().take(MAX_ADDRS_PER_PEER) {
                self.swarm.behaviour_mut().kad.add_address(&peer_id, address);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, is_new_peer: true, .. } => self.dial_discovered(peer),
            kad::Event::OutboundQueryProgressed { result: kad::QueryResult::Bootstrap(result), .. } => {
                trace!(result = ?result, "kademlia bootstrap");
            }
            _ => {}
        }
    }

    /// Connects to a peer Kademlia found, while we have room.
    fn dial_discovered(&mut self, peer: PeerId) {
        let connected = self.swarm.network_info().num_peers();
        if self.swarm.is_connected(&peer)
            || self.bans.is_banned(&peer)
            || u32::try_from(connected).unwrap_or(u32::MAX) >= self.max_connections
        {
            return;
        }
        let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(peer = %peer, error = %e, "cannot dial discovered peer");
        }
    }

    fn redial(&mut self) {
        let due = self.bootstrap.due(|peer| self.swarm.is_connected(peer), |peer| self.bans.is_banned(peer));
        for (index, address) in due {
            let opts = DialOpts::unknown_peer_id().address(address.clone()).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => self.bootstrap.dialling(index, id),
                Err(e) => debug!(%address, error = %e, "cannot dial bootstrap address"),
            }
        }
    }

    // ----- bans -------------------------------------------------------------------

    /// Lifts ended bans, and bans connected peers whose score fell below the
    /// graylist threshold.
    fn check_scores(&mut self) {
        let now = Instant::now();
        for peer in self.bans.expire(now) {
            self.swarm.behaviour_mut().block_list.unblock_peer(peer);
            info!(peer = %peer, "ban ended");
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let graylisted: Vec<(PeerId, f64)> = self
            .swarm
            .connected_peers()
            .filter_map(|peer| {
                gossipsub.peer_score(peer).filter(|score| *score < GRAYLIST_THRESHOLD).map(|s| (*peer, s))
            })
            .collect();
        for (peer, score) in graylisted {
            self.ban(peer, score, now);
        }
    }

    fn ban(&mut self, peer: PeerId, score: f64, now: Instant) {
        warn!(
            peer = %peer,
            score,
            ban_secs = self.bans.duration().as_secs(),
            "peer score below the graylist threshold: disconnecting and refusing it"
        );
        if let Some(lifted) = self.bans.ban(peer, now) {
            self.swarm.behaviour_mut().block_list.unblock_peer(lifted);
        }
        let behaviour = self.swarm.behaviour_mut();
        // Closes its connections and refuses new ones until unblocked.
        behaviour.block_list.block_peer(peer);
        behaviour.kad.remove_peer(&peer);
    }
}
