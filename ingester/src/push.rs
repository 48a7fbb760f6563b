//! `POST /api/v1/push`: Prometheus remote write 1.0 (snappy block format + protobuf).
//!
//! Status codes follow what Prometheus senders do with them: 2xx done, 4xx dropped by the
//! sender (bad input: 400, no tenant: 401, too large: 413, wrong encoding: 415), 5xx retried
//! (our own faults, and writes that missed quorum). A non-elected HA replica gets 202. Each
//! failed request is logged once (warn for 4xx, error for 5xx), by the router.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use muninn_proto::tenant::TenantId;
use muninn_proto::write_view::{DecodeError, WriteRequestView};

use crate::Ingester;
use crate::distributor::{Distributor, Pushed};
use crate::metrics::{StatusLabels, TenantLabels};
use crate::tenant_db::PushOutcome;

/// Why a push failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Auth(#[from] muninn_tenancy::AuthError),
    #[error("unsupported Content-Encoding {0:?}: remote write 1.0 bodies are snappy block format")]
    Encoding(String),
    #[error(
        "unsupported Content-Type {0:?}: want application/x-protobuf with proto=prometheus.WriteRequest (remote write 1.0, the default) or proto=io.prometheus.write.v2.Request (2.0)"
    )]
    ContentType(String),
    #[error("malformed remote write 2.0 request: {0}")]
    V2(#[from] muninn_proto::write_v2::V2Error),
    #[error(
        "request of {got} bytes exceeds the limit of {limit} bytes (--ingester.max-request-bytes)"
    )]
    TooLarge { got: u64, limit: usize },
    #[error("reading request body: {0}")]
    Body(String),
    #[error("corrupt snappy body: {0}")]
    Snappy(snap::Error),
    #[error("malformed WriteRequest protobuf: {0}")]
    Protobuf(#[from] DecodeError),
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("internal error: {0}")]
    Internal(#[from] crate::Error),
    #[error("the ingester is shutting down; retry on another ingester or later")]
    ShuttingDown,
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    Replication { message: String, unavailable: bool },
}

impl PushError {
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::Auth(_) => StatusCode::UNAUTHORIZED,
            PushError::Encoding(_) | PushError::ContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            PushError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            PushError::Body(_)
            | PushError::Snappy(_)
            | PushError::Protobuf(_)
            | PushError::V2(_)
            | PushError::Rejected(_) => StatusCode::BAD_REQUEST,
            PushError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            PushError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PushError::ShuttingDown | PushError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PushError::Replication { unavailable, .. } => {
                if *unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }
    }
}

/// The push route, served by every role that routes writes (ingester, distributor, all).
pub fn router(dist: Arc<Distributor>) -> Router {
    Router::new()
        .route("/api/v1/push", post(push))
        .with_state(dist)
}

/// The ingester's own routes (`/ingester/flush`).
pub fn ingester_router(ing: Arc<Ingester>) -> Router {
    Router::new()
        .route("/ingester/flush", post(flush))
        .with_state(ing)
}

/// `POST /ingester/flush`: cuts and uploads the blocks of the tenant the request names
/// (`X-Scope-OrgID` or basic-auth user), or of every tenant with `?all=true`. Returns once
/// every block is uploaded and listed in its tenant's bucket index.
async fn flush(
    State(ing): State<Arc<Ingester>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let all = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "all=true" || kv == "all=1");
    let report = if all {
        // Every tenant's data: an admin operation once authentication is on.
        if let Err(e) = ing.tenancy.auth.admin(&headers) {
            tracing::warn!(error = %e, "flush of every tenant refused");
            return unauthorized(&e.to_string());
        }
        crate::shipper::cut_all(&ing, crate::shipper::CutMode::Flush).await
    } else {
        match ing.tenancy.auth.tenant(&headers) {
            Ok(t) => crate::shipper::flush_tenant(&ing, &t).await,
            Err(e) => {
                tracing::warn!(error = %e, "flush refused");
                return unauthorized(&format!("{e} (or flush every tenant with ?all=true)"));
            }
        }
    };
    crate::shipper::drop_shipped_all(&ing).await;
    let mut body = format!("flushed {} blocks\n", report.blocks.len());
    for b in &report.blocks {
        body.push_str(&format!(
            "{} {} [{}, {}) series={} samples={}\n",
            b.tenant, b.ulid, b.min_time, b.max_time, b.series, b.samples
        ));
    }
    if report.failures.is_empty() {
        return (StatusCode::OK, body).into_response();
    }
    for (tenant, e) in &report.failures {
        tracing::error!(%tenant, error = %e, "flush failed");
        body.push_str(&format!("flush of tenant {tenant} failed: {e}\n"));
    }
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// 401 with a basic-auth challenge.
fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"muninn\""),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

