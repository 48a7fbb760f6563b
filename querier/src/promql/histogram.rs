//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
//! (`le`-bucketed) histograms, with Prometheus's bucket coalescing and monotonicity repair,
//! and over native histograms (computed in [`super::native`]).

use hashbrown::HashMap;

use muninn_storage::histogram::FloatHistogram;
use muninn_storage::labels::{Labels, METRIC_NAME};
use promql_parser::parser::Call;

use super::annotations as anno;
use super::eval::{Ctx, Evaluator};
use super::value::{Series, Value, format_float, set_label};
use crate::{Error, Result};

const SMALL_DELTA_TOLERANCE: f64 = 1e-12;
const MIN_NORMAL: f64 = f64::MIN_POSITIVE;

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Returns (quantile, forced monotonic).
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce buckets with the same upper bound.
    let mut co: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match co.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => co.push((ub, c)),
        }
    }
    let mut forced = false;
    let mut prev = co[0].1;
    for b in co.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if cur < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if co.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = co[co.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = co[..co.len() - 1].partition_point(|x| x.1 < rank);
    if b == co.len() - 1 {
        return (co[co.len() - 2].0, forced);
    }
    if b == 0 && co[0].0 <= 0.0 {
        return (co[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, co[b].0, co[b].1);
    if b > 0 {
        start = co[b - 1].0;
        count -= co[b - 1].1;
        rank -= co[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Classic histogram buckets grouped by their labels without `le` (and `__name__`).
struct Groups {
    groups: Vec<(Labels, Vec<(f64, usize)>)>,
}

fn group_buckets(ev: &Evaluator<'_>, v: &[Series]) -> Groups {
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut gi: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in v.iter().enumerate() {
        let le = s.labels.get("le").unwrap_or("");
        let Ok(ub) = parse_le(le) else {
            let name = s.labels.get("__name__").unwrap_or("");
            ev.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?}"
            ));
            continue;
        };
        let key = Labels(
            s.labels
                .0
                .iter()
                .filter(|l| l.name != "le")
                .cloned()
                .collect(),
        );
        let g = *gi.entry(key.clone()).or_insert_with(|| {
            groups.push((key, vec![]));
            groups.len() - 1
        });
        groups[g].1.push((ub, i));
    }
    Groups { groups }
}

fn warn_quantile(ev: &Evaluator<'_>, q: f64) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            format_float(q)
        ));
    }
}

/// Evaluates `f(buckets)` per group and step.
fn per_group(
    v: &[Series],
    groups: Groups,
    n: usize,
    mut f: impl FnMut(usize, &mut Vec<(f64, f64)>) -> Option<f64>,
) -> Vec<(Labels, Vec<Option<f64>>)> {
    let mut out = Vec::new();
    let mut buckets = Vec::new();
    for (key, members) in groups.groups {
        let mut vals = vec![None; n];
        for (step, slot) in vals.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                members
                    .iter()
                    .filter_map(|&(ub, i)| v[i].vals[step].map(|c| (ub, c))),
            );
            if buckets.is_empty() {
                continue;
            }
            *slot = f(step, &mut buckets);
        }
        if vals.iter().any(Option::is_some) {
            out.push((key, vals));
        }
    }
    out
}

/// Splits an input vector into its classic part (float samples) and its native part
/// (histogram samples). Where a native histogram has the labels of a classic histogram's
/// buckets (less `le`) at the same step, both are dropped with a warning, as Prometheus does.
fn split_native(ev: &Evaluator<'_>, v: Vec<Series>, n: usize) -> (Vec<Series>, Vec<Series>) {
    let mut native: Vec<Series> = Vec::new();
    let mut classic: Vec<Series> = Vec::with_capacity(v.len());
    for mut s in v {
        if s.hists.iter().any(Option::is_some) {
            native.push(Series {
                labels: s.labels.clone(),
                vals: vec![None; n],
                hists: std::mem::take(&mut s.hists),
                drop_name: s.drop_name,
            });
        }
        if s.vals.iter().any(Option::is_some) {
            classic.push(s);
        }
    }
    if native.is_empty() || classic.is_empty() {
        return (classic, native);
    }
    let mut by_sig: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, c) in classic.iter().enumerate() {
        let mut sig = c.labels.clone();
        set_label(&mut sig, "le", "");
        by_sig.entry(sig).or_default().push(i);
    }
    for h in &mut native {
        let Some(members) = by_sig.get(&h.labels) else {
            continue;
        };
        for step in 0..n {
            if h.hist(step).is_none() || !members.iter().any(|&i| classic[i].vals[step].is_some()) {
                continue;
            }
            ev.warn(anno::mixed_classic_native(
                h.labels.get(METRIC_NAME).unwrap_or(""),
            ));
            h.hists[step] = None;
            for &i in members {
                classic[i].vals[step] = None;
            }
        }
    }
    (classic, native)
}

/// One float series per native input series: `f(step, histogram, metric name)` where the
/// step holds a histogram.
fn per_native(
    native: &[Series],
    n: usize,
    mut f: impl FnMut(usize, &FloatHistogram, &str) -> f64,
) -> Vec<Series> {
    native
        .iter()
        .filter_map(|s| {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("");
            let vals: Vec<Option<f64>> =
                (0..n).map(|i| s.hist(i).map(|h| f(i, h, metric))).collect();
            vals.iter()
                .any(Option::is_some)
                .then(|| Series::floats(s.labels.clone(), vals, true))
        })
        .collect()
}

const MONOTONIC_INFO: &str = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

