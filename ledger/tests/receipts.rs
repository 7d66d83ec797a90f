//! Cross-shard transfers in the ledger: the source debits and emits a
//! receipt; the destination credits it once, against proof only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a panic in a test is a failure report

mod common;

use common::*;
use palisade_consensus::ValidatorIndex;
use palisade_ledger::committee::CertifiedError;
use palisade_ledger::receipt::{self, ReceiptBatch};
use palisade_ledger::receipt_proof::{self, ReceiptError};
use palisade_ledger::workload::dev_certificate;
use palisade_ledger::{
    Amount, Block, BlockError, Genesis, Hash, State, StateExt, apply_block, build_block, mem::MemState,
};

const SOURCE: u32 = 0;
const DEST: u32 = 1;
const AMOUNT: u64 = 5_000;
const FEE: u64 = 10;

struct Net {
    genesis: Genesis,
    users: palisade_ledger::workload::Wallets,
    source: MemState,
    dest: MemState,
    /// Wallets on the source shard, then on the destination.
    senders: Vec<usize>,
    recipients: Vec<usize>,
}

fn net() -> Net {
    let (genesis, users) = network(2, 40);
    let senders = wallets_in(&genesis, &users, SOURCE, 3);
    let recipients = wallets_in(&genesis, &users, DEST, 3);
    let source = MemState::genesis(&genesis, SOURCE).unwrap();
    let dest = MemState::genesis(&genesis, DEST).unwrap();
    Net { genesis, users, source, dest, senders, recipients }
}

impl Net {
    /// Commits on the source a block of one cross-shard transfer per
    /// sender (to the matching recipient) plus one same-shard transfer;
    /// returns it with a certificate from the source committee.
    fn source_block(&mut self) -> (Block, palisade_consensus::CommitCertificate) {
        let mut txs = Vec::new();
        for (&from, &to) in self.senders.iter().zip(&self.recipients) {
            let to = self.users.address(to);
            txs.push(self.users.transfer(from, to, Amount(AMOUNT), Amount(FEE)));
        }
        let local = self.users.address(self.senders[0]);
        txs.insert(2, self.users.transfer(self.senders[1], local, Amount(1), Amount(FEE)));
        let proposer = proposer(&self.genesis, SOURCE);
        let built = build_block(&self.source, proposer, self.genesis.genesis_time_ms, Vec::new(), txs).unwrap();
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let outcome = apply_block(&self.source, &built.block).unwrap();
        self.source.commit(&outcome);
        let certificate = dev_certificate(&self.genesis, &built.block, SOURCE, &[0, 1, 2]);
        (built.block, certificate)
    }

    /// Builds the next destination block from `incoming`, applies and commits it.
    fn dest_commit(&mut self, incoming: Vec<ReceiptBatch>) -> Block {
        let proposer = proposer(&self.genesis, DEST);
        let built = build_block(&self.dest, proposer, self.genesis.genesis_time_ms, incoming, []).unwrap();
        let outcome = apply_block(&self.dest, &built.block).unwrap();
        self.dest.commit(&outcome);
        built.block
    }

    fn in_flight(&self, block: &Block) -> u128 {
        receipt_proof::outgoing(block, 2)
            .iter()
            .filter(|r| self.dest.applied(&r.id).unwrap().is_none())
            .map(|r| u128::from(r.amount.units()))
            .sum()
    }
}

#[test]
fn the_source_debits_and_emits_receipts_committed_by_the_header() {
    let mut net = net();
    let supply = net.source.money().unwrap() + net.dest.money().unwrap();
    let before = balance(&net.source, &net.users.address(net.senders[0]));
    let (block, _) = net.source_block();
    let outgoing = receipt_proof::outgoing(&block, 2);
    assert_eq!(outgoing.len(), 3, "three cross-shard transfers, one local");
    for (r, &to) in outgoing.iter().zip(&net.recipients) {
        assert_eq!((r.source_shard, r.source_height, r.dest_shard), (SOURCE, 1, DEST));
        assert_eq!(r.recipient, net.users.address(to));
        assert_eq!(r.amount, Amount(AMOUNT));
    }
    assert_eq!(block.header.receipts_root, receipt::receipts_root(&outgoing));
    // The sender paid amount + fee and nobody on the source was credited.
    assert_eq!(balance(&net.source, &net.users.address(net.senders[0])), before - AMOUNT - FEE + 1);
    let money_after = net.source.money().unwrap() + net.dest.money().unwrap();
    assert_eq!(money_after + net.in_flight(&block), supply, "in flight + balances = supply");

    // A header whose receipts root lies is refused.
    let mut lying = block.clone();
    lying.header.receipts_root = palisade_ledger::Hash::ZERO;
    let fresh = MemState::genesis(&net.genesis, SOURCE).unwrap();
    assert!(matches!(apply_block(&fresh, &lying), Err(BlockError::ReceiptsRootMismatch { .. })));
}

