//! The checks at the end of a chaos run, once every fault is healed and
//! every validator has caught up:
//!
//! - **agreement**: every validator of a shard holds the same block at every
//!   height the run produced;
//! - **exactly once**: every transfer the workload saw final is in exactly
//!   one block, at the shard and height it was reported final at;
//! - **money**: each bank account holds what its transfers and credits
//!   since the start say, and every validator reports the same balances;
//! - **exactly once across shards**: every acknowledged cross-shard
//!   transfer the destination credited, it credited from the acknowledged
//!   source block;
//! - **supply** ([`super::supply`]): every unit the genesis created is in a
//!   balance, a stake, a reward, or in flight, and nothing is left in
//!   flight once the receipts had their time.

use std::collections::BTreeMap;

use palisade_ledger::api::client::Client;
use palisade_ledger::{Address, Hash, ShardId};

use super::bank::Ack;
use super::supply::{Chains, Credits, ShardCut};

/// What one shard's audit covers and found.
#[derive(Debug, Default)]
pub struct ShardAudit {
    /// Heights compared (after the run's first height).
    pub heights: u64,
    /// Fees those transfers paid.
    pub bank_fees: u64,
}

/// Checks shard `shard` over heights `(from, to]` on every client in `rpc`
/// (its validators). Appends one line per violation.
pub async fn shard(
    shard: ShardId,
    rpc: &[Client],
    from: u64,
    to: u64,
    bank: &[Address],
    acks: &[Ack],
    violations: &mut Vec<String>,
) -> ShardAudit {
    let mut audit = ShardAudit::default();
    let mut seen: BTreeMap<Hash, Vec<u64>> = BTreeMap::new();
    for height in from + 1..=to {
        let mut reference: Option<Hash> = None;
        for client in rpc {
            match client.block(shard, height).await {
                Ok(Some(block)) => match reference {
                    None => {
                        reference = Some(block.hash);
                        for tx in &block.txs {
                            seen.entry(tx.id).or_default().push(height);
                            if bank.contains(&tx.sender) {
                                audit.bank_fees += tx.fee_units;
                            }
                        }
                    }
                    Some(hash) if hash != block.hash => violations.push(format!(
                        "agreement: shard {shard} height {height}: {} holds {}, another validator {hash}",
                        client.url(),
                        block.hash
                    )),
                    Some(_) => {}
                },
                Ok(None) => violations.push(format!("shard {shard} height {height}: {} has no block", client.url())),
                Err(e) => violations.push(format!("shard {shard} height {height}: {e}")),
            }
        }
        audit.heights += 1;
    }
    for ack in acks.iter().filter(|a| a.shard == shard) {
        match seen.get(&ack.id).map(Vec::as_slice) {
            Some([height]) if *height == ack.height => {}
            Some([height]) => violations.push(format!(
                "exactly once: {} reported final at height {} but is in block {height}",
                ack.id, ack.height
            )),
            Some(heights) => {
                violations.push(format!("exactly once: {} is in {} blocks: {heights:?}", ack.id, heights.len()))
            }
            None if ack.height <= from => {}
            None => violations.push(format!(
                "exactly once: {} was acknowledged final at shard {shard} height {} but is in no block",
                ack.id, ack.height
            )),
        }
    }
    audit
}

/// The bank's balances as `client` reports them.
pub async fn balances(client: &Client, bank: &[Address]) -> Result<BTreeMap<Address, u64>, String> {
    let mut out = BTreeMap::new();
    for address in bank {
        let account = client.account(address, false).await.map_err(|e| e.to_string())?;
        out.insert(*address, account.balance_units);
    }
    Ok(out)
}

/// Most accounts named one by one in the money violation.
const MAX_ACCOUNT_LINES: usize = 5;

/// Money, account by account: each bank account holds at the `end` cut
/// what it held at the `start` cut, less what it sent (amount + fee) in its
/// shard's blocks between the cuts, plus what it received there (same-shard
/// transfers) and the receipts its shard credited between the cuts. One
/// line per account that differs (the first [`MAX_ACCOUNT_LINES`]) and one
/// for the bank's total.
pub fn money(
    start: &BTreeMap<ShardId, ShardCut>,
    end: &BTreeMap<ShardId, ShardCut>,
    chains: &Chains,
    credits: &Credits,
    violations: &mut Vec<String>,
) {
    let between = |shard: ShardId, height: u64| {
        let from = start.get(&shard).map_or(0, |c| c.height);
        let to = end.get(&shard).map_or(0, |c| c.height);
        from < height && height <= to
    };
    let mut expected: BTreeMap<Address, i128> =
        start.values().flat_map(|c| &c.balances).map(|(&a, &b)| (a, i128::from(b))).collect();
    let mut change = |address: &Address, units: i128| {
        if let Some(balance) = expected.get_mut(address) {
            *balance += units;
        }
    };
    for t in &chains.transfers {
        if between(t.shard, t.height) {
            change(&t.sender, -i128::from(t.amount) - i128::from(t.fee));
            if !t.crosses() {
                change(&t.to, i128::from(t.amount));
            }
        }
        if t.crosses() && credits.get(&t.id).is_some_and(|c| between(t.dest, c.height)) {
            change(&t.to, i128::from(t.amount));
        }
    }
    let (mut wrong, mut want, mut held) = (0usize, 0i128, 0i128);
    for (address, &expected) in &expected {
        let shard = start.iter().find(|(_, c)| c.balances.contains_key(address)).map_or(0, |(&s, _)| s);
        let cut = end.get(&shard);
        let Some(&balance) = cut.and_then(|c| c.balances.get(address)) else {
            violations.push(format!("money: bank account {address} was not read at the end"));
            continue;
        };
        want += expected;
        held += i128::from(balance);
        if i128::from(balance) != expected {
            wrong += 1;
            if wrong <= MAX_ACCOUNT_LINES {
                violations.push(format!(
                    "money: bank account {address} (shard {shard}) holds {balance} units at height {}, its \
                     transfers and credits since height {} say {expected}",
                    cut.map_or(0, |c| c.height),
                    start.get(&shard).map_or(0, |c| c.height)
                ));
            }
        }
    }
    if wrong > 0 {
        violations.push(format!(
            "money: {wrong} bank accounts off; the bank holds {held} units, its transfers and credits say {want} \
             ({} units {})",
            (held - want).unsigned_abs(),
            if held > want { "appeared" } else { "vanished" }
        ));
    }
}