async fn push(State(dist): State<Arc<Distributor>>, headers: HeaderMap, body: Body) -> Response {
    let tenant = dist.tenancy.auth.tenant(&headers);
    let result = match tenant {
        _ if !dist.is_accepting() => Err(PushError::ShuttingDown),
        Ok(ref t) => handle(&dist, t, &headers, body).await,
        Err(ref e) => Err(PushError::from(e.clone())),
    };
    let status = match &result {
        Ok((Pushed::Stored, _)) => StatusCode::OK,
        Ok((Pushed::HaDropped { .. }, _)) => StatusCode::ACCEPTED,
        Err(e) => e.status(),
    };
    dist.metrics
        .push_requests
        .get_or_create(&StatusLabels {
            status: status.as_u16().to_string(),
        })
        .inc();
    match result {
        // Remote write 2.0: what was written, as the spec's response headers (a 200 means every
        // sample and histogram was stored); exemplars are taken when the tenant keeps any
        // (duplicates and out-of-order ones are dropped, uncounted).
        Ok((Pushed::Stored, Some(c))) => {
            let keeps_exemplars = tenant.as_ref().is_ok_and(|t| {
                dist.tenancy
                    .overrides
                    .get(t.as_str())
                    .max_global_exemplars_per_user
                    > 0
            });
            let exemplars = if keeps_exemplars { c.exemplars } else { 0 };
            (
                StatusCode::OK,
                [
                    (WRITTEN_SAMPLES, c.samples.to_string()),
                    (WRITTEN_HISTOGRAMS, c.histograms.to_string()),
                    (WRITTEN_EXEMPLARS, exemplars.to_string()),
                ],
            )
                .into_response()
        }
        Ok((Pushed::Stored, None)) => StatusCode::OK.into_response(),
        Ok((Pushed::HaDropped { replica, elected }, _)) => (
            StatusCode::ACCEPTED,
            format!(
                "samples of HA replica {replica:?} dropped: the elected replica is {elected:?}\n"
            ),
        )
            .into_response(),
        Err(e) => {
            let tenant = tenant.as_ref().map(|t| t.as_str()).unwrap_or("-");
            if status.is_server_error() {
                tracing::error!(tenant, status = status.as_u16(), error = %e, "push failed");
            } else {
                tracing::warn!(tenant, status = status.as_u16(), error = %e, "push rejected");
            }
            if status == StatusCode::UNAUTHORIZED {
                return unauthorized(&e.to_string());
            }
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{e}\n"),
            )
                .into_response()
        }
    }
}

