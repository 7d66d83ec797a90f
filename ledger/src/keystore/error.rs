//! Why a key file or another secret file cannot be read, written or opened.

use std::path::{Path, PathBuf};

use crate::address::Address;

use super::file::KEY_FILE_VERSION;

/// Why a key file cannot be read, written, or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No file at the path.
    #[error("no file at {}", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// Writing would replace an existing file, and that was not asked for.
    #[error("{} already exists; refusing to overwrite it unless asked to", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than its kind of file may be.
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What we were doing ("open", "write", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not JSON, or not a key file's JSON.
    #[error("not a key file: {0}")]
    NotJson(#[from] serde_json::Error),
    /// A version this build cannot read.
    #[error("key file version {found} is not supported (this build reads version {KEY_FILE_VERSION})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
    },
    /// An algorithm this build does not implement.
    #[error("{field} \"{found}\" is not supported (this build supports \"{supported}\")")]
    Unsupported {
        /// `kdf.name` or `cipher.name`.
        field: &'static str,
        /// What the file names.
        found: String,
        /// What we support.
        supported: &'static str,
    },
    /// A field is malformed or out of bounds.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, like `kdf.salt`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The AEAD tag did not verify.
    #[error("wrong password (or the file was altered)")]
    WrongPassword,
    /// The seed decrypted but belongs to another address.
    #[error("the key decrypts to {found}, but the file says {expected}: the file was altered")]
    AddressMismatch {
        /// The address in the file.
        expected: Address,
        /// The address of the decrypted key.
        found: Address,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Argon2 or the cipher refused its input.
    #[error("{0}")]
    Crypto(String),
}

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::Invalid { field, reason: reason.into() }
}

pub(super) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError {
    let path = path.to_path_buf();
    move |source| KeystoreError::Io { action, path, source }
}
