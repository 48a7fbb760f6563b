//! Aggregations that consume their input series as they arrive (from
//! `Evaluator::for_each_series`), holding one accumulator per group and step instead of the
//! input vector: `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar`, and
//! `topk`/`bottomk` of instant queries (a heap of k series per group). Values are those of
//! `aggregate.rs` bit for bit: the same operations in the same (input) order.

use hashbrown::HashMap;

use muninn_storage::labels::{Labels, METRIC_NAME};
use promql_parser::parser::AggregateExpr;
use promql_parser::parser::token::{self, TokenId};

use super::aggregate::{GoHeap, HistOutcome, group_key, hist_step};
use super::annotations as anno;
use super::eval::{Ctx, Evaluator};
use super::limits::{labels_bytes, series_bytes};
use super::value::{Hist, Series, kahan_inc};
use crate::{Error, Result};

/// The aggregations computed while streaming.
pub fn streams(op: TokenId) -> bool {
    matches!(
        op,
        token::T_SUM
            | token::T_AVG
            | token::T_COUNT
            | token::T_GROUP
            | token::T_MIN
            | token::T_MAX
            | token::T_STDDEV
            | token::T_STDVAR
    )
}

/// One group's floats at one step, as `aggregate::{sum, avg, min, max, variance}` fold them.
#[derive(Clone, Copy, Default)]
struct Acc {
    n: u32,
    /// sum (sum, avg), the extreme (min, max), the mean (stddev, stdvar).
    a: f64,
    /// The Kahan compensation.
    b: f64,
    /// avg's incremental mean; stddev's sum of squared deviations.
    d: f64,
    /// avg switched to the incremental mean.
    inc: bool,
}

impl Acc {
    fn push(&mut self, op: TokenId, f: f64) {
        let first = self.n == 0;
        self.n += 1;
        match op {
            token::T_SUM => {
                if first {
                    self.a = f;
                } else {
                    (self.a, self.b) = kahan_inc(f, self.a, self.b);
                }
            }
            token::T_AVG => {
                if first {
                    self.a = f;
                    return;
                }
                let count = f64::from(self.n);
                if !self.inc {
                    let (nv, nc) = kahan_inc(f, self.a, self.b);
                    if !nv.is_infinite() {
                        (self.a, self.b) = (nv, nc);
                        return;
                    }
                    self.inc = true;
                    self.d = self.a / (count - 1.0);
                    self.b /= count - 1.0;
                }
                if self.d.is_infinite() {
                    if f.is_infinite() && (self.d > 0.0) == (f > 0.0) {
                        return;
                    }
                    if !f.is_infinite() && !f.is_nan() {
                        return;
                    }
                }
                let cur = self.d + self.b;
                (self.d, self.b) = kahan_inc(f / count - cur / count, self.d, self.b);
            }
            token::T_MIN if first || self.a > f || self.a.is_nan() => self.a = f,
            token::T_MAX if first || self.a < f || self.a.is_nan() => self.a = f,
            token::T_STDDEV | token::T_STDVAR => {
                let count = f64::from(self.n);
                let delta = f - (self.a + self.b);
                (self.a, self.b) = kahan_inc(delta / count, self.a, self.b);
                self.d += delta * (f - (self.a + self.b));
            }
            _ => {}
        }
    }

    fn value(&self, op: TokenId) -> f64 {
        let count = f64::from(self.n);
        match op {
            token::T_SUM => self.a + self.b,
            token::T_AVG if self.inc => self.d + self.b,
            token::T_AVG => self.a / count + self.b / count,
            token::T_COUNT => count,
            token::T_GROUP => 1.0,
            token::T_MIN | token::T_MAX => self.a,
            token::T_STDDEV => (self.d / count).sqrt(),
            token::T_STDVAR => self.d / count,
            _ => f64::NAN,
        }
    }
}

struct Group {
    key: Labels,
    drop: bool,
    steps: Vec<Acc>,
    /// Per step, the histograms met (with their metric names); empty without any.
    hists: Vec<Vec<(Hist, String)>>,
}

/// Estimated bytes of a histogram kept for a group.
fn hist_bytes(h: &Hist) -> usize {
    let buckets = h.positive_buckets.len() + h.negative_buckets.len() + h.custom_values.len();
    std::mem::size_of::<muninn_storage::histogram::FloatHistogram>()
        .saturating_add(buckets.saturating_mul(8))
}