async fn handle(
    dist: &Distributor,
    tenant: &TenantId,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Pushed, Option<muninn_proto::write_v2::V2Counts>), PushError> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("?");
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(PushError::Encoding(enc.to_owned()));
        }
    }
    let version = match headers.get(header::CONTENT_TYPE) {
        Some(ct) => message_of(ct.to_str().unwrap_or("?"))?,
        None => Message::V1,
    };
    let limit = dist.config.max_request_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(PushError::TooLarge { got: len, limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            PushError::TooLarge {
                got: limit as u64 + 1,
                limit,
            }
        } else {
            PushError::Body(e.to_string())
        }
    })?;
    // What this body may decompress to counts against a budget shared by all pushes, so many
    // concurrent large bodies wait instead of exhausting memory.
    let declared = snap::raw::decompress_len(&bytes).map_err(PushError::Snappy)?;
    let kib = (declared.min(max_decompressed_len(bytes.len())) >> 10)
        .clamp(1, crate::DECOMPRESS_BUDGET_BYTES >> 10) as u32;
    let _budget = dist
        .decompress_budget
        .acquire_many(kib)
        .await
        .map_err(|_| PushError::ShuttingDown)?;
    // The ingester counts a push in (for the shutdown drain) only once its body arrived, so a
    // slow sender cannot hold up shutdown; CPU work runs with the worker thread handed over to
    // blocking duty (`block_in_place`), cheaper than a hop to the blocking pool per request.
    match version {
        Message::V1 => dist.push(tenant, &bytes).await.map(|p| (p, None)),
        Message::V2 => {
            let limit = dist.config.max_request_bytes;
            let plain = tokio::task::block_in_place(|| {
                let mut plain = Vec::new();
                let n = decompress(&bytes, limit, &mut plain)?;
                plain.truncate(n);
                Ok::<_, PushError>(plain)
            })?;
            dist.push_v2(tenant, plain)
                .await
                .map(|(p, counts)| (p, Some(counts)))
        }
    }
}

/// Remote write 2.0 response headers.
const WRITTEN_SAMPLES: &str = "x-prometheus-remote-write-samples-written";
const WRITTEN_HISTOGRAMS: &str = "x-prometheus-remote-write-histograms-written";
const WRITTEN_EXEMPLARS: &str = "x-prometheus-remote-write-exemplars-written";

/// The protobuf message a push carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    /// Remote write 1.0 `prometheus.WriteRequest` (no `proto=`, or that one).
    V1,
    /// Remote write 2.0 `io.prometheus.write.v2.Request`.
    V2,
}

/// The message a Content-Type names: `application/x-protobuf[;proto=<message>]`. Anything else
/// is 415, as the remote write 2.0 spec asks for unknown messages.
fn message_of(ct: &str) -> Result<Message, PushError> {
    let mut parts = ct.split(';');
    let base = parts.next().unwrap_or("").trim();
    if !base.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(PushError::ContentType(ct.to_owned()));
    }
    let mut message = Message::V1;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        message = match v.trim().trim_matches('"') {
            "prometheus.WriteRequest" => Message::V1,
            "io.prometheus.write.v2.Request" => Message::V2,
            _ => return Err(PushError::ContentType(ct.to_owned())),
        };
    }
    Ok(message)
}

impl Ingester {
    /// Applies an uncompressed `WriteRequest` routed to this ingester as an owner (gRPC push,
    /// or in-process from this process's router). Rejections are reported, not logged: the
    /// router logs the request once.
    pub fn push_routed(
        &self,
        tenant: &TenantId,
        body: &[u8],
    ) -> Result<crate::distributor::OwnerReply, PushError> {
        let _admitted = self.admit().ok_or(PushError::ShuttingDown)?;
        let out = apply(self, tenant, body)?;
        record_metrics(self, tenant, &out);
        Ok(crate::distributor::OwnerReply {
            ingested_samples: out.ingested_samples,
            rejected_samples: out.rejected_samples,
            rejected_series: out.rejected_series,
            first_errors: out
                .first
                .iter()
                .map(|(reason, series)| {
                    format!(
                        "[{}] {} for series {}",
                        reason.as_str(),
                        reason.message(),
                        series
                    )
                })
                .collect(),
        })
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = s.source();
    }
    false
}

