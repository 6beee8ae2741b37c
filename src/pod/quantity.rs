//! Kubernetes resource quantities (`128974848`, `129e6`, `129M`, `123Mi`, `500m`, `0.5`) as
//! whole bytes or CPU millicores.
//!
//! The grammar is Kubernetes' own: an unsigned decimal number, then either nothing, a binary
//! suffix (Ki .. Ei), a decimal suffix (m, k, M, G, T, P, E) or a decimal exponent (`e3`,
//! `E-2`). Arithmetic is exact (integers scaled by powers of ten), and a fractional result
//! rounds up as `Quantity.Value()` and `MilliValue()` do.

use std::fmt;

/// What a quantity measures; chooses the unit of the result and the help text of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityKind {
    /// Memory or storage, in bytes.
    Bytes,
    /// CPU, in millicores.
    Millicores,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {value:?}: {reason}; {}", accepted(*kind))]
pub struct QuantityError {
    pub value: String,
    pub reason: String,
    pub kind: QuantityKind,
}

fn accepted(kind: QuantityKind) -> &'static str {
    match kind {
        QuantityKind::Bytes => {
            "expected a whole number of bytes with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, \
             k, M, G, T, P, E) or exponent, e.g. 128974848, 129e6, 129M, 123Mi, .5Gi"
        }
        QuantityKind::Millicores => "expected cores or millicores, e.g. 2, 0.5, 500m",
    }
}

/// Memory or storage quantity to bytes, rounding a fractional byte up.
///
/// A millis suffix is accepted when it still names whole bytes (`128974848000m`, one of
/// Kubernetes' documented examples) but refused when it does not: `400m` is 0.4 bytes and
/// almost always a mistake for `400Mi`.
pub fn parse_bytes(value: &str) -> Result<u64, QuantityError> {
    let parsed = parse(value, QuantityKind::Bytes)?;
    if parsed.suffix == "m" && !parsed.exact {
        return Err(error(
            value,
            QuantityKind::Bytes,
            "the suffix m means thousandths of a byte, which makes a fractional byte count (did you mean Mi or M?)",
        ));
    }
    Ok(parsed.value)
}

/// CPU quantity to millicores, rounding up to a whole millicore.
pub fn parse_millicores(value: &str) -> Result<u64, QuantityError> {
    Ok(parse(value, QuantityKind::Millicores)?.value)
}

/// Parses `value` in the unit of `kind`: bytes or millicores.
pub fn parse_quantity(value: &str, kind: QuantityKind) -> Result<u64, QuantityError> {
    match kind {
        QuantityKind::Bytes => parse_bytes(value),
        QuantityKind::Millicores => parse_millicores(value),
    }
}

struct Parsed<'a> {
    value: u64,
    /// False when the value was rounded up from a fraction.
    exact: bool,
    suffix: &'a str,
}

fn error(value: &str, kind: QuantityKind, reason: impl fmt::Display) -> QuantityError {
    QuantityError {
        value: value.to_string(),
        reason: reason.to_string(),
        kind,
    }
}

/// Digits kept in the mantissa: 10^38 still fits in a u128.
const MAX_DIGITS: usize = 38;

fn parse(value: &str, kind: QuantityKind) -> Result<Parsed<'_>, QuantityError> {
    let err = |reason: &str| error(value, kind, reason);
    if value.is_empty() {
        return Err(err("empty"));
    }
    let mut rest = value;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(err("negative quantities are not allowed"));
    }
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no number"));
    }
    if frac_part.contains('.') {
        return Err(err("more than one decimal point"));
    }

    // Mantissa from the significant digits; the fraction's length becomes a power of ten.
    let digits: String = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(err("too many digits"));
    }
    let mantissa: u128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| err("not a number"))?
    };
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;

    let (binary_power, decimal_exponent): (u32, i64) = match suffix {
        "" => (0, 0),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s if s.starts_with(['e', 'E']) => (
            0,
            parse_exponent(&s[1..]).ok_or_else(|| err(&format!("invalid exponent {s:?}")))?,
        ),
        s => return Err(err(&format!("unknown suffix {s:?}"))),
    };
    let scale = match kind {
        QuantityKind::Bytes => 0,
        QuantityKind::Millicores => 3,
    };
    let too_large = || err("too large");

    let numerator = mantissa
        .checked_mul(1024u128.pow(binary_power))
        .ok_or_else(too_large)?;
    let exponent = decimal_exponent - frac_len + scale;
    let (result, exact) = if numerator == 0 {
        (0, true)
    } else if exponent >= 0 {
        let factor = u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .ok_or_else(too_large)?;
        (numerator.checked_mul(factor).ok_or_else(too_large)?, true)
    } else {
        match u32::try_from(-exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
        {
            Some(divisor) => {
                let quotient = numerator / divisor;
                let remainder = numerator % divisor;
                (quotient + u128::from(remainder != 0), remainder == 0)
            }
            // The divisor exceeds any u128 numerator: a positive value below one unit.
            None => (1, false),
        }
    };
    let value = u64::try_from(result).map_err(|_| too_large())?;
    Ok(Parsed {
        value,
        exact,
        suffix,
    })
}

