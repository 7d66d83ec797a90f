//! Reading the chain: `palisade tx ID`, `palisade status`, `palisade block
//! SHARD HEIGHT`.
//!
//! `block` prints a block only after checking its commit certificate against
//! the genesis committee and its transactions against the header's root.

use palisade_ledger::api::client::ClientError;
use palisade_ledger::api::verify::verify_block;
use palisade_ledger::api::{ReceiptResponse, ShardStatusJson, TransactionResponse};
use palisade_ledger::{Amount, Hash, ShardId};
use serde_json::{Value, json};

use super::Context;
use super::balance::certified_json;
use crate::error::{Result, WalletError};
use crate::network::Network;
use crate::output::{Report, amount_json, pal};

/// `tx ID`: asks the nodes in turn (the default first) until one knows it.
pub async fn tx(ctx: &Context, id: &str) -> Result<Report> {
    let text = id.trim();
    let id = Hash::from_hex(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|_| WalletError::Usage(format!("`{text}` is not a transaction id (64 hex digits)")))?;
    let mut network = ctx.network()?;
    let urls = network.nodes().all();
    let answers = network
        .ask_in_turn(
            urls,
            async |node| Ok(node.client.transaction(&id).await?),
            |answer| !matches!(answer, TransactionResponse::Unknown { .. }),
        )
        .await?;
    let mut asked = Vec::new();
    for (url, answer) in answers {
        match answer {
            Ok(TransactionResponse::Unknown { .. }) => asked.push(url),
            Ok(known @ TransactionResponse::Final { dest_shard: Some(dest), .. }) => {
                // Debited; where the destination stands on the credit.
                let credit = match network.for_shard(dest).await {
                    Ok(node) => node.client.receipt(&id, dest).await.map_err(WalletError::from),
                    Err(e) => Err(e),
                };
                let mut report = tx_report(&known, &url);
                let line = match &credit {
                    Ok(ReceiptResponse::Credited { height, .. }) => {
                        format!("credited on shard {dest} at height {height}")
                    }
                    Ok(ReceiptResponse::NotCredited { pooled: true, .. }) => {
                        format!("in flight to shard {dest}: its receipt waits for shard {dest}'s next block")
                    }
                    Ok(ReceiptResponse::NotCredited { pooled: false, .. }) => {
                        format!("in flight to shard {dest}: not credited yet")
                    }
                    Err(e) => format!("in flight to shard {dest}? its nodes did not say: {e}"),
                };
                report.json["credit"] = match credit {
                    Ok(answer) => serde_json::to_value(answer).unwrap_or(Value::Null),
                    Err(e) => json!({ "state": "unknown", "shard": dest, "error": e.to_string() }),
                };
                report.human = format!("{}\n{line}", report.human);
                return Ok(report);
            }
            Ok(known) => return Ok(tx_report(&known, &url)),
            // Another node answered; this one is left out of `asked`.
            Err(_) => {}
        }
    }
    let human = format!("unknown: no node asked ({}) knows transaction {id}", asked.join(", "));
    Ok(Report::new(human, json!({ "state": "unknown", "id": id.to_hex(), "nodes": asked })))
}

fn tx_report(answer: &TransactionResponse, url: &str) -> Report {
    let mut json = serde_json::to_value(answer).unwrap_or(Value::Null);
    json["node"] = url.into();
    let human = match answer {
        TransactionResponse::Final { id, shard, height, position, fee_units, dest_shard: None, .. } => format!(
            "final on shard {shard} at height {height} (position {position}, fee {})\nid: {id}",
            pal(Amount(*fee_units))
        ),
        TransactionResponse::Final { id, shard, height, position, fee_units, dest_shard: Some(dest), .. } => format!(
            "debited on shard {shard} at height {height} (position {position}, fee {}) for shard {dest}\nid: {id}",
            pal(Amount(*fee_units))
        ),
        TransactionResponse::Pending { id, shard } => format!("pending in shard {shard}'s mempool\nid: {id}"),
        TransactionResponse::Rejected { id, shard, reason } => format!("rejected by shard {shard}: {reason}\nid: {id}"),
        TransactionResponse::Unknown { id } => format!("unknown\nid: {id}"),
    };
    Report::new(human, json)
}

