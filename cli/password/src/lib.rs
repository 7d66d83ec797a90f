//! palisade-password: the password of a key file, for the binaries (the
//! wallet `palisade` and the validator `palisade-node`).
//!
//! A password comes from a file, else an environment variable, else a
//! prompt on the terminal (asked twice for a new key, which must not be
//! empty). Without a terminal it fails at once rather than wait for input
//! nobody can give. The order is the same for both binaries; each names its
//! own file flag and variable.
//!
//! Prompting is a binary's business, so it lives here rather than in the
//! ledger, and in a crate of its own so the node need not depend on the
//! wallet, nor the wallet on the node.

use std::io::IsTerminal;
use std::path::Path;

use palisade_ledger::keystore::{KeystoreError, Zeroizing, read_secret_file};

/// Largest password file read.
pub const MAX_PASSWORD_BYTES: u64 = 4096;

/// A password given non-interactively: the contents of `file` (one trailing
/// newline, LF or CRLF, dropped), else the environment variable `env`.
/// `None` when neither is given (the caller prompts).
pub fn password_from(file: Option<&Path>, env: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    if let Some(file) = file {
        let mut bytes = read_secret_file(file, MAX_PASSWORD_BYTES)?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        return Ok(Some(bytes));
    }
    Ok(std::env::var_os(env).map(|value| {
        use std::os::unix::ffi::OsStringExt;
        Zeroizing::new(value.into_vec())
    }))
}

/// What a password is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordUse {
    /// Encrypting a new key file: asked twice, must not be empty.
    NewKey,
    /// Opening an existing one.
    Unlock,
}

/// Why no usable password was had.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password file could not be read.
    #[error(transparent)]
    File(#[from] KeystoreError),
    /// Nothing was given and there is no terminal to ask on.
    #[error("stdin is not a terminal, so there is no one to ask")]
    NoTerminal,
    /// The terminal could not be read.
    #[error("reading the password from the terminal: {0}")]
    Terminal(std::io::Error),
    /// The two entries of a new password differ.
    #[error("the passwords differ")]
    Differ,
    /// A new key's password is empty.
    #[error("the password is empty; a key file needs a password")]
    Empty,
}

/// The password of `what` (a key's name or path, for the prompt): given
/// ([`password_from`] `file` or `env`), else asked on the terminal (twice
/// for a new key). Without a terminal it fails at once rather than wait for
/// input nobody can give.
pub fn read_password(
    file: Option<&Path>,
    env: &str,
    usage: PasswordUse,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, PasswordError> {
    let password = match password_from(file, env)? {
        Some(password) => password,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(PasswordError::NoTerminal);
            }
            let ask =
                |label: &str| rpassword::prompt_password(label).map(Zeroizing::new).map_err(PasswordError::Terminal);
            let first = match usage {
                PasswordUse::NewKey => ask(&format!("New password for {what}: "))?,
                PasswordUse::Unlock => ask(&format!("Password for {what}: "))?,
            };
            if usage == PasswordUse::NewKey && *ask("Repeat the password: ")? != *first {
                return Err(PasswordError::Differ);
            }
            Zeroizing::new(first.as_bytes().to_vec())
        }
    };
    if usage == PasswordUse::NewKey && password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_password_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\n\r\n").unwrap();
        let password = password_from(Some(&path), "PALISADE_TEST_UNSET_VARIABLE").unwrap().unwrap();
        assert_eq!(&*password, b"secret\n");
        assert!(password_from(None, "PALISADE_TEST_UNSET_VARIABLE").unwrap().is_none());
    }
}
