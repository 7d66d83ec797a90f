//! Secret files on disk: reading one (a key, a seed, a password) into
//! memory that is wiped when dropped, writing one privately and
//! atomically, and seeds written as hex.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::{KeystoreError, invalid, io};

/// Fills `buf` from the operating system's random number generator.
pub(super) fn fill_random(buf: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::fill(buf).map_err(KeystoreError::Random)
}

/// Removes a temporary file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads a secret file (key, seed, password) of at most `max` bytes into
/// memory that is wiped when dropped.
pub fn read_secret_file(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeystoreError::Missing { path: path.to_path_buf() },
        _ => KeystoreError::Io { action: "open", path: path.to_path_buf(), source },
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(io("read", path))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(KeystoreError::TooLarge { path: path.to_path_buf(), max });
    }
    Ok(bytes)
}

/// Why text is not a seed. Never echoes the text: it is a secret.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not UTF-8.
    #[error("not text (expected 64 hex digits, a 32-byte ed25519 seed)")]
    NotText,
    /// Not 64 characters once trimmed.
    #[error("{0} characters (expected 64 hex digits, a 32-byte ed25519 seed)")]
    Length(usize),
    /// Not hexadecimal.
    #[error("not hex (expected 64 hex digits, a 32-byte ed25519 seed)")]
    NotHex,
}

/// A 32-byte seed written as 64 hex digits; surrounding whitespace and a
/// `0x` prefix are allowed.
pub fn parse_seed_hex(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeedError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SeedError::NotText)?.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() != 64 {
        return Err(SeedError::Length(text.len()));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, seed.as_mut_slice()).map_err(|_| SeedError::NotHex)?;
    Ok(seed)
}

/// Writes a secret (a key file, a libp2p identity) to `path` with mode 0600:
/// creates the parent directory with mode 0700 if missing, writes a
/// temporary file in the same directory, fsyncs it, moves it into place and
/// fsyncs the directory, so a crash leaves either the old file or the new
/// one, never a torn one. Unless `overwrite`, an existing file is an error
/// ([`KeystoreError::Exists`]), even if it appears while we write.
pub fn write_private_file(path: &Path, contents: &[u8], overwrite: bool) -> Result<(), KeystoreError> {
    let name = path.file_name().ok_or_else(|| invalid("path", format!("{} does not name a file", path.display())))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("create directory", dir))?;
    }
    if !overwrite && path.exists() {
        return Err(KeystoreError::Exists { path: path.to_path_buf() });
    }
    let mut suffix = [0u8; 8];
    fill_random(&mut suffix)?;
    let mut temp =
        TempFile { path: dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(suffix))), keep: false };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.path)
        .map_err(io("create", &temp.path))?;
    // The umask can only clear bits, but make the mode exact regardless.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("set the mode of", &temp.path))?;
    file.write_all(contents).map_err(io("write", &temp.path))?;
    file.sync_all().map_err(io("sync", &temp.path))?;
    drop(file);
    if overwrite {
        std::fs::rename(&temp.path, path).map_err(io("move a new file to", path))?;
        temp.keep = true;
    } else {
        // A hard link fails if the target exists, so no file that appeared
        // since the check above is replaced. The temporary is removed on drop.
        match std::fs::hard_link(&temp.path, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeystoreError::Exists { path: path.to_path_buf() });
            }
            // File systems without hard links: fall back to check-then-rename.
            Err(_) if !path.exists() => {
                std::fs::rename(&temp.path, path).map_err(io("move a new file to", path))?;
                temp.keep = true;
            }
            Err(_) => return Err(KeystoreError::Exists { path: path.to_path_buf() }),
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync directory", dir))?;
    Ok(())
}
