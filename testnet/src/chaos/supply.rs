//! The supply audit: where every unit the genesis created is, read from the
//! real network over RPC.
//!
//! At any moment each unit is in exactly one place: an account's balance, a
//! validator's stake, a validator's rewards (the fees it earned as
//! proposer), or in flight between shards (debited by a cross-shard
//! transfer final at its source, not yet credited by its destination). So
//! at a cut — one height per shard —
//!
//! ```text
//! genesis supply = Σ balances + Σ stake + Σ rewards + Σ in flight
//! ```
//!
//! - [`Chains`]: one validator per shard, read from height 1 to its tip.
//!   The transfers say which accounts can hold money (genesis accounts,
//!   senders, recipients) and which transfers cross shards.
//! - [`Credits`]: `palisade_receipt` on each destination says whether, and
//!   at which of its heights, a cross-shard transfer was credited.
//! - [`ShardCut`]: per shard, every account and the validator records
//!   (`palisade_validators`) read at one height: the reads are retried until
//!   they all answer from the same height.
//! - In flight at the cut: the cross-shard transfers debited at or below the
//!   source's cut height and not credited at or below the destination's,
//!   less those credited at the destination's cut but not yet debited at
//!   the source's (shards are read one after the other, so under load a
//!   later cut can see a credit whose debit an earlier cut did not).
//!
//! [`settle`] first gives receipts a bounded time to be credited: once the
//! load has stopped, every cross-shard transfer final at its source must be
//! credited, and in flight at the cut must be zero.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use palisade_ledger::api::client::Client;
use palisade_ledger::api::{AccountResponse, ReceiptResponse, ShardValidators, method};
use palisade_ledger::{Address, Genesis, Hash, ShardId};
use serde::Deserialize;
use serde_json::json;

use crate::local::batch_all;

/// Blocks fetched per batch while reading a chain (a block of a loaded
/// network can be megabytes).
const SCAN_BATCH: usize = 32;
/// Attempts at reading one shard's accounts and validators at one height.
const CUT_ATTEMPTS: usize = 10;
/// Attempts at a cut of every shard that covers every account the chains
/// name (a new account between two reads needs another cut).
const CUTS: usize = 5;
/// How often [`settle`] looks again for credits.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Per shard, the validator the audit reads.
pub type Readers = BTreeMap<ShardId, Client>;

/// A transfer as a final block holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Its id (also its receipt's).
    pub id: Hash,
    /// The shard that executed it (the sender's).
    pub shard: ShardId,
    /// The block height there.
    pub height: u64,
    /// Who paid amount and fee.
    pub sender: Address,
    /// Who is paid.
    pub to: Address,
    /// The recipient's shard: another than `shard` for a cross-shard one.
    pub dest: ShardId,
    /// Units paid.
    pub amount: u64,
    /// Units of fee.
    pub fee: u64,
}

impl Transfer {
    /// Whether its recipient lives on another shard.
    pub fn crosses(&self) -> bool {
        self.dest != self.shard
    }
}

/// What one validator per shard holds, from height 1 to `scanned`.
#[derive(Debug, Default)]
pub struct Chains {
    /// Per shard, the last height read.
    pub scanned: BTreeMap<ShardId, u64>,
    /// Every transfer read, by shard then height.
    pub transfers: Vec<Transfer>,
}

/// The fields of a block the audit reads.
#[derive(Debug, Deserialize)]
struct BlockTransfers {
    txs: Vec<TxFields>,
}

#[derive(Debug, Deserialize)]
struct TxFields {
    id: Hash,
    sender: Address,
    to: Address,
    amount_units: u64,
    fee_units: u64,
}

