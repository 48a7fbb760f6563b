//! Binary operators: arithmetic, comparisons (filtering or `bool`), set operators, and vector
//! matching with `on`/`ignoring` and `group_left`/`group_right`, per step.

use hashbrown::HashMap;

use muninn_storage::histogram::CounterResetHint;
use muninn_storage::labels::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::annotations::{self as anno, HistOp};
use super::eval::{Ctx, Evaluator};
use super::limits::{labels_bytes, series_bytes};
use super::value::{Hist, Series, Value, set_label};
use crate::{Error, Result};

fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// Whether the operator yields a new kind of value, so the result loses its metric name
/// (arithmetic; not comparisons and trims, which filter or reshape the same metric).
fn changes_metric(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD
            | token::T_SUB
            | token::T_MUL
            | token::T_DIV
            | token::T_MOD
            | token::T_POW
            | token::T_ATAN2
    )
}

fn is_trim(op: TokenId) -> bool {
    matches!(op, token::T_TRIM_UPPER | token::T_TRIM_LOWER)
}

fn is_set(op: TokenId) -> bool {
    matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS)
}

/// Applies an arithmetic or comparison operator: `(value, keep)`.
pub fn apply(op: TokenId, a: f64, b: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (a + b, true),
        token::T_SUB => (a - b, true),
        token::T_MUL => (a * b, true),
        token::T_DIV => (a / b, true),
        token::T_MOD => (a % b, true),
        token::T_POW => (a.powf(b), true),
        token::T_ATAN2 => (a.atan2(b), true),
        token::T_EQLC => (a, a == b),
        token::T_NEQ => (a, a != b),
        token::T_GTR => (a, a > b),
        token::T_LSS => (a, a < b),
        token::T_GTE => (a, a >= b),
        token::T_LTE => (a, a <= b),
        _ => (f64::NAN, false),
    }
}

/// One operand of an element-wise operation.
#[derive(Clone, Copy)]
enum El<'a> {
    F(f64),
    H(&'a Hist),
}

impl<'a> El<'a> {
    fn of(s: &'a Series, step: usize) -> Option<El<'a>> {
        match (s.vals[step], s.hist(step)) {
            (Some(v), _) => Some(El::F(v)),
            (None, Some(h)) => Some(El::H(h)),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            El::F(_) => "float",
            El::H(_) => "histogram",
        }
    }
}

/// An element-wise result.
enum Res {
    F(f64),
    H(Hist),
}

fn op_str(op: TokenId) -> &'static str {
    match op {
        token::T_ADD => "+",
        token::T_SUB => "-",
        token::T_MUL => "*",
        token::T_DIV => "/",
        token::T_MOD => "%",
        token::T_POW => "^",
        token::T_EQLC => "==",
        token::T_NEQ => "!=",
        token::T_GTR => ">",
        token::T_LSS => "<",
        token::T_GTE => ">=",
        token::T_LTE => "<=",
        token::T_ATAN2 => "atan2",
        token::T_TRIM_UPPER => "</",
        token::T_TRIM_LOWER => ">/",
        _ => "?",
    }
}

/// Prometheus's `vectorElemBinop`: `(result, keep)`, or `None` when the pair cannot be
/// combined (annotated, the sample dropped).
fn elem(ev: &Evaluator<'_>, op: TokenId, l: El<'_>, r: El<'_>) -> Option<(Res, bool)> {
    let incompatible = |ev: &Evaluator<'_>| {
        ev.info(anno::incompatible_types(op_str(op), l.kind(), r.kind()));
        None
    };
    let scaled = |h: &Hist, f: f64, div: bool| {
        let mut c = (**h).clone();
        if div {
            c.div(f);
        } else {
            c.mul(f);
        }
        c.compact();
        Some((Res::H(Hist::new(c)), true))
    };
    match (l, r) {
        (El::F(_), El::F(_)) if is_trim(op) => incompatible(ev),
        (El::F(a), El::F(b)) => {
            let (v, keep) = apply(op, a, b);
            Some((Res::F(v), keep))
        }
        (El::F(a), El::H(h)) => match op {
            token::T_MUL => scaled(h, a, false),
            _ => incompatible(ev),
        },
        (El::H(h), El::F(b)) => match op {
            token::T_MUL => scaled(h, b, false),
            token::T_DIV => scaled(h, b, true),
            token::T_TRIM_UPPER | token::T_TRIM_LOWER => {
                let mut c = (**h).clone();
                c.trim_buckets(b, op == token::T_TRIM_UPPER);
                Some((Res::H(Hist::new(c)), true))
            }
            _ => incompatible(ev),
        },
        (El::H(a), El::H(b)) => match op {
            token::T_ADD | token::T_SUB => {
                let mut c = (**a).clone();
                let r = if op == token::T_ADD {
                    c.add(b)
                } else {
                    c.sub(b)
                };
                let hop = if op == token::T_ADD {
                    HistOp::Add
                } else {
                    HistOp::Sub
                };
                match r {
                    Err(_) => {
                        ev.warn(format!(
                            "PromQL warning: incompatible bucket layout encountered for binary operator {}",
                            op_str(op)
                        ));
                        None
                    }
                    Ok(i) => {
                        if i.nhcb_bounds_reconciled {
                            ev.info(anno::mismatched_custom_buckets(hop));
                        }
                        if i.counter_reset_collision {
                            ev.warn(anno::counter_reset_collision(hop));
                            return None;
                        }
                        if op == token::T_SUB {
                            c.hint = CounterResetHint::Gauge;
                        }
                        c.compact();
                        Some((Res::H(Hist::new(c)), true))
                    }
                }
            }
            token::T_EQLC => Some((Res::H(a.clone()), a.equals(b))),
            token::T_NEQ => Some((Res::H(a.clone()), !a.equals(b))),
            _ => incompatible(ev),
        },
    }
}

