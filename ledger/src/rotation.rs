//! Who leads a shard's heights: the committee's round-robin rotation, less
//! the members benched for failing their recent turns.
//!
//! PBFT hands a height to the leader of view 1 when view 0's leader fails
//! to get its block certified (crashed, cut off, or proposing blocks nobody
//! accepts, such as a clock far ahead). Plain rotation gives that member
//! the next height of its turn anyway, so a sick validator costs its shard
//! a view timeout every `n` heights, for as long as it stays sick.
//!
//! The chain shows who failed. A committed block at height `h` was built
//! by its `proposer`, the leader of some view `v` of `h`; the leaders of
//! views `0..v` before it in the rotation of `h` did not get a block
//! certified. Executing the block gives each of them a *strike* and benches
//! it: out of the rotation for [`BENCH_HEIGHTS`] heights, doubled for each
//! further strike up to [`MAX_BENCH_DOUBLINGS`] times. A member that leads
//! its height's view 0 to a committed block is cleared of its strikes. The
//! records live in the shard's state ([`crate::state::StateKey::Bench`]),
//! so every replica derives the same rotation from the same chain, and the
//! state root commits to it.
//!
//! A benched member keeps its stake and its vote: benching changes who
//! proposes, never who certifies, and it is not part of the committee's hash
//! (certificates verify the same with or without it). At most
//! [`max_benched`] members are out at once, those benched longest first,
//! so the rotation always keeps most of the committee even when a
//! partition made every leader of a height fail.
//!
//! Blame is only as good as a block's `proposer` field, which the ledger
//! checks to be a member of the rotation, not the leader of the view that
//! carried the block. A Byzantine leader can therefore bench up to
//! [`max_benched`] honest members for a while (and strikes itself doing so
//! when it names a member behind it). That costs fees and turns, never
//! safety or liveness.

use palisade_consensus::{Committee, ValidatorIndex};
use serde::{Deserialize, Serialize};

use crate::{
    address::Address,
    committee::member_address,
    state::{State, StateError, StateExt},
};

/// Heights a member stays benched after its first strike.
pub const BENCH_HEIGHTS: u64 = 32;
/// Each further strike doubles the bench, at most this many times
/// (32 → 1,024 heights).
pub const MAX_BENCH_DOUBLINGS: u32 = 5;

/// A member's failed turns as leader: the value of
/// [`crate::state::StateKey::Bench`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Turns failed since its last success as view 0's leader.
    pub strikes: u32,
    /// It leads again from this height on.
    pub until_height: u64,
}

impl BenchRecord {
    /// The record after one more failed turn, at the block of `height`:
    /// benched from the next height for `BENCH_HEIGHTS << (strikes - 1)`.
    pub fn strike(self, height: u64) -> BenchRecord {
        let strikes = self.strikes.saturating_add(1);
        let doublings = strikes.saturating_sub(1).min(MAX_BENCH_DOUBLINGS);
        let heights = BENCH_HEIGHTS.checked_shl(doublings).unwrap_or(u64::MAX);
        BenchRecord { strikes, until_height: height.saturating_add(1).saturating_add(heights) }
    }

    /// Whether the member sits out the block at `height`.
    pub fn benches(&self, height: u64) -> bool {
        height < self.until_height
    }
}

/// Most members benched at once among `active` members: a third of them
/// (rounded down, less the leader that must remain), at least one when two
/// or more are active.
pub fn max_benched(active: usize) -> usize {
    if active < 2 { 0 } else { (active.saturating_sub(1) / 3).max(1) }
}

/// The members of `committee` (whose stakes are current) benched for the
/// block at `height`, by `state`'s records: those benched longest first
/// (then by index), at most [`max_benched`].
pub fn benched_at<S: State + ?Sized>(
    state: &S,
    committee: &Committee,
    height: u64,
) -> Result<Vec<ValidatorIndex>, StateError> {
    let active = committee.active();
    let mut benched = Vec::new();
    for &index in &active {
        let Some(address) = member_address(committee, index) else { continue };
        if let Some(record) = state.bench(&address)?
            && record.benches(height)
        {
            benched.push((record.until_height, index));
        }
    }
    benched.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    benched.truncate(max_benched(active.len()));
    Ok(benched.into_iter().map(|(_, index)| index).collect())
}

