//! The Prometheus HTTP API: `query`, `query_range`, `series`, `labels`,
//! `label/<name>/values`, `metadata`, `status/buildinfo`, on GET and form-encoded POST, and
//! remote read (`read`, [`remote_read`]), under `/api/v1` and `/prometheus/api/v1` (the Grafana datasource URL ends in `/prometheus`).
//! Responses are Prometheus's JSON, byte for byte; errors carry its `errorType`s.

pub mod params;
pub mod remote_read;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

use crate::json::{write_hist_point, write_labels, write_point, write_str, write_timestamp};
use crate::promql::eval::matcher_sets;
use crate::promql::{self, EngineOptions, Point, QueryResult, QueryValue};
use crate::{Error, Querier, Result};
use params::{MAX_TIME_MS, MIN_TIME_MS, Params};

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 16 << 20;

/// The version string reported by `status/buildinfo`: the Prometheus API level Muninn speaks.
pub const PROMETHEUS_API_VERSION: &str = "3.0.0";

/// The routes, mounted twice.
pub fn router(q: Arc<Querier>) -> Router {
    let api = Router::new()
        .route("/query", get(query).post(query))
        .route("/query_range", get(query_range).post(query_range))
        .route("/series", get(series).post(series))
        .route("/labels", get(labels).post(labels))
        .route("/label/{name}/values", get(label_values))
        .route("/metadata", get(metadata))
        .route(
            "/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/format_query", get(format_query).post(format_query))
        .route("/parse_query", get(parse_query_ast).post(parse_query_ast))
        .route("/status/buildinfo", get(buildinfo))
        .route("/status/tsdb", get(crate::tenant_stats::tsdb_status))
        .route("/user_stats", get(crate::tenant_stats::user_stats))
        .route("/read", axum::routing::post(remote_read::read));
    Router::new()
        .nest("/api/v1", api.clone())
        .nest("/prometheus/api/v1", api)
        .with_state(q)
}

/// A call's tenant and parameters.
pub struct ApiCall {
    pub tenant: TenantId,
    pub params: Params,
}

impl FromRequest<Arc<Querier>> for ApiCall {
    type Rejection = Response;

    async fn from_request(req: Request, q: &Arc<Querier>) -> std::result::Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let tenant = q.tenancy.auth.tenant(&parts.headers).map_err(|e| {
            tracing::warn!(path = parts.uri.path(), error = %e, "query refused: no valid tenant");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"muninn\"")],
                format!("{e}\n"),
            )
                .into_response()
        })?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = if is_form {
            Some(
                axum::body::to_bytes(body, MAX_FORM_BYTES)
                    .await
                    .map_err(|e| {
                        error_response(&Error::BadData(format!("reading form body: {e}")))
                    })?,
            )
        } else {
            None
        };
        Ok(Self {
            tenant,
            params: Params::parse(parts.uri.query(), body.as_deref()),
        })
    }
}

pub(crate) fn success(data: &str) -> Response {
    let mut s = String::with_capacity(data.len() + 32);
    s.push_str("{\"status\":\"success\",\"data\":");
    s.push_str(data);
    s.push('}');
    ([(header::CONTENT_TYPE, "application/json")], s).into_response()
}