/// Stores an element-wise result at `step` of `s`.
fn put(s: &mut Series, step: usize, r: Res) {
    match r {
        Res::F(v) => s.vals[step] = Some(v),
        Res::H(h) => s.set_hist(step, h),
    }
}

/// The matching signature of a series: its labels restricted by `on`, or without `ignoring`
/// labels and `__name__`.
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
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
        None => Labels(
            l.0.iter()
                .filter(|x| x.name != METRIC_NAME)
                .cloned()
                .collect(),
        ),
    }
}

pub async fn eval(ev: &Evaluator<'_>, b: &BinaryExpr, ctx: &Ctx) -> Result<Value> {
    let op = b.op.id();
    // Trimming works on buckets: selectors below must keep them.
    let prev = is_trim(op).then(|| ev.enter_buckets(true));
    let operands =
        async { Ok::<_, Error>((ev.eval(&b.lhs, ctx).await?, ev.eval(&b.rhs, ctx).await?)) }.await;
    if let Some(p) = prev {
        ev.restore_buckets(p);
    }
    let (lhs, rhs) = operands?;
    ev.set_pos_of(b);
    let rb = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(c)) => Ok(Value::Scalar(
            a.iter()
                .zip(&c)
                .map(|(x, y)| {
                    let (v, keep) = apply(op, *x, *y);
                    if is_comparison(op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => {
            Ok(Value::Vector(vector_scalar(ev, v, &s, op, rb, false)))
        }
        (Value::Scalar(s), Value::Vector(v)) => {
            Ok(Value::Vector(vector_scalar(ev, v, &s, op, rb, true)))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
            // Matching signatures (at most each side's labels) and, for set operators, the
            // per-step presence of each signature.
            let sigs = l
                .iter()
                .chain(&r)
                .map(|s| labels_bytes(&s.labels).saturating_add(ctx.len()))
                .fold(0usize, usize::saturating_add);
            ev.charge(sigs)?;
            if is_set(op) {
                Ok(Value::Vector(set_op(l, r, op, matching, ctx.len())))
            } else {
                let card = b
                    .modifier
                    .as_ref()
                    .map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
                Ok(Value::Vector(vector_vector(
                    ev,
                    l,
                    r,
                    op,
                    rb,
                    matching,
                    &card,
                    ctx.len(),
                )?))
            }
        }
        (l, r) => Err(Error::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    ev: &Evaluator<'_>,
    v: Vec<Series>,
    s: &[f64],
    op: TokenId,
    rb: bool,
    swapped: bool,
) -> Vec<Series> {
    let cmp = is_comparison(op);
    v.into_iter()
        .filter_map(|series| {
            let n = series.vals.len();
            let mut out = Series::floats(
                series.labels.clone(),
                vec![None; n],
                series.drop_name || changes_metric(op) || rb,
            );
            for (step, &sv) in s.iter().enumerate().take(n) {
                let Some(x) = El::of(&series, step) else {
                    continue;
                };
                let (a, c) = if swapped {
                    (El::F(sv), x)
                } else {
                    (x, El::F(sv))
                };
                let Some((mut value, keep)) = elem(ev, op, a, c) else {
                    continue;
                };
                if cmp && swapped {
                    value = match x {
                        El::F(f) => Res::F(f),
                        El::H(h) => Res::H(h.clone()),
                    };
                }
                if rb {
                    out.vals[step] = Some(if keep { 1.0 } else { 0.0 });
                } else if keep {
                    put(&mut out, step, value);
                }
            }
            out.any().then_some(out)
        })
        .collect()
}

fn set_op(
    l: Vec<Series>,
    r: Vec<Series>,
    op: TokenId,
    matching: Option<&LabelModifier>,
    n: usize,
) -> Vec<Series> {
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    // Per signature, per step: is a series present?
    let presence = |series: &[Series], sigs: &[Labels]| {
        let mut m: HashMap<Labels, Vec<bool>> = HashMap::new();
        for (s, sig) in series.iter().zip(sigs) {
            let e = m.entry(sig.clone()).or_insert_with(|| vec![false; n]);
            for (i, p) in e.iter_mut().enumerate() {
                *p |= s.has(i);
            }
        }
        m
    };
    match op {
        token::T_LAND | token::T_LUNLESS => {
            let rp = presence(&r, &rsig);
            let want = op == token::T_LAND;
            l.into_iter()
                .zip(lsig)
                .filter_map(|(mut s, sig)| {
                    let p = rp.get(&sig);
                    for i in 0..n {
                        let present = p.is_some_and(|p| p[i]);
                        if present != want {
                            s.vals[i] = None;
                            if let Some(h) = s.hists.get_mut(i) {
                                *h = None;
                            }
                        }
                    }
                    s.any().then_some(s)
                })
                .collect()
        }
        _ => {
            let lp = presence(&l, &lsig);
            let mut out: Vec<Series> = l.into_iter().filter(Series::any).collect();
            for (mut s, sig) in r.into_iter().zip(rsig) {
                if let Some(p) = lp.get(&sig) {
                    for (i, present) in p.iter().enumerate() {
                        if *present {
                            s.vals[i] = None;
                            if let Some(h) = s.hists.get_mut(i) {
                                *h = None;
                            }
                        }
                    }
                }
                if s.any() {
                    out.push(s);
                }
            }
            out
        }
    }
}

fn fmt_series_list(series: &[&Series]) -> String {
    let parts: Vec<String> = series.iter().map(|s| s.labels.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    ev: &Evaluator<'_>,
    l: Vec<Series>,
    r: Vec<Series>,
    op: TokenId,
    rb: bool,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    n: usize,
) -> Result<Vec<Series>> {
    let (include, swapped) = match card {
        VectorMatchCardinality::ManyToOne(ls) => (Some(&ls.labels), false),
        VectorMatchCardinality::OneToMany(ls) => (Some(&ls.labels), true),
        _ => (None, false),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // "many" side first.
    let (many, one) = if swapped { (r, l) } else { (l, r) };
    let many_sig: Vec<Labels> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let one_sig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut by_sig: HashMap<&Labels, Vec<usize>> = HashMap::new();
    for (i, sig) in one_sig.iter().enumerate() {
        by_sig.entry(sig).or_default().push(i);
    }
    let side = if swapped { "left" } else { "right" };
    let mut out: Vec<Series> = Vec::new();
    let mut index: HashMap<(Labels, bool), usize> = HashMap::new();
    // For one-to-one: which many-side series matched each signature, per step.
    let mut matched: HashMap<(&Labels, usize), usize> = HashMap::new();
    for step in 0..n {
        matched.clear();
        for (mi, ms) in many.iter().enumerate() {
            let Some(mv) = El::of(ms, step) else { continue };
            let sig = &many_sig[mi];
            let Some(cands) = by_sig.get(sig) else {
                continue;
            };
            let present: Vec<usize> = cands
                .iter()
                .copied()
                .filter(|&i| one[i].has(step))
                .collect();
            let oi = match present.as_slice() {
                [] => continue,
                [oi] => *oi,
                _ => {
                    let dups: Vec<&Series> = present.iter().map(|&i| &one[i]).collect();
                    return Err(Error::Execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
                        sig,
                        fmt_series_list(&dups)
                    )));
                }
            };
            if one_to_one
                && let Some(prev) = matched.insert((sig, step), mi)
                && prev != mi
            {
                {
                    let other = if swapped { "right" } else { "left" };
                    return Err(Error::Execution(format!(
                        "found duplicate series for the match group {} on the {other} hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
                        sig,
                        fmt_series_list(&[&many[prev], ms])
                    )));
                }
            }
            let os = &one[oi];
            let Some(ov) = El::of(os, step) else { continue };
            let (a, b) = if swapped { (ov, mv) } else { (mv, ov) };
            // Comparisons yield the left operand's value, whichever side is "many".
            let Some((value, keep)) = elem(ev, op, a, b) else {
                continue;
            };
            let value = if rb {
                Res::F(if keep { 1.0 } else { 0.0 })
            } else if !keep {
                continue;
            } else {
                value
            };
            let drop = ms.drop_name || changes_metric(op) || rb;
            let mut labels = ms.labels.clone();
            if one_to_one {
                match matching {
                    Some(LabelModifier::Include(names)) => {
                        labels.0.retain(|x| names.labels.contains(&x.name))
                    }
                    Some(LabelModifier::Exclude(names)) => {
                        labels.0.retain(|x| !names.labels.contains(&x.name))
                    }
                    None => {}
                }
            }
            if let Some(inc) = include {
                for ln in inc {
                    let v = os.labels.get(ln).unwrap_or("").to_owned();
                    set_label(&mut labels, ln, &v);
                }
            }
            let key = (labels, drop);
            let idx = match index.get(&key) {
                Some(&i) => i,
                None => {
                    // The output series and the index's copy of its labels.
                    ev.charge(series_bytes(&key.0, n).saturating_add(labels_bytes(&key.0)))?;
                    out.push(Series {
                        labels: key.0.clone(),
                        vals: vec![None; n],
                        hists: Vec::new(),
                        drop_name: drop,
                    });
                    index.insert(key, out.len() - 1);
                    out.len() - 1
                }
            };
            if out[idx].has(step) {
                return Err(Error::Execution(if one_to_one {
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()
                } else {
                    "multiple matches for labels: grouping labels must ensure unique matches".into()
                }));
            }
            put(&mut out[idx], step, value);
        }
    }
    Ok(out)
}
