//! The sending accounts: deterministic dev keys (`bench-K`) bucketed by the
//! shard their address lands on, so every run reuses the same accounts; and
//! their funding from each shard's dev faucet.
//!
//! A transfer must stay on its sender's shard, so each shard's faucet funds
//! that shard's accounts, in waves of at most [`FUND_WAVE`] transfers (the
//! mempool's nonce-gap bound), waiting for each wave to be final; then the
//! load waits until every validator it goes to has executed the funding.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use palisade_ledger::api::client::Client;
use palisade_ledger::api::{AccountResponse, method};
use palisade_ledger::genesis::shard_faucet_name;
use palisade_ledger::{Address, Amount, Genesis, Keypair, ShardId, SignedTx};
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::rpc::Node;
use crate::local;

/// Candidates tried per account wanted: an address lands on a given shard
/// with probability 1/S, so this many fail only with negligible odds.
const KEY_TRIES_PER_ACCOUNT: u64 = 64;
/// Faucet transfers in flight at once: the mempool's nonce-gap bound.
pub const FUND_WAVE: usize = 64;
/// How long one funding wave may take to become final.
pub const FUND_WAVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a funding wave's progress is polled.
pub const FUND_POLL: Duration = Duration::from_millis(100);
/// Each account is topped up to at least this much, so short reruns do not
/// fund again.
const MIN_FUNDING_PAL: u64 = 100;
/// Fee of a faucet transfer, units.
const FUND_FEE_UNITS: u64 = 1_000;

/// One sending account.
#[derive(Clone, Debug)]
pub struct BenchAccount {
    /// Its key (the dev key `PREFIX-K`).
    pub key: Keypair,
    /// Its address.
    pub address: Address,
    /// The shard it lives on.
    pub shard: ShardId,
    /// Its position among its shard's accounts.
    pub index_in_shard: usize,
}

