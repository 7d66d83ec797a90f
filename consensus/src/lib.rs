//! palisade-consensus: the PBFT-style replica for one shard's committee.
//!
//! Not built yet (issue 3). This crate is pure: it depends on no runtime, no
//! network and no storage, so a seeded simulator can drive it deterministically.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
