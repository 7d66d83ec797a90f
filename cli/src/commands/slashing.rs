//! Validators and their punishment: `palisade validators [SHARD]` shows
//! each committee member's stake, rewards and jailed status, and the offence
//! it was slashed for (and, with staking on, the epoch, its committee and
//! every bonded validator: active, pending, unbonding, jailed or inactive); `palisade evidence submit FILE` hands equivocation
//! evidence to a node of the offender's shard.

use std::path::Path;

use palisade_ledger::api::method;
use palisade_ledger::api::{EvidenceResponse, ShardValidators, StakingJson};
use palisade_ledger::slashing::Evidence;
use palisade_ledger::{Amount, ShardId, codec};
use serde_json::json;

use super::Context;
use crate::error::{Result, WalletError};
use crate::output::{Report, pal};

/// Largest evidence file read: the encoding is a few hundred bytes, hex twice
/// that, JSON a few times more.
const MAX_EVIDENCE_FILE_BYTES: u64 = 16 * 1024;

/// `validators [SHARD]`: each shard's committee from a node that runs it.
pub async fn validators(ctx: &Context, shard: Option<ShardId>) -> Result<Report> {
    let mut network = ctx.network()?;
    let shard_count = network.genesis().shard_count;
    let shards: Vec<ShardId> = match shard {
        Some(s) if s >= shard_count => {
            return Err(WalletError::Usage(format!("no shard {s}: the network has {shard_count} shards")));
        }
        Some(s) => vec![s],
        None => (0..shard_count).collect(),
    };
    let mut human = Vec::new();
    let mut entries = Vec::new();
    for shard in shards {
        let node = network.for_shard(shard).await?;
        let answer: Vec<ShardValidators> = node.client.call(method::VALIDATORS, json!({ "shard": shard })).await?;
        for entry in answer {
            human.push(format!(
                "shard {} at height {} (minted {}, burned {})",
                entry.shard,
                entry.height.map_or("-".into(), |h| h.to_string()),
                entry.minted_units.map_or("-".into(), |u| pal(Amount(u))),
                entry.burned_units.map_or("-".into(), |u| pal(Amount(u))),
            ));
            for v in &entry.validators {
                let line = match &v.state {
                    Some(s) => {
                        let status = match &s.slashed {
                            Some(slash) => format!(
                                "JAILED at height {} for equivocating at height {} view {} ({}), {} burned, evidence {}",
                                slash.included_at.saturating_add(1),
                                slash.offence_height,
                                slash.view,
                                slash.phase,
                                pal(Amount(slash.burned_units)),
                                slash.evidence
                            ),
                            None if s.jailed => "JAILED".to_string(),
                            None => "active".to_string(),
                        };
                        format!(
                            "  {:>2} {:<16} {}  stake {}  rewards {}  {status}",
                            v.index,
                            v.name,
                            v.address,
                            pal(Amount(s.stake_units)),
                            pal(Amount(s.rewards_units))
                        )
                    }
                    None => format!("  {:>2} {:<16} {}  (state not served by this node)", v.index, v.name, v.address),
                };
                human.push(line);
            }
            if let Some(staking) = &entry.staking {
                human.extend(staking_lines(staking));
            }
            entries.push(serde_json::to_value(&entry).unwrap_or_default());
        }
    }
    Ok(Report::new(human.join("\n"), json!({ "shards": entries })))
}

/// The staking part of a shard's entry: the epoch and its committee, then
/// every bonded validator with its status.
fn staking_lines(staking: &StakingJson) -> Vec<String> {
    let mut lines = vec![format!(
        "  epoch {} ({} blocks each): committee of {}, {} bonded",
        staking.epoch,
        staking.epoch_blocks,
        staking.committee.len(),
        staking.bonded.len()
    )];
    for bonded in &staking.bonded {
        let unbonding: Vec<String> = bonded
            .unbonding
            .iter()
            .map(|u| format!("{} back after epoch {}", pal(Amount(u.amount_units)), u.release_epoch))
            .collect();
        let unbonding =
            if unbonding.is_empty() { String::new() } else { format!("  unbonding {}", unbonding.join(", ")) };
        lines.push(format!(
            "    {} {:<9} stake {}  operator {}{unbonding}",
            bonded.address,
            bonded.status,
            pal(Amount(bonded.stake_units)),
            bonded.operator
        ));
    }
    lines
}

/// `evidence submit FILE`: FILE holds the evidence's bincode encoding as hex
/// (what `palisade_submitEvidence` takes) or its JSON form.
pub async fn submit_evidence(ctx: &Context, file: &Path) -> Result<Report> {
    let evidence = read_evidence(file)?;
    let mut network = ctx.network()?;
    let shard_count = network.genesis().shard_count;
    if evidence.shard >= shard_count {
        return Err(WalletError::Usage(format!(
            "the evidence is for shard {}, the network has {shard_count} shards",
            evidence.shard
        )));
    }
    let node = network.for_shard(evidence.shard).await?;
    let hex = hex::encode(codec::encode(&evidence));
    let answer: EvidenceResponse = node.client.call(method::SUBMIT_EVIDENCE, json!([hex])).await?;
    let (height, view, phase) = evidence.slot();
    let human = format!(
        "evidence {} accepted by {}: {} (shard {}) signed two {phase:?} votes at height {height} view {view}; \
         the next block slashes and jails it",
        answer.evidence,
        node.client.url(),
        answer.offender,
        answer.shard
    );
    Ok(Report::new(human, serde_json::to_value(&answer).unwrap_or_default()))
}

fn read_evidence(file: &Path) -> Result<Evidence> {
    let usage = |why: String| WalletError::Usage(format!("{}: {why}", file.display()));
    let size = std::fs::metadata(file).map_err(|e| usage(format!("cannot read it: {e}")))?.len();
    if size > MAX_EVIDENCE_FILE_BYTES {
        return Err(usage(format!("{size} bytes is too large for evidence (at most {MAX_EVIDENCE_FILE_BYTES})")));
    }
    let text = std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read it: {e}")))?;
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| usage(format!("not evidence JSON: {e}")));
    }
    palisade_ledger::slashing::evidence_from_hex(text).map_err(|e| usage(format!("neither evidence JSON nor hex: {e}")))
}
