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
//! and `[shard_nodes]` (one URL or a list per shard) apply; with no node
//! configured at all, the wallet assumes the local testnet's layout
//! (`palisade-testnet up` at its default base port, see
//! `palisade_ledger::api::local`): shard `s` is asked at the RPC ports of
//! its validators, the first one first.
//!
//! Of a shard's nodes, the wallet asks first one that is up and calls the
//! shard healthy (its `palisade_status`), and moves on to the next when a
//! node goes down under a call ([`Route`]).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;

use palisade_ledger::api::StatusResponse;
use palisade_ledger::api::client::Client;
use palisade_ledger::api::local::{BASE_PORT, shard_rpc_urls};
use palisade_ledger::api::route::Route;
use palisade_ledger::{Address, Genesis, Hash, ShardId};

use crate::config::{Config, DEFAULT_NODE};
use crate::error::{GenesisMismatch, Result, WalletError};

/// The committed dev genesis (the local testnet's), built in.
pub const BUILTIN_GENESIS: &str = include_str!("../../genesis.json");
/// How the built-in genesis is named in messages.
pub const BUILTIN_GENESIS_NAME: &str = "the built-in dev genesis";

/// The genesis in use and where it came from. Not hashed: commands that
/// only need the shard count never pay for it; [`Network`] hashes it.
#[derive(Clone, Debug)]
pub struct LoadedGenesis {
    /// The document.
    pub genesis: Genesis,
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
        Ok(LoadedGenesis { genesis, source })
    }
}

/// Which nodes answer for which shard, each list in the order to try.
#[derive(Clone, Debug)]
pub struct Nodes {
    default: String,
    shards: BTreeMap<ShardId, Vec<String>>,
}

impl Nodes {
    /// The routing for `explicit` (flag or environment), else `config`,
    /// else the local testnet layout of `genesis` (every validator of each
    /// shard, in committee order).
    pub fn resolve(explicit: Option<String>, config: &Config, genesis: &Genesis) -> Nodes {
        if let Some(url) = explicit {
            return Nodes { default: url, shards: BTreeMap::new() };
        }
        if config.node.is_some() || !config.shard_nodes.is_empty() {
            let default = config.node.clone().unwrap_or_else(|| DEFAULT_NODE.to_string());
            return Nodes { default, shards: config.shard_nodes.clone() };
        }
        let shards = (0..genesis.shard_count)
            .map(|s| (s, shard_rpc_urls(genesis, s, BASE_PORT)))
            .filter(|(_, urls)| !urls.is_empty())
            .collect();
        Nodes { default: DEFAULT_NODE.to_string(), shards }
    }

    /// The node asked first about `shard`.
    pub fn url(&self, shard: ShardId) -> &str {
        self.urls(shard).first().map_or(&self.default, String::as_str)
    }

    /// The nodes that answer for `shard`, in the order to try them.
    pub fn urls(&self, shard: ShardId) -> &[String] {
        self.shards.get(&shard).map_or(std::slice::from_ref(&self.default), Vec::as_slice)
    }

    /// Every node, the default first, each once.
    pub fn all(&self) -> Vec<String> {
        let mut urls = vec![self.default.clone()];
        for url in self.shards.values().flatten() {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }
}

/// A node whose genesis was checked, and the status it was checked with.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Its client.
    pub client: Client,
    /// Its `palisade_status` at the check.
    pub status: StatusResponse,
}

/// Clients for the nodes, each checked to run the genesis in use.
pub struct Network {
    genesis: LoadedGenesis,
    hash: Hash,
    nodes: Nodes,
    checked: BTreeMap<String, Checked>,
}

impl Network {
    /// A network of `nodes` that must run `genesis`.
    pub fn new(genesis: LoadedGenesis, nodes: Nodes) -> Network {
        let hash = genesis.genesis.hash();
        Network { genesis, hash, nodes, checked: BTreeMap::new() }
    }

