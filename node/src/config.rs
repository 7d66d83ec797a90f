//! The node's configuration: one [`NodeConfig`] with sane defaults, read
//! from a TOML file, with every setting also a flag of `palisade-node run`
//! ([`ConfigOverrides`]). Flags win over the file, the file over defaults.
//!
//! Each TOML key `section.key` is the clap argument id of its flag, so one
//! test can prove no setting lacks a flag, and the flag's help text is also
//! the comment above the key in the file `palisade-node init` writes
//! ([`NodeConfig::to_toml`]): one description per setting.
//!
//! Errors name the setting and say why: a value that does not parse gives
//! `p2p.listen: "/ip4/x" is not a multiaddr: … (line 9, column 10)`, an unknown
//! key gives toml's "unknown field" with its line and column, and
//! [`NodeConfig::validate`] gives `mempool.max_txs must be at least 1`.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::ValueEnum;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use palisade_ledger::ShardId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./palisade-data";
/// The config file `init` writes in the data directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The validator key's file name in the data directory (the default `node.key_file`).
pub const VALIDATOR_KEY_FILE: &str = "validator.key";
/// The libp2p identity's file name in the data directory.
pub const P2P_KEY_FILE: &str = "p2p.key";
/// The environment variable holding the key password when `node.password_file` is unset.
pub const PASSWORD_ENV: &str = "PALISADE_KEY_PASSWORD";
/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The whole configuration, one field per TOML section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// `[node]`: files and shards.
    pub node: NodeSection,
    /// `[p2p]`: the libp2p network.
    pub p2p: P2pSection,
    /// `[rpc]`: the JSON-RPC server.
    pub rpc: RpcSection,
    /// `[metrics]`: Prometheus metrics and `/health`.
    pub metrics: MetricsSection,
    /// `[mempool]`: per-shard pending transactions.
    pub mempool: MempoolSection,
    /// `[log]`: logging.
    pub log: LogSection,
}

/// `[node]`: where the node keeps its data and what it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Database, p2p identity and (by default) the validator key.
    pub data_dir: PathBuf,
    /// The network's genesis file.
    pub genesis: PathBuf,
    /// The encrypted validator key; `None` means `<data_dir>/validator.key`.
    /// If that file does not exist the node only follows `track_shards`.
    pub key_file: Option<PathBuf>,
    /// A file holding the key's password; else `PALISADE_KEY_PASSWORD`, else a prompt.
    pub password_file: Option<PathBuf>,
    /// Shards to follow besides those whose committee holds our key.
    pub track_shards: Vec<ShardId>,
    /// `/health` reports a shard stale after this long without a commit.
    pub health_stale_after_ms: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            genesis: PathBuf::from("genesis.json"),
            key_file: None,
            password_file: None,
            track_shards: Vec::new(),
            health_stale_after_ms: palisade_ledger::api::DEFAULT_HEALTH_STALE_AFTER_MS,
        }
    }
}

/// `[p2p]`: the libp2p network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// Where to listen.
    #[serde(with = "text")]
    pub listen: Multiaddr,
    /// Peers dialled at start.
    #[serde(with = "text_list")]
    pub bootstrap: Vec<Multiaddr>,
    /// Most established connections in all.
    pub max_connections: u32,
    /// Most established connections to one peer.
    pub max_connections_per_peer: u32,
    /// How long a misbehaving peer stays banned.
    pub ban_secs: u64,
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: Multiaddr::empty().with(Protocol::Ip4([0, 0, 0, 0].into())).with(Protocol::Tcp(26656)),
            bootstrap: Vec::new(),
            max_connections: 128,
            max_connections_per_peer: 2,
            ban_secs: 600,
        }
    }
}

/// `[rpc]`: the JSON-RPC server (HTTP and WebSocket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSection {
    /// Where to listen.
    #[serde(with = "text")]
    pub listen: SocketAddr,
    /// Largest request body.
    pub max_request_bytes: u32,
    /// Most calls in one batch.
    pub max_batch: u32,
    /// Most open connections.
    pub max_connections: u32,
    /// Requests per second allowed from one client IP; 0 turns the limit off
    /// (a local network, where every client is 127.0.0.1).
    pub requests_per_second_per_client: u32,
    /// Transactions per second, per shard, that one client IP may always
    /// submit; above it the intake breaker trips on a tenfold spike over
    /// the client's own recent rate.
    pub client_tx_floor_per_second: u64,
}

