//! The sending accounts: deterministic dev keys (`bench-K`) bucketed by the
//! shard their address lands on, so every run reuses the same accounts; and
//! their funding from each shard's dev faucet.
//!
//! A transfer must stay on its sender's shard, so each shard's faucet funds
//! that shard's accounts, in waves of at most [`FUND_WAVE`] transfers (the
//! mempool's nonce-gap bound), waiting for each wave to be final.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use palisade_ledger::api::method;
use palisade_ledger::genesis::shard_faucet_name;
use palisade_ledger::{Address, Amount, Genesis, Keypair, ShardId, SignedTx};
use serde::Deserialize;

use super::rpc::{self, Node};

/// Candidates tried per account wanted: an address lands on a given shard
/// with probability 1/S, so this many fail only with negligible odds.
const KEY_TRIES_PER_ACCOUNT: u64 = 64;
/// Faucet transfers in flight at once: the mempool's nonce-gap bound.
pub const FUND_WAVE: usize = 64;
/// How long one funding wave may take to become final.
const FUND_WAVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a funding wave's progress is polled.
const FUND_POLL: Duration = Duration::from_millis(100);
/// Each account is topped up to at least this much, so short reruns do not
/// fund again.
const MIN_FUNDING_PAL: u64 = 100;
/// Fee of a faucet transfer, units.
const FUND_FEE_UNITS: u64 = 1_000;

/// One sending account.
#[derive(Clone, Debug)]
pub struct BenchAccount {
    /// Its dev key name (`PREFIX-K`).
    pub name: String,
    /// Its key.
    pub key: Keypair,
    /// Its address.
    pub address: Address,
    /// The shard it lives on.
    pub shard: ShardId,
    /// Its position among its shard's accounts.
    pub index_in_shard: usize,
}

/// What a shard says about an account.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct AccountState {
    /// The nonce its next transaction must carry.
    pub nonce: u64,
    /// Spendable units.
    pub balance_units: u64,
}

/// `per_shard` accounts named `{prefix}-K` on each of `shard_count` shards,
/// ordered so that consecutive accounts are on consecutive shards
/// (round-robin over them spreads the load evenly).
pub fn derive(prefix: &str, shard_count: u32, per_shard: usize) -> Result<Vec<BenchAccount>> {
    let shards = usize::try_from(shard_count).context("shard count")?;
    let wanted = shards.checked_mul(per_shard).context("too many accounts")?;
    let tries = u64::try_from(wanted).unwrap_or(u64::MAX).saturating_mul(KEY_TRIES_PER_ACCOUNT);
    let mut buckets: Vec<Vec<BenchAccount>> = vec![Vec::new(); shards];
    let mut found = 0;
    for k in 0..tries {
        if found == wanted {
            break;
        }
        let name = format!("{prefix}-{k}");
        let key = Keypair::dev(&name);
        let address = key.address();
        let shard = address.shard(shard_count);
        let Some(bucket) = usize::try_from(shard).ok().and_then(|s| buckets.get_mut(s)) else { continue };
        if bucket.len() < per_shard {
            let index_in_shard = bucket.len();
            bucket.push(BenchAccount { name, key, address, shard, index_in_shard });
            found += 1;
        }
    }
    if found < wanted {
        bail!("found only {found} of {wanted} {prefix} accounts in {tries} dev keys");
    }
    let mut ordered = Vec::with_capacity(wanted);
    for j in 0..per_shard {
        for bucket in &buckets {
            if let Some(account) = bucket.get(j) {
                ordered.push(account.clone());
            }
        }
    }
    Ok(ordered)
}

/// The first validator of each shard, by shard.
pub fn first_of_shard(nodes: &[Node], shard: ShardId) -> Result<&Node> {
    nodes.iter().find(|n| n.shard == shard).with_context(|| format!("no validator of shard {shard}"))
}

/// Nonce and balance of every account, asked of a validator of its shard.
pub async fn read_states(nodes: &[Node], accounts: &[BenchAccount], shard_count: u32) -> Result<Vec<AccountState>> {
    let mut states: Vec<Option<AccountState>> = vec![None; accounts.len()];
    for shard in 0..shard_count {
        let node = first_of_shard(nodes, shard)?;
        let positions: Vec<usize> =
            (0..accounts.len()).filter(|&i| accounts.get(i).is_some_and(|a| a.shard == shard)).collect();
        let params = positions
            .iter()
            .filter_map(|&i| accounts.get(i))
            .map(|a| rpc::one(a.address.to_bech32()))
            .collect::<Result<Vec<_>>>()?;
        let answers: Vec<AccountState> = rpc::batch_all(node, method::ACCOUNT, params).await?;
        for (i, state) in positions.into_iter().zip(answers) {
            if let Some(slot) = states.get_mut(i) {
                *slot = Some(state);
            }
        }
    }
    states.into_iter().map(|s| s.context("an account's state is missing")).collect()
}

