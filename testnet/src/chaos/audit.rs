//! The checks at the end of a chaos run, once every fault is healed and
//! every validator has caught up:
//!
//! - **agreement**: every validator of a shard holds the same block at every
//!   height the run produced;
//! - **exactly once**: every transfer the workload saw final is in exactly
//!   one block, at the shard and height it was reported final at;
//! - **money**: the bank's total is what it was, less the fees of the bank
//!   transfers in those blocks (transfers among the bank move money, fees
//!   leave it), and every validator reports the same balances.

use std::collections::BTreeMap;

use palisade_ledger::api::client::Client;
use palisade_ledger::{Address, Hash, ShardId};

use super::bank::Ack;

/// What one shard's audit covers and found.
#[derive(Debug, Default)]
pub struct ShardAudit {
    /// Heights compared (after the run's first height).
    pub heights: u64,
    /// Bank transfers found in those blocks.
    pub bank_txs: u64,
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
                                audit.bank_txs += 1;
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

/// Money: `start` total less `fees` must be the `end` total.
pub fn money(start: &BTreeMap<Address, u64>, end: &BTreeMap<Address, u64>, fees: u64, violations: &mut Vec<String>) {
    let total = |m: &BTreeMap<Address, u64>| m.values().map(|&v| u128::from(v)).sum::<u128>();
    let (before, after) = (total(start), total(end));
    if before != after + u128::from(fees) {
        violations.push(format!(
            "money: the bank held {before} units, paid {fees} in fees, and now holds {after} \
             (expected {}; {} units appeared or vanished)",
            before.saturating_sub(u128::from(fees)),
            i128::try_from(after).unwrap_or(i128::MAX) + i128::from(fees) - i128::try_from(before).unwrap_or(0)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_balances_only_when_fees_explain_the_difference() {
        let a = Address([1; 32]);
        let b = Address([2; 32]);
        let start = BTreeMap::from([(a, 1_000), (b, 500)]);
        let mut v = Vec::new();
        // a sent b 300 with a fee of 10.
        money(&start, &BTreeMap::from([(a, 690), (b, 800)]), 10, &mut v);
        assert!(v.is_empty(), "{v:?}");
        // One unit created from nothing.
        money(&start, &BTreeMap::from([(a, 691), (b, 800)]), 10, &mut v);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("1 units appeared"), "{}", v[0]);
    }
}
