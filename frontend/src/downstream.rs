//! Where the frontend's requests go: queriers over HTTP (`--query-frontend.downstream-url`,
//! or those of the gossip ring; round-robin) or the in-process querier of `muninn all` (its
//! router, called directly).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::{Error, Result};

/// Headers a sub-request carries from the client's request: who the tenant is.
pub const FORWARDED_HEADERS: [&str; 2] = ["x-scope-orgid", "authorization"];

/// A request to a querier.
#[derive(Clone, Debug)]
pub struct SubRequest {
    pub method: Method,
    /// Path and query string, e.g. `/api/v1/query_range` or `/api/v1/labels?match[]=up`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SubRequest {
    /// A form-encoded POST of `params` to `path` (what a split or sharded query sends).
    pub fn form(path: &str, params: &[(String, String)], from: &HeaderMap) -> Self {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        let mut headers = forwarded(from);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Self {
            method: Method::POST,
            path_and_query: path.to_string(),
            headers,
            body: Bytes::from(ser.finish()),
        }
    }
}

/// The tenant headers of `from`.
pub fn forwarded(from: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        for v in from.get_all(name) {
            h.append(name, v.clone());
        }
    }
    h
}

/// A querier's answer.
#[derive(Clone, Debug)]
pub struct SubResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    /// `Content-Encoding` (remote read's snappy answers).
    pub content_encoding: Option<HeaderValue>,
    pub body: Bytes,
}

/// Something that answers the Prometheus HTTP API.
pub trait Downstream: Send + Sync {
    fn call(&self, req: SubRequest) -> BoxFuture<'_, Result<SubResponse>>;
}

/// Queriers over HTTP, taken in turn.
pub struct HttpDownstream {
    client: reqwest::Client,
    bases: Vec<String>,
    next: AtomicUsize,
}

impl HttpDownstream {
    pub fn new(urls: &[String]) -> Result<Self> {
        let bases: Vec<String> = urls
            .iter()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if bases.is_empty() {
            return Err(Error::Config(
                "--query-frontend.downstream-url names no querier".into(),
            ));
        }
        for b in &bases {
            if !(b.starts_with("http://") || b.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "--query-frontend.downstream-url {b:?}: expected http://host:port"
                )));
            }
        }
        Ok(Self {
            client: http_client()?,
            bases,
            next: AtomicUsize::new(0),
        })
    }
}

/// Sends `req` to the querier at `base`.
async fn send_http(client: &reqwest::Client, base: &str, req: SubRequest) -> Result<SubResponse> {
    let url = format!("{base}{}", req.path_and_query);
    let resp = client
        .request(req.method, &url)
        .headers(req.headers)
        .body(req.body)
        .send()
        .await
        .map_err(|e| Error::Downstream(format!("{url}: {e}")))?;
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let content_encoding = resp.headers().get(header::CONTENT_ENCODING).cloned();
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::Downstream(format!("{url}: reading the answer: {e}")))?;
    Ok(SubResponse {
        status,
        content_type,
        content_encoding,
        body,
    })
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

impl Downstream for HttpDownstream {
    fn call(&self, req: SubRequest) -> BoxFuture<'_, Result<SubResponse>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        Box::pin(send_http(&self.client, &self.bases[i], req))
    }
}

/// The queriers of the gossip ring (each publishes its URL under
/// [`muninn_ring::gossip::KEY_QUERIER_URL`]), taken in turn; the live ones at each call.
pub struct RingDownstream {
    client: reqwest::Client,
    ring: Arc<muninn_ring::RingHandle>,
    next: AtomicUsize,
}

impl RingDownstream {
    pub fn new(ring: Arc<muninn_ring::RingHandle>) -> Result<Self> {
        Ok(Self {
            client: http_client()?,
            ring,
            next: AtomicUsize::new(0),
        })
    }
}

impl Downstream for RingDownstream {
    fn call(&self, req: SubRequest) -> BoxFuture<'_, Result<SubResponse>> {
        Box::pin(async move {
            let queriers = self
                .ring
                .live_values(muninn_ring::gossip::KEY_QUERIER_URL)
                .await;
            if queriers.is_empty() {
                return Err(Error::Downstream("no querier in the gossip ring".into()));
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed) % queriers.len();
            send_http(&self.client, &queriers[i].1, req).await
        })
    }
}

/// The querier of this process, called through its router.
pub struct InProcess {
    router: axum::Router,
}

/// Largest answer read back from the in-process querier.
const MAX_ANSWER_BYTES: usize = 1 << 30;

impl InProcess {
    pub fn new(router: axum::Router) -> Arc<Self> {
        Arc::new(Self { router })
    }
}

impl Downstream for InProcess {
    fn call(&self, req: SubRequest) -> BoxFuture<'_, Result<SubResponse>> {
        use tower::ServiceExt;
        let router = self.router.clone();
        Box::pin(async move {
            let mut builder = http::Request::builder()
                .method(req.method)
                .uri(&req.path_and_query);
            if let Some(h) = builder.headers_mut() {
                *h = req.headers;
            }
            let request = builder
                .body(Body::from(req.body))
                .map_err(|e| Error::Downstream(format!("building a request: {e}")))?;
            let resp = match router.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = resp.status();
            let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
            let content_encoding = resp.headers().get(header::CONTENT_ENCODING).cloned();
            let body = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES)
                .await
                .map_err(|e| Error::Downstream(format!("reading the answer: {e}")))?;
            Ok(SubResponse {
                status,
                content_type,
                content_encoding,
                body,
            })
        })
    }
}
