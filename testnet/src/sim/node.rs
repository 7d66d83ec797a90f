//! One simulated validator: a [`ShardCore`] over a [`MemStore`], exactly
//! the code `palisade-node` runs for a shard, plus what its host keeps.
//! What survives a crash is what a real node makes durable: the store (the
//! committed chain, its state and the receipt scans' resume points) and the
//! last safety state the core asked to persist. The core itself (replica,
//! mempool, pools, sync client, timers) is volatile.
//!
//! The host also keeps the records the checks read: every block the core
//! reported final, the evidence it published, the equivocations its
//! replica detected, and the proposals and votes it accepted.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use palisade_consensus::{
    BlockHash, Committee, Decision, Evidence, Message, Phase, SafetyState, SignedMessage, ValidatorIndex,
};
use palisade_ledger::{Address, ShardId};
use palisade_shard_core::{CoreConfig, MemStore, ReadView, ShardCore, max_block_bytes};

use super::byzantine::Kind;

/// A slot a proposal or vote occupies: (signer, height, view, phase).
pub type Slot = (ValidatorIndex, u64, u64, Phase);

/// A simulated validator.
pub struct Node {
    /// Global index.
    pub id: usize,
    /// Where it stands in partitions: its own index, or for a twin its
    /// validator's.
    pub place: usize,
    /// Its shard.
    pub shard: ShardId,
    /// Its committee index.
    pub index: ValidatorIndex,
    /// Its ledger address (public key).
    pub address: Address,
    /// Its behaviour, if Byzantine (both halves of a twin are `Twin`).
    pub kind: Option<Kind>,
    /// How its core is opened (and reopened after a crash).
    pub config: CoreConfig,
    /// The running core; `None` while crashed.
    core: Option<ShardCore<MemStore>>,
    /// Durable: the store, held here while the node is down.
    stored: Option<MemStore>,
    /// Durable: the last safety state the core asked to persist.
    pub persisted: Option<SafetyState>,
    /// Bumped on each crash: events of an earlier incarnation are ignored.
    pub incarnation: u64,
    /// The earliest `Tick` event scheduled for this incarnation.
    pub tick_at: Option<u64>,
    /// Every block its core reported final, by height (kept across crashes:
    /// what the node acknowledged).
    pub chain: BTreeMap<u64, Decision>,
    /// Evidence it published on its shard's evidence topic.
    pub evidence: Vec<Evidence>,
    /// Equivocations its replica detected (kept across crashes).
    pub detected: Vec<Slot>,
    /// Volatile: proposals and votes its core accepted at its current height
    /// and inside its vote window, by slot (evidence completeness).
    pub seen: BTreeMap<Slot, BTreeSet<BlockHash>>,
    /// The committee its core verifies messages against, as of the last
    /// input (for the checks).
    committee: Committee,
    /// Volatile: the read view the node's RPC would read, fed by the core's
    /// `Effect::View`s (checked against its pools).
    pub view: ReadView,
    /// Its quarantines, in simulated ms: (from, until, the cause's label),
    /// `until` open while it lasts (a crash ends one: quarantine is
    /// volatile).
    pub quarantines: Vec<(u64, Option<u64>, &'static str)>,
    /// Volatile: the gossip it has received, by content hash. The node's
    /// gossip identifies a message by its bytes and drops one it has seen
    /// (see node/src/net/behaviour.rs); so does the simulator, or a core
    /// relying on sending the same bytes twice would pass here and fail
    /// there.
    pub gossip_seen: HashSet<[u8; 32]>,
}

impl Node {
    /// A node at genesis, running.
    pub fn new(id: usize, index: ValidatorIndex, kind: Option<Kind>, config: CoreConfig, now_ms: u64) -> Node {
        let store = MemStore::genesis(&config.genesis, config.shard).expect("the simulated genesis has every shard");
        let address = config.key.as_ref().map(|k| k.address()).expect("simulated validators have keys");
        let core = ShardCore::open(config.clone(), store, None, now_ms).expect("a genesis store opens");
        Node {
            id,
            place: id,
            shard: config.shard,
            index,
            address,
            kind,
            committee: core.committee().clone(),
            core: Some(core),
            config,
            stored: None,
            persisted: None,
            incarnation: 0,
            tick_at: None,
            chain: BTreeMap::new(),
            evidence: Vec::new(),
            detected: Vec::new(),
            seen: BTreeMap::new(),
            gossip_seen: HashSet::new(),
            quarantines: Vec::new(),
            view: ReadView::default(),
        }
    }

    /// Honest (not Byzantine)?
    pub fn honest(&self) -> bool {
        self.kind.is_none()
    }

    /// Running?
    pub fn alive(&self) -> bool {
        self.core.is_some()
    }

    /// Its core, while running.
    pub fn core(&self) -> Option<&ShardCore<MemStore>> {
        self.core.as_ref()
    }

    /// Its core, while running.
    pub fn core_mut(&mut self) -> Option<&mut ShardCore<MemStore>> {
        self.core.as_mut()
    }

    /// Its durable store, running or not.
    pub fn store(&self) -> &MemStore {
        match (&self.core, &self.stored) {
            (Some(core), _) => core.store(),
            (None, Some(stored)) => stored,
            (None, None) => unreachable!("a node holds its store, in its core or on its own"),
        }
    }

