//! `palisade transfer --to ADDRESS --amount PAL [--fee PAL] [--max-fee PAL] [--expires-in N]`.
//!
//! By default the fee is the sender's shard's current base fee (which rises
//! while the shard is congested, and is burned) plus a tip for the proposer
//! (the config's `fee`, else 0.000001 PAL); `--max-fee` refuses to pay more.
//! `--expires-in N`: no block more than N heights above the shard's current
//! one may include it, so a transfer a surge delays never executes late.
//!
//! The order matters: everything that can be checked without the password
//! is checked first (the recipient's checksum, its shard, the amounts, the
//! sender's balance and nonce from the node), then the key is unlocked, the
//! transfer signed and submitted, and — unless `--no-wait` — the wallet polls
//! until the transaction is final or rejected, with a spinner.
//!
//! Transfers stay within the sender's shard for now: a recipient on another
//! shard is refused before anything is signed.

use std::time::{Duration, Instant};

use palisade_ledger::api::client::ClientError;
use palisade_ledger::api::reason;
use palisade_ledger::api::route::Route;
use palisade_ledger::api::{ReceiptResponse, TransactionResponse};
use palisade_ledger::{Address, Amount, ShardId, TxBody, TxKind};
use serde_json::json;

use super::Context;
use crate::config::{DEFAULT_FEE, DEFAULT_WAIT_SECS};
use crate::error::{Result, WalletError};
use crate::output::{Report, amount_json, pal, spinner};
use crate::secret::PasswordUse;

/// How often the wallet asks whether the transaction is final.
pub const POLL: Duration = Duration::from_millis(100);

/// How any transaction the wallet sends is paid for and waited on (the
/// options `transfer` and `stake` share).
#[derive(Clone, Debug, Default)]
pub struct Sending {
    /// The whole fee in PAL; default: the sender's shard's base fee plus a
    /// tip (the config's `fee`, else [`DEFAULT_FEE`]).
    pub fee: Option<String>,
    /// The most the default fee may come to, in PAL.
    pub max_fee: Option<String>,
    /// Blocks after the current height that may still include it.
    pub expires_in: Option<u64>,
    /// Wait for finality (the default) or return once submitted.
    pub wait: bool,
    /// How long to wait; default: the config's, else [`DEFAULT_WAIT_SECS`].
    pub wait_secs: Option<u64>,
}

/// A transfer as given on the command line.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    /// The recipient, `pal1…`.
    pub to: String,
    /// The amount in PAL (`"1.5"`).
    pub amount: String,
    /// Fee, expiry and waiting.
    pub sending: Sending,
}

/// A transaction signed by the selected key and accepted by a node of its
/// shard.
pub struct Submitted {
    /// The network, for further calls.
    pub network: crate::network::Network,
    /// Every node of the sender's shard.
    pub route: Route,
    /// What was sent.
    pub tx: palisade_ledger::SignedTx,
    /// The sender's shard.
    pub from_shard: ShardId,
    /// The shard the node says took it.
    pub shard: ShardId,
    /// The fee paid.
    pub fee: Amount,
    /// Its expiry height, if any.
    pub expires_at: Option<u64>,
    /// When it was submitted.
    pub started: Instant,
}

