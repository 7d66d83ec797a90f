//! Transactions in and out of the core. A client's submission and each
//! transaction of a gossiped batch go to the mempool with their canonical
//! encoding, so each is encoded (by its submitter) and hashed once. What
//! this node admitted from its own clients leaves in batches on the shard's
//! transaction topic, published once [`TX_BATCH_FLUSH_BYTES`] or
//! [`TX_BATCH_MAX_TXS`] wait, or else once per block: [`TX_BATCH_LEAD_MS`]
//! before the next proposal is due (see [`ShardCore::tx_flush_due_ms`]).
//! What a leader needs is every transaction before it proposes, not each
//! one as soon as possible; at 1,000 tx/s over 16 nodes, flushing every
//! 20 ms sent batches of about one transaction. Peers forward a batch as it
//! came (gossipsub forwards what was accepted), so only the node that
//! admitted a transaction first puts it in a batch.

use palisade_ledger::{Hash, SignedTx, TxError};
use serde_bytes::ByteBuf;
use tracing::{debug, warn};

use super::ShardCore;
use super::gossip::{decoded, refuse};
use crate::effect::{Effect, Note, Verdict};
use crate::intake::{ClientKey, Throttled, Who};
use crate::mempool::{InsertError, Rejection, Signature};
use crate::storage::{ChainStore, StorageError};
use crate::timers::Timer;
use crate::wire::{self, TX_BATCH_FLUSH_BYTES, TX_BATCH_FLUSH_MS, TX_BATCH_LEAD_MS, TX_BATCH_MAX_TXS, TopicKind};

impl<S: ChainStore> ShardCore<S> {
    /// Transactions a client of this node submitted together (from
    /// `client`, when the host knows its address): each admitted (and
    /// gossiped with the next batch) or refused with its reason, in order.
    /// The signatures of several are verified as one batch (about half the
    /// cost of one by one); should that fail, each is checked on its own,
    /// so a bad signature refuses only its own transaction. A sender or
    /// client the intake breaker holds back is refused before anything is
    /// verified.
    pub fn submit_txs(
        &mut self,
        now_ms: u64,
        txs: Vec<SignedTx>,
        client: Option<ClientKey>,
        out: &mut Vec<Effect>,
    ) -> Result<Vec<Result<Hash, Rejection>>, StorageError> {
        self.now_ms = self.now_ms.max(now_ms);
        let count = txs.len();
        let mut held = Vec::new();
        let mut passed = Vec::with_capacity(count);
        for (at, tx) in txs.into_iter().enumerate() {
            match self.intake.check(&tx.body.sender, client, self.now_ms) {
                Ok(()) => passed.push(tx),
                Err(throttled) => {
                    let rejection = self.throttled(throttled);
                    debug!(sender = %tx.body.sender, %rejection, "intake breaker");
                    held.push((at, rejection));
                }
            }
        }
        let signature = if passed.len() > 1 && self.mempool.verify_signatures(&passed).is_ok() {
            Signature::Verified
        } else {
            Signature::Unchecked
        };
        let mut results = Vec::with_capacity(count);
        let mut held = held.into_iter().peekable();
        for tx in passed {
            while let Some((_, rejection)) = held.next_if(|(at, _)| *at == results.len()) {
                results.push(Err(rejection));
            }
            let sender = tx.body.sender;
            let encoded = tx.to_bytes();
            let result = self.admit(tx, SignedTx::id_of(&encoded), encoded.len(), signature, out)?;
            if result.is_ok() {
                self.queue_for_gossip(encoded, out);
                self.count_intake(&sender, client);
            }
            results.push(result);
        }
        results.extend(held.map(|(_, rejection)| Err(rejection)));
        self.report_view_changes(out);
        Ok(results)
    }

