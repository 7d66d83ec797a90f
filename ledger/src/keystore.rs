//! Encrypted key files: an ed25519 seed at rest, for the validator and the
//! wallet alike.
//!
//! A key file is JSON:
//!
//! ```json
//! {
//!   "version": 1,
//!   "address": "pal1…",
//!   "kdf": { "name": "argon2id", "m_cost_kib": 65536, "t_cost": 3, "p_cost": 1, "salt": "<hex>" },
//!   "cipher": { "name": "xchacha20poly1305", "nonce": "<hex>" },
//!   "ciphertext": "<hex>"
//! }
//! ```
//!
//! The password is stretched by Argon2id into a 256-bit key, and
//! XChaCha20-Poly1305 encrypts the 32-byte seed under it with a random
//! 192-bit nonce. The address is the AEAD's associated data, so a file whose
//! address was swapped fails to open, just as one with a wrong password does
//! (the two cannot be told apart: both break the tag). The address is in the
//! clear so `keys show` needs no password.
//!
//! A key file may come from anywhere, so reading one trusts nothing: the size
//! is bounded ([`MAX_KEY_FILE_BYTES`]), the version, KDF and cipher names are
//! checked, hex and lengths are checked, and the KDF parameters are bounded
//! ([`MAX_M_COST_KIB`], [`MAX_T_COST`], [`MAX_P_COST`]) so a hostile file
//! cannot make us allocate without limit or spin for hours.
//!
//! Files are written with mode 0600, atomically (a temporary file in the same
//! directory, fsynced, then renamed or linked into place) and never over an
//! existing file unless asked. Derived keys and seed copies are zeroized.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
pub use zeroize::Zeroizing;

use crate::{address::Address, keys::Keypair};

/// The key file format this build reads and writes.
pub const KEY_FILE_VERSION: u32 = 1;
/// The only KDF this build supports.
pub const KDF_NAME: &str = "argon2id";
/// The only cipher this build supports.
pub const CIPHER_NAME: &str = "xchacha20poly1305";
/// Largest key file we read; a real one is about 400 bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Most Argon2 memory a key file may ask for: 4 GiB, in KiB.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Most Argon2 passes a key file may ask for.
pub const MAX_T_COST: u32 = 100;
/// Most Argon2 lanes a key file may ask for.
pub const MAX_P_COST: u32 = 16;
/// Salt length of files we write.
pub const SALT_LEN: usize = 16;
/// Shortest salt we accept (Argon2's minimum).
pub const MIN_SALT_LEN: usize = 8;
/// Longest salt we accept.
pub const MAX_SALT_LEN: usize = 64;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// An ed25519 seed.
const SEED_LEN: usize = 32;
/// The Poly1305 tag.
const TAG_LEN: usize = 16;
/// Derived key length.
const KEY_LEN: usize = 32;
/// Prefixes the address in the associated data, so the tag also binds the format.
const AAD_DOMAIN: &[u8] = b"palisade key file v1 address:";

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

fn invalid(field: &'static str, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::Invalid { field, reason: reason.into() }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError {
    let path = path.to_path_buf();
    move |source| KeystoreError::Io { action, path, source }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// Argon2id with 64 MiB, 3 passes, 1 lane: about a quarter of a second,
    /// and costly to guess at scale.
    fn default() -> Self {
        KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 }
    }
}

impl KdfParams {
    /// Cheap parameters (256 KiB, 1 pass) for tests and the dev keys of the
    /// local testnet, whose seeds are public anyway. INSECURE: never use them
    /// for a key that holds anything of value.
    pub fn insecure_fast() -> Self {
        KdfParams { m_cost_kib: 256, t_cost: 1, p_cost: 1 }
    }

