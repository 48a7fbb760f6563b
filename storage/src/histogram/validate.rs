//! Validation of native histograms as they arrive: schema, spans, bucket counts, custom
//! bounds; each refusal names why, in Prometheus's words.

use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Histogram, Span, is_exponential_schema};

/// Why a histogram is invalid or two histograms cannot be combined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error(
        "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema {0}"
    )]
    InvalidSchema(i32),
    #[error(
        "{side}span number {n} with offset {offset}: histogram has a span whose offset is negative"
    )]
    NegativeSpanOffset {
        side: &'static str,
        n: usize,
        offset: i32,
    },
    #[error(
        "{side}spans need {need} buckets, have {have} buckets: histogram spans specify different number of buckets than provided"
    )]
    SpansBucketsMismatch {
        side: &'static str,
        need: usize,
        have: usize,
    },
    #[error(
        "{side}bucket number {n} has observation count of {count}: histogram has a bucket whose observation count is negative"
    )]
    NegativeBucketCount {
        side: &'static str,
        n: usize,
        count: f64,
    },
    #[error("observation count is {0}: histogram's observation count is negative")]
    NegativeCount(f64),
    #[error(
        "{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
    )]
    CountMismatch { buckets: u64, count: u64 },
    #[error(
        "{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
    )]
    CountNotBigEnough { buckets: u64, count: u64 },
    #[error("custom buckets: histogram custom bounds must not be NaN")]
    CustomBoundNaN,
    #[error(
        "custom buckets: previous bound is {prev} and current is {cur}: histogram custom bounds must be in strictly increasing order"
    )]
    CustomBoundsNotIncreasing { prev: f64, cur: f64 },
    #[error(
        "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite"
    )]
    CustomBoundInfinite,
    #[error(
        "custom buckets: only {bounds} custom bounds defined which is insufficient to cover total span length of {spans}: histogram custom bounds are too few"
    )]
    CustomBoundsTooFew { bounds: usize, spans: usize },
    #[error("custom buckets: must have zero count of 0")]
    CustomZeroCount,
    #[error("custom buckets: must have zero threshold of 0")]
    CustomZeroThreshold,
    #[error("custom buckets: must not have negative spans")]
    CustomNegativeSpans,
    #[error("custom buckets: must not have negative buckets")]
    CustomNegativeBuckets,
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialWithCustomBounds,
    #[error("zero threshold {0} is not a non-negative number")]
    BadZeroThreshold(f64),
    #[error("{side}bucket index out of range (at most ±{max})")]
    BucketIndexOutOfRange { side: &'static str, max: i64 },
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
}

type R = Result<(), HistogramError>;

fn check_spans(
    spans: &[Span],
    n_buckets: usize,
    side: &'static str,
    first_may_be_negative: bool,
) -> R {
    let mut need = 0usize;
    for (n, s) in spans.iter().enumerate() {
        if (n > 0 || !first_may_be_negative) && s.offset < 0 {
            return Err(HistogramError::NegativeSpanOffset {
                side,
                n: n + 1,
                offset: s.offset,
            });
        }
        need += s.length as usize;
    }
    if need != n_buckets {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            need,
            have: n_buckets,
        });
    }
    Ok(())
}

fn check_custom(bounds: &[f64], spans: &[Span], n_buckets: usize) -> R {
    let mut prev = f64::NEG_INFINITY;
    for (i, &cur) in bounds.iter().enumerate() {
        if cur.is_nan() {
            return Err(HistogramError::CustomBoundNaN);
        }
        if i > 0 && cur <= prev {
            return Err(HistogramError::CustomBoundsNotIncreasing { prev, cur });
        }
        prev = cur;
    }
    if prev == f64::INFINITY {
        return Err(HistogramError::CustomBoundInfinite);
    }
    check_spans(spans, n_buckets, "custom buckets: ", false)?;
    let total: usize = spans
        .iter()
        .map(|s| s.length as usize + s.offset.max(0) as usize)
        .sum();
    if bounds.len() + 1 < total {
        return Err(HistogramError::CustomBoundsTooFew {
            bounds: bounds.len(),
            spans: total,
        });
    }
    Ok(())
}