    /// Counts an admitted submission against its sender's and client's
    /// intake breakers, and says so when one trips.
    fn count_intake(&mut self, sender: &palisade_ledger::Address, client: Option<ClientKey>) {
        let Some(tripped) = self.intake.count(sender, client, self.now_ms).filter(|t| t.newly) else { return };
        let limit = tripped.limit_per_window;
        match tripped.who {
            Who::Sender => {
                warn!(shard = self.shard, %sender, limit, "intake breaker tripped: a sender's submissions spiked");
            }
            Who::Client(client) => {
                warn!(shard = self.shard, %client, limit, "intake breaker tripped: a client's submissions spiked");
            }
        }
    }

    /// The refusal of a sender or client the intake breaker holds back.
    fn throttled(&self, throttled: Throttled) -> Rejection {
        let retry_after_ms = throttled.until_ms.saturating_sub(self.now_ms);
        let whose = match throttled.who {
            Who::Sender => "sender".to_owned(),
            Who::Client(client) => format!("client {client}"),
        };
        Rejection::Throttled { whose, limit_per_window: throttled.limit_per_window, retry_after_ms }
    }

    /// A batch of transactions from gossip: `Reject` if it is malformed or
    /// holds a transaction that is provably invalid (a bad signature, another
    /// chain or shard: an honest node batches only what its mempool
    /// admitted), `Accept` (forward it) if any transaction was new here,
    /// `Ignore` otherwise. The signatures of the transactions not already
    /// pending are verified as one batch (about half the cost of one by
    /// one).
    pub(super) fn on_gossiped_txs(&mut self, data: &[u8], out: &mut Vec<Effect>) -> Result<(), StorageError> {
        let Some(batch) = decoded(wire::decode_tx_batch(data), TopicKind::Txs, out) else { return Ok(()) };
        if batch.is_empty() || batch.len() > TX_BATCH_MAX_TXS {
            refuse(out, TopicKind::Txs, "invalid");
            return Ok(());
        }
        let mut fresh = Vec::with_capacity(batch.len());
        let mut encodings = Vec::with_capacity(batch.len());
        for encoded in &batch {
            let Some(tx) = decoded(SignedTx::from_bytes(encoded), TopicKind::Txs, out) else { return Ok(()) };
            let id = SignedTx::id_of(encoded);
            // Already pending: nothing to check or admit.
            if !self.mempool.contains(&id) {
                fresh.push(tx);
                encodings.push((id, encoded.len()));
            }
        }
        if let Err(e) = self.mempool.verify_signatures(&fresh) {
            debug!(error = %e, "gossiped transaction batch with a bad signature");
            refuse(out, TopicKind::Txs, "invalid");
            return Ok(());
        }
        let mut admitted = 0usize;
        for (tx, (id, bytes)) in fresh.into_iter().zip(encodings) {
            match self.admit(tx, id, bytes, Signature::Verified, out)? {
                Ok(_) => admitted += 1,
                Err(Rejection::Invalid(
                    TxError::BadSignature | TxError::WrongChain { .. } | TxError::WrongShard { .. },
                )) => {
                    refuse(out, TopicKind::Txs, "invalid");
                    return Ok(());
                }
                // Stale, duplicate, unaffordable or full: not provably the
                // forwarder's fault.
                Err(_) => {}
            }
        }
        out.push(Effect::Verdict(if admitted > 0 { Verdict::Accept } else { Verdict::Ignore }));
        Ok(())
    }

    /// Offers a transaction (with the id and length of its canonical
    /// encoding) to the mempool, remembering why it was refused.
    fn admit(
        &mut self,
        tx: SignedTx,
        id: Hash,
        bytes: usize,
        signature: Signature,
        out: &mut Vec<Effect>,
    ) -> Result<Result<Hash, Rejection>, StorageError> {
        match self.mempool.insert_encoded(tx, id, bytes, signature, self.chain.state()) {
            Ok(id) => Ok(Ok(id)),
            Err(InsertError::State(e)) => Err(e.into()),
            Err(InsertError::Rejected(rejection)) => {
                out.push(Effect::Note(Note::TxRejected(rejection.label())));
                if rejection != Rejection::Duplicate {
                    self.remember_rejection(id, rejection.to_string());
                }
                Ok(Err(rejection))
            }
        }
    }

