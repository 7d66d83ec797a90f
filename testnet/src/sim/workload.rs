//! Clients: each shard gets a set of funded wallets that live in it, and a
//! client that submits transfers to a live validator of the shard (whose
//! core gossips them) at a steady pace. With several shards, about a third of them pay a wallet of
//! another shard: the sender's shard debits it and emits a receipt that the
//! recipient's shard must credit.

use palisade_ledger::{
    Address, Amount, Genesis, Keypair, SignedTx, StateExt,
    genesis::GenesisAccount,
    mem::MemState,
    stake::{self, StakingParams},
    workload::Wallets,
};

use super::rng::SimRng;

/// Wallets created per shard (they land in shards by address, so the count
/// per shard varies).
pub const WALLETS_PER_SHARD: usize = 8;
/// Units each wallet starts with.
pub const START_BALANCE: Amount = Amount(1_000_000_000);
/// Transactions a client keeps in flight per wallet before it resyncs its
/// nonce with the chain (a transaction may be lost with a crashed mempool).
const MAX_IN_FLIGHT: u64 = 4;
/// Per-mille share of transfers to another shard (with several shards).
const CROSS_SHARD_PER_MILLE: u64 = 333;

/// Staking scenarios: the blocks of an epoch (short, so a run sees many
/// hand-overs).
pub const EPOCH_BLOCKS: u64 = 8;
/// Per-mille chance that a client call of a staking scenario also carries a
/// validator's stake move.
const STAKE_MOVE_PER_MILLE: u64 = 60;
/// What each validator's own account starts with (its fees).
const VALIDATOR_FUNDS: Amount = Amount(1_000_000);
/// The fee a stake move pays (above the simulated base fee's maximum, 9).
const STAKE_FEE: Amount = Amount(10);

/// The staking rules of a staking scenario: committees of up to `seats`,
/// stake returned one epoch after the one it was unbonded in.
pub fn staking_params(seats: u32) -> StakingParams {
    StakingParams { epoch_blocks: EPOCH_BLOCKS, min_stake_units: 1, max_committee_size: seats, unbonding_epochs: 1 }
}

/// Validators that unbond everything and bond it again (each is its own
/// operator), with their genesis stake.
struct Churn {
    chain_id: String,
    validators: Vec<(Keypair, Amount)>,
}

/// The clients of every shard.
pub struct Workload {
    wallets: Wallets,
    /// Wallet indices living in each shard.
    by_shard: Vec<Vec<usize>>,
    /// Next nonce each wallet will use.
    next_nonce: Vec<u64>,
    rng: SimRng,
    churn: Option<Churn>,
}

impl Workload {
    /// Creates and funds the wallets in `genesis`.
    pub fn new(genesis: &mut Genesis, rng: SimRng) -> Workload {
        let count = WALLETS_PER_SHARD * genesis.shard_count as usize;
        let wallets = Wallets::new(&genesis.chain_id, "user", count);
        wallets.fund(genesis, "user", START_BALANCE);
        let mut by_shard = vec![Vec::new(); genesis.shard_count as usize];
        for i in 0..count {
            let shard = wallets.address(i).shard(genesis.shard_count) as usize;
            by_shard[shard].push(i);
        }
        Workload { wallets, by_shard, next_nonce: vec![0; count], rng, churn: None }
    }

    /// Lets the validators of shard 0 (a staking scenario has no other)
    /// leave and rejoin: funds their own accounts for the fees in `genesis`.
    pub fn churn(&mut self, genesis: &mut Genesis) {
        let seated = genesis.committee(0).map(|c| c.validators.clone()).unwrap_or_default();
        let mut validators = Vec::new();
        for validator in seated {
            let name = format!("{}-funds", validator.name);
            genesis.accounts.push(GenesisAccount {
                name,
                address: validator.address,
                balance_units: VALIDATOR_FUNDS.units(),
            });
            validators.push((Keypair::dev(&validator.name), Amount(validator.stake_units)));
        }
        self.churn = Some(Churn { chain_id: genesis.chain_id.clone(), validators });
    }

    /// Now and then (staking scenarios), a validator's stake move on the
    /// committed `state`: a bonded one unbonds everything, one with nothing
    /// bonded bonds its genesis stake again (refused until the unbonded
    /// stake is back; unbonding is refused while it would leave fewer than
    /// four members: both are refusals the network must handle).
    pub fn stake_move(&mut self, state: &MemState) -> Option<SignedTx> {
        let churn = self.churn.as_ref()?;
        if !self.rng.chance(STAKE_MOVE_PER_MILLE) {
            return None;
        }
        let (key, genesis_stake) = &churn.validators[self.rng.index(churn.validators.len())];
        let address = key.address();
        let nonce = state.account(&address).ok()?.nonce;
        let bonded = state.validator(&address).ok()?.map_or(Amount::ZERO, |record| record.stake);
        let chain = &churn.chain_id;
        Some(if bonded == Amount::ZERO {
            let p2p_key = address.0;
            stake::bond_tx(key, key, chain, nonce, 0, *genesis_stake, p2p_key, STAKE_FEE)
        } else {
            stake::unbond_tx(key, chain, nonce, address, bonded, STAKE_FEE)
        })
    }

    /// A transfer from a wallet of `shard` to another wallet, of the same
    /// shard or (sometimes) of another; `committed_nonce` reads the chain's
    /// view of a sender's next nonce.
    pub fn next(&mut self, shard: u32, committed_nonce: impl Fn(&Address) -> u64) -> Option<SignedTx> {
        let members = self.by_shard.get(shard as usize)?;
        if members.len() < 2 {
            return None;
        }
        let from = members[self.rng.index(members.len())];
        let mut to = members[self.rng.index(members.len())];
        if to == from {
            to = members[(members.iter().position(|m| *m == from)? + 1) % members.len()];
        }
        let shards = self.by_shard.len();
        if shards > 1 && self.rng.chance(CROSS_SHARD_PER_MILLE) {
            let other = (shard as usize + 1 + self.rng.index(shards - 1)) % shards;
            if let Some(recipients) = self.by_shard.get(other).filter(|r| !r.is_empty()) {
                to = recipients[self.rng.index(recipients.len())];
            }
        }
        let committed = committed_nonce(&self.wallets.address(from));
        if self.next_nonce[from] < committed || self.next_nonce[from] - committed >= MAX_IN_FLIGHT {
            self.next_nonce[from] = committed;
            self.wallets.set_nonce(from, committed);
        }
        self.next_nonce[from] += 1;
        let amount = Amount(self.rng.range(1, 1_000));
        // Around the simulated base fee (1 to 9 units): some pay less than it
        // at times, and wait or are refused.
        let fee = Amount(self.rng.range(1, 20));
        Some(self.wallets.transfer(from, self.wallets.address(to), amount, fee))
    }
}
