//! One simulated validator: the real [`Replica`] for its shard, its shard's
//! [`MemState`], a mempool, a receipt pool, and the host duties the consensus
//! crate lists (validate blocks against the ledger, commit certified blocks,
//! persist the safety state, sync) plus those of cross-shard receipts (keep
//! the batches other shards owe this one, verified, and hand them to
//! `build_block`). What survives a crash is exactly what a real node makes
//! durable: the last persisted [`SafetyState`] and the committed chain (with
//! the state and the outgoing receipts it implies). Everything else is
//! volatile.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    BlockHash, Committee, Config, Decision, Evidence, Input, Message, Phase, Replica, SafetyState, ShardId,
    SignedMessage, ValidatorIndex,
};
use palisade_ledger::{
    Address, Block, Outcome, ReceiptBatch, SignedTx, State, StateExt, committee,
    execute::{Extras, apply_block, build_block},
    mem::MemState,
    receipt::ReceiptError,
};

use super::byzantine::Byzantine;

/// Most transactions a mempool holds.
pub const MEMPOOL_CAPACITY: usize = 256;
/// Most transactions a leader offers to `build_block`.
pub const MAX_CANDIDATES: usize = 32;
/// Most receipt batches a node keeps waiting to be credited. When full, the
/// batches of the lowest source heights stay (they are credited first) and
/// the pull cursor goes back to fetch the others later.
pub const MAX_POOLED_BATCHES: usize = 64;

/// A slot a proposal or vote occupies: (signer, height, view, phase).
pub type Slot = (ValidatorIndex, u64, u64, Phase);

/// A simulated validator.
pub struct Node {
    /// Global index.
    pub id: usize,
    /// Its shard.
    pub shard: ShardId,
    /// Its committee index.
    pub index: ValidatorIndex,
    /// Its ledger address (public key).
    pub address: Address,
    /// The host's replica configuration: its committee is the durable
    /// chain's current one (messages are verified against it, and a restart
    /// restores the replica with it).
    pub config: Config,
    /// The replica (volatile).
    pub replica: Replica,
    /// Running?
    pub alive: bool,
    /// Bumped on each crash: events of an earlier incarnation are ignored.
    pub incarnation: u64,
    /// Durable: the last `Action::Persist`.
    pub persisted: Option<SafetyState>,
    /// Durable: the committed state.
    pub state: MemState,
    /// Durable: the committed chain with certificates, by height.
    pub chain: BTreeMap<u64, Decision>,
    /// Volatile: pending transactions by (sender, nonce).
    pub mempool: BTreeMap<(Address, u64), SignedTx>,
    /// Volatile: outcomes of blocks validated or built on the current tip.
    outcomes: BTreeMap<BlockHash, Outcome>,
    /// Its misbehaviour, if Byzantine.
    pub byzantine: Option<Box<dyn Byzantine>>,
    /// Every `Action::Evidence` its replica emitted (kept across crashes).
    pub evidence: Vec<Evidence>,
    /// Volatile: proposals and votes fed to the replica at its current height
    /// and inside its vote window, by slot (evidence completeness).
    pub seen: BTreeMap<Slot, BTreeSet<BlockHash>>,
    /// Volatile: verified receipt batches for this shard not yet credited,
    /// by (source shard, source height).
    pub pool: BTreeMap<(ShardId, u64), ReceiptBatch>,
    /// Volatile: per source shard, the next source height to pull from.
    /// Every lower height's receipts for this shard are credited or pooled.
    pub cursors: BTreeMap<ShardId, u64>,
    /// Volatile: evidence waiting for a block it proposes, one per offender
    /// (its replica's own and what the shard's other nodes gossiped).
    pub pending_evidence: BTreeMap<ValidatorIndex, Evidence>,
    /// What its committed blocks owe other shards, by (destination, height):
    /// an index of the durable chain, which a real node re-derives from its
    /// store, so it survives crashes.
    pub outbox: BTreeMap<(ShardId, u64), ReceiptBatch>,
}

/// What became of a receipt batch offered to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Verified and pooled.
    Pooled,
    /// The pool already holds these receipts of this source block.
    Duplicate,
    /// Every receipt in it is already credited: nothing to check.
    Stale,
    /// Verified, but the pool is full of lower source heights.
    Full,
    /// It does not verify: the sender's fault.
    Refused(ReceiptError),
}

