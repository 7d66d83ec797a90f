//! Bonding and unbonding: what each does to balances and stake, every
//! refusal (which changes nothing), the end of an epoch paying unbonded
//! stake back, and money conserved throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_ledger::{
    Address, Amount, Genesis, Keypair, SignedTx, State, StateExt, TxError, apply_block,
    block::tx_root,
    build_block, committee,
    genesis::GenesisAccount,
    mem::MemState,
    stake::{self, StakeError, StakingParams, Unbonding},
    workload::Wallets,
};

const MIN_STAKE: u64 = 1_000;
const FEE: Amount = Amount(5);
const P2P: [u8; 32] = [9; 32];

fn params(max_committee_size: u32) -> StakingParams {
    StakingParams { epoch_blocks: 4, min_stake_units: MIN_STAKE, max_committee_size, unbonding_epochs: 1 }
}

/// One shard (every account lives on it), staking on with `seats` seats,
/// and the genesis validators funded so they can bond and unbond (each is
/// its own operator).
fn setup(seats: u32) -> (Genesis, Wallets, MemState) {
    let (mut genesis, users) = network(1, 8);
    genesis.params.staking = Some(params(seats));
    let validators: Vec<Address> = genesis.committee(0).unwrap().validators.iter().map(|v| v.address).collect();
    for (i, address) in validators.into_iter().enumerate() {
        let name = format!("validator-funds-{i}");
        genesis.accounts.push(GenesisAccount { name, address, balance_units: 50_000 });
    }
    genesis.validate().unwrap();
    let state = MemState::genesis(&genesis, 0).unwrap();
    (genesis, users, state)
}

fn nonce(state: &MemState, key: &Keypair) -> u64 {
    state.account(&key.address()).unwrap().nonce
}

fn bond(state: &MemState, genesis: &Genesis, operator: &Keypair, validator: &Keypair, amount: u64) -> SignedTx {
    let chain = &genesis.chain_id;
    stake::bond_tx(operator, validator, chain, nonce(state, operator), 0, Amount(amount), P2P, FEE)
}

fn unbond(state: &MemState, genesis: &Genesis, operator: &Keypair, validator: Address, amount: u64) -> SignedTx {
    stake::unbond_tx(operator, &genesis.chain_id, nonce(state, operator), validator, Amount(amount), FEE)
}

/// A member that may propose the block after the tip.
fn leader(state: &MemState) -> Address {
    let committee = committee::current(state).unwrap();
    committee::member_address(&committee, committee.rotation()[0]).unwrap()
}

/// Builds, checks and commits the next block with `txs`; returns what the
/// builder left out. Money is the same before and after.
fn commit(state: &mut MemState, genesis: &Genesis, txs: Vec<SignedTx>) -> Vec<TxError> {
    let money = state.money().unwrap();
    let built = build_block(state, leader(state), genesis.genesis_time_ms, Vec::new(), txs).unwrap();
    let outcome = apply_block(state, &built.block).unwrap();
    assert_eq!(outcome.tip, built.outcome.tip);
    state.commit(&outcome);
    assert_eq!(state.money().unwrap(), money, "money is conserved");
    built.rejected.into_iter().map(|(_, reason)| reason).collect()
}

/// Commits the next block with the transaction `make` signs on the state
/// as it is; it must execute.
fn apply(state: &mut MemState, genesis: &Genesis, make: impl FnOnce(&MemState) -> SignedTx) {
    let tx = make(state);
    assert_eq!(commit(state, genesis, vec![tx]), Vec::new());
}

/// A staking network (`seats` seats) where wallet 0 operates the validator
/// `newcomer`, bonded with `stake`.
fn bonded(seats: u32, stake: u64) -> (Genesis, Wallets, MemState, Keypair) {
    let (genesis, users, mut state) = setup(seats);
    let newcomer = Keypair::dev("newcomer");
    apply(&mut state, &genesis, |state| bond(state, &genesis, users.keypair(0), &newcomer, stake));
    (genesis, users, state, newcomer)
}