/// Per shard, the client its set-up calls (account reads, funding) go to.
pub type ShardClients = BTreeMap<ShardId, Client>;

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
        let key = Keypair::dev(&format!("{prefix}-{k}"));
        let address = key.address();
        let shard = address.shard(shard_count);
        let Some(bucket) = usize::try_from(shard).ok().and_then(|s| buckets.get_mut(s)) else { continue };
        if bucket.len() < per_shard {
            let index_in_shard = bucket.len();
            bucket.push(BenchAccount { key, address, shard, index_in_shard });
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

/// Who account `i` of `accounts` (as [`derive`] orders them) pays: the next
/// account of its own shard, wrapping. The shards are interleaved, so that
/// is the account `shard_count` places on.
pub fn recipient(accounts: &[BenchAccount], i: usize, shard_count: u32) -> Option<&BenchAccount> {
    let step = usize::try_from(shard_count).ok()?;
    accounts.get(i.checked_add(step)? % accounts.len().max(1))
}

/// Who account `i` pays when it pays across shards: the next account in
/// [`derive`]'s order, which is on the next shard (`None` with one shard).
pub fn cross_recipient(accounts: &[BenchAccount], i: usize) -> Option<&BenchAccount> {
    let from = accounts.get(i)?;
    let to = accounts.get(i.checked_add(1)? % accounts.len())?;
    (to.shard != from.shard).then_some(to)
}

/// The first validator of `shard` in `nodes`.
pub fn first_of_shard(nodes: &[Node], shard: ShardId) -> Result<&Node> {
    nodes.iter().find(|n| n.shard == shard).with_context(|| format!("no validator of shard {shard}"))
}

fn client_of(via: &ShardClients, shard: ShardId) -> Result<&Client> {
    via.get(&shard).with_context(|| format!("no validator of shard {shard}"))
}

/// Every account as its shard sees it (nonce, balance), in order.
pub async fn read_states(via: &ShardClients, accounts: &[BenchAccount]) -> Result<Vec<AccountResponse>> {
    let mut by_shard: BTreeMap<ShardId, (Vec<usize>, Vec<Value>)> = BTreeMap::new();
    for (i, account) in accounts.iter().enumerate() {
        let (positions, params) = by_shard.entry(account.shard).or_default();
        positions.push(i);
        params.push(json!({"address": account.address.to_bech32(), "prove": false}));
    }
    let mut states: Vec<Option<AccountResponse>> = vec![None; accounts.len()];
    for (shard, (positions, params)) in by_shard {
        let answers: Vec<AccountResponse> = local::batch_all(client_of(via, shard)?, method::ACCOUNT, params).await?;
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
    via: &ShardClients,
    accounts: &[BenchAccount],
    states: &[AccountResponse],
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
    let mut tasks = Vec::new();
    for (shard, list) in per_shard.into_iter().enumerate().filter(|(_, list)| !list.is_empty()) {
        let shard = ShardId::try_from(shard).context("shard index")?;
        tasks.push(fund_shard(genesis, client_of(via, shard)?, shard, list, bar));
    }
    for result in futures::future::join_all(tasks).await {
        result?;
    }
    Ok(total)
}

/// Each shard's height as its set-up client sees it now: after funding,
/// what every validator the load goes to must have committed, or it would
/// refuse the accounts' transfers for insufficient funds.
pub async fn funded_heights(via: &ShardClients) -> Result<BTreeMap<ShardId, u64>> {
    let mut targets = BTreeMap::new();
    for (&shard, client) in via {
        let height =
            client.height(shard).await?.with_context(|| format!("{} does not run shard {shard}", client.url()))?;
        targets.insert(shard, height);
    }
    Ok(targets)
}

/// One shard's faucet pays `transfers`, a wave at a time, through `client`.
async fn fund_shard(
    genesis: &Genesis,
    client: &Client,
    shard: ShardId,
    transfers: Vec<(Address, u64)>,
    bar: &ProgressBar,
) -> Result<()> {
    let name = shard_faucet_name(shard);
    let faucet = genesis
        .dev_keypair(&name)
        .with_context(|| format!("the genesis has no dev faucet {name}: bench needs a dev genesis"))?;
    let faucet_address = faucet.address();
    // Read once; each wave's poll sees the next wave's first nonce.
    let mut nonce = client.account(&faucet_address, false).await?.nonce;
    for wave in transfers.chunks(FUND_WAVE) {
        let mut params = Vec::with_capacity(wave.len());
        for (i, &(to, units)) in wave.iter().enumerate() {
            let tx_nonce = nonce.saturating_add(i as u64);
            let tx =
                SignedTx::transfer(&faucet, &genesis.chain_id, tx_nonce, to, Amount(units), Amount(FUND_FEE_UNITS));
            params.push(json!({"tx_hex": hex::encode(tx.to_bytes())}));
        }
        let _: Vec<IgnoredAny> = local::batch_all(client, method::SUBMIT_TRANSACTION, params)
            .await
            .with_context(|| format!("funding from {name}"))?;
        let done = nonce.saturating_add(wave.len() as u64);
        let deadline = tokio::time::Instant::now() + FUND_WAVE_TIMEOUT;
        // Bounded by the deadline.
        loop {
            nonce = client.account(&faucet_address, false).await?.nonce;
            if nonce >= done {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{name}: funding wave not final after {FUND_WAVE_TIMEOUT:?} (nonce {nonce} of {done})");
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
        let dev: Vec<Address> =
            (0..12 * KEY_TRIES_PER_ACCOUNT).map(|k| Keypair::dev(&format!("bench-{k}")).address()).collect();
        for (i, account) in accounts.iter().enumerate() {
            assert_eq!(account.address.shard(4), account.shard);
            assert_eq!(account.shard as usize, i % 4, "consecutive accounts sit on consecutive shards");
            assert_eq!(account.index_in_shard, i / 4);
            assert!(dev.contains(&account.address), "account {i} is a bench-K dev key");
            assert_eq!(account.key.address(), account.address);
            let to = recipient(&accounts, i, 4).unwrap();
            assert_eq!((to.shard, to.index_in_shard), (account.shard, (account.index_in_shard + 1) % 3));
            let across = cross_recipient(&accounts, i).unwrap();
            assert_eq!(across.shard, (account.shard + 1) % 4, "account {i} pays across to the next shard");
        }
        let again: Vec<Address> = derive("bench", 4, 3).unwrap().iter().map(|a| a.address).collect();
        assert_eq!(again, accounts.iter().map(|a| a.address).collect::<Vec<_>>());
        let alone = derive("bench", 1, 3).unwrap();
        assert!((0..3).all(|i| cross_recipient(&alone, i).is_none()), "one shard: nothing to cross to");
    }
}