    /// Its durable store while it is down (fault injection).
    pub fn stored_mut(&mut self) -> &mut MemStore {
        self.stored.as_mut().expect("a crashed node holds its store")
    }

    /// Its committed height.
    pub fn height(&self) -> u64 {
        palisade_ledger::State::tip(self.store()).height
    }

    /// The committee it verifies messages against.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Quarantined now?
    pub fn quarantined(&self) -> bool {
        self.core.as_ref().is_some_and(|core| core.quarantine().active())
    }

    /// Refreshes what the checks read from the core after an input (at
    /// simulated `now_ms`).
    pub fn observe(&mut self, now_ms: u64) {
        if let Some(core) = &self.core
            && core.committee() != &self.committee
        {
            // A hand-over (staking) renumbers the members: the slots seen
            // so far name signers by indices of the committee before it.
            let keys = |c: &Committee| c.validators().iter().map(|v| v.public_key).collect::<Vec<_>>();
            if keys(core.committee()) != keys(&self.committee) {
                self.seen.clear();
            }
            self.committee = core.committee().clone();
        }
        let open = self.quarantines.last().is_some_and(|(_, until, _)| until.is_none());
        let cause = self.core.as_ref().and_then(|core| core.quarantine().cause()).map(|cause| cause.label());
        match (cause, open) {
            (Some(cause), false) => self.quarantines.push((now_ms, None, cause)),
            (None, true) => {
                if let Some(last) = self.quarantines.last_mut() {
                    last.1 = Some(now_ms);
                }
            }
            _ => {}
        }
    }

    /// Stops: everything but the store and the persisted state is lost.
    pub fn crash(&mut self, now_ms: u64) {
        if let Some(core) = self.core.take() {
            self.stored = Some(core.into_store());
        }
        self.observe(now_ms);
        self.incarnation += 1;
        self.tick_at = None;
        self.seen.clear();
        self.gossip_seen.clear();
        self.view = ReadView::default();
    }

    /// Why its read view differs from its core's pools, if it does: a
    /// change the core did not report would have RPC answer wrongly. `full`
    /// compares every id (sizes otherwise).
    pub fn view_mismatch(&self, full: bool) -> Option<String> {
        let core = self.core.as_ref()?;
        let (mempool, receipts) = (core.mempool(), core.receipts());
        let (pending, pooled) = (self.view.pending(), self.view.pooled());
        if pending.len() != mempool.len() || (full && !mempool.ids().all(|id| pending.contains(id))) {
            return Some(format!("read view: {} pending, the mempool holds {}", pending.len(), mempool.len()));
        }
        if pooled.len() != receipts.ids().len() || (full && !receipts.ids().all(|id| pooled.contains(id))) {
            return Some(format!(
                "read view: {} receipts pooled, the pool holds {}",
                pooled.len(),
                receipts.ids().len()
            ));
        }
        None
    }

    /// Reopens the core from what was durable, at `now_ms`.
    pub fn restart(&mut self, now_ms: u64) -> Result<(), String> {
        let Some(store) = self.stored.take() else { return Ok(()) };
        // The safety state comes back through its durable record, as from a
        // node's disk (prepared block included).
        let limit = max_block_bytes(&self.config.genesis);
        let persisted = match self.persisted.as_ref().map(|state| SafetyState::decode(&state.encode(), limit)) {
            None => None,
            Some(Ok(state)) => Some(state),
            Some(Err(e)) => {
                self.stored = Some(store);
                return Err(format!("its persisted safety state does not read back: {e}"));
            }
        };
        match ShardCore::open(self.config.clone(), store.clone(), persisted, now_ms) {
            Ok(core) => {
                self.committee = core.committee().clone();
                self.core = Some(core);
                Ok(())
            }
            Err(e) => {
                self.stored = Some(store);
                Err(format!("cannot reopen its core: {e}"))
            }
        }
    }

    /// The slot `message` occupies, if its core must remember it once
    /// accepted: a proposal from the view's leader or a vote, at the
    /// replica's current `height` and inside its window around `view`.
    pub fn slot(&self, message: &SignedMessage, height: u64, view: u64) -> Option<(Slot, BlockHash)> {
        let core = self.core.as_ref()?;
        let config = core.replica().config();
        let (slot_view, phase, block_hash) = match &message.message {
            Message::Propose(p) => {
                if self.committee.leader(p.height, p.view) != message.signer || p.block.len() > config.max_block_bytes {
                    return None;
                }
                (p.view, Phase::Propose, p.block_hash)
            }
            Message::Vote(v) => {
                if v.view > view.saturating_add(config.future_views) {
                    return None;
                }
                (v.view, v.phase, v.block_hash)
            }
            _ => return None,
        };
        if message.message.height() != height
            || Some(message.signer) == core.replica().index()
            || slot_view.saturating_add(palisade_consensus::replica::OLD_VIEWS_KEPT) < view
        {
            return None;
        }
        Some(((message.signer, height, slot_view, phase), block_hash))
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
            Message::Decided(_) | Message::Alive(_) => true,
        }
    }
}
