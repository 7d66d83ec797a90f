//! Block validation and execution, one rejection reason at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_ledger::execute::apply_block_verified;
use palisade_ledger::{
    Amount, Block, BlockError, Hash, Keypair, State, TxError, apply_block, block::tx_root, build_block, mem::MemState,
    tx::TxBody,
};

fn setup() -> (palisade_ledger::Genesis, palisade_ledger::workload::Wallets, MemState) {
    let (genesis, users) = network(1, 8);
    let state = MemState::genesis(&genesis, 0).unwrap();
    (genesis, users, state)
}

#[test]
fn transfers_move_money_and_pay_the_proposer() {
    let (genesis, mut users, mut state) = setup();
    let proposer = proposer(&genesis, 0);
    let to = users.address(1);
    let tx = users.transfer(0, to, Amount(1_000), Amount(7));
    let built = build_block(&state, proposer, genesis.genesis_time_ms + 1, Vec::new(), [tx]).unwrap();
    assert!(built.rejected.is_empty());
    let outcome = apply_block(&state, &built.block).unwrap();
    assert_eq!(outcome.tip, built.outcome.tip);
    let supply = state.money().unwrap();
    state.commit(&outcome);
    assert_eq!(balance(&state, &users.address(0)), START_BALANCE.units() - 1_007);
    assert_eq!(balance(&state, &to), START_BALANCE.units() + 1_000);
    let reward = genesis.params.block_reward_units;
    assert_eq!(palisade_ledger::StateExt::validator(&state, &proposer).unwrap().unwrap().rewards, Amount(7 + reward));
    assert_eq!(state.money().unwrap(), supply);
    assert_eq!(outcome.receipts[0].height, 1);
}

#[test]
fn empty_blocks_are_valid_and_advance_the_chain() {
    let (genesis, _, mut state) = setup();
    for height in 1..=3 {
        let built = build_block(&state, proposer(&genesis, 0), genesis.genesis_time_ms, Vec::new(), []).unwrap();
        let outcome = apply_block(&state, &built.block).unwrap();
        state.commit(&outcome);
        assert_eq!(state.tip().height, height);
    }
}

/// A valid one-transaction block to corrupt.
fn valid_block(
    genesis: &palisade_ledger::Genesis,
    users: &mut palisade_ledger::workload::Wallets,
    state: &MemState,
) -> Block {
    let tx = users.transfer(0, users.address(1), Amount(10), Amount(1));
    build_block(state, proposer(genesis, 0), genesis.genesis_time_ms + 5, Vec::new(), [tx]).unwrap().block
}

#[test]
fn header_faults_are_rejected_with_their_reason() {
    type Corrupt = fn(&mut Block);
    let cases: [(&str, Corrupt); 8] = [
        ("chain", |b| b.header.chain_id = "other".into()),
        ("shard", |b| b.header.shard = 3),
        ("height", |b| b.header.height = 2),
        ("parent", |b| b.header.parent = Hash([1; 32])),
        ("timestamp", |b| b.header.timestamp_ms = 0),
        ("committee", |b| b.header.committee_hash = Hash([2; 32])),
        ("proposer", |b| b.header.proposer = Keypair::dev("mallory").address()),
        ("tx root", |b| b.header.tx_root = Hash([3; 32])),
    ];
    let (genesis, mut users, state) = setup();
    let before = state.tip();
    for (name, corrupt) in cases {
        let mut block = valid_block(&genesis, &mut users, &state);
        users.set_nonce(0, 0);
        corrupt(&mut block);
        let err = apply_block(&state, &block).err().unwrap_or_else(|| panic!("{name}: accepted"));
        let matched = match name {
            "chain" => matches!(err, BlockError::WrongChain { .. }),
            "shard" => matches!(err, BlockError::WrongShard { expected: 0, got: 3 }),
            "height" => matches!(err, BlockError::WrongHeight { expected: 1, got: 2 }),
            "parent" => matches!(err, BlockError::WrongParent { .. }),
            "timestamp" => matches!(err, BlockError::TimestampBeforeParent { .. }),
            "committee" => matches!(err, BlockError::WrongCommittee { .. }),
            "proposer" => matches!(err, BlockError::UnknownProposer(_)),
            "tx root" => matches!(err, BlockError::TxRootMismatch { .. }),
            _ => unreachable!(),
        };
        assert!(matched, "{name}: wrong reason {err}");
        assert_unchanged(&state, &before);
    }
}