#[test]
fn the_destination_credits_a_certified_receipt_exactly_once() {
    let mut net = net();
    let supply = net.source.money().unwrap() + net.dest.money().unwrap();
    let (block, certificate) = net.source_block();
    let batch = ReceiptBatch::for_dest(&block, &certificate, &[], 2, DEST).unwrap();
    assert!(ReceiptBatch::for_dest(&block, &certificate, &[], 2, SOURCE).is_none());
    let context = net.dest.context().clone();
    batch.verify(&context.chain_id, &context.committees, 2, DEST).unwrap();

    let recipient = net.users.address(net.recipients[0]);
    let before = balance(&net.dest, &recipient);
    // Relayed three times: credited once.
    let credited = net.dest_commit(vec![batch.clone(), batch.clone(), batch.clone()]);
    assert_eq!(credited.incoming.len(), 1);
    assert_eq!(credited.incoming[0].receipts.len(), 3);
    assert_eq!(balance(&net.dest, &recipient), before + AMOUNT);
    let applied = net.dest.applied(&batch.receipts[0].receipt.id).unwrap().unwrap();
    assert_eq!((applied.height, applied.source_shard, applied.source_height), (1, SOURCE, 1));
    assert_eq!(net.in_flight(&block), 0);
    assert_eq!(net.source.money().unwrap() + net.dest.money().unwrap(), supply);

    // Offered again later: the builder leaves it out...
    let again = net.dest_commit(vec![batch.clone()]);
    assert!(again.incoming.is_empty());
    assert_eq!(balance(&net.dest, &recipient), before + AMOUNT);
    // ...and a proposer that includes it anyway proposes an invalid block.
    let mut replay = again.clone();
    replay.header.height += 1;
    replay.header.parent = net.dest.tip().hash;
    replay.incoming = vec![batch.clone()];
    replay.header.inbound_root = receipt::inbound_root(&replay.incoming);
    assert!(matches!(apply_block(&net.dest, &replay), Err(BlockError::ReceiptReplay(_))));
}

#[test]
fn batches_out_of_order_or_over_the_limit_are_refused() {
    let mut net = net();
    let (first, first_cert) = net.source_block();
    let (second, second_cert) = net.source_block();
    let a = ReceiptBatch::for_dest(&first, &first_cert, &[], 2, DEST).unwrap();
    let b = ReceiptBatch::for_dest(&second, &second_cert, &[], 2, DEST).unwrap();
    let proposer = proposer(&net.genesis, DEST);
    // The builder sorts them.
    let built = build_block(&net.dest, proposer, 0, vec![b.clone(), a.clone()], []).unwrap();
    assert_eq!(built.block.incoming.iter().map(ReceiptBatch::source).collect::<Vec<_>>(), [(SOURCE, 1), (SOURCE, 2)]);
    let mut swapped = built.block.clone();
    swapped.incoming.reverse();
    swapped.header.inbound_root = receipt::inbound_root(&swapped.incoming);
    assert!(matches!(apply_block(&net.dest, &swapped), Err(BlockError::UnorderedReceipts)));
    let mut unbound = built.block.clone();
    unbound.header.inbound_root = palisade_ledger::Hash::ZERO;
    assert!(matches!(apply_block(&net.dest, &unbound), Err(BlockError::InboundRootMismatch { .. })));

    let mut tight = net.genesis.clone();
    tight.params.max_block_receipts = 4;
    let small = MemState::genesis(&tight, DEST).unwrap();
    let built = build_block(&small, proposer, 0, vec![a, b], []).unwrap();
    let count: usize = built.block.incoming.iter().map(|b| b.receipts.len()).sum();
    assert_eq!(count, 4, "the builder stops at the limit");
    assert!(apply_block(&small, &built.block).is_ok());
    let mut over = built.block;
    over.incoming[1].receipts = ReceiptBatch::for_dest(&second, &second_cert, &[], 2, DEST).unwrap().receipts;
    over.header.inbound_root = receipt::inbound_root(&over.incoming);
    assert!(matches!(apply_block(&small, &over), Err(BlockError::TooManyReceipts { count: 6, max: 4 })));
}