/// Tops up every account whose balance is below `needed_units[i]` to
/// `max(2 × needed, MIN_FUNDING_PAL)`, from its shard's faucet, shards in
/// parallel. Returns how many accounts were funded.
pub async fn fund(
    genesis: &Genesis,
    nodes: &[Node],
    accounts: &[BenchAccount],
    states: &[AccountState],
    needed_units: &[u64],
    bar: &ProgressBar,
) -> Result<usize> {
    let floor = Amount::from_pal(MIN_FUNDING_PAL).map_or(u64::MAX, Amount::units);
    let mut per_shard: Vec<Vec<(Address, u64)>> = vec![Vec::new(); genesis.shard_count as usize];
    for ((account, state), &needed) in accounts.iter().zip(states).zip(needed_units) {
        if state.balance_units >= needed {
            continue;
        }
        let target = needed.saturating_mul(2).max(floor);
        let top_up = target.saturating_sub(state.balance_units);
        if let Some(list) = per_shard.get_mut(account.shard as usize) {
            list.push((account.address, top_up));
        }
    }
    let total: usize = per_shard.iter().map(Vec::len).sum();
    if total == 0 {
        return Ok(0);
    }
    bar.set_length(total as u64);
    let tasks = per_shard.into_iter().enumerate().filter(|(_, list)| !list.is_empty()).map(|(shard, list)| {
        let shard = ShardId::try_from(shard).unwrap_or(0);
        fund_shard(genesis, nodes, shard, list, bar)
    });
    for result in futures::future::join_all(tasks).await {
        result?;
    }
    Ok(total)
}

/// One shard's faucet pays `transfers`, a wave at a time.
async fn fund_shard(
    genesis: &Genesis,
    nodes: &[Node],
    shard: ShardId,
    transfers: Vec<(Address, u64)>,
    bar: &ProgressBar,
) -> Result<()> {
    let name = shard_faucet_name(shard);
    let faucet = genesis
        .dev_keypair(&name)
        .with_context(|| format!("the genesis has no dev faucet {name}: bench needs a dev genesis"))?;
    let node = first_of_shard(nodes, shard)?;
    let faucet_address = faucet.address().to_bech32();
    for wave in transfers.chunks(FUND_WAVE) {
        let state: AccountState = rpc::call(node, method::ACCOUNT, rpc::one(&faucet_address)?).await?;
        let mut params = Vec::with_capacity(wave.len());
        for (i, &(to, units)) in wave.iter().enumerate() {
            let nonce = state.nonce.saturating_add(i as u64);
            let tx = SignedTx::transfer(&faucet, &genesis.chain_id, nonce, to, Amount(units), Amount(FUND_FEE_UNITS));
            params.push(rpc::one(hex::encode(tx.to_bytes()))?);
        }
        let _: Vec<serde_json::Value> = rpc::batch_all(node, method::SUBMIT_TRANSACTION, params)
            .await
            .with_context(|| format!("funding from {name}"))?;
        let done = state.nonce.saturating_add(wave.len() as u64);
        let deadline = tokio::time::Instant::now() + FUND_WAVE_TIMEOUT;
        loop {
            let now: AccountState = rpc::call(node, method::ACCOUNT, rpc::one(&faucet_address)?).await?;
            if now.nonce >= done {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{name}: funding wave not final after {FUND_WAVE_TIMEOUT:?} (nonce {} of {done})", now.nonce);
            }
            tokio::time::sleep(FUND_POLL).await;
        }
        bar.inc(wave.len() as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_deterministic_on_their_shard_and_interleaved() {
        let accounts = derive("bench", 4, 3).unwrap();
        assert_eq!(accounts.len(), 12);
        for (i, account) in accounts.iter().enumerate() {
            assert_eq!(account.address.shard(4), account.shard);
            assert_eq!(account.shard as usize, i % 4, "consecutive accounts sit on consecutive shards");
            assert_eq!(account.index_in_shard, i / 4);
            assert_eq!(Keypair::dev(&account.name).address(), account.address);
        }
        let again: Vec<Address> = derive("bench", 4, 3).unwrap().iter().map(|a| a.address).collect();
        assert_eq!(again, accounts.iter().map(|a| a.address).collect::<Vec<_>>());
    }
}