/// One shard's line of `status`.
struct ShardRow {
    shard: ShardId,
    node: String,
    status: Option<ShardStatusJson>,
    health: String,
}

/// How a shard is doing, as the node judges it (`/health`'s verdict).
fn health(status: &ShardStatusJson) -> String {
    match (&status.health_reason, status.healthy) {
        (_, true) => "ok".into(),
        (Some(reason), false) => reason.clone(),
        (None, false) => "unhealthy".into(),
    }
}

/// `status`: every shard of the genesis, each from the node that answers for it.
pub async fn status(ctx: &Context) -> Result<Report> {
    let mut network = ctx.network()?;
    let rows = shard_rows(&mut network).await?;
    let shard_count = network.genesis().shard_count;
    let chain_id = &network.genesis().chain_id;
    let mut human = vec![
        format!(
            "chain {chain_id} ({shard_count} shards), genesis {} ({})",
            network.genesis_hash(),
            network.genesis_source()
        ),
        format!(
            "{:<5} {:>8} {:>5} {:>12} {:>7}  {:<24} {}",
            "shard", "height", "view", "last commit", "mempool", "node", "health"
        ),
    ];
    let mut shards = Vec::new();
    for row in &rows {
        match &row.status {
            Some(s) => {
                human.push(format!(
                    "{:<5} {:>8} {:>5} {:>10.1} s {:>7}  {:<24} {}",
                    row.shard, s.height, s.view, s.seconds_since_last_commit, s.mempool_txs, row.node, row.health
                ));
                shards.push(json!({
                    "shard": row.shard, "node": row.node, "health": row.health, "height": s.height,
                    "view": s.view, "peer_height": s.peer_height, "mempool_txs": s.mempool_txs,
                    "seconds_since_last_commit": s.seconds_since_last_commit,
                    "validator_index": s.validator_index, "last_block_hash": s.last_block_hash.to_hex(),
                    "base_fee_units": s.base_fee_units, "next_leader": s.next_leader, "benched": s.benched,
                }));
            }
            None => {
                human.push(format!(
                    "{:<5} {:>8} {:>5} {:>12} {:>7}  {:<24} {}",
                    row.shard, "-", "-", "-", "-", row.node, row.health
                ));
                shards.push(json!({ "shard": row.shard, "node": row.node, "health": row.health }));
            }
        }
    }
    let json = json!({
        "chain_id": chain_id,
        "genesis_hash": network.genesis_hash().to_hex(),
        "shard_count": shard_count,
        "shards": shards,
    });
    Ok(Report::new(human.join("\n"), json))
}

/// `fee`: every shard's base fee, each from the node that answers for it.
pub async fn fee(ctx: &Context) -> Result<Report> {
    let mut network = ctx.network()?;
    let rows = shard_rows(&mut network).await?;
    let mut human = vec![format!("{:<5} {:>16}  {}", "shard", "base fee (PAL)", "node")];
    let mut shards = Vec::new();
    for row in &rows {
        match &row.status {
            Some(s) => {
                human.push(format!("{:<5} {:>16}  {}", row.shard, pal(Amount(s.base_fee_units)), row.node));
                shards.push(json!({
                    "shard": row.shard, "node": row.node, "height": s.height,
                    "base_fee": amount_json(Amount(s.base_fee_units)),
                }));
            }
            None => {
                human.push(format!("{:<5} {:>16}  {} ({})", row.shard, "-", row.node, row.health));
                shards.push(json!({ "shard": row.shard, "node": row.node, "health": row.health }));
            }
        }
    }
    human.push("every transaction pays at least its shard's base fee (burned) plus a tip for the proposer".into());
    Ok(Report::new(human.join("\n"), json!({ "shards": shards })))
}

