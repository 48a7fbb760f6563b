//! `GET /ingester/ring`: the ring as this process sees it. JSON with
//! `Accept: application/json` (`{"instances":[{"id","addr","zone","state","tokens",
//! "last_heartbeat"}]}`), an HTML table otherwise. `state` is UNHEALTHY for an instance whose
//! heartbeat is older than the heartbeat timeout (`published_state` keeps what it published).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::handle::RingHandle;
use crate::instance::InstanceDesc;

/// The ring page's route.
pub fn router(ring: Arc<RingHandle>) -> Router {
    Router::new()
        .route("/ingester/ring", get(page))
        .with_state(ring)
}

pub fn shown_state(i: &InstanceDesc) -> &'static str {
    if i.healthy {
        i.state.as_str()
    } else {
        "UNHEALTHY"
    }
}

async fn page(State(ring): State<Arc<RingHandle>>, headers: HeaderMap) -> Response {
    let snapshot = ring.ring();
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if json {
        let instances: Vec<serde_json::Value> = snapshot
            .instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id,
                    "addr": i.addr,
                    "zone": i.zone,
                    "state": shown_state(i),
                    "published_state": i.state.as_str(),
                    "healthy": i.healthy,
                    "tokens": i.tokens,
                    "last_heartbeat": muninn_proto::time::rfc3339_ms(i.last_heartbeat_ms),
                    "registered_timestamp": i.registered_ms,
                })
            })
            .collect();
        let body = serde_json::json!({
            "instances": instances,
            "replication_factor": snapshot.replication_factor,
            "effective_replication_factor": snapshot.effective_rf(),
            "zone_awareness_enabled": snapshot.zone_awareness,
        });
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Muninn ring</title>\
         <style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}\
         tr:nth-child(even){background:#eee}</style></head><body><h1>Ingester ring</h1>",
    );
    html.push_str(&format!(
        "<p>Replication factor {} (in use: {}), zone awareness {}.</p>\
         <table><tr><th>Instance</th><th>Address</th><th>Zone</th><th>State</th>\
         <th>Tokens</th><th>Ownership</th><th>Last heartbeat</th></tr>",
        snapshot.replication_factor,
        snapshot.effective_rf(),
        if snapshot.zone_awareness { "on" } else { "off" }
    ));
    let ownership = ownership(&snapshot.instances);
    for (i, own) in snapshot.instances.iter().zip(ownership) {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td></tr>",
            escape(&i.id),
            escape(&i.addr),
            escape(&i.zone),
            shown_state(i),
            i.tokens.len(),
            own * 100.0,
            muninn_proto::time::rfc3339_ms(i.last_heartbeat_ms),
        ));
    }
    html.push_str("</table></body></html>\n");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// Fraction of the token space each ACTIVE instance's tokens start (primary ownership).
fn ownership(instances: &[InstanceDesc]) -> Vec<f64> {
    let mut all: Vec<(u32, usize)> = instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.state == crate::instance::InstanceState::Active)
        .flat_map(|(n, i)| i.tokens.iter().map(move |&t| (t, n)))
        .collect();
    all.sort_unstable();
    let mut out = vec![0.0; instances.len()];
    if let [(_, only)] = all[..] {
        out[only] = 1.0;
        return out;
    }
    for (k, &(t, n)) in all.iter().enumerate() {
        let prev = if k == 0 {
            all[all.len() - 1].0
        } else {
            all[k - 1].0
        };
        out[n] += f64::from(t.wrapping_sub(prev)) / 4_294_967_296.0;
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
