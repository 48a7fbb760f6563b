//! The frontend's HTTP API: the querier's routes under `/api/v1` and `/prometheus/api/v1`.
//! `query_range` is split, cached and merged; every other call is forwarded as it is. All go
//! through the tenant's queue; a querier's error answer is passed back unchanged.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use muninn_querier::api::params::{self, Params};
use muninn_querier::json::{write_str, write_timestamp};
use promql_parser::parser::value::ValueType;

use crate::downstream::{SubRequest, SubResponse, forwarded};
use crate::extents::{self, Extent};
use crate::matrix::Matrix;
use crate::shard::{self, Plan};
use crate::split::{self, Span};
use crate::{Error, Frontend, Result};

/// Largest request body read (form-encoded queries).
const MAX_BODY_BYTES: usize = 16 << 20;

/// The routes, mounted twice, as the querier's.
pub fn router(fe: Arc<Frontend>) -> Router {
    let api = Router::new()
        .route("/query_range", get(query_range).post(query_range))
        .route("/query", get(query).post(query))
        .route("/series", get(forward).post(forward))
        .route("/labels", get(forward).post(forward))
        .route("/label/{name}/values", get(forward))
        .route("/metadata", get(forward))
        .route("/query_exemplars", get(forward).post(forward))
        .route("/format_query", get(forward).post(forward))
        .route("/parse_query", get(forward).post(forward))
        .route("/status/buildinfo", get(forward))
        .route("/status/tsdb", get(forward))
        .route("/user_stats", get(forward))
        // Remote read passes through whole (a streamed answer is buffered here).
        .route("/read", post(forward));
    Router::new()
        .nest("/api/v1", api.clone())
        .nest("/prometheus/api/v1", api)
        .with_state(fe)
}

/// A client's request, read.
struct Incoming {
    tenant: String,
    method: http::Method,
    /// The path and query string as the client sent them.
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    async fn read(
        fe: &Frontend,
        uri: &http::Uri,
        req: Request,
    ) -> std::result::Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let tenant = fe.tenancy.auth.tenant(&parts.headers).map_err(|e| {
            tracing::warn!(path = uri.path(), error = %e, "query refused: no valid tenant");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"muninn\"")],
                format!("{e}\n"),
            )
                .into_response()
        })?;
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    &format!("reading the body: {e}"),
                )
            })?;
        Ok(Self {
            tenant: tenant.to_string(),
            method: parts.method,
            uri: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
            headers: parts.headers,
            body,
        })
    }

    fn is_form(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    }

    /// Every parameter, form body first then the URL's, as the querier reads them.
    fn pairs(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if self.is_form() {
            out.extend(form_urlencoded::parse(&self.body).into_owned());
        }
        if let Some((_, q)) = self.uri.split_once('?') {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        out
    }

    fn params(&self) -> Params {
        Params::parse(
            self.uri.split_once('?').map(|(_, q)| q),
            self.is_form().then_some(&self.body[..]),
        )
    }

    /// The request as it came, for a querier.
    fn as_sub_request(&self) -> SubRequest {
        let mut headers = forwarded(&self.headers);
        if let Some(ct) = self.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, ct.clone());
        }
        SubRequest {
            method: self.method.clone(),
            path_and_query: self.uri.clone(),
            headers,
            body: self.body.clone(),
        }
    }

    /// Whether the client asked not to be answered from (or stored in) a cache.
    fn no_store(&self) -> bool {
        self.headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("no-store"))
    }
}

fn error_response(status: StatusCode, kind: &str, msg: &str) -> Response {
    let mut s = String::from("{\"status\":\"error\",\"errorType\":");
    write_str(&mut s, kind);
    s.push_str(",\"error\":");
    write_str(&mut s, msg);
    s.push('}');
    (status, [(header::CONTENT_TYPE, "application/json")], s).into_response()
}

