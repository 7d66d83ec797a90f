//! `palisade stake bond --proof-file FILE --amount PAL` and `palisade stake
//! unbond --validator ADDRESS --amount PAL`: the selected key, as a
//! validator's operator, bonds stake to it or takes stake out (staking, see
//! README). The proof file is what `palisade-node keys prove-possession`
//! prints on the validator's machine: the validator key never leaves it.
//!
//! Everything that can be checked without the password is checked first:
//! staking is on, the proof is for this chain, names the selected key as
//! its operator and verifies, the amount and the balance; then the key is
//! unlocked, the transaction signed, submitted and (unless `--no-wait`)
//! waited on until final.

use std::io::Read;
use std::path::Path;

use palisade_ledger::api::PossessionJson;
use palisade_ledger::{Address, Amount, TxKind, keys::Signature, stake};
use serde_json::json;

use super::Context;
use super::transfer::{Sending, Submitted, submit};
use crate::error::{Result, WalletError};
use crate::output::{Report, amount_json, pal};

/// Largest proof file read (the JSON is a few hundred bytes).
const MAX_PROOF_FILE_BYTES: u64 = 16 * 1024;

/// `stake bond`.
pub async fn bond(ctx: &Context, proof_file: &Path, amount: &str, sending: &Sending) -> Result<Report> {
    let amount = positive(amount)?;
    let possession = read_proof(proof_file)?;
    let network = ctx.network()?;
    staking_on(network.genesis())?;
    if possession.chain_id != network.genesis().chain_id {
        return Err(WalletError::Usage(format!(
            "the proof is for chain {:?}, the wallet's network is {:?}",
            possession.chain_id,
            network.genesis().chain_id
        )));
    }
    let operator = ctx.keyring().read(&ctx.selected_key()?)?.address();
    if possession.operator != operator {
        return Err(WalletError::Usage(format!(
            "the proof lets {} bond this validator, not the selected key ({operator}): select it with --key",
            possession.operator
        )));
    }
    let p2p_key: [u8; 32] = hex_field(&possession.p2p_key, "p2p_key")?;
    let proof = Signature(hex_field(&possession.proof, "proof")?);
    let (validator, shard) = (possession.validator, possession.shard);
    if !stake::verify_possession(&possession.chain_id, shard, &validator, &operator, &p2p_key, &proof) {
        return Err(WalletError::Usage(format!(
            "the proof in {} does not verify for validator {validator}",
            proof_file.display()
        )));
    }
    let kind = TxKind::Bond { validator, shard, amount, p2p_key, proof };
    let sent = submit(ctx, sending, amount, kind).await?;
    let what = format!("bonded {} to validator {validator} on shard {shard}", pal(amount));
    report(ctx, sending, sent, what, json!({ "validator": validator.to_string(), "amount": amount_json(amount) })).await
}

/// `stake unbond`.
pub async fn unbond(ctx: &Context, validator: &str, amount: &str, sending: &Sending) -> Result<Report> {
    let validator = Address::parse(validator.trim())?;
    let amount = positive(amount)?;
    staking_on(ctx.network()?.genesis())?;
    let kind = TxKind::Unbond { validator, amount };
    let sent = submit(ctx, sending, Amount::ZERO, kind).await?;
    let what = format!("unbonding {} from validator {validator}", pal(amount));
    report(ctx, sending, sent, what, json!({ "validator": validator.to_string(), "amount": amount_json(amount) })).await
}

/// A positive amount of PAL.
fn positive(amount: &str) -> Result<Amount> {
    let amount = Amount::parse_pal(amount)?;
    if amount == Amount::ZERO {
        return Err(WalletError::Usage("the amount is zero".into()));
    }
    Ok(amount)
}

/// Refuses before anything is signed if the network has no staking.
fn staking_on(genesis: &palisade_ledger::Genesis) -> Result<()> {
    if genesis.params.staking.is_none() {
        return Err(WalletError::Usage(format!(
            "staking is off on {} (its genesis has no params.staking)",
            genesis.chain_id
        )));
    }
    Ok(())
}

/// The proof file `palisade-node keys prove-possession` wrote.
fn read_proof(path: &Path) -> Result<PossessionJson> {
    let io = |source| WalletError::Io { action: "read", path: path.to_path_buf(), source };
    let mut text = String::new();
    std::fs::File::open(path).map_err(io)?.take(MAX_PROOF_FILE_BYTES).read_to_string(&mut text).map_err(io)?;
    serde_json::from_str(&text)
        .map_err(|e| WalletError::Usage(format!("{} is no proof of possession: {e}", path.display())))
}

/// Fixed-size bytes from the hex of proof field `field`.
fn hex_field<T: hex::FromHex<Error = hex::FromHexError>>(text: &str, field: &str) -> Result<T> {
    T::from_hex(text.trim()).map_err(|e| WalletError::Usage(format!("the proof's {field} is not hex of its size: {e}")))
}

/// What a stake move reports: submitted, or final.
async fn report(
    ctx: &Context,
    sending: &Sending,
    mut sent: Submitted,
    what: String,
    mut json: serde_json::Value,
) -> Result<Report> {
    let id = sent.tx.id();
    json["id"] = id.to_hex().into();
    json["fee"] = amount_json(sent.fee);
    json["nonce"] = sent.tx.body.nonce.into();
    json["state"] = "pending".into();
    if !sending.wait {
        return Ok(Report::new(format!("submitted {id}: {what}\ncheck on it with `palisade tx {id}`"), json));
    }
    let timeout = sent.timeout(ctx, sending);
    let (shard, height) = sent.wait_final(ctx, timeout).await?;
    json["state"] = "final".into();
    json["shard"] = shard.into();
    json["height"] = height.into();
    let human = format!(
        "final on shard {shard} at height {height}: {what} (fee {}); committees change when the current \
         epoch ends (`palisade validators {shard}`)\nid: {id}",
        pal(sent.fee)
    );
    Ok(Report::new(human, json))
}