/// `tx` is refused with `expected`: the builder leaves it out, a block that
/// carries it anyway is invalid, and the state is what it was.
fn assert_refused(state: &MemState, genesis: &Genesis, tx: SignedTx, expected: StakeError) {
    let expected = TxError::Stake(expected);
    let built = build_block(state, leader(state), genesis.genesis_time_ms, Vec::new(), [tx.clone()]).unwrap();
    assert_eq!(built.rejected.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![expected.clone()]);
    let mut block = built.block;
    block.txs = vec![tx];
    block.header.tx_root = tx_root(&block.txs);
    match apply_block(state, &block) {
        Err(palisade_ledger::BlockError::Tx { reason, .. }) => assert_eq!(reason, expected),
        other => panic!("expected {expected:?}, got {:?}", other.map(|o| o.tip)),
    }
}

#[test]
fn bonds_and_unbonds_are_refused_while_staking_is_off() {
    let (genesis, users) = network(1, 2);
    let state = MemState::genesis(&genesis, 0).unwrap();
    let newcomer = Keypair::dev("newcomer");
    let tx = bond(&state, &genesis, users.keypair(0), &newcomer, 5_000);
    assert_refused(&state, &genesis, tx, StakeError::Disabled);
    let tx = unbond(&state, &genesis, users.keypair(0), proposer(&genesis, 0), 5_000);
    assert_refused(&state, &genesis, tx, StakeError::Disabled);
}

#[test]
fn genesis_validators_are_their_own_operators_and_candidates() {
    let (genesis, _, state) = setup(8);
    let mut members: Vec<Address> = genesis.committee(0).unwrap().validators.iter().map(|v| v.address).collect();
    members.sort();
    assert_eq!(state.candidates().unwrap(), members);
    let record = state.stake(&members[0]).unwrap().unwrap();
    assert_eq!(record.operator, members[0]);
    assert_eq!(record.p2p_key, None);
}

#[test]
fn a_new_validator_bonds_from_its_operators_balance() {
    let (genesis, users, mut state) = setup(8);
    let operator = users.keypair(0);
    let newcomer = Keypair::dev("newcomer");
    let before = balance(&state, &operator.address());
    let tx = bond(&state, &genesis, operator, &newcomer, 5_000);
    assert!(commit(&mut state, &genesis, vec![tx]).is_empty());
    assert_eq!(balance(&state, &operator.address()), before - 5_000 - FEE.units());
    assert_eq!(state.validator(&newcomer.address()).unwrap().unwrap().stake, Amount(5_000));
    let record = state.stake(&newcomer.address()).unwrap().unwrap();
    assert_eq!((record.operator, record.p2p_key), (operator.address(), Some(P2P)));
    assert!(state.candidates().unwrap().contains(&newcomer.address()));
    // The operator adds to it.
    let tx = bond(&state, &genesis, operator, &newcomer, 1_000);
    assert!(commit(&mut state, &genesis, vec![tx]).is_empty());
    assert_eq!(state.validator(&newcomer.address()).unwrap().unwrap().stake, Amount(6_000));
}

#[test]
fn a_proposer_bonding_to_itself_keeps_its_stake_and_its_tip() {
    let (genesis, _, mut state) = setup(8);
    let validator = genesis.dev_key("validator-0-0");
    assert_eq!(validator.address(), proposer(&genesis, 0));
    let before = state.validator(&validator.address()).unwrap().unwrap();
    let tx = bond(&state, &genesis, &validator, &validator, 2_000);
    assert!(commit(&mut state, &genesis, vec![tx]).is_empty());
    let after = state.validator(&validator.address()).unwrap().unwrap();
    assert_eq!(after.stake, Amount(before.stake.units() + 2_000));
    let reward = genesis.params.block_reward_units;
    assert_eq!(after.rewards, Amount(before.rewards.units() + FEE.units() + reward));
}