fn error_response(e: &Error) -> Response {
    let (status, kind) = match e {
        Error::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
        Error::Unsupported(_) | Error::Execution(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "execution")
        }
        Error::Ingester { .. } | Error::IngestersUnavailable(_) | Error::Storage(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        Error::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        Error::Corrupt(_) | Error::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let mut s = String::from("{\"status\":\"error\",\"errorType\":");
    write_str(&mut s, kind);
    s.push_str(",\"error\":");
    write_str(&mut s, &e.to_string());
    s.push('}');
    (status, [(header::CONTENT_TYPE, "application/json")], s).into_response()
}

/// Turns a handler result into a response, logging failures once.
pub(crate) fn respond(endpoint: &str, tenant: &TenantId, r: Result<String>) -> Response {
    match r {
        Ok(data) => success(&data),
        Err(e) => {
            tracing::warn!(endpoint, %tenant, error = %e, "query failed");
            error_response(&e)
        }
    }
}

use muninn_proto::time::now_ms;

fn parse_query(p: &Params) -> Result<Expr> {
    parse_query_source(p).map(|s| s.expr)
}

/// The query with what its annotations' positions need.
fn parse_query_source(p: &Params) -> Result<crate::promql::parse::Source> {
    let q = p.get("query").unwrap_or("");
    crate::promql::parse::parse_source(q)
        .map_err(|e| Error::BadData(format!("invalid parameter \"query\": {e}")))
}

fn opts(q: &Querier, timeout: std::time::Duration) -> EngineOptions {
    EngineOptions {
        lookback_ms: q.lookback_ms,
        max_samples: q.max_samples,
        max_series: q.max_series,
        max_bytes: q.max_bytes,
        timeout: Some(timeout),
        ..Default::default()
    }
}

/// The query timeout: `--querier.timeout`, lowered by a `timeout` parameter.
fn query_timeout(q: &Querier, p: &Params) -> Result<std::time::Duration> {
    let limit = q.timeout;
    Ok(match p.duration("timeout")? {
        Some(ms) if ms > 0 => limit.min(std::time::Duration::from_millis(ms as u64)),
        _ => limit,
    })
}

/// Runs a query with its timeout, counting the outcome. A query whose request is dropped
/// before it finishes (the client went away) is logged and counted as canceled; the
/// evaluator yields regularly, so dropping the request really stops the work.
async fn run_query<T>(
    q: &Querier,
    endpoint: &'static str,
    tenant: &TenantId,
    d: std::time::Duration,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    struct Guard<'a> {
        q: &'a Querier,
        endpoint: &'static str,
        tenant: &'a TenantId,
        done: bool,
    }
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if !self.done {
                tracing::info!(endpoint = self.endpoint, tenant = %self.tenant, "query canceled: the client went away");
                self.q.metrics.count(self.endpoint, "canceled");
            }
        }
    }
    let mut guard = Guard {
        q,
        endpoint,
        tenant,
        done: false,
    };
    let r = match tokio::time::timeout(d, f).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(
            "query timed out in expression evaluation".into(),
        )),
    };
    guard.done = true;
    let outcome = match &r {
        Ok(_) => "success",
        Err(Error::Timeout(_)) => "timeout",
        Err(_) => "error",
    };
    q.metrics.count(endpoint, outcome);
    r
}

/// Evaluates `expr` at `t` (ms) for `tenant` exactly as an instant query through the API
/// is evaluated (its limits, timeout and evaluation threads), counted under `endpoint`: the
/// ruler's entry point.
pub async fn instant_for(
    q: &Arc<Querier>,
    endpoint: &'static str,
    tenant: &TenantId,
    expr: promql_parser::parser::Expr,
    t: i64,
) -> Result<QueryResult> {
    let timeout = q.timeout;
    let (qc, tc) = (q.clone(), tenant.clone());
    let store = q.store_for(tenant);
    run_query(
        q,
        endpoint,
        tenant,
        timeout,
        evaluate(q, move || async move {
            promql::instant_query(store.as_ref(), &tc, opts(&qc, timeout), &expr, t).await
        }),
    )
    .await
}

/// Stack of a query's evaluation thread. Evaluation recurses a few frames per AST level
/// (at most [`promql::parse::MAX_DEPTH`]); a runtime worker's 2 MiB stack overflows at
/// about 120 levels in a debug build, and a stack overflow aborts the process. Only the
/// pages used are ever committed.
pub(crate) const EVAL_STACK_BYTES: usize = 64 << 20;

/// Runs a query's evaluation on one of the evaluation threads (large stacks), at most
/// `--querier.max-concurrent-queries` at a time, while the runtime keeps I/O and timers going
/// (so ingestion is served by the runtime's workers, not starved by evaluation). Dropping
/// the returned future (timeout, client gone) aborts the evaluation at its next yield.
async fn evaluate<T, F, Fut>(q: &Querier, make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    use futures::future::{AbortHandle, Abortable};
    struct AbortOnDrop(AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _permit = q
        .eval_slots
        .acquire()
        .await
        .map_err(|_| Error::Execution("the querier is shutting down".into()))?;
    let handle = tokio::runtime::Handle::current();
    let (abort, registration) = AbortHandle::new_pair();
    let _abort_on_drop = AbortOnDrop(abort);
    let (tx, rx) = tokio::sync::oneshot::channel();
    q.eval_threads
        .run(Box::new(move || {
            let r = handle.block_on(Abortable::new(make(), registration));
            let _ = tx.send(r);
        }))
        .map_err(Error::Execution)?;
    match rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(_aborted)) => Err(Error::Timeout("query canceled".into())),
        // The thread ended without an answer: the evaluation panicked (logged by the hook).
        Err(_) => Err(Error::Corrupt("query evaluation failed".into())),
    }
}

/// About how many bytes the JSON of `labels` takes (without escapes).
fn labels_json_len(labels: &Labels) -> usize {
    labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 6)
        .sum::<usize>()
        + 2
}