    /// Adds an admitted transaction to the next gossip batch, publishing
    /// the batch when it is full and arming its flush when it is new.
    fn queue_for_gossip(&mut self, encoded: Vec<u8>, out: &mut Vec<Effect>) {
        self.tx_outbox_bytes = self.tx_outbox_bytes.saturating_add(encoded.len());
        self.tx_outbox.push(ByteBuf::from(encoded));
        if self.tx_outbox_bytes >= TX_BATCH_FLUSH_BYTES || self.tx_outbox.len() >= TX_BATCH_MAX_TXS {
            self.flush_txs(out);
        } else if self.tx_outbox.len() == 1 {
            self.timers.set(self.tx_flush_due_ms(), Timer::FlushTxs);
        }
    }

    /// When the waiting transactions should leave. On a shard committing
    /// at its block pace: [`TX_BATCH_LEAD_MS`] before the next proposal is
    /// due, or if that moment has passed (the proposal is out, or about to
    /// be), the same moment of the height after, estimated from this one;
    /// the commit of this height pulls it to the real one
    /// ([`ShardCore::tx_flush_on_commit`]). On an idle or stalled shard,
    /// whose leader proposes as soon as it holds a transaction:
    /// [`TX_BATCH_FLUSH_MS`] from now.
    pub(super) fn tx_flush_due_ms(&self) -> u64 {
        let interval = self.limits.block_interval_ms;
        let since_commit = self.now_ms.saturating_sub(self.last_commit_ms);
        if since_commit >= interval.saturating_mul(2) {
            return self.now_ms.saturating_add(TX_BATCH_FLUSH_MS);
        }
        // Never less than half an interval after the commit: a batch
        // flushed at the commit itself would race the proposal of a short
        // interval's leader no better than one flushed at once.
        let lead = TX_BATCH_LEAD_MS.min(interval / 2);
        let first = self.last_commit_ms.saturating_add(interval).saturating_sub(lead);
        if first > self.now_ms { first } else { first.saturating_add(interval).max(self.now_ms) }
    }

    /// A height was committed here: the transactions waiting for gossip
    /// leave in time for the next one's proposal.
    pub(super) fn tx_flush_on_commit(&mut self) {
        if !self.tx_outbox.is_empty() {
            self.timers.set(self.tx_flush_due_ms(), Timer::FlushTxs);
        }
    }

    /// Publishes the waiting transactions as one batch.
    pub(super) fn flush_txs(&mut self, out: &mut Vec<Effect>) {
        if self.tx_outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.tx_outbox);
        self.tx_outbox_bytes = 0;
        out.push(Effect::Publish { shard: self.shard, kind: TopicKind::Txs, data: wire::encode_tx_batch(&batch) });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use palisade_ledger::{Amount, Genesis, Keypair, TxBody, TxKind};

    use super::*;
    use crate::effect::Input;
    use crate::mempool::MempoolConfig;
    use crate::wire::MAX_TX_GOSSIP_BYTES;
    use crate::{CoreConfig, MemStore};

    fn core(genesis: &Arc<Genesis>) -> ShardCore<MemStore> {
        let config = CoreConfig {
            shard: 0,
            genesis: genesis.clone(),
            key: None,
            mempool: MempoolConfig::default(),
            misbehave: None,
            client_floor_per_second: crate::intake::DEFAULT_CLIENT_FLOOR_PER_WINDOW,
        };
        ShardCore::open(config, MemStore::genesis(genesis, 0).expect("shard 0"), None, 0).expect("opens")
    }

    fn transfer(genesis: &Genesis, from: &Keypair, nonce: u64) -> SignedTx {
        let to = genesis.dev_key("bob").address();
        let kind = TxKind::Transfer { to, amount: Amount(1) };
        TxBody {
            chain_id: genesis.chain_id.clone(),
            sender: from.address(),
            nonce,
            fee: Amount(1_000),
            kind,
            expires_at: None,
        }
        .sign(from)
    }