    /// Checks the parameters against Argon2's minimums and our maximums.
    pub fn validate(&self) -> Result<(), KeystoreError> {
        if self.p_cost == 0 || self.p_cost > MAX_P_COST {
            return Err(invalid("kdf.p_cost", format!("{} is outside 1..={MAX_P_COST}", self.p_cost)));
        }
        if self.t_cost == 0 || self.t_cost > MAX_T_COST {
            return Err(invalid("kdf.t_cost", format!("{} is outside 1..={MAX_T_COST}", self.t_cost)));
        }
        // Argon2 needs 8 KiB per lane; p_cost ≤ 16 so this cannot overflow.
        let min_m = self.p_cost.saturating_mul(8);
        if self.m_cost_kib < min_m || self.m_cost_kib > MAX_M_COST_KIB {
            return Err(invalid(
                "kdf.m_cost_kib",
                format!("{} is outside {min_m}..={MAX_M_COST_KIB} (KiB)", self.m_cost_kib),
            ));
        }
        Ok(())
    }
}

/// A key encrypted under a password; see the module doc for the format.
///
/// Every value of this type is well-formed (supported version and
/// algorithms, bounded parameters, right lengths); only the password is
/// left to check, by [`KeyFile::decrypt`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireKeyFile", into = "WireKeyFile")]
pub struct KeyFile {
    address: Address,
    kdf: KdfParams,
    salt: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    /// The encrypted seed followed by the tag.
    ciphertext: Vec<u8>,
}

/// The JSON layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireKeyFile {
    version: u64,
    address: String,
    kdf: WireKdf,
    cipher: WireCipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireKdf {
    name: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCipher {
    name: String,
    nonce: String,
}

/// Just the version, read first so a future format fails with "unsupported
/// version" rather than with whatever field it added.
#[derive(Deserialize)]
struct VersionProbe {
    version: u64,
}

fn decode_hex(field: &'static str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(text).map_err(|e| invalid(field, format!("bad hex: {e}")))
}

impl TryFrom<WireKeyFile> for KeyFile {
    type Error = KeystoreError;

    fn try_from(wire: WireKeyFile) -> Result<KeyFile, KeystoreError> {
        if wire.version != u64::from(KEY_FILE_VERSION) {
            return Err(KeystoreError::UnsupportedVersion { found: wire.version });
        }
        if wire.kdf.name != KDF_NAME {
            return Err(KeystoreError::Unsupported { field: "kdf.name", found: wire.kdf.name, supported: KDF_NAME });
        }
        if wire.cipher.name != CIPHER_NAME {
            return Err(KeystoreError::Unsupported {
                field: "cipher.name",
                found: wire.cipher.name,
                supported: CIPHER_NAME,
            });
        }
        let address = Address::parse(&wire.address).map_err(|e| invalid("address", e.to_string()))?;
        let kdf = KdfParams { m_cost_kib: wire.kdf.m_cost_kib, t_cost: wire.kdf.t_cost, p_cost: wire.kdf.p_cost };
        kdf.validate()?;
        let salt = decode_hex("kdf.salt", &wire.kdf.salt)?;
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(invalid(
                "kdf.salt",
                format!("{} bytes, expected {MIN_SALT_LEN} to {MAX_SALT_LEN}", salt.len()),
            ));
        }
        let nonce: [u8; NONCE_LEN] = decode_hex("cipher.nonce", &wire.cipher.nonce)?
            .try_into()
            .map_err(|v: Vec<u8>| invalid("cipher.nonce", format!("{} bytes, expected {NONCE_LEN}", v.len())))?;
        let ciphertext = decode_hex("ciphertext", &wire.ciphertext)?;
        let expected_len = SEED_LEN.saturating_add(TAG_LEN);
        if ciphertext.len() != expected_len {
            return Err(invalid("ciphertext", format!("{} bytes, expected {expected_len}", ciphertext.len())));
        }
        Ok(KeyFile { address, kdf, salt, nonce, ciphertext })
    }
}

