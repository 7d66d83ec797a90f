//! Evidence waiting for a block: equivocations this node's replica saw,
//! that peers gossiped, or that someone submitted over RPC.
//!
//! Admission checks what can be checked without executing (the evidence
//! proves an equivocation by an active member of the current committee,
//! within the window), so junk from a peer is refused and scored. The pool
//! keeps one piece per offender, since jailing is final and only one can
//! ever execute, which also bounds it by the committee's size. A block that
//! executes evidence, or a refusal that can never change, removes it.

use std::collections::BTreeMap;

use palisade_consensus::{Committee, Evidence};
use palisade_ledger::slashing::{self, EvidenceRefused};
use palisade_ledger::state::ShardContext;
use palisade_ledger::{Address, Block, Hash};

/// What [`EvidencePool::offer`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// New: pooled (and worth gossiping): its hash and the offender.
    Pooled(Hash, Address),
    /// Evidence against this offender already waits.
    Known,
    /// Not admissible.
    Refused(EvidenceRefused),
}

impl Offered {
    /// The answer to whoever submitted it: its hash and the offender if
    /// pooled, else why not.
    pub fn answer(self) -> Result<(Hash, Address), String> {
        match self {
            Offered::Pooled(hash, offender) => Ok((hash, offender)),
            Offered::Known => Err("evidence against this validator is already pending".to_string()),
            Offered::Refused(reason) => Err(reason.to_string()),
        }
    }
}

/// Pending evidence, one per offender.
#[derive(Debug, Default)]
pub struct EvidencePool {
    by_offender: BTreeMap<Address, Evidence>,
}

impl EvidencePool {
    /// Checks `evidence` against `committee` (the one of its offence's
    /// epoch: [`palisade_ledger::committee::for_offence`]) for a block at
    /// `next_height`, and pools it.
    pub fn offer(
        &mut self,
        context: &ShardContext,
        committee: &Committee,
        next_height: u64,
        evidence: &Evidence,
    ) -> Offered {
        // An offence just above our tip is real if we are behind; the
        // window check below still applies once the chain gets there.
        let check_at = next_height.max(evidence.slot().0);
        let offender = match slashing::check(context, committee, check_at, evidence) {
            Ok(offender) => offender,
            Err(refused) => return Offered::Refused(refused),
        };
        if !committee.is_active(evidence.signer) {
            return Offered::Refused(EvidenceRefused::AlreadyJailed(offender));
        }
        if self.by_offender.contains_key(&offender) {
            return Offered::Known;
        }
        let hash = slashing::evidence_hash(evidence);
        self.by_offender.insert(offender, evidence.clone());
        Offered::Pooled(hash, offender)
    }

    /// Pieces waiting (at most one per committee member).
    pub fn len(&self) -> usize {
        self.by_offender.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_offender.is_empty()
    }

    /// What a proposal may carry.
    pub fn candidates(&self) -> Vec<Evidence> {
        self.by_offender.values().cloned().collect()
    }

    /// Drops evidence a proposal refused for good (anything but "not yet").
    pub fn drop_refused(&mut self, refused: &[(Hash, EvidenceRefused)]) {
        let gone: Vec<&Hash> = refused
            .iter()
            .filter(|(_, reason)| !matches!(reason, EvidenceRefused::Future { .. }))
            .map(|(hash, _)| hash)
            .collect();
        self.by_offender.retain(|_, evidence| !gone.contains(&&slashing::evidence_hash(evidence)));
    }

    /// After `block` is final, with `committee` the one for the next height:
    /// drops evidence against members no longer active (it executed, here
    /// or in another piece). Evidence against a validator that left the
    /// committee at an epoch's end stays: it is still to be executed (a
    /// block refuses it if it was already, and the pool then forgets it).
    pub fn on_commit(&mut self, block: &Block, committee: &Committee) {
        if block.evidence.is_empty() {
            return;
        }
        self.by_offender.retain(|address, _| {
            committee.index_of(&address.0).is_none() || palisade_ledger::committee::is_active_member(committee, address)
        });
    }
}
