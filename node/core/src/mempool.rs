//! One shard's mempool: transactions waiting for a block.
//!
//! - Deduplicated by transaction id.
//! - Per sender, transactions form a contiguous nonce chain starting at the
//!   account's committed nonce; across senders, block candidates come out
//!   highest fee first (each sender's next transaction competes on its fee).
//! - Bounded in count and bytes. When full, a transaction paying more than
//!   the cheapest evictable one (the last of some sender's chain, so no chain
//!   gets a gap) replaces it; otherwise it is refused with a retry hint.
//! - Every refusal carries its reason: bad signature, wrong chain or shard,
//!   a fee below the shard's base fee (with the base fee), stale nonce,
//!   nonce gap, insufficient funds for the sender's whole chain, duplicate,
//!   or full.
//! - A transaction past its expiry height is refused, and dropped (with the
//!   rest of its sender's chain) once a block passes that height.
//! - Block candidates pay the base fee of the block being built: a sender
//!   whose next transaction pays less waits (it stays pending, and counts
//!   against the bounds) until the base fee falls or it is replaced.
//!
//! Admission checks against the committed state; the block builder re-checks
//! everything when it executes candidates, so a stale pool can cost a wasted
//! candidate, never a bad block.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use palisade_ledger::api::{TxRejection, reason};
use palisade_ledger::execute::{BlockError, check_payable, verify_signatures_with};
use palisade_ledger::{Address, Amount, Hash, SignedTx, State, StateExt, TxError, fee, state::StateError};

use crate::keys::KeyCache;
use crate::view::ViewChange;

/// Default bound on transactions held.
pub const DEFAULT_MAX_TXS: usize = 100_000;
/// Default bound on encoded bytes held.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How far beyond the committed nonce a sender may queue.
pub const DEFAULT_MAX_NONCE_GAP: u64 = 64;
/// The retry hint given when the pool is full: about one block interval.
pub const FULL_RETRY_AFTER_MS: u64 = 500;

/// Bounds of a [`Mempool`].
#[derive(Clone, Copy, Debug)]
pub struct MempoolConfig {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most pending transactions per sender (nonces beyond committed + this are refused).
    pub max_nonce_gap: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { max_txs: DEFAULT_MAX_TXS, max_bytes: DEFAULT_MAX_BYTES, max_nonce_gap: DEFAULT_MAX_NONCE_GAP }
    }
}

/// Why a transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// It would not execute (signature, chain, shard, funds, overflow, cross-shard).
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Its nonce is already committed.
    #[error("stale nonce {got}: the account's next nonce is {next}")]
    StaleNonce {
        /// The transaction's.
        got: u64,
        /// The account's committed next nonce.
        next: u64,
    },
    /// Its nonce leaves a gap after the sender's pending chain.
    #[error("nonce {got} leaves a gap: the next acceptable nonce is {next}")]
    NonceGap {
        /// The transaction's.
        got: u64,
        /// The next nonce the pool accepts for this sender.
        next: u64,
    },
    /// Another transaction with this sender and nonce is pending and pays at least as much.
    #[error("nonce {nonce} is already pending with a fee of {pending_fee} units; pay more to replace it")]
    NonceTaken {
        /// The nonce.
        nonce: u64,
        /// The pending transaction's fee.
        pending_fee: Amount,
    },
    /// Already pending.
    #[error("already pending")]
    Duplicate,
    /// Full, and this transaction does not pay more than what is there.
    #[error(
        "mempool full; retry in about {retry_after_ms} ms or pay a higher fee (lowest accepted: above {min_fee} units)"
    )]
    Full {
        /// When a retry has a fair chance.
        retry_after_ms: u64,
        /// The fee to beat.
        min_fee: Amount,
    },
    /// Bigger than the whole pool may hold.
    #[error("transaction of {bytes} bytes exceeds the pool's limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Its sender's (or its client's) submissions spiked far above their
    /// own recent rate: the intake breaker refuses them until they calm
    /// down ([`crate::intake`]).
    #[error(
        "{whose} throttled: over {limit_per_window} submissions a second, ten times its usual rate; \
         retry in about {retry_after_ms} ms at its usual pace"
    )]
    Throttled {
        /// `sender`, or `client <address>`.
        whose: String,
        /// Its current limit per second.
        limit_per_window: u64,
        /// When it may be admitted again if it calms down now.
        retry_after_ms: u64,
    },
}

