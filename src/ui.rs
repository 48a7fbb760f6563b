//! The built-in UI: `GET /` is a small page (`src/ui/index.html`, `app.js`, `style.css`, and
//! uPlot, vendored as a file: no CDN) showing the cluster (gossip members with roles and
//! versions, the ingester ring), per-tenant usage (over every ingester where this process
//! queries them: `all`, querier, ruler; else its own ingester), and a PromQL box
//! that graphs a range query through the Prometheus API. `GET /ui/status` is its JSON.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use muninn_ingester::Ingester;
use muninn_ring::RingHandle;

/// A row of the usage table.
fn usage_row(tenant: &str, series: u64, samples_per_second: f64) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant,
        "series": series,
        "samples_per_second": samples_per_second,
    })
}

/// How long the usage table waits for each ingester.
const USAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Gossip key under which every member publishes its version.
pub const KEY_VERSION: &str = "muninn.version";

/// What the status JSON reads.
#[derive(Clone)]
pub struct Ui {
    pub role: &'static str,
    pub instance: String,
    pub ring: Option<Arc<RingHandle>>,
    pub ingester: Option<Arc<Ingester>>,
    /// The querier's clients of every ingester: per-tenant usage over the whole cluster.
    pub ingesters: Option<muninn_querier::ingester_client::IngesterStore>,
    pub tenancy: Arc<muninn_tenancy::Tenancy>,
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Asset names carry no version: revalidate, so an upgrade never mixes pages.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The UI's routes.
pub fn router(ui: Ui) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", include_bytes!("ui/index.html")) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript", include_bytes!("ui/app.js")) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset("text/css", include_bytes!("ui/style.css")) }),
        )
        .route(
            "/ui/uplot.min.js",
            get(|| async { asset("text/javascript", include_bytes!("ui/uplot.min.js")) }),
        )
        .route(
            "/ui/uplot.min.css",
            get(|| async { asset("text/css", include_bytes!("ui/uplot.min.css")) }),
        )
        .route("/ui/status", get(status))
        .with_state(ui)
}

async fn status(State(ui): State<Ui>, headers: axum::http::HeaderMap) -> Response {
    // With a tenants file, tenant ids are not public (as on `/metrics`, which
    // `--server.metrics-addr` keeps apart): the usage table shows only the tenant the request
    // authenticates as. Without one, any request may name any tenant anyway.
    let visible = |t: &muninn_proto::tenant::TenantId| -> bool {
        !ui.tenancy.auth.enabled() || ui.tenancy.auth.tenant(&headers).is_ok_and(|me| me == *t)
    };
    let mut members = vec![];
    let mut instances = vec![];
    if let Some(r) = &ui.ring {
        let versions: std::collections::HashMap<String, String> =
            r.live_values(KEY_VERSION).await.into_iter().collect();
        for (id, role) in r.live_values(muninn_ring::gossip::KEY_ROLE).await {
            let version = versions.get(&id).cloned().unwrap_or_default();
            members.push(serde_json::json!({"id": id, "role": role, "version": version}));
        }
        for i in &r.ring().instances {
            instances.push(serde_json::json!({
                "id": i.id,
                "addr": i.addr,
                "zone": i.zone,
                "state": muninn_ring::http::shown_state(i),
                "healthy": i.healthy,
                "tokens": i.tokens.len(),
            }));
        }
    }
    if members.is_empty() {
        // No gossip: this process is the whole cluster.
        members.push(serde_json::json!({
            "id": ui.instance,
            "role": ui.role,
            "version": env!("CARGO_PKG_VERSION"),
        }));
    }
    let mut tenants = vec![];
    let mut usage_errors = vec![];
    let usage_scope;
    if let Some(store) = &ui.ingesters {
        usage_scope = "cluster";
        if ui.tenancy.auth.enabled() {
            // Only the caller's own tenant is shown: ask its shard for it alone, and nobody
            // for a caller that does not authenticate.
            if let Ok(me) = ui.tenancy.auth.tenant(&headers) {
                match store.tenant_usage(&me).await {
                    Ok((series, rate)) if series > 0 => {
                        tenants.push(usage_row(me.as_str(), series, rate));
                    }
                    Ok(_) => {}
                    Err(e) => usage_errors.push(e.to_string()),
                }
            }
        } else {
            let (usage, failed) = store.all_tenant_usage(USAGE_TIMEOUT).await;
            usage_errors = failed;
            for (t, series, rate) in usage {
                tenants.push(usage_row(&t, series, rate));
            }
        }
        if !usage_errors.is_empty() {
            tracing::debug!(errors = ?usage_errors, "UI usage: some ingesters did not answer");
        }
    } else if let Some(ing) = &ui.ingester {
        usage_scope = "ingester";
        let mut all = ing.tenants.all();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (t, db) in all.into_iter().filter(|(t, _)| visible(t)) {
            let series = db.head.read().live_series() as u64;
            let rate = db.rate.lock().rate();
            tenants.push(usage_row(t.as_str(), series, rate));
        }
    } else {
        usage_scope = "none";
    }
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "role": ui.role,
        "instance": ui.instance,
        "members": members,
        "ring": {"instances": instances},
        "tenants": tenants,
        "usage_scope": usage_scope,
        "usage_errors": usage_errors,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
