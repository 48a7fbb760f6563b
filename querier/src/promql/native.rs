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

/// `sum_over_time` of histograms (Kahan-compensated). `Err` when schemas cannot mix.
pub fn sum_over_time(
    points: &[(i64, Hist)],
    hints: &mut ResetHints,
) -> Result<FloatHistogram, HistogramError> {
    let mut sum = (*points[0].1).clone();
    hints.see(&sum);
    let mut comp: Option<FloatHistogram> = None;
    for (_, h) in &points[1..] {
        hints.see(h);
        let c = comp.get_or_insert_with(|| sum.new_compensation());
        let i = sum.kahan_add(h, c)?;
        hints.reconciled(i.nhcb_bounds_reconciled);
    }
    if let Some(c) = comp {
        let i = sum.add(&c)?;
        hints.reconciled(i.nhcb_bounds_reconciled);
    }
    Ok(sum)
}

/// `avg_over_time` of histograms: a compensated sum, switching to an incremental mean once
/// the sum overflows, as Prometheus does.
pub fn avg_over_time(
    points: &[(i64, Hist)],
    hints: &mut ResetHints,
) -> Result<FloatHistogram, HistogramError> {
    let mut sum = (*points[0].1).clone();
    hints.see(&sum);
    let mut mean: Option<FloatHistogram> = None;
    let mut kc: Option<FloatHistogram> = None;
    let mut count = 1.0;
    for (i, (_, h)) in points[1..].iter().enumerate() {
        hints.see(h);
        count = (i + 2) as f64;
        if mean.is_none() {
            let mut s2 = sum.clone();
            let mut c2 = kc.clone().unwrap_or_else(|| sum.new_compensation());
            let info = s2.kahan_add(h, &mut c2)?;
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
        let m = mean.as_mut().expect("set above");
        if let Some(c) = kc.as_mut() {
            c.mul(q);
        }
        let mut to_add = (**h).clone();
        to_add.div(count);
        m.mul(q);
        let c = kc.get_or_insert_with(|| m.new_compensation());
        let info = m.kahan_add(&to_add, c)?;
        hints.reconciled(info.nhcb_bounds_reconciled);
    }
    if let Some(mut m) = mean {
        if let Some(c) = kc {
            m.add(&c)?;
        }
        return Ok(m);
    }
    match kc {
        Some(mut c) => {
            sum.div(count);
            c.div(count);
            sum.add(&c)?;
            Ok(sum)
        }
        None => {
            sum.div(count);
            Ok(sum)
        }
    }
}