impl Rejection {
    /// Every value [`Rejection::label`] can return.
    pub const LABELS: &'static [&'static str] = reason::ALL;

    /// A short stable label, shared with clients ([`reason`]) and metrics
    /// (`palisade_mempool_rejected_total{reason}`).
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Invalid(TxError::BadSignature) => reason::BAD_SIGNATURE,
            Rejection::Invalid(TxError::WrongChain { .. }) => reason::WRONG_CHAIN,
            Rejection::Invalid(TxError::WrongShard { .. }) => reason::WRONG_SHARD,
            Rejection::Invalid(TxError::BadNonce { .. }) => reason::BAD_NONCE,
            Rejection::Invalid(TxError::InsufficientFunds { .. }) => reason::INSUFFICIENT_FUNDS,
            Rejection::Invalid(TxError::Overflow) => reason::OVERFLOW,
            Rejection::Invalid(TxError::FeeBelowBase { .. }) => reason::FEE_BELOW_BASE,
            Rejection::Invalid(TxError::Expired { .. }) => reason::EXPIRED,
            Rejection::Invalid(TxError::Stake(_)) => reason::STAKE_REFUSED,
            Rejection::StaleNonce { .. } => reason::STALE_NONCE,
            Rejection::NonceGap { .. } => reason::NONCE_GAP,
            Rejection::NonceTaken { .. } => reason::NONCE_TAKEN,
            Rejection::Duplicate => reason::DUPLICATE,
            Rejection::Full { .. } => reason::FULL,
            Rejection::TooLarge { .. } => reason::TOO_LARGE,
            Rejection::Throttled { .. } => reason::THROTTLED,
        }
    }

    /// What a client receives as the error's `data`.
    pub fn to_api(&self) -> TxRejection {
        let (retry_after_ms, min_fee_units) = match self {
            Rejection::Full { retry_after_ms, min_fee } => (Some(*retry_after_ms), Some(min_fee.units())),
            Rejection::Throttled { retry_after_ms, .. } => (Some(*retry_after_ms), None),
            Rejection::Invalid(TxError::FeeBelowBase { base_fee, .. }) => (None, Some(base_fee.units())),
            _ => (None, None),
        };
        TxRejection { reason: self.label().to_string(), message: self.to_string(), retry_after_ms, min_fee_units }
    }
}

/// Whether a transaction's signature is still to be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// [`Mempool::insert_encoded`] checks it.
    Unchecked,
    /// The caller verified it (as part of a batch).
    Verified,
}

struct Entry {
    tx: SignedTx,
    bytes: usize,
}

/// One shard's pending transactions.
pub struct Mempool {
    config: MempoolConfig,
    by_id: HashMap<Hash, Entry>,
    /// sender → nonce → id: each sender's contiguous chain.
    chains: BTreeMap<Address, BTreeMap<u64, Hash>>,
    /// (fee, id) of every chain's last transaction: what eviction may take.
    tails: BTreeSet<(Amount, Hash)>,
    bytes: usize,
    /// What entered and left since the host last took it (the read view).
    changes: Vec<ViewChange>,
    /// Decompressed sender keys, for the signature checks.
    keys: KeyCache,
    /// (last height, id) of every pending transaction that expires.
    expiring: BTreeSet<(u64, Hash)>,
    /// The base fee after the tip with this hash: read once per block, not
    /// once per admission.
    base_fee_at: Option<(Hash, Amount)>,
}