/// Checks what can be checked without the password (the options, the
/// sender's balance for `debit` + fee), then unlocks the selected key, signs
/// a transaction of `kind` with the sender's next nonce and submits it.
pub async fn submit(ctx: &Context, sending: &Sending, debit: Amount, kind: TxKind) -> Result<Submitted> {
    let fee = sending.fee.as_deref().map(Amount::parse_pal).transpose()?;
    let max_fee = sending.max_fee.as_deref().map(Amount::parse_pal).transpose()?;
    if sending.expires_in == Some(0) {
        return Err(WalletError::Usage("--expires-in 0 expires at once; give at least 1 block".into()));
    }
    let name = ctx.selected_key()?;
    let ring = ctx.keyring();
    let key_file = ring.read(&name)?;
    let from = key_file.address();

    let mut network = ctx.network()?;
    let from_shard = network.shard_of(&from);
    // Every node of the shard, a healthy one first: a node that dies under
    // the transfer is replaced by the next without the user retrying.
    let mut route = network.route(from_shard).await?;
    let fee = fee_to_pay(ctx, &mut route, from_shard, fee, max_fee).await?;
    let account = route.call(async |client| client.account(&from, false).await).await?;
    let balance = Amount(account.balance_units);
    let needed = debit.checked_add(fee).ok_or_else(|| WalletError::Usage("amount + fee overflows".into()))?;
    if balance < needed {
        return Err(WalletError::InsufficientFunds { address: from.to_string(), balance, needed, amount: debit, fee });
    }

    let password = ctx.password(PasswordUse::Unlock, &name)?;
    let keypair = ring.unlock(&name, &key_file, &password)?;
    // The last height that may include it: counted from the height the
    // account was read at, the shard's committed tip then.
    let expires_at = sending.expires_in.map(|blocks| account.height.saturating_add(blocks));
    let tx = TxBody {
        chain_id: network.genesis().chain_id.clone(),
        sender: keypair.address(),
        nonce: account.nonce,
        fee,
        kind,
        expires_at,
    }
    .sign(&keypair);
    let id = tx.id();
    let started = Instant::now();
    let shard = match route.call(async |client| client.submit(&tx).await).await {
        Ok(submitted) => submitted.shard,
        // This very transaction (same id) is already pending, e.g. after a
        // `--no-wait` with the same arguments: wait for it like any other.
        Err(e) if e.rejection().is_some_and(|r| r.reason == reason::DUPLICATE) => from_shard,
        Err(e) => return Err(refusal(id, e)),
    };
    Ok(Submitted { network, route, tx, from_shard, shard, fee, expires_at, started })
}

impl Submitted {
    /// How long to wait for finality.
    pub fn timeout(&self, ctx: &Context, sending: &Sending) -> Duration {
        Duration::from_secs(sending.wait_secs.or(ctx.config.wait_secs).unwrap_or(DEFAULT_WAIT_SECS))
    }

    /// Waits (with a spinner) until it is final: its shard and height, or
    /// why it is not.
    pub async fn wait_final(&mut self, ctx: &Context, timeout: Duration) -> Result<(ShardId, u64)> {
        let id = self.tx.id();
        let bar = spinner(ctx.format, format!("waiting for {id} to be final"));
        let outcome = self.route.wait_final(&self.tx, POLL, timeout).await;
        bar.finish_and_clear();
        let waited_ms = self.started.elapsed().as_millis();
        match outcome? {
            TransactionResponse::Final { shard, height, .. } => Ok((shard, height)),
            TransactionResponse::Rejected { reason, .. } => Err(WalletError::Rejected { id, label: None, reason }),
            TransactionResponse::Pending { .. } => {
                Err(WalletError::NotFinal { id, waited_ms, state: "pending".into() })
            }
            TransactionResponse::Unknown { .. } => {
                Err(WalletError::NotFinal { id, waited_ms, state: "unknown to the node".into() })
            }
        }
    }
}

