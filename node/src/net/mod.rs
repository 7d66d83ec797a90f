//! The network task: one libp2p swarm per node (TCP + Noise + Yamux,
//! identify, ping, Kademlia discovery, gossipsub, and the block-sync
//! request-response protocol).
//!
//! Other parts reach it only through a [`NetHandle`], whose commands queue is
//! bounded and never blocks the sender. Inbound gossip is size-checked here
//! and handed to the owning shard's queue ([`crate::shard::ShardHandle`]); the
//! shard decodes and verifies it and reports a [`Verdict`] back, which
//! gossipsub turns into peer scores (invalid messages penalise the sender,
//! which is disconnected and refused for a while once its score falls below
//! the threshold). Messages are forwarded to other peers only once accepted.
//!
//! Modules, each owning one thing:
//! - `task`: the swarm loop ([`spawn`] starts it);
//! - `behaviour`: which libp2p behaviours run and how they are configured;
//! - `topics`: topic names and hashes, and each kind's size limit;
//! - `scoring`: gossipsub peer-score weights and thresholds;
//! - `bans`: peers refused for a while;
//! - `bootstrap`: the addresses dialled until their peer is connected;
//! - `sync`: the block-sync protocol (codec, limits, choosing peers).

mod bans;
mod behaviour;
mod bootstrap;
mod scoring;
mod sync;
mod task;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use palisade_ledger::ShardId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wire::{SyncRequest, SyncResponse, TopicKind};

/// Default capacity of the network's command queue.
pub const COMMAND_QUEUE: usize = 8_192;

/// Identifies a received gossip message, to report its verdict.
#[derive(Clone, Debug)]
pub struct GossipSource {
    /// Gossipsub's id of the message.
    pub message_id: MessageId,
    /// The peer that forwarded it to us.
    pub peer: PeerId,
}

/// A shard's verdict on a gossip message (its core's).
pub use palisade_shard_core::Verdict;

/// What the rest of the node asks of the network task.
#[derive(Debug)]
pub enum Command {
    /// Publish on a shard's topic.
    Publish {
        /// The shard.
        shard: ShardId,
        /// Which of its topics.
        kind: TopicKind,
        /// The encoded message.
        data: Vec<u8>,
    },
    /// Report the verdict on a received message.
    Report {
        /// The message.
        source: GossipSource,
        /// The verdict.
        verdict: Verdict,
    },
    /// Ask a peer that follows the shard for blocks; the answer goes to the
    /// shard's control queue ([`crate::shard::ShardHandle::synced`]).
    Sync(SyncRequest),
}

/// The sending end of the network's command queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
}

/// The receiving end, handed to the network task.
pub type CommandReceiver = mpsc::Receiver<Command>;

impl NetHandle {
    /// A handle and the queue it feeds, holding at most `capacity` commands.
    pub fn channel(capacity: usize) -> (NetHandle, CommandReceiver) {
        let (commands, receiver) = mpsc::channel(capacity);
        (NetHandle { commands }, receiver)
    }

    /// Queues `command`; false if the queue is full or the task stopped (the
    /// caller counts it; consensus retransmits through view changes and sync).
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Publishes `data` on a shard's topic.
    pub fn publish(&self, shard: ShardId, kind: TopicKind, data: Vec<u8>) -> bool {
        self.send(Command::Publish { shard, kind, data })
    }

    /// Reports a verdict on a received message.
    pub fn report(&self, source: GossipSource, verdict: Verdict) -> bool {
        self.send(Command::Report { source, verdict })
    }

    /// Asks peers for blocks.
    pub fn sync(&self, request: SyncRequest) -> bool {
        self.send(Command::Sync(request))
    }
}

/// How the network task is set up.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The chain id: part of every topic name and of the identify protocol
    /// version, so two networks never mix.
    pub chain_id: String,
    /// This node's libp2p identity (ed25519).
    pub keypair: libp2p::identity::Keypair,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Dialled at start, and redialled periodically while not connected.
    pub bootstrap: Vec<Multiaddr>,
    /// Shards this node runs: it subscribes to both topics of each, and
    /// serves sync requests for them.
    pub shards: Vec<ShardId>,
    /// Largest consensus gossip message accepted (transactions are held to
    /// [`crate::wire::MAX_TX_GOSSIP_BYTES`]).
    pub max_consensus_bytes: usize,
    /// Established connections, inbound and outbound together.
    pub max_connections: u32,
    /// Established connections to one peer.
    pub max_connections_per_peer: u32,
    /// How long a peer whose gossipsub score fell below the graylist
    /// threshold is refused.
    pub ban_duration: Duration,
}

/// Answers a sync request from the local store. Called on a blocking thread.
pub type SyncServer = Arc<dyn Fn(SyncRequest) -> SyncResponse + Send + Sync>;

/// A running network task.
#[derive(Debug)]
pub struct Started {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// The addresses actually bound (port 0 resolved).
    pub listen_addrs: Vec<Multiaddr>,
    /// The task; it ends once shutdown is signalled.
    pub task: JoinHandle<()>,
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport (TCP + Noise + Yamux) could not be built.
    #[error("transport: {0}")]
    Transport(#[from] libp2p::noise::Error),
    /// A behaviour's configuration was refused.
    #[error("{0}")]
    Setup(String),
    /// Cannot listen on an address.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
}

pub use task::spawn;