impl Default for RpcSection {
    fn default() -> Self {
        RpcSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
            max_request_bytes: 1024 * 1024,
            max_batch: 32,
            max_connections: 256,
            requests_per_second_per_client: 200,
            client_tx_floor_per_second: palisade_shard_core::intake::DEFAULT_CLIENT_FLOOR_PER_WINDOW,
        }
    }
}

/// `[metrics]`: Prometheus `/metrics` and `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Where to listen.
    #[serde(with = "text")]
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { listen: SocketAddr::from(([127, 0, 0, 1], 26660)) }
    }
}

/// `[mempool]`: bounds of each shard's pending transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most pending nonces per sender beyond its committed one.
    pub max_nonce_gap: u64,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            max_txs: crate::mempool::DEFAULT_MAX_TXS,
            max_bytes: crate::mempool::DEFAULT_MAX_BYTES,
            max_nonce_gap: crate::mempool::DEFAULT_MAX_NONCE_GAP,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, like `info` or `info,palisade_node::net=debug`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { format: LogFormat::Human, level: "info".to_string() }
    }
}

/// Flags of `palisade-node run`, one per setting; each id is the setting's
/// TOML key, and each help text is also its comment in the written file.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    /// Directory for the database, the p2p identity and (by default) the validator key
    #[arg(id = "node.data_dir", long = "data-dir", value_name = "DIR", help_heading = "Node")]
    pub data_dir: Option<PathBuf>,
    /// The network's genesis file
    #[arg(id = "node.genesis", long = "genesis", value_name = "FILE", help_heading = "Node")]
    pub genesis: Option<PathBuf>,
    /// Encrypted validator key; if the file does not exist, only follow track_shards
    #[arg(id = "node.key_file", long = "key-file", value_name = "FILE", help_heading = "Node")]
    pub key_file: Option<PathBuf>,
    /// File holding the key's password (else $PALISADE_KEY_PASSWORD, else a prompt)
    #[arg(id = "node.password_file", long = "password-file", value_name = "FILE", help_heading = "Node")]
    pub password_file: Option<PathBuf>,
    /// Shards to follow besides those whose committee holds our key (comma-separated)
    #[arg(
        id = "node.track_shards",
        long = "track-shards",
        value_name = "SHARD,…",
        value_delimiter = ',',
        help_heading = "Node"
    )]
    pub track_shards: Option<Vec<ShardId>>,
    /// /health reports a shard stale after this many ms without a commit
    #[arg(id = "node.health_stale_after_ms", long = "health-stale-after-ms", value_name = "MS", help_heading = "Node")]
    pub health_stale_after_ms: Option<u64>,

    /// libp2p listen address
    #[arg(id = "p2p.listen", long = "p2p-listen", value_name = "MULTIADDR", help_heading = "P2P")]
    pub p2p_listen: Option<Multiaddr>,
    /// Peers to dial at start (comma-separated or repeated; replaces the file's list)
    #[arg(
        id = "p2p.bootstrap",
        long = "p2p-bootstrap",
        value_name = "MULTIADDR,…",
        value_delimiter = ',',
        help_heading = "P2P"
    )]
    pub p2p_bootstrap: Option<Vec<Multiaddr>>,
    /// Most established peer connections in all
    #[arg(id = "p2p.max_connections", long = "p2p-max-connections", value_name = "N", help_heading = "P2P")]
    pub p2p_max_connections: Option<u32>,
    /// Most established connections to one peer
    #[arg(
        id = "p2p.max_connections_per_peer",
        long = "p2p-max-connections-per-peer",
        value_name = "N",
        help_heading = "P2P"
    )]
    pub p2p_max_connections_per_peer: Option<u32>,
    /// Seconds a misbehaving peer stays banned
    #[arg(id = "p2p.ban_secs", long = "p2p-ban-secs", value_name = "SECS", help_heading = "P2P")]
    pub p2p_ban_secs: Option<u64>,

    /// JSON-RPC listen address (HTTP and WebSocket)
    #[arg(id = "rpc.listen", long = "rpc-listen", value_name = "IP:PORT", help_heading = "RPC")]
    pub rpc_listen: Option<SocketAddr>,
    /// Largest JSON-RPC request body, in bytes
    #[arg(id = "rpc.max_request_bytes", long = "rpc-max-request-bytes", value_name = "BYTES", help_heading = "RPC")]
    pub rpc_max_request_bytes: Option<u32>,
    /// Most calls in one JSON-RPC batch
    #[arg(id = "rpc.max_batch", long = "rpc-max-batch", value_name = "N", help_heading = "RPC")]
    pub rpc_max_batch: Option<u32>,
    /// Most open JSON-RPC connections
    #[arg(id = "rpc.max_connections", long = "rpc-max-connections", value_name = "N", help_heading = "RPC")]
    pub rpc_max_connections: Option<u32>,
    /// JSON-RPC requests per second allowed from one client IP (0: no limit)
    #[arg(
        id = "rpc.requests_per_second_per_client",
        long = "rpc-requests-per-second-per-client",
        value_name = "N",
        help_heading = "RPC"
    )]
    pub rpc_requests_per_second_per_client: Option<u32>,
    /// Transactions per second per shard one client IP may always submit before its spikes trip
    /// the intake breaker
    #[arg(
        id = "rpc.client_tx_floor_per_second",
        long = "rpc-client-tx-floor-per-second",
        value_name = "N",
        help_heading = "RPC"
    )]
    pub rpc_client_tx_floor_per_second: Option<u64>,

    /// Listen address of Prometheus /metrics and /health
    #[arg(id = "metrics.listen", long = "metrics-listen", value_name = "IP:PORT", help_heading = "Metrics")]
    pub metrics_listen: Option<SocketAddr>,

    /// Most transactions in each shard's mempool
    #[arg(id = "mempool.max_txs", long = "mempool-max-txs", value_name = "N", help_heading = "Mempool")]
    pub mempool_max_txs: Option<usize>,
    /// Most encoded transaction bytes in each shard's mempool
    #[arg(id = "mempool.max_bytes", long = "mempool-max-bytes", value_name = "BYTES", help_heading = "Mempool")]
    pub mempool_max_bytes: Option<usize>,
    /// Most pending nonces per sender beyond its committed one
    #[arg(id = "mempool.max_nonce_gap", long = "mempool-max-nonce-gap", value_name = "N", help_heading = "Mempool")]
    pub mempool_max_nonce_gap: Option<u64>,

    /// Log format: human or json
    #[arg(id = "log.format", long = "log-format", value_name = "FORMAT", help_heading = "Log")]
    pub log_format: Option<LogFormat>,
    /// Log filter, like info or info,palisade_node::net=debug
    #[arg(id = "log.level", long = "log-level", value_name = "FILTER", env = "RUST_LOG", help_heading = "Log")]
    pub log_level: Option<String>,
}

