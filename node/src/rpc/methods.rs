//! The `palisade_*` methods. Each reads the shared [`NodeContext`]: shard
//! statuses and queues for live facts, the store for committed ones (store
//! reads run on the blocking pool). Parameters may be given by position or
//! by name; docs/rpc.md lists both forms and every result's JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{PendingSubscriptionSink, RpcModule, SubscriptionMessage};
use palisade_ledger::state::ShardContext;
use palisade_ledger::store::ShardStore;
use palisade_ledger::tx::MAX_TX_BYTES;
use palisade_ledger::{Address, BlockHeader, Hash, ShardId, SignedTx, State, StateExt, StateKey, Tip, TxError, codec};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::errors::{busy, forward_busy, internal, invalid_params, rejected, shard_not_tracked};
use super::limits::Allowance;
use crate::context::NodeContext;
use crate::health::{judge, unix_ms};
use crate::mempool::Rejection;
use crate::shard::chain::decode_certificate;
use crate::shard::{ClientKey, TxState};
use crate::wire::TopicKind;
use palisade_ledger::api::{
    AccountProof, AccountResponse, BlockResponse, CertificateJson, CommitteeMember, ErrorJson, EvidenceResponse,
    FinalBlockNotice, MAX_SUBMIT_BATCH, ReceiptResponse, ShardStatusJson, ShardValidators, SlashJson, StatusResponse,
    SubmitOutcome, SubmitResponse, TransactionResponse, ValidatorJson, ValidatorState,
};

pub use palisade_ledger::api::method::*;

/// The metric label for a called method name: itself if it is ours, else
/// `unknown` (clients must not be able to grow the label set).
pub fn method_label(name: &str) -> &'static str {
    METHODS.iter().find(|m| **m == name).copied().unwrap_or("unknown")
}

/// Builds the module of every method over `ctx`.
pub fn module(ctx: Arc<NodeContext>) -> anyhow::Result<RpcModule<NodeContext>> {
    let mut module = RpcModule::from_arc(ctx);
    module.register_method(STATUS, |_, ctx, _| Ok::<_, ErrorObjectOwned>(status(ctx)))?;
    module.register_blocking_method(ACCOUNT, |params, ctx, _| account(&ctx, &params))?;
    module.register_async_method(SUBMIT_TRANSACTION, |params, ctx, extensions| async move {
        submit(&ctx, &params, extensions.get::<Allowance>().map(Allowance::client)).await
    })?;
    module.register_async_method(SUBMIT_TRANSACTIONS, |params, ctx, extensions| async move {
        submit_all(&ctx, &params, extensions.get::<Allowance>()).await
    })?;
    module.register_async_method(TRANSACTION, |params, ctx, _| async move { transaction(ctx, &params).await })?;
    module.register_blocking_method(BLOCK, |params, ctx, _| block(&ctx, &params))?;
    module.register_blocking_method(VALIDATORS, |params, ctx, _| validators(&ctx, &params))?;
    module.register_async_method(RECEIPT, |params, ctx, _| async move { receipt(ctx, &params).await })?;
    module
        .register_async_method(SUBMIT_EVIDENCE, |params, ctx, _| async move { submit_evidence(&ctx, &params).await })?;
    module.register_subscription(
        SUBSCRIBE_FINAL_BLOCKS,
        FINAL_BLOCK_NOTIFICATION,
        UNSUBSCRIBE_FINAL_BLOCKS,
        |params, pending, ctx, _| async move { final_blocks(ctx, params, pending).await },
    )?;
    Ok(module)
}

/// Parses `params` given either by position (in the order of `names`) or by
/// name, into `T` (whose optional fields may be left out).
fn parse_args<T: DeserializeOwned>(params: &Params, names: &[&str]) -> Result<T, ErrorObjectOwned> {
    let value = match params.as_str() {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).map_err(|e| invalid_params(e.to_string()))?,
    };
    args_object::<T>(value, names)
}

