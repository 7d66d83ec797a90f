//! The durable record of a [`SafetyState`]: what the host writes for each
//! `Action::Persist` and hands back to `Replica::restore` after a crash.
//!
//! Losing the record would let a restarted validator sign a second vote in
//! a slot (equivocate), so a node must read back every record any earlier
//! version of it wrote. The record is versioned: `RECORD_MARK`, a version
//! byte, then the state in the canonical encoding (bincode 2, standard
//! config). Records written before the prepared block joined the state are
//! the bare encoding of the older layout; they cannot start with
//! `RECORD_MARK` (bincode's varint for the leading `height` never uses
//! that byte), so they are told apart without ambiguity and load with no
//! prepared block.
//!
//! The record lies on the validator's own disk, but is still bounded like
//! peer bytes: a corrupt length prefix must not allocate gigabytes, and
//! the block is no larger than the replica accepts in a proposal.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SafetyState;
use crate::certificate::PreparedCertificate;
use crate::message::{BlockHash, decode_exact};

/// First byte of a versioned record; reserved in bincode's varint, so no
/// unversioned record starts with it.
const RECORD_MARK: u8 = 0xFF;
/// The layout written by [`SafetyState::encode`].
const RECORD_VERSION: u8 = 1;
/// Room for everything in a record but the block: position, votes and a
/// prepared certificate (69 bytes per signer, so about 900 signers).
pub const RECORD_OVERHEAD_BYTES: usize = 64 * 1024;

/// Why a stored record cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Longer than any record for this block bound; not even looked at.
    #[error("record of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the record.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Written by a later version of the node.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// Not a valid encoding of either layout.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The prepared block exceeds `max_block_bytes`.
    #[error("prepared block of {len} bytes exceeds {max}")]
    BlockTooLarge {
        /// The block's size.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// A prepared block with no prepared certificate to name it.
    #[error("prepared block without a prepared certificate")]
    BlockWithoutCertificate,
}

/// The layout of records written before the prepared block was kept: the
/// bare encoding of the `SafetyState` of that time. Field order is the
/// encoding; never change it.
#[derive(Serialize, Deserialize)]
struct UnversionedState {
    height: u64,
    view: u64,
    proposed: Option<BlockHash>,
    prepare_vote: Option<BlockHash>,
    commit_vote: Option<BlockHash>,
    prepared: Option<PreparedCertificate>,
}

impl From<UnversionedState> for SafetyState {
    fn from(old: UnversionedState) -> SafetyState {
        let UnversionedState { height, view, proposed, prepare_vote, commit_vote, prepared } = old;
        SafetyState { height, view, proposed, prepare_vote, commit_vote, prepared, prepared_block: None }
    }
}

impl SafetyState {
    /// The largest record [`SafetyState::decode`] reads for blocks of at
    /// most `max_block_bytes`.
    pub fn max_record_bytes(max_block_bytes: usize) -> usize {
        max_block_bytes.saturating_add(RECORD_OVERHEAD_BYTES)
    }

