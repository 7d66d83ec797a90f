//! `palisade balance [ADDRESS|KEY] [--prove]`.
//!
//! With `--prove` the node's answer is only printed if it verifies against
//! a block header certified by the shard's genesis committee (see
//! `palisade_ledger::api::verify`); otherwise the command fails.

use palisade_ledger::api::verify::{Certified, verify_account};
use palisade_ledger::{Address, Amount};
use serde_json::{Value, json};

use super::Context;
use crate::error::{Result, WalletError};
use crate::output::{Report, amount_json, pal};

/// What `balance` is about: an address, or a key by name (its address).
pub fn resolve_target(ctx: &Context, target: Option<&str>) -> Result<Address> {
    let ring = ctx.keyring();
    let Some(text) = target else {
        return Ok(ring.read(&ctx.selected_key()?)?.address());
    };
    if text.to_ascii_lowercase().starts_with("pal1") {
        return Ok(Address::parse(text)?);
    }
    match ring.read(text) {
        Ok(file) => Ok(file.address()),
        // Not a usable key name, or no key of that name.
        Err(WalletError::Usage(_) | WalletError::NoSuchKey { .. }) => Err(WalletError::Usage(format!(
            "`{text}` is neither an address (pal1…) nor the name of a key in {}",
            ring.dir().display()
        ))),
        Err(e) => Err(e),
    }
}

/// `balance`.
pub async fn balance(ctx: &Context, target: Option<&str>, prove: bool) -> Result<Report> {
    let address = resolve_target(ctx, target)?;
    let mut network = ctx.network()?;
    let shard = network.shard_of(&address);
    let client = network.for_shard(shard).await?.client.clone();
    let answer = client.account(&address, prove).await?;
    let mut human = vec![
        format!("address: {address}"),
        format!("shard:   {shard}"),
        format!("balance: {}", pal(Amount(answer.balance_units))),
        format!("nonce:   {}", answer.nonce),
        format!("height:  {}", answer.height),
    ];
    let mut json = json!({
        "address": address.to_string(),
        "shard": shard,
        "balance": amount_json(Amount(answer.balance_units)),
        "nonce": answer.nonce,
        "height": answer.height,
        "node": client.url(),
        "verified": false,
    });
    if prove {
        let verified = verify_account(network.genesis(), &answer)?;
        human.push(proven_line(&verified.certified));
        json["verified"] = true.into();
        json["proof"] = certified_json(&verified.certified);
    }
    Ok(Report::new(human.join("\n"), json))
}

/// The line `--prove` adds.
pub fn proven_line(certified: &Certified) -> String {
    if certified.height == 0 {
        return "proof:   verified against the genesis state (height 0) recomputed from the genesis in use".into();
    }
    format!(
        "proof:   verified against block {} at height {}, certified by {} of {} validators of shard {} \
         (commit certificate checked against the genesis committee)",
        certified.block_hash,
        certified.height,
        certified.signers.len(),
        certified.committee_size,
        certified.shard
    )
}

/// What `--json` shows of a verified block.
pub fn certified_json(certified: &Certified) -> Value {
    json!({
        "shard": certified.shard,
        "height": certified.height,
        "block_hash": certified.block_hash.to_hex(),
        "state_root": certified.state_root.to_hex(),
        "timestamp_ms": certified.timestamp_ms,
        "signers": certified.signers,
        "signed_stake_units": certified.signed_stake,
        "total_stake_units": certified.total_stake,
    })
}
