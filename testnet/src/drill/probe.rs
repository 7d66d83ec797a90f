//! What the drill reads from the network: heights and tips over RPC,
//! committed-transaction counters from the operator port, and slashings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use palisade_ledger::api::ValidatorState;
use palisade_ledger::api::client::Client;
use palisade_ledger::{Hash, ShardId};

use crate::local::NodeSpec;
use crate::local::operator;

/// The counter of transactions a node committed, per shard.
const COMMITTED: &str = "palisade_committed_txs_total";
/// How often a wait polls.
pub const POLL: Duration = Duration::from_millis(200);

/// `shard`'s height on `client`, if it answers.
pub async fn height(client: &Client, shard: ShardId) -> Option<u64> {
    client.height(shard).await.ok().flatten()
}

/// `shard`'s `(height, block hash)` on `client`, if it answers.
pub async fn tip(client: &Client, shard: ShardId) -> Option<(u64, Hash)> {
    let status = client.status().await.ok()?;
    status.shards.iter().find(|s| s.shard == shard).map(|s| (s.height, s.last_block_hash))
}

/// The hash of `shard`'s block at `height` on each of `nodes` (indices
/// into `rpc`); `None` where a node does not have it or does not answer.
pub async fn block_hashes(rpc: &[Client], nodes: &[usize], shard: ShardId, height: u64) -> Vec<Option<Hash>> {
    let mut out = Vec::new();
    for &i in nodes {
        out.push(rpc[i].block(shard, height).await.ok().flatten().map(|b| b.hash));
    }
    out
}

/// Per node of `refs` (indices into `nodes`), its shard and the
/// transactions it has committed there.
pub async fn committed(nodes: &[NodeSpec], refs: &[usize]) -> Result<BTreeMap<ShardId, f64>> {
    let mut out = BTreeMap::new();
    for &i in refs {
        let node = nodes.get(i).ok_or_else(|| anyhow!("no node {i}"))?;
        let count = operator::read_metric(&node.metrics_url(), COMMITTED, node.shard)
            .await
            .map_err(|e| anyhow!("reading {}'s committed transactions: {e}", node.name))?;
        out.insert(node.shard, count);
    }
    Ok(out)
}

/// Per shard, the committed transactions per second between two counter
/// readings `over` apart.
pub fn rates(
    before: &BTreeMap<ShardId, f64>,
    after: &BTreeMap<ShardId, f64>,
    over: Duration,
) -> BTreeMap<ShardId, f64> {
    let seconds = over.as_secs_f64().max(f64::EPSILON);
    after
        .iter()
        .map(|(shard, end)| (*shard, (end - before.get(shard).copied().unwrap_or(0.0)).max(0.0) / seconds))
        .collect()
}

/// Committee indices of `shard`'s validators that are jailed or have a
/// slash record, and the stake the shard burned, as `client` sees them.
pub async fn punished(client: &Client, shard: ShardId) -> Result<(Vec<u32>, u64), String> {
    let all = client.validators().await.map_err(|e| e.to_string())?;
    let mine = all.iter().find(|v| v.shard == shard && v.tracked).ok_or("the shard is not tracked")?;
    let punished = mine
        .validators
        .iter()
        .filter(|v| v.state.as_ref().is_some_and(|s| s.jailed || s.slashed.is_some()))
        .map(|v| v.index)
        .collect();
    Ok((punished, mine.burned_units.unwrap_or(0)))
}

/// Waits until `client` shows `address` holding `units`, until `deadline`;
/// returns what it last showed.
pub async fn wait_balance(
    client: &Client,
    address: &palisade_ledger::Address,
    units: u64,
    deadline: Instant,
) -> Option<u64> {
    let mut seen = None;
    // Bounded by the deadline.
    loop {
        seen = client.account(address, false).await.ok().map(|a| a.balance_units).or(seen);
        if seen == Some(units) || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (for at most `timeout`) until `client` shows `shard`'s validator
/// `index` slashed; its record then (stake, jailing and the slash record,
/// which is `Some`), or `None` if it never was.
pub async fn wait_slashed(client: &Client, shard: ShardId, index: u32, timeout: Duration) -> Option<ValidatorState> {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        if let Ok(all) = client.validators().await {
            let state = all
                .into_iter()
                .find(|v| v.shard == shard)
                .and_then(|v| v.validators.into_iter().find(|m| m.index == index))
                .and_then(|m| m.state)
                .filter(|s| s.slashed.is_some());
            if state.is_some() {
                return state;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_counter_increments_per_second() {
        let before = BTreeMap::from([(0, 100.0), (1, 50.0)]);
        let after = BTreeMap::from([(0, 300.0), (1, 50.0), (2, 40.0)]);
        let r = rates(&before, &after, Duration::from_secs(2));
        assert_eq!(r, BTreeMap::from([(0, 100.0), (1, 0.0), (2, 20.0)]));
        // A counter that went back (a restarted node) counts nothing.
        let r = rates(&after, &before, Duration::from_secs(2));
        assert_eq!(r[&0], 0.0);
    }
}
