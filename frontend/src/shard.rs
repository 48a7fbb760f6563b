//! Query sharding: a shardable aggregation runs as `--query-frontend.query-sharding-total-
//! shards` queries, each over the series whose label-set hash falls in its shard (the
//! `__query_shard__` matcher, `storage/src/shard.rs`, applied by ingesters and block readers),
//! and the shards' answers are combined into the whole aggregation's.
//!
//! Shardable: `sum`, `count`, `min`, `max`, `group` and `avg` (as a sharded sum over a sharded
//! count), `by` or `without`, at the top of the query, over an expression where each output
//! series depends on one input series only: selectors with a fixed metric name (so dropping
//! the name cannot make two series collide, which Prometheus reports as an error a shard
//! would not see), per-series functions, subqueries, and arithmetic with scalars. Anything
//! combining series (a vector-vector operator, a nested aggregation, `scalar()`, `vector()`,
//! `absent()`, classic `histogram_quantile`, `label_replace`...) is not sharded. Answers with
//! histograms are not combined here: such a query runs unsharded.

use std::collections::BTreeMap;

use muninn_querier::json::write_point;
use muninn_storage::labels::Labels;
use muninn_storage::shard::{SHARD_LABEL, Shard};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, LabelModifier, VectorSelector};
use serde_json::value::RawValue;

use crate::matrix::{Matrix, Series, point_time};
use crate::{Error, Result};

/// How the shards' answers combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Min,
    Max,
    Group,
    /// The shards' sums over the shards' counts.
    Avg,
}

/// A sharded query: one text per shard (and, for `avg`, a count per shard).
#[derive(Clone, Debug)]
pub struct Plan {
    pub combine: Combine,
    pub queries: Vec<String>,
    /// `avg` only: the count queries, shard by shard.
    pub counts: Vec<String>,
}

/// Functions whose output series may depend on several input series, or on none.
const NOT_PER_SERIES: &[&str] = &[
    "absent",
    "absent_over_time",
    "scalar",
    "vector",
    "histogram_quantile",
    "histogram_quantiles",
    "histogram_fraction",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "info",
    "limitk",
    "limit_ratio",
];

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn selector_ok(vs: &VectorSelector) -> bool {
    // A time before the epoch does not survive the AST's Display (it prints as 0).
    if let Some(promql_parser::parser::AtModifier::At(t)) = &vs.at
        && crate::split::at_ms(t) < 0
    {
        return false;
    }
    let named = vs.name.is_some()
        || vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == "__name__" && m.op == MatchOp::Equal);
    let all = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten());
    let mut no_shard = true;
    for m in all {
        if m.name == SHARD_LABEL {
            no_shard = false;
        }
    }
    named && vs.matchers.or_matchers.is_empty() && no_shard
}

