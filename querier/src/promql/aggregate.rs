//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, ...) with `by`/`without`,
//! per step, with Prometheus's numerics (Kahan summation, incremental mean on overflow).

use hashbrown::HashMap;

use muninn_storage::histogram::FloatHistogram;
use muninn_storage::labels::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::annotations as anno;
use super::eval::{Ctx, Evaluator};
use super::limits::{labels_bytes, series_bytes};
use super::native;
use super::value::{Hist, Series, Value, format_float, kahan_inc, set_label};
use crate::{Error, Result};

pub(super) fn group_key(l: &Labels, m: Option<&LabelModifier>) -> Labels {
    match m {
        None => Labels::default(),
        Some(LabelModifier::Include(names)) => Labels(
            l.0.iter()
                .filter(|x| names.labels.contains(&x.name))
                .cloned()
                .collect(),
        ),
        Some(LabelModifier::Exclude(names)) => Labels(
            l.0.iter()
                .filter(|x| x.name != METRIC_NAME && !names.labels.contains(&x.name))
                .cloned()
                .collect(),
        ),
    }
}

/// Prometheus's `quantile`: linear interpolation between the closest ranks; NaN sorts first.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Mean as Prometheus's `avg` aggregation computes it.
pub fn avg(values: &[f64]) -> f64 {
    let mut it = values.iter();
    let Some(&first) = it.next() else {
        return f64::NAN;
    };
    let (mut sum, mut c, mut count) = (first, 0.0, 1.0);
    let (mut incremental, mut mean) = (false, 0.0);
    for &f in it {
        count += 1.0;
        if !incremental {
            let (nv, nc) = kahan_inc(f, sum, c);
            if !nv.is_infinite() {
                sum = nv;
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
        let (m, nc) = kahan_inc(f / count - cur / count, mean, c);
        mean = m;
        c = nc;
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Kahan sum.
pub fn sum(values: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for (i, &f) in values.iter().enumerate() {
        if i == 0 {
            s = f;
        } else {
            (s, c) = kahan_inc(f, s, c);
        }
    }
    s + c
}

/// Population variance (Welford with Kahan-compensated mean).
pub fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut c, mut aux) = (0.0, 0.0, 0.0, 0.0);
    for &f in values {
        count += 1.0;
        let delta = f - (mean + c);
        (mean, c) = kahan_inc(delta / count, mean, c);
        aux += delta * (f - (mean + c));
    }
    aux / count
}

pub fn min(values: &[f64]) -> f64 {
    let mut m = values[0];
    for &f in &values[1..] {
        if m > f || m.is_nan() {
            m = f;
        }
    }
    m
}

pub fn max(values: &[f64]) -> f64 {
    let mut m = values[0];
    for &f in &values[1..] {
        if m < f || m.is_nan() {
            m = f;
        }
    }
    m
}

/// Prometheus's hash of a label set (xxhash64 of `name\xffvalue\xff...`).
pub fn labels_hash(l: &Labels) -> u64 {
    let mut b = Vec::with_capacity(128);
    for x in l.iter() {
        b.extend_from_slice(x.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(x.value.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

async fn param_scalar(ev: &Evaluator<'_>, p: Option<&Expr>, ctx: &Ctx) -> Result<Vec<f64>> {
    let p = p.ok_or_else(|| Error::BadData("aggregation needs a parameter".into()))?;
    ev.eval_scalar(p, ctx).await
}

pub async fn eval(ev: &Evaluator<'_>, a: &AggregateExpr, ctx: &Ctx) -> Result<Value> {
    let op = a.op.id();
    let n = ctx.len();
    let modifier = a.modifier.as_ref();
    // Prometheus places an aggregation's annotations at the aggregated expression, those
    // about its parameter at the parameter, topk/bottomk's at the aggregation itself.
    ev.set_pos(&a.expr);
    match op {
        token::T_COUNT_VALUES => {
            let label = match a.param.as_deref() {
                Some(Expr::StringLiteral(s)) => s.val.clone(),
                Some(other) => match ev.eval(other, ctx).await? {
                    Value::String(s) => s,
                    _ => {
                        return Err(Error::BadData(
                            "count_values parameter must be a string".into(),
                        ));
                    }
                },
                None => return Err(Error::BadData("count_values needs a label name".into())),
            };
            if !super::parse::valid_label_name(&label) {
                return Err(Error::Execution(format!(
                    "invalid label name {}",
                    super::parse::go_quote(&label)
                )));
            }
            let input = ev.eval_vector(&a.expr, ctx).await?;
            let mut out: Vec<Series> = Vec::new();
            let mut index: HashMap<Labels, usize> = HashMap::new();
            for step in 0..n {
                let mut counts: HashMap<Labels, f64> = HashMap::new();
                for s in &input {
                    let text = match (s.vals[step], s.hist(step)) {
                        (Some(v), _) => format_float(v),
                        (None, Some(h)) => go_histogram_string(h),
                        _ => continue,
                    };
                    let mut key = group_key(&s.labels, modifier);
                    set_label(&mut key, &label, &text);
                    *counts.entry(key).or_default() += 1.0;
                }
                for (key, c) in counts {
                    let idx = match index.get(&key) {
                        Some(&i) => i,
                        None => {
                            // The output series and the index's copy of its labels.
                            ev.charge(series_bytes(&key, n).saturating_add(labels_bytes(&key)))?;
                            out.push(Series {
                                labels: key.clone(),
                                vals: vec![None; n],
                                hists: Vec::new(),
                                drop_name: false,
                            });
                            index.insert(key, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    out[idx].vals[step] = Some(c);
                }
            }
            return Ok(Value::Vector(out));
        }
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
            let param = param_scalar(ev, a.param.as_deref(), ctx).await?;
            if n == 1
                && matches!(op, token::T_TOPK | token::T_BOTTOMK)
                && ev.streams_vector(&a.expr)
            {
                // Instant topk/bottomk hold k series per group, not the input.
                return super::stream_agg::select_k_instant(ev, a, param[0], ctx)
                    .await
                    .map(Value::Vector);
            }
            let input = ev.eval_vector(&a.expr, ctx).await?;
            // The per-series, per-step selection flags.
            ev.charge(input.len().saturating_mul(n.saturating_add(24)))?;
            return select_k(ev, a, &param, input, n).map(Value::Vector);
        }
        _ => {}
    }
    if super::stream_agg::streams(op) && ev.streams_vector(&a.expr) {
        // Folded series by series as the store streams them: neither the input nor the
        // function results over it are held.
        return super::stream_agg::aggregate(ev, a, ctx)
            .await
            .map(Value::Vector);
    }
    let param = match op {
        token::T_QUANTILE => Some(param_scalar(ev, a.param.as_deref(), ctx).await?),
        _ => None,
    };
    let input = ev.eval_vector(&a.expr, ctx).await?;
    // Group series once; values per step.
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    let mut gi: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in input.iter().enumerate() {
        let key = group_key(&s.labels, modifier);
        let g = match gi.get(&key) {
            Some(&g) => g,
            None => {
                // The group's key twice (list and index) and its output series.
                ev.charge(labels_bytes(&key).saturating_add(series_bytes(&key, n)))?;
                gi.insert(key.clone(), groups.len());
                groups.push((key, vec![]));
                groups.len() - 1
            }
        };
        groups[g].1.push(i);
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut buf: Vec<f64> = Vec::new();
    let mut hbuf: Vec<(usize, &FloatHistogram)> = Vec::new();
    for (key, members) in groups {
        ev.checkpoint().await?;
        let has_name = key.get(METRIC_NAME).is_some();
        let drop = has_name && members.iter().any(|&i| input[i].drop_name);
        let mut vals = vec![None; n];
        let mut hists: Vec<Option<Hist>> = Vec::new();
        for (step, slot) in vals.iter_mut().enumerate() {
            buf.clear();
            buf.extend(members.iter().filter_map(|&i| input[i].vals[step]));
            hbuf.clear();
            hbuf.extend(
                members
                    .iter()
                    .filter_map(|&i| input[i].hist(step).map(|h| (i, &**h))),
            );
            if !hbuf.is_empty() {
                let metric = |i: usize| input[i].labels.get(METRIC_NAME).unwrap_or("");
                match hist_step(ev, op, buf.len(), &hbuf, &metric) {
                    Some(HistOutcome::Nothing) => continue,
                    Some(HistOutcome::Float(v)) => {
                        *slot = Some(v);
                        continue;
                    }
                    Some(HistOutcome::Hist(h)) => {
                        hists.resize(n, None);
                        hists[step] = Some(Hist::new(h));
                        continue;
                    }
                    None => {}
                }
            }
            if buf.is_empty() {
                continue;
            }
            *slot = Some(match op {
                token::T_SUM => sum(&buf),
                token::T_AVG => avg(&buf),
                token::T_COUNT => buf.len() as f64,
                token::T_GROUP => 1.0,
                token::T_MIN => min(&buf),
                token::T_MAX => max(&buf),
                token::T_STDDEV => variance(&buf).sqrt(),
                token::T_STDVAR => variance(&buf),
                token::T_QUANTILE => {
                    let q = param.as_ref().map_or(f64::NAN, |p| p[step]);
                    quantile(q, &mut buf)
                }
                _ => {
                    return Err(Error::Unsupported(format!(
                        "aggregation {} is not supported",
                        a.op
                    )));
                }
            });
        }
        if vals.iter().any(Option::is_some) || hists.iter().any(Option::is_some) {
            out.push(Series {
                labels: key,
                vals,
                hists,
                drop_name: drop,
            });
        }
    }
    if op == token::T_QUANTILE
        && let Some(p) = &param
        && p.iter().any(|q| q.is_nan() || *q < 0.0 || *q > 1.0)
        && let Some(q) = p.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0)
    {
        if let Some(pe) = &a.param {
            ev.set_pos(pe);
        }
        ev.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            format_float(*q)
        ));
    }
    Ok(Value::Vector(out))
}

/// What a group's step holding histograms comes to.
pub(super) enum HistOutcome {
    /// No value (mixed floats and histograms, or incompatible buckets; annotated).
    Nothing,
    Float(f64),
    Hist(FloatHistogram),
}

/// A group's step holding histograms `hs` and `floats` floats: decided by the histograms
/// (`sum`/`avg` of them, or `count`/`group` of everything), or `None` when the aggregation
/// takes the floats alone and ignores the histograms (annotated), as Prometheus does.
pub(super) fn hist_step<'m>(
    ev: &Evaluator<'_>,
    op: TokenId,
    floats: usize,
    hs: &[(usize, &FloatHistogram)],
    metric: &dyn Fn(usize) -> &'m str,
) -> Option<HistOutcome> {
    match op {
        token::T_SUM | token::T_AVG => {
            if floats > 0 {
                ev.warn(anno::mixed_floats_histograms_agg());
                return Some(HistOutcome::Nothing);
            }
            Some(hist_aggregate(ev, op, hs, metric).map_or(HistOutcome::Nothing, HistOutcome::Hist))
        }
        token::T_COUNT => Some(HistOutcome::Float((floats + hs.len()) as f64)),
        token::T_GROUP => Some(HistOutcome::Float(1.0)),
        _ => {
            let what = match op {
                token::T_MIN => "min",
                token::T_MAX => "max",
                token::T_STDDEV => "stddev",
                token::T_STDVAR => "stdvar",
                _ => "quantile",
            };
            ev.info(anno::ignored_in_aggregation(what));
            None
        }
    }
}

/// `sum` or `avg` of one group's histograms at one step, in input order, with Prometheus's
/// annotations (`metric` names the metric of an input); `None` when exponential and custom
/// buckets mix.
fn hist_aggregate<'m>(
    ev: &Evaluator<'_>,
    op: TokenId,
    hs: &[(usize, &FloatHistogram)],
    metric: &dyn Fn(usize) -> &'m str,
) -> Option<FloatHistogram> {
    let list: Vec<&FloatHistogram> = hs.iter().map(|(_, h)| *h).collect();
    let mut hints = native::ResetHints::default();
    let r = if op == token::T_SUM {
        native::sum_hists(&list, &mut hints)
    } else {
        native::avg_hists(&list, &mut hints)
    };
    match r {
        Ok(mut h) => {
            hints.report(ev);
            h.compact();
            Some(h)
        }
        Err(k) => {
            ev.warn(anno::mixed_exponential_custom(metric(hs[k].0)));
            None
        }
    }
}

/// `topk` (`desc`) or `bottomk` over `(index, value)` in input order, exactly as Prometheus's
/// engine selects: Go's `container/heap` with `vectorByValueHeap` (topk: the smallest at the
/// root; NaN is "smallest") or `vectorByReverseValueHeap` (bottomk), the root replaced only by
/// a strictly better value (or any number over a NaN root), then `sort.Sort(sort.Reverse(h))`.
/// Go sorts up to 12 elements by insertion sort (stable); larger heaps are sorted stably here,
/// where Go's pdqsort may order ties differently in the output (never in what is selected).
pub(crate) fn go_heap_select(
    items: impl Iterator<Item = (usize, f64)>,
    k: usize,
    desc: bool,
) -> Vec<(usize, f64)> {
    let mut h = GoHeap::new(k, desc);
    for (i, v) in items {
        h.push(i, v);
    }
    h.into_sorted()
}

/// The heap of [`go_heap_select`], fed one item at a time.
pub(crate) struct GoHeap {
    h: Vec<(usize, f64)>,
    k: usize,
    desc: bool,
}

impl GoHeap {
    pub(crate) fn new(k: usize, desc: bool) -> Self {
        Self {
            h: Vec::with_capacity(k.min(1024)),
            k,
            desc,
        }
    }

    /// The heap's Less.
    fn less(&self, a: f64, b: f64) -> bool {
        if a.is_nan() {
            true
        } else if self.desc {
            a < b
        } else {
            a > b
        }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(self.h[j].1, self.h[i].1) {
                break;
            }
            self.h.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && self.less(self.h[j1 + 1].1, self.h[j1].1) {
                j = j1 + 1;
            }
            if !self.less(self.h[j].1, self.h[i].1) {
                break;
            }
            self.h.swap(i, j);
            i = j;
        }
        i > i0
    }

    /// Offers item `i`: returns the index that is not (or no longer) in the heap, `i` itself
    /// when it is not taken, the evicted root when it replaces it, `None` when nothing left.
    pub(crate) fn push(&mut self, i: usize, v: f64) -> Option<usize> {
        if self.k == 0 {
            return Some(i);
        }
        if self.h.len() < self.k {
            self.h.push((i, v));
            let last = self.h.len() - 1;
            self.up(last);
            return None;
        }
        let root = self.h[0].1;
        let better = if self.desc { root < v } else { root > v };
        if better || (root.is_nan() && !v.is_nan()) {
            let evicted = self.h[0].0;
            self.h[0] = (i, v);
            if self.k > 1 && !self.down(0) {
                self.up(0);
            }
            return Some(evicted);
        }
        Some(i)
    }

    /// The items best first, as Go's `sort.Sort(sort.Reverse(h))` leaves them.
    pub(crate) fn into_sorted(mut self) -> Vec<(usize, f64)> {
        if self.h.len() > 1 {
            // sort.Reverse: element j before i when Less(i, j) of the heap.
            if self.h.len() <= 12 {
                for i in 1..self.h.len() {
                    let mut j = i;
                    while j > 0 && self.less(self.h[j - 1].1, self.h[j].1) {
                        self.h.swap(j, j - 1);
                        j -= 1;
                    }
                }
            } else {
                let mut h = std::mem::take(&mut self.h);
                h.sort_by(|a, b| {
                    if self.less(b.1, a.1) {
                        std::cmp::Ordering::Less
                    } else if self.less(a.1, b.1) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                });
                self.h = h;
            }
        }
        self.h
    }
}

/// `topk`/`bottomk`/`limitk`/`limit_ratio`: the input series, each kept at the steps where it
/// is selected in its group.
fn select_k(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
    param: &[f64],
    input: Vec<Series>,
    n: usize,
) -> Result<Vec<Series>> {
    let (op, modifier) = (a.op.id(), a.modifier.as_ref());
    // Group membership, computed once; groups in order of first appearance.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
    for (i, s) in input.iter().enumerate() {
        let g = *index
            .entry(group_key(&s.labels, modifier))
            .or_insert_with(|| {
                groups.push(vec![]);
                groups.len() - 1
            });
        groups[g].push(i);
        group_of.push(g);
    }
    let desc = op == token::T_TOPK;
    let mut ignored_hist = false;
    let mut keep = vec![vec![false; n]; input.len()];
    // Instant queries: each kept series' place in its group's answer.
    let mut rank_of = vec![usize::MAX; input.len()];
    let mut present: Vec<usize> = Vec::new();
    for step in 0..n {
        let p = param[step];
        if op == token::T_LIMIT_RATIO {
            if p.is_nan() {
                return Err(Error::Execution("Ratio value is NaN".into()));
            }
            let r = p.clamp(-1.0, 1.0);
            if r != p {
                if let Some(pe) = &a.param {
                    ev.set_pos(pe);
                }
                ev.warn(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                    go_g(p),
                    go_g(r)
                ));
            }
            for (i, s) in input.iter().enumerate() {
                if !s.has(step) {
                    continue;
                }
                let offset = labels_hash(&s.labels) as f64 / u64::MAX as f64;
                keep[i][step] = if r >= 0.0 {
                    offset < r
                } else {
                    offset >= 1.0 + r
                };
            }
            continue;
        }
        if p.is_nan() {
            return Err(Error::Execution("Parameter value is NaN".into()));
        }
        let k = if p >= i64::MAX as f64 {
            i64::MAX
        } else {
            p as i64
        };
        if k < 1 {
            continue;
        }
        for members in &groups {
            present.clear();
            if op == token::T_LIMITK {
                present.extend(members.iter().copied().filter(|&i| input[i].has(step)));
            } else {
                present.extend(
                    members
                        .iter()
                        .copied()
                        .filter(|&i| input[i].vals[step].is_some()),
                );
                if members.iter().any(|&i| input[i].hist(step).is_some()) {
                    ignored_hist = true;
                }
            }
            let k = (k as usize).min(present.len());
            if k == 0 {
                continue;
            }
            if op == token::T_LIMITK {
                for &i in &present[..k] {
                    keep[i][step] = true;
                }
                continue;
            }
            // Prometheus's own selection, so ties pick the same series: a heap of k in input
            // order (Go's container/heap), replaced at its root only by a strictly better value,
            // then sorted best first (Go's sort.Sort of a reversed heap).
            let val = |i: usize| input[i].vals[step].unwrap_or(f64::NAN);
            let chosen = go_heap_select(present.iter().map(|&i| (i, val(i))), k, desc);
            for (rank, &(i, _)) in chosen.iter().enumerate() {
                keep[i][step] = true;
                if step == 0 {
                    rank_of[i] = rank;
                }
            }
        }
    }
    if ignored_hist {
        ev.set_pos_of(a);
        ev.info(anno::ignored_in_aggregation(if desc {
            "topk"
        } else {
            "bottomk"
        }));
    }
    let mut out = Vec::new();
    let mut out_group = Vec::new();
    let mut out_rank = Vec::new();
    for (i, mut s) in input.into_iter().enumerate() {
        for (step, v) in s.vals.iter_mut().enumerate() {
            if !keep[i][step] {
                *v = None;
            }
        }
        for (step, h) in s.hists.iter_mut().enumerate() {
            if !keep[i][step] {
                *h = None;
            }
        }
        if s.any() {
            out.push(s);
            out_group.push(group_of[i]);
            out_rank.push(rank_of[i]);
        }
    }
    // Instant queries: in each group, the order Prometheus returns (best first, ties as its
    // sort leaves them).
    if n == 1 && matches!(op, token::T_TOPK | token::T_BOTTOMK) {
        let mut order: Vec<usize> = (0..out.len()).collect();
        order.sort_by(|&x, &y| {
            out_group[x]
                .cmp(&out_group[y])
                .then(out_rank[x].cmp(&out_rank[y]))
        });
        let mut slots: Vec<Option<Series>> = out.into_iter().map(Some).collect();
        out = order.into_iter().filter_map(|i| slots[i].take()).collect();
    }
    Ok(out)
}

/// Go's `%g` of a float (shortest digits; exponent form below 1e-4 or from 1e6).
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

/// Prometheus's `FloatHistogram.String()`: count, sum and the populated buckets.
pub fn go_histogram_string(h: &FloatHistogram) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{{count:{}, sum:{}", go_g(h.count), go_g(h.sum));
    let bucket = |s: &mut String, b: &muninn_storage::histogram::Bucket| {
        let _ = write!(
            s,
            ", {}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            go_g(b.lower),
            go_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            go_g(b.count)
        );
    };
    for b in h.negative_buckets_iter().iter().rev() {
        if b.count != 0.0 {
            bucket(&mut s, b);
        }
    }
    if h.zero_count != 0.0 {
        bucket(&mut s, &h.zero_bucket());
    }
    for b in h.positive_buckets_iter() {
        if b.count != 0.0 {
            bucket(&mut s, &b);
        }
    }
    s.push('}');
    s
}
