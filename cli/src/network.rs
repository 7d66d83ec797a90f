//! The network the wallet talks to: the genesis it trusts, and which node
//! answers for which shard.
//!
//! The genesis is `--genesis` / `$PALISADE_GENESIS` / the config's `genesis`,
//! else the dev network's genesis.json built into the binary. Nothing about
//! trust is fetched from a node: before the first call to a node the wallet
//! checks that the node's genesis hash is the one in use, and refuses to go
//! on otherwise.
//!
//! Nodes only answer for the shards they run. An explicit `--node` /
//! `$PALISADE_NODE` answers for everything. Otherwise the config's `node`
//! and `[shard_nodes]` apply; with no node configured at all, the wallet
//! assumes the local testnet's layout (`palisade-testnet up`, base port
//! 27000): shard `s` is asked at the RPC port of its first validator.

use std::collections::BTreeMap;
use std::path::Path;

use palisade_ledger::api::StatusResponse;
use palisade_ledger::api::client::Client;
use palisade_ledger::{Genesis, Hash, ShardId};

use crate::config::{Config, DEFAULT_NODE, LOCAL_TESTNET_BASE_PORT};
use crate::error::{GenesisMismatch, Result, WalletError};

/// The committed dev genesis (the local testnet's), built in.
pub const BUILTIN_GENESIS: &str = include_str!("../../genesis.json");
/// How the built-in genesis is named in messages.
pub const BUILTIN_GENESIS_NAME: &str = "the built-in dev genesis";

/// The genesis in use and where it came from.
#[derive(Clone, Debug)]
pub struct LoadedGenesis {
    /// The document.
    pub genesis: Genesis,
    /// Its hash.
    pub hash: Hash,
    /// A path, or [`BUILTIN_GENESIS_NAME`].
    pub source: String,
}

impl LoadedGenesis {
    /// Loads and validates `path`, or the built-in genesis.
    pub fn load(path: Option<&Path>) -> Result<LoadedGenesis> {
        let (genesis, source) = match path {
            Some(path) => {
                let source = path.display().to_string();
                let (genesis, _warnings) = Genesis::load(path)
                    .map_err(|e| WalletError::Genesis { source_name: source.clone(), reason: e.to_string() })?;
                (genesis, source)
            }
            None => {
                let (genesis, _warnings) = Genesis::from_json(BUILTIN_GENESIS).map_err(|e| WalletError::Genesis {
                    source_name: BUILTIN_GENESIS_NAME.into(),
                    reason: e.to_string(),
                })?;
                (genesis, BUILTIN_GENESIS_NAME.to_string())
            }
        };
        Ok(LoadedGenesis { hash: genesis.hash(), genesis, source })
    }
}

/// How shard nodes were chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// `--node` / `$PALISADE_NODE`: one node for everything.
    Explicit,
    /// The config file's `node` and `[shard_nodes]`.
    Configured,
    /// Nothing configured: the local testnet's default ports.
    LocalTestnet,
}

/// Which node answers for which shard.
#[derive(Clone, Debug)]
pub struct Nodes {
    default: String,
    shards: BTreeMap<ShardId, String>,
    routing: Routing,
}

impl Nodes {
    /// The routing for `explicit` (flag or environment), else `config`,
    /// else the local testnet layout of `genesis`.
    pub fn resolve(explicit: Option<String>, config: &Config, genesis: &Genesis) -> Result<Nodes> {
        if let Some(url) = explicit {
            return Ok(Nodes { default: url, shards: BTreeMap::new(), routing: Routing::Explicit });
        }
        let configured = config
            .shard_node_urls()
            .map_err(|reason| WalletError::Config { path: crate::config::CONFIG_FILE.into(), reason })?;
        if config.node.is_some() || !configured.is_empty() {
            let default = config.node.clone().unwrap_or_else(|| DEFAULT_NODE.to_string());
            return Ok(Nodes { default, shards: configured, routing: Routing::Configured });
        }
        let shards = (0..genesis.shard_count).filter_map(|s| Some((s, local_testnet_url(genesis, s)?))).collect();
        Ok(Nodes { default: DEFAULT_NODE.to_string(), shards, routing: Routing::LocalTestnet })
    }

    /// The node asked about `shard`.
    pub fn url(&self, shard: ShardId) -> &str {
        self.shards.get(&shard).unwrap_or(&self.default)
    }

    /// The default node.
    pub fn default_url(&self) -> &str {
        &self.default
    }