fn frontend_error(tenant: &str, e: &Error) -> Response {
    tracing::warn!(%tenant, error = %e, "query failed in the frontend");
    match e {
        Error::TooManyOutstanding(_) => {
            error_response(StatusCode::TOO_MANY_REQUESTS, "unavailable", &e.to_string())
        }
        Error::Downstream(_) | Error::Decode(_) => {
            error_response(StatusCode::BAD_GATEWAY, "unavailable", &e.to_string())
        }
        Error::Cache(_) | Error::Config(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

fn pass_back(r: SubResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = r.status;
    if let Some(ct) = r.content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(ce) = r.content_encoding {
        resp.headers_mut().insert(header::CONTENT_ENCODING, ce);
    }
    resp
}

impl Frontend {
    /// Sends one sub-request in the tenant's turn, retrying 5xx answers (except timeouts,
    /// which would only time out again) and unreachable queriers.
    pub async fn send(&self, tenant: &str, req: SubRequest) -> Result<SubResponse> {
        let mut attempt = 0;
        loop {
            let permit = self.queue.acquire(tenant).await?;
            let r = self.downstream.call(req.clone()).await;
            drop(permit);
            let retry = match &r {
                // Only what another try can fix: an unavailable querier (not a query that timed
                // out, nor an internal error that would recur).
                Ok(resp) => {
                    self.metrics.downstream(resp.status.as_str());
                    matches!(resp.status.as_u16(), 502..=504)
                        && !contains(&resp.body, b"\"errorType\":\"timeout\"")
                }
                Err(e) => {
                    self.metrics.downstream("error");
                    matches!(e, Error::Downstream(_))
                }
            };
            if retry && attempt < self.args.max_retries {
                attempt += 1;
                self.metrics.retries.inc();
                tracing::debug!(%tenant, attempt, path = req.path_and_query, "retrying a sub-request");
                continue;
            }
            return r;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn forward(
    State(fe): State<Arc<Frontend>>,
    OriginalUri(uri): OriginalUri,
    req: Request,
) -> Response {
    let inc = match Incoming::read(&fe, &uri, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err(e) = fe.queue.admit(&inc.tenant) {
        return frontend_error(&inc.tenant, &e);
    }
    fe.metrics.query(endpoint(&inc.uri));
    forward_incoming(&fe, &inc).await
}

async fn forward_incoming(fe: &Frontend, inc: &Incoming) -> Response {
    match fe.send(&inc.tenant, inc.as_sub_request()).await {
        Ok(r) => pass_back(r),
        Err(e) => frontend_error(&inc.tenant, &e),
    }
}

/// The endpoint's name (the path after `/api/v1/`).
fn endpoint(uri: &str) -> &str {
    let path = uri.split('?').next().unwrap_or(uri);
    match path.find("/api/v1/") {
        Some(i) => &path[i + 8..],
        None => path,
    }
}

/// Why a piece has no answer.
enum Failure {
    /// A querier answered with an error: it goes back to the client as it is.
    Answer(SubResponse),
    Frontend(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Frontend(e)
    }
}

/// A range query as the frontend runs it.
struct RangeQuery<'a> {
    fe: &'a Frontend,
    inc: &'a Incoming,
    query: String,
    step: i64,
    /// The query's parameters other than query/start/end/step (e.g. `timeout`).
    rest: Vec<(String, String)>,
    /// The sharded form of the query, if it has one.
    plan: Option<Plan>,
}

impl RangeQuery<'_> {
    /// The answer for the steps of `span`: from the shards, combined, when the query is
    /// sharded (and its answers are floats), else from one querier call.
    async fn fetch(&self, span: Span) -> std::result::Result<Matrix, Failure> {
        if let Some(plan) = &self.plan {
            self.fe.metrics.sharded_queries.inc();
            let answers = futures::future::join_all(
                plan.queries
                    .iter()
                    .chain(&plan.counts)
                    .map(|q| self.fetch_query(q, span)),
            )
            .await;
            let mut sums = Vec::with_capacity(answers.len());
            for a in answers {
                sums.push(a?);
            }
            let counts = sums.split_off(plan.queries.len());
            if let Some(m) = shard::combine(plan, sums, counts)? {
                return Ok(m);
            }
        }
        self.fetch_query(&self.query, span).await
    }

    /// The answer of `query` for the steps of `span`, from a querier.
    async fn fetch_query(&self, query: &str, span: Span) -> std::result::Result<Matrix, Failure> {
        let (mut s, mut e, mut st) = (String::new(), String::new(), String::new());
        write_timestamp(&mut s, span.start);
        write_timestamp(&mut e, span.end);
        write_timestamp(&mut st, self.step);
        let mut params = vec![
            ("query".to_string(), query.to_string()),
            ("start".to_string(), s),
            ("end".to_string(), e),
            ("step".to_string(), st),
        ];
        params.extend(self.rest.iter().cloned());
        let req = SubRequest::form("/api/v1/query_range", &params, &self.inc.headers);
        let resp = self.fe.send(&self.inc.tenant, req).await?;
        if resp.status != StatusCode::OK {
            return Err(Failure::Answer(resp));
        }
        Ok(Matrix::parse(&resp.body)?)
    }

    /// The answer for one piece: cached extents plus the gaps and the fresh tail fetched;
    /// the gaps join the cache.
    async fn piece(
        &self,
        piece: Span,
        cache: Option<(&dyn crate::cache::ResultsCache, String, i64)>,
    ) -> std::result::Result<Matrix, Failure> {
        let step = self.step;
        // The steps old enough to cache: up to the last one at or before the limit.
        let cacheable = cache.as_ref().and_then(|(_, _, limit)| {
            (*limit >= piece.start).then(|| Span {
                start: piece.start,
                end: piece
                    .end
                    .min(piece.start + (limit - piece.start) / step * step),
            })
        });
        let (Some((cache, key, _)), Some(cacheable)) = (cache, cacheable) else {
            return self.fetch(piece).await;
        };
        let old = match extents::load(cache, &key).await {
            Ok(x) => x,
            Err(e) => {
                self.fe.metrics.cache_errors.inc();
                tracing::warn!(tenant = self.inc.tenant, error = %e, backend = cache.name(), "results cache read failed");
                vec![]
            }
        };
        let gaps = extents::gaps(&old, cacheable, step);
        tracing::debug!(
            tenant = self.inc.tenant,
            query = self.query,
            ?piece,
            ?cacheable,
            extents = old.len(),
            ?gaps,
            "results cache lookup"
        );
        if gaps.is_empty() {
            self.fe.metrics.cache_hits.inc();
        } else {
            self.fe.metrics.cache_misses.inc();
        }
        let tail = (cacheable.end < piece.end).then(|| Span {
            start: cacheable.end + step,
            end: piece.end,
        });
        let fetched =
            futures::future::join_all(gaps.iter().chain(tail.iter()).map(|s| self.fetch(*s))).await;
        let mut parts = vec![];
        for e in &old {
            if e.end >= piece.start && e.start <= piece.end {
                parts.push(e.matrix.restrict(piece.start, piece.end)?);
            }
        }
        let mut new = vec![];
        for (i, m) in fetched.into_iter().enumerate() {
            let m = m?;
            if let Some(g) = gaps.get(i) {
                new.push(Extent {
                    start: g.start,
                    end: g.end,
                    matrix: m.clone(),
                });
            }
            parts.push(m);
        }
        if !new.is_empty() {
            let stored = match extents::combine(old, new, step) {
                Ok(all) => extents::store(cache, &key, all).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                self.fe.metrics.cache_errors.inc();
                tracing::warn!(tenant = self.inc.tenant, error = %e, backend = cache.name(), "results cache write failed");
            }
        }
        Ok(Matrix::merge(parts)?)
    }
}

async fn query_range(
    State(fe): State<Arc<Frontend>>,
    OriginalUri(uri): OriginalUri,
    req: Request,
) -> Response {
    let inc = match Incoming::read(&fe, &uri, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err(e) = fe.queue.admit(&inc.tenant) {
        return frontend_error(&inc.tenant, &e);
    }
    fe.metrics.query("query_range");
    let timeout = fe.timeout(&inc.params());
    match tokio::time::timeout(timeout, run_range(&fe, &inc)).await {
        Ok(r) => r,
        Err(_) => timed_out(&inc.tenant),
    }
}

/// The whole query, past its timeout (the querier's own answer, for the same reason).
fn timed_out(tenant: &str) -> Response {
    tracing::warn!(%tenant, "query timed out in the frontend");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "query timed out in expression evaluation",
    )
}

async fn run_range(fe: &Arc<Frontend>, inc: &Incoming) -> Response {
    let (fe, inc) = (fe.clone(), inc);
    let p = inc.params();
    // Whatever the querier would refuse goes to it whole: its error is the answer.
    let Ok((start, end, step)) = params::range(&p) else {
        return forward_incoming(&fe, inc).await;
    };
    let Some(query) = p.get("query").map(str::to_string) else {
        return forward_incoming(&fe, inc).await;
    };
    let Ok(expr) = muninn_querier::promql::parse::parse(&query) else {
        return forward_incoming(&fe, inc).await;
    };
    if !matches!(expr.value_type(), ValueType::Scalar | ValueType::Vector) {
        return forward_incoming(&fe, inc).await;
    }
    // A query longer than the tenant may ask is refused by the querier, not split under it.
    let max_len = fe
        .tenancy
        .overrides
        .get(&inc.tenant)
        .max_total_query_length
        .as_millis_i64();
    if max_len > 0 && end.saturating_sub(start) > max_len {
        return forward_incoming(&fe, inc).await;
    }
    let interval = if split::splittable(&expr) {
        fe.args.split_interval.as_millis_i64().max(0)
    } else {
        0
    };
    let pieces = split::split(start, end, step, interval);
    fe.metrics.split_queries.inc_by(pieces.len() as u64);
    let (ahead, latest_at) = split::reach(&expr);
    // Steps that late samples may still change are never cached: within the freshness limit,
    // or within the tenant's out-of-order window if that is longer.
    let limits = fe.tenancy.overrides.get(&inc.tenant);
    let unsettled = fe
        .args
        .max_cache_freshness
        .as_millis_i64()
        .max(limits.out_of_order_time_window.as_millis_i64());
    let limit = muninn_proto::time::now_ms()
        .saturating_sub(unsettled)
        .saturating_sub(ahead);
    // With max_query_lookback the querier hides data as it ages: cached steps would not.
    let lookback_limited = limits.max_query_lookback.as_millis_i64() > 0;
    let cache = match &fe.cache {
        Some(c)
            if interval > 0
                && !inc.no_store()
                && !lookback_limited
                && latest_at.is_none_or(|t| t <= limit) =>
        {
            fe.generations
                .get(&inc.tenant)
                .await
                .map(|g| (c.as_ref(), g))
        }
        _ => None,
    };
    let rq = RangeQuery {
        fe: &fe,
        inc,
        step,
        rest: inc
            .pairs()
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "query" | "start" | "end" | "step"))
            .collect(),
        plan: shard::plan(&expr, fe.shards_for(&inc.tenant)),
        query,
    };
    let answers = futures::future::join_all(pieces.iter().map(|piece| {
        let c = cache.map(|(c, generation)| {
            (
                c,
                extents::cache_key(
                    &inc.tenant,
                    generation,
                    &rq.query,
                    step,
                    start,
                    piece.start.div_euclid(interval.max(1)),
                ),
                limit,
            )
        });
        rq.piece(*piece, c)
    }))
    .await;
    let mut parts = Vec::with_capacity(answers.len());
    for a in answers {
        match a {
            Ok(m) => parts.push(m),
            Err(Failure::Answer(r)) => return pass_back(r),
            Err(Failure::Frontend(e)) => return frontend_error(&inc.tenant, &e),
        }
    }
    match Matrix::merge(parts) {
        Ok(m) => ([(header::CONTENT_TYPE, "application/json")], m.to_json()).into_response(),
        Err(e) => frontend_error(&inc.tenant, &e),
    }
}

/// An instant query: a shardable aggregation runs as shards combined, anything else is
/// forwarded.
async fn query(
    State(fe): State<Arc<Frontend>>,
    OriginalUri(uri): OriginalUri,
    req: Request,
) -> Response {
    let inc = match Incoming::read(&fe, &uri, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err(e) = fe.queue.admit(&inc.tenant) {
        return frontend_error(&inc.tenant, &e);
    }
    fe.metrics.query("query");
    let timeout = fe.timeout(&inc.params());
    match tokio::time::timeout(timeout, run_instant(&fe, &inc)).await {
        Ok(r) => r,
        Err(_) => timed_out(&inc.tenant),
    }
}

async fn run_instant(fe: &Arc<Frontend>, inc: &Incoming) -> Response {
    let (fe, inc) = (fe.clone(), inc);
    let p = inc.params();
    let plan = p
        .get("query")
        .and_then(|q| muninn_querier::promql::parse::parse(q).ok())
        .and_then(|e| shard::plan(&e, fe.shards_for(&inc.tenant)));
    let Some(plan) = plan else {
        return forward_incoming(&fe, inc).await;
    };
    // Every shard evaluates at the same time: the client's, or now.
    let t = match p.get("time") {
        None => muninn_proto::time::now_ms(),
        Some(_) => match p.time("time", 0) {
            Ok(t) => t,
            Err(_) => return forward_incoming(&fe, inc).await,
        },
    };
    let mut ts = String::new();
    write_timestamp(&mut ts, t);
    let rest: Vec<(String, String)> = inc
        .pairs()
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "query" | "time"))
        .collect();
    fe.metrics.sharded_queries.inc();
    let answers = futures::future::join_all(plan.queries.iter().chain(&plan.counts).map(|q| {
        let mut params = vec![
            ("query".to_string(), q.clone()),
            ("time".to_string(), ts.clone()),
        ];
        params.extend(rest.iter().cloned());
        fe.send(
            &inc.tenant,
            SubRequest::form("/api/v1/query", &params, &inc.headers),
        )
    }))
    .await;
    let mut sums = Vec::with_capacity(answers.len());
    for a in answers {
        let r = match a {
            Ok(r) => r,
            Err(e) => return frontend_error(&inc.tenant, &e),
        };
        if r.status != StatusCode::OK {
            return pass_back(r);
        }
        match shard::vector_as_matrix(&r.body) {
            Ok(Some(m)) => sums.push(m),
            // Histograms (or an unexpected shape): the whole query, unsharded.
            Ok(None) => return forward_incoming(&fe, inc).await,
            Err(e) => return frontend_error(&inc.tenant, &e),
        }
    }
    let counts = sums.split_off(plan.queries.len());
    match shard::combine(&plan, sums, counts) {
        Ok(Some(m)) => (
            [(header::CONTENT_TYPE, "application/json")],
            shard::matrix_as_vector_json(&m),
        )
            .into_response(),
        Ok(None) => forward_incoming(&fe, inc).await,
        Err(e) => frontend_error(&inc.tenant, &e),
    }
}
