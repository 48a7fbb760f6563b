//! Where a histogram chunk ends, and what counter-reset hint its samples read back with.
//!
//! Prometheus's head appends a histogram to the open chunk only if the chunk can hold it
//! unchanged in meaning: the same kind (gauge or counter), schema, zero threshold and custom
//! bounds, after a sample that is not a staleness marker, and, for counters, without any
//! count going down (a counter reset). Otherwise it cuts a new chunk. Reading back, the first
//! histogram of a counter chunk says "unknown", the others "not a reset", and every histogram
//! of a gauge chunk says "gauge". Muninn cuts its chunks by the same rules, so PromQL sees the
//! same hints as it would over Prometheus's TSDB.

use super::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, pairs};
use crate::is_stale_nan;

/// What appending a histogram to the open chunk takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Append {
    /// It fits the open chunk.
    Append,
    /// A new chunk; `reset` when because of a counter reset.
    NewChunk { reset: bool },
}

/// Whether `b`'s buckets can follow `a`'s in one counter chunk: no bucket of `a` shrinks, no
/// populated bucket of `a` disappears.
fn buckets_grow(a: &[(i32, f64)], b: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(ai, ac) in a {
        while j < b.len() && b[j].0 < ai {
            j += 1;
        }
        match b.get(j) {
            Some(&(bi, bc)) if bi == ai => {
                if ac > bc {
                    return false;
                }
            }
            _ => {
                if ac != 0.0 {
                    return false;
                }
            }
        }
    }
    true
}

/// The decision for `h` after `last`, the latest histogram of an open chunk of the given kind.
pub fn appendable(last: &FloatHistogram, chunk_is_gauge: bool, h: &FloatHistogram) -> Append {
    let new = Append::NewChunk { reset: false };
    if h.hint == CounterResetHint::Gauge {
        if !chunk_is_gauge {
            return new;
        }
        if is_stale_nan(h.sum) {
            return Append::Append;
        }
        if is_stale_nan(last.sum)
            || h.schema != last.schema
            || h.zero_threshold != last.zero_threshold
            || (h.schema == CUSTOM_BUCKETS_SCHEMA && h.custom_values != last.custom_values)
        {
            return new;
        }
        return Append::Append;
    }
    let reset = Append::NewChunk { reset: true };
    if chunk_is_gauge {
        return new;
    }
    if h.hint == CounterResetHint::Reset {
        return reset;
    }
    if is_stale_nan(h.sum) {
        return Append::Append;
    }
    if is_stale_nan(last.sum) {
        return new;
    }
    if h.count < last.count {
        return reset;
    }
    if h.schema != last.schema || h.zero_threshold != last.zero_threshold {
        return new;
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA && h.custom_values != last.custom_values {
        return reset;
    }
    if h.zero_count < last.zero_count {
        return reset;
    }
    let (ap, bp): (Vec<_>, Vec<_>) = (
        last.positive_pairs().collect(),
        h.positive_pairs().collect(),
    );
    let (an, bn): (Vec<_>, Vec<_>) = (
        pairs(&last.negative_spans, &last.negative_buckets).collect(),
        h.negative_pairs().collect(),
    );
    if !buckets_grow(&ap, &bp) || !buckets_grow(&an, &bn) {
        return reset;
    }
    Append::Append
}

/// The hint the `n`-th (from 0) histogram of a chunk reads back with.
pub fn read_hint(chunk_is_gauge: bool, n: usize) -> CounterResetHint {
    if chunk_is_gauge {
        CounterResetHint::Gauge
    } else if n > 0 {
        CounterResetHint::NotReset
    } else {
        CounterResetHint::Unknown
    }
}

/// Samples per histogram chunk at most (as float chunks).
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

/// Follows a series' histograms through chunk cuts, giving each its read-back hint.
#[derive(Default)]
pub struct HintTracker {
    open: Option<(FloatHistogram, bool, usize)>,
}

impl HintTracker {
    /// A float sample (or a gap in histograms) ends the open histogram chunk.
    pub fn float_sample(&mut self) {
        self.open = None;
    }

    /// The read-back hint of `h`, appended next.
    pub fn next(&mut self, h: &FloatHistogram) -> CounterResetHint {
        let gauge_in = h.hint == CounterResetHint::Gauge;
        let cut = match &self.open {
            None => true,
            Some((_, _, n)) if *n >= MAX_SAMPLES_PER_CHUNK => true,
            Some((last, gauge, _)) => appendable(last, *gauge, h) != Append::Append,
        };
        let n = if cut {
            0
        } else {
            self.open.as_ref().map_or(0, |o| o.2)
        };
        let gauge = if cut {
            gauge_in
        } else {
            self.open.as_ref().is_some_and(|o| o.1)
        };
        let hint = read_hint(gauge, n);
        self.open = Some((h.clone(), gauge, n + 1));
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::from_pairs;

    fn fh(count: f64, buckets: &[(i32, f64)]) -> FloatHistogram {
        let (positive_spans, positive_buckets) = from_pairs(buckets.iter().copied());
        FloatHistogram {
            count,
            positive_spans,
            positive_buckets,
            ..Default::default()
        }
    }

    #[test]
    fn hints_follow_chunk_cuts() {
        let mut t = HintTracker::default();
        assert_eq!(t.next(&fh(1.0, &[(0, 1.0)])), CounterResetHint::Unknown);
        assert_eq!(t.next(&fh(2.0, &[(0, 2.0)])), CounterResetHint::NotReset);
        // A new bucket is fine, a shrinking one is a reset.
        assert_eq!(
            t.next(&fh(3.0, &[(0, 2.0), (1, 1.0)])),
            CounterResetHint::NotReset
        );
        assert_eq!(
            t.next(&fh(3.0, &[(0, 1.0), (1, 2.0)])),
            CounterResetHint::Unknown
        );
        let mut g = fh(1.0, &[]);
        g.hint = CounterResetHint::Gauge;
        assert_eq!(t.next(&g), CounterResetHint::Gauge);
        t.float_sample();
        assert_eq!(t.next(&fh(1.0, &[])), CounterResetHint::Unknown);
    }
}
