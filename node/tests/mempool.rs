//! The mempool's admission rules, ordering and bounds, checked against the
//! real ledger: candidates must always build a block with nothing rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use palisade_ledger::{
    Amount, Genesis, SignedTx, TxBody, TxError, TxKind, apply_block, build_block,
    mem::MemState,
    stake::{self, StakeError},
    workload::Wallets,
};
use palisade_node::mempool::{InsertError, Mempool, MempoolConfig, Rejection};
use proptest::prelude::*;

const BALANCE: u64 = 1_000_000;

fn network(shards: u32, wallets: usize) -> (Genesis, Wallets, MemState, Vec<usize>) {
    let mut genesis = Genesis::dev(shards, 4);
    let users = Wallets::new(&genesis.chain_id, "user", wallets);
    users.fund(&mut genesis, "user", Amount(BALANCE));
    let state = MemState::genesis(&genesis, 0).unwrap();
    let local = (0..wallets).filter(|i| users.address(*i).shard(shards) == 0).collect();
    (genesis, users, state, local)
}

fn rejection(result: Result<palisade_ledger::Hash, InsertError>) -> Rejection {
    match result {
        Err(InsertError::Rejected(r)) => r,
        Err(InsertError::State(e)) => panic!("state error {e}"),
        Ok(_) => panic!("accepted"),
    }
}

fn pool(max_txs: usize) -> Mempool {
    Mempool::new(MempoolConfig { max_txs, ..MempoolConfig::default() })
}

#[test]
fn each_refusal_has_its_reason() {
    let (genesis, mut users, state, local) = network(2, 40);
    let remote = (0..40).find(|i| users.address(*i).shard(2) == 1).unwrap();
    let (a, b) = (local[0], local[1]);
    let to = users.address(b);
    let mut mempool = pool(100);

    let tx = users.transfer(a, to, Amount(10), Amount(1));
    mempool.insert(tx.clone(), &state).unwrap();
    assert_eq!(rejection(mempool.insert(tx, &state)), Rejection::Duplicate);

    let mut bad = users.transfer(a, to, Amount(10), Amount(1));
    bad.signature.0[3] ^= 1;
    assert_eq!(rejection(mempool.insert(bad, &state)), Rejection::Invalid(TxError::BadSignature));
    users.set_nonce(a, 1);

    let gap = users.transfer(a, to, Amount(10), Amount(1));
    let gap = TxBody { nonce: 5, ..gap.body }.sign(users.keypair(a));
    assert_eq!(rejection(mempool.insert(gap, &state)), Rejection::NonceGap { got: 5, next: 1 });

    let cheaper = TxBody { fee: Amount(1), ..mempool.candidates(&state, 1).unwrap()[0].body.clone() };
    let cheaper = TxBody { kind: TxKind::Transfer { to, amount: Amount(11) }, ..cheaper }.sign(users.keypair(a));
    assert!(matches!(rejection(mempool.insert(cheaper, &state)), Rejection::NonceTaken { nonce: 0, .. }));

    users.set_nonce(a, 1);
    let greedy = users.transfer(a, to, Amount(BALANCE - 5), Amount(1));
    assert!(matches!(rejection(mempool.insert(greedy, &state)), Rejection::Invalid(TxError::InsufficientFunds { .. })));

    let foreign = users.transfer(remote, to, Amount(1), Amount(1));
    assert_eq!(
        rejection(mempool.insert(foreign, &state)),
        Rejection::Invalid(TxError::WrongShard { sender_shard: 1, shard: 0 })
    );

    // A recipient on another shard is fine: the transfer emits a receipt.
    let cross = users.transfer(b, users.address(remote), Amount(1), Amount(1));
    assert!(mempool.insert(cross, &state).is_ok());

    let body = users.transfer(b, to, Amount(1), Amount(1)).body;
    let other_chain = TxBody { chain_id: "elsewhere".into(), ..body }.sign(users.keypair(b));
    assert!(matches!(rejection(mempool.insert(other_chain, &state)), Rejection::Invalid(TxError::WrongChain { .. })));
    assert_eq!(mempool.len(), 2, "refusals change nothing");
    let _ = genesis;
}