impl From<KeyFile> for WireKeyFile {
    fn from(file: KeyFile) -> WireKeyFile {
        WireKeyFile {
            version: u64::from(KEY_FILE_VERSION),
            address: file.address.to_bech32(),
            kdf: WireKdf {
                name: KDF_NAME.to_string(),
                m_cost_kib: file.kdf.m_cost_kib,
                t_cost: file.kdf.t_cost,
                p_cost: file.kdf.p_cost,
                salt: hex::encode(&file.salt),
            },
            cipher: WireCipher { name: CIPHER_NAME.to_string(), nonce: hex::encode(file.nonce) },
            ciphertext: hex::encode(&file.ciphertext),
        }
    }
}

/// The associated data: binds the ciphertext to its address.
fn associated_data(address: &Address) -> Vec<u8> {
    [AAD_DOMAIN, &address.0[..]].concat()
}

/// Stretches `password` into the cipher key.
fn derive_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    params.validate()?;
    let argon_params = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(KEY_LEN))
        .map_err(|e| invalid("kdf", e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(password, salt, key.as_mut_slice())
        .map_err(|e| KeystoreError::Crypto(format!("argon2id: {e}")))?;
    Ok(key)
}

fn fill_random(buf: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::fill(buf).map_err(KeystoreError::Random)
}

/// A fresh key from the operating system's random number generator.
pub fn generate_keypair() -> Result<Keypair, KeystoreError> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    fill_random(seed.as_mut_slice())?;
    Ok(Keypair::from_seed(*seed))
}

impl KeyFile {
    /// Encrypts `keypair` under `password` with a random salt and nonce.
    pub fn encrypt(keypair: &Keypair, password: &[u8], params: KdfParams) -> Result<KeyFile, KeystoreError> {
        let mut salt = vec![0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let address = keypair.address();
        let key = derive_key(password, &salt, params)?;
        let seed = Zeroizing::new(keypair.seed());
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
        let aad = associated_data(&address);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: seed.as_slice(), aad: &aad })
            .map_err(|_| KeystoreError::Crypto("xchacha20poly1305: encryption failed".to_string()))?;
        Ok(KeyFile { address, kdf: params, salt, nonce, ciphertext })
    }

    /// Decrypts the key. A wrong password and an altered file both give
    /// [`KeystoreError::WrongPassword`].
    pub fn decrypt(&self, password: &[u8]) -> Result<Keypair, KeystoreError> {
        let key = derive_key(password, &self.salt, self.kdf)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
        let aad = associated_data(&self.address);
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(&self.nonce), Payload { msg: &self.ciphertext, aad: &aad })
                .map_err(|_| KeystoreError::WrongPassword)?,
        );
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        if plaintext.len() != SEED_LEN {
            return Err(invalid("ciphertext", format!("decrypts to {} bytes, expected {SEED_LEN}", plaintext.len())));
        }
        seed.copy_from_slice(&plaintext);
        let keypair = Keypair::from_seed(*seed);
        if keypair.address() != self.address {
            return Err(KeystoreError::AddressMismatch { expected: self.address, found: keypair.address() });
        }
        Ok(keypair)
    }

    /// The address whose key this file holds; readable without the password.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The file's Argon2id parameters.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf
    }

    /// Parses and checks key file JSON.
    pub fn from_json(bytes: &[u8]) -> Result<KeyFile, KeystoreError> {
        let probe: VersionProbe = serde_json::from_slice(bytes)?;
        if probe.version != u64::from(KEY_FILE_VERSION) {
            return Err(KeystoreError::UnsupportedVersion { found: probe.version });
        }
        let wire: WireKeyFile = serde_json::from_slice(bytes)?;
        KeyFile::try_from(wire)
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        // Strings and integers only: serialising cannot fail.
        #[allow(clippy::expect_used)]
        let mut text = serde_json::to_string_pretty(&WireKeyFile::from(self.clone())).expect("key file serialises");
        text.push('\n');
        text
    }

    /// Reads and checks the key file at `path` (at most [`MAX_KEY_FILE_BYTES`]).
    pub fn read(path: &Path) -> Result<KeyFile, KeystoreError> {
        let bytes = read_secret_file(path, MAX_KEY_FILE_BYTES)?;
        KeyFile::from_json(&bytes)
    }

    /// Writes the file with mode 0600, atomically; refuses to replace an
    /// existing file unless `overwrite`. See [`write_private_file`].
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<(), KeystoreError> {
        write_private_file(path, self.to_json().as_bytes(), overwrite)
    }
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

