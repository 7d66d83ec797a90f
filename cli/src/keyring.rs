//! The wallet's keys: one encrypted key file per name in `<home>/keys/`,
//! in the ledger's key file format (Argon2id + XChaCha20-Poly1305, see
//! `palisade_ledger::keystore`), mode 0600 in a directory of mode 0700.
//!
//! The address is stored in the clear, so listing and showing keys, and
//! reading balances, need no password; signing and exporting do.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use palisade_ledger::Keypair;
use palisade_ledger::keystore::{KdfParams, KeyFile, KeystoreError};

use crate::config::KEYS_DIR;
use crate::error::{Result, WalletError};

/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;
/// Key file extension.
const EXTENSION: &str = "json";

/// The key directory of a wallet home.
#[derive(Clone, Debug)]
pub struct Keyring {
    home: PathBuf,
    dir: PathBuf,
}

/// Checks a key name: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with a
/// dot (so it is one plain file name, never a path).
pub fn check_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(WalletError::Usage(format!(
            "`{name}` is not a usable key name: use 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.' \
             (not starting with '.')"
        )));
    }
    Ok(())
}

impl Keyring {
    /// The keys of the wallet at `home`.
    pub fn new(home: &Path) -> Keyring {
        Keyring { home: home.to_path_buf(), dir: home.join(KEYS_DIR) }
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of key `name`.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.{EXTENSION}")))
    }

    /// Every key name, sorted. No key directory means no keys.
    pub fn names(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WalletError::Io { action: "list", path: self.dir.clone(), source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WalletError::Io { action: "list", path: self.dir.clone(), source })?;
            let path = entry.path();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if path.extension().and_then(|e| e.to_str()) == Some(EXTENSION) && check_name(name).is_ok() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads key `name` (no password needed: for its address).
    pub fn read(&self, name: &str) -> Result<KeyFile> {
        let path = self.path(name)?;
        KeyFile::read(&path).map_err(|source| match source {
            KeystoreError::Missing { .. } => WalletError::NoSuchKey { name: name.to_string(), dir: self.dir.clone() },
            source => WalletError::key(name, path, source),
        })
    }

    /// Decrypts `file`, key `name` as [`Keyring::read`] gave it, with `password`.
    pub fn unlock(&self, name: &str, file: &KeyFile, password: &[u8]) -> Result<Keypair> {
        let path = self.path(name)?;
        file.decrypt(password).map_err(|source| WalletError::key(name, path, source))
    }

    /// Fails if key `name` exists and `force` is not set; checked before
    /// asking for a password.
    pub fn check_free(&self, name: &str, force: bool) -> Result<PathBuf> {
        let path = self.path(name)?;
        if !force && path.exists() {
            return Err(WalletError::KeyExists { name: name.to_string(), path });
        }
        Ok(path)
    }

    /// Encrypts `keypair` under `password` and writes it as key `name`
    /// (replacing an existing one only if `force`). Returns the file.
    pub fn store(
        &self,
        name: &str,
        keypair: &Keypair,
        password: &[u8],
        params: KdfParams,
        force: bool,
    ) -> Result<PathBuf> {
        let path = self.check_free(name, force)?;
        self.create_dirs()?;
        let key_error = |source| WalletError::key(name, path.clone(), source);
        let file = KeyFile::encrypt(keypair, password, params).map_err(key_error)?;
        file.write(&path, force).map_err(|source| match source {
            KeystoreError::Exists { path } => WalletError::KeyExists { name: name.to_string(), path },
            source => key_error(source),
        })?;
        Ok(path)
    }

    /// Creates the home and the key directory with mode 0700 if missing, and
    /// tightens an existing key directory to 0700.
    fn create_dirs(&self) -> Result<()> {
        for dir in [&self.home, &self.dir] {
            if !dir.exists() {
                DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| WalletError::Io {
                    action: "create directory",
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| WalletError::Io {
            action: "set the mode of",
            path: self.dir.clone(),
            source,
        })
    }

    /// The key to use: `explicit`, else `default`, else the only key.
    pub fn select(&self, explicit: Option<&str>, default: Option<&str>) -> Result<String> {
        if let Some(name) = explicit.or(default) {
            check_name(name)?;
            return Ok(name.to_string());
        }
        let names = self.names()?;
        match names.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(WalletError::NoKeySelected(format!(
                "there are no keys in {}; create one with `palisade keys create NAME`",
                self.dir.display()
            ))),
            many => Err(WalletError::NoKeySelected(format!("there are {} keys: {}", many.len(), many.join(", ")))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for good in ["alice", "a.b-c_d", "K2"] {
            check_name(good).unwrap();
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn store_list_unlock_and_refuse_to_overwrite() {
        let home = tempfile::tempdir().unwrap();
        let ring = Keyring::new(&home.path().join("wallet"));
        assert!(ring.names().unwrap().is_empty());
        assert!(matches!(ring.select(None, None), Err(WalletError::NoKeySelected(_))));
        let key = Keypair::dev("alice");
        let path = ring.store("alice", &key, b"pw", KdfParams::insecure_fast(), false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(ring.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(ring.names().unwrap(), vec!["alice"]);
        assert_eq!(ring.select(None, None).unwrap(), "alice");
        let file = ring.read("alice").unwrap();
        assert_eq!(ring.unlock("alice", &file, b"pw").unwrap().address(), key.address());
        assert!(matches!(
            ring.unlock("alice", &file, b"nope"),
            Err(WalletError::Key { source, .. }) if matches!(*source, KeystoreError::WrongPassword)
        ));
        assert!(matches!(
            ring.store("alice", &key, b"pw", KdfParams::insecure_fast(), false),
            Err(WalletError::KeyExists { .. })
        ));
        ring.store("alice", &Keypair::dev("bob"), b"pw", KdfParams::insecure_fast(), true).unwrap();
        assert_eq!(ring.read("alice").unwrap().address(), Keypair::dev("bob").address());
        assert!(matches!(ring.read("carol"), Err(WalletError::NoSuchKey { .. })));
    }
}
