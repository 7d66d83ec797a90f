//! The staking view of `palisade_validators` ([`StakingJson`]): the epoch,
//! its committee, and every validator bonded on a shard with its status,
//! read from the shard's state.

use serde::{Deserialize, Serialize};

use crate::{
    Address, committee,
    stake::{self, StakeRecord},
    state::{State, StateError, StateExt},
};

/// A shard's staking view at `ShardValidators::height`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StakingJson {
    /// The epoch of the next block.
    pub epoch: u64,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// The next block's committee (before jailing), in index order.
    pub committee: Vec<MemberJson>,
    /// Every validator bonded on the shard, in address order.
    pub bonded: Vec<BondedJson>,
}

/// A member of an epoch's committee.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberJson {
    /// Committee index.
    pub index: u32,
    /// Consensus key / address.
    pub address: Address,
    /// The stake its votes weigh this epoch, base units.
    pub stake_units: u64,
}

/// A bonded validator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BondedJson {
    /// Consensus key / address.
    pub address: Address,
    /// The account that bonded it.
    pub operator: Address,
    /// `active` (on this epoch's committee), `pending` (eligible, not on it:
    /// the next epoch's end may seat it), `unbonding` (nothing bonded, stake
    /// on its way back), `jailed` (for good), `inactive` (below the minimum).
    pub status: String,
    /// Bonded now, base units.
    pub stake_units: u64,
    /// Stake on its way back.
    pub unbonding: Vec<UnbondingJson>,
    /// Its libp2p public key, hex, once a bond named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_key: Option<String>,
}

/// Stake on its way back to the operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnbondingJson {
    /// Base units.
    pub amount_units: u64,
    /// Paid back by the block that closes this epoch.
    pub release_epoch: u64,
}

/// A validator key's proof of possession for a bond, as `palisade-node keys
/// prove-possession` prints it and `palisade stake bond --proof-file` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PossessionJson {
    /// The network.
    pub chain_id: String,
    /// The shard the validator stands for.
    pub shard: crate::ShardId,
    /// The validator's consensus key / address.
    pub validator: Address,
    /// The account allowed to bond it.
    pub operator: Address,
    /// The validator node's libp2p ed25519 public key, hex.
    pub p2p_key: String,
    /// The signature, hex.
    pub proof: String,
}

/// The staking view of `state`, if its network has staking on.
pub fn staking_view<S: State + ?Sized>(state: &S) -> Result<Option<StakingJson>, StateError> {
    let Some(params) = state.context().staking else { return Ok(None) };
    let next = state.tip().height.saturating_add(1);
    let base = committee::base(state)?;
    let members: Vec<MemberJson> = base
        .validators()
        .iter()
        .enumerate()
        .map(|(index, v)| MemberJson {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            address: Address(v.public_key),
            stake_units: v.stake,
        })
        .collect();
    let mut bonded = Vec::new();
    for address in state.candidates()? {
        let record = state.validator(&address)?.unwrap_or_default();
        let Some(StakeRecord { operator, p2p_key, unbonding }) = state.stake(&address)? else { continue };
        let seated = members.iter().any(|m| m.address == address);
        let status = if record.jailed {
            "jailed"
        } else if seated {
            "active"
        } else if stake::eligible(&params, &record) {
            "pending"
        } else if !unbonding.is_empty() {
            "unbonding"
        } else {
            "inactive"
        };
        bonded.push(BondedJson {
            address,
            operator,
            status: status.into(),
            stake_units: record.stake.units(),
            unbonding: unbonding
                .iter()
                .map(|u| UnbondingJson { amount_units: u.amount.units(), release_epoch: u.release_epoch })
                .collect(),
            p2p_key: p2p_key.map(hex::encode),
        });
    }
    Ok(Some(StakingJson {
        epoch: params.epoch_of(next),
        epoch_blocks: params.epoch_blocks,
        committee: members,
        bonded,
    }))
}