fn parse_exponent(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_accept_kubernetes_documented_examples() {
        // From "Resource Management for Pods and Containers": all roughly the same value.
        assert_eq!(parse_bytes("128974848").unwrap(), 128_974_848);
        assert_eq!(parse_bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(parse_bytes("129M").unwrap(), 129_000_000);
        assert_eq!(parse_bytes("128974848000m").unwrap(), 128_974_848);
        assert_eq!(parse_bytes("123Mi").unwrap(), 123 * 1024 * 1024);
    }

    #[test]
    fn memory_quantities_accept_binary_and_decimal_suffixes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("1", 1),
            ("1Ki", 1 << 10),
            ("1Mi", 1 << 20),
            ("1Gi", 1 << 30),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1k", 1_000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("+5k", 5_000),
            ("1e3", 1_000),
            ("1E3", 1_000),
            ("12e-1", 2),
            ("1.5Gi", 3 << 29),
            (".5Gi", 1 << 29),
            ("5.", 5),
            ("007", 7),
        ];
        for (input, bytes) in cases {
            assert_eq!(parse_bytes(input), Ok(*bytes), "{input}");
        }
    }

    #[test]
    fn fractional_bytes_round_up() {
        assert_eq!(parse_bytes("1.5").unwrap(), 2);
        assert_eq!(parse_bytes("1.0001k").unwrap(), 1001);
        assert_eq!(parse_bytes("1e-50").unwrap(), 1);
        assert_eq!(parse_bytes("0.0").unwrap(), 0);
    }

    #[test]
    fn memory_millis_are_refused_when_they_leave_a_fraction_of_a_byte() {
        assert_eq!(
            parse_bytes("400m").unwrap_err().to_string(),
            "invalid quantity \"400m\": the suffix m means thousandths of a byte, which makes a \
             fractional byte count (did you mean Mi or M?); expected a whole number of bytes with \
             an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E) or exponent, e.g. \
             128974848, 129e6, 129M, 123Mi, .5Gi"
        );
        assert_eq!(parse_bytes("2000m").unwrap(), 2);
    }

    #[test]
    fn cpu_quantities_become_millicores() {
        let cases: &[(&str, u64)] = &[
            ("500m", 500),
            ("0.5", 500),
            ("2", 2000),
            ("0.1", 100),
            ("100m", 100),
            ("1.5", 1500),
            ("0.0005", 1),
            ("1e-3", 1),
            ("1k", 1_000_000),
            ("0", 0),
        ];
        for (input, millis) in cases {
            assert_eq!(parse_millicores(input), Ok(*millis), "{input}");
        }
    }

    #[test]
    fn invalid_quantities_name_the_value_and_the_accepted_forms() {
        let err = parse_bytes("12XB").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid quantity \"12XB\": unknown suffix \"XB\"; expected a whole number of bytes \
             with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E) or exponent, \
             e.g. 128974848, 129e6, 129M, 123Mi, .5Gi"
        );
        assert_eq!(
            parse_millicores("one").unwrap_err().to_string(),
            "invalid quantity \"one\": no number; expected cores or millicores, e.g. 2, 0.5, 500m"
        );
    }

    #[test]
    fn malformed_quantities_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("-1", "negative quantities are not allowed"),
            ("Mi", "no number"),
            (".", "no number"),
            ("1.2.3", "more than one decimal point"),
            ("1 Mi", "unknown suffix \" Mi\""),
            ("1mi", "unknown suffix \"mi\""),
            ("1KB", "unknown suffix \"KB\""),
            ("1e", "invalid exponent \"e\""),
            ("1e3.5", "invalid exponent \"e3.5\""),
            ("1e1000000000", "invalid exponent \"e1000000000\""),
            ("16Ei", "too large"),
            ("1e30", "too large"),
            ("123456789012345678901234567890123456789", "too many digits"),
        ];
        for (input, reason) in cases {
            let err = parse_bytes(input).unwrap_err();
            assert_eq!(err.reason, *reason, "{input}");
        }
    }
}
