//! The genesis document: the network's identity, committees, initial
//! balances and parameters, loaded from JSON with strict validation.
//!
//! Loading says exactly what is wrong (which field, why) and refuses unknown
//! fields, so a typo in an operator's genesis.json cannot silently change the
//! network. The dev network is generated from names ([`Genesis::dev`]), so the
//! committed genesis.json can be reproduced byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use palisade_consensus::{Committee, CommitteeError, Validator};
use serde::{Deserialize, Serialize};

use crate::{
    address::{Address, ShardId},
    amount::Amount,
    codec,
    hash::{Hash, domain},
    keys::{Keypair, verifying_key},
    stake::{CommitteeRecord, StakeRecord},
    state::{Account, ChainRecord, Committees, ShardContext, StateKey, ValidatorRecord},
    tx::MAX_CHAIN_ID_LEN,
};

/// Fewest validators that tolerate one Byzantine fault (n ≥ 3f + 1).
pub const MIN_BFT_COMMITTEE: usize = 4;
/// Most shards a network may have.
pub const MAX_SHARDS: u32 = 1024;
/// Most validators on one committee.
pub const MAX_COMMITTEE: usize = 256;
/// The dev network's chain id. Ids starting with `palisade-dev` are dev chains
/// (where test-only misbehaviours may be enabled).
pub const DEV_CHAIN_ID: &str = "palisade-dev";
/// 2026-01-01T00:00:00Z: the dev genesis time, fixed so the file is reproducible.
pub const DEV_GENESIS_TIME_MS: u64 = 1_767_225_600_000;
/// Names of the well-known dev accounts.
pub const DEV_ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "faucet"];
/// Candidates tried for a per-shard dev faucet's key; one lands on a given
/// shard of S with probability 1/S each, so 4,096 fail only for S ≫ 1,000.
const SHARD_FAUCET_TRIES: u32 = 4_096;

/// The name of shard `shard`'s dev faucet (`faucet-S`): every shard of a dev
/// network has one, so a local network can fund accounts on any shard
/// without a cross-shard transfer.
pub fn shard_faucet_name(shard: ShardId) -> String {
    format!("faucet-{shard}")
}

/// The key of shard `shard`'s dev faucet: the first of the dev keys
/// `faucet-S#0`, `faucet-S#1`, … whose account lives on `shard`.
/// INSECURE, like every dev key.
pub fn shard_faucet_key(shard: ShardId, shard_count: u32) -> Option<Keypair> {
    (0..SHARD_FAUCET_TRIES)
        .map(|k| Keypair::dev(&format!("faucet-{shard}#{k}")))
        .find(|key| key.address().shard(shard_count) == shard)
}

/// Network-wide parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Target time between blocks of a busy shard.
    pub block_interval_ms: u64,
    /// An idle shard still commits an empty block this often.
    pub heartbeat_interval_ms: u64,
    /// First view timeout of consensus, on top of `heartbeat_interval_ms`
    /// (an idle leader's wait); doubles on each failed view.
    pub view_timeout_ms: u64,
    /// A follower that hears nothing from the leader (no proposal, no
    /// liveness beat) for this long suspects it and starts a view change;
    /// doubles on each failed view, capped by the view timeout. Leaders beat
    /// four times per period. Absent from older genesis files: 400.
    #[serde(default = "default_leader_timeout_ms")]
    pub leader_timeout_ms: u64,
    /// Most transactions in a block.
    pub max_block_txs: u32,
    /// Most encoded transaction bytes in a block.
    pub max_block_bytes: u32,
    /// Most cross-shard receipts one block credits.
    pub max_block_receipts: u32,
    /// Fraction of stake burned for a proven equivocation, in basis points.
    pub slash_fraction_bps: u32,
    /// Paid to each block's proposer on top of fees, in units.
    pub block_reward_units: u64,
    /// Evidence older than this many blocks is refused.
    pub evidence_window_blocks: u64,
    /// The lowest base fee every transaction pays (burned), in units; what
    /// an idle shard charges ([`crate::fee`]). Absent from older genesis
    /// files: 0.
    #[serde(default)]
    pub min_base_fee_units: u64,
    /// The highest base fee, in units. Absent from older genesis files:
    /// 1 PAL.
    #[serde(default = "default_max_base_fee_units")]
    pub max_base_fee_units: u64,
    /// Transactions per block at which the base fee holds still: above it
    /// the fee rises, below it falls. Absent from older genesis files: 1000.
    #[serde(default = "default_base_fee_target_txs")]
    pub base_fee_target_txs: u32,
    /// The staking rules ([`crate::stake`]). Absent: staking is off, bonds
    /// and unbonds are refused, and each shard keeps its genesis committee
    /// (less the jailed). Left out of the genesis hash when absent, so the
    /// hash of a genesis without it does not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staking: Option<crate::stake::StakingParams>,
}

