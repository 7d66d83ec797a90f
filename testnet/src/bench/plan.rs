//! A run's plan: every transaction signed before the clock starts, per
//! account a chain of consecutive nonces. A transaction is a function of
//! sender and nonce only (to the next account of the shard, or, for the
//! share of slots [`crosses`] picks, to an account on the next shard; 1
//! unit, a fixed fee), so sending one again is sending the same bytes.

use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use palisade_ledger::{Address, Amount, Hash, Keypair, ShardId, SignedTx};

use super::schedule;

/// The most transactions one plan may sign (about 300 bytes each in memory).
pub const MAX_PLANNED_TXS: u64 = 1_000_000;
/// Amount of every bench transfer, units.
pub const TRANSFER_UNITS: u64 = 1;
/// Fee of every bench transfer, units.
pub const FEE_UNITS: u64 = 1_000;
/// The golden ratio's fractional part in 64-bit fixed point.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether schedule slot `slot` is a cross-shard transfer, for a share of
/// `per_mille` ‰: when `{slot·φ} < per_mille/1000` (a Weyl sequence).
/// It is equidistributed with low discrepancy on every arithmetic
/// progression of slots, so every stretch of the run, every shard and every
/// account (a shard's and an account's slots are such progressions) gets
/// that share, give or take a couple of transfers per hundred.
pub fn crosses(per_mille: u64, slot: u64) -> bool {
    let point = u128::from(slot.wrapping_mul(GOLDEN));
    point * 1_000 < u128::from(per_mille.min(1_000)) << 64
}

/// One signed transaction, ready to send.
pub struct Prepared {
    /// Its id.
    pub id: Hash,
    /// Its canonical encoding, hex (what `palisade_submitTransaction` takes).
    pub hex: Box<str>,
    /// For a cross-shard transfer, the recipient's shard.
    pub dest: Option<ShardId>,
}

/// A run's transactions, signed before the clock starts.
pub struct Plan {
    /// Transactions per second.
    pub rate: u64,
    /// Slots in the schedule.
    pub total: u64,
    /// Per account, its transactions by nonce offset from its current nonce.
    pub chains: Vec<Vec<Prepared>>,
    /// Per account, the node its transactions go to (index into the nodes).
    pub node_of: Vec<usize>,
}

/// Who sends what in a plan: one entry per account.
pub struct Sender<'a> {
    /// Its key.
    pub key: &'a Keypair,
    /// Who its transfers pay (on its own shard).
    pub to: Address,
    /// Who its cross-shard transfers pay, and that account's shard (`None`
    /// when there is no other shard).
    pub across: Option<(Address, ShardId)>,
    /// Its next nonce.
    pub nonce: u64,
    /// The node it submits to.
    pub node: usize,
}