impl ConfigOverrides {
    /// Writes every flag that was given over `config`.
    pub fn apply(&self, config: &mut NodeConfig) {
        // Destructured without `..`, so a new flag that is not applied here
        // does not compile (unused variable, denied in CI).
        let ConfigOverrides {
            data_dir,
            genesis,
            key_file,
            password_file,
            track_shards,
            health_stale_after_ms,
            p2p_listen,
            p2p_bootstrap,
            p2p_max_connections,
            p2p_max_connections_per_peer,
            p2p_ban_secs,
            rpc_listen,
            rpc_max_request_bytes,
            rpc_max_batch,
            rpc_max_connections,
            rpc_requests_per_second_per_client,
            rpc_client_tx_floor_per_second,
            metrics_listen,
            mempool_max_txs,
            mempool_max_bytes,
            mempool_max_nonce_gap,
            log_format,
            log_level,
        } = self;
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *slot = value.clone();
            }
        }
        let node = &mut config.node;
        set(&mut node.data_dir, data_dir);
        set(&mut node.genesis, genesis);
        if key_file.is_some() {
            node.key_file.clone_from(key_file);
        }
        if password_file.is_some() {
            node.password_file.clone_from(password_file);
        }
        set(&mut node.track_shards, track_shards);
        set(&mut node.health_stale_after_ms, health_stale_after_ms);
        let p2p = &mut config.p2p;
        set(&mut p2p.listen, p2p_listen);
        set(&mut p2p.bootstrap, p2p_bootstrap);
        set(&mut p2p.max_connections, p2p_max_connections);
        set(&mut p2p.max_connections_per_peer, p2p_max_connections_per_peer);
        set(&mut p2p.ban_secs, p2p_ban_secs);
        let rpc = &mut config.rpc;
        set(&mut rpc.listen, rpc_listen);
        set(&mut rpc.max_request_bytes, rpc_max_request_bytes);
        set(&mut rpc.max_batch, rpc_max_batch);
        set(&mut rpc.max_connections, rpc_max_connections);
        set(&mut rpc.requests_per_second_per_client, rpc_requests_per_second_per_client);
        set(&mut rpc.client_tx_floor_per_second, rpc_client_tx_floor_per_second);
        set(&mut config.metrics.listen, metrics_listen);
        let mempool = &mut config.mempool;
        set(&mut mempool.max_txs, mempool_max_txs);
        set(&mut mempool.max_bytes, mempool_max_bytes);
        set(&mut mempool.max_nonce_gap, mempool_max_nonce_gap);
        set(&mut config.log.format, log_format);
        set(&mut config.log.level, log_level);
    }

    /// The flags as a clap command, for their ids and help texts.
    pub fn command() -> clap::Command {
        <ConfigOverrides as clap::Args>::augment_args(clap::Command::new("run"))
    }
}

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`NodeConfig`].
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// `<key>: <what is wrong> (line L, column C)`.
        message: String,
    },
    /// A setting has a value the node cannot use.
    #[error("{field} {reason}")]
    Invalid {
        /// The TOML key, like `mempool.max_txs`.
        field: &'static str,
        /// Why, phrased to follow the field name ("must be at least 1").
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

fn at_least<T: PartialOrd + Display>(field: &'static str, value: T, min: T) -> Result<(), ConfigError> {
    if value < min { Err(invalid(field, format!("must be at least {min} (it is {value})"))) } else { Ok(()) }
}

impl NodeConfig {
    /// Defaults, then the TOML file at `path` if any, then `overrides`;
    /// validated.
    pub fn load(path: Option<&Path>, overrides: &ConfigOverrides) -> Result<NodeConfig, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text =
                    read_bounded(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                NodeConfig::from_toml(&text, path)?
            }
            None => NodeConfig::default(),
        };
        overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML (missing keys take their defaults); `origin` names the
    /// file in errors. Does not [`validate`](NodeConfig::validate).
    pub fn from_toml(text: &str, origin: &Path) -> Result<NodeConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), message: describe(&e, text) })
    }

    /// Checks what types cannot: ranges, and values that must parse.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let node = &self.node;
        if node.data_dir.as_os_str().is_empty() {
            return Err(invalid("node.data_dir", "must not be empty"));
        }
        if node.genesis.as_os_str().is_empty() {
            return Err(invalid("node.genesis", "must not be empty"));
        }
        if node.key_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid("node.key_file", "must not be empty (leave it out for <data_dir>/validator.key)"));
        }
        if node.password_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid("node.password_file", "must not be empty (leave it out to use the environment)"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(shard) = node.track_shards.iter().find(|&&s| !seen.insert(s)) {
            return Err(invalid("node.track_shards", format!("lists shard {shard} twice")));
        }
        at_least("node.health_stale_after_ms", node.health_stale_after_ms, 1)?;

        let p2p = &self.p2p;
        if !p2p.listen.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
            return Err(invalid("p2p.listen", format!("\"{}\" has no /tcp/<port> (the node speaks TCP)", p2p.listen)));
        }
        at_least("p2p.max_connections", p2p.max_connections, 1)?;
        at_least("p2p.max_connections_per_peer", p2p.max_connections_per_peer, 1)?;
        if p2p.max_connections_per_peer > p2p.max_connections {
            return Err(invalid(
                "p2p.max_connections_per_peer",
                format!(
                    "({}) must not exceed p2p.max_connections ({})",
                    p2p.max_connections_per_peer, p2p.max_connections
                ),
            ));
        }

        let rpc = &self.rpc;
        at_least("rpc.max_request_bytes", rpc.max_request_bytes, 1024)?;
        at_least("rpc.max_batch", rpc.max_batch, 1)?;
        at_least("rpc.max_connections", rpc.max_connections, 1)?;
        at_least("rpc.client_tx_floor_per_second", rpc.client_tx_floor_per_second, 1)?;
        if rpc.listen == self.metrics.listen && rpc.listen.port() != 0 {
            return Err(invalid("metrics.listen", format!("({}) must differ from rpc.listen", self.metrics.listen)));
        }

        let mempool = &self.mempool;
        at_least("mempool.max_txs", mempool.max_txs, 1)?;
        at_least("mempool.max_bytes", mempool.max_bytes, 1024)?;
        at_least("mempool.max_nonce_gap", mempool.max_nonce_gap, 1)?;

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", format!("\"{}\" is not a valid filter directive: {e}", self.log.level)));
        }
        Ok(())
    }

    /// The validator key file: `node.key_file`, or `<data_dir>/validator.key`.
    pub fn key_file_path(&self) -> PathBuf {
        self.node.key_file.clone().unwrap_or_else(|| self.node.data_dir.join(VALIDATOR_KEY_FILE))
    }

    /// The libp2p identity: `<data_dir>/p2p.key`.
    pub fn p2p_key_path(&self) -> PathBuf {
        self.node.data_dir.join(P2P_KEY_FILE)
    }

    /// The default configuration as commented TOML, every key present: what
    /// `palisade-node init` writes (with its data directory).
    pub fn default_toml() -> String {
        NodeConfig::default().to_toml()
    }

    /// This configuration as commented TOML with every key present (unset
    /// optional keys commented out), each with its description and flag.
    pub fn to_toml(&self) -> String {
        let values = match toml::Table::try_from(self) {
            Ok(table) => table,
            // Plain data with string keys; cannot fail. Fall back to bare defaults.
            Err(_) => toml::Table::new(),
        };
        let mut out = String::from(
            "# Palisade node configuration.\n\
             #\n\
             # Every setting is also a flag of `palisade-node run` (named after each\n\
             # description); flags win over this file, and this file over the defaults.\n\
             # Relative paths are relative to the directory the node is started in.\n",
        );
        let command = ConfigOverrides::command();
        let mut section = "";
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let Some((arg_section, key)) = id.split_once('.') else { continue };
            if arg_section != section {
                section = arg_section;
                out.push_str(&format!("\n[{section}]\n"));
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let flag = arg.get_long().map(|l| format!(" (--{l})")).unwrap_or_default();
            out.push_str(&format!("\n# {help}{flag}\n"));
            match values.get(section).and_then(|s| s.get(key)) {
                Some(value) => out.push_str(&toml_line(key, value)),
                None => out.push_str(&format!("# {}", toml_line(key, &toml::Value::String(self.unset_example(id))))),
            }
        }
        out
    }

    /// What an unset optional key would typically hold.
    fn unset_example(&self, id: &str) -> String {
        match id {
            "node.key_file" => self.key_file_path().display().to_string(),
            "node.password_file" => "/etc/palisade/password".to_string(),
            _ => String::new(),
        }
    }

    /// The default of the setting with TOML key `id`, as text for `--help`
    /// (`None` for unset optional settings and empty lists).
    pub fn default_text(id: &str) -> Option<String> {
        let config = NodeConfig::default();
        if id == "node.key_file" {
            return Some("<data_dir>/validator.key".to_string());
        }
        let table = toml::Table::try_from(&config).ok()?;
        let (section, key) = id.split_once('.')?;
        match table.get(section)?.get(key)? {
            toml::Value::String(text) => Some(text.clone()),
            toml::Value::Array(items) if items.is_empty() => None,
            other => Some(other.to_string()),
        }
    }
}