/// Each forgery, applied to an honest batch, with the reason it is refused.
#[test]
fn forged_and_miscertified_receipts_are_refused() {
    let mut net = net();
    let (block, certificate) = net.source_block();
    let honest = ReceiptBatch::for_dest(&block, &certificate, &[], 2, DEST).unwrap();
    let context = net.dest.context().clone();
    let verify = |batch: &ReceiptBatch| batch.verify(&context.chain_id, &context.committees, 2, DEST);
    verify(&honest).unwrap();

    let mut more_money = honest.clone();
    more_money.receipts[0].receipt.amount = Amount(AMOUNT * 1_000);
    assert!(matches!(verify(&more_money), Err(ReceiptError::NotIncluded(_))));

    let mut redirected = honest.clone();
    redirected.receipts[1].receipt.recipient = net.users.address(net.recipients[0]);
    assert!(matches!(verify(&redirected), Err(ReceiptError::NotIncluded(_))));

    let mut wrong_committee = honest.clone();
    wrong_committee.certificate = dev_certificate(&net.genesis, &block, DEST, &[0, 1, 2]);
    assert!(
        matches!(verify(&wrong_committee), Err(ReceiptError::Certified(CertifiedError::Certificate(_)))),
        "signed by the destination's committee"
    );

    let mut too_few = honest.clone();
    too_few.certificate = dev_certificate(&net.genesis, &block, SOURCE, &[0, 1]);
    assert!(matches!(verify(&too_few), Err(ReceiptError::Certified(CertifiedError::Certificate(_)))));

    let mut other_block = honest.clone();
    other_block.header.timestamp_ms += 1;
    assert!(matches!(verify(&other_block), Err(ReceiptError::Certified(CertifiedError::CertificateMismatch))));

    let mut claimed_committee = honest.clone();
    claimed_committee.header.committee_hash = Hash(context.genesis_committee.hash());
    assert!(matches!(verify(&claimed_committee), Err(ReceiptError::Certified(CertifiedError::WrongCommittee { .. }))));

    // A jailed list that does not match the header's committee.
    let mut claimed_jailing = honest.clone();
    claimed_jailing.jailed = vec![ValidatorIndex(3)];
    assert!(matches!(verify(&claimed_jailing), Err(ReceiptError::Certified(CertifiedError::WrongCommittee { .. }))));
    claimed_jailing.jailed = vec![ValidatorIndex(9)];
    assert!(matches!(verify(&claimed_jailing), Err(ReceiptError::Certified(CertifiedError::BadJailedList(_)))));

    // One validator forges a block whose header claims everyone else was
    // jailed, and certifies it alone: a quorum of the claimed committee,
    // but not a third of the genesis stake, so it proves nothing.
    let source_genesis = net.genesis.consensus_committee(SOURCE).unwrap();
    let others = [ValidatorIndex(1), ValidatorIndex(2), ValidatorIndex(3)];
    let mut forged_block = block.clone();
    forged_block.header.committee_hash = Hash(source_genesis.jailing(&others).unwrap().hash());
    let forged_cert = dev_certificate(&net.genesis, &forged_block, SOURCE, &[0]);
    let mut forged = ReceiptBatch::for_dest(&forged_block, &forged_cert, &others, 2, DEST).unwrap();
    assert_eq!(
        verify(&forged),
        Err(ReceiptError::Certified(CertifiedError::TooLittleGenesisStake {
            signed: source_genesis.stake(ValidatorIndex(0)),
            needed: source_genesis.weak_quorum_stake()
        }))
    );
    // The same forgery with an honest-looking list fails on the hash.
    forged.jailed.clear();
    assert!(matches!(verify(&forged), Err(ReceiptError::Certified(CertifiedError::WrongCommittee { .. }))));

    let mut duplicated = honest.clone();
    duplicated.receipts.push(duplicated.receipts[0].clone());
    assert!(matches!(verify(&duplicated), Err(ReceiptError::BadList)));

    let mut empty = honest.clone();
    empty.receipts.clear();
    assert!(matches!(verify(&empty), Err(ReceiptError::BadList)));

    assert!(matches!(
        honest.verify(&context.chain_id, &context.committees, 2, SOURCE),
        Err(ReceiptError::BadSource { .. })
    ));
    assert!(matches!(honest.verify("other-chain", &context.committees, 2, DEST), Err(ReceiptError::WrongChain(_))));

    // A block carrying a forged batch is invalid and changes nothing.
    let tip = net.dest.tip();
    let mut block = build_block(&net.dest, proposer(&net.genesis, DEST), 0, vec![honest], []).unwrap().block;
    block.incoming = vec![more_money];
    block.header.inbound_root = receipt::inbound_root(&block.incoming);
    assert!(matches!(
        apply_block(&net.dest, &block),
        Err(BlockError::Receipt { reason: ReceiptError::NotIncluded(_), .. })
    ));
    assert_unchanged(&net.dest, &tip);
}