/// `transfer`.
pub async fn transfer(ctx: &Context, request: &TransferRequest) -> Result<Report> {
    let to = Address::parse(request.to.trim())?;
    let amount = Amount::parse_pal(&request.amount)?;
    if amount == Amount::ZERO {
        return Err(WalletError::Usage("the amount is zero; send at least 0.000000001 PAL".into()));
    }
    let sending = &request.sending;
    let mut sent = submit(ctx, sending, amount, TxKind::Transfer { to, amount }).await?;
    let (id, from, nonce) = (sent.tx.id(), sent.tx.body.sender, sent.tx.body.nonce);
    let to_shard = sent.network.shard_of(&to);
    let mut json = json!({
        "id": id.to_hex(),
        "from": from.to_string(),
        "to": to.to_string(),
        "amount": amount_json(amount),
        "fee": amount_json(sent.fee),
        "nonce": nonce,
        "expires_at": sent.expires_at,
        "shard": sent.shard,
        "state": "pending",
    });
    let summary = format!("{} from {from} to {to} (fee {}, nonce {nonce})", pal(amount), pal(sent.fee));
    if !sending.wait {
        let human = format!("submitted {id}\n{summary}\ncheck on it with `palisade tx {id}`");
        return Ok(Report::new(human, json));
    }

    let timeout = sent.timeout(ctx, sending);
    let (shard, height) = sent.wait_final(ctx, timeout).await?;
    let started = sent.started;
    let latency_ms = started.elapsed().as_millis();
    json["state"] = "final".into();
    json["shard"] = shard.into();
    json["height"] = height.into();
    json["latency_ms"] = u64::try_from(latency_ms).unwrap_or(u64::MAX).into();
    let mut human = format!("final on shard {shard} at height {height} in {latency_ms} ms");
    if to_shard != sent.from_shard {
        // Debited; the recipient's shard credits it against the receipt.
        let left = timeout.saturating_sub(started.elapsed());
        let bar = spinner(ctx.format, format!("waiting for shard {to_shard} to credit {id}"));
        let dest = sent.network.for_shard(to_shard).await?.client.clone();
        let credit = dest.wait_credited(&id, to_shard, POLL, left).await;
        bar.finish_and_clear();
        let credit_ms = started.elapsed().as_millis();
        match credit? {
            ReceiptResponse::Credited { height: credited_at, .. } => {
                json["state"] = "credited".into();
                json["credit"] = json!({
                    "shard": to_shard,
                    "height": credited_at,
                    "latency_ms": u64::try_from(credit_ms).unwrap_or(u64::MAX),
                });
                human = format!(
                    "debited on shard {shard} at height {height} in {latency_ms} ms; \
                     credited on shard {to_shard} at height {credited_at} in {credit_ms} ms"
                );
            }
            ReceiptResponse::NotCredited { .. } => {
                json["state"] = "in_flight".into();
                json["credit"] = json!({ "shard": to_shard, "state": "in_flight" });
                human = format!(
                    "debited on shard {shard} at height {height} in {latency_ms} ms; in flight to shard \
                     {to_shard} (not credited after {credit_ms} ms; it will be: check with `palisade tx {id}`)"
                );
            }
        }
    }
    Ok(Report::new(format!("{human}\n{summary}\nid: {id}"), json))
}

/// A refused submission: the node's reason if it rejected the transaction.
/// The fee a transfer pays: `--fee` as given, else the sender's shard's
/// base fee (asked of its node now: it moves with congestion) plus the
/// configured tip; either way at most `--max-fee`.
async fn fee_to_pay(
    ctx: &Context,
    route: &mut Route,
    shard: ShardId,
    fee: Option<Amount>,
    max_fee: Option<Amount>,
) -> Result<Amount> {
    let status = route.call(async |client| client.status().await).await?;
    let base_fee = Amount(status.shards.iter().find(|s| s.shard == shard).map_or(0, |s| s.base_fee_units));
    let fee = match fee {
        Some(fee) => fee,
        None => base_fee
            .checked_add(ctx.config.fee.unwrap_or(DEFAULT_FEE))
            .ok_or_else(|| WalletError::Usage("base fee + tip overflows".into()))?,
    };
    match max_fee {
        Some(max) if fee > max => Err(WalletError::FeeAboveMax { fee, base_fee, max }),
        _ => Ok(fee),
    }
}

fn refusal(id: palisade_ledger::Hash, error: ClientError) -> WalletError {
    match error.rejection() {
        Some(rejection) => WalletError::Rejected { id, label: Some(rejection.reason), reason: rejection.message },
        None => WalletError::Rpc(error),
    }
}
