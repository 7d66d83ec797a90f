//! Reading secrets: key passwords and imported seeds.
//!
//! A password comes from `--password-file` (or `$PALISADE_PASSWORD_FILE`),
//! else `$PALISADE_PASSWORD`, else a prompt on the terminal, asked twice for
//! a new key. Without a terminal and without either source the wallet fails
//! at once rather than wait for input nobody can give. The same order as
//! `palisade-node keys`, with the wallet's own variable names.

use std::io::{IsTerminal, Read};
use std::path::Path;

use palisade_ledger::keystore::{self, KeystoreError, Zeroizing};
use palisade_password::PasswordError;
pub use palisade_password::PasswordUse;

use crate::config::{PASSWORD_ENV, PASSWORD_FILE_ENV};
use crate::error::{Result, WalletError};

/// Largest seed input read (64 hex digits, whitespace, maybe `0x`).
const MAX_SEED_BYTES: u64 = 1024;

/// The password for key `name`: from `file`, else `$PALISADE_PASSWORD`, else
/// a prompt. One trailing newline of a file is dropped.
pub fn read_password(file: Option<&Path>, usage: PasswordUse, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    palisade_password::read_password(file, PASSWORD_ENV, usage, &format!("key `{name}`")).map_err(|e| match e {
        PasswordError::File(e) => secret_file_error(e, "password file"),
        PasswordError::NoTerminal => WalletError::Password(format!(
            "cannot prompt for the password of key `{name}`: stdin is not a terminal; pass --password-file FILE \
             (or ${PASSWORD_FILE_ENV}) or set ${PASSWORD_ENV}"
        )),
        other => WalletError::Password(other.to_string()),
    })
}

/// A 32-byte seed as 64 hex digits (whitespace around and a `0x` allowed):
/// from `file`, else a hidden prompt on a terminal, else standard input.
pub fn read_seed(file: Option<&Path>) -> Result<Zeroizing<[u8; 32]>> {
    let text = match file {
        Some(file) => {
            keystore::read_secret_file(file, MAX_SEED_BYTES).map_err(|e| secret_file_error(e, "seed file"))?
        }
        None if std::io::stdin().is_terminal() => Zeroizing::new(
            rpassword::prompt_password("Seed (64 hex digits): ")
                .map_err(|e| WalletError::Password(format!("reading the seed from the terminal: {e}")))?
                .into_bytes(),
        ),
        None => {
            let mut bytes = Zeroizing::new(Vec::new());
            std::io::stdin()
                .take(MAX_SEED_BYTES.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|source| WalletError::Io { action: "read", path: "standard input".into(), source })?;
            bytes
        }
    };
    parse_seed(&text)
}

/// Parses 64 hex digits. Errors never echo the input, which is a secret.
pub fn parse_seed(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    keystore::parse_seed_hex(bytes).map_err(|e| WalletError::Usage(format!("not a seed: {e}")))
}

/// A wallet error for a secret file that could not be read.
fn secret_file_error(error: KeystoreError, what: &str) -> WalletError {
    match error {
        KeystoreError::Io { action, path, source } => WalletError::Io { action, path, source },
        KeystoreError::Missing { path } => WalletError::Usage(format!("no {what} at {}", path.display())),
        other => WalletError::Usage(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn seeds_parse_with_whitespace_and_prefix_and_errors_do_not_echo() {
        let hex = "11".repeat(32);
        assert_eq!(*parse_seed(format!("  0x{hex}\n").as_bytes()).unwrap(), [0x11; 32]);
        let secretish = "zz".repeat(32);
        let err = parse_seed(secretish.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("not hex") && !err.contains(&secretish), "{err}");
        assert!(parse_seed(b"abcd").is_err());
    }

    #[test]
    fn password_files_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\r\n").unwrap();
        assert_eq!(&*read_password(Some(&path), PasswordUse::Unlock, "k").unwrap(), b"secret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(Some(&path), PasswordUse::NewKey, "k").is_err());
    }
}