fn check_common(
    schema: i32,
    custom: &[f64],
    zero_count_is_zero: bool,
    zero_threshold: f64,
    pos: (&[Span], usize),
    neg: (&[Span], usize),
) -> R {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        check_custom(custom, pos.0, pos.1)?;
        if !zero_count_is_zero {
            return Err(HistogramError::CustomZeroCount);
        }
        if zero_threshold != 0.0 {
            return Err(HistogramError::CustomZeroThreshold);
        }
        if !neg.0.is_empty() {
            return Err(HistogramError::CustomNegativeSpans);
        }
        if neg.1 > 0 {
            return Err(HistogramError::CustomNegativeBuckets);
        }
    } else if is_exponential_schema(schema) {
        if zero_threshold.is_nan() || zero_threshold < 0.0 {
            return Err(HistogramError::BadZeroThreshold(zero_threshold));
        }
        check_spans(pos.0, pos.1, "positive side: ", true)?;
        check_spans(neg.0, neg.1, "negative side: ", true)?;
        if !custom.is_empty() {
            return Err(HistogramError::ExponentialWithCustomBounds);
        }
    } else {
        return Err(HistogramError::InvalidSchema(schema));
    }
    Ok(())
}

impl Histogram {
    /// Checks that the histogram is well formed, as Prometheus's `Histogram.Validate`.
    pub fn validate(&self) -> R {
        check_common(
            self.schema,
            &self.custom_values,
            self.zero_count == 0,
            self.zero_threshold,
            (&self.positive_spans, self.positive_deltas.len()),
            (&self.negative_spans, self.negative_deltas.len()),
        )?;
        let sum_side = |d: &[i64], side: &'static str| -> Result<u64, HistogramError> {
            let (mut cur, mut total) = (0i64, 0u64);
            for (i, x) in d.iter().enumerate() {
                cur = cur.wrapping_add(*x);
                if cur < 0 {
                    return Err(HistogramError::NegativeBucketCount {
                        side,
                        n: i + 1,
                        count: cur as f64,
                    });
                }
                total = total.wrapping_add(cur as u64);
            }
            Ok(total)
        };
        let n = sum_side(&self.negative_deltas, "negative side: ")?;
        let p = sum_side(&self.positive_deltas, "positive side: ")?;
        let buckets = n.wrapping_add(p).wrapping_add(self.zero_count);
        if self.sum.is_nan() {
            if buckets > self.count {
                return Err(HistogramError::CountNotBigEnough {
                    buckets,
                    count: self.count,
                });
            }
        } else if buckets != self.count {
            return Err(HistogramError::CountMismatch {
                buckets,
                count: self.count,
            });
        }
        Ok(())
    }
}

impl FloatHistogram {
    /// Checks that the histogram is well formed, as Prometheus's `FloatHistogram.Validate`
    /// (which, unlike the integer one, does not compare the count with the buckets).
    pub fn validate(&self) -> R {
        check_common(
            self.schema,
            &self.custom_values,
            self.zero_count == 0.0,
            self.zero_threshold,
            (&self.positive_spans, self.positive_buckets.len()),
            (&self.negative_spans, self.negative_buckets.len()),
        )?;
        let neg = |b: &[f64], side: &'static str| -> R {
            match b.iter().position(|c| *c < 0.0) {
                Some(i) => Err(HistogramError::NegativeBucketCount {
                    side,
                    n: i + 1,
                    count: b[i],
                }),
                None => Ok(()),
            }
        };
        if !self.uses_custom_buckets() {
            neg(&self.negative_buckets, "negative side: ")?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeBucketCount {
                    side: "zero bucket: ",
                    n: 0,
                    count: self.zero_count,
                });
            }
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(self.count));
        }
        neg(&self.positive_buckets, "positive side: ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Histogram {
        Histogram {
            schema: 0,
            count: 5,
            zero_count: 1,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![2, 0],
            ..Default::default()
        }
    }

    #[test]
    fn valid_and_invalid() {
        assert_eq!(h().validate(), Ok(()));
        let mut bad = h();
        bad.count = 4;
        assert!(matches!(
            bad.validate(),
            Err(HistogramError::CountMismatch { .. })
        ));
        let mut bad = h();
        bad.positive_deltas = vec![2, -3];
        assert!(matches!(
            bad.validate(),
            Err(HistogramError::NegativeBucketCount { .. })
        ));
        let mut bad = h();
        bad.positive_deltas = vec![2];
        assert!(matches!(
            bad.validate(),
            Err(HistogramError::SpansBucketsMismatch { .. })
        ));
        let mut bad = h();
        bad.schema = 9;
        assert_eq!(bad.validate(), Err(HistogramError::InvalidSchema(9)));
        let mut c = h();
        c.schema = CUSTOM_BUCKETS_SCHEMA;
        c.zero_count = 0;
        c.count = 4;
        c.custom_values = vec![1.0];
        assert_eq!(c.validate(), Ok(()));
        c.custom_values = vec![];
        assert!(matches!(
            c.validate(),
            Err(HistogramError::CustomBoundsTooFew { .. })
        ));
    }
}