/// About how long a result's JSON is: sized up front, the text is not copied as it grows
/// (doubling would hold up to 1.5 times its final size while it moves).
fn result_json_len(v: &QueryValue) -> usize {
    // `{"metric":`, `,"value":[`, the timestamp and a value, closing brackets.
    const POINT: usize = 40;
    match v {
        QueryValue::Scalar(_) | QueryValue::String(_) => 128,
        QueryValue::Vector(series) => series
            .iter()
            .map(|(l, _)| labels_json_len(l) + 16 + POINT)
            .sum::<usize>(),
        QueryValue::Matrix(series) => series
            .iter()
            .map(|(l, pts)| labels_json_len(l) + 32 + pts.len() * POINT)
            .sum::<usize>(),
    }
}

/// `{"resultType":...,"result":...}` of a query result. Each series is dropped once
/// written, so the result shrinks as its text grows.
fn write_result(s: &mut String, v: QueryValue, t: i64) {
    match v {
        QueryValue::Scalar(v) => {
            s.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(s, t, v);
        }
        QueryValue::String(v) => {
            s.push_str("{\"resultType\":\"string\",\"result\":[");
            write_timestamp(s, t);
            s.push(',');
            write_str(s, &v);
            s.push(']');
        }
        QueryValue::Vector(series) => {
            s.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, (labels, v)) in series.into_iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str("{\"metric\":");
                write_labels(s, &labels);
                match v {
                    Point::F(v) => {
                        s.push_str(",\"value\":");
                        write_point(s, t, v);
                    }
                    Point::H(h) => {
                        s.push_str(",\"histogram\":");
                        write_hist_point(s, t, &h);
                    }
                }
                s.push('}');
            }
            s.push(']');
        }
        QueryValue::Matrix(series) => {
            s.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, (labels, pts)) in series.into_iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_series_points(s, &labels, &pts);
            }
            s.push(']');
        }
    }
    s.push('}');
}

/// A success response with the result's warnings and infos, as Prometheus 3 writes them.
fn query_response(r: QueryResult, t: i64) -> Response {
    let QueryResult {
        value,
        warnings,
        infos,
    } = r;
    let mut s = String::with_capacity(64 + result_json_len(&value));
    s.push_str("{\"status\":\"success\",\"data\":");
    write_result(&mut s, value, t);
    for (key, list) in [("warnings", &warnings), ("infos", &infos)] {
        if !list.is_empty() {
            s.push_str(&format!(",\"{key}\":["));
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_str(&mut s, w);
            }
            s.push(']');
        }
    }
    s.push('}');
    ([(header::CONTENT_TYPE, "application/json")], s).into_response()
}

async fn query(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let src = parse_query_source(&call.params)?;
        let t = call.params.time("time", now_ms())?;
        let timeout = query_timeout(&q, &call.params)?;
        let (qc, tenant) = (q.clone(), call.tenant.clone());
        let store = q.store_for(&call.tenant);
        let res = run_query(
            &q,
            "query",
            &call.tenant,
            timeout,
            evaluate(&q, move || async move {
                promql::instant_query_src(store.as_ref(), &tenant, opts(&qc, timeout), &src, t)
                    .await
            }),
        )
        .await?;
        Ok((res, t))
    }
    .await;
    match r {
        Ok((res, t)) => query_response(res, t),
        Err(e) => respond("query", &call.tenant, Err(e)),
    }
}

fn write_series_points(s: &mut String, labels: &Labels, points: &[(i64, Point)]) {
    s.push_str("{\"metric\":");
    write_labels(s, labels);
    // Floats under "values", histograms under "histograms", each only if present.
    let mut first = true;
    for (t, v) in points {
        if let Point::F(v) = v {
            s.push_str(if first { ",\"values\":[" } else { "," });
            first = false;
            write_point(s, *t, *v);
        }
    }
    if !first {
        s.push(']');
    }
    first = true;
    for (t, v) in points {
        if let Point::H(h) = v {
            s.push_str(if first { ",\"histograms\":[" } else { "," });
            first = false;
            write_hist_point(s, *t, h);
        }
    }
    if !first {
        s.push(']');
    }
    s.push('}');
}