impl Chains {
    /// Reads `shard`'s blocks after the last read up to `to` from `client`.
    pub async fn extend(&mut self, shard: ShardId, client: &Client, to: u64, shard_count: u32) -> Result<(), String> {
        let from = self.scanned.get(&shard).copied().unwrap_or(0).saturating_add(1);
        let heights: Vec<u64> = (from..=to).collect();
        for chunk in heights.chunks(SCAN_BATCH) {
            let params = |h: &u64| json!({"shard": shard, "height": h});
            let answers = match client
                .batch::<Option<BlockTransfers>, _>(method::BLOCK, chunk.iter().map(params).collect())
                .await
            {
                Ok(answers) => answers,
                // Too big an answer, most likely: one block at a time.
                Err(_) => {
                    let mut one_by_one = Vec::with_capacity(chunk.len());
                    for height in chunk {
                        one_by_one.push(client.call::<Option<BlockTransfers>>(method::BLOCK, params(height)).await);
                    }
                    one_by_one
                }
            };
            for (&height, answer) in chunk.iter().zip(answers) {
                let block = answer
                    .map_err(|e| format!("reading shard {shard} block {height}: {e}"))?
                    .ok_or_else(|| format!("{} has no block {height} of shard {shard} below its tip", client.url()))?;
                self.transfers.extend(block.txs.into_iter().map(|tx| Transfer {
                    id: tx.id,
                    shard,
                    height,
                    sender: tx.sender,
                    to: tx.to,
                    dest: tx.to.shard(shard_count),
                    amount: tx.amount_units,
                    fee: tx.fee_units,
                }));
                self.scanned.insert(shard, height);
            }
        }
        Ok(())
    }

    /// Reads every shard up to its reader's current tip.
    pub async fn extend_to_tips(&mut self, readers: &Readers, shard_count: u32) -> Result<(), String> {
        for (&shard, client) in readers {
            let tip = client
                .height(shard)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{} does not run shard {shard}", client.url()))?;
            self.extend(shard, client, tip, shard_count).await?;
        }
        Ok(())
    }

    /// The cross-shard transfers.
    pub fn crossing(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.iter().filter(|t| t.crosses())
    }

    /// Per shard, every account that can hold money: the genesis accounts,
    /// and every sender and recipient of a transfer read; and `extra`.
    pub fn accounts(&self, genesis: &Genesis, extra: &[Address]) -> BTreeMap<ShardId, BTreeSet<Address>> {
        let n = genesis.shard_count;
        let mut out: BTreeMap<ShardId, BTreeSet<Address>> = (0..n).map(|s| (s, BTreeSet::new())).collect();
        let named = genesis.accounts.iter().map(|a| a.address).chain(extra.iter().copied());
        let moved = self.transfers.iter().flat_map(|t| [t.sender, t.to]);
        for address in named.chain(moved) {
            out.entry(address.shard(n)).or_default().insert(address);
        }
        out
    }
}

/// Where a destination credited a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// The destination height whose block credited it.
    pub height: u64,
    /// The source shard the destination recorded.
    pub source_shard: ShardId,
    /// The source height it recorded.
    pub source_height: u64,
}

/// The credited receipts, by transfer id.
pub type Credits = BTreeMap<Hash, Credit>;

/// Asks `dest`'s reader about every cross-shard transfer to `dest` not yet
/// known credited, and records the credits.
async fn read_credits(readers: &Readers, chains: &Chains, credits: &mut Credits) -> Result<(), String> {
    for (&dest, client) in readers {
        let ids: Vec<Hash> =
            chains.crossing().filter(|t| t.dest == dest && !credits.contains_key(&t.id)).map(|t| t.id).collect();
        let params: Vec<_> = ids.iter().map(|id| json!({"id": id.to_hex(), "shard": dest})).collect();
        let answers: Vec<ReceiptResponse> = batch_all(client, method::RECEIPT, params)
            .await
            .map_err(|e| format!("asking shard {dest} for receipts: {e}"))?;
        for answer in answers {
            if let ReceiptResponse::Credited { id, height, source_shard, source_height, .. } = answer {
                credits.insert(id, Credit { height, source_shard, source_height });
            }
        }
    }
    Ok(())
}

