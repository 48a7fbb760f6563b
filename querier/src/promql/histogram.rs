//! `histogram_quantile` over classic (`le`-bucketed) histograms, with Prometheus's bucket
//! coalescing and monotonicity repair.

use std::collections::HashMap;

use muninn_storage::labels::Labels;
use promql_parser::parser::Call;

use super::eval::{Ctx, Evaluator};
use super::value::{Series, Value, format_float};
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
    let v = ev.eval_vector(v_expr, ctx).await?;
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut gi: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in v.iter().enumerate() {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        let Ok(ub) = parse_le(le) else {
            ev.info(format!(
                "PromQL info: bucket label \"le\" is missing or has a malformed value of {le:?}"
            ));
            continue;
        };
        let key = Labels(
            s.labels
                .0
                .iter()
                .filter(|l| l.name != "le" && l.name != "__name__")
                .cloned()
                .collect(),
        );
        let g = *gi.entry(key.clone()).or_insert_with(|| {
            groups.push((key, vec![]));
            groups.len() - 1
        });
        groups[g].1.push((ub, i));
    }
    if let Some(bad) = q.iter().find(|x| x.is_nan() || **x < 0.0 || **x > 1.0) {
        ev.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            format_float(*bad)
        ));
    }
    let mut out = Vec::new();
    let mut buckets = Vec::new();
    for (key, members) in groups {
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
            let (res, forced) = bucket_quantile(q[step], &mut buckets);
            if forced {
                ev.info("PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".into());
            }
            *slot = Some(res);
        }
        if vals.iter().any(Option::is_some) {
            out.push(Series {
                labels: key,
                vals,
                drop_name: false,
            });
        }
    }
    Ok(Value::Vector(out))
}

fn parse_le(s: &str) -> std::result::Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.trim().parse::<f64>().map_err(|_| ()),
    }
}
