//! Properties of the ledger over random inputs: money is conserved, encodings
//! round-trip, tampering breaks signatures, state proofs are sound.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_ledger::{
    Address, Amount, Block, Hash, SignedTx, State, StateKey, apply_block,
    block::tx_root,
    build_block, codec,
    mem::MemState,
    tx::{TxBody, TxKind},
};
use proptest::prelude::*;

/// How a generated transaction is spoiled, if at all.
#[derive(Debug, Clone, Copy)]
enum Spoil {
    None,
    Nonce,
    Signature,
    Chain,
    Overdraw,
}

fn spoil() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        6 => Just(Spoil::None),
        1 => Just(Spoil::Nonce),
        1 => Just(Spoil::Signature),
        1 => Just(Spoil::Chain),
        1 => Just(Spoil::Overdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random runs of valid and invalid transactions never create or destroy
    /// money, and invalid ones never change state.
    #[test]
    fn supply_is_conserved(ops in prop::collection::vec((0usize..6, 0usize..6, 0u64..400_000, 0u64..50, spoil()), 1..40)) {
        let (genesis, mut users) = network(1, 6);
        let proposer = proposer(&genesis, 0);
        let mut state = MemState::genesis(&genesis, 0).unwrap();
        let supply = state.money().unwrap();
        prop_assert_eq!(Some(supply), genesis.total_supply().map(|a| u128::from(a.units())));
        for (from, to, amount, fee, how) in ops {
            let sender = palisade_ledger::StateExt::account(&state, &users.address(from)).unwrap();
            users.set_nonce(from, sender.nonce);
            let amount = if matches!(how, Spoil::Overdraw) { u64::MAX / 2 } else { amount };
            let mut tx = users.transfer(from, users.address(to), Amount(amount), Amount(fee));
            match how {
                Spoil::Nonce => { tx.body.nonce += 1; }
                Spoil::Signature => { tx.signature.0[0] ^= 1; }
                Spoil::Chain => { tx.body.chain_id.push('x'); }
                _ => {}
            }
            let spoiled = !matches!(how, Spoil::None);
            let mut block = build_block(&state, proposer, genesis.genesis_time_ms, Vec::new(), []).unwrap().block;
            block.txs = vec![tx];
            block.header.tx_root = tx_root(&block.txs);
            let before = state.tip();
            match apply_block(&state, &block) {
                Err(palisade_ledger::BlockError::Tx { .. }) => prop_assert!(spoiled || u128::from(amount) + u128::from(fee) > u128::from(sender.balance.units())),
                // The state root of the empty block no longer matches: only a valid tx gets here.
                Err(palisade_ledger::BlockError::StateRootMismatch { .. }) => {
                    prop_assert!(!spoiled);
                    let built = build_block(&state, proposer, genesis.genesis_time_ms, Vec::new(), block.txs.clone()).unwrap();
                    let outcome = apply_block(&state, &built.block).unwrap();
                    state.commit(&outcome);
                }
                other => prop_assert!(false, "unexpected {:?}", other.map(|o| o.tip)),
            }
            if spoiled {
                prop_assert_eq!(state.tip(), before);
            }
            prop_assert_eq!(state.money().unwrap(), supply);
        }
    }

    /// Any transaction body and block survive encode → decode unchanged.
    #[test]
    fn codec_round_trips(
        chain in "[a-z0-9-]{1,64}",
        sender in any::<[u8; 32]>(),
        to in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        fee in any::<u64>(),
        amount in any::<u64>(),
        signature in prop::collection::vec(any::<u8>(), 64),
        height in any::<u64>(),
    ) {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&signature);
        let tx = SignedTx {
            body: TxBody { chain_id: chain.clone(), sender: Address(sender), nonce, fee: Amount(fee), kind: TxKind::Transfer { to: Address(to), amount: Amount(amount) }, expires_at: None },
            signature: palisade_ledger::keys::Signature(sig),
        };
        prop_assert_eq!(&SignedTx::from_bytes(&tx.to_bytes()).unwrap(), &tx);
        let (genesis, _) = network(1, 0);
        let state = MemState::genesis(&genesis, 0).unwrap();
        let mut block = build_block(&state, proposer(&genesis, 0), 0, Vec::new(), []).unwrap().block;
        block.header.height = height;
        block.header.chain_id = chain;
        block.txs = vec![tx.clone(), tx];
        let back = Block::from_bytes(&block.to_bytes(), 1 << 20).unwrap();
        prop_assert_eq!(back.hash(), block.hash());
        prop_assert_eq!(back, block);
    }

    /// Flipping any bit of a signed transaction's encoding makes it either
    /// undecodable or unverifiable.
    #[test]
    fn tampering_breaks_the_signature(position in any::<prop::sample::Index>(), bit in 0u8..8, amount in 1u64..1_000_000) {
        let (_, mut users) = network(1, 2);
        let tx = users.transfer(0, users.address(1), Amount(amount), Amount(3));
        prop_assert!(tx.verify_signature());
        let mut bytes = tx.to_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        if let Ok(tampered) = SignedTx::from_bytes(&bytes) {
            prop_assert_ne!(&tampered, &tx);
            prop_assert!(!tampered.verify_signature(), "tampered byte {} still verifies", at);
            prop_assert!(palisade_ledger::execute::verify_signatures(&[tampered]).is_err());
        }
    }

    /// Proofs verify for present and absent accounts against the state root,
    /// and fail for a wrong value or a wrong root.
    #[test]
    fn state_proofs_are_sound(present in 0usize..30, absent_seed in any::<[u8; 32]>(), blocks in 1usize..4) {
        let (genesis, mut users) = network(1, 30);
        let mut state = MemState::genesis(&genesis, 0).unwrap();
        for b in 0..blocks {
            let txs: Vec<_> = (0..10).map(|i| users.transfer(i + b, users.address(i + 7), Amount(3), Amount(1))).collect();
            let built = build_block(&state, proposer(&genesis, 0), 0, Vec::new(), txs).unwrap();
            state.commit(&built.outcome);
        }
        let root = state.root();
        let key = StateKey::Account(users.address(present));
        let proof = state.prove(key).unwrap();
        prop_assert!(proof.value.is_some());
        prop_assert!(proof.verify(&root).is_ok());
        prop_assert!(proof.verify(&Hash([7; 32])).is_err());
        let mut forged = state.prove(key).unwrap();
        forged.value = Some(codec::encode(&palisade_ledger::Account { balance: Amount(u64::MAX), nonce: 0 }));
        prop_assert!(forged.verify(&root).is_err());

        let absent = StateKey::Account(Address(absent_seed));
        let proof = state.prove(absent).unwrap();
        prop_assert!(proof.value.is_none());
        prop_assert!(proof.verify(&root).is_ok());
        let mut forged = state.prove(absent).unwrap();
        forged.value = Some(vec![1, 2, 3]);
        prop_assert!(forged.verify(&root).is_err());
    }
}
