//! Exact US dollar amounts for the ledger and its rollups.

use std::fmt;
use std::ops::{Add, AddAssign};

/// An amount of US dollars in units of 10^-10 USD: exact to add, and stored as a DynamoDB number
/// without binary-float noise, so rollups add up to exactly the sum of the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i64);

impl Usd {
    /// Units per dollar.
    pub const SCALE: i64 = 10_000_000_000;
    pub const ZERO: Usd = Usd(0);

    /// Rounds a dollar amount to the nearest unit.
    pub fn from_f64(usd: f64) -> Usd {
        Usd((usd * Self::SCALE as f64).round() as i64)
    }

    /// From a count of 10^-10 USD units.
    pub fn from_units(units: i64) -> Usd {
        Usd(units)
    }

    /// The count of 10^-10 USD units.
    pub fn units(self) -> i64 {
        self.0
    }

    /// The amount in dollars.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

/// Plain decimal, no exponent, no trailing zeros: `0.0105`, `12`, `-0.5`.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = Self::SCALE as u64;
        let (whole, frac) = (abs / scale, abs % scale);
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{frac:010}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}
