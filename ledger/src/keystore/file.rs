//! The key file: its JSON layout, its checks on reading, and the
//! encryption of the seed it holds (see the module doc of
//! [`crate::keystore`] for the format).

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{address::Address, keys::Keypair};

use super::{
    error::{KeystoreError, invalid},
    kdf::{KDF_NAME, KdfParams, MAX_SALT_LEN, MIN_SALT_LEN, derive_key},
    secret::{fill_random, read_secret_file, write_private_file},
};

/// The key file format this build reads and writes.
pub const KEY_FILE_VERSION: u32 = 1;
/// The only cipher this build supports.
pub const CIPHER_NAME: &str = "xchacha20poly1305";
/// Largest key file we read; a real one is about 400 bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Salt length of files we write.
pub const SALT_LEN: usize = 16;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// An ed25519 seed.
const SEED_LEN: usize = 32;
/// The Poly1305 tag.
const TAG_LEN: usize = 16;
/// Prefixes the address in the associated data, so the tag also binds the format.
const AAD_DOMAIN: &[u8] = b"palisade key file v1 address:";

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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::keystore::MAX_M_COST_KIB;

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