/// Reads the chains to their tips and the credits of their cross-shard
/// transfers, again every [`SETTLE_POLL`], until every one is credited or
/// `wait` has passed.
pub async fn settle(
    readers: &Readers,
    genesis: &Genesis,
    chains: &mut Chains,
    credits: &mut Credits,
    wait: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    // Bounded by the deadline.
    loop {
        chains.extend_to_tips(readers, genesis.shard_count).await?;
        read_credits(readers, chains, credits).await?;
        let done = chains.crossing().all(|t| credits.contains_key(&t.id));
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// One shard's money at one height.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardCut {
    /// The height every value was read at.
    pub height: u64,
    /// The balances of the accounts asked about.
    pub balances: BTreeMap<Address, u64>,
    /// Σ the committee's stake.
    pub stake: u128,
    /// Σ the committee's rewards.
    pub rewards: u128,
    /// Block rewards the shard created up to `height`.
    pub minted: u128,
    /// Stake the shard burned by slashing up to `height`.
    pub burned: u128,
    /// Base fees the shard burned up to `height`.
    pub fees_burned: u128,
}

/// Reads `addresses` (accounts of `shard`) and `shard`'s validator records
/// from `client`, all at one height: the reads are repeated (at most
/// [`CUT_ATTEMPTS`] times) until every answer names the same height.
pub async fn cut(client: &Client, shard: ShardId, addresses: &BTreeSet<Address>) -> Result<ShardCut, String> {
    let fail = |e: palisade_ledger::api::client::ClientError| format!("reading shard {shard}: {e}");
    let mut heights = Vec::new();
    for _ in 0..CUT_ATTEMPTS {
        let validators: Vec<ShardValidators> =
            client.call(method::VALIDATORS, json!({"shard": shard})).await.map_err(fail)?;
        let entry = validators
            .iter()
            .find(|v| v.shard == shard)
            .ok_or_else(|| format!("{} did not list shard {shard}'s validators", client.url()))?;
        let height =
            entry.height.ok_or_else(|| format!("{} does not run shard {shard}: no validator records", client.url()))?;
        let (mut stake, mut rewards) = (0u128, 0u128);
        for validator in &entry.validators {
            let state = validator
                .state
                .as_ref()
                .ok_or_else(|| format!("{} has no record of {}", client.url(), validator.name))?;
            stake += u128::from(state.stake_units);
            rewards += u128::from(state.rewards_units);
        }
        let minted = u128::from(entry.minted_units.unwrap_or(0));
        let burned = u128::from(entry.burned_units.unwrap_or(0));
        let fees_burned = u128::from(entry.fees_burned_units.unwrap_or(0));
        let params: Vec<_> = addresses.iter().map(|a| json!({"address": a.to_bech32(), "prove": false})).collect();
        let accounts: Vec<AccountResponse> = batch_all(client, method::ACCOUNT, params)
            .await
            .map_err(|e| format!("reading shard {shard}'s accounts: {e}"))?;
        let consistent = accounts.iter().all(|account| account.height == height);
        let balances = accounts.into_iter().map(|account| (account.address, account.balance_units)).collect();
        if consistent {
            return Ok(ShardCut { height, balances, stake, rewards, minted, burned, fees_burned });
        }
        heights.push(height);
    }
    Err(format!(
        "no read of shard {shard}'s {} accounts at one height in {CUT_ATTEMPTS} attempts (it moved under each: {heights:?})",
        addresses.len()
    ))
}

/// Every shard's [`ShardCut`], covering `extra` and every account the
/// chains name up to the tips read after it. The credits are refreshed
/// after the cut, so a credit at or below a destination's cut height is in
/// them.
pub async fn cut_all(
    readers: &Readers,
    genesis: &Genesis,
    extra: &[Address],
    chains: &mut Chains,
    credits: &mut Credits,
) -> Result<BTreeMap<ShardId, ShardCut>, String> {
    for _ in 0..CUTS {
        let wanted = chains.accounts(genesis, extra);
        let mut cuts = BTreeMap::new();
        for (&shard, client) in readers {
            let addresses = wanted.get(&shard).cloned().unwrap_or_default();
            cuts.insert(shard, cut(client, shard, &addresses).await?);
        }
        // Whatever reached a cut is at or below the tips read now.
        chains.extend_to_tips(readers, genesis.shard_count).await?;
        read_credits(readers, chains, credits).await?;
        let covered = chains.accounts(genesis, extra).iter().all(|(shard, addresses)| {
            cuts.get(shard).is_some_and(|cut: &ShardCut| addresses.iter().all(|a| cut.balances.contains_key(a)))
        });
        if covered {
            return Ok(cuts);
        }
    }
    Err(format!("new accounts kept appearing: no cut of every shard covered them in {CUTS} attempts"))
}

/// The tally at a cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Supply {
    /// What the genesis created.
    pub genesis: u128,
    /// Σ balances over every shard.
    pub balances: u128,
    /// Σ stake.
    pub stake: u128,
    /// Σ rewards.
    pub rewards: u128,
    /// Σ block rewards created.
    pub minted: u128,
    /// Σ stake burned by slashing.
    pub burned: u128,
    /// Σ base fees burned.
    pub fees_burned: u128,
    /// Σ amounts debited at the cut and not credited (less those credited
    /// and not yet debited).
    pub in_flight: i128,
    /// The transfers debited at the cut and not credited.
    pub stranded: Vec<Transfer>,
    /// Per shard, the cut's height.
    pub heights: BTreeMap<ShardId, u64>,
}

