//! Stretching a password into a key file's cipher key: Argon2id, with
//! cost parameters bounded so a hostile file cannot make us allocate
//! without limit or spin for hours.

use argon2::{Algorithm, Argon2, Version};
use zeroize::Zeroizing;

use super::error::{KeystoreError, invalid};

/// The only KDF this build supports.
pub const KDF_NAME: &str = "argon2id";
/// Most Argon2 memory a key file may ask for: 4 GiB, in KiB.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Most Argon2 passes a key file may ask for.
pub const MAX_T_COST: u32 = 100;
/// Most Argon2 lanes a key file may ask for.
pub const MAX_P_COST: u32 = 16;
/// Shortest salt we accept (Argon2's minimum).
pub const MIN_SALT_LEN: usize = 8;
/// Longest salt we accept.
pub const MAX_SALT_LEN: usize = 64;
/// Derived key length.
const KEY_LEN: usize = 32;

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

/// Stretches `password` into the cipher key.
pub(super) fn derive_key(
    password: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
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