#[test]
fn stake_transactions_that_can_never_execute_are_refused_at_the_door() {
    let (genesis, users, state, local) = network(1, 4);
    let (operator, chain) = (users.keypair(local[0]), genesis.chain_id.clone());
    let validator = palisade_ledger::Keypair::dev("newcomer");
    let bond = |proof_from: &palisade_ledger::Keypair| {
        let mut tx = stake::bond_tx(operator, proof_from, &chain, 0, 0, Amount(5_000), [3; 32], Amount(1));
        if let TxKind::Bond { validator: named, .. } = &mut tx.body.kind {
            *named = validator.address();
        }
        tx.body.sign(operator)
    };
    // Staking off: refused, with the staking label.
    let refused = rejection(pool(10).insert(bond(&validator), &state));
    assert_eq!(refused, Rejection::Invalid(TxError::Stake(StakeError::Disabled)));
    assert_eq!(refused.label(), palisade_ledger::api::reason::STAKE_REFUSED);

    let mut genesis = genesis.clone();
    genesis.params.staking = Some(stake::StakingParams {
        epoch_blocks: 10,
        min_stake_units: 1_000,
        max_committee_size: 8,
        unbonding_epochs: 1,
    });
    let state = MemState::genesis(&genesis, 0).unwrap();
    let mut mempool = pool(10);
    let forged = bond(&palisade_ledger::Keypair::dev("impostor"));
    assert_eq!(
        rejection(mempool.insert(forged, &state)),
        Rejection::Invalid(TxError::Stake(StakeError::BadPossessionProof))
    );
    mempool.insert(bond(&validator), &state).unwrap();
    let candidates = mempool.candidates(&state, 10).unwrap();
    let built =
        build_block(&state, genesis.committee(0).unwrap().validators[0].address, 0, Vec::new(), candidates).unwrap();
    assert!(built.rejected.is_empty());
    assert_eq!(built.block.txs.len(), 1);
}

#[test]
fn a_higher_fee_replaces_a_pending_nonce_and_commits_clear_stale_ones() {
    let (genesis, mut users, mut state, local) = network(1, 4);
    let (a, to) = (local[0], users.address(local[1]));
    let mut mempool = pool(100);
    let first = users.transfer(a, to, Amount(10), Amount(1));
    mempool.insert(first.clone(), &state).unwrap();
    users.set_nonce(a, 0);
    let better = users.transfer(a, to, Amount(10), Amount(9));
    mempool.insert(better.clone(), &state).unwrap();
    assert!(!mempool.contains(&first.id()) && mempool.contains(&better.id()));
    let second = users.transfer(a, to, Amount(10), Amount(1));
    mempool.insert(second.clone(), &state).unwrap();

    // Commit only the first nonce; the pool keeps the second.
    let proposer = genesis.committee(0).unwrap().validators[0].address;
    let built = build_block(&state, proposer, 0, Vec::new(), [better.clone()]).unwrap();
    state.commit(&built.outcome);
    mempool.on_commit(&built.block.txs, &state).unwrap();
    assert_eq!(mempool.len(), 1);
    assert_eq!(mempool.candidates(&state, 10).unwrap(), vec![second]);
    assert_eq!(rejection(mempool.insert(first, &state)), Rejection::StaleNonce { got: 0, next: 1 });
}

/// Below the base fee: refused at admission with the base fee to pay; a
/// pending transaction the base fee rose past waits out of the candidates,
/// and so does the rest of its sender's chain.
#[test]
fn the_base_fee_is_the_least_a_transaction_pays_to_enter_and_to_be_proposed() {
    let (mut genesis, mut users, _, local) = network(1, 8);
    genesis.params.min_base_fee_units = 10;
    genesis.params.base_fee_target_txs = 1;
    let mut state = MemState::genesis(&genesis, 0).unwrap();
    let (a, b, c, to) = (local[0], local[1], local[2], users.address(local[3]));
    let mut mempool = pool(100);
    let cheap = users.transfer(a, to, Amount(1), Amount(9));
    let refused = rejection(mempool.insert(cheap, &state));
    assert_eq!(refused, Rejection::Invalid(TxError::FeeBelowBase { fee: Amount(9), base_fee: Amount(10) }));
    let api = refused.to_api();
    assert_eq!((api.reason.as_str(), api.min_fee_units), ("fee_below_base", Some(10)));

    // Admitted at 10 and 11; then a busy block lifts the base fee to 11.
    users.set_nonce(a, 0);
    let (a0, a1) = (users.transfer(a, to, Amount(1), Amount(10)), users.transfer(a, to, Amount(1), Amount(50)));
    let b0 = users.transfer(b, to, Amount(1), Amount(11));
    for tx in [a0.clone(), a1, b0.clone()] {
        mempool.insert(tx, &state).unwrap();
    }
    let busy: Vec<SignedTx> = (0..3).map(|_| users.transfer(c, to, Amount(1), Amount(20))).collect();
    let proposer = genesis.committee(0).unwrap().validators[1].address;
    let built = build_block(&state, proposer, 0, Vec::new(), busy).unwrap();
    state.commit(&built.outcome);
    mempool.on_commit(&built.block.txs, &state).unwrap();
    assert_eq!(palisade_ledger::fee::base_fee(&state).unwrap(), Amount(11));
    assert_eq!(mempool.len(), 3, "still pending");
    assert_eq!(mempool.candidates(&state, 10).unwrap(), vec![b0], "a0 and what follows it wait");
    assert!(mempool.contains(&a0.id()));
}