impl Node {
    /// A node at genesis.
    pub fn new(
        id: usize,
        index: ValidatorIndex,
        key: SigningKey,
        config: Config,
        state: MemState,
        byzantine: Option<Box<dyn Byzantine>>,
    ) -> Node {
        let address = Address(key.verifying_key().to_bytes());
        let replica = Replica::new(config.clone(), 0).expect("simulator configurations are valid");
        Node {
            id,
            shard: config.shard,
            index,
            address,
            config,
            replica,
            alive: true,
            incarnation: 0,
            persisted: None,
            state,
            chain: BTreeMap::new(),
            mempool: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            byzantine,
            evidence: Vec::new(),
            pending_evidence: BTreeMap::new(),
            seen: BTreeMap::new(),
            pool: BTreeMap::new(),
            cursors: BTreeMap::new(),
            outbox: BTreeMap::new(),
        }
    }

    /// Honest (not Byzantine)?
    pub fn honest(&self) -> bool {
        self.byzantine.is_none()
    }

    /// Its committed height.
    pub fn height(&self) -> u64 {
        self.state.tip().height
    }

    /// The committee it belongs to.
    pub fn committee(&self) -> &Committee {
        &self.config.committee
    }

    /// Loses everything volatile.
    pub fn crash(&mut self) {
        self.alive = false;
        self.incarnation += 1;
        self.mempool.clear();
        self.outcomes.clear();
        self.seen.clear();
        // The pool goes, so the cursors must start over: pulling from the
        // first height finds whatever is still owed (credited receipts are
        // skipped without verification).
        self.pool.clear();
        self.cursors.clear();
        self.pending_evidence.clear();
    }

    /// Rebuilds the replica from what was durable.
    pub fn restart(&mut self) {
        self.restore_replica();
        self.alive = true;
    }

    /// A replica on the committee of the durable state, restored from the
    /// persisted safety state, as a node's after a restart.
    fn restore_replica(&mut self) {
        self.config.committee = committee::current(&self.state).expect("simulator states are readable");
        // The last decisions go back in so the replica can answer peers
        // stuck at those heights (as a real node does from its store), those
        // the current committee certified.
        let recent = self
            .chain
            .values()
            .rev()
            .take(palisade_consensus::replica::DECISIONS_KEPT)
            .filter(|d| self.config.certifies(d))
            .cloned()
            .collect();
        self.replica = Replica::restore(self.config.clone(), self.persisted.clone(), self.height(), recent)
            .expect("simulator configurations and durable chains are valid");
    }

    /// What the host tells its replica after committing: its height and the
    /// committee of the next one.
    pub fn committed_input(&self) -> Input {
        Input::Committed { height: self.height(), committee: self.committee().clone() }
    }

    /// Pools evidence for this node's proposals (one per offender).
    pub fn pend_evidence(&mut self, evidence: &Evidence) {
        if self.committee().is_active(evidence.signer) {
            self.pending_evidence.entry(evidence.signer).or_insert_with(|| evidence.clone());
        }
    }

    /// Adds a client's transaction (bounded; first one per (sender, nonce) wins).
    pub fn submit(&mut self, tx: SignedTx) {
        if self.mempool.len() < MEMPOOL_CAPACITY {
            self.mempool.entry((tx.body.sender, tx.body.nonce)).or_insert(tx);
        }
    }

    /// Builds the block for `height` over the receipt pool and the mempool,
    /// if the state is there.
    pub fn build(&mut self, height: u64, timestamp_ms: u64) -> Option<Block> {
        if self.height().checked_add(1) != Some(height) {
            return None;
        }
        let candidates: Vec<SignedTx> = self.mempool.values().take(MAX_CANDIDATES).cloned().collect();
        let incoming: Vec<ReceiptBatch> = self.pool.values().cloned().collect();
        let extras = Extras { incoming, evidence: self.pending_evidence.values().cloned().collect() };
        let built = build_block(&self.state, self.address, timestamp_ms, extras, candidates).ok()?;
        let hash = built.block.hash().0;
        if self.honest() {
            self.outcomes.insert(hash, built.outcome);
        }
        Some(built.block)
    }

    /// `ValidateBlock`: the bytes decode (bounded), hash to the claimed hash,
    /// are for the next height, and execute on the committed state.
    pub fn validate(&mut self, height: u64, block_hash: BlockHash, bytes: &[u8]) -> bool {
        if self.height().checked_add(1) != Some(height) {
            return false;
        }
        let Ok(block) = Block::from_bytes(bytes, self.config.max_block_bytes) else {
            return false;
        };
        if block.hash().0 != block_hash || block.header.height != height {
            return false;
        }
        if self.outcomes.contains_key(&block_hash) {
            return true;
        }
        match apply_block(&self.state, &block) {
            Ok(outcome) => {
                self.outcomes.insert(block_hash, outcome);
                true
            }
            Err(_) => false,
        }
    }

