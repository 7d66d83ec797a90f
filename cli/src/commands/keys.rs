//! `palisade keys …`: create, list, show, import, import-dev, export.
//!
//! New keys use the keystore's default Argon2id cost. Only dev keys, whose
//! seeds are public anyway, may be stored with the insecure fast KDF.

use std::path::Path;

use palisade_ledger::keystore::{self, KdfParams, Zeroizing};
use palisade_ledger::{Address, Genesis, Keypair};
use serde_json::{Value, json};

use super::Context;
use crate::error::{Result, WalletError};
use crate::output::{Report, warn};
use crate::secret::{self, PasswordUse};

/// One key as `--json` shows it.
fn key_json(name: &str, address: &Address, genesis: &Genesis, file: &Path) -> Value {
    json!({
        "name": name,
        "address": address.to_string(),
        "shard": address.shard(genesis.shard_count),
        "file": file.display().to_string(),
    })
}

/// Stores `keypair` as `name`, asking for a new password; reports it with
/// its shard in `genesis`.
fn save(
    ctx: &Context,
    genesis: &Genesis,
    name: &str,
    keypair: &Keypair,
    params: KdfParams,
    force: bool,
    what: &str,
) -> Result<Report> {
    let password = ctx.password(PasswordUse::NewKey, name)?;
    let path = ctx.keyring().store(name, keypair, &password, params, force)?;
    let address = keypair.address();
    let shard = address.shard(genesis.shard_count);
    let human = format!("{what} key `{name}`\naddress: {address}\nshard:   {shard}\nfile:    {}", path.display());
    Ok(Report::new(human, key_json(name, &address, genesis, &path)))
}

/// `keys create NAME`: a new random key.
pub fn create(ctx: &Context, name: &str, force: bool) -> Result<Report> {
    let path = ctx.keyring().check_free(name, force)?;
    let genesis = ctx.load_genesis()?.genesis;
    let keypair = keystore::generate_keypair().map_err(|source| WalletError::key(name, path, source))?;
    save(ctx, &genesis, name, &keypair, KdfParams::default(), force, "created")
}

/// `keys import NAME`: a 32-byte seed given as hex (file, prompt or stdin).
pub fn import(ctx: &Context, name: &str, seed_file: Option<&Path>, force: bool) -> Result<Report> {
    ctx.keyring().check_free(name, force)?;
    let genesis = ctx.load_genesis()?.genesis;
    let seed = secret::read_seed(seed_file)?;
    let keypair = Keypair::from_seed(*seed);
    save(ctx, &genesis, name, &keypair, KdfParams::default(), force, "imported")
}

/// `keys import-dev NAME`: the INSECURE dev key derived from NAME, for dev
/// chains only.
pub fn import_dev(ctx: &Context, name: &str, insecure_fast_kdf: bool, force: bool) -> Result<Report> {
    let loaded = ctx.load_genesis()?;
    let genesis = &loaded.genesis;
    if !genesis.is_dev_chain() {
        return Err(WalletError::Usage(format!(
            "refusing to import dev key `{name}`: chain {:?} ({}) is not a dev chain. Dev keys are derived from \
             public names, so anyone can spend from them; use `keys create` or `keys import` instead",
            genesis.chain_id, loaded.source
        )));
    }
    ctx.keyring().check_free(name, force)?;
    // Names in this genesis resolve to their dev key (per-shard faucets
    // `faucet-S` included); any other name is still a valid, unfunded dev key.
    let keypair = genesis.dev_key(name);
    match genesis.role_of(&keypair.address()) {
        Some(role) => eprintln!("{name} is {role} in {}", genesis.chain_id),
        None => {
            let funded: Vec<&str> = genesis.accounts.iter().map(|a| a.name.as_str()).collect();
            warn(&format!(
                "{name} holds nothing at genesis in {} (funded dev accounts: {})",
                genesis.chain_id,
                funded.join(", ")
            ))
        }
    }
    let params = if insecure_fast_kdf { KdfParams::insecure_fast() } else { KdfParams::default() };
    save(ctx, genesis, name, &keypair, params, force, "imported dev")
}

/// `keys list`.
pub fn list(ctx: &Context) -> Result<Report> {
    let ring = ctx.keyring();
    let genesis = ctx.load_genesis()?.genesis;
    let default = ctx.key.clone().or_else(|| ctx.config.default_key.clone());
    let names = ring.names()?;
    let mut lines = Vec::new();
    let mut keys = Vec::new();
    for name in &names {
        let file = ring.read(name)?;
        let address = file.address();
        let mark = if default.as_deref() == Some(name.as_str()) { "*" } else { " " };
        lines.push(format!("{mark} {name:<16} {address}  shard {}", address.shard(genesis.shard_count)));
        keys.push(key_json(name, &address, &genesis, &ring.path(name)?));
    }
    let human = if names.is_empty() {
        format!("no keys in {}; create one with `palisade keys create NAME`", ring.dir().display())
    } else {
        lines.join("\n")
    };
    Ok(Report::new(human, json!({ "keys": keys, "default": default })))
}

/// `keys show [NAME]`: address and shard, no password needed.
pub fn show(ctx: &Context, name: Option<&str>) -> Result<Report> {
    let name = match name {
        Some(name) => name.to_string(),
        None => ctx.selected_key()?,
    };
    let ring = ctx.keyring();
    let file = ring.read(&name)?;
    let genesis = ctx.load_genesis()?.genesis;
    let address = file.address();
    let path = ring.path(&name)?;
    let human = format!(
        "key:     {name}\naddress: {address}\nshard:   {}\nfile:    {}",
        address.shard(genesis.shard_count),
        path.display()
    );
    Ok(Report::new(human, key_json(&name, &address, &genesis, &path)))
}

/// `keys export NAME`: the seed in hex, after the password. Anyone holding
/// it controls the account, so a warning goes to stderr.
pub fn export(ctx: &Context, name: &str) -> Result<Report> {
    let ring = ctx.keyring();
    let file = ring.read(name)?;
    let password = ctx.password(PasswordUse::Unlock, name)?;
    let keypair = ring.unlock(name, &file, &password)?;
    warn(&format!(
        "this is the secret seed of key `{name}`: anyone who sees it can spend from {}. Keep it offline.",
        keypair.address()
    ));
    let seed = Zeroizing::new(hex::encode(keypair.seed()));
    let json = json!({ "name": name, "address": keypair.address().to_string(), "seed": seed.as_str() });
    Ok(Report::new(seed.as_str(), json))
}