impl Mempool {
    /// An empty pool.
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            by_id: HashMap::new(),
            chains: BTreeMap::new(),
            tails: BTreeSet::new(),
            bytes: 0,
            changes: Vec::new(),
            keys: KeyCache::default(),
            expiring: BTreeSet::new(),
            base_fee_at: None,
        }
    }

    /// Batch-verifies the signatures of `txs` (not yet admitted), with the
    /// senders' keys from the cache ([`verify_signatures`]).
    pub fn verify_signatures(&mut self, txs: &[SignedTx]) -> Result<(), BlockError> {
        verify_signatures_with(txs, |sender| self.keys.key(sender))
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &Hash) -> bool {
        self.by_id.contains_key(id)
    }

    /// The ids of the pending transactions.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &Hash> {
        self.by_id.keys()
    }

    /// Moves what entered and left since the last call onto `into`.
    pub fn take_changes(&mut self, into: &mut Vec<ViewChange>) {
        into.append(&mut self.changes);
    }

    /// Admits `tx` if it would execute after the sender's pending chain on
    /// `state` (the shard's committed state). Returns its id.
    pub fn insert<S: State + ?Sized>(&mut self, tx: SignedTx, state: &S) -> Result<Hash, InsertError> {
        let encoded = tx.to_bytes();
        self.insert_encoded(tx, SignedTx::id_of(&encoded), encoded.len(), Signature::Unchecked, state)
    }

    /// [`Mempool::insert`] for a caller that holds the transaction's
    /// canonical encoding already (its id and length: nothing is encoded or
    /// hashed again), and may have checked its signature already (a
    /// gossiped batch is verified as one).
    pub fn insert_encoded<S: State + ?Sized>(
        &mut self,
        tx: SignedTx,
        id: Hash,
        bytes: usize,
        signature: Signature,
        state: &S,
    ) -> Result<Hash, InsertError> {
        if self.by_id.contains_key(&id) {
            return Err(Rejection::Duplicate.into());
        }
        if bytes > self.config.max_bytes {
            return Err(Rejection::TooLarge { bytes }.into());
        }
        let base_fee = self.base_fee(state)?;
        self.check_static(&tx, signature, state, base_fee)?;
        let sender = tx.body.sender;
        let account = state.account(&sender)?;
        let nonce = tx.body.nonce;
        if nonce < account.nonce {
            return Err(Rejection::StaleNonce { got: nonce, next: account.nonce }.into());
        }
        let chain = self.chains.get(&sender);
        let next = account.nonce.saturating_add(chain.map_or(0, |c| c.len() as u64));
        let replaces = chain.and_then(|c| c.get(&nonce)).copied();
        if let Some(existing) = replaces.and_then(|old| self.by_id.get(&old)) {
            if tx.body.fee <= existing.tx.body.fee {
                return Err(Rejection::NonceTaken { nonce, pending_fee: existing.tx.body.fee }.into());
            }
        } else if nonce != next || nonce >= account.nonce.saturating_add(self.config.max_nonce_gap) {
            return Err(Rejection::NonceGap {
                got: nonce,
                next: next.min(account.nonce.saturating_add(self.config.max_nonce_gap)),
            }
            .into());
        }
        self.check_funds(&tx, account.balance, replaces)?;
        if replaces.is_none() {
            self.make_room(bytes, tx.body.fee, &sender)?;
        }
        if let Some(old) = replaces {
            self.remove(&old);
        }
        self.add(id, tx, bytes);
        Ok(id)
    }

    /// The base fee of the block after `state`'s tip.
    fn base_fee<S: State + ?Sized>(&mut self, state: &S) -> Result<Amount, StateError> {
        let tip = state.tip().hash;
        match self.base_fee_at {
            Some((at, base_fee)) if at == tip => Ok(base_fee),
            _ => {
                let base_fee = fee::base_fee(state)?;
                self.base_fee_at = Some((tip, base_fee));
                Ok(base_fee)
            }
        }
    }

    /// Signature, chain, shard, expiry, base-fee and staking checks that
    /// need no account.
    fn check_static<S: State + ?Sized>(
        &mut self,
        tx: &SignedTx,
        signature: Signature,
        state: &S,
        base_fee: Amount,
    ) -> Result<(), Rejection> {
        let context = state.context();
        if tx.body.chain_id != context.chain_id {
            return Err(
                TxError::WrongChain { expected: context.chain_id.clone(), got: tx.body.chain_id.clone() }.into()
            );
        }
        let sender_shard = tx.body.sender.shard(context.shard_count);
        if sender_shard != context.shard {
            return Err(TxError::WrongShard { sender_shard, shard: context.shard }.into());
        }
        check_payable(&tx.body, state.tip().height.saturating_add(1), base_fee)?;
        // Checked last: it is the expensive one.
        if signature == Signature::Unchecked
            && !self.keys.key(&tx.body.sender).is_some_and(|key| tx.verify_signature_with(&key))
        {
            return Err(TxError::BadSignature.into());
        }
        // A bond's proof of possession is another signature: after the
        // sender's, so a forged transaction costs one check, not two.
        palisade_ledger::stake::check_static(context, &tx.body).map_err(TxError::Stake)?;
        Ok(())
    }

    /// The sender must afford every pending debit up to and including `tx`.
    fn check_funds(&self, tx: &SignedTx, balance: Amount, replaces: Option<Hash>) -> Result<(), Rejection> {
        let own = tx.body.total_debit().ok_or(TxError::Overflow)?;
        let mut needed = own;
        for id in self.chains.get(&tx.body.sender).into_iter().flat_map(|c| c.values()) {
            if Some(*id) == replaces {
                continue;
            }
            let debit = self.by_id.get(id).and_then(|e| e.tx.body.total_debit()).ok_or(TxError::Overflow)?;
            needed = needed.checked_add(debit).ok_or(TxError::Overflow)?;
        }
        if needed > balance {
            return Err(TxError::InsufficientFunds { needed, available: balance }.into());
        }
        Ok(())
    }

    /// Evicts the cheapest chain tails until `bytes` more fit, if `fee` beats
    /// them. Never the appending sender's own tail: that would gap its chain.
    fn make_room(&mut self, bytes: usize, fee: Amount, sender: &Address) -> Result<(), Rejection> {
        loop {
            let fits =
                self.by_id.len() < self.config.max_txs && self.bytes.saturating_add(bytes) <= self.config.max_bytes;
            if fits {
                return Ok(());
            }
            let evictable =
                self.tails.iter().find(|(_, id)| self.by_id.get(id).is_some_and(|e| &e.tx.body.sender != sender));
            let Some(&(lowest, victim)) = evictable else {
                return Err(Rejection::Full { retry_after_ms: FULL_RETRY_AFTER_MS, min_fee: Amount::ZERO });
            };
            if fee <= lowest {
                return Err(Rejection::Full { retry_after_ms: FULL_RETRY_AFTER_MS, min_fee: lowest });
            }
            self.remove(&victim);
        }
    }

    fn add(&mut self, id: Hash, tx: SignedTx, bytes: usize) {
        let sender = tx.body.sender;
        let chain = self.chains.entry(sender).or_default();
        if let Some((_, old_tail)) = chain.last_key_value() {
            let old_fee = self.by_id.get(old_tail).map(|e| e.tx.body.fee).unwrap_or_default();
            self.tails.remove(&(old_fee, *old_tail));
        }
        chain.insert(tx.body.nonce, id);
        if let Some((_, tail)) = chain.last_key_value() {
            let tail_fee =
                if *tail == id { tx.body.fee } else { self.by_id.get(tail).map(|e| e.tx.body.fee).unwrap_or_default() };
            self.tails.insert((tail_fee, *tail));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if let Some(last) = tx.body.expires_at {
            self.expiring.insert((last, id));
        }
        self.by_id.insert(id, Entry { tx, bytes });
        self.changes.push(ViewChange::TxPending(id));
    }

    /// Removes `id`, e.g. a candidate the block builder found no longer
    /// executes. A sender's later transactions stay; if the removal left a gap
    /// they fail the builder's nonce check and are evicted in turn.
    pub fn evict(&mut self, id: &Hash) -> Option<SignedTx> {
        self.remove(id)
    }

    /// Removes `id` (and keeps the tail index right).
    fn remove(&mut self, id: &Hash) -> Option<SignedTx> {
        let entry = self.by_id.remove(id)?;
        self.changes.push(ViewChange::TxGone(*id));
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        self.tails.remove(&(entry.tx.body.fee, *id));
        if let Some(last) = entry.tx.body.expires_at {
            self.expiring.remove(&(last, *id));
        }
        let sender = entry.tx.body.sender;
        if let Some(chain) = self.chains.get_mut(&sender) {
            chain.remove(&entry.tx.body.nonce);
            match chain.last_key_value() {
                None => {
                    self.chains.remove(&sender);
                }
                Some((_, tail)) => {
                    let fee = self.by_id.get(tail).map(|e| e.tx.body.fee).unwrap_or_default();
                    self.tails.insert((fee, *tail));
                }
            }
        }
        Some(entry.tx)
    }

    /// Block candidates: each sender's chain in nonce order, senders
    /// interleaved by the fee of their next transaction, highest first.
    /// Only chains starting at the committed nonce are included, up to their
    /// first transaction below the next block's base fee.
    pub fn candidates<S: State + ?Sized>(&self, state: &S, max: usize) -> Result<Vec<SignedTx>, StateError> {
        let base_fee = fee::base_fee(state)?;
        let height = state.tip().height.saturating_add(1);
        let mut chains: BTreeMap<Address, Vec<&SignedTx>> = BTreeMap::new();
        for (sender, chain) in &self.chains {
            if chain.first_key_value().map(|(nonce, _)| *nonce) != Some(state.account(sender)?.nonce) {
                continue;
            }
            // A chain stops at its first transaction below the base fee:
            // nothing after it can execute before it does.
            let payable: Vec<&SignedTx> = chain
                .values()
                .filter_map(|id| self.by_id.get(id))
                .map(|e| &e.tx)
                .take_while(|tx| check_payable(&tx.body, height, base_fee).is_ok())
                .collect();
            if !payable.is_empty() {
                chains.insert(*sender, payable);
            }
        }
        // (fee of the sender's next transaction, sender) → its position in the chain.
        let fee_at = |sender: &Address, position: usize| chains.get(sender)?.get(position).map(|tx| tx.body.fee);
        let mut heads: BTreeMap<(Amount, Address), usize> =
            chains.keys().filter_map(|sender| Some(((fee_at(sender, 0)?, *sender), 0))).collect();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(((_, sender), position)) = heads.pop_last() else { break };
            let Some(tx) = chains.get(&sender).and_then(|chain| chain.get(position)) else { continue };
            out.push((*tx).clone());
            let next = position.saturating_add(1);
            if let Some(fee) = fee_at(&sender, next) {
                heads.insert((fee, sender), next);
            }
        }
        Ok(out)
    }

    /// Drops what a committed block made stale: its transactions and any
    /// pending nonce now below its sender's committed nonce.
    pub fn on_commit<S: State + ?Sized>(&mut self, committed: &[SignedTx], state: &S) -> Result<(), StateError> {
        let mut senders = BTreeSet::new();
        for tx in committed {
            senders.insert(tx.body.sender);
            self.remove(&tx.id());
        }
        for sender in senders {
            let next = state.account(&sender)?.nonce;
            let stale: Vec<Hash> = self
                .chains
                .get(&sender)
                .map(|chain| chain.range(..next).map(|(_, id)| *id).collect())
                .unwrap_or_default();
            for id in stale {
                self.remove(&id);
            }
        }
        self.drop_expired(state.tip().height.saturating_add(1));
        Ok(())
    }

    /// Drops what a block at `height` may no longer include, with the rest
    /// of its sender's chain (which cannot execute before it).
    fn drop_expired(&mut self, height: u64) {
        while let Some(&(last, id)) = self.expiring.first() {
            if last >= height {
                break;
            }
            let Some(entry) = self.by_id.get(&id) else {
                self.expiring.remove(&(last, id));
                continue;
            };
            let (sender, nonce) = (entry.tx.body.sender, entry.tx.body.nonce);
            let doomed: Vec<Hash> = self
                .chains
                .get(&sender)
                .map(|chain| chain.range(nonce..).map(|(_, id)| *id).collect())
                .unwrap_or_default();
            for id in doomed {
                self.remove(&id);
            }
        }
    }
}

/// A refusal, or a failure to read the state it is checked against.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The transaction was refused.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The state could not be read (a local fault).
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<TxError> for InsertError {
    fn from(e: TxError) -> Self {
        InsertError::Rejected(Rejection::Invalid(e))
    }
}
