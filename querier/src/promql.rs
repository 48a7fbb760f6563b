//! The PromQL engine: Prometheus 3.x semantics, evaluated step-vectorised over a
//! [`SeriesSource`](crate::store::SeriesSource).
//!
//! [`eval`] walks the AST (parsed by `promql-parser`) once for all steps of a query;
//! [`binary`], [`aggregate`], [`functions`] and [`histogram`] hold the operators. Names
//! dropped by operations are removed at the end (delayed name removal, as Prometheus 3's
//! engine with its test settings), when duplicate label sets become an error.

pub mod aggregate;
pub mod annotations;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod histogram;
pub mod limits;
pub mod native;
pub mod parse;
pub mod stream_agg;
pub mod value;

use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use promql_parser::parser::Expr;

use crate::store::SeriesSource;
use crate::{Error, Result};
use eval::{Ctx, Evaluator};
use value::Value;

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
    /// Most bytes a query's values may hold, labels included (0: no limit).
    pub max_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            subquery_step_ms: 60_000,
            max_samples: 50_000_000,
            timeout: None,
            max_series: 0,
            max_bytes: 1 << 30,
        }
    }
}

/// One sample's value in a result: a float or a native histogram.
#[derive(Clone, Debug, PartialEq)]
pub enum Point {
    F(f64),
    H(value::Hist),
}

impl Point {
    /// The float, if this is one.
    pub fn float(&self) -> Option<f64> {
        match self {
            Point::F(v) => Some(*v),
            Point::H(_) => None,
        }
    }
}

/// A query's final value.
#[derive(Clone, Debug)]
pub enum QueryValue {
    Scalar(f64),
    String(String),
    /// Instant vector: labels and value, in result order.
    Vector(Vec<(Labels, Point)>),
    /// Range results (and range vectors of instant queries): labels and points in time order.
    Matrix(Vec<(Labels, Vec<(i64, Point)>)>),
}