    /// Commits a certified block at the next height: the certificate must
    /// verify against the committee, the bytes must be the certified block,
    /// and the block must execute. Returns the block; `Err` says which host
    /// duty failed.
    pub fn commit(&mut self, certified: Decision, chain_id: &str) -> Result<Block, String> {
        let Decision { certificate, block: bytes } = &certified;
        let height = certificate.height;
        if self.height().checked_add(1) != Some(height) {
            return Err(format!("commit of height {height} on top of {}", self.height()));
        }
        certificate
            .verify(self.committee(), chain_id, self.shard)
            .map_err(|e| format!("certificate of height {height} does not verify: {e}"))?;
        let block = Block::from_bytes(bytes, self.config.max_block_bytes)
            .map_err(|e| format!("certified block of height {height} does not decode: {e}"))?;
        if block.hash().0 != certificate.block_hash {
            return Err(format!("certified bytes of height {height} do not hash to the certificate's hash"));
        }
        let outcome = match self.outcomes.remove(&certificate.block_hash) {
            Some(outcome) if outcome.parent == self.state.tip() => outcome,
            _ => apply_block(&self.state, &block)
                .map_err(|e| format!("certified block of height {height} is invalid: {e}"))?,
        };
        let jailed = self.committee().inactive();
        self.state.commit(&outcome);
        if !outcome.slashed.is_empty() {
            let committee = committee::current(&self.state).map_err(|e| format!("reading the committee: {e}"))?;
            self.pending_evidence.retain(|index, _| committee.is_active(*index));
            // Messages are verified against the new committee from now on,
            // and the replica gets it with `Input::Committed`.
            self.config.committee = committee;
        }
        self.index_outgoing(&block, &certified.certificate, &jailed);
        self.chain.insert(height, certified);
        self.outcomes.clear();
        self.prune_mempool();
        self.prune_pool(&block);
        Ok(block)
    }

    /// Files what `block` owes each other shard in the outbox.
    fn index_outgoing(
        &mut self,
        block: &Block,
        certificate: &palisade_consensus::CommitCertificate,
        jailed: &[ValidatorIndex],
    ) {
        let outgoing = palisade_ledger::receipt::outgoing(block, self.state.context().shard_count);
        for (dest, batch) in ReceiptBatch::by_dest(&block.header, certificate, jailed, &outgoing) {
            self.outbox.insert((dest, block.header.height), batch);
        }
    }

    /// Drops pooled batches that `block` (just committed) finished crediting.
    fn prune_pool(&mut self, block: &Block) {
        for credited in &block.incoming {
            let source = credited.source();
            let done = self.pool.get(&source).is_some_and(|pooled| self.all_credited(pooled));
            if done {
                self.pool.remove(&source);
            }
        }
    }

    /// Has the committed state credited every receipt of `batch`? (A state
    /// that cannot be read counts as "no": the batch stays and is checked.)
    fn all_credited(&self, batch: &ReceiptBatch) -> bool {
        batch.receipts.iter().all(|p| matches!(self.state.applied(&p.receipt.id), Ok(Some(_))))
    }

    /// Offers a peer's receipt batch to the pool. Cheap checks first (bounds,
    /// already credited, already pooled), so a batch relayed many times is
    /// verified once; then the full proof against the source committee.
    pub fn admit(&mut self, batch: ReceiptBatch) -> Admission {
        let context = self.state.context();
        // A source block emits at most one receipt per transaction.
        if batch.receipts.len() > context.max_block_txs {
            return Admission::Refused(ReceiptError::BadList);
        }
        if !batch.receipts.is_empty() && self.all_credited(&batch) {
            return Admission::Stale;
        }
        let source = batch.source();
        if self.pool.get(&source).is_some_and(|p| p.header == batch.header && p.receipts == batch.receipts) {
            return Admission::Duplicate;
        }
        if let Err(e) = batch.verify(&context.chain_id, &context.committees, context.shard_count, self.shard) {
            return Admission::Refused(e);
        }
        if self.pool.contains_key(&source) {
            // Another verified batch of the same source block (a different
            // certificate or a subset of its receipts): keep the first.
            return Admission::Duplicate;
        }
        if self.pool.len() >= MAX_POOLED_BATCHES {
            match self.pool.last_key_value().map(|(k, _)| *k) {
                Some(highest) if highest > source => {
                    self.pool.remove(&highest);
                    self.lower_cursor(highest);
                }
                _ => {
                    self.lower_cursor(source);
                    return Admission::Full;
                }
            }
        }
        self.pool.insert(source, batch);
        Admission::Pooled
    }

