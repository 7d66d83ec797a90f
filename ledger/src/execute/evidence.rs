//! Executing the equivocation evidence a block carries: burning, jailing
//! and recording on the [`Overlay`], all or nothing per piece (the rules
//! themselves are in [`crate::slashing`]).

use palisade_consensus::{Committee, Evidence};

use crate::{
    address::Address,
    slashing::{self, EvidenceRefused, SlashRecord},
    state::{ShardContext, State, StateError},
};

use super::overlay::Overlay;

impl<S: State + ?Sized> Overlay<'_, S> {
    /// Executes `evidence` in the block at `height` certified by
    /// `committee`: burns, jails and records, all or nothing.
    pub(super) fn slash(
        &mut self,
        context: &ShardContext,
        committee: &Committee,
        height: u64,
        evidence: &Evidence,
    ) -> Result<Result<(), EvidenceRefused>, StateError> {
        // Judged by the committee of the offence's epoch: its signer
        // indices are that committee's.
        let (offence, _, _) = evidence.slot();
        let earlier = context.staking.is_some_and(|s| s.epoch_of(offence) != s.epoch_of(height));
        let judge = match earlier.then(|| crate::committee::for_offence(self.state, offence)).transpose()? {
            Some(Some(judge)) => std::borrow::Cow::Owned(judge),
            Some(None) => return Ok(Err(EvidenceRefused::Future { offence, height })),
            None => std::borrow::Cow::Borrowed(committee),
        };
        let offender = match slashing::check(context, &judge, height, evidence) {
            Ok(address) => address,
            Err(refused) => return Ok(Err(refused)),
        };
        let Some(mut record) = self.validator(&offender)? else {
            return Ok(Err(EvidenceRefused::Invalid(format!("{offender} has no validator record"))));
        };
        if record.jailed {
            return Ok(Err(EvidenceRefused::AlreadyJailed(offender)));
        }
        // Someone active at the block's start, neither this offender nor
        // one this block already jailed, must remain.
        let still_active = committee.validators().iter().any(|v| {
            let member = Address(v.public_key);
            v.stake > 0 && member != offender && !self.slashed.contains_key(&member)
        });
        if !still_active {
            return Ok(Err(EvidenceRefused::LastActive(offender)));
        }
        let burned = slashing::burned(record.stake, context.slash_fraction_bps);
        let (Some(stake), Some(total_burned)) =
            (record.stake.checked_sub(burned), self.chain.burned.checked_add(burned))
        else {
            return Ok(Err(EvidenceRefused::Invalid("burn overflows".into())));
        };
        record.stake = stake;
        record.jailed = true;
        self.chain.burned = total_burned;
        let (offence, view, phase) = evidence.slot();
        let slash = SlashRecord {
            height: offence,
            view,
            phase,
            included_at: height,
            burned,
            evidence: slashing::evidence_hash(evidence),
        };
        self.validators.insert(offender, record);
        self.slashed.insert(offender, slash);
        Ok(Ok(()))
    }
}