/// A transaction past its last height is refused; a pending one is dropped
/// once a block passes it, with the rest of its sender's chain (which could
/// never execute before it), and is never a candidate meanwhile.
#[test]
fn expired_transactions_are_refused_and_dropped_with_what_follows_them() {
    let (genesis, mut users, mut state, local) = network(1, 6);
    let (a, b, to) = (local[0], local[1], users.address(local[2]));
    let mut mempool = pool(100);
    let expiring = |users: &mut Wallets, from: usize, last: Option<u64>| {
        let body = users.transfer(from, to, Amount(1), Amount(5)).body;
        TxBody { expires_at: last, ..body }.sign(users.keypair(from))
    };
    let late = expiring(&mut users, a, Some(0));
    let refused = rejection(mempool.insert(late, &state));
    assert_eq!(refused, Rejection::Invalid(TxError::Expired { expires_at: 0, height: 1 }));
    assert_eq!(refused.to_api().reason, "expired");
    users.set_nonce(a, 0);
    // a: nonce 0 valid until height 1, then nonce 1 with no limit; b: no limit.
    let (a0, a1, b0) = (expiring(&mut users, a, Some(1)), expiring(&mut users, a, None), expiring(&mut users, b, None));
    for tx in [a0.clone(), a1.clone(), b0.clone()] {
        mempool.insert(tx, &state).unwrap();
    }
    // Block 1 takes only b0: a0 expired with it, and a1 behind it.
    let proposer = genesis.committee(0).unwrap().validators[1].address;
    let built = build_block(&state, proposer, 0, Vec::new(), [b0.clone()]).unwrap();
    state.commit(&built.outcome);
    mempool.on_commit(&built.block.txs, &state).unwrap();
    assert!(mempool.is_empty(), "{} left", mempool.len());
    assert!(mempool.candidates(&state, 10).unwrap().is_empty());
}

#[test]
fn candidates_are_fee_ordered_across_senders_and_nonce_ordered_within() {
    let (_, mut users, state, local) = network(1, 6);
    let (a, b, to) = (local[0], local[1], users.address(local[2]));
    let mut mempool = pool(100);
    let a0 = users.transfer(a, to, Amount(1), Amount(1));
    let a1 = users.transfer(a, to, Amount(1), Amount(100));
    let b0 = users.transfer(b, to, Amount(1), Amount(50));
    for tx in [a1.clone(), a0.clone(), b0.clone()] {
        // a1 arrives before a0: a gap, refused; then accepted in order.
        let _ = mempool.insert(tx, &state);
    }
    mempool.insert(a1.clone(), &state).unwrap();
    assert_eq!(mempool.candidates(&state, 10).unwrap(), vec![b0, a0, a1]);
}

#[test]
fn a_full_pool_evicts_the_cheapest_tail_or_refuses_with_a_hint() {
    let (_, mut users, state, local) = network(1, 12);
    let to = users.address(local[0]);
    let mut mempool = pool(3);
    let txs: Vec<SignedTx> =
        [5, 6, 7].iter().zip(&local[1..]).map(|(fee, i)| users.transfer(*i, to, Amount(1), Amount(*fee))).collect();
    for tx in &txs {
        mempool.insert(tx.clone(), &state).unwrap();
    }
    let cheap = users.transfer(local[4], to, Amount(1), Amount(4));
    match rejection(mempool.insert(cheap, &state)) {
        Rejection::Full { min_fee, retry_after_ms } => assert!(min_fee == Amount(5) && retry_after_ms > 0),
        other => panic!("{other:?}"),
    }
    let rich = users.transfer(local[5], to, Amount(1), Amount(10));
    mempool.insert(rich.clone(), &state).unwrap();
    assert_eq!(mempool.len(), 3);
    assert!(!mempool.contains(&txs[0].id()), "the cheapest was evicted");
    assert!(mempool.contains(&rich.id()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever arrives, the pool stays within its bounds, and its
    /// candidates always build a block that executes every one of them.
    #[test]
    fn candidates_always_build_a_valid_block(
        ops in prop::collection::vec((0usize..10, 0usize..10, 0u64..300_000, 0u64..20, any::<bool>()), 1..80),
        max_txs in 1usize..30,
    ) {
        let (genesis, mut users, state, local) = network(1, 24);
        let proposer = genesis.committee(0).unwrap().validators[0].address;
        let mut mempool = pool(max_txs);
        for (from, to, amount, fee, reuse_nonce) in ops {
            let (from, to) = (local[from % local.len()], local[to % local.len()]);
            if reuse_nonce {
                users.set_nonce(from, 0);
            }
            let tx = users.transfer(from, users.address(to), Amount(amount), Amount(fee));
            if mempool.insert(tx, &state).is_err() {
                // Keep the local nonce in step with what the pool holds.
                let pending = mempool.candidates(&state, usize::MAX).unwrap().iter().filter(|t| t.body.sender == users.address(from)).count();
                users.set_nonce(from, pending as u64);
            }
            prop_assert!(mempool.len() <= max_txs);
        }
        let candidates = mempool.candidates(&state, usize::MAX).unwrap();
        let built = build_block(&state, proposer, 0, Vec::new(), candidates.clone()).unwrap();
        prop_assert!(built.rejected.is_empty(), "candidates that do not execute: {:?}", built.rejected);
        prop_assert_eq!(built.block.txs.len(), candidates.len());
        apply_block(&state, &built.block).unwrap();
    }
}