/// Every shard of the genesis with its status, each from a node of it that
/// is up and calls it healthy, if any (else its first node, to say why);
/// each node asked once.
async fn shard_rows(network: &mut Network) -> Result<Vec<ShardRow>> {
    let shard_count = network.genesis().shard_count;
    let mut chosen: Vec<String> = Vec::new();
    for shard in 0..shard_count {
        let url = match network.for_shard(shard).await {
            Ok(node) => node.client.url().to_string(),
            Err(e @ WalletError::GenesisMismatch(_)) => return Err(e),
            Err(_) => network.nodes().url(shard).to_string(),
        };
        chosen.push(url);
    }
    let mut urls: Vec<String> = Vec::new();
    for url in &chosen {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    let answers = network.ask_in_turn(urls, async |node| Ok(node.status.clone()), |_| false).await?;
    let rows: Vec<ShardRow> = (0..shard_count)
        .map(|shard| {
            let node = chosen.get(shard as usize).cloned().unwrap_or_default();
            let (status, health) = match answers.iter().find(|(url, _)| *url == node).map(|(_, answer)| answer) {
                Some(Ok(answer)) => match answer.shards.iter().find(|s| s.shard == shard) {
                    Some(s) => (Some(s.clone()), health(s)),
                    None => (None, "not run by this node".to_string()),
                },
                Some(Err(WalletError::Rpc(ClientError::Unreachable { .. }))) => (None, "unreachable".to_string()),
                Some(Err(other)) => (None, format!("error: {other}")),
                None => (None, "not asked".to_string()),
            };
            ShardRow { shard, node, status, health }
        })
        .collect();
    Ok(rows)
}

/// `block SHARD HEIGHT`: a final block, verified.
pub async fn block(ctx: &Context, shard: ShardId, height: u64) -> Result<Report> {
    let mut network = ctx.network()?;
    let shard_count = network.genesis().shard_count;
    if shard >= shard_count {
        return Err(WalletError::Usage(format!(
            "no shard {shard}: the network has {shard_count} shards (0 to {})",
            shard_count.saturating_sub(1)
        )));
    }
    if height == 0 {
        return Err(WalletError::Usage("height 0 is the genesis, not a block; blocks start at height 1".into()));
    }
    let node = network.for_shard(shard).await?;
    let Some(block) = node.client.block(shard, height).await? else {
        // The height the node reported when it was checked, just before.
        let tip = node.status.shards.iter().find(|s| s.shard == shard);
        let tip = tip.map_or_else(|| "unknown".to_string(), |s| s.height.to_string());
        return Err(WalletError::NotFound(format!(
            "{} has no final block at height {height} of shard {shard} (its height is {tip})",
            node.client.url()
        )));
    };
    let certified = verify_block(network.genesis(), &block)?;
    let header = &block.header;
    let mut human = vec![
        format!("block {height} of shard {shard}: {}", block.hash),
        format!("parent:     {}", header.parent),
        format!("proposer:   {}", header.proposer),
        format!("time:       {} ms since the Unix epoch", header.timestamp_ms),
        format!("state root: {}", header.state_root),
        format!("tx root:    {}", header.tx_root),
        format!(
            "certified:  by {} of {} validators (signers {:?}), checked against the genesis committee",
            certified.signers.len(),
            certified.committee_size,
            certified.signers
        ),
        format!("txs:        {}", block.txs.len()),
    ];
    for tx in &block.txs {
        human.push(format!(
            "  {} {} -> {} {} (fee {}, nonce {})",
            tx.id,
            tx.sender,
            tx.to,
            pal(Amount(tx.amount_units)),
            pal(Amount(tx.fee_units)),
            tx.nonce
        ));
    }
    let mut json = serde_json::to_value(&block).unwrap_or(Value::Null);
    json["verified"] = true.into();
    json["proof"] = certified_json(&certified);
    Ok(Report::new(human.join("\n"), json))
}