#[test]
fn a_wrong_state_root_is_rejected() {
    let (genesis, mut users, state) = setup();
    let mut block = valid_block(&genesis, &mut users, &state);
    block.header.state_root = Hash([9; 32]);
    assert!(matches!(apply_block(&state, &block), Err(BlockError::StateRootMismatch { .. })));
}

/// Puts `tx` alone in an otherwise well-formed block and returns the reason it fails.
fn reject_reason(genesis: &palisade_ledger::Genesis, state: &MemState, tx: palisade_ledger::SignedTx) -> TxError {
    let mut block = build_block(state, proposer(genesis, 0), genesis.genesis_time_ms, Vec::new(), []).unwrap().block;
    block.txs = vec![tx.clone()];
    block.header.tx_root = tx_root(&block.txs);
    match apply_block(state, &block) {
        Err(BlockError::Tx { index: 0, id, reason }) => {
            assert_eq!(id, tx.id());
            // The builder must refuse it for the same reason (signatures are
            // the mempool's to check before a transaction becomes a candidate).
            if reason != TxError::BadSignature {
                let built =
                    build_block(state, proposer(genesis, 0), genesis.genesis_time_ms, Vec::new(), [tx]).unwrap();
                assert!(built.block.txs.is_empty());
                assert_eq!(built.rejected, vec![(id, reason.clone())]);
            }
            reason
        }
        Err(other) => panic!("rejected for the wrong reason: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn transaction_faults_are_rejected_with_their_reason() {
    let (genesis, mut users) = network(2, 64);
    let state0 = MemState::genesis(&genesis, 0).unwrap();
    let ours = wallets_in(&genesis, &users, 0, 2);
    let theirs = wallets_in(&genesis, &users, 1, 1)[0];
    let (a, b) = (ours[0], ours[1]);
    let to = users.address(b);

    let mut bad_sig = users.transfer(a, to, Amount(1), Amount(1));
    users.set_nonce(a, 0);
    bad_sig.signature.0[5] ^= 1;
    assert_eq!(reject_reason(&genesis, &state0, bad_sig), TxError::BadSignature);

    let stale = users.transfer(a, to, Amount(1), Amount(1));
    let mut future = stale.clone();
    future.body.nonce = 5;
    let future = future.body.sign(users.keypair(a));
    assert_eq!(reject_reason(&genesis, &state0, future), TxError::BadNonce { expected: 0, got: 5 });
    users.set_nonce(a, 0);

    let poor = users.transfer(a, to, Amount(START_BALANCE.units()), Amount(1));
    users.set_nonce(a, 0);
    assert!(matches!(reject_reason(&genesis, &state0, poor), TxError::InsufficientFunds { .. }));

    let overflow = users.transfer(a, to, Amount(u64::MAX), Amount(1));
    users.set_nonce(a, 0);
    assert_eq!(reject_reason(&genesis, &state0, overflow), TxError::Overflow);

    let wrong_shard = users.transfer(theirs, to, Amount(1), Amount(1));
    assert_eq!(reject_reason(&genesis, &state0, wrong_shard), TxError::WrongShard { sender_shard: 1, shard: 0 });

    let body = users.transfer(a, to, Amount(1), Amount(1)).body;
    let other_chain = TxBody { chain_id: "palisade-other".into(), ..body.clone() }.sign(users.keypair(a));
    assert!(matches!(reject_reason(&genesis, &state0, other_chain), TxError::WrongChain { .. }));

    // The first block is at height 1: a transaction whose last height was 0
    // is late; one that allows height 1 is on time.
    let late = TxBody { expires_at: Some(0), ..body.clone() }.sign(users.keypair(a));
    assert_eq!(reject_reason(&genesis, &state0, late), TxError::Expired { expires_at: 0, height: 1 });
    let on_time = TxBody { expires_at: Some(1), ..body }.sign(users.keypair(a));
    let built = build_block(&state0, proposer(&genesis, 0), genesis.genesis_time_ms, Vec::new(), [on_time]).unwrap();
    assert_eq!(built.block.txs.len(), 1);
    assert!(apply_block(&state0, &built.block).is_ok());
}

#[test]
fn a_bad_signature_anywhere_in_a_large_block_is_found() {
    let (genesis, mut users) = network(1, 200);
    let state = MemState::genesis(&genesis, 0).unwrap();
    let txs: Vec<_> = (0..200).map(|i| users.transfer(i, users.address(i + 1), Amount(5), Amount(1))).collect();
    let built = build_block(&state, proposer(&genesis, 0), genesis.genesis_time_ms, Vec::new(), txs).unwrap();
    assert_eq!(built.block.txs.len(), 200);
    apply_block(&state, &built.block).unwrap();
    let mut block = built.block;
    block.txs[137].signature.0[40] ^= 0x10;
    block.header.tx_root = tx_root(&block.txs);
    match apply_block(&state, &block) {
        Err(BlockError::Tx { index, reason: TxError::BadSignature, .. }) => assert_eq!(index, 137),
        other => panic!("expected bad signature at 137, got {:?}", other.map(|o| o.tip)),
    }
}

/// Only what the caller did not verify is checked: a forged transaction
/// the caller vouches for passes (the caller is trusted with that), one it
/// does not is found at its index, past the ones skipped.
#[test]
fn signatures_the_caller_verified_are_not_checked_again() {
    let (genesis, mut users) = network(1, 20);
    let state = MemState::genesis(&genesis, 0).unwrap();
    let txs: Vec<_> = (0..10).map(|i| users.transfer(i, users.address(i + 1), Amount(5), Amount(1))).collect();
    let mut block = build_block(&state, proposer(&genesis, 0), genesis.genesis_time_ms, Vec::new(), txs).unwrap().block;
    block.txs[3].signature.0[40] ^= 0x10;
    block.txs[7].signature.0[40] ^= 0x10;
    block.header.tx_root = tx_root(&block.txs);
    let forged = |i: usize| block.txs[i].id();
    let (three, seven) = (forged(3), forged(7));
    match apply_block_verified(&state, &block, &|id| *id == three) {
        Err(BlockError::Tx { index, reason: TxError::BadSignature, .. }) => assert_eq!(index, 7),
        other => panic!("expected bad signature at 7, got {:?}", other.map(|o| o.tip)),
    }
    // Vouched for, both pass the signature check (and the block executes).
    apply_block_verified(&state, &block, &|id| *id == three || *id == seven).unwrap();
    assert!(apply_block(&state, &block).is_err(), "nothing vouched for: both checked");
}

#[test]
fn block_limits_are_enforced() {
    let (mut genesis, mut users) = network(1, 20);
    genesis.params.max_block_txs = 5;
    let state = MemState::genesis(&genesis, 0).unwrap();
    let txs: Vec<_> = (0..10).map(|i| users.transfer(i, users.address(i + 1), Amount(5), Amount(1))).collect();
    let built = build_block(&state, proposer(&genesis, 0), genesis.genesis_time_ms, Vec::new(), txs.clone()).unwrap();
    assert_eq!(built.block.txs.len(), 5, "builder stops at the limit");
    let mut block = built.block;
    block.txs = txs;
    block.header.tx_root = tx_root(&block.txs);
    assert!(matches!(apply_block(&state, &block), Err(BlockError::TooManyTxs { count: 10, max: 5 })));
}
