//! Native histograms: Prometheus's data model, its validation and its arithmetic.
//!
//! - [`Histogram`]: integer counts, buckets delta-encoded, as remote write and the histogram
//!   chunk encoding carry them.
//! - [`FloatHistogram`]: float counts, absolute buckets, what PromQL computes with. Operations
//!   ([`FloatHistogram::add`], `sub`, `kahan_add`, `detect_reset`, `reduce_resolution`, …)
//!   follow Prometheus's `model/histogram` semantics, so query results match Prometheus's.
//!
//! Buckets are stored as Prometheus stores them: spans (`offset`, `length`) over a dense
//! vector of counts. Operations work on the sparse `(index, count)` view ([`pairs`]) and
//! rebuild spans ([`from_pairs`]); the span layout they produce may differ from Prometheus's
//! (adjacent spans merged), the bucket set never does.

mod bounds;
pub mod chunking;
pub mod codec;
mod float_ops;
mod iter;
mod trim;
mod validate;
mod wire;

pub use bounds::{bound, exponential_bound, ldexp, target_idx};
pub use float_ops::{AddInfo, intersect_custom_bounds, kahan_inc};
pub use iter::Bucket;
pub use validate::HistogramError;
pub use wire::{HistSample, from_wire};

/// The schema number of custom-bucket histograms (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// Lowest and highest exponential schema.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;

/// Whether `s` is an exponential schema.
pub fn is_exponential_schema(s: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&s)
}

/// A run of `length` consecutive buckets, `offset` buckets after the previous span's end (the
/// first span's offset is the absolute index of its first bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What a histogram says about counter resets (Prometheus's numbering, as on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum CounterResetHint {
    #[default]
    Unknown = 0,
    Reset = 1,
    NotReset = 2,
    Gauge = 3,
}

impl CounterResetHint {
    pub fn from_u8(v: u8) -> CounterResetHint {
        match v {
            1 => CounterResetHint::Reset,
            2 => CounterResetHint::NotReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// A histogram with integer counts; bucket counts are deltas to the previous bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub negative_deltas: Vec<i64>,
    pub custom_values: Vec<f64>,
}

impl Histogram {
    /// The same histogram with float, absolute counts.
    pub fn to_float(&self) -> FloatHistogram {
        let abs = |d: &[i64]| {
            let mut c = 0i64;
            d.iter()
                .map(|x| {
                    c = c.wrapping_add(*x);
                    c as f64
                })
                .collect::<Vec<f64>>()
        };
        FloatHistogram {
            hint: self.hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: abs(&self.positive_deltas),
            negative_buckets: abs(&self.negative_deltas),
            custom_values: self.custom_values.clone(),
        }
    }
}

/// A histogram with float counts and absolute bucket counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    pub hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53), without the implicit +Inf.
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// Whether this is a custom-buckets histogram (NHCB).
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// The populated (and explicitly empty) positive buckets as `(index, count)`.
    pub fn positive_pairs(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        pairs(&self.positive_spans, &self.positive_buckets)
    }

    /// The negative buckets as `(index, count)`; index grows away from zero.
    pub fn negative_pairs(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        pairs(&self.negative_spans, &self.negative_buckets)
    }

    /// Whether any count, the sum or a custom bound is infinite.
    pub fn has_overflow(&self) -> bool {
        let inf = |v: &f64| v.is_infinite();
        inf(&self.zero_count)
            || inf(&self.count)
            || inf(&self.sum)
            || self.positive_buckets.iter().any(inf)
            || self.negative_buckets.iter().any(inf)
            || self.custom_values.iter().any(inf)
    }
}

/// Largest bucket index magnitude accepted: schema 8's last finite bucket is 2^18, so larger
/// indexes only come from corrupt or hostile input (and would overflow index arithmetic).
pub const MAX_BUCKET_INDEX: i64 = 1 << 24;

/// Whether every bucket index of `spans` stays within ±[`MAX_BUCKET_INDEX`].
pub fn spans_in_range(spans: &[Span]) -> bool {
    let mut idx = 0i64;
    for (k, s) in spans.iter().enumerate() {
        idx += i64::from(s.offset);
        if k == 0 && idx.abs() > MAX_BUCKET_INDEX {
            return false;
        }
        idx += i64::from(s.length);
        if idx.abs() > MAX_BUCKET_INDEX + 1 {
            return false;
        }
    }
    true
}

/// The buckets of `spans` over `buckets` as `(absolute index, count)`, ascending.
pub fn pairs<'a, T: Copy>(
    spans: &'a [Span],
    buckets: &'a [T],
) -> impl Iterator<Item = (i32, T)> + 'a {
    let mut idx = 0i32;
    let mut first = true;
    spans
        .iter()
        .flat_map(move |s| {
            if first {
                idx = s.offset;
                first = false;
            } else {
                idx += s.offset;
            }
            let start = idx;
            idx += s.length as i32;
            (0..s.length as i32).map(move |k| start + k)
        })
        .zip(buckets.iter().copied())
}

/// Spans and counts from ascending `(index, count)` pairs; consecutive indexes share a span.
pub fn from_pairs<T>(it: impl IntoIterator<Item = (i32, T)>) -> (Vec<Span>, Vec<T>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0i32; // index after the last span's end
    for (i, v) in it {
        match spans.last_mut() {
            Some(s) if i == next => s.length += 1,
            Some(_) => spans.push(Span {
                offset: i - next,
                length: 1,
            }),
            None => spans.push(Span {
                offset: i,
                length: 1,
            }),
        }
        next = i + 1;
        out.push(v);
    }
    (spans, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let spans = vec![
            Span {
                offset: -2,
                length: 2,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ];
        let b = vec![1.0, 2.0, 3.0];
        let p: Vec<_> = pairs(&spans, &b).collect();
        assert_eq!(p, vec![(-2, 1.0), (-1, 2.0), (3, 3.0)]);
        let (s2, b2) = from_pairs(p);
        assert_eq!(s2, spans);
        assert_eq!(b2, b);
    }
}