fn toml_line(key: &str, value: &toml::Value) -> String {
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value.clone());
    toml::to_string(&table).unwrap_or_else(|_| format!("{key} = {value}\n"))
}

/// Reads at most [`MAX_CONFIG_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES.saturating_add(1)).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes; not a config file"),
        ));
    }
    Ok(text)
}

/// One line from a toml error: the key it concerns, toml's message, and
/// where.
fn describe(error: &toml::de::Error, text: &str) -> String {
    // toml names the key ("in `p2p.listen`") only when it has no source to
    // quote, so render a copy without the source to learn the key.
    let mut bare = error.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let key = rendered.lines().filter_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`'))).next_back();
    let message = error.message().trim_end();
    let mut out = match key {
        Some(key) => format!("{key}: {message}"),
        None => message.to_string(),
    };
    if let Some(span) = error.span() {
        let (line, column) = line_column(text, span.start);
        out.push_str(&format!(" (line {line}, column {column})"));
    }
    out
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count().saturating_add(1);
    let column = before.rsplit('\n').next().unwrap_or("").chars().count().saturating_add(1);
    (line, column)
}

/// Values that TOML holds as strings and parse with `FromStr`.
trait TextValue: FromStr + Display {
    /// What it is, for errors: "a multiaddr".
    const WHAT: &'static str;
}

impl TextValue for Multiaddr {
    const WHAT: &'static str = "a multiaddr (like /ip4/0.0.0.0/tcp/26656)";
}

impl TextValue for SocketAddr {
    const WHAT: &'static str = "a socket address (like 127.0.0.1:26657)";
}

fn parse_text<T: TextValue, E: serde::de::Error>(text: &str) -> Result<T, E>
where
    T::Err: Display,
{
    text.parse().map_err(|e| E::custom(format!("{text:?} is not {}: {e}", T::WHAT)))
}

/// `#[serde(with)]` for one [`TextValue`], so errors say what was expected.
mod text {
    use super::*;

    pub(super) fn serialize<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, T: TextValue, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error>
    where
        T::Err: Display,
    {
        parse_text(&String::deserialize(deserializer)?)
    }
}

/// `#[serde(with)]` for a list of [`TextValue`]s.
mod text_list {
    use super::*;

    pub(super) fn serialize<T: Display, S: Serializer>(values: &[T], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, T: TextValue, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        T::Err: Display,
    {
        Vec::<String>::deserialize(deserializer)?.iter().map(|text| parse_text(text)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Parser;

    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let config = NodeConfig::from_toml(text, Path::new("test.toml"))?;
        config.validate()?;
        Ok(config)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// `palisade-node run`'s override flags alone.
    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        overrides: ConfigOverrides,
    }

    fn flags(args: &[&str]) -> ConfigOverrides {
        Run::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap().overrides
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let config = NodeConfig::default();
        config.validate().unwrap();
        assert_eq!(config.node.data_dir, Path::new("./palisade-data"));
        assert_eq!(config.key_file_path(), Path::new("./palisade-data/validator.key"));
        assert_eq!(config.p2p.listen.to_string(), "/ip4/0.0.0.0/tcp/26656");
        assert_eq!(config.rpc.listen.to_string(), "127.0.0.1:26657");
        assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:26660");
        assert_eq!(config.mempool.max_txs, 100_000);
        assert_eq!(config.mempool.max_bytes, 64 * 1024 * 1024);
        assert_eq!(config.mempool.max_nonce_gap, 64);
        assert_eq!(config.log.level, "info");
        // An empty file is the defaults.
        assert_eq!(parse("").unwrap(), config);
    }

    #[test]
    fn default_toml_has_every_key_and_reads_back_as_the_defaults() {
        let text = NodeConfig::default_toml();
        assert_eq!(parse(&text).unwrap(), NodeConfig::default());
        for id in all_keys() {
            let (_, key) = id.split_once('.').unwrap();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} = "))),
                "{id} missing from\n{text}"
            );
        }
        assert!(text.contains("# key_file = \"./palisade-data/validator.key\""), "{text}");
        assert!(text.contains("(--p2p-listen)"), "{text}");
    }

    #[test]
    fn toml_round_trip_of_a_full_config() {
        let mut config = NodeConfig::default();
        config.node.data_dir = "/var/lib/palisade".into();
        config.node.key_file = Some("/etc/palisade/validator.key".into());
        config.node.password_file = Some("/etc/palisade/password".into());
        config.node.track_shards = vec![1, 3];
        config.p2p.bootstrap =
            vec!["/ip4/10.0.0.1/tcp/26656".parse().unwrap(), "/dns4/a.example/tcp/1".parse().unwrap()];
        config.rpc.max_batch = 7;
        config.log.format = LogFormat::Json;
        config.log.level = "info,palisade_node::net=debug".into();
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
        assert_eq!(parse(&toml::to_string(&config).unwrap()).unwrap(), config);
    }

    #[test]
    fn unknown_field_error_names_it_with_line_and_column() {
        let err = error("[node]\ndata_dir = \"d\"\n\n[p2p]\nlisen = \"/ip4/0.0.0.0/tcp/1\"\n");
        assert!(err.contains("unknown field `lisen`"), "{err}");
        assert!(err.contains("p2p:"), "{err}");
        assert!(err.contains("line 5, column 1"), "{err}");
        assert!(err.starts_with("test.toml: "), "{err}");
        let err = error("[p2pp]\nlisten = \"/ip4/0.0.0.0/tcp/1\"\n");
        assert!(err.contains("unknown field `p2pp`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = error("[p2p]\nlisten = \"/ip4/x\"\n");
        assert!(err.contains("p2p.listen: \"/ip4/x\" is not a multiaddr"), "{err}");
        assert!(err.contains("line 2, column 10"), "{err}");
        let err = error("[p2p]\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\", \"nope\"]\n");
        assert!(err.contains("p2p.bootstrap: \"nope\" is not a multiaddr"), "{err}");
        let err = error("[rpc]\nlisten = \"localhost\"\n");
        assert!(err.contains("rpc.listen: \"localhost\" is not a socket address"), "{err}");
        let err = error("[mempool]\nmax_txs = \"many\"\n");
        assert!(err.contains("mempool.max_txs:"), "{err}");
        let err = error("[log]\nformat = \"xml\"\n");
        assert!(err.contains("log.format:"), "{err}");
    }

    #[test]
    fn validation_names_the_field_and_why() {
        for (text, expected) in [
            ("[mempool]\nmax_txs = 0", "mempool.max_txs must be at least 1"),
            ("[mempool]\nmax_nonce_gap = 0", "mempool.max_nonce_gap must be at least 1"),
            ("[p2p]\nmax_connections = 0", "p2p.max_connections must be at least 1"),
            ("[p2p]\nmax_connections = 2\nmax_connections_per_peer = 3", "p2p.max_connections_per_peer (3) must not"),
            ("[p2p]\nlisten = \"/ip4/1.2.3.4\"", "p2p.listen \"/ip4/1.2.3.4\" has no /tcp/"),
            ("[rpc]\nmax_batch = 0", "rpc.max_batch must be at least 1"),
            (
                "[rpc]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"",
                "must differ from rpc.listen",
            ),
            ("[node]\ntrack_shards = [1, 1]", "node.track_shards lists shard 1 twice"),
            ("[node]\nhealth_stale_after_ms = 0", "node.health_stale_after_ms must be at least 1"),
            ("[node]\nkey_file = \"\"", "node.key_file must not be empty"),
            ("[log]\nlevel = \"info,foo=loud\"", "log.level \"info,foo=loud\" is not a valid filter"),
        ] {
            let err = error(text);
            assert!(err.contains(expected), "{text}: expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[node]\ndata_dir = \"/from/file\"\ngenesis = \"/file/genesis.json\"\n\
             [p2p]\nmax_connections = 50\nbootstrap = [\"/ip4/1.1.1.1/tcp/1\"]\n[mempool]\nmax_txs = 10\n",
        )
        .unwrap();
        let overrides = flags(&[
            "--data-dir",
            "/from/flag",
            "--p2p-bootstrap",
            "/ip4/2.2.2.2/tcp/2,/ip4/3.3.3.3/tcp/3",
            "--track-shards",
            "0,2",
            "--rpc-listen",
            "0.0.0.0:9999",
            "--log-format",
            "json",
            "--key-file",
            "/k",
        ]);
        let config = NodeConfig::load(Some(&path), &overrides).unwrap();
        assert_eq!(config.node.data_dir, Path::new("/from/flag")); // flag over file
        assert_eq!(config.node.genesis, Path::new("/file/genesis.json")); // file over default
        assert_eq!(config.p2p.max_connections, 50);
        assert_eq!(config.p2p.bootstrap.len(), 2);
        assert_eq!(config.p2p.bootstrap[1].to_string(), "/ip4/3.3.3.3/tcp/3");
        assert_eq!(config.node.track_shards, vec![0, 2]);
        assert_eq!(config.rpc.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.key_file_path(), Path::new("/k"));
        assert_eq!(config.mempool.max_txs, 10);
        assert_eq!(config.mempool.max_bytes, NodeConfig::default().mempool.max_bytes); // default

        // No file: flags over defaults; flags are validated too.
        let config = NodeConfig::load(None, &flags(&["--mempool-max-txs", "5"])).unwrap();
        assert_eq!(config.mempool.max_txs, 5);
        let err = NodeConfig::load(None, &flags(&["--mempool-max-txs", "0"])).unwrap_err();
        assert_eq!(err.to_string(), "mempool.max_txs must be at least 1 (it is 0)");
        assert!(Run::try_parse_from(["run", "--p2p-listen", "/ip4/x"]).is_err());
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = NodeConfig::load(Some(Path::new("/nonexistent/config.toml")), &ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read config file /nonexistent/config.toml"), "{err}");
    }

    /// Every key of the configuration as `section.key`, optional ones
    /// included (JSON keeps `None` as null where TOML drops it).
    fn all_keys() -> BTreeSet<String> {
        let value = serde_json::to_value(NodeConfig::default()).unwrap();
        let mut keys = BTreeSet::new();
        for (section, fields) in value.as_object().unwrap() {
            for key in fields.as_object().unwrap().keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
        keys
    }

    #[test]
    fn every_key_has_a_flag_and_every_flag_a_key() {
        let flags: BTreeSet<String> =
            ConfigOverrides::command().get_arguments().map(|a| a.get_id().as_str().to_string()).collect();
        let keys = all_keys();
        assert_eq!(keys.len(), 23);
        assert_eq!(keys, flags, "TOML keys vs `run` flags");
        // And each flag is applied: set every flag, and every key changes.
        let overrides = flags_setting_everything();
        let mut config = NodeConfig::default();
        overrides.apply(&mut config);
        let before = serde_json::to_value(NodeConfig::default()).unwrap();
        let after = serde_json::to_value(&config).unwrap();
        for id in &keys {
            let (section, key) = id.split_once('.').unwrap();
            assert_ne!(before[section][key], after[section][key], "--{id} is not applied");
        }
    }

    fn flags_setting_everything() -> ConfigOverrides {
        flags(&[
            "--data-dir=/d",
            "--genesis=/g.json",
            "--key-file=/k",
            "--password-file=/p",
            "--track-shards=3",
            "--health-stale-after-ms=1",
            "--p2p-listen=/ip4/1.2.3.4/tcp/5",
            "--p2p-bootstrap=/ip4/1.2.3.4/tcp/6",
            "--p2p-max-connections=9",
            "--p2p-max-connections-per-peer=9",
            "--p2p-ban-secs=9",
            "--rpc-listen=1.2.3.4:5",
            "--rpc-max-request-bytes=9999",
            "--rpc-max-batch=9",
            "--rpc-max-connections=9",
            "--rpc-requests-per-second-per-client=9",
            "--rpc-client-tx-floor-per-second=9",
            "--metrics-listen=1.2.3.4:6",
            "--mempool-max-txs=9",
            "--mempool-max-bytes=9999",
            "--mempool-max-nonce-gap=9",
            "--log-format=json",
            "--log-level=debug",
        ])
    }
}