/// `sum`, `avg`, ... (see [`streams`]) of `a.expr`, fed series by series.
pub async fn aggregate(ev: &Evaluator<'_>, a: &AggregateExpr, ctx: &Ctx) -> Result<Vec<Series>> {
    let (op, modifier, n) = (a.op.id(), a.modifier.as_ref(), ctx.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    ev.for_each_series(&a.expr, ctx, &mut |s| {
        let key = group_key(&s.labels, modifier);
        let g = match index.get(&key) {
            Some(&g) => g,
            None => {
                // The group's key twice (list and index), its output and its accumulators.
                ev.charge(
                    labels_bytes(&key)
                        .saturating_add(series_bytes(&key, n))
                        .saturating_add(n.saturating_mul(std::mem::size_of::<Acc>())),
                )?;
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    key,
                    drop: false,
                    steps: vec![Acc::default(); n],
                    hists: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[g];
        group.drop |= s.drop_name;
        for (step, v) in s.vals.iter().enumerate() {
            if let Some(v) = v {
                group.steps[step].push(op, *v);
            } else if let Some(h) = s.hist(step) {
                if group.hists.is_empty() {
                    group.hists = vec![Vec::new(); n];
                }
                let metric = s.labels.get(METRIC_NAME).unwrap_or("").to_owned();
                ev.charge(hist_bytes(h).saturating_add(metric.len()))?;
                group.hists[step].push((h.clone(), metric));
            }
        }
        Ok(())
    })
    .await?;
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        ev.checkpoint().await?;
        let drop = group.drop && group.key.get(METRIC_NAME).is_some();
        let mut vals = vec![None; n];
        let mut hists: Vec<Option<Hist>> = Vec::new();
        for (step, slot) in vals.iter_mut().enumerate() {
            let acc = &group.steps[step];
            let hb = group.hists.get(step).filter(|h| !h.is_empty());
            if let Some(hb) = hb {
                let list: Vec<(usize, &muninn_storage::histogram::FloatHistogram)> =
                    hb.iter().enumerate().map(|(i, (h, _))| (i, &**h)).collect();
                let metric = |i: usize| hb[i].1.as_str();
                match hist_step(ev, op, acc.n as usize, &list, &metric) {
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
            if acc.n > 0 {
                *slot = Some(acc.value(op));
            }
        }
        if vals.iter().any(Option::is_some) || hists.iter().any(Option::is_some) {
            out.push(Series {
                labels: group.key,
                vals,
                hists,
                drop_name: drop,
            });
        }
    }
    Ok(out)
}

/// `topk`/`bottomk` of an instant query (`param` its one value), fed series by series: per
/// group a heap of k, holding only the series in it.
pub async fn select_k_instant(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
    param: f64,
    ctx: &Ctx,
) -> Result<Vec<Series>> {
    let (op, modifier) = (a.op.id(), a.modifier.as_ref());
    let desc = op == token::T_TOPK;
    let k = if param.is_nan() {
        0
    } else if param >= i64::MAX as f64 {
        usize::MAX
    } else {
        usize::try_from(param as i64).unwrap_or(0)
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut heaps: Vec<GoHeap> = Vec::new();
    let mut held: HashMap<usize, Series> = HashMap::new();
    let (mut seen, mut ignored_hist) = (0usize, false);
    ev.for_each_series(&a.expr, ctx, &mut |s| {
        let i = seen;
        seen += 1;
        let g = *index
            .entry(group_key(&s.labels, modifier))
            .or_insert_with(|| {
                heaps.push(GoHeap::new(k, desc));
                heaps.len() - 1
            });
        if k == 0 {
            // As Prometheus: nothing is selected, and histograms are not even looked at.
            return Ok(());
        }
        match s.vals.first().copied().flatten() {
            Some(v) => {
                let taken = match heaps[g].push(i, v) {
                    None => true,
                    Some(out) if out != i => {
                        if let Some(gone) = held.remove(&out) {
                            ev.release(series_bytes(&gone.labels, 1));
                        }
                        true
                    }
                    Some(_) => false,
                };
                if taken {
                    ev.charge(series_bytes(&s.labels, 1))?;
                    held.insert(i, s);
                }
            }
            None => ignored_hist |= s.hist(0).is_some(),
        }
        Ok(())
    })
    .await?;
    // As Prometheus: the parameter is checked once the input is evaluated.
    if param.is_nan() {
        return Err(Error::Execution("Parameter value is NaN".into()));
    }
    if ignored_hist {
        ev.set_pos_of(a);
        ev.info(anno::ignored_in_aggregation(if desc {
            "topk"
        } else {
            "bottomk"
        }));
    }
    // Groups in order of first appearance, each best first.
    let mut out = Vec::new();
    for h in heaps {
        for (i, _) in h.into_sorted() {
            if let Some(mut s) = held.remove(&i) {
                s.hists.clear();
                out.push(s);
            }
        }
    }
    Ok(out)
}
