//! Amounts of PAL in integer base units (1 PAL = 10^9 units), with checked
//! arithmetic and the human decimal form the wallet shows and parses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Base units in one PAL.
pub const UNITS_PER_PAL: u64 = 1_000_000_000;
const DECIMALS: usize = 9;

/// A non-negative amount of base units. Arithmetic is checked: it returns
/// `None` instead of wrapping, and callers turn that into a typed error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(pub u64);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// Whole PAL; `None` if it does not fit.
    pub fn from_pal(pal: u64) -> Option<Amount> {
        pal.checked_mul(UNITS_PER_PAL).map(Amount)
    }

    /// The amount in base units.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses a human amount in PAL: `"1"`, `"1.5"`, `"0.000000001"`.
    /// At most 9 decimals; no sign, exponent or separators.
    pub fn parse_pal(text: &str) -> Result<Amount, AmountParseError> {
        let text = text.trim();
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(AmountParseError::Empty);
        }
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) || (text.contains('.') && frac.is_empty()) {
            return Err(AmountParseError::NotANumber(text.to_string()));
        }
        if frac.len() > DECIMALS {
            return Err(AmountParseError::TooPrecise(text.to_string()));
        }
        let whole_units = if whole.is_empty() {
            0
        } else {
            whole.parse::<u64>().map_err(|_| AmountParseError::TooLarge(text.to_string()))?
        };
        let mut frac_padded = frac.to_string();
        while frac_padded.len() < DECIMALS {
            frac_padded.push('0');
        }
        let frac_units: u64 = frac_padded.parse().map_err(|_| AmountParseError::NotANumber(text.to_string()))?;
        whole_units
            .checked_mul(UNITS_PER_PAL)
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or_else(|| AmountParseError::TooLarge(text.to_string()))
    }
}

/// Shows PAL with up to 9 decimals and no trailing zeros: `1.5`, `0.000000001`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / UNITS_PER_PAL;
        let frac = self.0 % UNITS_PER_PAL;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:09}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// A human amount that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    /// Nothing given.
    #[error("empty amount")]
    Empty,
    /// Not digits with at most one decimal point.
    #[error("`{0}` is not an amount: use digits and at most one '.', e.g. 1.5")]
    NotANumber(String),
    /// More decimals than a base unit resolves.
    #[error("`{0}` has more than 9 decimals (1 unit = 0.000000001 PAL)")]
    TooPrecise(String),
    /// Larger than the largest representable amount.
    #[error("`{0}` is larger than the largest amount (18446744073.709551615 PAL)")]
    TooLarge(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_human_amounts() {
        for (text, units, shown) in [
            ("1", 1_000_000_000, "1"),
            ("1.5", 1_500_000_000, "1.5"),
            ("0.000000001", 1, "0.000000001"),
            (".25", 250_000_000, "0.25"),
            ("18446744073.709551615", u64::MAX, "18446744073.709551615"),
        ] {
            let amount = Amount::parse_pal(text).unwrap();
            assert_eq!(amount.units(), units, "{text}");
            assert_eq!(amount.to_string(), shown);
        }
    }

    #[test]
    fn rejects_bad_amounts() {
        for text in ["", "1.", "-1", "1e9", "1,5", "0.0000000001", "18446744073.709551616", "1.2.3"] {
            assert!(Amount::parse_pal(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(0).checked_sub(Amount(1)), None);
        assert_eq!(Amount(5).checked_sub(Amount(2)), Some(Amount(3)));
    }
}