    /// Where the next pull from `source_shard` starts.
    pub fn cursor(&self, source_shard: ShardId) -> u64 {
        self.cursors.get(&source_shard).copied().unwrap_or(1)
    }

    /// Makes sure `(source_shard, height)` is pulled again.
    fn lower_cursor(&mut self, (source_shard, height): (ShardId, u64)) {
        let cursor = self.cursor(source_shard).min(height);
        self.cursors.insert(source_shard, cursor);
    }

    /// A pull answer from `source_shard` for `from_height` covered source
    /// heights up to `limit - 1`: move the cursor there, unless the cursor
    /// went below `from_height` meanwhile (then the answer leaves a gap).
    pub fn advance_cursor(&mut self, source_shard: ShardId, from_height: u64, limit: u64) {
        let cursor = self.cursor(source_shard);
        if from_height <= cursor && limit > cursor {
            self.cursors.insert(source_shard, limit);
        }
    }

    /// The batches this node's chain owes `dest` from `from_height` on, at
    /// most `max`, and the source height the answer covers.
    pub fn owed(&self, dest: ShardId, from_height: u64, max: usize) -> (Vec<ReceiptBatch>, u64) {
        let batches: Vec<ReceiptBatch> =
            self.outbox.range((dest, from_height)..=(dest, u64::MAX)).take(max).map(|(_, b)| b.clone()).collect();
        let through = match batches.last() {
            Some(last) if batches.len() >= max => last.header.height,
            _ => self.height(),
        };
        (batches, through)
    }

    /// Drops transactions whose nonce is used.
    fn prune_mempool(&mut self) {
        let state = &self.state;
        self.mempool.retain(|(sender, nonce), _| state.account(sender).map(|a| *nonce >= a.nonce).unwrap_or(false));
    }

    /// The committed block at `height` as its certificate and bytes.
    pub fn certified(&self, height: u64) -> Option<&Decision> {
        self.chain.get(&height)
    }

    /// Records a proposal or vote about to be fed to the replica, if the
    /// replica is bound to remember it (current height, inside the vote
    /// window, and for proposals from the view's leader): two different
    /// blocks in one slot must then yield evidence.
    pub fn note_seen(&mut self, message: &SignedMessage) {
        let (height, view) = (self.replica.height(), self.replica.view());
        let (slot_view, phase, block_hash) = match &message.message {
            Message::Propose(p) => {
                if self.committee().leader(p.height, p.view) != message.signer
                    || p.block.len() > self.config.max_block_bytes
                {
                    return;
                }
                (p.view, Phase::Propose, p.block_hash)
            }
            Message::Vote(v) => {
                if v.view > view.saturating_add(self.config.future_views) {
                    return;
                }
                (v.view, v.phase, v.block_hash)
            }
            _ => return,
        };
        if message.message.height() != height
            || Some(message.signer) == self.replica.index()
            || slot_view.saturating_add(palisade_consensus::replica::OLD_VIEWS_KEPT) < view
        {
            return;
        }
        self.seen.entry((message.signer, height, slot_view, phase)).or_default().insert(block_hash);
    }