#[test]
fn bad_bonds_are_refused_and_change_nothing() {
    let (genesis, users, mut state) = setup(8);
    let (operator, other) = (users.keypair(0), users.keypair(1));
    let newcomer = Keypair::dev("newcomer");
    let chain = genesis.chain_id.clone();

    // A proof of possession signed by another key than the validator's.
    let mut forged = bond(&state, &genesis, operator, &Keypair::dev("impostor"), 5_000);
    if let palisade_ledger::TxKind::Bond { validator, .. } = &mut forged.body.kind {
        *validator = newcomer.address();
    }
    let forged = forged.body.sign(operator);
    assert_refused(&state, &genesis, forged, StakeError::BadPossessionProof);
    // A proof made for another operator.
    let mut stolen = bond(&state, &genesis, other, &newcomer, 5_000);
    stolen.body.sender = operator.address();
    stolen.body.nonce = nonce(&state, operator);
    let stolen = stolen.body.sign(operator);
    assert_refused(&state, &genesis, stolen, StakeError::BadPossessionProof);

    assert_refused(
        &state,
        &genesis,
        bond(&state, &genesis, operator, &newcomer, MIN_STAKE - 1),
        StakeError::BelowMinimum { stake: Amount(MIN_STAKE - 1), min: Amount(MIN_STAKE) },
    );
    assert_refused(&state, &genesis, bond(&state, &genesis, operator, &newcomer, 0), StakeError::ZeroAmount);
    let elsewhere = stake::bond_tx(operator, &newcomer, &chain, nonce(&state, operator), 3, Amount(5_000), P2P, FEE);
    assert_refused(&state, &genesis, elsewhere, StakeError::NoSuchShard { shard: 3, shard_count: 1 });

    // Bonded by `operator`: nobody else may add to it, nor change its p2p key.
    apply(&mut state, &genesis, |state| bond(state, &genesis, operator, &newcomer, 5_000));
    assert_refused(
        &state,
        &genesis,
        bond(&state, &genesis, other, &newcomer, 5_000),
        StakeError::NotOperator { operator: operator.address() },
    );
    let rekeyed = stake::bond_tx(operator, &newcomer, &chain, nonce(&state, operator), 0, Amount(5_000), [1; 32], FEE);
    assert_refused(&state, &genesis, rekeyed, StakeError::P2pKeyMismatch);
    // A genesis validator is its own operator.
    let member = genesis.dev_key("validator-0-1");
    assert_refused(
        &state,
        &genesis,
        bond(&state, &genesis, operator, &member, 5_000),
        StakeError::NotOperator { operator: member.address() },
    );
}

#[test]
fn staking_needs_a_single_shard_for_now_and_bonds_stay_on_their_shard() {
    let (mut genesis, users) = network(2, 8);
    genesis.params.staking = Some(params(8));
    let refused = genesis.validate().unwrap_err().to_string();
    assert!(refused.starts_with("params.staking: staking needs a single shard"), "{refused}");
    // The rule that keeps a bond on its shard, for when several are allowed.
    let on_0 = wallets_in(&genesis, &users, 0, 1)[0];
    let context = genesis.shard_context(0).unwrap();
    let tx = stake::bond_tx(
        users.keypair(on_0),
        &Keypair::dev("newcomer"),
        &genesis.chain_id,
        0,
        1,
        Amount(5_000),
        P2P,
        FEE,
    );
    assert_eq!(
        stake::check_static(&context, &tx.body),
        Err(StakeError::CrossShard { validator_shard: 1, sender_shard: 0 })
    );
}

#[test]
fn a_full_committee_takes_no_newcomer() {
    let (genesis, users, mut state) = setup(5);
    let operator = users.keypair(0);
    apply(&mut state, &genesis, |state| bond(state, &genesis, operator, &Keypair::dev("fifth"), 5_000));
    assert_refused(
        &state,
        &genesis,
        bond(&state, &genesis, operator, &Keypair::dev("sixth"), 5_000),
        StakeError::CommitteeFull { shard: 0, max: 5 },
    );
}

