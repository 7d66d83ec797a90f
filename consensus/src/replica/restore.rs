//! Building a replica: fresh, or from what the host made durable before a
//! crash. Kept apart from the steps because it decides which persisted
//! record guards which height, the crash-safety half of the protocol.

use std::collections::{BTreeMap, VecDeque};

use super::{Config, ConfigError, Replica, Round, SafetyState};
use crate::message::Decision;

impl Replica {
    /// A replica that has signed nothing yet, on top of `committed_height`
    /// (0 before the first block; heights start at 1).
    pub fn new(config: Config, committed_height: u64) -> Result<Replica, ConfigError> {
        Replica::restore(config, None, committed_height, Vec::new())
    }

    /// Rebuilds a replica after a restart from the last state the host made
    /// durable (`Action::Persist`) and the host's committed height.
    ///
    /// * persisted state for `committed_height + 1`: resume in its view; the
    ///   votes it records are re-sent as they were and never contradicted.
    /// * persisted state for a higher height (the replica had moved on before
    ///   the host's commits were durable): nothing is signed below that
    ///   height, and its record guards that height once reached.
    /// * older or no state: start fresh at `committed_height + 1`, view 0.
    ///
    /// `recent` are the host's last committed decisions (its last
    /// [`DECISIONS_KEPT`](super::DECISIONS_KEPT) certified blocks; older ones are ignored). A
    /// restarted replica knows nothing of the heights it decided before the
    /// crash, and without them it cannot answer peers still stuck there
    /// ([P9]); when those peers are too few to change views on their own,
    /// the shard would stop for good (simulator seed 719). Each must be below
    /// `committed_height + 1` and verify against the committee.
    pub fn restore(
        config: Config,
        persisted: Option<SafetyState>,
        committed_height: u64,
        recent: Vec<Decision>,
    ) -> Result<Replica, ConfigError> {
        let me = config.validate()?;
        let height = committed_height.checked_add(1).ok_or(ConfigError::HeightOverflow)?;
        let mut safety = SafetyState::new(height);
        let mut sign_from_height = height;
        let mut restored_ahead = None;
        match persisted {
            Some(state) if state.height == height => safety = state,
            Some(state) if state.height > height => {
                sign_from_height = state.height;
                restored_ahead = Some(state);
            }
            _ => {}
        }
        let mut replica = Replica {
            config,
            me,
            safety,
            sign_from_height,
            restored_ahead,
            round: Round::default(),
            buffer: BTreeMap::new(),
            buffered_per_signer: BTreeMap::new(),
            replay: VecDeque::new(),
            decisions: BTreeMap::new(),
            helped: BTreeMap::new(),
            outbox: Vec::new(),
            dirty: false,
            sync_requested_at: None,
            awaiting_commit: false,
        };
        for decision in recent {
            let height = decision.certificate.height;
            let config = &replica.config;
            if height > committed_height
                || decision.block.len() > config.max_block_bytes
                || !config.certifies(&decision)
            {
                return Err(ConfigError::BadDecision { height });
            }
            replica.keep_decision(decision);
        }
        replica.reinstate_prepared_block();
        Ok(replica)
    }

    /// Puts the prepared block persisted with the safety state back among
    /// the height's blocks, where a re-proposal ([P6]) finds it. It goes back
    /// unvalidated: proposed again, it passes the host's validation like any
    /// block. Bytes no certificate of this height claims, or over
    /// `max_block_bytes` (no peer would accept them in a proposal), are
    /// dropped; they serve only liveness.
    pub(super) fn reinstate_prepared_block(&mut self) {
        let Some(bytes) = self.safety.prepared_block.take() else {
            return;
        };
        let Some((view, block_hash)) =
            self.safety.prepared.as_ref().filter(|p| p.height == self.height()).map(|p| (p.view, p.block_hash))
        else {
            return;
        };
        if bytes.len() > self.config.max_block_bytes {
            return;
        }
        self.safety.prepared_block = Some(bytes.clone());
        self.store_block(block_hash, bytes, view);
    }
}