async fn query_range(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let p = &call.params;
        let src = parse_query_source(p)?;
        let (start, end, step) = params::range(p)?;
        match src.expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            ValueType::Matrix => {
                return Err(Error::BadData(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
            ValueType::String => {
                return Err(Error::BadData(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
        }
        check_query_length(&q, &call.tenant, start, end)?;
        let timeout = query_timeout(&q, p)?;
        let (qc, tenant) = (q.clone(), call.tenant.clone());
        let store = q.store_for(&call.tenant);
        let eval = evaluate(&q, move || async move {
            promql::range_query_src(store.as_ref(), &tenant, opts(&qc, timeout), &src, start, end, step).await
        });
        run_query(&q, "query_range", &call.tenant, timeout, eval).await
    }
    .await;
    match r {
        Ok(res) => query_response(res, 0),
        Err(e) => respond("query_range", &call.tenant, Err(e)),
    }
}

/// Refuses a time range longer than the tenant's `max_total_query_length` (400).
pub(crate) fn check_query_length(
    q: &Querier,
    tenant: &TenantId,
    start: i64,
    end: i64,
) -> Result<()> {
    let max_len = q
        .tenancy
        .overrides
        .get(tenant.as_str())
        .max_total_query_length
        .as_millis_i64();
    let len = end.saturating_sub(start);
    if max_len > 0 && len > max_len {
        return Err(Error::BadData(format!(
            "the query time range exceeds the limit (query length: {}, limit: {}; max_total_query_length)",
            muninn_proto::duration::FlagDuration(std::time::Duration::from_millis(len as u64)),
            muninn_proto::duration::FlagDuration(std::time::Duration::from_millis(max_len as u64)),
        )));
    }
    Ok(())
}

/// Matcher sets of every `match[]` selector.
fn match_params(p: &Params) -> Result<Vec<Vec<muninn_storage::matcher::Matcher>>> {
    let mut out = vec![];
    for m in p.all("match[]") {
        let expr = crate::promql::parse::parse(m)
            .map_err(|e| Error::BadData(format!("invalid parameter \"match[]\": {e}")))?;
        match expr {
            Expr::VectorSelector(vs) => out.extend(matcher_sets(&vs)?),
            _ => {
                return Err(Error::BadData(format!(
                    "invalid parameter \"match[]\": {m} is not a series selector"
                )));
            }
        }
    }
    Ok(out)
}

fn limit(p: &Params) -> Result<usize> {
    match p.get("limit") {
        None => Ok(usize::MAX),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n as usize),
            Ok(_) => Ok(usize::MAX),
            Err(_) => Err(Error::BadData(format!(
                "invalid parameter \"limit\": cannot parse \"{s}\" to a valid limit"
            ))),
        },
    }
}

fn time_range(p: &Params) -> Result<(i64, i64)> {
    Ok((p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?))
}

async fn series(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let p = &call.params;
        if p.all("match[]").is_empty() {
            return Err(Error::BadData("no match[] parameter provided".into()));
        }
        let (start, end) = time_range(p)?;
        let limit = limit(p)?;
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for ms in match_params(p)? {
            for sd in q
                .store_for(&call.tenant)
                .select(&call.tenant, &ms, start, end, true)
                .await?
            {
                all.insert(sd.labels);
            }
        }
        let mut s = String::from("[");
        for (i, l) in all.iter().take(limit).enumerate() {
            if i > 0 {
                s.push(',');
            }
            write_labels(&mut s, l);
        }
        s.push(']');
        Ok(s)
    }
    .await;
    respond("series", &call.tenant, r)
}

fn string_array(items: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from("[");
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_str(&mut s, &v);
    }
    s.push(']');
    s
}

async fn labels(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let p = &call.params;
        let (start, end) = time_range(p)?;
        let limit = limit(p)?;
        let sets = match_params(p)?;
        let mut names: BTreeSet<String> = BTreeSet::new();
        if sets.is_empty() {
            names.extend(
                q.store_for(&call.tenant)
                    .label_names(&call.tenant, &[], start, end)
                    .await?,
            );
        }
        for ms in &sets {
            names.extend(
                q.store_for(&call.tenant)
                    .label_names(&call.tenant, ms, start, end)
                    .await?,
            );
        }
        Ok(string_array(names.into_iter().take(limit)))
    }
    .await;
    respond("labels", &call.tenant, r)
}

async fn label_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    call: ApiCall,
) -> Response {
    let r = async {
        let p = &call.params;
        if name.is_empty() {
            return Err(Error::BadData(format!("invalid label name: {name:?}")));
        }
        let (start, end) = time_range(p)?;
        let limit = limit(p)?;
        let sets = match_params(p)?;
        let mut values: BTreeSet<String> = BTreeSet::new();
        if sets.is_empty() {
            values.extend(
                q.store_for(&call.tenant)
                    .label_values(&call.tenant, &name, &[], start, end)
                    .await?,
            );
        }
        for ms in &sets {
            values.extend(
                q.store_for(&call.tenant)
                    .label_values(&call.tenant, &name, ms, start, end)
                    .await?,
            );
        }
        Ok(string_array(values.into_iter().take(limit)))
    }
    .await;
    respond("label_values", &call.tenant, r)
}