#[test]
fn unbonded_stake_returns_at_the_end_of_the_period() {
    let (genesis, users, mut state, newcomer) = bonded(8, 5_000);
    let operator = users.keypair(0);
    let v = newcomer.address();

    assert_refused(
        &state,
        &genesis,
        unbond(&state, &genesis, operator, v, 6_000),
        StakeError::TooMuch { bonded: Amount(5_000), requested: Amount(6_000) },
    );
    assert_refused(
        &state,
        &genesis,
        unbond(&state, &genesis, operator, v, 4_500),
        StakeError::BelowMinimum { stake: Amount(500), min: Amount(MIN_STAKE) },
    );
    assert_refused(
        &state,
        &genesis,
        unbond(&state, &genesis, users.keypair(1), v, 1_000),
        StakeError::NotOperator { operator: operator.address() },
    );
    let stranger = Keypair::dev("stranger").address();
    assert_refused(
        &state,
        &genesis,
        unbond(&state, &genesis, operator, stranger, 1_000),
        StakeError::NotBonded(stranger),
    );

    // Height 2 is in epoch 0: 2,000 unbonds and returns when epoch 1 ends,
    // with the block at height 8.
    assert_eq!(state.tip().height, 1);
    let funds = balance(&state, &operator.address());
    apply(&mut state, &genesis, |state| unbond(state, &genesis, operator, v, 2_000));
    assert_eq!(state.validator(&v).unwrap().unwrap().stake, Amount(3_000));
    let pending = state.stake(&v).unwrap().unwrap().unbonding;
    assert_eq!(pending, vec![Unbonding { amount: Amount(2_000), release_epoch: 1 }]);
    let after_fee = funds - FEE.units();
    while state.tip().height < 7 {
        assert!(commit(&mut state, &genesis, Vec::new()).is_empty());
        assert_eq!(balance(&state, &operator.address()), after_fee, "paid out early, at {}", state.tip().height);
    }
    assert!(commit(&mut state, &genesis, Vec::new()).is_empty());
    assert_eq!(state.tip().height, 8);
    assert_eq!(balance(&state, &operator.address()), after_fee + 2_000);
    assert!(state.stake(&v).unwrap().unwrap().unbonding.is_empty());

    // Unbonding the rest takes it off the candidate list once paid out.
    apply(&mut state, &genesis, |state| unbond(state, &genesis, operator, v, 3_000));
    assert!(state.candidates().unwrap().contains(&v), "still unbonding");
    while state.tip().height < 16 {
        assert!(commit(&mut state, &genesis, Vec::new()).is_empty());
    }
    assert_eq!(balance(&state, &operator.address()), after_fee + 2_000 - FEE.units() + 3_000);
    assert!(!state.candidates().unwrap().contains(&v));
    // Bonding again puts it back on the list.
    apply(&mut state, &genesis, |state| bond(state, &genesis, operator, &newcomer, 4_000));
    assert!(state.candidates().unwrap().contains(&v));
    assert_eq!(state.validator(&v).unwrap().unwrap().stake, Amount(4_000));
}

#[test]
fn unbondings_in_flight_are_bounded() {
    let (genesis, users, mut state, newcomer) = bonded(8, 100_000);
    let operator = users.keypair(0);
    let v = newcomer.address();
    let txs: Vec<SignedTx> = (0..stake::MAX_UNBONDINGS as u64)
        .map(|i| stake::unbond_tx(operator, &genesis.chain_id, nonce(&state, operator) + i, v, Amount(10), FEE))
        .collect();
    assert!(commit(&mut state, &genesis, txs).is_empty());
    assert_refused(&state, &genesis, unbond(&state, &genesis, operator, v, 10), StakeError::TooManyUnbondings);
}

/// Commits empty blocks until the tip is at `height`.
fn advance_to(state: &mut MemState, genesis: &Genesis, height: u64) {
    while state.tip().height < height {
        assert!(commit(state, genesis, Vec::new()).is_empty());
    }
}

fn members(state: &MemState) -> Vec<Address> {
    committee::current(state)
        .unwrap()
        .active()
        .iter()
        .map(|i| committee::member_address(&committee::current(state).unwrap(), *i).unwrap())
        .collect()
}

#[test]
fn a_newcomer_sits_on_the_committee_from_the_next_epoch() {
    let (genesis, _, mut state, newcomer) = bonded(8, 5_000);
    let v = newcomer.address();
    advance_to(&mut state, &genesis, 3);
    assert!(!members(&state).contains(&v), "not before the epoch ends");
    advance_to(&mut state, &genesis, 4);
    let committee = committee::current(&state).unwrap();
    assert_eq!(committee.len(), 5);
    assert!(members(&state).contains(&v));
    let index = committee.index_of(&v.0).unwrap();
    assert_eq!(committee.stake(index), 5_000, "it weighs what it bonded");
    assert_eq!(state.committee_record(1).unwrap().unwrap().epoch, 1);
    // It may propose the first block of the new epoch, whose header names
    // the new committee.
    let built = build_block(&state, v, genesis.genesis_time_ms, Vec::new(), []).unwrap();
    assert_eq!(built.block.header.committee_hash, palisade_ledger::Hash(committee.hash()));
    state.commit(&apply_block(&state, &built.block).unwrap());
}