impl Supply {
    /// Σ balances + stake + rewards + in flight.
    pub fn accounted(&self) -> i128 {
        let held = self.balances.saturating_add(self.stake).saturating_add(self.rewards);
        i128::try_from(held).unwrap_or(i128::MAX).saturating_add(self.in_flight)
    }

    /// What should exist: the genesis supply, plus block rewards, less burns
    /// (slashed stake and base fees).
    pub fn expected(&self) -> i128 {
        let created =
            self.genesis.saturating_add(self.minted).saturating_sub(self.burned).saturating_sub(self.fees_burned);
        i128::try_from(created).unwrap_or(i128::MAX)
    }

    /// Units that appeared (positive) or vanished (negative).
    pub fn discrepancy(&self) -> i128 {
        self.accounted().saturating_sub(self.expected())
    }
}

/// Tallies `cuts` against `genesis_units`, with the cross-shard transfers
/// of `chains` placed by `credits`.
pub fn tally(genesis_units: u128, cuts: &BTreeMap<ShardId, ShardCut>, chains: &Chains, credits: &Credits) -> Supply {
    let mut supply = Supply { genesis: genesis_units, ..Supply::default() };
    for (&shard, cut) in cuts {
        supply.balances += cut.balances.values().map(|&b| u128::from(b)).sum::<u128>();
        supply.stake += cut.stake;
        supply.rewards += cut.rewards;
        supply.minted += cut.minted;
        supply.burned += cut.burned;
        supply.fees_burned += cut.fees_burned;
        supply.heights.insert(shard, cut.height);
    }
    let at = |shard: ShardId| cuts.get(&shard).map_or(0, |c| c.height);
    for transfer in chains.crossing() {
        let debited = transfer.height <= at(transfer.shard);
        let credited = credits.get(&transfer.id).is_some_and(|c| c.height <= at(transfer.dest));
        let amount = i128::from(transfer.amount);
        match (debited, credited) {
            (true, false) => {
                supply.in_flight += amount;
                supply.stranded.push(transfer.clone());
            }
            (false, true) => supply.in_flight -= amount,
            _ => {}
        }
    }
    supply
}