thread_local! {
    /// Decompression buffer reused across requests on a blocking thread.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest decompression buffer a thread keeps between requests.
const KEEP_DECOMPRESSED: usize = 1 << 20;

/// The most a snappy body of `compressed` bytes can decompress to. The densest element of the
/// format is a 3-byte copy emitting 64 bytes, so a valid body never expands more than 64/3
/// times (plus a header). A body declaring more is corrupt: the buffer is sized from what
/// actually arrived, never from a declared length alone.
pub fn max_decompressed_len(compressed: usize) -> usize {
    compressed.saturating_mul(22).saturating_add(64)
}

/// Decompresses a snappy body into `buf` (resized to fit), refusing bodies that declare more
/// than `limit` bytes or more than they could possibly hold ([`max_decompressed_len`]).
/// Returns the decompressed length.
pub fn decompress(body: &[u8], limit: usize, buf: &mut Vec<u8>) -> Result<usize, PushError> {
    let len = snap::raw::decompress_len(body).map_err(PushError::Snappy)?;
    if len > limit {
        return Err(PushError::TooLarge {
            got: len as u64,
            limit,
        });
    }
    if len > max_decompressed_len(body.len()) {
        return Err(PushError::Snappy(snap::Error::HeaderMismatch {
            expected_len: len as u64,
            got_len: max_decompressed_len(body.len()) as u64,
        }));
    }
    buf.resize(len, 0);
    snap::raw::Decoder::new()
        .decompress(body, buf)
        .map_err(PushError::Snappy)
}

/// Decompresses, decodes and applies a body, once `gate` (the rate limit) lets the decoded
/// request in. Runs on a blocking thread.
pub fn ingest(
    ing: &Ingester,
    tenant: &TenantId,
    body: &[u8],
    gate: impl FnOnce(&WriteRequestView<'_>) -> Result<(), PushError>,
) -> Result<PushOutcome, PushError> {
    DECOMPRESSED.with_borrow_mut(|buf| {
        let result = decompress(body, ing.config.max_request_bytes, buf).and_then(|n| {
            let view = WriteRequestView::decode(&buf[..n])?;
            gate(&view)?;
            apply_view(ing, tenant, &view)
        });
        if buf.capacity() > KEEP_DECOMPRESSED {
            *buf = Vec::new();
        }
        result
    })
}

fn apply(ing: &Ingester, tenant: &TenantId, body: &[u8]) -> Result<PushOutcome, PushError> {
    apply_view(ing, tenant, &WriteRequestView::decode(body)?)
}

pub(crate) fn apply_view(
    ing: &Ingester,
    tenant: &TenantId,
    view: &WriteRequestView<'_>,
) -> Result<PushOutcome, PushError> {
    let db = ing.tenants.get_or_create(tenant)?;
    let limits = ing.tenancy.overrides.get(tenant.as_str());
    let out = db.push(
        view,
        &limits,
        ing.series_limits(&limits),
        &ing.config.time_bounds(&limits),
    )?;
    let series = db.head.read().live_series();
    ing.metrics
        .memory_series
        .get_or_create(&TenantLabels {
            tenant: tenant.to_string(),
        })
        .set(series as i64);
    Ok(out)
}

pub(crate) fn record_metrics(ing: &Ingester, tenant: &TenantId, out: &PushOutcome) {
    let t = TenantLabels {
        tenant: tenant.to_string(),
    };
    ing.metrics
        .ingested_samples
        .get_or_create(&t)
        .inc_by(out.ingested_samples);
    ing.metrics
        .created_series
        .get_or_create(&t)
        .inc_by(out.new_series);
    ing.metrics.wal_bytes_written.inc_by(out.wal.bytes_written);
    ing.metrics.wal_fsyncs.inc_by(out.wal.fsyncs);
    if out.exemplars_stored > 0 {
        ing.metrics
            .exemplars_stored
            .get_or_create(&t)
            .inc_by(out.exemplars_stored);
    }
    for (reason, n) in &out.exemplars_dropped {
        ing.metrics
            .exemplars_discarded
            .get_or_create(&crate::metrics::ReasonLabels {
                tenant: tenant.to_string(),
                reason: (*reason).to_owned(),
            })
            .inc_by(*n);
    }
    for (reason, n) in &out.by_reason {
        ing.tenancy
            .discarded
            .add(tenant.as_str(), reason.as_str(), *n);
    }
}

pub(crate) fn rejection_message(out: &PushOutcome) -> String {
    let total = out.ingested_samples + out.rejected_samples;
    let mut s = format!(
        "rejected {} of {} samples ({} series rejected whole); ingested {}; first errors:",
        out.rejected_samples, total, out.rejected_series, out.ingested_samples
    );
    for (reason, series) in &out.first {
        let _ = write!(
            s,
            " [{}] {} for series {};",
            reason.as_str(),
            reason.message(),
            series
        );
    }
    s
}
