//! `palisade`, the Palisade wallet, as a library: the binary (`main.rs`)
//! parses the command line and calls into [`commands`].
//!
//! - [`config`]: the home directory, `config.toml` and environment variables;
//! - [`keyring`]: encrypted key files in `<home>/keys/`;
//! - [`secret`]: passwords and seeds from files, the environment or a prompt;
//! - [`network`]: the genesis in use and which node answers for which shard;
//! - [`commands`]: keys, balance, transfer, tx, status, block;
//! - [`output`]: human and `--json` output, the spinner;
//! - [`error`]: every failure, with a hint where one helps.
//!
//! The wallet speaks to nodes only through `palisade_ledger::api::client`
//! and verifies proofs with `palisade_ledger::api::verify`. It builds the
//! ledger without its `storage` feature, so it never links RocksDB, and
//! depends on nothing that pulls in libp2p.

pub mod commands;
pub mod config;
pub mod error;
pub mod keyring;
pub mod network;
pub mod output;
pub mod secret;
