//! Durations as flags and config files write them: Prometheus-style (`500ms`, `10s`, `1m`,
//! `2h`, `7d`, `2w`, `1y`, combined as `1h30m`) or bare seconds (`15`, `0.5`). The one parser
//! every role uses.

use std::fmt;
use std::str::FromStr;

/// A duration (`1h30m`, `500ms` or seconds such as `15`) in milliseconds; `None` if invalid,
/// negative or out of range.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        // `i64::MAX as f64` rounds up to 2^63, which does not fit: compare with `>=`.
        if !ms.is_finite() || ms < 0.0 || ms >= i64::MAX as f64 {
            return None;
        }
        return Some(ms.round() as i64);
    }
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit())?;
        if n_end == 0 {
            return None;
        }
        let n: i64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[u_end..];
    }
    Some(total)
}

/// A duration flag value: parses with [`parse_duration_ms`], prints Prometheus-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FlagDuration(pub std::time::Duration);

impl FlagDuration {
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl FromStr for FlagDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration_ms(s)
            .map(|ms| Self(std::time::Duration::from_millis(ms as u64)))
            .ok_or_else(|| {
                format!("invalid duration {s:?} (want e.g. 500ms, 10s, 1m, 2h, 7d, or seconds)")
            })
    }
}

impl fmt::Display for FlagDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= len {
                write!(f, "{}{unit}", ms / len)?;
                ms %= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations_and_seconds() {
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("7d"), Some(604_800_000));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("1x"), None);
        assert_eq!(parse_duration_ms("-5"), None);
        assert_eq!(parse_duration_ms("NaN"), None);
        assert_eq!(parse_duration_ms("99999999999999999999d"), None);
        let d: FlagDuration = "1h30m".parse().unwrap();
        assert_eq!(d.to_string(), "1h30m");
        assert_eq!("600".parse::<FlagDuration>().unwrap().to_string(), "10m");
    }
}