    /// Was `message`, which this node is about to send, covered by the last
    /// persisted safety state? (The host contract: persist before sending.)
    pub fn persisted_covers(&self, message: &SignedMessage) -> bool {
        let Some(state) = &self.persisted else {
            return !matches!(message.message, Message::Vote(_) | Message::Propose(_) | Message::ViewChange(_));
        };
        let at = |height: u64, view: u64, signed: Option<BlockHash>, hash: BlockHash| {
            state.height > height
                || (state.height == height && (state.view > view || (state.view == view && signed == Some(hash))))
        };
        match &message.message {
            Message::Vote(v) => at(v.height, v.view, state.vote(v.phase), v.block_hash),
            Message::Propose(p) => at(p.height, p.view, state.proposed, p.block_hash),
            Message::ViewChange(vc) => state.height > vc.height || (state.height == vc.height && state.view >= vc.view),
            Message::Decided(_) => true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // a panic in a test is a failure report
mod tests {
    use palisade_consensus::CommitCertificate;
    use palisade_ledger::{
        Amount, Genesis,
        workload::{Wallets, dev_certificate},
    };

    use super::*;
    use crate::sim::{runner::Sim, scenario::Scenario};

    /// A commit certificate for `block` from the first three (a quorum of
    /// four) dev validators of `committee_shard`.
    fn certify(genesis: &Genesis, block: &Block, committee_shard: u32) -> CommitCertificate {
        dev_certificate(genesis, block, committee_shard, &[0, 1, 2])
    }

    /// Shard 1's batches from `count` certified shard-0 blocks of one
    /// cross-shard transfer each, by source height.
    fn batches(sim: &Sim, count: usize) -> Vec<ReceiptBatch> {
        let genesis = &sim.genesis;
        let mut users = Wallets::new(&genesis.chain_id, "user", 16);
        let from = (0..16).find(|i| users.address(*i).shard(2) == 0).unwrap();
        let to = users.address((0..16).find(|i| users.address(*i).shard(2) == 1).unwrap());
        let mut source = sim.genesis_states[0].clone();
        let proposer = sim.nodes[0].address;
        (0..count)
            .map(|_| {
                let tx = users.transfer(from, to, Amount(7), Amount(1));
                let built = build_block(&source, proposer, genesis.genesis_time_ms, Vec::new(), [tx]).unwrap();
                source.commit(&built.outcome);
                let certificate = certify(genesis, &built.block, 0);
                ReceiptBatch::for_dest(&built.block, &certificate, &[], 2, 1).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_pool_verifies_keeps_the_lowest_heights_and_rewinds_the_cursor() {
        let mut sim = Sim::new(Scenario::calm(0, 2, 4, Vec::new()));
        let all = batches(&sim, MAX_POOLED_BATCHES + 2);
        let genesis = sim.genesis.clone();
        let chain_id = genesis.chain_id.clone();
        let node = &mut sim.nodes[4];
        assert_eq!(node.shard, 1);
        node.cursors.insert(0, 1_000);
        // Highest first: the two lowest find the pool full of higher ones
        // and push those out, so the cursor goes back to fetch them again.
        for batch in all.iter().rev() {
            assert_eq!(node.admit(batch.clone()), Admission::Pooled);
        }
        let heights: Vec<u64> = node.pool.keys().map(|(_, h)| *h).collect();
        assert_eq!(heights, (1..=MAX_POOLED_BATCHES as u64).collect::<Vec<_>>());
        assert_eq!(node.cursor(0), MAX_POOLED_BATCHES as u64 + 1);
        assert_eq!(node.admit(all[MAX_POOLED_BATCHES].clone()), Admission::Full);
        assert_eq!(node.admit(all[0].clone()), Admission::Duplicate);

        // Forgeries are refused, pooled or not.
        let mut inflated = all[0].clone();
        inflated.receipts[0].receipt.amount = Amount(7_000);
        assert!(matches!(node.admit(inflated), Admission::Refused(ReceiptError::NotIncluded(_))));
        let mut own_committee = all[MAX_POOLED_BATCHES].clone();
        own_committee.certificate = certify(
            &genesis,
            &Block {
                header: own_committee.header.clone(),
                txs: Vec::new(),
                incoming: Vec::new(),
                evidence: Vec::new(),
            },
            1,
        );
        assert!(matches!(node.admit(own_committee), Admission::Refused(ReceiptError::Certified(_))));

        // A pull answer that starts above the cursor leaves a gap: no move.
        node.advance_cursor(0, MAX_POOLED_BATCHES as u64 + 5, 500);
        assert_eq!(node.cursor(0), MAX_POOLED_BATCHES as u64 + 1);
        node.advance_cursor(0, 1, 500);
        assert_eq!(node.cursor(0), 500);

        // The node's own block credits the pool; committing it empties the
        // pool, and the same receipts come back stale.
        let block = node.build(1, genesis.genesis_time_ms).unwrap();
        assert_eq!(block.incoming.len(), MAX_POOLED_BATCHES);
        let certificate = certify(&genesis, &block, 1);
        node.commit(Decision { certificate, block: block.to_bytes() }, &chain_id).unwrap();
        assert!(node.pool.is_empty());
        assert_eq!(node.admit(all[0].clone()), Admission::Stale);
        assert_eq!(node.admit(all[MAX_POOLED_BATCHES].clone()), Admission::Pooled);
    }
}
