//! Where the wallet keeps its files and what it talks to: the home directory,
//! the optional `config.toml` in it, and the environment variables.
//!
//! ```text
//! <home>/config.toml        optional settings (see [`Config`])
//! <home>/keys/<name>.json   encrypted keys, mode 0600, directory 0700
//! ```
//!
//! The home is `--home`, else `$PALISADE_HOME`, else `$HOME/.palisade`.
//! Flags win over environment variables, which win over the config file,
//! which wins over the built-in defaults: the local testnet's first node and
//! the committed dev genesis.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use palisade_ledger::{Amount, ShardId};
use serde::Deserialize;

use crate::error::{Result, WalletError};

/// The home directory, if not given by flag.
pub const HOME_ENV: &str = "PALISADE_HOME";
/// The node URL, if not given by flag.
pub const NODE_ENV: &str = "PALISADE_NODE";
/// The genesis file, if not given by flag.
pub const GENESIS_ENV: &str = "PALISADE_GENESIS";
/// The key to use, if not given by flag.
pub const KEY_ENV: &str = "PALISADE_KEY";
/// The key password itself (for scripts), if no password file is given.
pub const PASSWORD_ENV: &str = "PALISADE_PASSWORD";
/// A file holding the key password, if not given by flag.
pub const PASSWORD_FILE_ENV: &str = "PALISADE_PASSWORD_FILE";
/// The config file inside the home.
pub const CONFIG_FILE: &str = "config.toml";
/// The key directory inside the home.
pub const KEYS_DIR: &str = "keys";
/// The home under `$HOME` when nothing else says where.
pub const DEFAULT_HOME_DIR: &str = ".palisade";
/// The JSON-RPC of the local testnet's first validator (`validator-0-0`):
/// `palisade_ledger::api::local::shard_rpc_url(genesis, 0, BASE_PORT)` for
/// the built-in genesis (a test checks it).
pub const DEFAULT_NODE: &str = "http://127.0.0.1:27001";
/// How long `transfer` waits for finality unless told otherwise.
pub const DEFAULT_WAIT_SECS: u64 = 60;
/// The fee `transfer` pays unless told otherwise: 1000 units (0.000001 PAL).
/// Genesis sets no minimum; a full mempool prefers higher fees.
pub const DEFAULT_FEE: Amount = Amount(1_000);
/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// `<home>/config.toml`, its values parsed. Every field is optional.
///
/// ```toml
/// node = "http://127.0.0.1:27001"    # default node (JSON-RPC URL)
/// genesis = "genesis.json"           # relative to the home; default: the built-in dev genesis
/// default_key = "alice"              # the key commands use without --key
/// wait_secs = 60                     # how long transfer waits for finality
/// fee = "0.000001"                   # default transfer fee, PAL
///
/// [shard_nodes]                      # nodes for shards the default node does not run,
/// 1 = "http://127.0.0.1:27013"       # one URL or a list: the wallet tries them in turn
/// 2 = ["http://10.0.0.7:26657", "http://10.0.0.8:26657"]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The default node's JSON-RPC URL.
    pub node: Option<String>,
    /// The genesis file; relative paths are relative to the home.
    pub genesis: Option<PathBuf>,
    /// The key used when `--key` is not given.
    pub default_key: Option<String>,
    /// How long `transfer` waits for finality, in seconds.
    pub wait_secs: Option<u64>,
    /// The default transfer fee.
    pub fee: Option<Amount>,
    /// Per-shard node URLs, each list in the order to try (never empty).
    pub shard_nodes: BTreeMap<ShardId, Vec<String>>,
}

/// One URL or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

/// The file as written: TOML keys are strings, the fee is PAL text.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    node: Option<String>,
    genesis: Option<PathBuf>,
    default_key: Option<String>,
    wait_secs: Option<u64>,
    fee: Option<String>,
    shard_nodes: BTreeMap<String, Urls>,
}

impl Config {
    /// Reads and parses `<home>/config.toml`; a missing file is the empty config.
    pub fn load(home: &Path) -> Result<Config> {
        let path = home.join(CONFIG_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(WalletError::Io { action: "open", path, source }),
        };
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES.saturating_add(1)).read_to_string(&mut text).map_err(|source| WalletError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
            return Err(WalletError::Config { path, reason: format!("larger than {MAX_CONFIG_BYTES} bytes") });
        }
        Config::parse(&text).map_err(|reason| WalletError::Config { path, reason })
    }

    /// Parses the text of a config file.
    fn parse(text: &str) -> Result<Config, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let fee = file.fee.map(|fee| Amount::parse_pal(&fee).map_err(|e| format!("fee: {e}"))).transpose()?;
        let shard_nodes = file
            .shard_nodes
            .into_iter()
            .map(|(shard, urls)| {
                let number =
                    shard.parse::<ShardId>().map_err(|_| format!("shard_nodes: `{shard}` is not a shard number"))?;
                let urls = match urls {
                    Urls::One(url) => vec![url],
                    Urls::Many(urls) => urls,
                };
                if urls.is_empty() {
                    return Err(format!("shard_nodes: shard {shard} lists no node"));
                }
                Ok((number, urls))
            })
            .collect::<Result<_, String>>()?;
        Ok(Config {
            node: file.node,
            genesis: file.genesis,
            default_key: file.default_key,
            wait_secs: file.wait_secs,
            fee,
            shard_nodes,
        })
    }
}

/// The home directory: the given one, else `$HOME/.palisade`.
pub fn resolve_home(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(home) = given {
        return Ok(home);
    }
    match std::env::var_os("HOME") {
        Some(user_home) if !user_home.is_empty() => Ok(PathBuf::from(user_home).join(DEFAULT_HOME_DIR)),
        _ => Err(WalletError::Usage(format!("$HOME is not set: pass --home DIR or set ${HOME_ENV}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_documented_example_parses_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "node = \"http://127.0.0.1:27001\"\ngenesis = \"genesis.json\"\ndefault_key = \"alice\"\n\
             wait_secs = 30\nfee = \"0.000002\"\n[shard_nodes]\n1 = \"http://127.0.0.1:27013\"\n",
        )
        .unwrap();
        let config = Config::load(dir.path()).unwrap();
        assert_eq!(config.default_key.as_deref(), Some("alice"));
        assert_eq!(config.shard_nodes[&1], ["http://127.0.0.1:27013"]);
        std::fs::write(dir.path().join(CONFIG_FILE), "[shard_nodes]\n2 = [\"http://a:1\", \"http://b:2\"]\n").unwrap();
        assert_eq!(Config::load(dir.path()).unwrap().shard_nodes[&2], ["http://a:1", "http://b:2"]);
        std::fs::write(dir.path().join(CONFIG_FILE), "[shard_nodes]\n2 = []\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("shard 2 lists no node"), "{err}");
        assert_eq!(config.fee, Some(Amount(2_000)));

        std::fs::write(dir.path().join(CONFIG_FILE), "nodes = \"http://x\"\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown field `nodes`"), "{err}");
        std::fs::write(dir.path().join(CONFIG_FILE), "[shard_nodes]\nx = \"http://x\"\n").unwrap();
        assert!(Config::load(dir.path()).is_err());
        std::fs::write(dir.path().join(CONFIG_FILE), "fee = \"1.2.3\"\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("fee:"), "{err}");
    }

    #[test]
    fn a_missing_config_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
    }
}
