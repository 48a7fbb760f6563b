//! Native-histogram range computations with Prometheus 3's semantics: extrapolated
//! `rate`/`increase`/`delta`, `irate`/`idelta`, `sum`/`avg_over_time` (Kahan-compensated),
//! and the annotations each raises.

use muninn_storage::histogram::{CounterResetHint, FloatHistogram, HistogramError};

use super::annotations as anno;
use super::annotations::HistOp;
use super::eval::Evaluator;
use super::value::Hist;

/// Adds with annotations; `false` (after warning) when the schemas cannot mix.
pub fn add_annotated(
    ev: &Evaluator<'_>,
    base: &mut FloatHistogram,
    other: &FloatHistogram,
    metric: &str,
) -> bool {
    match base.add(other) {
        Ok(i) => {
            if i.nhcb_bounds_reconciled {
                ev.info(anno::mismatched_custom_buckets(HistOp::Add));
            }
            true
        }
        Err(_) => {
            ev.warn(anno::mixed_exponential_custom(metric));
            false
        }
    }
}

/// `rate`/`increase` (`counter`) or `delta` of the histograms of one window, extrapolated to
/// the window's edges as Prometheus does.
#[allow(clippy::too_many_arguments)]
pub fn extrapolated_rate(
    ev: &Evaluator<'_>,
    points: &[(i64, Hist)],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    counter: bool,
    rate: bool,
    metric: &str,
) -> Option<FloatHistogram> {
    if points.len() < 2 {
        return None;
    }
    let mut result = histogram_rate(ev, points, counter, metric)?;
    let first_t = points[0].0;
    let last_t = points[points.len() - 1].0;
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (points.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        let first = &points[0].1;
        if result.count > 0.0 && first.count >= 0.0 {
            to_zero = sampled * (first.count / result.count);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if rate {
        factor /= range_ms as f64 / 1000.0;
    }
    result.mul(factor);
    Some(result)
}

/// The increase (with counter-reset correction) or plain difference over the window.
fn histogram_rate(
    ev: &Evaluator<'_>,
    points: &[(i64, Hist)],
    counter: bool,
    metric: &str,
) -> Option<FloatHistogram> {
    let first = &points[0].1;
    let last = &points[points.len() - 1].1;
    let gauge = |h: &FloatHistogram| h.hint == CounterResetHint::Gauge;
    if counter && (gauge(first) || gauge(last)) {
        ev.warn(anno::not_counter(metric));
    }
    let empty;
    let mut prev: &FloatHistogram = first;
    let mut custom = first.uses_custom_buckets();
    if counter {
        let second = &points[1].1;
        if second.detect_reset(first) {
            empty = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..Default::default()
            };
            prev = &empty;
            custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != custom {
        ev.warn(anno::mixed_exponential_custom(metric));
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, cur) in &points[1..points.len() - 1] {
        if !counter {
            continue;
        }
        if gauge(cur) {
            ev.warn(anno::not_counter(metric));
        }
        min_schema = min_schema.min(cur.schema);
        if cur.uses_custom_buckets() != custom {
            ev.warn(anno::mixed_exponential_custom(metric));
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    match h.sub(prev) {
        Err(HistogramError::IncompatibleSchema) => {
            ev.warn(anno::mixed_exponential_custom(metric));
            return None;
        }
        Err(_) => {}
        Ok(i) => {
            if i.nhcb_bounds_reconciled {
                ev.info(anno::mismatched_custom_buckets(HistOp::Sub));
            }
        }
    }
    if counter {
        let mut prev: &FloatHistogram = prev;
        for (_, cur) in &points[1..] {
            if cur.detect_reset(prev) {
                match h.add(prev) {
                    Err(HistogramError::IncompatibleSchema) => {
                        ev.warn(anno::mixed_exponential_custom(metric));
                        return None;
                    }
                    Err(_) => {}
                    Ok(i) => {
                        if i.nhcb_bounds_reconciled {
                            ev.info(anno::mismatched_custom_buckets(HistOp::Add));
                        }
                    }
                }
            }
            prev = cur;
        }
    } else if !gauge(first) || !gauge(last) {
        ev.warn(anno::not_gauge(metric));
    }
    h.hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

/// `irate` (`rate`) or `idelta` of the last two histograms, `a` before `b`.
pub fn instant_value(
    ev: &Evaluator<'_>,
    a: (i64, &FloatHistogram),
    b: (i64, &FloatHistogram),
    rate: bool,
    metric: &str,
) -> Option<FloatHistogram> {
    let interval = b.0 - a.0;
    if interval == 0 {
        return None;
    }
    let gauge = |h: &FloatHistogram| h.hint == CounterResetHint::Gauge;
    let mut r = b.1.clone();
    if rate && (gauge(b.1) || gauge(a.1)) {
        ev.warn(anno::not_counter(metric));
    }
    if !rate && (!gauge(b.1) || !gauge(a.1)) {
        ev.warn(anno::not_gauge(metric));
    }
    if !rate || !b.1.detect_reset(a.1) {
        match r.sub(a.1) {
            Err(HistogramError::IncompatibleSchema) => {
                ev.warn(anno::mixed_exponential_custom(metric));
                return None;
            }
            Err(_) => {}
            Ok(i) => {
                if i.nhcb_bounds_reconciled {
                    ev.info(anno::mismatched_custom_buckets(HistOp::Sub));
                }
            }
        }
    }
    r.hint = CounterResetHint::Gauge;
    r.compact();
    if rate {
        r.div(interval as f64 / 1000.0);
    }
    Some(r)
}

/// Tracks counter-reset hints over an aggregation, for the collision warning.
#[derive(Default)]
pub struct ResetHints {
    reset: bool,
    not_reset: bool,
    reconciled: bool,
}

impl ResetHints {
    pub fn see(&mut self, h: &FloatHistogram) {
        match h.hint {
            CounterResetHint::Reset => self.reset = true,
            CounterResetHint::NotReset => self.not_reset = true,
            _ => {}
        }
    }

    pub fn reconciled(&mut self, yes: bool) {
        self.reconciled |= yes;
    }

    /// Raises the annotations for what was seen.
    pub fn report(&self, ev: &Evaluator<'_>) {
        if self.reset && self.not_reset {
            ev.warn(anno::counter_reset_collision(HistOp::Agg));
        }
        if self.reconciled {
            ev.info(anno::mismatched_custom_buckets(HistOp::Agg));
        }
    }
}

/// The Kahan-compensated sum of histograms, in order (`sum` and `sum_over_time`). `Err(i)`:
/// the `i`-th cannot be added (exponential and custom buckets mixed).
pub fn sum_hists(hs: &[&FloatHistogram], hints: &mut ResetHints) -> Result<FloatHistogram, usize> {
    let mut sum = hs[0].clone();
    hints.see(&sum);
    let mut comp: Option<FloatHistogram> = None;
    for (k, h) in hs.iter().enumerate().skip(1) {
        hints.see(h);
        let c = comp.get_or_insert_with(|| sum.new_compensation());
        let i = sum.kahan_add(h, c).map_err(|_| k)?;
        hints.reconciled(i.nhcb_bounds_reconciled);
    }
    if let Some(c) = comp {
        let i = sum.add(&c).map_err(|_| 0usize)?;
        hints.reconciled(i.nhcb_bounds_reconciled);
    }
    Ok(sum)
}

/// The mean of histograms, in order (`avg` and `avg_over_time`): a compensated sum,
/// switching to an incremental mean once the sum overflows, as Prometheus does. `Err(i)` as
/// for [`sum_hists`].
pub fn avg_hists(hs: &[&FloatHistogram], hints: &mut ResetHints) -> Result<FloatHistogram, usize> {
    let mut sum = hs[0].clone();
    hints.see(&sum);
    let mut mean: Option<FloatHistogram> = None;
    let mut kc: Option<FloatHistogram> = None;
    let mut count = 1.0;
    for (k, h) in hs.iter().enumerate().skip(1) {
        hints.see(h);
        count = (k + 1) as f64;
        if mean.is_none() {
            let mut s2 = sum.clone();
            let mut c2 = kc.clone().unwrap_or_else(|| sum.new_compensation());
            let info = s2.kahan_add(h, &mut c2).map_err(|_| k)?;
            hints.reconciled(info.nhcb_bounds_reconciled);
            if !s2.has_overflow() {
                sum = s2;
                kc = Some(c2);
                continue;
            }
            let mut m = sum.clone();
            m.div(count - 1.0);
            mean = Some(m);
            if let Some(c) = kc.as_mut() {
                c.div(count - 1.0);
            }
        }
        let q = (count - 1.0) / count;
        let Some(m) = mean.as_mut() else {
            continue;
        };
        if let Some(c) = kc.as_mut() {
            c.mul(q);
        }
        let mut to_add = (*h).clone();
        to_add.div(count);
        m.mul(q);
        let c = kc.get_or_insert_with(|| m.new_compensation());
        let info = m.kahan_add(&to_add, c).map_err(|_| k)?;
        hints.reconciled(info.nhcb_bounds_reconciled);
    }
    if let Some(mut m) = mean {
        if let Some(c) = kc {
            m.add(&c).map_err(|_| 0usize)?;
        }
        return Ok(m);
    }
    sum.div(count);
    if let Some(mut c) = kc {
        c.div(count);
        sum.add(&c).map_err(|_| 0usize)?;
    }
    Ok(sum)
}

/// `histogram_quantile` of one native histogram (Prometheus's `HistogramQuantile`):
/// exponential interpolation inside exponential buckets, linear in the zero bucket and in
/// custom buckets.
pub fn quantile(ev: &Evaluator<'_>, q: f64, h: &FloatHistogram, metric: &str) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let buckets = if forward {
        h.all_buckets()
    } else {
        h.all_buckets_reverse()
    };
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut bucket = muninn_storage::histogram::Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
        index: 0,
    };
    let mut at = buckets.len();
    for (k, b) in buckets.iter().enumerate() {
        if b.count == 0.0 {
            continue;
        }
        bucket = *b;
        count += b.count;
        if count >= rank {
            at = k;
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            ev.info(anno::quantile_nan_result(metric));
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        for b in buckets.iter().skip(at + 1) {
            count += b.count;
        }
        if count < h.count {
            ev.info(anno::quantile_nan_skew(metric));
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// `histogram_fraction(lower, upper)` of one native histogram (Prometheus's
/// `HistogramFraction`).
pub fn fraction(
    ev: &Evaluator<'_>,
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
    metric: &str,
) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let buckets = h.all_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut stop = buckets.len();
    for (k, b0) in buckets.iter().enumerate() {
        let mut b = *b0;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = |v: f64| {
            if b.lower == f64::NEG_INFINITY {
                b.count
            } else {
                rank + b.count * b.fraction_below(v, true)
            }
        };
        let exponential = |v: f64| rank + b.count * b.fraction_below(v, false);
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            stop = k;
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = if h.uses_custom_buckets() || zero_bucket {
                linear(lower)
            } else {
                exponential(lower)
            };
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = if h.uses_custom_buckets() || zero_bucket {
                linear(upper)
            } else {
                exponential(upper)
            };
            upper_set = true;
        }
        if lower_set && upper_set {
            stop = k;
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        for b in buckets.iter().skip(stop + 1) {
            count += b.count;
        }
        if count < h.count {
            ev.info(anno::fraction_nans(metric));
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// The variance of the observations, each bucket's count placed at its (geometric, for
/// exponential buckets; arithmetic, for custom) midpoint.
pub fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = val - mean;
        (var, c) = super::value::kahan_inc(b.count * delta * delta, var, c);
    }
    (var + c) / h.count
}

/// Histograms as Prometheus's `HistogramStatsIterator` yields them to `histogram_count`,
/// `histogram_sum` and `histogram_avg`: count and sum only, and an "unknown" hint replaced by
/// reset detection against the previous sample read in a scan starting at `scan_from`.
pub fn stats_view(hs: &[(i64, Hist)], scan_from: i64) -> Vec<(i64, Hist)> {
    let mut last: Option<FloatHistogram> = None;
    hs.iter()
        .map(|(t, h)| {
            let mut hint = h.hint;
            let stale = muninn_storage::is_stale_nan(h.sum);
            if *t >= scan_from && !stale {
                if hint == CounterResetHint::Unknown
                    && let Some(prev) = &last
                {
                    hint = if h.detect_reset(prev) {
                        CounterResetHint::Reset
                    } else {
                        CounterResetHint::NotReset
                    };
                }
                let mut full = (**h).clone();
                full.hint = hint;
                last = Some(full);
            }
            let stripped = FloatHistogram {
                hint,
                schema: h.schema,
                count: h.count,
                sum: h.sum,
                ..Default::default()
            };
            (*t, Hist::new(stripped))
        })
        .collect()
}