    /// The genesis in use.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis.genesis
    }

    /// Its hash.
    pub fn genesis_hash(&self) -> Hash {
        self.hash
    }

    /// Where it came from.
    pub fn genesis_source(&self) -> &str {
        &self.genesis.source
    }

    /// The node routing.
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// The shard `address` lives in.
    pub fn shard_of(&self, address: &Address) -> ShardId {
        address.shard(self.genesis.genesis.shard_count)
    }

    /// The node at `url`, after checking (once) that it runs our genesis.
    pub async fn node(&mut self, url: &str) -> Result<&Checked> {
        match self.checked.entry(url.to_string()) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let client = Client::new(url)?;
                let status = client.status().await?;
                let ours = &self.genesis;
                if status.genesis_hash != self.hash || status.chain_id != ours.genesis.chain_id {
                    return Err(WalletError::GenesisMismatch(Box::new(GenesisMismatch {
                        url: url.to_string(),
                        node_chain: status.chain_id,
                        node_hash: status.genesis_hash,
                        source_name: ours.source.clone(),
                        our_chain: ours.genesis.chain_id.clone(),
                        our_hash: self.hash,
                    })));
                }
                Ok(entry.insert(Checked { client, status }))
            }
        }
    }

    /// The node that answers for `shard`, checked: the first of its nodes
    /// that is up and calls the shard healthy, else the first that is up.
    /// Nodes after the first healthy one are not asked.
    pub async fn for_shard(&mut self, shard: ShardId) -> Result<&Checked> {
        let urls = self.up(shard, true).await?;
        let url = urls.first().cloned().unwrap_or_else(|| self.nodes.url(shard).to_string());
        self.node(&url).await
    }

    /// Every node of `shard` that is up and runs our genesis, those that
    /// call the shard healthy first (then in configured order), as a
    /// [`Route`]: calls move on to the next node when one goes down. If
    /// none is up, the first node's error.
    pub async fn route(&mut self, shard: ShardId) -> Result<Route> {
        let urls = self.up(shard, false).await?;
        let clients = urls.iter().filter_map(|url| Some(self.checked.get(url)?.client.clone()));
        Route::new(clients.collect())
            .ok_or_else(|| WalletError::Usage(format!("no node is configured for shard {shard}")))
    }

    /// The URLs of `shard`'s nodes that are up, each checked, those that
    /// call the shard healthy first; with `first_healthy`, the asking stops
    /// at the first healthy one. If none is up, the first node's error.
    async fn up(&mut self, shard: ShardId, first_healthy: bool) -> Result<Vec<String>> {
        let mut first_error = None;
        let (mut healthy, mut others) = (Vec::new(), Vec::new());
        for url in self.nodes.urls(shard).to_vec() {
            match self.node(&url).await {
                Ok(node) => {
                    let fine = node.status.shards.iter().any(|s| s.shard == shard && s.healthy);
                    if fine { &mut healthy } else { &mut others }.push(url);
                    if fine && first_healthy {
                        break;
                    }
                }
                Err(e @ WalletError::GenesisMismatch(_)) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        healthy.extend(others);
        match first_error {
            Some(e) if healthy.is_empty() => Err(e),
            _ => Ok(healthy),
        }
    }

    /// Asks the nodes at `urls` in turn with `ask`, each after its genesis
    /// check, until an answer is `enough`: for commands that ask several
    /// nodes. A genesis mismatch stops everything (the user must fix the
    /// genesis or the node); any other failure is kept as that node's answer
    /// and the next node is asked. If no node answered, the first failure is
    /// the error. Otherwise the answers, in order, the last one `enough` if
    /// any was.
    pub async fn ask_in_turn<T>(
        &mut self,
        urls: Vec<String>,
        mut ask: impl AsyncFnMut(&Checked) -> Result<T>,
        enough: impl Fn(&T) -> bool,
    ) -> Result<Vec<(String, Result<T>)>> {
        let mut answers = Vec::new();
        for url in urls {
            let answer = match self.node(&url).await {
                Ok(node) => ask(node).await,
                Err(e) => Err(e),
            };
            if let Err(e @ WalletError::GenesisMismatch(_)) = answer {
                return Err(e);
            }
            let done = answer.as_ref().is_ok_and(&enough);
            answers.push((url, answer));
            if done {
                break;
            }
        }
        if !answers.iter().any(|(_, answer)| answer.is_ok()) {
            // Nobody answered: the first failure says why (none if no node was asked).
            return match answers.into_iter().next() {
                Some((_, Err(first))) => Err(first),
                _ => Ok(Vec::new()),
            };
        }
        Ok(answers)
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
    fn the_default_node_is_the_local_testnets_first_validator() {
        let genesis = LoadedGenesis::load(None).unwrap().genesis;
        assert_eq!(shard_rpc_urls(&genesis, 0, BASE_PORT)[0], DEFAULT_NODE);
    }

    #[test]
    fn nodes_come_from_the_flag_else_the_config_else_the_local_testnet() {
        // 4 shards of 4: shard s starts at validator 4s, RPC port 27000 + 3 * 4s + 1.
        let genesis = Genesis::dev(4, 4);
        let nodes = Nodes::resolve(None, &Config::default(), &genesis);
        assert_eq!(nodes.url(0), DEFAULT_NODE);
        assert_eq!(nodes.url(1), "http://127.0.0.1:27013");
        assert_eq!(nodes.url(2), "http://127.0.0.1:27025");
        assert_eq!(nodes.url(3), "http://127.0.0.1:27037");
        // Every validator of the shard, its first one asked first.
        assert_eq!(
            nodes.urls(1),
            ["http://127.0.0.1:27013", "http://127.0.0.1:27016", "http://127.0.0.1:27019", "http://127.0.0.1:27022"]
        );
        assert_eq!(nodes.all().len(), 16);
        let explicit = Nodes::resolve(Some("http://h:1".into()), &Config::default(), &genesis);
        assert_eq!(explicit.url(2), "http://h:1");
        let config = Config { node: Some("http://n:1".into()), ..Config::default() };
        let configured = Nodes::resolve(None, &config, &genesis);
        assert_eq!((configured.url(3), configured.all().len()), ("http://n:1", 1));
        let config = Config {
            shard_nodes: BTreeMap::from([(1, vec!["http://s:1".to_string(), "http://t:1".to_string()])]),
            ..Config::default()
        };
        let per_shard = Nodes::resolve(None, &config, &genesis);
        assert_eq!((per_shard.url(1), per_shard.url(2)), ("http://s:1", DEFAULT_NODE));
        assert_eq!(per_shard.urls(1), ["http://s:1", "http://t:1"]);
        assert_eq!(per_shard.all(), [DEFAULT_NODE, "http://s:1", "http://t:1"]);
    }
}
