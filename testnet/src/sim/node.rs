//! One simulated validator: the real [`Replica`] for its shard, its shard's
//! [`MemState`], a mempool, and the host duties the consensus crate lists
//! (validate blocks against the ledger, commit certified blocks, persist the
//! safety state, sync). What survives a crash is exactly what a real node
//! makes durable: the last persisted [`SafetyState`] and the committed chain
//! (with the state it implies). Everything else is volatile.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use palisade_consensus::{
    BlockHash, Committee, Config, Decision, Evidence, Message, Phase, Replica, SafetyState, ShardId, SignedMessage,
    ValidatorIndex,
};
use palisade_ledger::{
    Address, Block, Outcome, SignedTx, State, StateExt,
    execute::{apply_block, build_block},
    mem::MemState,
};

use super::byzantine::Byzantine;

/// Most transactions a mempool holds.
pub const MEMPOOL_CAPACITY: usize = 256;
/// Most transactions a leader offers to `build_block`.
pub const MAX_CANDIDATES: usize = 32;

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
    /// The replica's configuration.
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
            seen: BTreeMap::new(),
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
    }

    /// Rebuilds the replica from what was durable.
    pub fn restart(&mut self) {
        // The last decisions go back in so the replica can answer peers
        // stuck at those heights (as a real node does from its store).
        let recent = self.chain.values().rev().take(palisade_consensus::replica::DECISIONS_KEPT).cloned().collect();
        self.replica = Replica::restore(self.config.clone(), self.persisted.clone(), self.height(), recent)
            .expect("simulator configurations and durable chains are valid");
        self.alive = true;
    }

    /// Adds a client's transaction (bounded; first one per (sender, nonce) wins).
    pub fn submit(&mut self, tx: SignedTx) {
        if self.mempool.len() < MEMPOOL_CAPACITY {
            self.mempool.entry((tx.body.sender, tx.body.nonce)).or_insert(tx);
        }
    }

    /// Builds the block for `height` over the mempool, if the state is there.
    pub fn build(&mut self, height: u64, timestamp_ms: u64) -> Option<Block> {
        if self.height().checked_add(1) != Some(height) {
            return None;
        }
        let candidates: Vec<SignedTx> = self.mempool.values().take(MAX_CANDIDATES).cloned().collect();
        let built = build_block(&self.state, self.address, timestamp_ms, Vec::new(), candidates).ok()?;
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
    /// and the block must execute. `Err` says which host duty failed.
    pub fn commit(&mut self, certified: Decision, chain_id: &str) -> Result<(), String> {
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
        self.state.commit(&outcome);
        self.chain.insert(height, certified);
        self.outcomes.clear();
        self.prune_mempool();
        Ok(())
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
