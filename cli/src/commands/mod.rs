//! The wallet's commands, each a function from a [`Context`] (the global
//! settings) and its own arguments to a [`Report`](crate::output::Report):
//!
//! - [`keys`]: create, list, show, import, import-dev, export;
//! - [`balance`]: an account's balance, optionally proven;
//! - [`transfer`]: sign, submit and wait for finality;
//! - [`chain`]: `tx`, `status` and `block`;
//! - [`slashing`]: `validators` and `evidence submit`.

pub mod balance;
pub mod chain;
pub mod keys;
pub mod slashing;
pub mod stake;
pub mod transfer;

use std::path::PathBuf;

use palisade_ledger::keystore::Zeroizing;

use crate::config::Config;
use crate::error::Result;
use crate::keyring::Keyring;
use crate::network::{LoadedGenesis, Network, Nodes};
use crate::output::Format;
use crate::secret::{self, PasswordUse};

/// The settings every command shares: the global flags (already merged
/// with their environment variables) and the config file.
#[derive(Clone, Debug)]
pub struct Context {
    /// The wallet home.
    pub home: PathBuf,
    /// `<home>/config.toml`, or the empty config.
    pub config: Config,
    /// How to print.
    pub format: Format,
    /// `--node` / `$PALISADE_NODE`.
    pub node: Option<String>,
    /// `--genesis` / `$PALISADE_GENESIS`.
    pub genesis: Option<PathBuf>,
    /// `--key` / `$PALISADE_KEY`.
    pub key: Option<String>,
    /// `--password-file` / `$PALISADE_PASSWORD_FILE`.
    pub password_file: Option<PathBuf>,
}

impl Context {
    /// The keys in the home.
    pub fn keyring(&self) -> Keyring {
        Keyring::new(&self.home)
    }

    /// The genesis file to use, if any: the flag, else the config's (relative
    /// to the home); `None` means the built-in one.
    pub fn genesis_path(&self) -> Option<PathBuf> {
        self.genesis.clone().or_else(|| self.config.genesis.as_ref().map(|path| self.home.join(path)))
    }

    /// The genesis in use.
    pub fn load_genesis(&self) -> Result<LoadedGenesis> {
        LoadedGenesis::load(self.genesis_path().as_deref())
    }

    /// The network: the genesis in use and the node routing.
    pub fn network(&self) -> Result<Network> {
        let genesis = self.load_genesis()?;
        let nodes = Nodes::resolve(self.node.clone(), &self.config, &genesis.genesis);
        Ok(Network::new(genesis, nodes))
    }

    /// The key to use: `--key`, else the config's `default_key`, else the only key.
    pub fn selected_key(&self) -> Result<String> {
        self.keyring().select(self.key.as_deref(), self.config.default_key.as_deref())
    }

    /// The password of key `name`.
    pub fn password(&self, usage: PasswordUse, name: &str) -> Result<Zeroizing<Vec<u8>>> {
        secret::read_password(self.password_file.as_deref(), usage, name)
    }
}