async fn metadata(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let p = &call.params;
        let limit = limit(p)?;
        let per_metric = match p.get("limit_per_metric") {
            None => usize::MAX,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .map_or(usize::MAX, |n| n as usize),
        };
        let metas = q.store.metadata(&call.tenant, p.get("metric")).await?;
        let mut by_family: BTreeMap<&str, Vec<&crate::store::FamilyMeta>> = BTreeMap::new();
        for m in &metas {
            by_family.entry(m.family.as_str()).or_default().push(m);
        }
        let mut s = String::from("{");
        for (i, (family, ms)) in by_family.iter().take(limit).enumerate() {
            if i > 0 {
                s.push(',');
            }
            write_str(&mut s, family);
            s.push_str(":[");
            for (j, m) in ms.iter().take(per_metric).enumerate() {
                if j > 0 {
                    s.push(',');
                }
                s.push_str("{\"type\":");
                write_str(&mut s, &m.metric_type);
                s.push_str(",\"help\":");
                write_str(&mut s, &m.help);
                s.push_str(",\"unit\":");
                write_str(&mut s, &m.unit);
                s.push('}');
            }
            s.push(']');
        }
        s.push('}');
        Ok(s)
    }
    .await;
    respond("metadata", &call.tenant, r)
}

/// No exemplars are stored yet: a valid, empty answer.
/// `query_exemplars`: the exemplars of every series the query's selectors match, in
/// `[start, end]`, from the ingesters (exemplars live in their memory and WAL), in
/// Prometheus's shape: `[{"seriesLabels":{..},"exemplars":[{"labels":{..},"value":"1",
/// "timestamp":1.5}]}]`.
async fn query_exemplars(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = async {
        let expr = parse_query(&call.params)?;
        let (start, end) = time_range(&call.params)?;
        if end < start {
            return Err(Error::BadData(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        let mut selectors = Vec::new();
        collect_selectors(&expr, &mut selectors);
        let mut all: BTreeMap<Labels, Vec<muninn_proto::prometheus::Exemplar>> = BTreeMap::new();
        if let Some(ing) = &q.ingesters {
            for vs in &selectors {
                for ms in matcher_sets(vs)? {
                    for (labels, ex) in ing.exemplars(&call.tenant, &ms, start, end).await? {
                        all.entry(labels).or_default().extend(ex);
                    }
                }
            }
        }
        let mut s = String::from("[");
        let mut first = true;
        for (labels, mut ex) in all {
            ex.sort_by_key(|e| e.timestamp);
            ex.dedup();
            if ex.is_empty() {
                continue;
            }
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str("{\"seriesLabels\":");
            write_labels(&mut s, &labels);
            s.push_str(",\"exemplars\":[");
            for (i, e) in ex.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str("{\"labels\":");
                let l = Labels(
                    e.labels
                        .iter()
                        .map(|l| muninn_storage::labels::Label {
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                );
                write_labels(&mut s, &l);
                s.push_str(",\"value\":");
                crate::json::write_value(&mut s, e.value);
                s.push_str(",\"timestamp\":");
                write_timestamp(&mut s, e.timestamp);
                s.push('}');
            }
            s.push_str("]}");
        }
        s.push(']');
        Ok(s)
    }
    .await;
    respond("query_exemplars", &call.tenant, r)
}

/// Every vector selector of an expression (matrix selectors and subqueries included).
fn collect_selectors(e: &Expr, out: &mut Vec<promql_parser::parser::VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs.clone()),
        Expr::MatrixSelector(m) => out.push(m.vs.clone()),
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        _ => {}
    }
}

async fn format_query(call: ApiCall) -> Response {
    let r = parse_query(&call.params).map(|e| {
        let mut s = String::new();
        write_str(&mut s, &e.prettify());
        s
    });
    respond("format_query", &call.tenant, r)
}

/// The query's AST as JSON (Prometheus 3's `parse_query`).
async fn parse_query_ast(call: ApiCall) -> Response {
    let r = parse_query(&call.params).and_then(|e| {
        serde_json::to_string(&e).map_err(|e| Error::BadData(format!("serializing the AST: {e}")))
    });
    respond("parse_query", &call.tenant, r)
}

async fn buildinfo() -> Response {
    let mut s = String::from("{\"version\":");
    write_str(&mut s, PROMETHEUS_API_VERSION);
    s.push_str(",\"revision\":");
    write_str(&mut s, concat!("muninn-", env!("CARGO_PKG_VERSION")));
    s.push_str(",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}");
    success(&s)
}
