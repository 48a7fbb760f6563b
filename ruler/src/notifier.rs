//! Sends alerts to Alertmanager (API v2: `POST <url>/api/v2/alerts`, a JSON list), through a
//! bounded queue drained by one task, so a slow or absent Alertmanager never holds up rule
//! evaluation. The tenant goes in `X-Scope-OrgID` (a multi-tenant Alertmanager routes by it).

use std::sync::Arc;
use std::time::Duration;

use muninn_proto::tenant::TenantId;
use tokio::sync::mpsc;

use crate::alerts::Alert;
use crate::group::{labels_json, rfc3339};
use crate::metrics::RulerMetrics;

/// Most alerts in one request to Alertmanager (Prometheus's `maxBatchSize`).
pub const MAX_BATCH: usize = 256;

/// The alert delivery queue.
pub struct Notifier {
    tx: Option<mpsc::Sender<(TenantId, Vec<serde_json::Value>)>>,
    metrics: Arc<RulerMetrics>,
}

/// `?g0.expr=...&g0.tab=1`, as Prometheus links an alert to its expression.
fn graph_link(external_url: &str, expr: &str) -> String {
    let mut enc = String::with_capacity(expr.len() * 3);
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{}/graph?g0.expr={enc}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

/// An alert as Alertmanager's API v2 takes it.
pub fn alert_json(a: &Alert, expr: &str, external_url: &str) -> serde_json::Value {
    let ends = a.resolved_at_ms.unwrap_or(a.valid_until_ms);
    serde_json::json!({
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "startsAt": rfc3339(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        "endsAt": rfc3339(ends),
        "generatorURL": graph_link(external_url, expr),
    })
}

impl Notifier {
    /// Starts delivery to `urls` (none: alerts are only shown by the API).
    pub fn start(
        urls: Vec<String>,
        timeout: Duration,
        capacity: usize,
        metrics: Arc<RulerMetrics>,
    ) -> Self {
        if urls.is_empty() {
            return Self { tx: None, metrics };
        }
        let (tx, mut rx) = mpsc::channel::<(TenantId, Vec<serde_json::Value>)>(capacity.max(1));
        let m = metrics.clone();
        let client = reqwest::Client::builder().timeout(timeout).build();
        tokio::spawn(async move {
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Alertmanager client; alerts are not sent");
                    return;
                }
            };
            let mut failing = false;
            while let Some((tenant, alerts)) = rx.recv().await {
                let n = alerts.len() as u64;
                let body = serde_json::Value::Array(alerts).to_string();
                for url in &urls {
                    let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
                    let r = client
                        .post(&endpoint)
                        .header("Content-Type", "application/json")
                        .header("X-Scope-OrgID", tenant.as_str())
                        .body(body.clone())
                        .send()
                        .await;
                    let err = match r {
                        Ok(resp) if resp.status().is_success() => None,
                        Ok(resp) => Some(format!("status {}", resp.status())),
                        Err(e) => Some(e.to_string()),
                    };
                    match err {
                        None => {
                            m.notifications
                                .get_or_create(&RulerMetrics::outcome("sent"))
                                .inc();
                            m.alerts_sent.inc_by(n);
                            if failing {
                                tracing::info!(url = %endpoint, "Alertmanager reachable again");
                                failing = false;
                            }
                        }
                        Some(e) => {
                            m.notifications
                                .get_or_create(&RulerMetrics::outcome("error"))
                                .inc();
                            // Logged once per outage, not once per request.
                            if !failing {
                                tracing::warn!(url = %endpoint, tenant = %tenant, error = %e, "sending alerts to Alertmanager failed");
                                failing = true;
                            }
                        }
                    }
                }
            }
        });
        Self {
            tx: Some(tx),
            metrics,
        }
    }

    /// Queues `alerts` of `tenant`; drops them (counted) when the queue is full.
    pub fn send(&self, tenant: &TenantId, alerts: Vec<serde_json::Value>) {
        let Some(tx) = &self.tx else {
            return;
        };
        // At most MAX_BATCH alerts per request, as Prometheus's notifier sends them.
        for batch in alerts.chunks(MAX_BATCH) {
            if tx.try_send((tenant.clone(), batch.to_vec())).is_err() {
                self.metrics
                    .notifications
                    .get_or_create(&RulerMetrics::outcome("dropped"))
                    .inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_url_links_the_expression() {
        assert_eq!(
            graph_link("http://m:9009/", "up == 0"),
            "http://m:9009/graph?g0.expr=up%20%3D%3D%200&g0.tab=1"
        );
    }
}