/// A result with its annotations.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub value: QueryValue,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Label sets of a result, as positions into the result itself: hashed by their labels,
/// so the index holds no copy of them.
struct ResultIndex {
    table: hashbrown::HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl ResultIndex {
    fn new() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// The position of `labels` among `out`'s, or `None` after recording it as `out.len()`
    /// (the caller pushes it next).
    fn find_or_add<T>(&mut self, out: &[(Labels, T)], labels: &Labels) -> Option<usize> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(labels);
        if let Some(&i) = self.table.find(h, |&i| out[i].0 == *labels) {
            return Some(i);
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(h, out.len(), |&i| hasher.hash_one(&out[i].0));
        None
    }
}

/// A series' labels with a flagged `__name__` removed, in place.
fn final_labels(s: &mut value::Series) -> Labels {
    let mut labels = std::mem::take(&mut s.labels);
    if s.drop_name {
        labels
            .0
            .retain(|l| l.name != muninn_storage::labels::METRIC_NAME);
    }
    labels
}

/// The value of step `i` of a series.
fn point_at(s: &value::Series, i: usize) -> Option<Point> {
    match (s.vals.get(i).copied().flatten(), s.hist(i)) {
        (Some(v), _) => Some(Point::F(v)),
        (None, Some(h)) => Some(Point::H(h.clone())),
        _ => None,
    }
}

const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// Removes flagged names and merges series that end up with the same labels, failing when
/// two of them have a value at the same step. Each series is consumed as it is placed: its
/// labels move into the result.
fn finish_vector(
    series: Vec<value::Series>,
    n: usize,
) -> Result<Vec<(Labels, Vec<Option<Point>>)>> {
    let mut out: Vec<(Labels, Vec<Option<Point>>)> = Vec::with_capacity(series.len());
    let mut index = ResultIndex::new();
    for mut s in series {
        let labels = final_labels(&mut s);
        let points: Vec<Option<Point>> = (0..n).map(|i| point_at(&s, i)).collect();
        drop(s);
        match index.find_or_add(&out, &labels) {
            Some(i) => {
                for (step, p) in points.into_iter().enumerate() {
                    if let Some(p) = p {
                        if out[i].1[step].is_some() {
                            return Err(Error::Execution(DUPLICATE_LABELSET.into()));
                        }
                        out[i].1[step] = Some(p);
                    }
                }
            }
            None => out.push((labels, points)),
        }
    }
    Ok(out)
}

/// [`finish_vector`] for the one step of an instant query: series without a value are
/// dropped, and two with the same labels are an error.
fn finish_instant(series: Vec<value::Series>) -> Result<Vec<(Labels, Point)>> {
    let mut out: Vec<(Labels, Point)> = Vec::with_capacity(series.len());
    let mut index = ResultIndex::new();
    for mut s in series {
        let Some(p) = point_at(&s, 0) else { continue };
        let labels = final_labels(&mut s);
        drop(s);
        if index.find_or_add(&out, &labels).is_some() {
            return Err(Error::Execution(DUPLICATE_LABELSET.into()));
        }
        out.push((labels, p));
    }
    Ok(out)
}

/// Sets the evaluator's limits from the options.
fn configure(ev: &mut Evaluator<'_>, opts: &EngineOptions) {
    ev.subquery_step_ms = opts.subquery_step_ms;
    ev.max_samples = opts.max_samples;
    ev.deadline = opts
        .timeout
        .and_then(|t| std::time::Instant::now().checked_add(t));
    ev.max_series = opts.max_series;
    ev.max_bytes = opts.max_bytes;
}

/// Charges what answering will take on top of the result: the response text, about
/// [`limits::JSON_POINT_BYTES`] a point plus the labels.
fn charge_response<'a>(
    ev: &Evaluator<'_>,
    series: impl Iterator<Item = (&'a Labels, usize)>,
) -> Result<()> {
    let mut bytes = 0usize;
    for (l, points) in series {
        bytes = bytes
            .saturating_add(limits::labels_bytes(l))
            .saturating_add(points.saturating_mul(limits::JSON_POINT_BYTES));
    }
    ev.charge(bytes)
}

fn annotations(ev: Evaluator<'_>) -> (Vec<String>, Vec<String>) {
    match ev.annotations.into_inner() {
        Ok(a) => (a.warnings, a.infos),
        Err(_) => (vec![], vec![]),
    }
}

/// Evaluates a parsed query at `t` (ms), its annotations carrying positions.
pub async fn instant_query_src(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    src: &parse::Source,
    t: i64,
) -> Result<QueryResult> {
    instant_query_inner(store, tenant, opts, &src.expr, t, parse::positions(src)).await
}

/// Evaluates an instant query at `t` (ms).
pub async fn instant_query(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    expr: &Expr,
    t: i64,
) -> Result<QueryResult> {
    instant_query_inner(store, tenant, opts, expr, t, Default::default()).await
}

async fn instant_query_inner(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    expr: &Expr,
    t: i64,
    positions: std::collections::HashMap<usize, String>,
) -> Result<QueryResult> {
    let mut ev = Evaluator::new(store, tenant, opts.lookback_ms, t, t);
    ev.positions = positions;
    configure(&mut ev, &opts);
    let ctx = Ctx {
        start: t,
        end: t,
        interval: 1,
    };
    let v = ev.eval(expr, &ctx).await?;
    let value = match v {
        Value::Scalar(v) => QueryValue::Scalar(v[0]),
        Value::String(s) => QueryValue::String(s),
        Value::Vector(series) => {
            let v = finish_instant(series)?;
            charge_response(&ev, v.iter().map(|(l, _)| (l, 1)))?;
            QueryValue::Vector(v)
        }
        Value::Matrix(mut m) => {
            let series = std::mem::take(&mut m.series);
            let mut out = Vec::with_capacity(series.len());
            let mut index = ResultIndex::new();
            let mut buf = Vec::new();
            for s in series {
                s.decode_into(&mut buf)?;
                let mut pts: Vec<(i64, Point)> = m
                    .window(&buf, 0)
                    .iter()
                    .map(|(t, v)| (*t, Point::F(*v)))
                    .collect();
                pts.extend(
                    m.hwindow(&s.hists, 0)
                        .iter()
                        .map(|(t, h)| (*t, Point::H(h.clone()))),
                );
                pts.sort_by_key(|p| p.0);
                if pts.is_empty() {
                    continue;
                }
                let mut labels = s.labels;
                if s.drop_name {
                    labels
                        .0
                        .retain(|l| l.name != muninn_storage::labels::METRIC_NAME);
                }
                ev.charge(limits::series_bytes(&labels, pts.len()))?;
                if index.find_or_add(&out, &labels).is_some() {
                    return Err(Error::Execution(DUPLICATE_LABELSET.into()));
                }
                out.push((labels, pts));
            }
            charge_response(&ev, out.iter().map(|(l, p)| (l, p.len())))?;
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

/// Evaluates a parsed range query, its annotations carrying positions.
pub async fn range_query_src(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    src: &parse::Source,
    start: i64,
    end: i64,
    step: i64,
) -> Result<QueryResult> {
    range_query_inner(
        store,
        tenant,
        opts,
        &src.expr,
        (start, end, step),
        parse::positions(src),
    )
    .await
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
    range_query_inner(
        store,
        tenant,
        opts,
        expr,
        (start, end, step),
        Default::default(),
    )
    .await
}

async fn range_query_inner(
    store: &dyn SeriesSource,
    tenant: &TenantId,
    opts: EngineOptions,
    expr: &Expr,
    (start, end, step): (i64, i64, i64),
    positions: std::collections::HashMap<usize, String>,
) -> Result<QueryResult> {
    let mut ev = Evaluator::new(store, tenant, opts.lookback_ms, start, end);
    ev.positions = positions;
    ev.query_step = step;
    configure(&mut ev, &opts);
    let ctx = Ctx {
        start,
        end,
        interval: step,
    };
    let n = ev.check_steps(limits::step_count(start, end, step.max(1)))?;
    let v = ev.eval(expr, &ctx).await?;
    let mut series = match v {
        Value::Scalar(vals) => vec![(
            Labels::default(),
            vals.into_iter().map(|v| Some(Point::F(v))).collect(),
        )],
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
                    vals.into_iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|x| (ctx.at(i), x)))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect(),
    );
    if let QueryValue::Matrix(m) = &value {
        charge_response(&ev, m.iter().map(|(l, p)| (l, p.len())))?;
    }
    let (warnings, infos) = annotations(ev);
    Ok(QueryResult {
        value,
        warnings,
        infos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_store::MemStore;
    use muninn_storage::labels::Label;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels(
            pairs
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        )
    }

    async fn instant(store: &MemStore, opts: EngineOptions, q: &str) -> Result<QueryResult> {
        let expr = parse::parse(q).map_err(Error::BadData)?;
        instant_query(store, &TenantId::anonymous(), opts, &expr, 3_600_000).await
    }

    fn message(r: Result<QueryResult>) -> String {
        match r {
            Err(Error::Execution(m)) => m,
            Err(other) => panic!("not an execution error: {other:?}"),
            Ok(_) => panic!("the query was answered"),
        }
    }

    #[tokio::test]
    async fn subquery_steps_are_refused_before_allocation() {
        let store = MemStore::default();
        let opts = EngineOptions::default();
        let samples = "query processing would load too many samples into memory in query execution";
        // 3.15e10 and 8.6e7 steps: refused at once, never allocated (the first would need
        // 500 GB).
        for q in [
            "vector(1)[365d:1ms]",
            "max_over_time(vector(1)[365d:1ms])",
            "sum_over_time(vector(1)[1000d:1s])",
            "count_over_time(vector(time())[292y:1ms])",
        ] {
            let t = std::time::Instant::now();
            assert_eq!(message(instant(&store, opts, q).await), samples, "{q}");
            assert!(t.elapsed() < std::time::Duration::from_secs(1), "{q}");
        }
        // Within --querier.max-samples but past the memory budget: refused before sizing.
        let small = EngineOptions {
            max_bytes: 1 << 20,
            ..opts
        };
        let m = message(instant(&store, small, "sum_over_time(vector(1)[1d:1s])").await);
        assert!(m.contains("--querier.max-memory-per-query"), "{m}");
        assert!(m.contains("1MiB"), "{m}");
        // And a subquery inside the budgets is answered.
        let r = instant(&store, opts, "count_over_time(vector(1)[1h:1s])").await;
        match r.map(|r| r.value) {
            Ok(QueryValue::Vector(v)) => assert_eq!(v[0].1, Point::F(3600.0)),
            other => panic!("{other:?}"),
        }
        // A range query's own steps count too.
        let expr = parse::parse("vector(1)").map_err(Error::BadData);
        let Ok(expr) = expr else { panic!() };
        let r = range_query(&store, &TenantId::anonymous(), opts, &expr, 0, i64::MAX, 1).await;
        assert_eq!(message(r), samples);
    }

    #[tokio::test]
    async fn label_bytes_count_against_the_memory_budget() {
        let mut store = MemStore::default();
        for i in 0..1000 {
            store.add(
                labels(&[("__name__", "big"), ("i", &format!("{i:05}"))]),
                [(3_600_000 - 1000, 1.0)],
            );
        }
        let repl = "'$1'".repeat(5000);
        let q = format!(r#"count(label_replace(big, "x", "{repl}", "i", "(.*)"))"#);
        // 1000 series × 35 kB of new label: 35 MB, past a 16 MiB budget.
        let opts = EngineOptions {
            max_bytes: 16 << 20,
            ..EngineOptions::default()
        };
        let m = message(instant(&store, opts, &q).await);
        assert!(m.contains("more than 16MiB"), "{m}");
        // Refused while building, not after: the bytes charged never went far past the
        // budget (one series' label, 35 kB), so neither did the bytes held.
        let tenant = TenantId::anonymous();
        let mut ev = Evaluator::new(&store, &tenant, 300_000, 3_600_000, 3_600_000);
        ev.max_bytes = 16 << 20;
        let ctx = Ctx {
            start: 3_600_000,
            end: 3_600_000,
            interval: 1,
        };
        let Ok(expr) = parse::parse(&q) else { panic!() };
        assert!(ev.eval(&expr, &ctx).await.is_err());
        assert!(
            ev.peak_bytes() < (16 << 20) + 100_000,
            "peak {} bytes",
            ev.peak_bytes()
        );
        // The default budget answers it, correctly.
        let r = instant(&store, EngineOptions::default(), &q).await;
        match r.map(|r| r.value) {
            Ok(QueryValue::Vector(v)) => assert_eq!(v[0].1, Point::F(1000.0)),
            other => panic!("{other:?}"),
        }
        // label_join grows labels the same way.
        let join = format!(
            r#"count(label_join(big, "x", "{}", "i", "i", "i"))"#,
            "-".repeat(20_000)
        );
        let m = message(instant(&store, opts, &join).await);
        assert!(m.contains("--querier.max-memory-per-query"), "{m}");
    }

    #[tokio::test]
    async fn series_held_count_against_the_memory_budget() {
        let mut store = MemStore::default();
        let long = "v".repeat(10_000);
        for i in 0..200 {
            store.add(
                labels(&[("__name__", "wide"), ("i", &i.to_string()), ("l", &long)]),
                [(3_600_000 - 1000, 1.0)],
            );
        }
        // 200 series of 10 kB labels: 2 MB held by the selector alone.
        let opts = EngineOptions {
            max_bytes: 1 << 20,
            ..EngineOptions::default()
        };
        for q in [
            "wide",
            "sum by (l, i) (wide)",
            "wide * on(i) wide",
            "wide + 1",
        ] {
            let m = message(instant(&store, opts, q).await);
            assert!(m.contains("--querier.max-memory-per-query"), "{q}: {m}");
        }
        let unlimited = EngineOptions {
            max_bytes: 0,
            ..EngineOptions::default()
        };
        assert!(
            instant(&store, unlimited, "sum by (l, i) (wide)")
                .await
                .is_ok()
        );
    }
}
