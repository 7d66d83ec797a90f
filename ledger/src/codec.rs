//! The canonical binary encoding (bincode 2, standard config) and bounded
//! decoding for bytes that come from outside.
//!
//! Everything hashed or signed is hashed over `encode` output, so every node
//! computes the same bytes. Decoding always takes a size limit: a peer's bytes
//! are checked for length before bincode sees them, bincode is told the same
//! limit for its allocations, and trailing bytes are an error.

use serde::{Serialize, de::DeserializeOwned};

/// Upper bound for any single decoded object (a block at the most); a
/// backstop, each caller passes its own tighter limit.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Longer than the caller's limit; not even looked at.
    #[error("{len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Not a valid encoding.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A valid value followed by bytes that belong to nothing.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Canonical encoding of `value`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain data types into a Vec cannot fail; a failure
    // here is a programming error (e.g. a map with non-serialisable keys).
    #[allow(clippy::expect_used)]
    bincode::serde::encode_to_vec(value, CONFIG).expect("in-memory encoding is infallible")
}

/// Decodes one `T` from the front of `bytes` and ignores what follows: the
/// leading field of a larger value (a block's header) without decoding the
/// rest. `limit` bounds the input as for [`decode`].
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    decode_front(bytes, limit).map(|(value, _)| value)
}

/// Decodes exactly one `T` from `bytes`, which must be at most `limit` long.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    let (value, used) = decode_front(bytes, limit)?;
    match bytes.len().checked_sub(used) {
        Some(0) => Ok(value),
        Some(extra) => Err(DecodeError::Trailing(extra)),
        None => Err(DecodeError::Malformed("decoder overran its input".into())),
    }
}

/// One `T` from the front of `bytes` (at most `limit` long), and the bytes
/// it took.
fn decode_front<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<(T, usize), DecodeError> {
    let limit = limit.min(MAX_DECODE_BYTES);
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge { len: bytes.len(), limit });
    }
    let config = CONFIG.with_limit::<MAX_DECODE_BYTES>();
    bincode::serde::decode_from_slice(bytes, config).map_err(|e| DecodeError::Malformed(e.to_string()))
}
