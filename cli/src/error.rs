//! Everything that can go wrong in the wallet, by class, each with what a
//! user needs to act: the key, file, URL or numbers involved, and for the
//! common cases a [`WalletError::hint`] saying what to do next.

use std::path::PathBuf;

use palisade_ledger::address::AddressError;
use palisade_ledger::amount::AmountParseError;
use palisade_ledger::api::client::ClientError;
use palisade_ledger::api::verify::ProofError;
use palisade_ledger::api::{code, reason};
use palisade_ledger::keystore::KeystoreError;
use palisade_ledger::{Amount, Hash};

/// What to do about an unreachable node on this machine: most likely the
/// local testnet the default settings point at is not running.
pub const TESTNET_HINT: &str =
    "is the local testnet running? start it with `cargo run --release -p palisade-testnet -- up`, or pass --node URL";
/// What to do about an unreachable node elsewhere.
pub const REMOTE_NODE_HINT: &str = "check the node URL (--node, $PALISADE_NODE, or `node` and [shard_nodes] in \
                                    config.toml) and that a palisade-node runs there and is reachable";

/// Why a wallet command failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// A command line value that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// Text that is not an address (most often a typo the checksum caught).
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Text that is not an amount.
    #[error("{0}")]
    Amount(#[from] AmountParseError),
    /// A key file could not be read, written or opened (wrong password included).
    #[error("key `{name}` ({}): {source}", path.display())]
    Key {
        /// The key's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// What failed (boxed: it is the largest error here).
        source: Box<KeystoreError>,
    },
    /// No key of that name.
    #[error("no key named `{name}` in {}", dir.display())]
    NoSuchKey {
        /// The name asked for.
        name: String,
        /// The key directory.
        dir: PathBuf,
    },
    /// A key of that name exists and `--force` was not given.
    #[error("a key named `{name}` already exists ({})", path.display())]
    KeyExists {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
    },
    /// No `--key`, no default key and not exactly one key.
    #[error("which key? {0}")]
    NoKeySelected(String),
    /// The password could not be obtained, or is unusable.
    #[error("{0}")]
    Password(String),
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The config file is unreadable or invalid.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The genesis file is unreadable or invalid.
    #[error("genesis {source_name}: {reason}")]
    Genesis {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The node runs another network than the genesis in use.
    #[error(transparent)]
    GenesisMismatch(Box<GenesisMismatch>),
    /// The node could not be reached or refused the call.
    #[error(transparent)]
    Rpc(#[from] ClientError),
    /// The sender holds less than amount + fee.
    #[error(
        "insufficient funds: {address} holds {balance} PAL, the transfer needs {needed} PAL ({amount} + fee {fee})"
    )]
    InsufficientFunds {
        /// The sender.
        address: String,
        /// What it holds.
        balance: Amount,
        /// Amount + fee.
        needed: Amount,
        /// The amount.
        amount: Amount,
        /// The fee.
        fee: Amount,
    },
    /// The fee the transfer would pay exceeds `--max-fee`.
    #[error("the fee would be {fee} PAL (the shard's base fee {base_fee} PAL plus the tip), above --max-fee {max} PAL")]
    FeeAboveMax {
        /// What it would pay.
        fee: Amount,
        /// The shard's base fee.
        base_fee: Amount,
        /// The cap.
        max: Amount,
    },
    /// The network refused the transaction.
    #[error("transaction {id} was rejected: {reason}")]
    Rejected {
        /// Its id.
        id: Hash,
        /// The node's label ([`palisade_ledger::api::reason`]), when it gave one.
        label: Option<String>,
        /// Why.
        reason: String,
    },
    /// The transaction was not final in time.
    #[error("transaction {id} is not final after {waited_ms} ms (last state: {state})")]
    NotFinal {
        /// Its id.
        id: Hash,
        /// How long we waited.
        waited_ms: u128,
        /// What the node last said.
        state: String,
    },
    /// A proof did not verify: the node's answer is not to be trusted.
    #[error("the node's answer did NOT verify: {0}")]
    Proof(#[from] ProofError),
    /// Something asked for does not exist (a block, a transaction).
    #[error("{0}")]
    NotFound(String),
}

impl WalletError {
    /// A key file error about key `name` at `path`.
    pub fn key(name: &str, path: PathBuf, source: KeystoreError) -> WalletError {
        WalletError::Key { name: name.to_string(), path, source: Box::new(source) }
    }

    /// What to do about it, when there is something specific to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            WalletError::Address(AddressError::Checksum { .. }) => {
                Some("addresses are `pal1…` bech32m; copy it again rather than typing it".into())
            }
            WalletError::Key { source, .. } if matches!(**source, KeystoreError::WrongPassword) => Some(
                "check the password (--password-file, $PALISADE_PASSWORD or the prompt); the file may also \
                 have been altered"
                    .into(),
            ),
            WalletError::NoSuchKey { .. } => Some("`palisade keys list` shows the keys there are".into()),
            WalletError::KeyExists { .. } => {
                Some("pass --force to replace it (the key in it is lost unless you exported it)".into())
            }
            WalletError::NoKeySelected(_) => Some("pass --key NAME, or set default_key in the config file".into()),
            WalletError::GenesisMismatch(_) => {
                Some("pass --genesis FILE with the node's genesis, or --node URL of a node of this network".into())
            }
            WalletError::Rpc(ClientError::Unreachable { url, .. }) if is_loopback(url) => Some(TESTNET_HINT.into()),
            WalletError::Rpc(ClientError::Unreachable { .. }) => Some(REMOTE_NODE_HINT.into()),
            WalletError::Rpc(ClientError::BadUrl { .. }) => Some("node URLs look like http://127.0.0.1:27001".into()),
            WalletError::Rpc(ClientError::Refused { code: code::SHARD_NOT_TRACKED, .. }) => Some(
                "this node does not run that shard: pass --node URL of a node that does, or set \
                 [shard_nodes] in the config file"
                    .into(),
            ),
            WalletError::Rpc(e) if e.is_retryable() => Some("the node is busy; retry in a moment".into()),
            WalletError::Rejected { label: Some(label), .. }
                if [reason::NONCE_TAKEN, reason::NONCE_GAP, reason::STALE_NONCE, reason::DUPLICATE]
                    .contains(&label.as_str()) =>
            {
                Some(
                    "an earlier transaction from this key may still be pending: wait for it (`palisade tx ID`) \
                     and retry, or pay a higher --fee to replace it"
                        .into(),
                )
            }
            WalletError::Rejected { label: Some(label), .. } if label == reason::FEE_BELOW_BASE => Some(
                "the shard is congested and its base fee rose: leave --fee out to pay the current base fee,                  or retry later (`palisade fee` shows it)"
                    .into(),
            ),
            WalletError::FeeAboveMax { .. } => {
                Some("the shard is congested: retry later (`palisade fee` shows the base fee) or raise --max-fee".into())
            }
            WalletError::NotFinal { id, .. } => Some(format!("check on it later with `palisade tx {id}`")),
            WalletError::Proof(_) => {
                Some("do not rely on this node's answers; try another node, and check the genesis in use".into())
            }
            _ => None,
        }
    }

    /// A short, stable name of the class, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            WalletError::Usage(_) => "usage",
            WalletError::Address(_) => "bad_address",
            WalletError::Amount(_) => "bad_amount",
            WalletError::Key { source, .. } if matches!(**source, KeystoreError::WrongPassword) => "wrong_password",
            WalletError::Key { .. } => "key_file",
            WalletError::NoSuchKey { .. } => "no_such_key",
            WalletError::KeyExists { .. } => "key_exists",
            WalletError::NoKeySelected(_) => "no_key_selected",
            WalletError::Password(_) => "password",
            WalletError::Io { .. } => "io",
            WalletError::Config { .. } => "config",
            WalletError::Genesis { .. } => "genesis",
            WalletError::GenesisMismatch(_) => "genesis_mismatch",
            WalletError::Rpc(ClientError::Unreachable { .. }) => "node_unreachable",
            WalletError::Rpc(_) => "node_error",
            WalletError::InsufficientFunds { .. } => "insufficient_funds",
            WalletError::FeeAboveMax { .. } => "fee_above_max",
            WalletError::Rejected { .. } => "rejected",
            WalletError::NotFinal { .. } => "not_final",
            WalletError::Proof(_) => "proof_failed",
            WalletError::NotFound(_) => "not_found",
        }
    }
}

/// Does `url` (`http://HOST:PORT/…`) name this machine? Every default node
/// (the local testnet's) does.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A node whose genesis is not the one in use.
#[derive(Debug, thiserror::Error)]
#[error(
    "{url} runs chain {node_chain:?} with genesis {node_hash}, but the wallet uses {source_name} \
     (chain {our_chain:?}, genesis {our_hash})"
)]
pub struct GenesisMismatch {
    /// The node.
    pub url: String,
    /// Its chain id.
    pub node_chain: String,
    /// Its genesis hash.
    pub node_hash: Hash,
    /// Where our genesis came from.
    pub source_name: String,
    /// Our chain id.
    pub our_chain: String,
    /// Our genesis hash.
    pub our_hash: Hash,
}

/// `Result` with a [`WalletError`].
pub type Result<T, E = WalletError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_testnet_hint_is_for_nodes_on_this_machine_only() {
        for local in [crate::config::DEFAULT_NODE, "http://localhost:27013", "http://[::1]:9/", "http://127.0.0.2:1"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["http://10.0.0.5:26657", "https://node.example.com", "http://127.example.com:1"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}