    /// One transaction submitted alone: its verdict.
    fn submit_one(
        core: &mut ShardCore<MemStore>,
        now_ms: u64,
        tx: SignedTx,
        client: Option<ClientKey>,
        out: &mut Vec<Effect>,
    ) -> Result<Result<Hash, Rejection>, StorageError> {
        let mut verdicts = core.submit_txs(now_ms, vec![tx], client, out)?;
        assert_eq!(verdicts.len(), 1, "one answer for one transaction");
        Ok(verdicts.remove(0))
    }

    fn published_txs(out: &[Effect]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Publish { kind: TopicKind::Txs, data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    fn verdict(core: &mut ShardCore<MemStore>, data: Vec<u8>) -> Verdict {
        let mut out = Vec::new();
        core.handle(1, Input::Gossip { kind: TopicKind::Txs, data }, &mut out).expect("no storage failure");
        let verdicts: Vec<Verdict> =
            out.iter().filter_map(|e| if let Effect::Verdict(v) = e { Some(*v) } else { None }).collect();
        assert_eq!(verdicts.len(), 1, "one verdict per gossip message: {out:?}");
        verdicts[0]
    }

    #[test]
    fn admitted_transactions_leave_in_one_batch_that_peers_admit() {
        let genesis = Arc::new(Genesis::dev(1, 4));
        let alice = genesis.dev_key("alice");
        let mut a = core(&genesis);
        let mut out = Vec::new();
        for nonce in 0..3 {
            assert!(
                submit_one(&mut a, 0, transfer(&genesis, &alice, nonce), None, &mut out)
                    .expect("no storage failure")
                    .is_ok()
            );
        }
        assert!(published_txs(&out).is_empty(), "nothing is gossiped before the batch is flushed");
        // The core just opened, as if it had just committed: the batch
        // leaves just before the next proposal is due.
        let due = genesis.params.block_interval_ms - TX_BATCH_LEAD_MS;
        assert_eq!(a.next_deadline_ms(), Some(due));
        a.handle(due - 1, Input::Tick, &mut out).expect("no storage failure");
        assert!(published_txs(&out).is_empty(), "not before it is due");
        out.clear();
        a.handle(due, Input::Tick, &mut out).expect("no storage failure");
        let batches = published_txs(&out);
        assert_eq!(batches.len(), 1, "one batch");
        assert_eq!(wire::decode_tx_batch(&batches[0]).expect("decodes").len(), 3);

        let mut b = core(&genesis);
        assert_eq!(verdict(&mut b, batches[0].clone()), Verdict::Accept);
        assert_eq!(b.mempool().len(), 3);
        assert_eq!(verdict(&mut b, batches[0].clone()), Verdict::Ignore, "nothing new: not forwarded again");
    }

    /// A client's batch is answered transaction by transaction, in order:
    /// one forged signature among good ones (which fails the batch check)
    /// refuses only itself, and what was admitted leaves in one gossip
    /// batch.
    #[test]
    fn a_submitted_batch_is_answered_in_order_and_a_forgery_refuses_only_itself() {
        let genesis = Arc::new(Genesis::dev(1, 4));
        let alice = genesis.dev_key("alice");
        let bob = genesis.dev_key("bob");
        let mut a = core(&genesis);
        let mut forged = transfer(&genesis, &bob, 0);
        forged.signature.0[0] ^= 1;
        let txs = vec![
            transfer(&genesis, &alice, 0),
            forged,
            transfer(&genesis, &alice, 1),
            transfer(&genesis, &alice, 1),
            transfer(&genesis, &alice, 5),
        ];
        let ids: Vec<Hash> = txs.iter().map(SignedTx::id).collect();
        let mut out = Vec::new();
        let results = a.submit_txs(0, txs, None, &mut out).expect("no storage failure");
        assert_eq!(results.len(), 5, "one answer per transaction");
        assert_eq!(results[0], Ok(ids[0]));
        assert_eq!(results[1], Err(Rejection::Invalid(TxError::BadSignature)));
        assert_eq!(results[2], Ok(ids[2]));
        assert_eq!(results[3], Err(Rejection::Duplicate));
        assert!(matches!(results[4], Err(Rejection::NonceGap { got: 5, next: 2 })), "{:?}", results[4]);
        let due = a.next_deadline_ms().expect("the flush is armed");
        a.handle(due, Input::Tick, &mut out).expect("no storage failure");
        let batches = published_txs(&out);
        assert_eq!(batches.len(), 1, "one gossip batch");
        assert_eq!(wire::decode_tx_batch(&batches[0]).expect("decodes").len(), 2, "the two admitted");

        // A batch of good signatures is verified as one and admitted whole.
        let mut b = core(&genesis);
        let good: Vec<SignedTx> = (0..8).map(|nonce| transfer(&genesis, &bob, nonce)).collect();
        let results = b.submit_txs(0, good, None, &mut out).expect("no storage failure");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(b.mempool().len(), 8);
    }

    /// A sender whose admitted submissions go far over its usual rate is
    /// refused by the intake breaker from then on, before the mempool sees
    /// them; the status counts it until the cool-down ends. Forged or
    /// refused submissions never count.
    #[test]
    fn a_sender_over_its_limit_is_throttled_and_counted_until_it_calms() {
        use crate::intake::{COOL_DOWN_MS, FLOOR_PER_WINDOW};
        let genesis = Arc::new(Genesis::dev(1, 4));
        let alice = genesis.dev_key("alice");
        let config = CoreConfig {
            shard: 0,
            genesis: genesis.clone(),
            key: None,
            mempool: MempoolConfig { max_nonce_gap: 4 * FLOOR_PER_WINDOW, ..MempoolConfig::default() },
            misbehave: None,
            client_floor_per_second: crate::intake::DEFAULT_CLIENT_FLOOR_PER_WINDOW,
        };
        let mut a = ShardCore::open(config, MemStore::genesis(&genesis, 0).expect("shard 0"), None, 0).expect("opens");
        let mut out = Vec::new();
        // Forgeries in Alice's name, and a duplicate, count for nothing.
        let mut forged = transfer(&genesis, &alice, 0);
        forged.signature.0[0] ^= 1;
        for _ in 0..2 * FLOOR_PER_WINDOW {
            assert!(submit_one(&mut a, 0, forged.clone(), None, &mut out).expect("no storage failure").is_err());
        }
        for nonce in 0..FLOOR_PER_WINDOW {
            let result =
                submit_one(&mut a, 0, transfer(&genesis, &alice, nonce), None, &mut out).expect("no storage failure");
            assert!(result.is_ok(), "nonce {nonce}: {result:?}");
        }
        assert_eq!(a.status().throttled_senders, 0);
        // One more admitted trips it; the next is refused unseen.
        let over = submit_one(&mut a, 0, transfer(&genesis, &alice, FLOOR_PER_WINDOW), None, &mut out)
            .expect("no storage failure");
        assert!(over.is_ok(), "{over:?}");
        assert_eq!(a.status().throttled_senders, 1);
        let refused = submit_one(&mut a, 0, transfer(&genesis, &alice, FLOOR_PER_WINDOW + 1), None, &mut out);
        let refused = refused.expect("no storage failure").unwrap_err();
        assert!(matches!(refused, Rejection::Throttled { retry_after_ms: COOL_DOWN_MS, .. }), "{refused:?}");
        assert_eq!(refused.to_api().reason, "throttled");
        // After the cool-down it is admitted again.
        let later = submit_one(&mut a, COOL_DOWN_MS, transfer(&genesis, &alice, FLOOR_PER_WINDOW + 1), None, &mut out);
        assert!(later.expect("no storage failure").is_ok());
        assert_eq!(a.status().throttled_senders, 0);
    }

    /// The flush is timed to the proposals: once per block on a shard
    /// committing at its pace, soon on an idle one.
    #[test]
    fn the_flush_is_due_before_the_next_proposal_or_soon_when_idle() {
        let genesis = Arc::new(Genesis::dev(1, 4));
        let interval = genesis.params.block_interval_ms;
        let mut a = core(&genesis);
        // Committed at 0: due before the proposal of the next height.
        a.now_ms = 10;
        assert_eq!(a.tx_flush_due_ms(), interval - TX_BATCH_LEAD_MS);
        // That moment has passed: the same moment a height later.
        a.now_ms = interval - 5;
        assert_eq!(a.tx_flush_due_ms(), 2 * interval - TX_BATCH_LEAD_MS);
        // Which the commit of this height pulls in only if it is earlier.
        a.queue_for_gossip(transfer(&genesis, &genesis.dev_key("alice"), 0).to_bytes(), &mut Vec::new());
        assert_eq!(a.next_deadline_ms(), Some(2 * interval - TX_BATCH_LEAD_MS));
        a.last_commit_ms = interval + 20;
        a.now_ms = interval + 20;
        a.tx_flush_on_commit();
        assert_eq!(a.next_deadline_ms(), Some(2 * interval - TX_BATCH_LEAD_MS));
        a.last_commit_ms = interval - 2;
        a.tx_flush_on_commit();
        assert_eq!(a.next_deadline_ms(), Some(2 * interval - 2 - TX_BATCH_LEAD_MS));
        // No commit for two intervals: idle, soon.
        a.now_ms = a.last_commit_ms + 2 * interval;
        assert_eq!(a.tx_flush_due_ms(), a.now_ms + TX_BATCH_FLUSH_MS);
    }

    #[test]
    fn a_full_batch_leaves_at_once() {
        let genesis = Arc::new(Genesis::dev(1, 4));
        let mut a = core(&genesis);
        let mut out = Vec::new();
        let senders: Vec<Keypair> = (0..TX_BATCH_MAX_TXS).map(|i| Keypair::dev(&format!("batch-{i}"))).collect();
        // Unfunded senders are refused; fund-free checks are not what this
        // is about, so queue encoded transactions directly.
        let mut queued = 0;
        for sender in &senders {
            a.queue_for_gossip(transfer(&genesis, sender, 0).to_bytes(), &mut out);
            queued += 1;
            if !published_txs(&out).is_empty() {
                break;
            }
        }
        let batches = published_txs(&out);
        assert_eq!(batches.len(), 1, "published when full, without waiting for the timer");
        assert!(batches[0].len() <= MAX_TX_GOSSIP_BYTES, "within what peers accept");
        assert_eq!(wire::decode_tx_batch(&batches[0]).expect("decodes").len(), queued);
        assert!(a.tx_outbox.is_empty());
    }

    #[test]
    fn malformed_or_forged_batches_are_refused() {
        let genesis = Arc::new(Genesis::dev(1, 4));
        let alice = genesis.dev_key("alice");
        let mut b = core(&genesis);
        let good = ByteBuf::from(transfer(&genesis, &alice, 0).to_bytes());
        let mut forged_tx = transfer(&genesis, &alice, 1);
        forged_tx.signature.0[0] ^= 1;
        let forged = ByteBuf::from(forged_tx.to_bytes());
        assert_eq!(verdict(&mut b, wire::encode_tx_batch(&[good.clone(), forged])), Verdict::Reject);
        assert_eq!(verdict(&mut b, wire::encode_tx_batch(&[])), Verdict::Reject, "an empty batch");
        assert_eq!(verdict(&mut b, vec![0xff; 64]), Verdict::Reject, "not a batch");
        let junk = ByteBuf::from(vec![1, 2, 3]);
        assert_eq!(verdict(&mut b, wire::encode_tx_batch(&[junk])), Verdict::Reject, "not a transaction");
        let too_many = vec![good; TX_BATCH_MAX_TXS + 1];
        assert_eq!(verdict(&mut b, wire::encode_tx_batch(&too_many)), Verdict::Reject, "over the count");
    }
}