fn default_leader_timeout_ms() -> u64 {
    400
}

fn default_max_base_fee_units() -> u64 {
    crate::amount::UNITS_PER_PAL
}

fn default_base_fee_target_txs() -> u32 {
    1_000
}

/// One committee member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// A label for humans and the local testnet; not part of consensus.
    pub name: String,
    /// Its key, also its address.
    pub address: Address,
    /// Bonded stake in units.
    pub stake_units: u64,
}

/// The committee of one shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisCommittee {
    /// The shard it validates.
    pub shard: ShardId,
    /// Its members, in committee order (which fixes leader rotation).
    pub validators: Vec<GenesisValidator>,
}

/// An initial balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// A label for humans (dev account names); not part of consensus.
    pub name: String,
    /// The account.
    pub address: Address,
    /// Its balance in units.
    pub balance_units: u64,
}

/// The whole document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Names the network; transactions and blocks carry it.
    pub chain_id: String,
    /// Timestamp of height 0, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Number of shards.
    pub shard_count: u32,
    /// Network-wide parameters.
    pub params: Params,
    /// One per shard.
    pub committees: Vec<GenesisCommittee>,
    /// Initial balances.
    pub accounts: Vec<GenesisAccount>,
}

/// What is wrong with a genesis document.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Could not read the file.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid JSON for the schema (names the field, line and column).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A semantic error, naming the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// A path like `committees[2].validators[1].stake_units`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Something allowed but unwise; printed by whoever loads the genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisWarning {
    /// The field.
    pub field: String,
    /// Why it is unwise.
    pub reason: String,
}

fn consensus_committee(committee: &GenesisCommittee) -> Result<Committee, CommitteeError> {
    Committee::new(
        committee.validators.iter().map(|v| Validator { public_key: v.address.0, stake: v.stake_units }).collect(),
    )
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
    GenesisError::Invalid { field: field.into(), reason: reason.into() }
}

/// What an address is at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenesisRole {
    /// On the committee of this shard.
    Validator(ShardId),
    /// An account with this balance.
    Account(Amount),
}

impl std::fmt::Display for GenesisRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenesisRole::Validator(shard) => write!(f, "a validator of shard {shard}"),
            GenesisRole::Account(balance) => write!(f, "an account holding {balance} PAL"),
        }
    }
}

impl Genesis {
    /// What `address` is in this genesis (a validator before an account), if anything.
    pub fn role_of(&self, address: &Address) -> Option<GenesisRole> {
        let seat = self.committees.iter().find(|c| c.validators.iter().any(|v| v.address == *address));
        seat.map(|c| GenesisRole::Validator(c.shard)).or_else(|| {
            self.accounts.iter().find(|a| a.address == *address).map(|a| GenesisRole::Account(Amount(a.balance_units)))
        })
    }

    /// The dev key named `name`: the one this genesis seats or funds under
    /// that name ([`Genesis::dev_keypair`]), else the plain derivation
    /// [`Keypair::dev`] (a valid key this genesis knows nothing of).
    /// INSECURE: for local networks only.
    pub fn dev_key(&self, name: &str) -> Keypair {
        self.dev_keypair(name).unwrap_or_else(|| Keypair::dev(name))
    }