impl Plan {
    /// Signs `rate × duration` transfers, round-robin over `senders`, on
    /// every core, advancing `bar` as it goes; `cross_per_mille` ‰ of the
    /// slots pay their sender's `across` account (see [`crosses`]).
    pub fn sign(
        chain_id: &str,
        senders: &[Sender<'_>],
        rate: u64,
        duration: Duration,
        cross_per_mille: u64,
        bar: &ProgressBar,
    ) -> Result<Plan> {
        let total = schedule::total(rate, duration);
        if total > MAX_PLANNED_TXS {
            bail!("{rate} tx/s for {duration:?} is {total} transactions; at most {MAX_PLANNED_TXS} per run");
        }
        if total == 0 || senders.is_empty() {
            bail!("nothing to send: {rate} tx/s for {duration:?} over {} accounts", senders.len());
        }
        bar.set_length(total);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(senders.len());
        let per_thread = senders.len().div_ceil(threads);
        let sign_one = |(a, sender): (usize, &Sender<'_>)| -> Vec<Prepared> {
            let slots = schedule::slots_of(a, senders.len(), total);
            let chain = (0..slots)
                .map(|offset| {
                    let nonce = sender.nonce.saturating_add(offset);
                    let amount = Amount(TRANSFER_UNITS);
                    // The slot of this nonce, round-robin over the senders.
                    let slot = offset.saturating_mul(senders.len() as u64).saturating_add(a as u64);
                    let (to, dest) = match sender.across {
                        Some((to, dest)) if crosses(cross_per_mille, slot) => (to, Some(dest)),
                        _ => (sender.to, None),
                    };
                    let tx = SignedTx::transfer(sender.key, chain_id, nonce, to, amount, Amount(FEE_UNITS));
                    let bytes = tx.to_bytes();
                    Prepared { id: SignedTx::id_of(&bytes), hex: hex::encode(&bytes).into_boxed_str(), dest }
                })
                .collect();
            bar.inc(slots);
            chain
        };
        let chains: Vec<Vec<Prepared>> = std::thread::scope(|scope| {
            let workers: Vec<_> = senders
                .chunks(per_thread)
                .enumerate()
                .map(|(chunk, part)| {
                    let first = chunk * per_thread;
                    scope.spawn(move || {
                        part.iter().enumerate().map(|(i, s)| sign_one((first + i, s))).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        if chains.len() != senders.len() {
            bail!("a signing thread failed");
        }
        bar.set_position(total);
        Ok(Plan { rate, total, chains, node_of: senders.iter().map(|s| s.node).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_signs_each_account_a_chain_of_consecutive_nonces() {
        let keys = [Keypair::dev("plan-0"), Keypair::dev("plan-1")];
        let senders = [
            Sender { key: &keys[0], to: keys[1].address(), across: None, nonce: 5, node: 0 },
            Sender { key: &keys[1], to: keys[0].address(), across: None, nonce: 0, node: 1 },
        ];
        let sign =
            || Plan::sign("palisade-dev", &senders, 3, Duration::from_secs(1), 0, &ProgressBar::hidden()).unwrap();
        let plan = sign();
        assert_eq!(plan.total, 3);
        assert_eq!(plan.chains.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(plan.node_of, vec![0, 1]);
        let tx = palisade_ledger::SignedTx::from_bytes(&hex::decode(&*plan.chains[0][1].hex).unwrap()).unwrap();
        assert_eq!((tx.body.sender, tx.body.nonce), (keys[0].address(), 6));
        assert!(tx.verify_signature());
        assert_eq!(tx.id(), plan.chains[0][1].id);
        // Same sender and nonce, same bytes: a resend is the same transaction.
        assert_eq!(sign().chains[0][1].id, plan.chains[0][1].id);
        assert!(
            Plan::sign("palisade-dev", &senders, 2_000, Duration::from_secs(600), 0, &ProgressBar::hidden()).is_err()
        );
    }

    #[test]
    fn the_cross_shard_share_is_spread_evenly_over_the_run_the_shards_and_the_accounts() {
        let count =
            |per_mille: u64, slots: &mut dyn Iterator<Item = u64>| slots.filter(|&k| crosses(per_mille, k)).count();
        assert_eq!(count(0, &mut (0..1_000)), 0);
        assert_eq!(count(1_000, &mut (0..1_000)), 1_000);
        assert_eq!(count(500, &mut (0..1_000)), 500);
        assert_eq!(count(333, &mut (0..3_000)), 999);
        // Any hundred consecutive slots: the share, give or take two.
        for per_mille in [100, 333, 500, 900] {
            for start in 0..2_000 {
                let n = count(per_mille, &mut (start..start + 100)) as i64;
                assert!((n - per_mille as i64 / 10).abs() <= 2, "{per_mille}‰: slots {start}.. have {n} of 100");
            }
        }
        // The slots of one shard of four, and of one account of 1 024.
        for shard in 0..4 {
            let n = count(500, &mut (0..6_000).filter(|k| k % 4 == shard)) as i64;
            assert!((n - 750).abs() <= 2, "shard {shard}: {n} of 1500");
        }
        for account in [0, 1, 517, 1_023] {
            let n = count(500, &mut (0..100).map(|o| o * 1_024 + account)) as i64;
            assert!((n - 50).abs() <= 3, "account {account}: {n} of 100");
        }
    }
}
