//! Kubernetes resource quantities (`250m`, `0.5`, `512Mi`, `1G`, `1e9`).
//!
//! Parsed exactly, in integers: CPU in millicores, memory in bytes, so that
//! rounding happens once, upward, when a Fargate size is chosen.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A quantity as written in the manifest, with its exact value scaled by 1000
/// (so `250m` is 250 and `1` is 1000). Memory in bytes is `milli / 1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub text: String,
    milli: u128,
}

impl Quantity {
    /// Millicores, for CPU quantities.
    pub fn millis(&self) -> u128 {
        self.milli
    }

    /// Bytes, rounded up, for memory quantities.
    pub fn bytes(&self) -> u128 {
        self.milli.div_ceil(1000)
    }

    /// MiB, rounded up.
    pub fn mebibytes(&self) -> u128 {
        self.bytes().div_ceil(1 << 20)
    }

    /// ECS CPU units (1024 per vCPU), rounded up.
    pub fn cpu_units(&self) -> u128 {
        (self.milli * 1024).div_ceil(1000)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a quantity does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a Kubernetes quantity (expected a number with an optional suffix: \
     m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent such as 1e3)"
)]
pub struct InvalidQuantity(pub String);

/// Upper bound on any quantity (in milli units): far above any real request,
/// low enough that arithmetic never overflows.
const MAX_MILLI: u128 = 1 << 100;

impl std::str::FromStr for Quantity {
    type Err = InvalidQuantity;

    fn from_str(text: &str) -> Result<Self, InvalidQuantity> {
        let bad = || InvalidQuantity(text.to_owned());
        let s = text.trim();
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        let number = number.strip_prefix('+').unwrap_or(number);
        if number.is_empty() || number.contains('+') {
            return Err(bad());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(bad());
        }
        // Exact value = digits / 10^frac_len, times the suffix multiplier.
        let digits: String = format!("{int_part}{frac_part}");
        if digits.len() > 30 {
            return Err(bad());
        }
        let mantissa: u128 = digits.parse().map_err(|_| bad())?;
        let frac_len = frac_part.len() as u32;
        // (numerator multiplier, power of ten) so value*1000 = mantissa * mul * 10^pow10 / 10^frac_len
        let (mul, pow10): (u128, i32) = match suffix {
            "" => (1, 3),
            "m" => (1, 0),
            "k" => (1, 6),
            "M" => (1, 9),
            "G" => (1, 12),
            "T" => (1, 15),
            "P" => (1, 18),
            "E" => (1, 21),
            "Ki" => (1 << 10, 3),
            "Mi" => (1 << 20, 3),
            "Gi" => (1 << 30, 3),
            "Ti" => (1 << 40, 3),
            "Pi" => (1 << 50, 3),
            "Ei" => (1 << 60, 3),
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..].parse().map_err(|_| bad())?;
                if !(-3..=18).contains(&e) {
                    return Err(bad());
                }
                (1, e + 3)
            }
            _ => return Err(bad()),
        };
        let pow = pow10 - frac_len as i32;
        let scaled = mantissa.checked_mul(mul).ok_or_else(bad)?;
        let milli = if pow >= 0 {
            scaled.checked_mul(10u128.pow(pow as u32)).ok_or_else(bad)?
        } else {
            // A finer precision than a milli-unit rounds up, like Kubernetes does.
            scaled.div_ceil(10u128.pow((-pow) as u32))
        };
        if milli > MAX_MILLI {
            return Err(bad());
        }
        Ok(Quantity {
            text: text.to_owned(),
            milli,
        })
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as `250m` or `512Mi`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(q("250m").millis(), 250);
        assert_eq!(q("250m").cpu_units(), 256);
        assert_eq!(q("0.5").cpu_units(), 512);
        assert_eq!(q("1").cpu_units(), 1024);
        assert_eq!(q("2").millis(), 2000);
        assert_eq!(q("100m").cpu_units(), 103); // 102.4 rounds up
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("0.0001").millis(), 1); // below a millicore rounds up
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(q("512Mi").mebibytes(), 512);
        assert_eq!(q("2Gi").mebibytes(), 2048);
        assert_eq!(q("1G").mebibytes(), 954); // 953.67 rounds up
        assert_eq!(q("500M").bytes(), 500_000_000);
        assert_eq!(q("1e9").bytes(), 1_000_000_000);
        assert_eq!(q("128974848").mebibytes(), 123);
        assert_eq!(q("1.5Gi").mebibytes(), 1536);
        assert_eq!(q("64Ki").bytes(), 65536);
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for bad in [
            "250x", "", "m", "1.2.3", "--1", "1 Gi", "Gi", "1e", "1e99", "1ii", "-1",
        ] {
            assert!(bad.parse::<Quantity>().is_err(), "`{bad}` should not parse");
        }
        let err = "250x".parse::<Quantity>().unwrap_err();
        assert!(err.to_string().contains("`250x`"));
    }

    #[test]
    fn absurd_sizes_do_not_overflow() {
        assert!("999999999999999999999999999Ei".parse::<Quantity>().is_err());
        assert!("1Ei".parse::<Quantity>().is_ok());
    }
}
