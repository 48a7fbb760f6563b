//! Buckets with their bounds, in the orders PromQL walks them.

use super::{FloatHistogram, bound, pairs};

/// One bucket with its bounds and which of them belong to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    pub index: i32,
}

impl Bucket {
    /// Share of the bucket below `v`: linear for custom/zero buckets, else logarithmic, as
    /// observations are assumed spread in exponential buckets.
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            return (log_v - log_lower) / (log_upper - log_lower);
        }
        1.0 - ((log_v - log_upper) / (log_lower - log_upper))
    }
}

impl FloatHistogram {
    fn bucket_at(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let custom = self.uses_custom_buckets();
        let (lower, upper) = if positive {
            (
                bound(idx - 1, self.schema, &self.custom_values),
                bound(idx, self.schema, &self.custom_values),
            )
        } else {
            (
                -bound(idx, self.schema, &self.custom_values),
                -bound(idx - 1, self.schema, &self.custom_values),
            )
        };
        let (lower_inclusive, upper_inclusive) = if custom {
            (idx == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
            count,
            index: idx,
        }
    }

    /// Positive buckets, ascending.
    pub fn positive_buckets_iter(&self) -> Vec<Bucket> {
        pairs(&self.positive_spans, &self.positive_buckets)
            .map(|(i, c)| self.bucket_at(i, c, true))
            .collect()
    }

    /// Negative buckets, from next to zero downwards.
    pub fn negative_buckets_iter(&self) -> Vec<Bucket> {
        pairs(&self.negative_spans, &self.negative_buckets)
            .map(|(i, c)| self.bucket_at(i, c, false))
            .collect()
    }

    /// The zero bucket `[-threshold, threshold]`.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// Every bucket from the lowest to the highest: negative ones, the zero bucket if it has
    /// observations, positive ones; bounds inside the zero bucket clipped to its edges.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let mut out: Vec<Bucket> = self.negative_buckets_iter().into_iter().rev().collect();
        let zt = self.zero_threshold;
        for b in &mut out {
            clip(b, zt);
        }
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for mut b in self.positive_buckets_iter() {
            clip(&mut b, zt);
            out.push(b);
        }
        out
    }

    /// Every bucket from the highest to the lowest (the reverse of [`Self::all_buckets`]).
    pub fn all_buckets_reverse(&self) -> Vec<Bucket> {
        let mut v = self.all_buckets();
        v.reverse();
        v
    }
}

fn clip(b: &mut Bucket, zt: f64) {
    if b.upper < 0.0 && b.upper > -zt {
        b.upper = -zt;
    } else if b.lower > 0.0 && b.lower < zt {
        b.lower = zt;
    }
}