    /// Every node, the default first, each once.
    pub fn all(&self) -> Vec<String> {
        let mut urls = vec![self.default.clone()];
        for url in self.shards.values() {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }

    /// How they were chosen.
    pub fn routing(&self) -> Routing {
        self.routing
    }
}

/// The RPC URL `palisade-testnet up` gives the first validator of `shard`:
/// validators are numbered in genesis order, and validator `i`'s RPC port is
/// `27000 + 3i + 1`.
pub fn local_testnet_url(genesis: &Genesis, shard: ShardId) -> Option<String> {
    let mut index = 0usize;
    for committee in &genesis.committees {
        if committee.shard == shard {
            let offset = u16::try_from(index).ok()?.checked_mul(3)?.checked_add(1)?;
            return Some(format!("http://127.0.0.1:{}", LOCAL_TESTNET_BASE_PORT.checked_add(offset)?));
        }
        index = index.checked_add(committee.validators.len())?;
    }
    None
}

/// Clients for the nodes, each checked to run the genesis in use.
pub struct Network {
    genesis: LoadedGenesis,
    nodes: Nodes,
    clients: BTreeMap<String, Client>,
    statuses: BTreeMap<String, StatusResponse>,
}

impl Network {
    /// A network of `nodes` that must run `genesis`.
    pub fn new(genesis: LoadedGenesis, nodes: Nodes) -> Network {
        Network { genesis, nodes, clients: BTreeMap::new(), statuses: BTreeMap::new() }
    }

    /// The genesis in use.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis.genesis
    }

    /// The genesis in use, with its hash and source.
    pub fn loaded_genesis(&self) -> &LoadedGenesis {
        &self.genesis
    }

    /// The node routing.
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// The shard `address` lives in.
    pub fn shard_of(&self, address: &palisade_ledger::Address) -> ShardId {
        address.shard(self.genesis.genesis.shard_count)
    }

    /// A client for `url`, after checking (once) that it runs our genesis.
    pub async fn client(&mut self, url: &str) -> Result<Client> {
        self.status(url).await?;
        self.clients.get(url).cloned().ok_or_else(|| WalletError::NotFound(format!("no client for {url}")))
    }

    /// A client for the node that answers for `shard`.
    pub async fn for_shard(&mut self, shard: ShardId) -> Result<Client> {
        let url = self.nodes.url(shard).to_string();
        self.client(&url).await
    }

    /// `url`'s status (fetched once), after checking its genesis.
    pub async fn status(&mut self, url: &str) -> Result<StatusResponse> {
        if let Some(status) = self.statuses.get(url) {
            return Ok(status.clone());
        }
        let client = match self.clients.get(url) {
            Some(client) => client.clone(),
            None => {
                let client = Client::new(url)?;
                self.clients.insert(url.to_string(), client.clone());
                client
            }
        };
        let status = client.status().await?;
        if status.genesis_hash != self.genesis.hash || status.chain_id != self.genesis.genesis.chain_id {
            return Err(WalletError::GenesisMismatch(Box::new(GenesisMismatch {
                url: url.to_string(),
                node_chain: status.chain_id,
                node_hash: status.genesis_hash,
                source_name: self.genesis.source.clone(),
                our_chain: self.genesis.genesis.chain_id.clone(),
                our_hash: self.genesis.hash,
            })));
        }
        self.statuses.insert(url.to_string(), status.clone());
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_built_in_genesis_is_the_dev_network() {
        let loaded = LoadedGenesis::load(None).unwrap();
        assert!(loaded.genesis.is_dev_chain());
        assert_eq!(loaded.genesis, Genesis::dev(loaded.genesis.shard_count, 4));
    }

    #[test]
    fn the_local_testnet_layout_matches_palisade_testnet_up() {
        // 4 shards of 4: shard s starts at validator 4s, RPC port 27000 + 3 * 4s + 1.
        let genesis = Genesis::dev(4, 4);
        assert_eq!(local_testnet_url(&genesis, 0).unwrap(), DEFAULT_NODE);
        assert_eq!(local_testnet_url(&genesis, 1).unwrap(), "http://127.0.0.1:27013");
        assert_eq!(local_testnet_url(&genesis, 3).unwrap(), "http://127.0.0.1:27037");
        assert_eq!(local_testnet_url(&genesis, 4), None);

        let nodes = Nodes::resolve(None, &Config::default(), &genesis).unwrap();
        assert_eq!(nodes.routing(), Routing::LocalTestnet);
        assert_eq!(nodes.url(2), "http://127.0.0.1:27025");
        let explicit = Nodes::resolve(Some("http://h:1".into()), &Config::default(), &genesis).unwrap();
        assert_eq!(explicit.url(2), "http://h:1");
        let config = Config { node: Some("http://n:1".into()), ..Config::default() };
        let configured = Nodes::resolve(None, &config, &genesis).unwrap();
        assert_eq!((configured.url(3), configured.all().len()), ("http://n:1", 1));
    }
}