#[test]
fn a_validator_that_unbonds_everything_leaves_at_the_epochs_end() {
    let (genesis, _, mut state, newcomer) = bonded(8, 5_000);
    advance_to(&mut state, &genesis, 4);
    assert_eq!(committee::current(&state).unwrap().len(), 5);
    // A genesis validator, its own operator, leaves.
    let leaving = genesis.dev_key("validator-0-0");
    apply(&mut state, &genesis, |state| {
        unbond(state, &genesis, &leaving, leaving.address(), genesis.committee(0).unwrap().validators[0].stake_units)
    });
    assert!(members(&state).contains(&leaving.address()), "it serves out its epoch");
    advance_to(&mut state, &genesis, 8);
    let now = members(&state);
    assert_eq!(now.len(), 4);
    assert!(!now.contains(&leaving.address()));
    assert!(now.contains(&newcomer.address()));
    // Down to four: the next may not leave.
    let next = genesis.dev_key("validator-0-1");
    let all = genesis.committee(0).unwrap().validators[1].stake_units;
    let tx = unbond(&state, &genesis, &next, next.address(), all);
    assert_refused(&state, &genesis, tx, StakeError::CommitteeTooSmall);
}

#[test]
fn evidence_from_an_earlier_epoch_slashes_the_validator_that_signed_it() {
    let (genesis, _, mut state, _) = bonded(8, 5_000);
    // Genesis member 1 equivocates at height 2 (epoch 0, genesis order).
    let evidence = palisade_ledger::workload::dev_evidence(&genesis, 0, 1, 2);
    let offender = genesis.committee(0).unwrap().validators[1].address;
    // From height 5 on, epoch 1's committee numbers its members otherwise.
    advance_to(&mut state, &genesis, 4);
    let now = committee::current(&state).unwrap();
    assert_ne!(committee::member_address(&now, palisade_consensus::ValidatorIndex(1)), Some(offender));
    assert!(evidence.verify(&now, &genesis.chain_id, 0).is_err(), "the new numbering does not judge it");
    let extras = palisade_ledger::execute::Extras { evidence: vec![evidence], ..Default::default() };
    let built = build_block(&state, leader(&state), genesis.genesis_time_ms, extras, []).unwrap();
    assert!(built.refused_evidence.is_empty(), "{:?}", built.refused_evidence);
    state.commit(&apply_block(&state, &built.block).unwrap());
    assert!(state.validator(&offender).unwrap().unwrap().jailed);
    assert_eq!(state.slashed(&offender).unwrap().unwrap().height, 2);
    assert!(!members(&state).contains(&offender));
}

/// Builds, checks and commits the next (empty) block; returns it.
fn next_block(state: &mut MemState, genesis: &Genesis) -> palisade_ledger::Block {
    let built = build_block(state, leader(state), genesis.genesis_time_ms, Vec::new(), []).unwrap();
    state.commit(&apply_block(state, &built.block).unwrap());
    built.block
}

#[test]
fn a_certified_epoch_end_hands_over_to_the_next_committee() {
    let (genesis, _, mut state, newcomer) = bonded(8, 5_000);
    let known = genesis.consensus_committee(0).unwrap();
    let staking = params(8);
    let (chain, all) = (&genesis.chain_id, [0, 1, 2, 3]);
    advance_to(&mut state, &genesis, 2);
    let inside = next_block(&mut state, &genesis);
    assert_eq!(inside.header.next_committee_hash, palisade_ledger::Hash::ZERO, "height 3 closes nothing");
    let closing = next_block(&mut state, &genesis);
    let next = state.committee_record(1).unwrap().unwrap();
    let certificate = palisade_ledger::workload::dev_certificate(&genesis, &closing, 0, &all);
    let handed = committee::verify_handover(&known, &[], chain, &staking, &closing.header, &certificate, &next)
        .expect("a genuine hand-over verifies");
    assert!(handed.index_of(&newcomer.address().0).is_some());
    assert_eq!(handed.hash(), committee::base(&state).unwrap().hash(), "the committee the shard now runs");

    // What is refused: another committee than the header's, a record of
    // another epoch, a block inside the epoch, too few signers.
    let mut other = next.clone();
    other.members.retain(|(address, _)| *address != newcomer.address());
    let refused = committee::verify_handover(&known, &[], chain, &staking, &closing.header, &certificate, &other);
    assert!(matches!(refused, Err(committee::CertifiedError::NextCommittee { .. })), "{refused:?}");
    let later = palisade_ledger::stake::CommitteeRecord { epoch: 2, ..next.clone() };
    let refused = committee::verify_handover(&known, &[], chain, &staking, &closing.header, &certificate, &later);
    assert_eq!(refused.unwrap_err(), committee::CertifiedError::WrongEpoch { expected: 1, found: 2 });
    let inside_certificate = palisade_ledger::workload::dev_certificate(&genesis, &inside, 0, &all);
    let refused = committee::verify_handover(&known, &[], chain, &staking, &inside.header, &inside_certificate, &next);
    assert_eq!(refused.unwrap_err(), committee::CertifiedError::NotAnEpochEnd { height: 3 });
    let thin = palisade_ledger::workload::dev_certificate(&genesis, &closing, 0, &[0, 1]);
    let refused = committee::verify_handover(&known, &[], chain, &staking, &closing.header, &thin, &next);
    assert!(matches!(refused, Err(committee::CertifiedError::Certificate(_))), "{refused:?}");
}

