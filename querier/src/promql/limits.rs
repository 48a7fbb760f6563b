//! What one query may cost: step counts computed without overflow, and the estimated bytes
//! of the values a query holds (labels included), which the evaluator charges against
//! `--querier.max-memory-per-query` before it sizes a buffer.
//!
//! The estimates follow the in-memory layout: a step slot (`Option<f64>`) and a decoded
//! sample (`(i64, f64)`) are 16 bytes, a label is its name and value plus two `String`
//! headers, a series adds its `Vec` and struct headers. They are not byte-exact, but they
//! grow with everything that grows, so the budget bounds real memory.

use std::fmt;
use std::str::FromStr;

use muninn_storage::labels::Labels;

use super::value::{Matrix, RangeSeries, Series, Value};
use crate::store::Samples;

/// Bytes of one step slot or one decoded sample.
pub const SLOT_BYTES: usize = 16;
/// Fixed cost of one label besides its text (two `String` headers).
pub const LABEL_OVERHEAD: usize = 48;
/// Fixed cost of one series (its `Vec` headers and flags).
pub const SERIES_OVERHEAD: usize = 64;
/// Estimated JSON bytes of one point in a response (`[1700000000.123,"1.2345"]`).
pub const JSON_POINT_BYTES: usize = 40;

/// The number of evaluation steps `start, start + interval, ..., end`; 0 when `end < start`
/// or `interval <= 0` with `end != start`. Saturates instead of overflowing.
pub fn step_count(start: i64, end: i64, interval: i64) -> u64 {
    if end < start {
        return 0;
    }
    let span = i128::from(end) - i128::from(start);
    if span == 0 {
        return 1;
    }
    if interval <= 0 {
        return 0;
    }
    u64::try_from(span / i128::from(interval) + 1).unwrap_or(u64::MAX)
}

/// Estimated bytes of a label set.
pub fn labels_bytes(l: &Labels) -> usize {
    l.iter()
        .map(|x| x.name.len() + x.value.len() + LABEL_OVERHEAD)
        .sum::<usize>()
        + SERIES_OVERHEAD
}

/// Estimated bytes of a series with `slots` step slots (or samples).
pub fn series_bytes(l: &Labels, slots: usize) -> usize {
    labels_bytes(l).saturating_add(slots.saturating_mul(SLOT_BYTES))
}

/// Estimated bytes of fetched or computed samples (chunks count their encoded size).
pub fn samples_bytes(s: &Samples) -> usize {
    match s {
        Samples::Raw(v) => v.len().saturating_mul(SLOT_BYTES),
        Samples::Chunks { chunks, .. } => chunks.iter().map(|c| c.byte_len() + 32).sum(),
    }
}

fn step_series_bytes(s: &Series) -> usize {
    series_bytes(&s.labels, s.vals.len())
}

fn range_series_bytes(s: &RangeSeries) -> usize {
    labels_bytes(&s.labels).saturating_add(samples_bytes(&s.samples))
}

/// Estimated bytes of a range vector: its series and its per-step windows.
pub fn matrix_bytes(m: &Matrix) -> usize {
    m.series
        .iter()
        .map(range_series_bytes)
        .fold(0usize, usize::saturating_add)
        .saturating_add(m.windows.len().saturating_mul(SLOT_BYTES))
}

/// Estimated bytes of a value.
pub fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Scalar(v) => v.len().saturating_mul(8),
        Value::String(s) => s.len(),
        Value::Vector(series) => series
            .iter()
            .map(step_series_bytes)
            .fold(0usize, usize::saturating_add),
        Value::Matrix(m) => matrix_bytes(m),
    }
}

/// A byte count given on the command line: a plain number of bytes, or a number with a
/// decimal (`kB`, `MB`, `GB`, `TB`) or binary (`KiB`, `MiB`, `GiB`, `TiB`) unit; `B` is
/// allowed and units are case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A byte count that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid byte size {0:?}: expected a number of bytes, optionally with a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
)]
pub struct ByteSizeError(String);

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ByteSizeError(s.to_owned());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let mult = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(err)?;
        if num.is_empty() {
            return Err(err());
        }
        if let Ok(n) = num.parse::<u64>() {
            return n.checked_mul(mult).map(ByteSize).ok_or_else(err);
        }
        // Fractions (`1.5GiB`) are allowed; the result must fit in 64 bits.
        let f: f64 = num.parse().map_err(|_| err())?;
        let bytes = (f * mult as f64).round();
        if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
            return Err(err());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, mult) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= mult && self.0.is_multiple_of(mult) {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_storage::labels::Label;

    #[test]
    fn step_counts_never_overflow() {
        assert_eq!(step_count(0, 0, 1), 1);
        assert_eq!(step_count(0, 10, 1), 11);
        assert_eq!(step_count(0, 10, 3), 4);
        assert_eq!(step_count(10, 0, 1), 0);
        assert_eq!(step_count(5, 5, 0), 1);
        assert_eq!(step_count(0, 10, 0), 0);
        assert_eq!(step_count(i64::MIN, i64::MAX, 1), u64::MAX);
        assert_eq!(
            step_count(i64::MIN, i64::MAX, i64::MAX),
            3,
            "a span of 2^64-1 in steps of 2^63-1"
        );
        // vector(1)[365d:1ms]: 3.15e10 steps, counted, not allocated.
        let year = 365 * 86_400_000;
        assert_eq!(step_count(1, year, 1), year as u64);
    }

    #[test]
    fn sizes_count_label_bytes() {
        let l = Labels(vec![Label {
            name: "x".into(),
            value: "v".repeat(1000),
        }]);
        assert_eq!(labels_bytes(&l), 1001 + LABEL_OVERHEAD + SERIES_OVERHEAD);
        assert_eq!(series_bytes(&l, 10), labels_bytes(&l) + 160);
        let v = Value::Vector(vec![Series {
            labels: l.clone(),
            vals: vec![None; 3],
            hists: Vec::new(),
            drop_name: false,
        }]);
        assert_eq!(value_bytes(&v), labels_bytes(&l) + 48);
    }

    #[test]
    fn byte_sizes() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0).ok();
        assert_eq!(p("1024"), Some(1024));
        assert_eq!(p("512MiB"), Some(512 << 20));
        assert_eq!(p("1GiB"), Some(1 << 30));
        assert_eq!(p("1GB"), Some(1_000_000_000));
        assert_eq!(p("1gb"), Some(1_000_000_000));
        assert_eq!(p("2 kB"), Some(2000));
        assert_eq!(p("1.5GiB"), Some(3 << 29));
        assert_eq!(p("0"), Some(0));
        assert_eq!(p(""), None);
        assert_eq!(p("GiB"), None);
        assert_eq!(p("1XB"), None);
        assert_eq!(p("-1"), None);
        assert_eq!(p("99999999999999TiB"), None);
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
