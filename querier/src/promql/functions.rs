//! PromQL functions: instant-vector math, time and label functions, and the range-vector
//! functions (`rate`, `*_over_time`, ...) with Prometheus's exact numerics.

use std::collections::HashMap;

use muninn_storage::histogram::FloatHistogram;
use muninn_storage::labels::{Labels, METRIC_NAME};
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::aggregate::{quantile, variance};
use super::annotations as anno;
use super::eval::{Ctx, Evaluator, duration_ms, matcher_sets};
use super::limits::{LABEL_OVERHEAD, SLOT_BYTES};
use super::native;
use super::value::{Hist, Matrix, RangeSeries, Series, Value, kahan_inc, set_label};
use crate::{Error, Result};

fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}

fn map_vector(v: Vec<Series>, f: impl Fn(f64) -> f64) -> Vec<Series> {
    v.into_iter()
        .map(|s| Series {
            labels: s.labels,
            vals: s.vals.into_iter().map(|x| x.map(&f)).collect(),
            hists: Vec::new(),
            drop_name: true,
        })
        .collect()
}

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args
        .args
        .get(i)
        .map(|b| b.as_ref())
        .ok_or_else(|| Error::BadData(format!("{}(): missing argument {}", c.func.name, i + 1)))
}

async fn string_arg(ev: &Evaluator<'_>, c: &Call, i: usize, ctx: &Ctx) -> Result<String> {
    match ev.eval(arg(c, i)?, ctx).await? {
        Value::String(s) => Ok(s),
        other => Err(Error::BadData(format!(
            "{}(): expected string argument, got {}",
            c.func.name,
            other.type_name()
        ))),
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let t = secs.floor() as i64;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (y, m, d) = muninn_proto::time::civil_from_days(days);
    match name {
        "minute" => ((sod / 60) % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_month" => f64::from(d),
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let mut doy = cum[(m - 1) as usize] + d;
            if m > 2 && is_leap(y) {
                doy += 1;
            }
            f64::from(doy)
        }
        "days_in_month" => f64::from(match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }),
        "month" => f64::from(m),
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// Labels of `absent()`'s output: the equality matchers of a selector argument; a label
/// constrained by any second matcher, or by a non-equality one, is left out (as Prometheus).
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let Ok(sets) = matcher_sets(vs) else {
        return Labels::default();
    };
    let mut out = Labels::default();
    let mut has: std::collections::HashSet<String> = std::collections::HashSet::new();
    for m in sets.first().into_iter().flatten() {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == muninn_storage::matcher::MatchOp::Equal && !has.contains(&m.name) {
            set_label(&mut out, &m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            set_label(&mut out, &m.name, "");
        }
    }
    out
}

/// Prometheus's extrapolated rate/increase/delta over one window.
fn extrapolated_rate(
    samples: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.1 - first.1;
    if counter {
        let mut prev = first.1;
        for &(_, v) in samples {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = first.0.saturating_sub(range_start) as f64 / 1000.0;
    let mut to_end = range_end.saturating_sub(last.0) as f64 / 1000.0;
    let sampled = last.0.saturating_sub(first.0) as f64 / 1000.0;
    let avg_step = sampled / (samples.len() - 1) as f64;
    let threshold = avg_step * 1.1;
    if to_start >= threshold {
        to_start = avg_step / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.1 >= 0.0 {
            to_zero = sampled * (first.1 / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_step / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Least-squares slope and intercept at `intercept_t`, as Prometheus's `linearRegression`.
fn linear_regression(samples: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = samples[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in samples.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = t.saturating_sub(intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn avg_over_time(s: &[(i64, f64)]) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0, 0.0, 0.0, 0.0);
    let mut incremental = false;
    for &(_, f) in s {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let cur = mean + c;
        (mean, c) = kahan_inc(f / count - cur / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

fn double_exponential_smoothing(s: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1, mut b) = (0.0, s[0].1, s[1].1 - s[0].1);
    for (i, &(_, v)) in s.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// Range-vector functions: one value per series per step from the window's samples.
#[allow(clippy::needless_range_loop)]
/// A range function (`rate`, `*_over_time`, ...) with its scalar arguments evaluated, applied
/// to the series of its range-vector argument one at a time: from a materialised matrix, or
/// as the store streams them (`Evaluator::for_each_range_series`).
pub(crate) struct RangeFn<'c> {
    name: &'static str,
    scalar_args: Vec<Vec<f64>>,
    ctx: &'c Ctx,
    n: usize,
    keeps_name: bool,
    sbuf: Vec<(i64, f64)>,
    buf: Vec<f64>,
}

impl<'c> RangeFn<'c> {
    /// Which argument is the range vector.
    pub(crate) fn matrix_arg(name: &str) -> usize {
        if matches!(name, "quantile_over_time") {
            1
        } else {
            0
        }
    }

    /// Evaluates the scalar arguments and checks them.
    pub(crate) async fn prepare(ev: &Evaluator<'_>, c: &Call, ctx: &'c Ctx) -> Result<Self> {
        let name = c.func.name;
        let mi = Self::matrix_arg(name);
        let scalar_args: Vec<Vec<f64>> = {
            let mut v = vec![];
            for (i, a) in c.args.args.iter().enumerate() {
                if i != mi {
                    v.push(ev.eval_scalar(a, ctx).await?);
                }
            }
            v
        };
        let n = ctx.len();
        if name == "double_exponential_smoothing"
            && let (Some(sf), Some(tf)) = (scalar_args.first(), scalar_args.get(1))
        {
            for i in 0..n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(Error::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                        sf[i]
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(Error::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                        tf[i]
                    )));
                }
            }
        }
        Ok(Self {
            name,
            scalar_args,
            ctx,
            n,
            keeps_name: matches!(name, "last_over_time" | "first_over_time"),
            sbuf: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// The function over one series of the range vector (`m` gives the windows; its series
    /// are not used): `None` when no step has a value.
    pub(crate) fn apply(
        &mut self,
        ev: &Evaluator<'_>,
        m: &Matrix,
        s: RangeSeries,
    ) -> Result<Option<Series>> {
        let (name, n, ctx) = (self.name, self.n, self.ctx);
        let (sbuf, buf) = (&mut self.sbuf, &mut self.buf);
        ev.check_deadline()?;
        s.decode_into(sbuf)?;
        ev.count_samples(sbuf.len())?;
        ev.charge_series(&s.labels, n)?;
        ev.count_samples(s.hists.len())?;
        let metric = s.labels.get(METRIC_NAME).unwrap_or("");
        let mut vals = Vec::with_capacity(n);
        let mut hists: Vec<Option<Hist>> = Vec::new();
        for i in 0..n {
            let w = m.window(sbuf, i);
            let (lo, hi) = m.windows[i];
            let hw = m.hwindow(&s.hists, i);
            if !hw.is_empty() {
                let step = hist_step(ev, name, w, hw, (lo, hi, m.range_ms), metric);
                match step {
                    HStep::None => {
                        vals.push(None);
                        continue;
                    }
                    HStep::Float(v) => {
                        vals.push(Some(v));
                        continue;
                    }
                    HStep::Hist(h) => {
                        if hists.is_empty() {
                            hists = vec![None; n];
                        }
                        hists[i] = Some(Hist::new(h));
                        vals.push(None);
                        continue;
                    }
                    HStep::Floats => {}
                }
            }
            let v = if w.is_empty() {
                None
            } else {
                match name {
                    "rate" => extrapolated_rate(w, lo, hi, m.range_ms, true, true),
                    "increase" => extrapolated_rate(w, lo, hi, m.range_ms, true, false),
                    "delta" => extrapolated_rate(w, lo, hi, m.range_ms, false, false),
                    "irate" | "idelta" => {
                        if w.len() < 2 {
                            None
                        } else {
                            let (a, b) = (w[w.len() - 2], w[w.len() - 1]);
                            let mut d = b.1 - a.1;
                            if name == "irate" {
                                if b.1 < a.1 {
                                    d = b.1;
                                }
                                let dt = b.0.saturating_sub(a.0) as f64 / 1000.0;
                                if dt == 0.0 { None } else { Some(d / dt) }
                            } else {
                                Some(d)
                            }
                        }
                    }
                    "deriv" => (w.len() >= 2).then(|| linear_regression(w, w[0].0).0),
                    "predict_linear" => (w.len() >= 2).then(|| {
                        let (slope, icpt) = linear_regression(w, ctx.at(i));
                        slope * self.scalar_args[0][i] + icpt
                    }),
                    "resets" => Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
                    "changes" => Some(
                        w.windows(2)
                            .filter(|p| !(p[1].1 == p[0].1 || (p[1].1.is_nan() && p[0].1.is_nan())))
                            .count() as f64,
                    ),
                    "avg_over_time" => Some(avg_over_time(w)),
                    "sum_over_time" => {
                        let (mut sum, mut cc) = (0.0, 0.0);
                        for &(_, f) in w {
                            (sum, cc) = kahan_inc(f, sum, cc);
                        }
                        Some(if (sum + cc).is_infinite() {
                            sum
                        } else {
                            sum + cc
                        })
                    }
                    "count_over_time" => Some(w.len() as f64),
                    "min_over_time" => {
                        let mut mv = w[0].1;
                        for &(_, f) in w {
                            if f < mv || mv.is_nan() {
                                mv = f;
                            }
                        }
                        Some(mv)
                    }
                    "max_over_time" => {
                        let mut mv = w[0].1;
                        for &(_, f) in w {
                            if f > mv || mv.is_nan() {
                                mv = f;
                            }
                        }
                        Some(mv)
                    }
                    "last_over_time" => Some(w[w.len() - 1].1),
                    "first_over_time" => Some(w[0].1),
                    "ts_of_last_over_time" => Some(w[w.len() - 1].0 as f64 / 1000.0),
                    "ts_of_first_over_time" => Some(w[0].0 as f64 / 1000.0),
                    "ts_of_min_over_time" | "ts_of_max_over_time" => {
                        let want_max = name == "ts_of_max_over_time";
                        let (mut bt, mut bv) = (w[0].0, w[0].1);
                        for &(t, f) in w {
                            let better = if want_max { f >= bv } else { f <= bv };
                            if better || bv.is_nan() {
                                bt = t;
                                bv = f;
                            }
                        }
                        Some(bt as f64 / 1000.0)
                    }
                    "present_over_time" => Some(1.0),
                    "stddev_over_time" | "stdvar_over_time" => {
                        buf.clear();
                        buf.extend(w.iter().map(|x| x.1));
                        let var = variance(buf);
                        Some(if name == "stddev_over_time" {
                            var.sqrt()
                        } else {
                            var
                        })
                    }
                    "quantile_over_time" => {
                        buf.clear();
                        buf.extend(w.iter().map(|x| x.1));
                        Some(quantile(self.scalar_args[0][i], buf))
                    }
                    "mad_over_time" if w.iter().any(|x| x.1.is_nan()) => Some(f64::NAN),
                    "mad_over_time" => {
                        buf.clear();
                        buf.extend(w.iter().map(|x| x.1));
                        let median = quantile(0.5, buf);
                        let mut devs: Vec<f64> = buf.iter().map(|v| (v - median).abs()).collect();
                        Some(quantile(0.5, &mut devs))
                    }
                    "double_exponential_smoothing" => double_exponential_smoothing(
                        w,
                        self.scalar_args[0][i],
                        self.scalar_args[1][i],
                    ),
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "function {name}() is not supported yet"
                        )));
                    }
                }
            };
            vals.push(v);
        }
        if !(vals.iter().any(Option::is_some) || hists.iter().any(Option::is_some)) {
            return Ok(None);
        }
        if matches!(name, "rate" | "increase")
            && vals.iter().any(Option::is_some)
            && let Some(n) = s.labels.get(METRIC_NAME)
            && !(n.ends_with("_total")
                || n.ends_with("_sum")
                || n.ends_with("_count")
                || n.ends_with("_bucket"))
        {
            ev.info(format!("PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"));
        }
        Ok(Some(Series {
            labels: s.labels,
            vals,
            hists,
            drop_name: s.drop_name || !self.keeps_name,
        }))
    }

    /// Annotations about the arguments, once every series is done.
    pub(crate) fn finish(&self, ev: &Evaluator<'_>) {
        if self.name == "quantile_over_time"
            && let Some(q) = self.scalar_args[0]
                .iter()
                .find(|q| q.is_nan() || **q < 0.0 || **q > 1.0)
        {
            ev.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}",
                super::value::format_float(*q)
            ));
        }
    }
}

async fn range_function(ev: &Evaluator<'_>, c: &Call, ctx: &Ctx) -> Result<Value> {
    let name = c.func.name;
    let mi = RangeFn::matrix_arg(name);
    let marg = arg(c, mi)?;
    if name != "absent_over_time" && ev.streams_range(marg) {
        // Series by series from the store: the input range vector is never held whole.
        let mut rf = RangeFn::prepare(ev, c, ctx).await?;
        let mut out = Vec::new();
        ev.for_each_range_series(marg, ctx, &mut |m, s| {
            if let Some(v) = rf.apply(ev, m, s)? {
                out.push(v);
            }
            Ok(())
        })
        .await?;
        rf.finish(ev);
        return Ok(Value::Vector(out));
    }
    let mut m: Matrix = ev.eval_matrix(marg, ctx).await?;
    if name == "absent_over_time" {
        let n = ctx.len();
        let mut sbuf: Vec<(i64, f64)> = Vec::new();
        let mut present = vec![false; n];
        for s in &m.series {
            s.decode_into(&mut sbuf)?;
            for (i, p) in present.iter_mut().enumerate() {
                *p |= !m.window(&sbuf, i).is_empty() || !m.hwindow(&s.hists, i).is_empty();
            }
        }
        let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
        if vals.iter().any(Option::is_some) {
            return Ok(Value::Vector(vec![Series {
                labels: absent_labels(arg(c, 0)?),
                vals,
                hists: Vec::new(),
                drop_name: false,
            }]));
        }
        return Ok(Value::Vector(vec![]));
    }
    let mut rf = RangeFn::prepare(ev, c, ctx).await?;
    let mut out = Vec::with_capacity(m.series.len());
    for s in std::mem::take(&mut m.series) {
        ev.checkpoint().await?;
        if let Some(v) = rf.apply(ev, &m, s)? {
            out.push(v);
        }
    }
    rf.finish(ev);
    Ok(Value::Vector(out))
}

/// What a range function makes of a window holding histograms.
enum HStep {
    /// No value at this step.
    None,
    Float(f64),
    Hist(FloatHistogram),
    /// Computed over the window's floats alone (histograms ignored, annotated).
    Floats,
}

/// A range function's step over a window with histograms (`hw` non-empty) and maybe floats.
fn hist_step(
    ev: &Evaluator<'_>,
    name: &str,
    w: &[(i64, f64)],
    hw: &[(i64, Hist)],
    (lo, hi, range_ms): (i64, i64, i64),
    metric: &str,
) -> HStep {
    let mixed = |ev: &Evaluator<'_>| {
        ev.warn(anno::mixed_floats_histograms(metric));
        HStep::None
    };
    let opt = |h: Option<FloatHistogram>| h.map_or(HStep::None, HStep::Hist);
    match name {
        "rate" | "increase" | "delta" => {
            if !w.is_empty() {
                return mixed(ev);
            }
            let counter = name != "delta";
            opt(native::extrapolated_rate(
                ev,
                hw,
                lo,
                hi,
                range_ms,
                counter,
                name == "rate",
                metric,
            ))
        }
        "irate" | "idelta" => {
            // The two latest samples of either kind.
            let mut last: Vec<(i64, Option<f64>, Option<&Hist>)> = Vec::with_capacity(4);
            last.extend(w.iter().rev().take(2).map(|(t, v)| (*t, Some(*v), None)));
            last.extend(hw.iter().rev().take(2).map(|(t, h)| (*t, None, Some(h))));
            if last.len() < 2 {
                return HStep::None;
            }
            last.sort_by_key(|x| x.0);
            let (a, b) = (last[last.len() - 2], last[last.len() - 1]);
            match (a.2, b.2) {
                (Some(ha), Some(hb)) => opt(native::instant_value(
                    ev,
                    (a.0, ha),
                    (b.0, hb),
                    name == "irate",
                    metric,
                )),
                (None, None) => HStep::Floats,
                _ => {
                    if b.0 == a.0 {
                        return HStep::None;
                    }
                    mixed(ev)
                }
            }
        }
        "deriv" | "predict_linear" | "double_exponential_smoothing" | "holt_winters" => {
            if !w.is_empty() {
                ev.info(anno::ignored_in_mixed_range(metric));
            }
            if w.len() < 2 {
                HStep::None
            } else {
                HStep::Floats
            }
        }
        "min_over_time"
        | "max_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "quantile_over_time"
        | "mad_over_time" => {
            if w.is_empty() {
                return HStep::None;
            }
            ev.info(anno::ignored_in_mixed_range(metric));
            HStep::Floats
        }
        "sum_over_time" | "avg_over_time" => {
            if !w.is_empty() {
                return mixed(ev);
            }
            let mut hints = native::ResetHints::default();
            let hs: Vec<&FloatHistogram> = hw.iter().map(|(_, h)| &**h).collect();
            let r = if name == "sum_over_time" {
                native::sum_hists(&hs, &mut hints)
            } else {
                native::avg_hists(&hs, &mut hints)
            };
            match r {
                Ok(h) => {
                    hints.report(ev);
                    HStep::Hist(h)
                }
                Err(_) => {
                    ev.warn(anno::mixed_exponential_custom(metric));
                    HStep::None
                }
            }
        }
        "count_over_time" => HStep::Float((w.len() + hw.len()) as f64),
        "present_over_time" => HStep::Float(1.0),
        "last_over_time" => {
            let (ht, h) = &hw[hw.len() - 1];
            match w.last() {
                Some((ft, f)) if ft > ht => HStep::Float(*f),
                _ => HStep::Hist((**h).clone()),
            }
        }
        "first_over_time" => {
            let (ht, h) = &hw[0];
            match w.first() {
                Some((ft, f)) if ft < ht => HStep::Float(*f),
                _ => HStep::Hist((**h).clone()),
            }
        }
        "ts_of_last_over_time" => {
            let t = w.last().map_or(i64::MIN, |x| x.0).max(hw[hw.len() - 1].0);
            HStep::Float(t as f64 / 1000.0)
        }
        "ts_of_first_over_time" => {
            let t = w.first().map_or(i64::MAX, |x| x.0).min(hw[0].0);
            HStep::Float(t as f64 / 1000.0)
        }
        "resets" | "changes" => {
            // Both kinds merged in time order.
            let mut seq: Vec<(i64, Option<f64>, Option<&Hist>)> = w
                .iter()
                .map(|(t, v)| (*t, Some(*v), None))
                .chain(hw.iter().map(|(t, h)| (*t, None, Some(h))))
                .collect();
            seq.sort_by_key(|x| x.0);
            let mut n = 0usize;
            for p in seq.windows(2) {
                let (a, b) = (p[0], p[1]);
                let hit = match (a.2, b.2, a.1, b.1) {
                    (None, None, Some(x), Some(y)) => {
                        if name == "resets" {
                            y < x
                        } else {
                            !(x == y || (x.is_nan() && y.is_nan()))
                        }
                    }
                    (Some(x), Some(y), _, _) => {
                        if name == "resets" {
                            y.detect_reset(x)
                        } else {
                            !y.equals(x)
                        }
                    }
                    _ => true,
                };
                n += usize::from(hit);
            }
            HStep::Float(n as f64)
        }
        _ => HStep::Floats,
    }
}

pub(crate) const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "mad_over_time",
    "absent_over_time",
    "double_exponential_smoothing",
    "holt_winters",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
];

pub async fn eval(ev: &Evaluator<'_>, c: &Call, ctx: &Ctx) -> Result<Value> {
    let name = c.func.name;
    let n = ctx.len();
    // Prometheus places a function's annotations at its first argument unless it says
    // otherwise (the histogram functions, sort).
    match c.args.args.first() {
        Some(a0) => ev.set_pos(a0),
        None => ev.set_pos_of(c),
    }
    if RANGE_FUNCTIONS.contains(&name) {
        return range_function(ev, c, ctx).await;
    }
    // Every function below builds at most one value per step for a new series or scalar
    // before its result is settled; inputs that grow (label_replace, label_join) charge
    // as they go.
    ev.charge(n.saturating_mul(SLOT_BYTES))?;
    match name {
        "time" => Ok(Value::Scalar(
            (0..n).map(|i| ctx.at(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; n])),
        "start" => Ok(Value::Scalar(vec![ev.query_start as f64 / 1000.0; n])),
        "end" => Ok(Value::Scalar(vec![ev.query_end as f64 / 1000.0; n])),
        "range" => Ok(Value::Scalar(vec![
            ev.query_end.saturating_sub(ev.query_start)
                as f64
                / 1000.0;
            n
        ])),
        "step" => Ok(Value::Scalar(vec![ev.query_step as f64 / 1000.0; n])),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(c, 0)?, ctx).await?;
            let b = ev.eval_scalar(arg(c, 1)?, ctx).await?;
            let f = |x: f64, y: f64| {
                if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else if name == "min_of" {
                    x.min(y)
                } else {
                    x.max(y)
                }
            };
            Ok(Value::Scalar(
                a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect(),
            ))
        }
        "vector" => {
            let v = ev.eval_scalar(arg(c, 0)?, ctx).await?;
            Ok(Value::Vector(vec![Series {
                labels: Labels::default(),
                vals: v.into_iter().map(Some).collect(),
                hists: Vec::new(),
                drop_name: false,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            Ok(Value::Scalar(
                (0..n)
                    .map(|i| {
                        let mut it = v.iter().filter_map(|s| s.vals[i]);
                        match (it.next(), it.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "timestamp" => {
            let a = arg(c, 0)?;
            let v = match unwrap_parens(a) {
                Expr::VectorSelector(vs) => ev.vector_selector(vs, ctx, true).await?,
                other => {
                    let v = ev.eval_vector(other, ctx).await?;
                    v.into_iter()
                        .map(|s| Series {
                            vals: (0..n)
                                .map(|i| s.has(i).then(|| ctx.at(i) as f64 / 1000.0))
                                .collect(),
                            labels: s.labels,
                            hists: Vec::new(),
                            drop_name: s.drop_name,
                        })
                        .collect()
                }
            };
            Ok(Value::Vector(
                v.into_iter()
                    .map(|mut s| {
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        "absent" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let vals: Vec<Option<f64>> = (0..n)
                .map(|i| v.iter().all(|s| !s.has(i)).then_some(1.0))
                .collect();
            if vals.iter().any(Option::is_some) {
                Ok(Value::Vector(vec![Series {
                    labels: absent_labels(arg(c, 0)?),
                    vals,
                    hists: Vec::new(),
                    drop_name: false,
                }]))
            } else {
                Ok(Value::Vector(vec![]))
            }
        }
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sin" | "cos"
        | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh"
        | "atanh" | "deg" | "rad" | "sgn" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => f64::sinh,
                "cosh" => f64::cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
                "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
                _ => |x: f64| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        x
                    }
                },
            };
            Ok(Value::Vector(map_vector(v, f)))
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let to = match c.args.args.get(1) {
                Some(a) => ev.eval_scalar(a, ctx).await?,
                None => vec![1.0; n],
            };
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Series {
                        labels: s.labels,
                        vals: s
                            .vals
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                x.map(|f| {
                                    let inv = 1.0 / to[i];
                                    (f * inv + 0.5).floor() / inv
                                })
                            })
                            .collect(),
                        hists: Vec::new(),
                        drop_name: true,
                    })
                    .collect(),
            ))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let a1 = ev.eval_scalar(arg(c, 1)?, ctx).await?;
            let a2 = if name == "clamp" {
                Some(ev.eval_scalar(arg(c, 2)?, ctx).await?)
            } else {
                None
            };
            Ok(Value::Vector(
                v.into_iter()
                    .filter_map(|s| {
                        let vals: Vec<Option<f64>> = s
                            .vals
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                let f = (*x)?;
                                match name {
                                    "clamp_min" => Some(f.max(a1[i]).max(if a1[i].is_nan() {
                                        f64::NAN
                                    } else {
                                        f64::NEG_INFINITY
                                    })),
                                    "clamp_max" => Some(if a1[i].is_nan() {
                                        f64::NAN
                                    } else {
                                        f.min(a1[i])
                                    }),
                                    _ => {
                                        let (lo, hi) =
                                            (a1[i], a2.as_ref().map_or(f64::NAN, |a| a[i]));
                                        if hi < lo {
                                            None
                                        } else if lo.is_nan() || hi.is_nan() {
                                            Some(f64::NAN)
                                        } else {
                                            Some(f.max(lo).min(hi))
                                        }
                                    }
                                }
                            })
                            .collect();
                        vals.iter().any(Option::is_some).then_some(Series {
                            labels: s.labels,
                            vals,
                            hists: Vec::new(),
                            drop_name: true,
                        })
                    })
                    .collect(),
            ))
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let v = match c.args.args.first() {
                Some(a) => ev.eval_vector(a, ctx).await?,
                None => vec![Series {
                    labels: Labels::default(),
                    vals: (0..n).map(|i| Some(ctx.at(i) as f64 / 1000.0)).collect(),
                    hists: Vec::new(),
                    drop_name: false,
                }],
            };
            Ok(Value::Vector(map_vector(v, |x| date_part(name, x))))
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let dst = string_arg(ev, c, 1, ctx).await?;
            let repl = string_arg(ev, c, 2, ctx).await?;
            let src = string_arg(ev, c, 3, ctx).await?;
            let re_s = string_arg(ev, c, 4, ctx).await?;
            let re = Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                Error::BadData(format!(
                    "invalid regular expression in label_replace(): {re_s}: {e}"
                ))
            })?;
            if !valid_label_name(&dst) {
                return Err(Error::BadData(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                ev.checkpoint().await?;
                let sv = s.labels.get(&src).unwrap_or("").to_owned();
                if let Some(caps) = re.captures(&sv) {
                    // The new value is charged before it is built: its length is known from
                    // the template and the captures, and it is what may grow without bound.
                    ev.charge(
                        expanded_len(&repl, &caps).saturating_add(dst.len() + LABEL_OVERHEAD),
                    )?;
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    set_label(&mut s.labels, &dst, &res);
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                out.push(s);
            }
            unique_per_step(&out)?;
            Ok(Value::Vector(out))
        }
        "label_join" => {
            let v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            let dst = string_arg(ev, c, 1, ctx).await?;
            let sep = string_arg(ev, c, 2, ctx).await?;
            let mut srcs = vec![];
            for i in 3..c.args.args.len() {
                srcs.push(string_arg(ev, c, i, ctx).await?);
            }
            if !valid_label_name(&dst) {
                return Err(Error::BadData(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                ev.checkpoint().await?;
                let parts: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                let len = parts
                    .iter()
                    .map(|p| p.len())
                    .sum::<usize>()
                    .saturating_add(sep.len().saturating_mul(parts.len().saturating_sub(1)));
                ev.charge(len.saturating_add(dst.len() + LABEL_OVERHEAD))?;
                let joined = parts.join(&sep);
                set_label(&mut s.labels, &dst, &joined);
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
                out.push(s);
            }
            unique_per_step(&out)?;
            Ok(Value::Vector(out))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            // Histogram samples are dropped, as Prometheus's sort does.
            for s in &mut v {
                s.hists.clear();
            }
            v.retain(Series::any);
            if ev.query_step > 0 {
                ev.set_pos_of(c);
                ev.warn("PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into());
            }
            if n == 1 {
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            Ok(Value::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, ctx).await?;
            if ev.query_step > 0 {
                ev.set_pos_of(c);
                ev.warn("PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into());
            }
            let mut names = vec![];
            for i in 1..c.args.args.len() {
                names.push(string_arg(ev, c, i, ctx).await?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut ord = std::cmp::Ordering::Equal;
                for n in &names {
                    ord = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if ord != std::cmp::Ordering::Equal {
                        break;
                    }
                }
                if ord == std::cmp::Ordering::Equal {
                    ord = a.labels.cmp(&b.labels);
                }
                if desc { ord.reverse() } else { ord }
            });
            Ok(Value::Vector(v))
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // count, sum and avg need no buckets: selectors below read them without.
            let stats = matches!(name, "histogram_count" | "histogram_sum" | "histogram_avg");
            let v = if stats {
                let prev = ev.enter_buckets(false);
                let v = ev.eval_vector(arg(c, 0)?, ctx).await;
                ev.restore_buckets(prev);
                v?
            } else {
                ev.eval_vector(arg(c, 0)?, ctx).await?
            };
            let f = |h: &FloatHistogram| match name {
                "histogram_count" => h.count,
                "histogram_sum" => h.sum,
                "histogram_avg" => h.sum / h.count,
                "histogram_stddev" => native::variance(h).sqrt(),
                _ => native::variance(h),
            };
            Ok(Value::Vector(
                v.into_iter()
                    .filter(|s| s.hists.iter().any(Option::is_some))
                    .map(|s| {
                        let vals = (0..n).map(|i| s.hist(i).map(|h| f(h))).collect();
                        Series::floats(s.labels, vals, true)
                    })
                    .collect(),
            ))
        }
        "histogram_quantile" => super::histogram::histogram_quantile(ev, c, ctx).await,
        "histogram_quantiles" => super::histogram::histogram_quantiles(ev, c, ctx).await,
        "histogram_fraction" => super::histogram::histogram_fraction(ev, c, ctx).await,
        other => Err(Error::Unsupported(format!(
            "function {other}() is not supported yet"
        ))),
    }
}

use super::parse::valid_label_name;

/// The length of `caps.expand(template, ..)`'s output, computed without building it, so a
/// Fails, as Prometheus's engine does at a function's output, when two series with the same
/// labels (the metric name included: a name to be dropped is dropped only at the end) have a
/// value at the same step. `label_replace`/`label_join` are where this happens: without the
/// check, an aggregation or filter over their output would hide the collision.
fn unique_per_step(v: &[Series]) -> Result<()> {
    // Steps taken so far by each label set (only built for label sets seen twice).
    let mut first: HashMap<&Labels, usize> = HashMap::with_capacity(v.len());
    let mut taken: HashMap<&Labels, Vec<bool>> = HashMap::new();
    for (i, s) in v.iter().enumerate() {
        let Some(&j) = first.get(&s.labels) else {
            first.insert(&s.labels, i);
            continue;
        };
        let steps = taken
            .entry(&s.labels)
            .or_insert_with(|| v[j].vals.iter().map(Option::is_some).collect());
        for (t, x) in steps.iter_mut().zip(&s.vals) {
            if x.is_some() {
                if *t {
                    return Err(Error::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                *t = true;
            }
        }
    }
    Ok(())
}

/// label_replace() template such as `$1$1$1...` is charged before it is expanded. An
/// over-estimate where the regex crate would read a reference differently is harmless.
fn expanded_len(template: &str, caps: &regex::Captures<'_>) -> usize {
    let b = template.as_bytes();
    let mut len = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            len += 1;
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            len += 1;
            i += 2;
            continue;
        }
        // `${name}` or `$name` (letters, digits, `_`).
        let (name, next) = if b.get(i + 1) == Some(&b'{') {
            match template[i + 2..].find('}') {
                Some(e) => (&template[i + 2..i + 2 + e], i + 3 + e),
                None => {
                    len += 1;
                    i += 1;
                    continue;
                }
            }
        } else {
            let e = template[i + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(template.len(), |e| i + 1 + e);
            (&template[i + 1..e], e)
        };
        if name.is_empty() {
            len += 1;
            i += 1;
            continue;
        }
        let m = match name.parse::<usize>() {
            Ok(idx) => caps.get(idx),
            Err(_) => caps.name(name),
        };
        len = len.saturating_add(m.map_or(0, |m| m.len()));
        i = next;
    }
    len
}

/// Natural order: digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let (na, nb) = (
                a[si..i].trim_start_matches('0'),
                b[sj..j].trim_start_matches('0'),
            );
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        } else {
            let ord = ab[i].cmp(&bb[j]);
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

#[allow(dead_code)]
fn range_ms_of(e: &Expr) -> Option<i64> {
    match unwrap_parens(e) {
        Expr::MatrixSelector(m) => Some(duration_ms(&m.range)),
        Expr::Subquery(s) => Some(duration_ms(&s.range)),
        _ => None,
    }
}
