//! Kubernetes resource quantities as numbers (pure): just enough of the quantity grammar to
//! divide a tenant's quota by what one pod asks for.
//!
//! Values are returned in milli-units (`"500m"` CPU is 500, `"1Gi"` memory is 1024³·1000), as
//! an `i128` so that every quantity the API server accepts fits without floating point.

/// `quantity` in milli-units, rounded up; `None` when it is not a quantity this parser knows
/// (the API server's own grammar: a decimal number, then a binary-SI suffix `Ki`…`Ei`, a
/// decimal-SI suffix `n u m k M G T P E`, or a decimal exponent `e3` / `E-2`).
#[must_use]
pub fn milli(quantity: &str) -> Option<i128> {
    let s = quantity.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().ok()?;
    let scale = u32::try_from(fraction.len()).ok()?;

    // value = mantissa / 10^scale * base^exp; in milli-units: * 1000.
    let (mut numerator, mut denominator) =
        (mantissa.checked_mul(1000)?, 10i128.checked_pow(scale)?);
    let binary = |power: u32| 1024i128.checked_pow(power);
    let decimal_exponent: i32 = match suffix {
        "" => 0,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            numerator = numerator.checked_mul(binary(power)?)?;
            0
        }
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        other if other.starts_with(['e', 'E']) => other[1..].parse().ok()?,
        _ => return None,
    };
    let power = 10i128.checked_pow(decimal_exponent.unsigned_abs())?;
    if decimal_exponent >= 0 {
        numerator = numerator.checked_mul(power)?;
    } else {
        denominator = denominator.checked_mul(power)?;
    }
    let value =
        numerator.div_euclid(denominator) + i128::from(numerator.rem_euclid(denominator) != 0);
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::milli;

    #[test]
    fn parses_the_forms_quotas_and_requests_use() {
        assert_eq!(milli("4"), Some(4000));
        assert_eq!(milli("500m"), Some(500));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("0.1"), Some(100));
        assert_eq!(milli("1Ki"), Some(1024 * 1000));
        assert_eq!(milli("8Gi"), Some(8 * 1024 * 1024 * 1024 * 1000));
        assert_eq!(milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(milli("1G"), Some(1_000_000_000_000));
        assert_eq!(milli("1e3"), Some(1_000_000));
        assert_eq!(milli("1E"), Some(1_000_000_000_000_000_000_000));
        assert_eq!(milli("1n"), Some(1), "rounded up");
        assert_eq!(milli("-1"), Some(-1000));
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for bad in ["", "m", "abc", "1x", "1.2.3", "Gi"] {
            assert_eq!(milli(bad), None, "{bad}");
        }
    }
}