pub async fn histogram_quantile(ev: &Evaluator<'_>, c: &Call, ctx: &Ctx) -> Result<Value> {
    let n = ctx.len();
    let q_expr = c
        .args
        .args
        .first()
        .ok_or_else(|| Error::BadData("histogram_quantile needs 2 arguments".into()))?;
    let v_expr = c
        .args
        .args
        .get(1)
        .ok_or_else(|| Error::BadData("histogram_quantile needs 2 arguments".into()))?;
    let q = ev.eval_scalar(q_expr, ctx).await?;
    let prev = ev.enter_buckets(true);
    let v = ev.eval_vector(v_expr, ctx).await;
    ev.restore_buckets(prev);
    let v = v?;
    q.iter().for_each(|q| warn_quantile(ev, *q));
    ev.set_pos(v_expr);
    let (v, native) = split_native(ev, v, n);
    let native_out = per_native(&native, n, |i, h, m| {
        super::native::quantile(ev, q[i], h, m)
    });
    let groups = group_buckets(ev, &v);
    let out = per_group(&v, groups, n, |step, b| {
        let (res, forced) = bucket_quantile(q[step], b);
        if forced {
            ev.info(MONOTONIC_INFO.into());
        }
        Some(res)
    });
    Ok(Value::Vector(
        native_out
            .into_iter()
            .chain(
                out.into_iter()
                    .map(|(labels, vals)| Series::floats(labels, vals, true)),
            )
            .collect(),
    ))
}

/// `histogram_quantiles(v, "label", q1, q2, ...)`: one output series per quantile, labelled.
pub async fn histogram_quantiles(ev: &Evaluator<'_>, c: &Call, ctx: &Ctx) -> Result<Value> {
    let n = ctx.len();
    let args = &c.args.args;
    let first = args
        .first()
        .ok_or_else(|| Error::BadData("histogram_quantiles needs arguments".into()))?;
    let prev = ev.enter_buckets(true);
    let v = ev.eval_vector(first, ctx).await;
    ev.restore_buckets(prev);
    let v = v?;
    let label = match args.get(1).map(|a| a.as_ref()) {
        Some(promql_parser::parser::Expr::StringLiteral(s)) => s.val.clone(),
        _ => {
            return Err(Error::BadData(
                "histogram_quantiles: the second argument must be a label name".into(),
            ));
        }
    };
    let mut qs = vec![];
    for a in args.iter().skip(2) {
        qs.push(ev.eval_scalar(a, ctx).await?);
    }
    for (q, a) in qs.iter().zip(args.iter().skip(2)) {
        ev.set_pos(a);
        q.iter().for_each(|q| warn_quantile(ev, *q));
    }
    ev.set_pos(first);
    let mut out = Vec::new();
    let (v, native) = split_native(ev, v, n);
    for q in &qs {
        for mut s in per_native(&native, n, |i, h, m| {
            super::native::quantile(ev, q[i], h, m)
        }) {
            super::value::set_label(&mut s.labels, &label, &format!("{:?}", q[0]));
            out.push(s);
        }
        let groups = group_buckets(ev, &v);
        let res = per_group(&v, groups, n, |step, b| {
            let (r, forced) = bucket_quantile(q[step], b);
            if forced {
                ev.info(MONOTONIC_INFO.into());
            }
            Some(r)
        });
        for (mut labels, vals) in res {
            super::value::set_label(&mut labels, &label, &format!("{:?}", q[0]));
            out.push(Series {
                labels,
                vals,
                hists: Vec::new(),
                drop_name: true,
            });
        }
    }
    Ok(Value::Vector(out))
}

/// `histogram_fraction(lower, upper, v)` over classic buckets.
pub async fn histogram_fraction(ev: &Evaluator<'_>, c: &Call, ctx: &Ctx) -> Result<Value> {
    let n = ctx.len();
    let args = &c.args.args;
    let get = |i: usize| {
        args.get(i)
            .ok_or_else(|| Error::BadData("histogram_fraction needs 3 arguments".into()))
    };
    let lower = ev.eval_scalar(get(0)?, ctx).await?;
    let upper = ev.eval_scalar(get(1)?, ctx).await?;
    let prev = ev.enter_buckets(true);
    let v = ev.eval_vector(get(2)?, ctx).await;
    ev.restore_buckets(prev);
    let v = v?;
    ev.set_pos(get(2)?);
    let (v, native) = split_native(ev, v, n);
    let native_out = per_native(&native, n, |i, h, m| {
        super::native::fraction(ev, lower[i], upper[i], h, m)
    });
    let groups = group_buckets(ev, &v);
    let out = per_group(&v, groups, n, |step, b| {
        Some(bucket_fraction(lower[step], upper[step], b))
    });
    Ok(Value::Vector(
        native_out
            .into_iter()
            .chain(
                out.into_iter()
                    .map(|(labels, vals)| Series::floats(labels, vals, true)),
            )
            .collect(),
    ))
}

/// Fraction of observations in `[lower, upper]`, interpolating linearly inside finite buckets;
/// the first bucket spans from 0 when its bound is positive, and an infinitely wide bucket
/// contributes nothing to a bound that falls inside it.
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut co: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match co.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => co.push((ub, c)),
        }
    }
    let count = co[co.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(ub, bc)) in co.iter().enumerate() {
        let lb = if i > 0 {
            co[i - 1].0
        } else if ub > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let interp = |v: f64| {
            if lb.is_infinite() || ub.is_infinite() {
                // No interpolation in an infinitely wide bucket.
                if lb.is_infinite() { bc } else { rank }
            } else {
                rank + (bc - rank) * (v - lb) / (ub - lb)
            }
        };
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bc;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// An `le` label value as a bound (`None` if it is not a number).
pub fn parse_le_value(s: &str) -> Option<f64> {
    parse_le(s).ok()
}

fn parse_le(s: &str) -> std::result::Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.trim().parse::<f64>().map_err(|_| ()),
    }
}