fn args_object<T: DeserializeOwned>(value: Value, names: &[&str]) -> Result<T, ErrorObjectOwned> {
    let object = match value {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        Value::Array(items) => {
            if items.len() > names.len() {
                return Err(invalid_params(format!(
                    "expected at most {} parameters ({}), got {}",
                    names.len(),
                    names.join(", "),
                    items.len()
                )));
            }
            names.iter().zip(items).filter(|(_, v)| !v.is_null()).map(|(n, v)| ((*n).to_string(), v)).collect()
        }
        _ => return Err(invalid_params("params must be an array or an object")),
    };
    serde_json::from_value(Value::Object(object)).map_err(|e| invalid_params(e.to_string()))
}

fn parse_address(text: &str) -> Result<Address, ErrorObjectOwned> {
    Address::parse(text.trim()).map_err(|e| invalid_params(e.to_string()))
}

fn parse_hash(what: &str, text: &str) -> Result<Hash, ErrorObjectOwned> {
    let text = text.trim();
    Hash::from_hex(text.strip_prefix("0x").unwrap_or(text)).map_err(|e| invalid_params(format!("{what}: {e}")))
}

fn check_shard(ctx: &NodeContext, shard: ShardId) -> Result<(), ErrorObjectOwned> {
    if shard < ctx.genesis.shard_count {
        Ok(())
    } else {
        Err(invalid_params(format!("no shard {shard}: the network has {} shards", ctx.genesis.shard_count)))
    }
}

fn committee(ctx: &NodeContext, shard: ShardId) -> Vec<CommitteeMember> {
    let validators = ctx.genesis.committee(shard).map(|c| c.validators.as_slice()).unwrap_or_default();
    validators
        .iter()
        .zip(0u32..)
        .map(|(v, index)| CommitteeMember {
            index,
            name: v.name.clone(),
            address: v.address,
            stake_units: v.stake_units,
            stake: palisade_ledger::Amount(v.stake_units).to_string(),
        })
        .collect()
}

/// `palisade_status`.
fn status(ctx: &NodeContext) -> StatusResponse {
    let now_ms = unix_ms();
    let shards = ctx
        .shards
        .values()
        .map(|handle| {
            let s = handle.status();
            let health = judge(&s, now_ms, ctx.health_stale_after_ms);
            ShardStatusJson {
                shard: s.shard,
                validator_index: s.validator_index.map(|i| i.0),
                height: s.height,
                last_block_hash: s.last_block_hash,
                view: s.view,
                next_leader: s.next_leader.map(|i| i.0),
                benched: s.benched.iter().map(|i| i.0).collect(),
                peer_height: s.peer_height,
                throttled_senders: s.throttled_senders,
                throttled_clients: s.throttled_clients,
                quarantined: s.quarantined.clone(),
                base_fee_units: s.base_fee_units,
                base_fee: palisade_ledger::Amount(s.base_fee_units).to_string(),
                mempool_txs: s.mempool_txs,
                seconds_since_last_commit: health.seconds_since_last_commit,
                healthy: health.healthy,
                health_reason: health.reason,
                committee: committee(ctx, s.shard),
            }
        })
        .collect();
    StatusResponse {
        chain_id: ctx.genesis.chain_id.clone(),
        genesis_hash: ctx.genesis_hash,
        peer_id: ctx.peer_id.clone(),
        shard_count: ctx.genesis.shard_count,
        shards,
    }
}

