//! The PromQL engine: Prometheus 3.x semantics, evaluated step-vectorised over a
//! [`SeriesSource`](crate::store::SeriesSource).
//!
//! [`eval`] walks the AST (parsed by `promql-parser`) once for all steps of a query;
//! [`binary`], [`aggregate`], [`functions`] and [`histogram`] hold the operators. Names
//! dropped by operations are removed at the end (delayed name removal, as Prometheus 3's
//! engine with its test settings), when duplicate label sets become an error.

pub mod aggregate;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod histogram;
pub mod parse;
pub mod value;

use hashbrown::HashMap;

use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use promql_parser::parser::Expr;

use crate::store::SeriesSource;
use crate::{Error, Result};
use eval::{Ctx, Evaluator};
use value::{Value, without_name};

/// Engine settings.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    pub lookback_ms: i64,
    pub subquery_step_ms: i64,
    pub max_samples: usize,
    /// Longest an evaluation may take.
    pub timeout: Option<std::time::Duration>,
    /// Most series a query may fetch (0: no limit).
    pub max_series: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            subquery_step_ms: 60_000,
            max_samples: 50_000_000,
            timeout: None,
            max_series: 0,
        }
    }
}

/// A query's final value.
#[derive(Clone, Debug)]
pub enum QueryValue {
    Scalar(f64),
    String(String),
    /// Instant vector: labels and value, in result order.
    Vector(Vec<(Labels, f64)>),
    /// Range results (and range vectors of instant queries): labels and points.
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

/// A result with its annotations.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub value: QueryValue,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Removes flagged names and merges series that end up with the same labels, failing when
/// two of them have a value at the same step.
fn finish_vector(series: Vec<value::Series>, n: usize) -> Result<Vec<(Labels, Vec<Option<f64>>)>> {
    let mut out: Vec<(Labels, Vec<Option<f64>>)> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in series {
        let labels = if s.drop_name {
            without_name(&s.labels)
        } else {
            s.labels
        };
        match index.get(&labels) {
            Some(&i) => {
                for step in 0..n {
                    if let Some(v) = s.vals[step] {
                        if out[i].1[step].is_some() {
                            return Err(Error::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        out[i].1[step] = Some(v);
                    }
                }
            }
            None => {
                index.insert(labels.clone(), out.len());
                out.push((labels, s.vals));
            }
        }
    }
    Ok(out)
}

fn annotations(ev: Evaluator<'_>) -> (Vec<String>, Vec<String>) {
    match ev.annotations.into_inner() {
        Ok(a) => (a.warnings, a.infos),
        Err(_) => (vec![], vec![]),
    }
}

/// Evaluates an instant query at `t` (ms).
pub async fn instant_query(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    expr: &Expr,
    t: i64,
) -> Result<QueryResult> {
    let mut ev = Evaluator::new(store, tenant, opts.lookback_ms, t, t);
    ev.subquery_step_ms = opts.subquery_step_ms;
    ev.max_samples = opts.max_samples;
    ev.deadline = opts.timeout.map(|t| std::time::Instant::now() + t);
    ev.max_series = opts.max_series;
    let ctx = Ctx {
        start: t,
        end: t,
        interval: 1,
    };
    let v = ev.eval(expr, &ctx).await?;
    let value = match v {
        Value::Scalar(v) => QueryValue::Scalar(v[0]),
        Value::String(s) => QueryValue::String(s),
        Value::Vector(series) => QueryValue::Vector(
            finish_vector(series, 1)?
                .into_iter()
                .filter_map(|(l, v)| v[0].map(|x| (l, x)))
                .collect(),
        ),
        Value::Matrix(m) => {
            let mut out = Vec::with_capacity(m.series.len());
            let mut seen = std::collections::HashSet::new();
            let mut buf = Vec::new();
            for s in &m.series {
                s.decode_into(&mut buf)?;
                let pts = m.window(&buf, 0).to_vec();
                if pts.is_empty() {
                    continue;
                }
                let labels = if s.drop_name {
                    without_name(&s.labels)
                } else {
                    s.labels.clone()
                };
                if !seen.insert(labels.clone()) {
                    return Err(Error::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                out.push((labels, pts));
            }
            QueryValue::Matrix(out)
        }
    };
    let (warnings, infos) = annotations(ev);
    Ok(QueryResult {
        value,
        warnings,
        infos,
    })
}

/// Evaluates a range query; the result is a matrix sorted by labels.
pub async fn range_query(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Result<QueryResult> {
    let mut ev = Evaluator::new(store, tenant, opts.lookback_ms, start, end);
    ev.query_step = step;
    ev.subquery_step_ms = opts.subquery_step_ms;
    ev.max_samples = opts.max_samples;
    ev.deadline = opts.timeout.map(|t| std::time::Instant::now() + t);
    ev.max_series = opts.max_series;
    let ctx = Ctx {
        start,
        end,
        interval: step,
    };
    let n = ctx.len();
    let v = ev.eval(expr, &ctx).await?;
    let mut series = match v {
        Value::Scalar(vals) => vec![(Labels::default(), vals.into_iter().map(Some).collect())],
        Value::Vector(series) => finish_vector(series, n)?,
        other => {
            return Err(Error::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                other.type_name()
            )));
        }
    };
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let value = QueryValue::Matrix(
        series
            .into_iter()
            .map(|(l, vals)| {
                (
                    l,
                    vals.iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|x| (ctx.at(i), x)))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect(),
    );
    let (warnings, infos) = annotations(ev);
    Ok(QueryResult {
        value,
        warnings,
        infos,
    })
}