/// Appends a violation if `supply` does not add up, and one if anything is
/// still in flight (`waited` after the load stopped).
pub fn check(supply: &Supply, waited: Duration, violations: &mut Vec<String>) {
    let off = supply.discrepancy();
    if off != 0 {
        violations.push(format!(
            "supply: the genesis created {} units, blocks rewarded {}, slashing burned {} and base fees {}; at the \
             cut (heights {:?}) the shards hold {} in balances + {} stake + {} rewards, and {} are in flight: {} units {}",
            supply.genesis,
            supply.minted,
            supply.burned,
            supply.fees_burned,
            supply.heights,
            supply.balances,
            supply.stake,
            supply.rewards,
            supply.in_flight,
            off.unsigned_abs(),
            if off > 0 { "appeared" } else { "vanished" }
        ));
    }
    if let Some(first) = supply.stranded.first() {
        let units: u128 = supply.stranded.iter().map(|t| u128::from(t.amount)).sum();
        violations.push(format!(
            "receipts: {} cross-shard transfers ({units} units) final at their source are not credited at their \
             destination {waited:?} after the load stopped, e.g. {} (shard {} height {} → shard {})",
            supply.stranded.len(),
            first.id,
            first.shard,
            first.height,
            first.dest
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(n: u8, shard: ShardId, height: u64, dest: ShardId, amount: u64) -> Transfer {
        Transfer {
            id: Hash([n; 32]),
            shard,
            height,
            sender: Address([n; 32]),
            to: Address([n.wrapping_add(100); 32]),
            dest,
            amount,
            fee: 10,
        }
    }

    fn cut(height: u64, balance: u64, rewards: u128) -> ShardCut {
        ShardCut {
            height,
            balances: BTreeMap::from([(Address([0; 32]), balance)]),
            stake: 1_000,
            rewards,
            minted: 0,
            burned: 0,
            fees_burned: 0,
        }
    }

    fn credit(height: u64) -> Credit {
        Credit { height, source_shard: 0, source_height: 0 }
    }

    #[test]
    fn money_in_flight_counts_until_the_destination_cut_credits_it() {
        // Genesis: 2 × (1 000 stake + 500 balance). Shard 0 sent 100 to
        // shard 1 at height 5 with a fee of 10.
        let chains = Chains { scanned: BTreeMap::new(), transfers: vec![transfer(1, 0, 5, 1, 100)] };
        let genesis = 3_000;
        let sent = BTreeMap::from([(0, cut(5, 390, 10)), (1, cut(7, 500, 0))]);
        // Not credited: in flight.
        let s = tally(genesis, &sent, &chains, &Credits::new());
        assert_eq!((s.in_flight, s.discrepancy(), s.stranded.len()), (100, 0, 1));
        let mut v = Vec::new();
        check(&s, Duration::from_secs(1), &mut v);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("receipts: 1 cross-shard transfers (100 units)"), "{}", v[0]);
        // Credited at 8, above shard 1's cut: still in flight at the cut.
        let later = Credits::from([(Hash([1; 32]), credit(8))]);
        assert_eq!(tally(genesis, &sent, &chains, &later).in_flight, 100);
        // Credited at or below the cut: nothing in flight, all adds up.
        let landed = BTreeMap::from([(0, cut(5, 390, 10)), (1, cut(8, 600, 0))]);
        let s = tally(genesis, &landed, &chains, &later);
        assert_eq!((s.in_flight, s.discrepancy()), (0, 0));
        let mut v = Vec::new();
        check(&s, Duration::from_secs(1), &mut v);
        assert!(v.is_empty(), "{v:?}");
        // Credited while shard 0's cut predates the debit: counted back.
        let early = BTreeMap::from([(0, cut(4, 500, 0)), (1, cut(8, 600, 0))]);
        let s = tally(genesis, &early, &chains, &later);
        assert_eq!((s.in_flight, s.discrepancy()), (-100, 0));
        // A base fee of 3 of the fee's 10 was burned: 7 to the proposer.
        let burned = BTreeMap::from([(0, ShardCut { fees_burned: 3, ..cut(5, 390, 7) }), (1, cut(8, 600, 0))]);
        let s = tally(genesis, &burned, &chains, &later);
        assert_eq!((s.fees_burned, s.discrepancy()), (3, 0));
        let unburned = BTreeMap::from([(0, cut(5, 390, 7)), (1, cut(8, 600, 0))]);
        assert_eq!(tally(genesis, &unburned, &chains, &later).discrepancy(), -3, "a burn not reported vanishes");
    }

    #[test]
    fn a_double_credit_or_a_lost_unit_is_a_violation() {
        let chains = Chains { scanned: BTreeMap::new(), transfers: vec![transfer(1, 0, 5, 1, 100)] };
        let credits = Credits::from([(Hash([1; 32]), credit(6))]);
        // The destination credited 200 for a receipt of 100.
        let twice = BTreeMap::from([(0, cut(5, 390, 10)), (1, cut(8, 700, 0))]);
        let mut v = Vec::new();
        check(&tally(3_000, &twice, &chains, &credits), Duration::ZERO, &mut v);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("supply:") && v[0].ends_with("100 units appeared"), "{}", v[0]);
        // The fee vanished (no proposer earned it).
        let lost = BTreeMap::from([(0, cut(5, 390, 0)), (1, cut(8, 600, 0))]);
        let mut v = Vec::new();
        check(&tally(3_000, &lost, &chains, &credits), Duration::ZERO, &mut v);
        assert!(v.len() == 1 && v[0].ends_with("10 units vanished"), "{v:?}");
    }

    #[test]
    fn accounts_are_genesis_senders_and_recipients_by_shard() {
        let genesis = Genesis::dev(2, 4);
        let chains = Chains { scanned: BTreeMap::new(), transfers: vec![transfer(3, 0, 1, 1, 5)] };
        let accounts = chains.accounts(&genesis, &[]);
        let all: BTreeSet<Address> = accounts.values().flatten().copied().collect();
        for named in &genesis.accounts {
            assert!(accounts[&named.address.shard(2)].contains(&named.address));
        }
        assert!(all.contains(&Address([3; 32])) && all.contains(&Address([103; 32])));
        for (shard, addresses) in &accounts {
            assert!(addresses.iter().all(|a| a.shard(2) == *shard));
        }
    }
}
