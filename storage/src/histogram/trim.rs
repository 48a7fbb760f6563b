//! The trim operators `</` and `>/` of Prometheus 3: keep the observations below (above) a
//! bound, interpolating inside the bucket it cuts, and re-estimate count and sum from bucket
//! midpoints.

use super::{Bucket, FloatHistogram};

fn zero_if_inf(x: f64) -> f64 {
    if x.is_infinite() { 0.0 } else { x }
}

/// Share kept and the midpoint of the kept part, for a bucket with an infinite bound.
fn infinity_bucket(upper_trim: bool, b: &Bucket, rhs: f64) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY {
        if upper_trim {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, zero_if_inf(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, zero_if_inf(b.upper));
    }
    // Upper bound +Inf.
    if upper_trim {
        return (0.0, zero_if_inf(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, zero_if_inf(b.lower))
}

fn split(b: &Bucket, rhs: f64, linear: bool) -> f64 {
    if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(rhs, linear)
    }
}

fn midpoint(lo: f64, hi: f64, positive: bool, linear: bool) -> f64 {
    if lo.is_infinite() {
        if hi.is_infinite() {
            return 0.0;
        }
        return if hi > 0.0 { hi / 2.0 } else { hi };
    }
    if hi.is_infinite() {
        return lo;
    }
    if linear {
        return (lo + hi) / 2.0;
    }
    let g = (lo * hi).abs().sqrt();
    if positive { g } else { -g }
}

fn bucket_trim(b: &Bucket, rhs: f64, upper_trim: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinity_bucket(upper_trim, b, rhs);
    }
    let under = split(b, rhs, custom);
    if upper_trim {
        (under, midpoint(b.lower, rhs, positive, custom))
    } else {
        (b.count - under, midpoint(rhs, b.upper, positive, custom))
    }
}

fn zero_bucket_trim(
    z: &Bucket,
    rhs: f64,
    has_neg: bool,
    has_pos: bool,
    upper_trim: bool,
) -> (f64, f64) {
    let (mut lower, mut upper) = (z.lower, z.upper);
    if has_neg && !has_pos {
        upper = 0.0;
    }
    if has_pos && !has_neg {
        lower = 0.0;
    }
    let (fraction, mid) = if upper_trim {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= upper {
            return (z.count, (lower + upper) / 2.0);
        }
        ((rhs - lower) / (upper - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (z.count, (lower + upper) / 2.0);
        }
        if rhs >= upper {
            return (0.0, 0.0);
        }
        ((upper - rhs) / (upper - lower), (rhs + upper) / 2.0)
    };
    (z.count * fraction, mid)
}

impl FloatHistogram {
    /// `h </ rhs` (`upper_trim`) or `h >/ rhs`, as Prometheus's `TrimBuckets`.
    pub fn trim_buckets(&mut self, rhs: f64, upper_trim: bool) -> &mut Self {
        let custom = self.uses_custom_buckets();
        let (mut count, mut sum) = (0.0, 0.0);
        let mut trimmed = false;
        let (mut has_pos, mut has_neg) = (false, false);
        for positive in [true, false] {
            let buckets = if positive {
                self.positive_buckets_iter()
            } else {
                self.negative_buckets_iter()
            };
            for (i, b) in buckets.iter().enumerate() {
                if b.count == 0.0 {
                    continue;
                }
                if positive {
                    has_pos = true;
                } else {
                    has_neg = true;
                }
                let whole = if upper_trim {
                    b.upper <= rhs
                } else {
                    b.lower >= rhs
                };
                let part = if upper_trim {
                    b.lower < rhs
                } else {
                    b.upper > rhs
                };
                let slot = if positive {
                    &mut self.positive_buckets[i]
                } else {
                    &mut self.negative_buckets[i]
                };
                if whole {
                    count += b.count;
                    sum += midpoint(b.lower, b.upper, positive, custom) * b.count;
                } else if part {
                    let (keep, mid) = bucket_trim(b, rhs, upper_trim, positive, custom);
                    count += keep;
                    sum += mid * keep;
                    if *slot != keep {
                        *slot = keep;
                        trimmed = true;
                    }
                } else {
                    *slot = 0.0;
                    trimmed = true;
                }
            }
        }
        if self.zero_count > 0.0 {
            let (keep, mid) =
                zero_bucket_trim(&self.zero_bucket(), rhs, has_neg, has_pos, upper_trim);
            if self.zero_count != keep {
                self.zero_count = keep;
                trimmed = true;
            }
            sum += mid * keep;
            count += keep;
        }
        if trimmed {
            self.count = count;
            self.sum = sum;
            self.compact();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_pairs;
    use super::*;

    #[test]
    fn trims_above_and_below() {
        // Buckets (0.5,1]:2 (1,2]:4 (2,4]:2, schema 0.
        let (positive_spans, positive_buckets) = from_pairs([(0, 2.0), (1, 4.0), (2, 2.0)]);
        let h = FloatHistogram {
            count: 8.0,
            sum: 12.0,
            positive_spans,
            positive_buckets,
            ..Default::default()
        };
        let mut up = h.clone();
        up.trim_buckets(2.0, true);
        assert_eq!(up.count, 6.0);
        assert_eq!(
            up.positive_pairs().collect::<Vec<_>>(),
            vec![(0, 2.0), (1, 4.0)]
        );
        let mut low = h.clone();
        low.trim_buckets(2.0, false);
        assert_eq!(low.count, 2.0);
        let mut none = h;
        none.trim_buckets(10.0, true);
        assert_eq!(none.count, 8.0);
        assert_eq!(none.sum, 12.0);
    }
}
