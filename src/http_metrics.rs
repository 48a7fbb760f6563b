//! Request latency histograms for every HTTP route, as `muninn_request_duration_seconds`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status_code: String,
}

/// Latency histograms by route.
#[derive(Clone)]
pub struct HttpMetrics {
    pub duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.5, 12))
}

impl HttpMetrics {
    pub fn new(r: &mut Registry) -> Arc<Self> {
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram as fn() -> Histogram,
        );
        r.register(
            "muninn_request_duration_seconds",
            "HTTP request latency by route and status",
            duration.clone(),
        );
        Arc::new(Self { duration })
    }
}

/// Middleware recording one observation per request.
pub async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    m.duration
        .get_or_create(&RouteLabels {
            method,
            route,
            status_code: resp.status().as_u16().to_string(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}