    /// The durable record of this state (current layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut record = vec![RECORD_MARK, RECORD_VERSION];
        bincode::serde::encode_into_std_write(self, &mut record, bincode::config::standard())
            .expect("encoding plain data into a Vec cannot fail");
        record
    }

    /// Reads back a record written by [`SafetyState::encode`], or by a node
    /// that predates the versioned layout (it loads with no prepared block),
    /// for a replica whose blocks are at most `max_block_bytes`.
    pub fn decode(record: &[u8], max_block_bytes: usize) -> Result<SafetyState, RecordError> {
        let limit = SafetyState::max_record_bytes(max_block_bytes);
        if record.len() > limit {
            return Err(RecordError::TooLarge { len: record.len(), limit });
        }
        let state = match record {
            [RECORD_MARK, RECORD_VERSION, body @ ..] => {
                decode_exact::<SafetyState>(body).map_err(RecordError::Malformed)?
            }
            [RECORD_MARK, version, ..] => return Err(RecordError::UnknownVersion(*version)),
            unversioned => decode_exact::<UnversionedState>(unversioned).map_err(RecordError::Malformed)?.into(),
        };
        if let Some(block) = &state.prepared_block {
            if block.len() > max_block_bytes {
                return Err(RecordError::BlockTooLarge { len: block.len(), max: max_block_bytes });
            }
            if state.prepared.is_none() {
                return Err(RecordError::BlockWithoutCertificate);
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

    use super::*;
    use crate::certificate::VoteSignature;
    use crate::committee::ValidatorIndex;
    use crate::crypto::Signature;

    const MAX_BLOCK_BYTES: usize = 1_000;

    /// A record written by the node before this layout existed (the bare
    /// encoding of the old `SafetyState`), for `old_state()`.
    const UNVERSIONED_RECORD_HEX: &str = concat!(
        "070301a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a101a1a1a1a1a1a1a1a1a1a1a1a1",
        "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a100010702b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
        "b2b2b2b2b2b2b2b202001111111111111111111111111111111111111111111111111111111111111111111111111111",
        "1111111111111111111111111111111111111111111111111111fb2c0122222222222222222222222222222222222222",
        "222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222",
    );

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn old_state() -> SafetyState {
        let mut state = SafetyState::new(7);
        state.view = 3;
        state.proposed = Some([0xA1; 32]);
        state.prepare_vote = Some([0xA1; 32]);
        state.prepared = Some(PreparedCertificate {
            height: 7,
            view: 2,
            block_hash: [0xB2; 32],
            signatures: vec![
                VoteSignature { signer: ValidatorIndex(0), signature: Signature([0x11; 64]) },
                VoteSignature { signer: ValidatorIndex(300), signature: Signature([0x22; 64]) },
            ],
        });
        state
    }

    #[test]
    fn a_record_written_before_the_versioned_layout_still_loads() {
        let record = hex(UNVERSIONED_RECORD_HEX);
        assert_eq!(SafetyState::decode(&record, MAX_BLOCK_BYTES), Ok(old_state()));
    }

    #[test]
    fn the_old_layout_is_what_the_fixture_holds() {
        let unversioned = UnversionedState::from_state(old_state());
        let encoded = bincode::serde::encode_to_vec(&unversioned, bincode::config::standard()).unwrap();
        assert_eq!(encoded, hex(UNVERSIONED_RECORD_HEX));
    }

    #[test]
    fn no_unversioned_record_starts_with_the_mark() {
        for height in [0, 1, 250, 251, 65_535, 65_536, u64::from(u32::MAX) + 1, u64::MAX] {
            let record = bincode::serde::encode_to_vec(
                UnversionedState::from_state(SafetyState::new(height)),
                bincode::config::standard(),
            )
            .unwrap();
            assert_ne!(record[0], RECORD_MARK, "height {height}");
        }
    }

    #[test]
    fn a_record_round_trips_with_its_prepared_block() {
        let mut state = old_state();
        state.prepared_block = Some(vec![7; MAX_BLOCK_BYTES]);
        let record = state.encode();
        assert_eq!(record[..2], [RECORD_MARK, RECORD_VERSION]);
        assert!(record.len() <= SafetyState::max_record_bytes(MAX_BLOCK_BYTES));
        assert_eq!(SafetyState::decode(&record, MAX_BLOCK_BYTES), Ok(state));
        assert_eq!(SafetyState::decode(&SafetyState::new(1).encode(), MAX_BLOCK_BYTES), Ok(SafetyState::new(1)));
    }

    #[test]
    fn decoding_refuses_what_breaks_the_bounds() {
        let mut state = old_state();
        state.prepared_block = Some(vec![7; MAX_BLOCK_BYTES + 1]);
        assert_eq!(
            SafetyState::decode(&state.encode(), MAX_BLOCK_BYTES),
            Err(RecordError::BlockTooLarge { len: MAX_BLOCK_BYTES + 1, max: MAX_BLOCK_BYTES })
        );
        let huge = vec![0; SafetyState::max_record_bytes(MAX_BLOCK_BYTES) + 1];
        assert!(matches!(SafetyState::decode(&huge, MAX_BLOCK_BYTES), Err(RecordError::TooLarge { .. })));

        let mut orphan = SafetyState::new(1);
        orphan.prepared_block = Some(vec![1]);
        assert_eq!(SafetyState::decode(&orphan.encode(), MAX_BLOCK_BYTES), Err(RecordError::BlockWithoutCertificate));

        let mut later = SafetyState::new(1).encode();
        later[1] = RECORD_VERSION + 1;
        assert_eq!(SafetyState::decode(&later, MAX_BLOCK_BYTES), Err(RecordError::UnknownVersion(RECORD_VERSION + 1)));

        let mut trailing = SafetyState::new(1).encode();
        trailing.push(0);
        assert!(matches!(SafetyState::decode(&trailing, MAX_BLOCK_BYTES), Err(RecordError::Malformed(_))));
        // A length prefix claiming far more than the record holds.
        let mut lying = vec![RECORD_MARK, RECORD_VERSION];
        lying.extend_from_slice(&[1, 0, 0, 0, 0, 0, 1, 253, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(SafetyState::decode(&lying, MAX_BLOCK_BYTES), Err(RecordError::Malformed(_))));
    }

    impl UnversionedState {
        fn from_state(state: SafetyState) -> UnversionedState {
            let SafetyState { height, view, proposed, prepare_vote, commit_vote, prepared, .. } = state;
            UnversionedState { height, view, proposed, prepare_vote, commit_vote, prepared }
        }
    }
}