/// A read-only view of a tracked shard at its committed tip.
fn reader(ctx: &NodeContext, shard: ShardId) -> Result<ShardStore, ErrorObjectOwned> {
    if !ctx.shards.contains_key(&shard) {
        return Err(shard_not_tracked(shard));
    }
    let context: ShardContext = ctx
        .contexts
        .get(&shard)
        .cloned()
        .ok_or_else(|| internal("shard context", format!("no context for {shard}")))?;
    ShardStore::reader(ctx.store.clone(), context)
        .map_err(|e| internal("reading a shard tip", e))?
        .ok_or_else(|| internal("reading a shard tip", format!("shard {shard} is not initialised in the store")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountArgs {
    address: String,
    #[serde(default)]
    prove: Option<bool>,
}

/// `palisade_account(address, prove?)`.
fn account(ctx: &NodeContext, params: &Params) -> Result<AccountResponse, ErrorObjectOwned> {
    let args: AccountArgs = parse_args(params, &["address", "prove"])?;
    let address = parse_address(&args.address)?;
    let shard = address.shard(ctx.genesis.shard_count);
    let state = reader(ctx, shard)?;
    let tip = state.tip();
    let account = state.account(&address).map_err(|e| internal("reading an account", e))?;
    let validator = state.validator(&address).map_err(|e| internal("reading a validator record", e))?;
    let proof = if args.prove.unwrap_or(false) { Some(account_proof(ctx, &state, address, tip)?) } else { None };
    Ok(AccountResponse {
        address,
        shard,
        balance_units: account.balance.units(),
        balance: account.balance.to_string(),
        nonce: account.nonce,
        stake_units: validator.map(|v| v.stake.units()),
        stake: validator.map(|v| v.stake.to_string()),
        jailed: validator.map(|v| v.jailed),
        height: tip.height,
        proof,
    })
}

/// The account's proof at `tip`, with the header and certificate that make
/// its state root checkable.
fn account_proof(
    ctx: &NodeContext,
    state: &ShardStore,
    address: Address,
    tip: Tip,
) -> Result<AccountProof, ErrorObjectOwned> {
    let shard = state.shard_context().shard;
    let proof = state.prove(StateKey::Account(address), tip.height).map_err(|e| internal("proving an account", e))?;
    let (header, certificate) = if tip.height == 0 {
        (None, None)
    } else {
        (Some(stored_header(ctx, shard, tip)?), Some(stored_certificate(ctx, shard, tip.height)?))
    };
    Ok(AccountProof {
        height: tip.height,
        state_root: tip.state_root,
        value: proof.value.as_ref().map(hex::encode),
        proof: hex::encode(codec::encode(&proof)),
        header,
        block_hash: tip.hash,
        certificate,
    })
}

/// The header of the stored block at `tip`, decoded without its
/// transactions: a block's encoding starts with its header's.
fn stored_header(ctx: &NodeContext, shard: ShardId, tip: Tip) -> Result<BlockHeader, ErrorObjectOwned> {
    let bytes = ctx
        .store
        .block_bytes(shard, tip.height)
        .map_err(|e| internal("reading a block", e))?
        .ok_or_else(|| internal("reading a block", format!("none stored for {shard}/{}", tip.height)))?;
    let config = bincode::config::standard().with_limit::<MAX_HEADER_BYTES>();
    let (header, _): (BlockHeader, usize) =
        bincode::serde::decode_from_slice(&bytes, config).map_err(|e| internal("decoding a stored header", e))?;
    if header.hash() != tip.hash {
        return Err(internal(
            "decoding a stored header",
            format!("header of {shard}/{} does not match the tip", tip.height),
        ));
    }
    Ok(header)
}

/// The certificate stored with the final block at `shard`/`height`.
fn stored_certificate(ctx: &NodeContext, shard: ShardId, height: u64) -> Result<CertificateJson, ErrorObjectOwned> {
    let bytes = ctx
        .store
        .certificate(shard, height)
        .map_err(|e| internal("reading a certificate", e))?
        .ok_or_else(|| internal("reading a certificate", format!("block {shard}/{height} has none")))?;
    let certificate = decode_certificate(&bytes).map_err(|e| internal("decoding a stored certificate", e))?;
    // Verifiers need the committee that signed: who was jailed then.
    let jailed = palisade_ledger::committee::jailed_at(&reader(ctx, shard)?, height)
        .map_err(|e| internal("reading slash records", e))?;
    Ok(CertificateJson::new(&certificate, &bytes).with_jailed(&jailed))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceArgs {
    evidence_hex: String,
}

/// `palisade_submitEvidence(evidence_hex)`: the bincode encoding of a
/// `palisade_consensus::Evidence`, checked and pooled by the offender's
/// shard (which must run here), then gossiped to its proposers.
async fn submit_evidence(ctx: &NodeContext, params: &Params<'_>) -> Result<EvidenceResponse, ErrorObjectOwned> {
    let args: EvidenceArgs = parse_args(params, &["evidence_hex"])?;
    let evidence = palisade_ledger::slashing::evidence_from_hex(&args.evidence_hex)
        .map_err(|e| invalid_params(format!("evidence_hex: {e}")))?;
    let shard = evidence.shard;
    check_shard(ctx, shard)?;
    let handle = ctx.shards.get(&shard).ok_or_else(|| shard_not_tracked(shard))?;
    match handle.submit_evidence(evidence).await {
        Ok(Ok((hash, offender))) => Ok(EvidenceResponse { evidence: hash, shard, offender }),
        Ok(Err(reason)) => Err(invalid_params(format!("evidence refused: {reason}"))),
        Err(reason) => Err(busy(&reason)),
    }
}

/// A header is a few hundred bytes; this bounds what its decoder may allocate.
const MAX_HEADER_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitArgs {
    tx_hex: String,
}

/// `palisade_submitTransaction(tx_hex)`, from `client` (the intake
/// breaker's key; the RPC guard names it).
async fn submit(
    ctx: &NodeContext,
    params: &Params<'_>,
    client: Option<ClientKey>,
) -> Result<SubmitResponse, ErrorObjectOwned> {
    let args: SubmitArgs = parse_args(params, &["tx_hex"])?;
    let tx = decode_tx(&args.tx_hex)?;
    let answers = submit_decoded(ctx, vec![Ok(tx)], client).await;
    // One in, one out.
    answers.into_iter().next().unwrap_or_else(|| Err(internal("submitting", "no answer for one transaction")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitAllArgs {
    txs_hex: Vec<String>,
}

/// `palisade_submitTransactions(txs_hex)`: up to [`MAX_SUBMIT_BATCH`]
/// transactions in one call, each answered as `palisade_submitTransaction`
/// would have answered it alone. Those of one shard reach it as one input
/// (one queue slot, one batch signature check): the path for high-rate
/// clients, whose per-call costs (HTTP, JSON-RPC, a queue hop and a reply
/// per transaction) were most of what a submission cost.
async fn submit_all(
    ctx: &NodeContext,
    params: &Params<'_>,
    allowance: Option<&Allowance>,
) -> Result<Vec<SubmitOutcome>, ErrorObjectOwned> {
    let args: SubmitAllArgs = parse_args(params, &["txs_hex"])?;
    let count = args.txs_hex.len();
    if count > MAX_SUBMIT_BATCH {
        return Err(invalid_params(format!("{count} transactions exceed the limit of {MAX_SUBMIT_BATCH} per call")));
    }
    // Each transaction costs a rate-limit token, as a call of its own
    // would (the guard took the first); those beyond the bucket are
    // refused as such calls would be.
    let (covered, over) = match allowance {
        Some(allowance) => {
            let (taken, over) = allowance.take_up_to(count.saturating_sub(1));
            (taken.saturating_add(1), over)
        }
        None => (count, None),
    };
    // Each is decoded on its own: a malformed one fails alone.
    let txs = args
        .txs_hex
        .iter()
        .enumerate()
        .map(|(at, hex)| match &over {
            Some(over) if at >= covered => Err(over.clone()),
            _ => decode_tx(hex),
        })
        .collect();
    let answers = submit_decoded(ctx, txs, allowance.map(Allowance::client)).await;
    Ok(answers
        .into_iter()
        .map(|answer| match answer {
            Ok(response) => SubmitOutcome::Ok(response),
            Err(e) => SubmitOutcome::Error(ErrorJson {
                code: e.code(),
                message: e.message().to_owned(),
                data: e.data().and_then(|raw| serde_json::from_str(raw.get()).ok()),
            }),
        })
        .collect())
}

/// A transaction from its hex encoding (size-limited, decoded, not yet
/// verified).
fn decode_tx(text: &str) -> Result<SignedTx, ErrorObjectOwned> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() > MAX_TX_BYTES.saturating_mul(2) {
        return Err(invalid_params(format!(
            "transaction of {} bytes exceeds the limit of {MAX_TX_BYTES} bytes",
            text.len() / 2
        )));
    }
    let bytes = hex::decode(text).map_err(|e| invalid_params(format!("tx_hex is not hex: {e}")))?;
    SignedTx::from_bytes(&bytes).map_err(|e| invalid_params(format!("tx_hex is not a transaction: {e}")))
}

/// Submits `txs` in order (those already refused, by their decoding or
/// the rate limit, keep their error): those of each shard this node runs go
/// to it as one batch; those of other shards are checked and gossiped
/// there. The answers come back in the order of `txs`.
async fn submit_decoded(
    ctx: &NodeContext,
    txs: Vec<Result<SignedTx, ErrorObjectOwned>>,
    client: Option<ClientKey>,
) -> Vec<Result<SubmitResponse, ErrorObjectOwned>> {
    let mut answers: Vec<Option<Result<SubmitResponse, ErrorObjectOwned>>> = Vec::with_capacity(txs.len());
    let mut ours: BTreeMap<ShardId, Vec<(usize, SignedTx)>> = BTreeMap::new();
    for (at, tx) in txs.into_iter().enumerate() {
        let tx = match tx {
            Ok(tx) => tx,
            Err(e) => {
                answers.push(Some(Err(e)));
                continue;
            }
        };
        let shard = tx.body.sender.shard(ctx.genesis.shard_count);
        if ctx.shards.contains_key(&shard) {
            ours.entry(shard).or_default().push((at, tx));
            answers.push(None);
        } else {
            answers.push(Some(forward(ctx, shard, &tx)));
        }
    }
    for (shard, group) in ours {
        let Some(handle) = ctx.shards.get(&shard) else { continue };
        let (places, txs): (Vec<usize>, Vec<SignedTx>) = group.into_iter().unzip();
        match handle.submit_all(txs, client).await {
            Ok(verdicts) => {
                for (at, verdict) in places.into_iter().zip(verdicts) {
                    if let Some(slot) = answers.get_mut(at) {
                        *slot = Some(match verdict {
                            Ok(id) => Ok(SubmitResponse { id, shard, forwarded: false }),
                            Err(rejection) => Err(rejected(&rejection)),
                        });
                    }
                }
            }
            Err(reason) => {
                for at in places {
                    if let Some(slot) = answers.get_mut(at) {
                        *slot = Some(Err(busy(&reason)));
                    }
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(internal("submitting", "a transaction went unanswered"))))
        .collect()
}

/// A transaction for a shard this node does not run: check what needs no
/// state, so junk is not gossiped in our name, then hand it to the shard's
/// topic.
fn forward(ctx: &NodeContext, shard: ShardId, tx: &SignedTx) -> Result<SubmitResponse, ErrorObjectOwned> {
    forward_checks(ctx, tx).map_err(|e| rejected(&Rejection::Invalid(e)))?;
    let encoded = tx.to_bytes();
    let id = SignedTx::id_of(&encoded);
    // A batch of one: forwarding is rare (a client that asked the wrong node).
    let batch = crate::wire::encode_tx_batch(&[serde_bytes::ByteBuf::from(encoded)]);
    if !ctx.net.publish(shard, TopicKind::Txs, batch) {
        return Err(forward_busy(shard));
    }
    debug!(shard, %id, "forwarded a transaction for a shard this node does not run");
    Ok(SubmitResponse { id, shard, forwarded: true })
}

/// Chain id and signature: what a transaction for another shard must pass
/// before this node gossips it.
fn forward_checks(ctx: &NodeContext, tx: &SignedTx) -> Result<(), TxError> {
    if tx.body.chain_id != ctx.genesis.chain_id {
        return Err(TxError::WrongChain { expected: ctx.genesis.chain_id.clone(), got: tx.body.chain_id.clone() });
    }
    if !tx.verify_signature() {
        return Err(TxError::BadSignature);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionArgs {
    id: String,
}

/// `palisade_transaction(id)`.
async fn transaction(ctx: Arc<NodeContext>, params: &Params<'_>) -> Result<TransactionResponse, ErrorObjectOwned> {
    let args: TransactionArgs = parse_args(params, &["id"])?;
    let id = parse_hash("id", &args.id)?;
    // The shards' read views first, then the store: a shard updates its
    // view only after a block is durable, so a transaction that leaves the
    // mempool between the two reads is found final, never lost in between.
    let mut in_memory = None;
    for handle in ctx.shards.values() {
        match handle.tx_state(&id) {
            TxState::Pending => {
                in_memory = Some(TransactionResponse::Pending { id, shard: handle.shard });
                break;
            }
            TxState::Rejected { reason } if in_memory.is_none() => {
                in_memory = Some(TransactionResponse::Rejected { id, shard: handle.shard, reason });
            }
            TxState::Rejected { .. } | TxState::Unknown => {}
        }
    }
    let store = ctx.store.clone();
    let receipt = tokio::task::spawn_blocking(move || store.transaction(&id))
        .await
        .map_err(|e| internal("reading the transaction index", e))?
        .map_err(|e| internal("reading the transaction index", e))?;
    if let Some(r) = receipt {
        return Ok(TransactionResponse::Final {
            id,
            shard: r.shard,
            height: r.height,
            position: r.position,
            fee_units: r.fee.units(),
            fee: r.fee.to_string(),
            dest_shard: r.dest_shard,
        });
    }
    Ok(in_memory.unwrap_or(TransactionResponse::Unknown { id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptArgs {
    id: String,
    #[serde(default)]
    shard: Option<ShardId>,
}

/// `palisade_receipt(id, shard?)`: whether `shard` (by default, every shard
/// this node runs) credited the receipt of cross-shard transfer `id`.
async fn receipt(ctx: Arc<NodeContext>, params: &Params<'_>) -> Result<ReceiptResponse, ErrorObjectOwned> {
    let args: ReceiptArgs = parse_args(params, &["id", "shard"])?;
    let id = parse_hash("id", &args.id)?;
    let shards: Vec<ShardId> = match args.shard {
        Some(shard) => {
            check_shard(&ctx, shard)?;
            vec![shard]
        }
        None => ctx.shards.keys().copied().collect(),
    };
    let Some(&first) = shards.first() else { return Err(shard_not_tracked(0)) };
    // The read views first, then the store (see `transaction`).
    let pooled_on =
        shards.iter().copied().find(|shard| ctx.shards.get(shard).is_some_and(|handle| handle.receipt_pooled(&id)));
    for &shard in &shards {
        let state = reader(&ctx, shard)?;
        let applied = tokio::task::spawn_blocking(move || state.applied(&id))
            .await
            .map_err(|e| internal("reading a receipt", e))?
            .map_err(|e| internal("reading a receipt", e))?;
        if let Some(a) = applied {
            return Ok(ReceiptResponse::Credited {
                id,
                shard,
                height: a.height,
                source_shard: a.source_shard,
                source_height: a.source_height,
            });
        }
    }
    Ok(ReceiptResponse::NotCredited { id, shard: pooled_on.unwrap_or(first), pooled: pooled_on.is_some() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockArgs {
    #[serde(default)]
    shard: Option<ShardId>,
    #[serde(default)]
    height: Option<u64>,
    #[serde(default)]
    hash: Option<String>,
}

/// `palisade_block({shard, height} | {hash})`: params are that object, or
/// an array holding it, or `[shard, height]`.
fn block(ctx: &NodeContext, params: &Params) -> Result<Option<BlockResponse>, ErrorObjectOwned> {
    let value: Value = match params.as_str() {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).map_err(|e| invalid_params(e.to_string()))?,
    };
    let value = match value {
        Value::Array(mut items) if items.len() == 1 && items.first().is_some_and(Value::is_object) => {
            items.pop().unwrap_or_default()
        }
        other => other,
    };
    let args: BlockArgs = args_object(value, &["shard", "height"])?;
    let (shard, height) = match (args.shard, args.height, args.hash) {
        (Some(shard), Some(height), None) => {
            check_shard(ctx, shard)?;
            if !ctx.shards.contains_key(&shard) {
                return Err(shard_not_tracked(shard));
            }
            (shard, height)
        }
        (None, None, Some(hash)) => {
            let hash = parse_hash("hash", &hash)?;
            match ctx.store.block_location(&hash).map_err(|e| internal("reading the block index", e))? {
                Some(location) => location,
                None => return Ok(None),
            }
        }
        _ => return Err(invalid_params("give either {shard, height} or {hash}")),
    };
    let Some(block) = ctx.store.block(shard, height).map_err(|e| internal("reading a block", e))? else {
        return Ok(None);
    };
    Ok(Some(BlockResponse::new(&block, stored_certificate(ctx, shard, height)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorsArgs {
    #[serde(default)]
    shard: Option<ShardId>,
}

/// `palisade_validators(shard?)`.
fn validators(ctx: &NodeContext, params: &Params) -> Result<Vec<ShardValidators>, ErrorObjectOwned> {
    let args: ValidatorsArgs = parse_args(params, &["shard"])?;
    let shards: Vec<ShardId> = match args.shard {
        Some(shard) => {
            check_shard(ctx, shard)?;
            vec![shard]
        }
        None => (0..ctx.genesis.shard_count).collect(),
    };
    let mut out = Vec::with_capacity(shards.len());
    for shard in shards {
        let members = committee(ctx, shard);
        let state = if ctx.shards.contains_key(&shard) { Some(reader(ctx, shard)?) } else { None };
        let mut validators = Vec::with_capacity(members.len());
        for member in members {
            // Both `None` on shards this node does not run.
            let record = state.as_ref().map(|s| s.validator(&member.address)).transpose();
            let record = record.map_err(|e| internal("reading a validator", e))?.flatten();
            let slashed = state.as_ref().map(|s| s.slashed(&member.address)).transpose();
            let slashed = slashed.map_err(|e| internal("reading a slash record", e))?.flatten();
            validators.push(ValidatorJson {
                index: member.index,
                name: member.name,
                address: member.address,
                genesis_stake_units: member.stake_units,
                state: record.map(|r| ValidatorState {
                    stake_units: r.stake.units(),
                    stake: r.stake.to_string(),
                    rewards_units: r.rewards.units(),
                    rewards: r.rewards.to_string(),
                    jailed: r.jailed,
                    slashed: slashed.map(|s| SlashJson {
                        offence_height: s.height,
                        view: s.view,
                        phase: format!("{:?}", s.phase),
                        included_at: s.included_at,
                        burned_units: s.burned.units(),
                        evidence: s.evidence,
                    }),
                }),
            });
        }
        let chain =
            state.as_ref().map(|s| s.chain()).transpose().map_err(|e| internal("reading the chain record", e))?;
        let fees = state
            .as_ref()
            .map(palisade_ledger::fee::market)
            .transpose()
            .map_err(|e| internal("reading the fee record", e))?;
        let staking = state
            .as_ref()
            .map(palisade_ledger::api::staking_view)
            .transpose()
            .map_err(|e| internal("reading the staking records", e))?
            .flatten();
        out.push(ShardValidators {
            shard,
            tracked: state.is_some(),
            height: state.as_ref().map(|s| s.tip().height),
            validators,
            minted_units: chain.map(|c| c.minted.units()),
            burned_units: chain.map(|c| c.burned.units()),
            fees_burned_units: fees.map(|f| f.burned.units()),
            staking,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeArgs {
    shard: ShardId,
}

/// `palisade_subscribeFinalBlocks(shard)`: one notice per block this node
/// commits on the shard. A subscriber too slow to keep up skips blocks (the
/// shard never waits for it).
async fn final_blocks(
    ctx: Arc<NodeContext>,
    params: Params<'static>,
    pending: PendingSubscriptionSink,
) -> SubscriptionResult {
    let shard = match parse_args::<SubscribeArgs>(&params, &["shard"]) {
        Ok(args) => args.shard,
        Err(e) => {
            pending.reject(e).await;
            return Ok(());
        }
    };
    let Some(handle) = ctx.shards.get(&shard) else {
        pending.reject(shard_not_tracked(shard)).await;
        return Ok(());
    };
    // Subscribe before accepting, so no block committed after the client
    // got its subscription id is missed.
    let mut blocks = handle.subscribe();
    let sink = pending.accept().await?;
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            received = blocks.recv() => match received {
                Ok(block) => {
                    let notice = FinalBlockNotice {
                        shard,
                        height: block.block.header.height,
                        hash: block.hash,
                        tx_count: block.block.txs.len(),
                        timestamp_ms: block.block.header.timestamp_ms,
                    };
                    let message = SubscriptionMessage::from(serde_json::value::to_raw_value(&notice)?);
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    debug!(shard, skipped, "final-block subscriber lagging; skipped blocks");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