/// Exactly once, across shards: every acknowledged cross-shard transfer the
/// destination credited, it credited from the block the source reported
/// it final in. (One it did not credit is stranded: see [`super::supply::check`].)
pub fn credited(acks: &[Ack], credits: &Credits, violations: &mut Vec<String>) {
    for ack in acks {
        let (Some(dest), Some(credit)) = (ack.dest, credits.get(&ack.id)) else { continue };
        if (credit.source_shard, credit.source_height) != (ack.shard, ack.height) {
            violations.push(format!(
                "exactly once: {} was final at shard {} height {}, but shard {dest} credited it from shard {} \
                 height {}",
                ack.id, ack.shard, ack.height, credit.source_shard, credit.source_height
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::supply::{Credit, Transfer};

    fn account(n: u8) -> Address {
        Address([n; 32])
    }

    fn cut(height: u64, balances: &[(u8, u64)]) -> ShardCut {
        let balances = balances.iter().map(|&(n, b)| (account(n), b)).collect();
        ShardCut { height, balances, stake: 0, rewards: 0, minted: 0, burned: 0, fees_burned: 0 }
    }

    fn transfer(n: u8, (shard, height): (ShardId, u64), from: u8, to: u8, dest: ShardId, amount: u64) -> Transfer {
        Transfer { id: Hash([n; 32]), shard, height, sender: account(from), to: account(to), dest, amount, fee: 10 }
    }

    #[test]
    fn money_follows_each_account_across_shards() {
        // Shard 0: a (1) and b (2); shard 1: c (3). a paid b 300 at height 6,
        // and c 100 at height 7, credited by shard 1 at height 4.
        let start = BTreeMap::from([(0, cut(5, &[(1, 1_000), (2, 500)])), (1, cut(2, &[(3, 0)]))]);
        let chains = Chains {
            scanned: BTreeMap::new(),
            transfers: vec![transfer(9, (0, 6), 1, 2, 0, 300), transfer(8, (0, 7), 1, 3, 1, 100)],
        };
        let credits = Credits::from([(Hash([8; 32]), Credit { height: 4, source_shard: 0, source_height: 7 })]);
        let end = BTreeMap::from([(0, cut(7, &[(1, 580), (2, 800)])), (1, cut(4, &[(3, 100)]))]);
        let mut v = Vec::new();
        money(&start, &end, &chains, &credits, &mut v);
        assert!(v.is_empty(), "{v:?}");
        // The receipt credited twice over: c holds one unit set too many.
        let end = BTreeMap::from([(0, cut(7, &[(1, 580), (2, 800)])), (1, cut(4, &[(3, 200)]))]);
        money(&start, &end, &chains, &credits, &mut v);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("holds 200 units at height 4") && v[0].contains("say 100"), "{}", v[0]);
        assert!(v[1].contains("100 units appeared"), "{}", v[1]);
        // Shard 1's cut is below the credit: c must not have it yet.
        let mut v = Vec::new();
        let early = BTreeMap::from([(0, cut(7, &[(1, 580), (2, 800)])), (1, cut(3, &[(3, 100)]))]);
        money(&start, &early, &chains, &credits, &mut v);
        assert!(v.len() == 2 && v[1].contains("100 units appeared"), "{v:?}");
    }

    #[test]
    fn a_credit_from_another_block_than_acknowledged_is_a_violation() {
        let ack = Ack { id: Hash([8; 32]), shard: 0, height: 7, dest: Some(1) };
        let same = Credits::from([(ack.id, Credit { height: 4, source_shard: 0, source_height: 7 })]);
        let mut v = Vec::new();
        credited(std::slice::from_ref(&ack), &same, &mut v);
        assert!(v.is_empty(), "{v:?}");
        let other = Credits::from([(ack.id, Credit { height: 4, source_shard: 0, source_height: 9 })]);
        credited(&[ack], &other, &mut v);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("from shard 0 height 9"), "{}", v[0]);
    }
}