#[test]
fn the_staking_view_names_each_validators_status() {
    let (genesis, _, mut state, newcomer) = bonded(8, 5_000);
    let status = |state: &MemState, address: Address| {
        let view = palisade_ledger::api::staking_view(state).unwrap().unwrap();
        view.bonded.iter().find(|b| b.address == address).map(|b| b.status.clone())
    };
    assert_eq!(status(&state, newcomer.address()).as_deref(), Some("pending"));
    advance_to(&mut state, &genesis, 4);
    assert_eq!(status(&state, newcomer.address()).as_deref(), Some("active"));
    let leaving = genesis.dev_key("validator-0-0");
    let all = genesis.committee(0).unwrap().validators[0].stake_units;
    apply(&mut state, &genesis, |state| unbond(state, &genesis, &leaving, leaving.address(), all));
    // Still seated until the epoch ends, then on its way out.
    assert_eq!(status(&state, leaving.address()).as_deref(), Some("active"));
    advance_to(&mut state, &genesis, 8);
    assert_eq!(status(&state, leaving.address()).as_deref(), Some("unbonding"));
    let view = palisade_ledger::api::staking_view(&state).unwrap().unwrap();
    assert_eq!((view.epoch, view.committee.len()), (2, 4));
    let gone = view.bonded.iter().find(|b| b.address == leaving.address()).unwrap();
    assert_eq!(gone.unbonding.len(), 1);
    assert_eq!((gone.unbonding[0].amount_units, gone.unbonding[0].release_epoch), (all, 2));
}

#[test]
fn a_committee_kept_for_want_of_candidates_drops_members_that_left_or_were_jailed() {
    let (genesis, users, mut state, newcomer) = bonded(8, 5_000);
    advance_to(&mut state, &genesis, 4);
    assert_eq!(committee::current(&state).unwrap().len(), 5);
    // The newcomer leaves (four stay eligible), then a genesis member is
    // jailed: three eligible at the epoch's end, too few to choose from.
    let v = newcomer.address();
    apply(&mut state, &genesis, |state| unbond(state, &genesis, users.keypair(0), v, 5_000));
    let now = committee::current(&state).unwrap();
    let index = now.index_of(&genesis.committee(0).unwrap().validators[2].address.0).unwrap();
    // Genesis member 2 equivocates at height 5; epoch 1 numbers it `index`
    // (the votes' signatures do not cover the index).
    let mut evidence = palisade_ledger::workload::dev_evidence(&genesis, 0, 2, 5);
    evidence.signer = index;
    let extras = palisade_ledger::execute::Extras { evidence: vec![evidence], ..Default::default() };
    let built = build_block(&state, leader(&state), genesis.genesis_time_ms, extras, []).unwrap();
    assert!(built.refused_evidence.is_empty(), "{:?}", built.refused_evidence);
    state.commit(&apply_block(&state, &built.block).unwrap());
    advance_to(&mut state, &genesis, 8);
    let kept = state.committee_record(2).unwrap().unwrap();
    let jailed = genesis.committee(0).unwrap().validators[2].address;
    assert_eq!(kept.members.len(), 3, "{kept:?}");
    assert!(kept.members.iter().all(|(a, _)| *a != v && *a != jailed), "{kept:?}");
    assert_eq!(members(&state).len(), 3);
}