/// Whether every output series of `e` comes from one input series; `selectors` counts them.
fn per_series(e: &Expr, selectors: &mut usize) -> bool {
    match e {
        Expr::VectorSelector(vs) => {
            *selectors += 1;
            selector_ok(vs)
        }
        Expr::MatrixSelector(ms) => {
            *selectors += 1;
            selector_ok(&ms.vs)
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => per_series(&p.expr, selectors),
        Expr::Unary(u) => per_series(&u.expr, selectors),
        Expr::Subquery(s) => {
            let before_epoch = matches!(&s.at, Some(promql_parser::parser::AtModifier::At(t)) if crate::split::at_ms(t) < 0);
            !before_epoch && per_series(&s.expr, selectors)
        }
        Expr::Binary(b) => {
            let scalar_side =
                b.lhs.value_type() == ValueType::Scalar || b.rhs.value_type() == ValueType::Scalar;
            scalar_side && per_series(&b.lhs, selectors) && per_series(&b.rhs, selectors)
        }
        Expr::Call(c) => {
            !NOT_PER_SERIES.contains(&c.func.name)
                && c.args.args.iter().all(|a| per_series(a, selectors))
        }
        Expr::Aggregate(_) | Expr::Extension(_) => false,
    }
}

fn add_shard(e: &mut Expr, shard: &Shard) {
    let matcher = || Matcher::new(MatchOp::Equal, SHARD_LABEL, &shard.value());
    match e {
        Expr::VectorSelector(vs) => vs.matchers.matchers.push(matcher()),
        Expr::MatrixSelector(ms) => ms.vs.matchers.matchers.push(matcher()),
        Expr::Paren(p) => add_shard(&mut p.expr, shard),
        Expr::Unary(u) => add_shard(&mut u.expr, shard),
        Expr::Subquery(s) => add_shard(&mut s.expr, shard),
        Expr::Binary(b) => {
            add_shard(&mut b.lhs, shard);
            add_shard(&mut b.rhs, shard);
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| add_shard(a, shard)),
        Expr::Aggregate(a) => add_shard(&mut a.expr, shard),
        _ => {}
    }
}

fn plain_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The sharded form of `e`, if it is shardable and `total` is at least 2.
pub fn plan(e: &Expr, total: usize) -> Option<Plan> {
    if total < 2 {
        return None;
    }
    let Expr::Aggregate(a) = unparen(e) else {
        return None;
    };
    if a.param.is_some() {
        return None;
    }
    let (combine, op): (Combine, &str) = match a.op.id() {
        token::T_SUM => (Combine::Sum, "sum"),
        token::T_COUNT => (Combine::Sum, "count"),
        token::T_MIN => (Combine::Min, "min"),
        token::T_MAX => (Combine::Max, "max"),
        token::T_GROUP => (Combine::Group, "group"),
        token::T_AVG => (Combine::Avg, "sum"),
        _ => return None,
    };
    let mut selectors = 0;
    if !per_series(&a.expr, &mut selectors) || selectors == 0 {
        return None;
    }
    let grouping = match &a.modifier {
        None => String::new(),
        Some(LabelModifier::Include(l)) | Some(LabelModifier::Exclude(l)) => {
            if !l.labels.iter().all(|n| plain_name(n)) {
                return None;
            }
            let kind = if matches!(a.modifier, Some(LabelModifier::Include(_))) {
                "by"
            } else {
                "without"
            };
            format!(" {kind} ({})", l.labels.join(", "))
        }
    };
    let text = |op: &str, i: u64| {
        let mut inner = (*a.expr).clone();
        add_shard(
            &mut inner,
            &Shard {
                index: i,
                count: total as u64,
            },
        );
        format!("{op}{grouping} ({inner})")
    };
    let n = total as u64;
    Some(Plan {
        combine,
        queries: (0..n).map(|i| text(op, i)).collect(),
        counts: if combine == Combine::Avg {
            (0..n).map(|i| text("count", i)).collect()
        } else {
            vec![]
        },
    })
}

/// Float points of one answer by label set and timestamp; `None` if it holds histograms.
type Points = BTreeMap<Labels, (BTreeMap<String, String>, BTreeMap<i64, f64>)>;

fn parse_value(raw: &RawValue) -> Result<f64> {
    let (_, v): (serde_json::Value, String) =
        serde_json::from_str(raw.get()).map_err(|e| Error::Decode(e.to_string()))?;
    match v.as_str() {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        s => s
            .parse()
            .map_err(|_| Error::Decode(format!("not a sample value: {s:?}"))),
    }
}

fn points(m: &Matrix) -> Result<Option<Points>> {
    let mut out = Points::new();
    for s in &m.series {
        if !s.histograms.is_empty() {
            return Ok(None);
        }
        let labels = Labels::from_pairs(s.metric.iter().map(|(k, v)| (k.clone(), v.clone())));
        let e = out
            .entry(labels)
            .or_insert_with(|| (s.metric.clone(), BTreeMap::new()));
        for p in &s.values {
            e.1.insert(point_time(p)?, parse_value(p)?);
        }
    }
    Ok(Some(out))
}

fn fold(combine: Combine, acc: f64, v: f64) -> f64 {
    match combine {
        Combine::Sum | Combine::Avg => acc + v,
        // Prometheus's min/max: a NaN gives way to any number.
        Combine::Min => {
            if v < acc || acc.is_nan() {
                v
            } else {
                acc
            }
        }
        Combine::Max => {
            if v > acc || acc.is_nan() {
                v
            } else {
                acc
            }
        }
        Combine::Group => 1.0,
    }
}

fn combine_points(combine: Combine, parts: &[Points]) -> Points {
    let mut out = Points::new();
    for p in parts {
        for (labels, (metric, pts)) in p {
            let e = out
                .entry(labels.clone())
                .or_insert_with(|| (metric.clone(), BTreeMap::new()));
            for (t, v) in pts {
                e.1.entry(*t)
                    .and_modify(|acc| *acc = fold(combine, *acc, *v))
                    .or_insert(*v);
            }
        }
    }
    out
}

/// The whole aggregation's answer from the shards' (`counts`: the avg's count shards);
/// `None` when an answer holds histograms or annotations (the query then runs unsharded).
pub fn combine(plan: &Plan, sums: Vec<Matrix>, counts: Vec<Matrix>) -> Result<Option<Matrix>> {
    // Annotations carry positions in the shard's text, not the client's, and some (a mix of
    // floats and histograms in a group) mean a shard dropped what the whole query would
    // drop differently: any annotation sends the query back unsharded.
    if sums
        .iter()
        .chain(&counts)
        .any(|m| !m.warnings.is_empty() || !m.infos.is_empty())
    {
        return Ok(None);
    }
    let (warnings, infos) = (Vec::<String>::new(), Vec::<String>::new());
    let mut parts = vec![];
    for m in &sums {
        match points(m)? {
            Some(p) => parts.push(p),
            None => return Ok(None),
        }
    }
    let mut combined = combine_points(plan.combine, &parts);
    if plan.combine == Combine::Avg {
        let mut cparts = vec![];
        for m in &counts {
            match points(m)? {
                Some(p) => cparts.push(p),
                None => return Ok(None),
            }
        }
        let totals = combine_points(Combine::Sum, &cparts);
        for (labels, (_, pts)) in combined.iter_mut() {
            for (t, v) in pts.iter_mut() {
                let n = totals
                    .get(labels)
                    .and_then(|(_, c)| c.get(t))
                    .copied()
                    .unwrap_or(f64::NAN);
                *v /= n;
            }
        }
    }
    let mut series = Vec::with_capacity(combined.len());
    for (_, (metric, pts)) in combined {
        let mut values = Vec::with_capacity(pts.len());
        for (t, v) in pts {
            let mut s = String::new();
            write_point(&mut s, t, v);
            values.push(RawValue::from_string(s).map_err(|e| Error::Decode(e.to_string()))?);
        }
        series.push(Series {
            metric,
            values,
            histograms: vec![],
        });
    }
    Ok(Some(Matrix {
        series,
        warnings,
        infos,
    }))
}

/// An instant vector answer's series as a one-step matrix (`value` → `values`), or `None`
/// if it is not a vector of floats.
pub fn vector_as_matrix(body: &[u8]) -> Result<Option<Matrix>> {
    #[derive(serde::Deserialize)]
    struct Env {
        status: String,
        data: Option<Data>,
        #[serde(default)]
        warnings: Vec<String>,
        #[serde(default)]
        infos: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(rename = "resultType")]
        result_type: String,
        result: Vec<Sample>,
    }
    #[derive(serde::Deserialize)]
    struct Sample {
        metric: BTreeMap<String, String>,
        value: Option<Box<RawValue>>,
    }
    let env: Env = serde_json::from_slice(body).map_err(|e| Error::Decode(e.to_string()))?;
    let Some(data) = env
        .data
        .filter(|d| env.status == "success" && d.result_type == "vector")
    else {
        return Ok(None);
    };
    let mut series = vec![];
    for s in data.result {
        let Some(v) = s.value else {
            return Ok(None); // a histogram sample
        };
        series.push(Series {
            metric: s.metric,
            values: vec![v],
            histograms: vec![],
        });
    }
    Ok(Some(Matrix {
        series,
        warnings: env.warnings,
        infos: env.infos,
    }))
}