/// The leaders whose views of `height` failed before `proposer`'s block,
/// under `committee` (the rotation of `height`): leaders of views `0, 1,
/// ..` up to the first view `proposer` leads. Empty when `proposer` leads
/// view 0, or is not in the rotation (such a block is invalid).
pub fn failed_leaders(committee: &Committee, height: u64, proposer: &Address) -> Vec<ValidatorIndex> {
    let Some(index) = committee.index_of(&proposer.0) else { return Vec::new() };
    let turns = u64::try_from(committee.rotation().len()).unwrap_or(0);
    let mut failed = Vec::new();
    for view in 0..turns {
        let leader = committee.leader(height, view);
        if leader == index {
            return failed;
        }
        failed.push(leader);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
    use super::*;
    use palisade_consensus::Validator;

    fn committee(n: u8) -> Committee {
        Committee::new(
            (0..n)
                .map(|i| Validator {
                    public_key: ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]).verifying_key().to_bytes(),
                    stake: 1,
                })
                .collect(),
        )
        .unwrap()
    }

    fn address(c: &Committee, i: u32) -> Address {
        member_address(c, ValidatorIndex(i)).unwrap()
    }

    #[test]
    fn strikes_double_the_bench_up_to_a_cap() {
        let first = BenchRecord::default().strike(100);
        assert_eq!(first, BenchRecord { strikes: 1, until_height: 101 + BENCH_HEIGHTS });
        assert!(first.benches(101) && first.benches(100 + BENCH_HEIGHTS) && !first.benches(101 + BENCH_HEIGHTS));
        let second = first.strike(200);
        assert_eq!(second.until_height, 201 + 2 * BENCH_HEIGHTS);
        let mut record = second;
        for _ in 0..20 {
            record = record.strike(1_000);
        }
        assert_eq!(record.until_height, 1_001 + (BENCH_HEIGHTS << MAX_BENCH_DOUBLINGS));
        let worst = BenchRecord { strikes: u32::MAX, until_height: 0 }.strike(u64::MAX);
        assert_eq!(worst.until_height, u64::MAX, "saturates, never wraps");
    }

    #[test]
    fn the_leaders_before_the_proposer_failed() {
        let c = committee(4);
        // Height 5: view 0 is v1, view 1 v2, view 2 v3, view 3 v0.
        assert!(failed_leaders(&c, 5, &address(&c, 1)).is_empty());
        assert_eq!(failed_leaders(&c, 5, &address(&c, 2)), vec![ValidatorIndex(1)]);
        assert_eq!(
            failed_leaders(&c, 5, &address(&c, 0)),
            vec![ValidatorIndex(1), ValidatorIndex(2), ValidatorIndex(3)]
        );
        // Under the rotation v0, v1, v3: height 5's views go v3, v0, v1.
        let benched = c.benching(&[ValidatorIndex(2)]).unwrap();
        assert_eq!(benched.leader(5, 0), ValidatorIndex(3));
        assert_eq!(failed_leaders(&benched, 5, &address(&c, 1)), vec![ValidatorIndex(3), ValidatorIndex(0)]);
        assert!(failed_leaders(&benched, 5, &address(&c, 2)).is_empty(), "not in the rotation: no blame");
        assert!(failed_leaders(&c, 5, &Address([9; 32])).is_empty(), "not a member: no blame");
    }

    #[test]
    fn a_third_at_most_is_benched() {
        assert_eq!((1..=10).map(max_benched).collect::<Vec<_>>(), vec![0, 1, 1, 1, 1, 1, 2, 2, 2, 3]);
    }
}
