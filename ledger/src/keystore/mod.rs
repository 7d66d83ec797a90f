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
//!
//! - `file.rs`: the key file format and its encryption;
//! - `kdf.rs`: the password's stretching (Argon2id) and its bounds;
//! - `secret.rs`: secret files on disk (bounded reads, private atomic
//!   writes) and seeds written as hex;
//! - `error.rs`: why any of it fails.
//!
//! Asking a person for a password is the binaries' business
//! (`palisade-password`), not the ledger's.

mod error;
mod file;
mod kdf;
mod secret;

pub use zeroize::Zeroizing;

pub use error::KeystoreError;
pub use file::{CIPHER_NAME, KEY_FILE_VERSION, KeyFile, MAX_KEY_FILE_BYTES, NONCE_LEN, SALT_LEN, generate_keypair};
pub use kdf::{KDF_NAME, KdfParams, MAX_M_COST_KIB, MAX_P_COST, MAX_SALT_LEN, MAX_T_COST, MIN_SALT_LEN};
pub use secret::{SeedError, parse_seed_hex, read_secret_file, write_private_file};