/// Largest password file read.
pub const MAX_PASSWORD_BYTES: u64 = 4096;

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

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &[u8] = b"correct horse battery staple";

    fn sample() -> (Keypair, KeyFile) {
        let key = Keypair::dev("validator-0-0");
        let file = KeyFile::encrypt(&key, PASSWORD, KdfParams::insecure_fast()).unwrap();
        (key, file)
    }

    fn edit_json(file: &KeyFile, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn round_trip_through_json_and_disk() {
        let (key, file) = sample();
        assert_eq!(file.address(), key.address());
        let back = KeyFile::from_json(file.to_json().as_bytes()).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.decrypt(PASSWORD).unwrap().seed(), key.seed());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.key");
        file.write(&path, false).unwrap();
        let read = KeyFile::read(&path).unwrap();
        assert_eq!(read.decrypt(PASSWORD).unwrap().address(), key.address());
        // Nothing but the key file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn default_params_round_trip() {
        let key = generate_keypair().unwrap();
        let file = KeyFile::encrypt(&key, PASSWORD, KdfParams::default()).unwrap();
        assert_eq!(file.kdf_params(), KdfParams { m_cost_kib: 65536, t_cost: 3, p_cost: 1 });
        assert_eq!(file.decrypt(PASSWORD).unwrap().address(), key.address());
    }

    #[test]
    fn json_layout_is_the_documented_one() {
        let (key, file) = sample();
        let value: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["address"], key.address().to_bech32());
        assert_eq!(value["kdf"]["name"], "argon2id");
        assert_eq!(value["kdf"]["m_cost_kib"], 256);
        assert_eq!(value["kdf"]["salt"].as_str().unwrap().len(), SALT_LEN * 2);
        assert_eq!(value["cipher"]["name"], "xchacha20poly1305");
        assert_eq!(value["cipher"]["nonce"].as_str().unwrap().len(), NONCE_LEN * 2);
        assert_eq!(value["ciphertext"].as_str().unwrap().len(), (SEED_LEN + TAG_LEN) * 2);
        // serde goes through the same checks.
        let via_serde: KeyFile = serde_json::from_value(value).unwrap();
        assert_eq!(via_serde, file);
    }

    #[test]
    fn fresh_salt_and_nonce_each_time() {
        let key = Keypair::dev("alice");
        let a = KeyFile::encrypt(&key, PASSWORD, KdfParams::insecure_fast()).unwrap();
        let b = KeyFile::encrypt(&key, PASSWORD, KdfParams::insecure_fast()).unwrap();
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn wrong_password_is_refused() {
        let (_, file) = sample();
        let err = file.decrypt(b"correct horse battery stapler").unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassword), "{err}");
        assert_eq!(err.to_string(), "wrong password (or the file was altered)");
        assert!(matches!(file.decrypt(b""), Err(KeystoreError::WrongPassword)));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let (_, file) = sample();
        let mut tampered = file.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(tampered.decrypt(PASSWORD), Err(KeystoreError::WrongPassword)));
        let mut tampered = file.clone();
        tampered.nonce[3] ^= 0x80;
        assert!(matches!(tampered.decrypt(PASSWORD), Err(KeystoreError::WrongPassword)));
        let mut tampered = file;
        tampered.kdf.t_cost = 2;
        assert!(matches!(tampered.decrypt(PASSWORD), Err(KeystoreError::WrongPassword)));
    }

    #[test]
    fn swapped_address_is_refused() {
        let (_, file) = sample();
        let other = Keypair::dev("mallory").address().to_bech32();
        let bytes = edit_json(&file, |v| v["address"] = other.clone().into());
        let swapped = KeyFile::from_json(&bytes).unwrap();
        assert_eq!(swapped.address().to_bech32(), other);
        assert!(matches!(swapped.decrypt(PASSWORD), Err(KeystoreError::WrongPassword)));
    }

    #[test]
    fn absurd_kdf_params_are_refused_before_any_work() {
        let (_, file) = sample();
        for (field, value, name) in [
            ("m_cost_kib", u64::from(u32::MAX), "kdf.m_cost_kib"),
            ("m_cost_kib", 4, "kdf.m_cost_kib"),
            ("t_cost", 1_000_000, "kdf.t_cost"),
            ("t_cost", 0, "kdf.t_cost"),
            ("p_cost", 1000, "kdf.p_cost"),
            ("p_cost", 0, "kdf.p_cost"),
        ] {
            let bytes = edit_json(&file, |v| v["kdf"][field] = value.into());
            match KeyFile::from_json(&bytes) {
                Err(KeystoreError::Invalid { field: got, .. }) => assert_eq!(got, name),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        let params = KdfParams { m_cost_kib: MAX_M_COST_KIB + 1, ..KdfParams::default() };
        assert!(KeyFile::encrypt(&Keypair::dev("alice"), PASSWORD, params).is_err());
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let (_, file) = sample();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a key file"),
            (edit_json(&file, |v| v["version"] = 2.into()), "version 2 is not supported"),
            (
                edit_json(&file, |v| {
                    v["version"] = 2.into();
                    v["extra"] = true.into();
                }),
                "version 2 is not supported",
            ),
            (edit_json(&file, |v| v["kdf"]["name"] = "scrypt".into()), "kdf.name \"scrypt\" is not supported"),
            (edit_json(&file, |v| v["cipher"]["name"] = "aes".into()), "cipher.name \"aes\" is not supported"),
            (edit_json(&file, |v| v["kdf"]["salt"] = "zz".into()), "kdf.salt: bad hex"),
            (edit_json(&file, |v| v["kdf"]["salt"] = "00".into()), "kdf.salt: 1 bytes"),
            (edit_json(&file, |v| v["cipher"]["nonce"] = "0011".into()), "cipher.nonce: 2 bytes, expected 24"),
            (edit_json(&file, |v| v["ciphertext"] = "xyz".into()), "ciphertext: bad hex"),
            (edit_json(&file, |v| v["ciphertext"] = "00".into()), "ciphertext: 1 bytes, expected 48"),
            (edit_json(&file, |v| v["address"] = "pal1nope".into()), "address:"),
            (edit_json(&file, |v| v["surprise"] = 1.into()), "unknown field `surprise`"),
        ];
        for (bytes, expected) in cases {
            let err = KeyFile::from_json(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn read_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(matches!(KeyFile::read(&missing), Err(KeystoreError::Missing { .. })));
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b' '; 100_000]).unwrap();
        assert!(matches!(KeyFile::read(&big), Err(KeystoreError::TooLarge { .. })));
        let text = dir.path().join("text.key");
        std::fs::write(&text, "hello").unwrap();
        assert!(matches!(KeyFile::read(&text), Err(KeystoreError::NotJson(_))));
    }

    #[test]
    fn written_with_mode_0600_in_a_0700_directory() {
        let (_, file) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("deeper").join("validator.key");
        file.write(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let (_, file) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.key");
        file.write(&path, false).unwrap();
        let other = KeyFile::encrypt(&Keypair::dev("bob"), PASSWORD, KdfParams::insecure_fast()).unwrap();
        let err = other.write(&path, false).unwrap_err();
        assert!(matches!(err, KeystoreError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(KeyFile::read(&path).unwrap(), file);
        other.write(&path, true).unwrap();
        assert_eq!(KeyFile::read(&path).unwrap(), other);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary files are left behind, either way.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