/// A one-step matrix written as the querier writes an instant vector answer.
pub fn matrix_as_vector_json(m: &Matrix) -> String {
    let mut s =
        String::from("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[");
    let mut first = true;
    for series in &m.series {
        for p in &series.values {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str("{\"metric\":");
            let labels =
                Labels::from_pairs(series.metric.iter().map(|(k, v)| (k.clone(), v.clone())));
            muninn_querier::json::write_labels(&mut s, &labels);
            s.push_str(",\"value\":");
            s.push_str(p.get());
            s.push('}');
        }
    }
    s.push_str("]}");
    for (key, list) in [("warnings", &m.warnings), ("infos", &m.infos)] {
        if !list.is_empty() {
            s.push_str(&format!(",\"{key}\":["));
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                muninn_querier::json::write_str(&mut s, w);
            }
            s.push(']');
        }
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Expr {
        promql_parser::parser::parse(q).unwrap()
    }

    #[test]
    fn shardable_aggregations_become_shard_queries_that_parse_back() {
        let plan = plan(
            &p("sum by (job) (rate(http_total{code=~\"5..\"}[5m]) * 60)"),
            4,
        )
        .unwrap();
        assert_eq!(plan.combine, Combine::Sum);
        assert_eq!(plan.queries.len(), 4);
        for (i, q) in plan.queries.iter().enumerate() {
            assert!(
                q.contains(&format!("__query_shard__=\"{}_of_4\"", i + 1)),
                "{q}"
            );
            // The text parses back to the same aggregation over a sharded selector.
            let back = p(q);
            assert!(matches!(back, Expr::Aggregate(_)), "{q}");
        }
        let avg = super::plan(&p("avg without (instance) (x_bytes)"), 2).unwrap();
        assert_eq!(avg.combine, Combine::Avg);
        assert!(avg.queries[0].starts_with("sum without (instance) ("));
        assert!(avg.counts[1].starts_with("count without (instance) ("));
    }

    #[test]
    fn what_combines_series_is_not_sharded() {
        for q in [
            "sum(a / b)",
            "sum(a and b)",
            "sum(max by (x) (a))",
            "sum(label_replace(a, \"x\", \"y\", \"\", \"\"))",
            "sum(vector(1))",
            "sum(a * scalar(b))",
            "sum(histogram_quantile(0.9, a_bucket))",
            "sum({job=\"x\"})",
            "topk(3, a)",
            "quantile(0.5, a)",
            "rate(a[5m])",
            "count_values(\"v\", a)",
        ] {
            assert!(plan(&p(q), 16).is_none(), "{q}");
        }
        assert!(plan(&p("sum(a)"), 1).is_none(), "one shard is no sharding");
        assert!(plan(&p("(max(max_over_time(a[1h:5m] offset 1d)))"), 2).is_some());
    }

    #[test]
    fn shard_answers_combine_like_the_aggregation() {
        let m = |body: &str| Matrix::parse(body.as_bytes()).unwrap();
        let a = m(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"1"],[2,"NaN"]]}]}}"#,
        );
        let b = m(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"2"],[2,"5"]]},{"metric":{"job":"b"},"values":[[2,"+Inf"]]}]}}"#,
        );
        let mk = |c: Combine| Plan {
            combine: c,
            queries: vec![],
            counts: vec![],
        };
        let sum = combine(&mk(Combine::Sum), vec![a.clone(), b.clone()], vec![])
            .unwrap()
            .unwrap();
        assert_eq!(
            sum.to_json(),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"3"],[2,"NaN"]]},{"metric":{"job":"b"},"values":[[2,"+Inf"]]}]}}"#
        );
        let max = combine(&mk(Combine::Max), vec![a.clone(), b.clone()], vec![])
            .unwrap()
            .unwrap();
        assert!(
            max.to_json().contains(r#"[[1,"2"],[2,"5"]]"#),
            "NaN gives way: {}",
            max.to_json()
        );
        let annotated = m(
            r#"{"status":"success","data":{"resultType":"matrix","result":[]},"warnings":["PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"]}"#,
        );
        assert!(
            combine(&mk(Combine::Sum), vec![a.clone(), annotated], vec![])
                .unwrap()
                .is_none()
        );
        let hist = m(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[1,{"count":"1","sum":"1"}]]}]}}"#,
        );
        assert!(
            combine(&mk(Combine::Sum), vec![a, hist], vec![])
                .unwrap()
                .is_none()
        );
    }
}