    /// The dev key of the account or validator named `name` in this genesis
    /// (`alice`, `faucet-2`, `validator-0-1`, …), if it has one: dev keys
    /// are derived from names, so anyone can hold them. INSECURE: for local
    /// networks only.
    pub fn dev_keypair(&self, name: &str) -> Option<Keypair> {
        let address = self.accounts.iter().find(|a| a.name == name).map(|a| a.address).or_else(|| {
            self.committees.iter().flat_map(|c| &c.validators).find(|v| v.name == name).map(|v| v.address)
        })?;
        let by_name = Keypair::dev(name);
        if by_name.address() == address {
            return Some(by_name);
        }
        let shard: ShardId = name.strip_prefix("faucet-")?.parse().ok()?;
        shard_faucet_key(shard, self.shard_count).filter(|key| key.address() == address)
    }

    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<(Genesis, Vec<GenesisWarning>), GenesisError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenesisError::Read { path: path.display().to_string(), source })?;
        Genesis::from_json(&text)
    }

    /// Parses and validates genesis JSON.
    pub fn from_json(text: &str) -> Result<(Genesis, Vec<GenesisWarning>), GenesisError> {
        let genesis: Genesis = serde_json::from_str(text)?;
        let warnings = genesis.validate()?;
        Ok((genesis, warnings))
    }

    /// Pretty JSON, newline-terminated (the committed file's format).
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serialises.
        #[allow(clippy::expect_used)]
        let mut text = serde_json::to_string_pretty(self).expect("genesis serialises");
        text.push('\n');
        text
    }

    /// Checks everything a network relies on; returns warnings for what is
    /// allowed but unwise.
    pub fn validate(&self) -> Result<Vec<GenesisWarning>, GenesisError> {
        let mut warnings = Vec::new();
        self.validate_header()?;
        self.validate_params()?;
        let mut supply = Amount::ZERO;
        let mut keys: BTreeMap<Address, String> = BTreeMap::new();
        let mut shards_seen = BTreeSet::new();
        for (c, committee) in self.committees.iter().enumerate() {
            let field = format!("committees[{c}]");
            if committee.shard >= self.shard_count {
                return Err(invalid(
                    format!("{field}.shard"),
                    format!("shard {} is out of range: shard_count is {}", committee.shard, self.shard_count),
                ));
            }
            if !shards_seen.insert(committee.shard) {
                return Err(invalid(format!("{field}.shard"), format!("shard {} has two committees", committee.shard)));
            }
            let n = committee.validators.len();
            if n == 0 {
                return Err(invalid(format!("{field}.validators"), "a committee needs at least one validator"));
            }
            if n > MAX_COMMITTEE {
                return Err(invalid(format!("{field}.validators"), format!("{n} validators exceeds {MAX_COMMITTEE}")));
            }
            if n < MIN_BFT_COMMITTEE {
                warnings.push(GenesisWarning {
                    field: format!("{field}.validators"),
                    reason: format!("{n} validators cannot tolerate a faulty one; use at least {MIN_BFT_COMMITTEE}"),
                });
            }
            if let Some(staking) = self.params.staking.filter(|s| n > s.max_committee_size as usize) {
                return Err(invalid(
                    format!("{field}.validators"),
                    format!(
                        "{n} validators exceeds params.staking.max_committee_size ({})",
                        staking.max_committee_size
                    ),
                ));
            }
            for (v, validator) in committee.validators.iter().enumerate() {
                let field = format!("{field}.validators[{v}]");
                if validator.stake_units == 0 {
                    return Err(invalid(format!("{field}.stake_units"), "stake must be positive"));
                }
                if let Some(staking) = self.params.staking.filter(|s| validator.stake_units < s.min_stake_units) {
                    return Err(invalid(
                        format!("{field}.stake_units"),
                        format!("below params.staking.min_stake_units ({})", staking.min_stake_units),
                    ));
                }
                if verifying_key(&validator.address).is_none_or(|k| k.is_weak()) {
                    return Err(invalid(format!("{field}.address"), "not a usable ed25519 public key"));
                }
                if let Some(first) = keys.insert(validator.address, field.clone()) {
                    return Err(invalid(
                        format!("{field}.address"),
                        format!("duplicate validator key {} (also at {first})", validator.address),
                    ));
                }
                supply = supply
                    .checked_add(Amount(validator.stake_units))
                    .ok_or_else(|| invalid(format!("{field}.stake_units"), "total supply overflows 64 bits"))?;
            }
        }
        for (c, committee) in self.committees.iter().enumerate() {
            consensus_committee(committee)
                .map_err(|e| invalid(format!("committees[{c}].validators"), e.to_string()))?;
        }
        if let Some(missing) = (0..self.shard_count).find(|s| !shards_seen.contains(s)) {
            return Err(invalid("committees", format!("shard {missing} has no committee")));
        }
        let mut accounts = BTreeMap::new();
        for (a, account) in self.accounts.iter().enumerate() {
            let field = format!("accounts[{a}]");
            if let Some(first) = accounts.insert(account.address, a) {
                return Err(invalid(
                    format!("{field}.address"),
                    format!("duplicate account {} (also at accounts[{first}])", account.address),
                ));
            }
            supply = supply
                .checked_add(Amount(account.balance_units))
                .ok_or_else(|| invalid(format!("{field}.balance_units"), "total supply overflows 64 bits"))?;
        }
        Ok(warnings)
    }

    fn validate_header(&self) -> Result<(), GenesisError> {
        let id = &self.chain_id;
        if id.is_empty() || id.len() > MAX_CHAIN_ID_LEN {
            return Err(invalid("chain_id", format!("must be 1 to {MAX_CHAIN_ID_LEN} characters")));
        }
        if !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(invalid("chain_id", "use lowercase letters, digits and '-' only"));
        }
        if self.shard_count == 0 || self.shard_count > MAX_SHARDS {
            return Err(invalid("shard_count", format!("must be 1 to {MAX_SHARDS}")));
        }
        Ok(())
    }

    fn validate_params(&self) -> Result<(), GenesisError> {
        let p = &self.params;
        let positive = [
            ("params.block_interval_ms", p.block_interval_ms),
            ("params.heartbeat_interval_ms", p.heartbeat_interval_ms),
            ("params.view_timeout_ms", p.view_timeout_ms),
            ("params.leader_timeout_ms", p.leader_timeout_ms),
            ("params.max_block_txs", u64::from(p.max_block_txs)),
            ("params.max_block_bytes", u64::from(p.max_block_bytes)),
            ("params.max_block_receipts", u64::from(p.max_block_receipts)),
            ("params.evidence_window_blocks", p.evidence_window_blocks),
            ("params.base_fee_target_txs", u64::from(p.base_fee_target_txs)),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(*field, "must be positive"));
        }
        if p.heartbeat_interval_ms < p.block_interval_ms {
            return Err(invalid("params.heartbeat_interval_ms", "must be at least block_interval_ms"));
        }
        if p.base_fee_target_txs > p.max_block_txs {
            return Err(invalid("params.base_fee_target_txs", "must be at most max_block_txs"));
        }
        if p.min_base_fee_units > p.max_base_fee_units {
            return Err(invalid("params.max_base_fee_units", "must be at least min_base_fee_units"));
        }
        if p.slash_fraction_bps > 10_000 {
            return Err(invalid("params.slash_fraction_bps", "basis points: at most 10000 (100%)"));
        }
        if p.max_block_bytes as usize > crate::block::MAX_BLOCK_BYTES_HARD {
            return Err(invalid(
                "params.max_block_bytes",
                format!("at most {} bytes", crate::block::MAX_BLOCK_BYTES_HARD),
            ));
        }
        if let Some(staking) = &p.staking {
            staking.check().map_err(|(field, reason)| invalid(field, reason))?;
            if self.shard_count > 1 {
                // Receipts are checked against each source shard's genesis
                // committee until shards follow each other's hand-overs.
                return Err(invalid(
                    "params.staking",
                    "staking needs a single shard for now: other shards cannot yet follow a shard's committee \
                     hand-overs",
                ));
            }
        }
        Ok(())
    }

    /// The genesis hash: parent of every shard's first block.
    pub fn hash(&self) -> Hash {
        Hash::digest(domain::GENESIS, &codec::encode(self))
    }

    /// Is this a dev chain (test-only behaviours allowed)?
    pub fn is_dev_chain(&self) -> bool {
        self.chain_id.starts_with(DEV_CHAIN_ID)
    }

    /// The committee of `shard` (validated to exist for every shard).
    pub fn committee(&self, shard: ShardId) -> Option<&GenesisCommittee> {
        self.committees.iter().find(|c| c.shard == shard)
    }

    /// The consensus committee of `shard`: members in genesis order, which
    /// fixes leader rotation. `None` if there is no such shard or (for an
    /// unvalidated genesis) consensus refuses the committee.
    pub fn consensus_committee(&self, shard: ShardId) -> Option<Committee> {
        consensus_committee(self.committee(shard)?).ok()
    }

    /// Every shard's consensus committee (those consensus accepts).
    pub fn committees_by_shard(&self) -> Committees {
        let map = self.committees.iter().filter_map(|c| Some((c.shard, consensus_committee(c).ok()?))).collect();
        std::sync::Arc::new(map)
    }

    /// What execution needs to know about `shard`.
    pub fn shard_context(&self, shard: ShardId) -> Option<ShardContext> {
        Some(ShardContext {
            chain_id: self.chain_id.clone(),
            shard,
            shard_count: self.shard_count,
            genesis_committee: self.consensus_committee(shard)?,
            max_block_txs: self.params.max_block_txs as usize,
            max_block_bytes: self.params.max_block_bytes as usize,
            committees: self.committees_by_shard(),
            max_block_receipts: self.params.max_block_receipts as usize,
            slash_fraction_bps: self.params.slash_fraction_bps,
            block_reward: Amount(self.params.block_reward_units),
            evidence_window_blocks: self.params.evidence_window_blocks,
            fees: crate::fee::FeeParams {
                min_base_fee: Amount(self.params.min_base_fee_units),
                max_base_fee: Amount(self.params.max_base_fee_units),
                target_block_txs: u64::from(self.params.base_fee_target_txs),
            },
            staking: self.params.staking,
        })
    }

    /// The state of `shard` at height 0: its accounts, its committee's
    /// validator records, and the chain record.
    pub fn shard_state(&self, shard: ShardId) -> BTreeMap<StateKey, Vec<u8>> {
        let mut writes = BTreeMap::new();
        for account in self.accounts.iter().filter(|a| a.address.shard(self.shard_count) == shard) {
            let value = Account { balance: Amount(account.balance_units), nonce: 0 };
            writes.insert(StateKey::Account(account.address), codec::encode(&value));
        }
        let validators = self.committee(shard).map(|c| c.validators.as_slice()).unwrap_or_default();
        for validator in validators {
            let record = ValidatorRecord { stake: Amount(validator.stake_units), rewards: Amount::ZERO, jailed: false };
            writes.insert(StateKey::Validator(validator.address), codec::encode(&record));
        }
        if self.params.staking.is_some() {
            // Genesis validators are bonded by themselves, p2p key unknown.
            let mut candidates = Vec::with_capacity(validators.len());
            for validator in validators {
                let stake = StakeRecord { operator: validator.address, p2p_key: None, unbonding: Vec::new() };
                writes.insert(StateKey::Stake(validator.address), codec::encode(&stake));
                candidates.push(validator.address);
            }
            candidates.sort();
            writes.insert(StateKey::Candidates, codec::encode(&candidates));
            let members = validators.iter().map(|v| (v.address, Amount(v.stake_units))).collect();
            writes.insert(StateKey::Committee(0), codec::encode(&CommitteeRecord { epoch: 0, members }));
        }
        writes.insert(
            StateKey::Chain,
            codec::encode(&ChainRecord { height: 0, parent: Hash::ZERO, ..ChainRecord::default() }),
        );
        writes
    }

    /// Total units in existence at genesis (stake + balances).
    pub fn total_supply(&self) -> Option<Amount> {
        let stakes = self.committees.iter().flat_map(|c| &c.validators).map(|v| v.stake_units);
        let balances = self.accounts.iter().map(|a| a.balance_units);
        stakes.chain(balances).try_fold(Amount::ZERO, |sum, units| sum.checked_add(Amount(units)))
    }

    /// The dev network: `shards` × `validators_per_shard` validators named
    /// `validator-S-I`, and the well-known accounts ([`DEV_ACCOUNTS`]), all
    /// with keys derived from their names (INSECURE, for local use only).
    pub fn dev(shards: u32, validators_per_shard: u32) -> Genesis {
        let pal = |n: u64| Amount::from_pal(n).map_or(u64::MAX, Amount::units);
        let committees = (0..shards)
            .map(|shard| GenesisCommittee {
                shard,
                validators: (0..validators_per_shard)
                    .map(|i| {
                        let name = format!("validator-{shard}-{i}");
                        let address = Keypair::dev(&name).address();
                        GenesisValidator { name, address, stake_units: pal(1_000_000) }
                    })
                    .collect(),
            })
            .collect();
        let mut accounts: Vec<GenesisAccount> = DEV_ACCOUNTS
            .iter()
            .map(|name| GenesisAccount {
                name: (*name).to_string(),
                address: Keypair::dev(name).address(),
                balance_units: if *name == "faucet" { pal(1_000_000_000) } else { pal(1_000_000) },
            })
            .collect();
        accounts.extend((0..shards).filter_map(|shard| {
            let key = shard_faucet_key(shard, shards)?;
            Some(GenesisAccount {
                name: shard_faucet_name(shard),
                address: key.address(),
                balance_units: pal(1_000_000_000),
            })
        }));
        Genesis {
            chain_id: DEV_CHAIN_ID.to_string(),
            genesis_time_ms: DEV_GENESIS_TIME_MS,
            shard_count: shards,
            params: Params {
                block_interval_ms: 100,
                heartbeat_interval_ms: 1_000,
                view_timeout_ms: 1_000,
                leader_timeout_ms: 400,
                max_block_txs: 10_000,
                max_block_bytes: 4 * 1024 * 1024,
                max_block_receipts: 4_096,
                slash_fraction_bps: 1_000,
                block_reward_units: pal(1),
                evidence_window_blocks: 10_000,
                min_base_fee_units: 0,
                max_base_fee_units: pal(1),
                base_fee_target_txs: 1_000,
                staking: None,
            },
            committees,
            accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_json() -> serde_json::Value {
        serde_json::to_value(Genesis::dev(4, 4)).unwrap()
    }

    fn load(value: &serde_json::Value) -> Result<(Genesis, Vec<GenesisWarning>), GenesisError> {
        Genesis::from_json(&value.to_string())
    }

    fn field_of(err: GenesisError) -> String {
        match err {
            GenesisError::Invalid { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn dev_genesis_is_valid_and_round_trips() {
        let genesis = Genesis::dev(4, 4);
        let (back, warnings) = Genesis::from_json(&genesis.to_json()).unwrap();
        assert_eq!(back, genesis);
        assert!(warnings.is_empty());
        assert_eq!(back.hash(), genesis.hash());
    }

    #[test]
    fn every_dev_shard_has_a_funded_faucet_whose_key_is_found_by_name() {
        for shards in [1, 4, 7] {
            let genesis = Genesis::dev(shards, 4);
            for shard in 0..shards {
                let name = shard_faucet_name(shard);
                let account = genesis.accounts.iter().find(|a| a.name == name).unwrap();
                assert_eq!(account.address.shard(shards), shard, "{name} of {shards} shards");
                assert!(account.balance_units > 0);
                assert_eq!(genesis.dev_keypair(&name).unwrap().address(), account.address);
            }
        }
        let genesis = Genesis::dev(2, 4);
        assert_eq!(genesis.dev_keypair("alice").unwrap().address(), Keypair::dev("alice").address());
        assert_eq!(genesis.dev_keypair("validator-1-3").unwrap().address(), Keypair::dev("validator-1-3").address());
        assert!(genesis.dev_keypair("mallory").is_none());
        assert!(genesis.dev_keypair("faucet-9").is_none());
        // `dev_key` falls back to the plain derivation, and `role_of` says what a key is.
        assert_eq!(genesis.dev_key("mallory").address(), Keypair::dev("mallory").address());
        assert_eq!(genesis.role_of(&genesis.dev_key("mallory").address()), None);
        assert_eq!(genesis.role_of(&genesis.dev_key("validator-1-3").address()), Some(GenesisRole::Validator(1)));
        let faucet = genesis.accounts.iter().find(|a| a.name == "faucet-1").unwrap();
        assert_eq!(genesis.dev_key("faucet-1").address(), faucet.address);
        assert_eq!(genesis.role_of(&faucet.address), Some(GenesisRole::Account(Amount(faucet.balance_units))));
    }

    #[test]
    fn each_semantic_error_names_its_field() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 10] = [
            ("committees[1].validators[2].address", |g| {
                g["committees"][1]["validators"][2]["address"] = g["committees"][0]["validators"][0]["address"].clone()
            }),
            ("committees[0].validators[3].stake_units", |g| {
                g["committees"][0]["validators"][3]["stake_units"] = 0.into()
            }),
            ("committees[2].shard", |g| g["committees"][2]["shard"] = 9.into()),
            ("committees[3].shard", |g| g["committees"][3]["shard"] = 0.into()),
            ("accounts[1].balance_units", |g| g["accounts"][1]["balance_units"] = u64::MAX.into()),
            ("accounts[2].address", |g| g["accounts"][2]["address"] = g["accounts"][0]["address"].clone()),
            ("params.slash_fraction_bps", |g| g["params"]["slash_fraction_bps"] = 10_001.into()),
            ("params.view_timeout_ms", |g| g["params"]["view_timeout_ms"] = 0.into()),
            ("params.leader_timeout_ms", |g| g["params"]["leader_timeout_ms"] = 0.into()),
            ("chain_id", |g| g["chain_id"] = "Palisade Dev".into()),
        ];
        for (field, edit) in cases {
            let mut json = dev_json();
            edit(&mut json);
            let err = load(&json).expect_err(field);
            assert_eq!(field_of(err), field);
        }
    }

    #[test]
    fn missing_committee_and_zero_shards_are_refused() {
        let mut json = dev_json();
        json["committees"].as_array_mut().unwrap().pop();
        assert_eq!(field_of(load(&json).unwrap_err()), "committees");
        let mut json = dev_json();
        json["shard_count"] = 0.into();
        assert_eq!(field_of(load(&json).unwrap_err()), "shard_count");
    }

    #[test]
    fn unknown_fields_and_bad_addresses_are_refused_with_location() {
        let mut json = dev_json();
        json["params"]["block_intervall_ms"] = 5.into();
        let err = load(&json).unwrap_err().to_string();
        assert!(err.contains("unknown field `block_intervall_ms`"), "{err}");
        let mut json = dev_json();
        json["accounts"][0]["address"] = "pal1notanaddress".into();
        let err = load(&json).unwrap_err().to_string();
        assert!(err.contains("not a valid address"), "{err}");
    }

    #[test]
    fn small_committee_is_a_warning_not_an_error() {
        let genesis = Genesis::dev(2, 3);
        let (_, warnings) = Genesis::from_json(&genesis.to_json()).unwrap();
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].field, "committees[0].validators");
    }
}
