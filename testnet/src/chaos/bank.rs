//! The bank workload: a fixed set of accounts on every shard moves money
//! among itself while faults come and go. Each account sends one transfer
//! at a time and waits for it to be final (or gives up on it), so what the
//! workload saw final — its acknowledgements — is exact. About a third of
//! the transfers ([`CROSS_SHARD_PER_MILLE`]) pay a bank account on another
//! shard: final at the source when acknowledged, credited by the
//! destination later (the audit checks that it is, exactly once).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use palisade_ledger::api::TransactionResponse;
use palisade_ledger::api::client::Client;
use palisade_ledger::{Address, Amount, Genesis, Hash, Keypair, ShardId, SignedTx};

use crate::bench::accounts::{self, ShardClients};
use crate::sim::rng::SimRng;
use indicatif::ProgressBar;

/// Fee of every bank transfer.
pub const FEE: Amount = Amount(1_000);
/// What each account holds at least after funding (topped up if it has less).
pub const FUNDING: Amount = Amount(1_000_000_000_000);
/// How long a sender waits for its transfer to become final.
const FINAL_WAIT: Duration = Duration::from_secs(20);
/// Share of the transfers, per mille, that pay an account on another shard
/// (when there is one).
pub const CROSS_SHARD_PER_MILLE: u64 = 333;

/// The bank's accounts, per shard.
pub struct Bank {
    /// The network's chain id.
    pub chain_id: String,
    /// Per shard, its accounts' keys.
    pub accounts: BTreeMap<ShardId, Vec<Keypair>>,
    /// The same accounts, as derived.
    derived: Vec<accounts::BenchAccount>,
}

/// A transfer the workload saw final.
#[derive(Clone, Debug)]
pub struct Ack {
    /// Its id.
    pub id: Hash,
    /// Where it was final.
    pub shard: ShardId,
    /// At which height.
    pub height: u64,
    /// For a cross-shard transfer, the shard that must credit it.
    pub dest: Option<ShardId>,
}

/// What one sender did.
#[derive(Default, Debug)]
pub struct SenderReport {
    /// Transfers the sender saw final.
    pub acks: Vec<Ack>,
    /// Transfers it submitted and then gave up on (not final in time).
    pub abandoned: usize,
    /// Submissions no validator of the shard took.
    pub refused: usize,
}

impl Bank {
    /// `per_shard` accounts on each shard: the dev keys `chaos-K` (see
    /// [`accounts::derive`]), so every run uses the same accounts.
    pub fn new(genesis: &Genesis, per_shard: usize) -> Result<Bank> {
        let derived = accounts::derive("chaos", genesis.shard_count, per_shard)?;
        let mut accounts: BTreeMap<ShardId, Vec<Keypair>> = BTreeMap::new();
        for account in &derived {
            accounts.entry(account.shard).or_default().push(account.key.clone());
        }
        Ok(Bank { chain_id: genesis.chain_id.clone(), accounts, derived })
    }

    /// Every bank address.
    pub fn addresses(&self) -> Vec<Address> {
        self.accounts.values().flatten().map(Keypair::address).collect()
    }

    /// Tops every account up to at least [`FUNDING`] from its shard's dev
    /// faucet, through the first of its shard's clients in `rpc`, and waits
    /// until the top-ups are final.
    pub async fn fund(&self, genesis: &Genesis, rpc: &BTreeMap<ShardId, Vec<Client>>) -> Result<()> {
        let via: ShardClients =
            rpc.iter().filter_map(|(&shard, clients)| Some((shard, clients.first()?.clone()))).collect();
        let states = accounts::read_states(&via, &self.derived).await?;
        // `fund` tops up to twice what is needed.
        let needed = vec![FUNDING.units() / 2; self.derived.len()];
        accounts::fund(genesis, &via, &self.derived, &states, &needed, &ProgressBar::hidden()).await?;
        Ok(())
    }

    fn transfer(&self, from: &Keypair, nonce: u64, to: Address, amount: Amount) -> SignedTx {
        SignedTx::transfer(from, &self.chain_id, nonce, to, amount, FEE)
    }

    /// Who a transfer from `shard` pays: a random bank account of another
    /// shard with probability [`CROSS_SHARD_PER_MILLE`], else one of `shard`.
    fn recipient(&self, shard: ShardId, rng: &mut SimRng) -> Option<Address> {
        let others: Vec<ShardId> = self.accounts.keys().copied().filter(|&s| s != shard).collect();
        let to_shard = if !others.is_empty() && rng.chance(CROSS_SHARD_PER_MILLE) {
            others[rng.index(others.len())]
        } else {
            shard
        };
        let keys = self.accounts.get(&to_shard)?;
        keys.get(rng.index(keys.len())).map(Keypair::address)
    }

    /// One sender: until `stop`, moves money from each of `own` (accounts of
    /// `shard`, by index) to random bank accounts (a third of them on other
    /// shards), one transfer at a time, each to a random validator.
    pub async fn sender(
        &self,
        shard: ShardId,
        own: Vec<usize>,
        rpc: Vec<Client>,
        seed: u64,
        stop: tokio::time::Instant,
    ) -> SenderReport {
        let mut rng = SimRng::new(seed);
        let mut report = SenderReport::default();
        let Some(keys) = self.accounts.get(&shard) else { return report };
        let mut turn = 0usize;
        while tokio::time::Instant::now() < stop && !own.is_empty() && !rpc.is_empty() {
            let from = &keys[own[turn % own.len()]];
            turn += 1;
            let Some(to) = self.recipient(shard, &mut rng) else { break };
            let amount = Amount(rng.range(1, 1_000_000));
            let first = rng.index(rpc.len());
            let mut submitted = None;
            for attempt in 0..rpc.len() {
                let client = &rpc[(first + attempt) % rpc.len()];
                let Ok(account) = client.account(&from.address(), false).await else { continue };
                let tx = self.transfer(from, account.nonce, to, amount);
                if client.submit(&tx).await.is_ok() {
                    submitted = Some(tx.id());
                    break;
                }
            }
            let Some(id) = submitted else {
                report.refused += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // Ask another validator than the one that took it, if it can.
            let watcher = &rpc[(first + 1) % rpc.len()];
            match wait_final_anywhere(watcher, &rpc, &id).await {
                Some(ack) => report.acks.push(ack),
                None => report.abandoned += 1,
            }
        }
        report
    }
}

/// Waits for `id` to be final on `first`, falling back to the other
/// validators when `first` does not answer (it may be the one paused).
async fn wait_final_anywhere(first: &Client, all: &[Client], id: &Hash) -> Option<Ack> {
    let deadline = tokio::time::Instant::now() + FINAL_WAIT;
    let mut i = 0usize;
    let mut client = first;
    while tokio::time::Instant::now() < deadline {
        match client.transaction(id).await {
            Ok(TransactionResponse::Final { id, shard, height, dest_shard, .. }) => {
                return Some(Ack { id, shard, height, dest: dest_shard });
            }
            Ok(TransactionResponse::Rejected { .. }) => return None,
            Ok(_) => {}
            Err(_) => {
                i += 1;
                client = &all[i % all.len()];
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
