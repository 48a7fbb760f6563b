//! Sends alerts to Alertmanager (API v2: `POST <url>/api/v2/alerts`, a JSON list), through a
//! bounded queue per tenant, each drained by its own task, so a slow or absent Alertmanager
//! never holds up rule evaluation, and one tenant's alert storm, or an Alertmanager slow to
//! take one tenant's alerts, never delays or drops another tenant's (as Mimir gives each
//! tenant its own notifier). The tenant goes in `X-Scope-OrgID` (a multi-tenant Alertmanager
//! routes by it); a batch goes to every Alertmanager at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use muninn_proto::tenant::TenantId;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::alerts::Alert;
use crate::group::{labels_json, rfc3339};
use crate::metrics::RulerMetrics;

/// Most alerts in one request to Alertmanager (Prometheus's `maxBatchSize`).
pub const MAX_BATCH: usize = 256;

/// A tenant's drain task ends after this long without alerts (firing alerts are resent every
/// `--ruler.resend-delay`, 1m by default, so a tenant with any keeps its task).
const IDLE: Duration = Duration::from_secs(600);

/// One tenant's queue of batches.
type Queue = mpsc::Sender<Vec<serde_json::Value>>;

/// The alert delivery queues.
pub struct Notifier {
    /// None: no Alertmanager configured (or no client), alerts are only shown by the API.
    delivery: Option<Arc<Delivery>>,
    capacity: usize,
    queues: Mutex<HashMap<TenantId, Queue>>,
    metrics: Arc<RulerMetrics>,
}

/// What every tenant's drain task shares.
struct Delivery {
    urls: Vec<String>,
    client: reqwest::Client,
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
    /// Delivery to `urls` (none: alerts are only shown by the API), with a queue of
    /// `capacity` alerts per tenant (rounded up to whole batches of [`MAX_BATCH`]).
    pub fn start(
        urls: Vec<String>,
        timeout: Duration,
        capacity: usize,
        metrics: Arc<RulerMetrics>,
    ) -> Self {
        let delivery = if urls.is_empty() {
            None
        } else {
            match reqwest::Client::builder().timeout(timeout).build() {
                Ok(client) => Some(Arc::new(Delivery {
                    urls,
                    client,
                    metrics: metrics.clone(),
                })),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Alertmanager client; alerts are not sent");
                    None
                }
            }
        };
        Self {
            delivery,
            capacity: capacity.div_ceil(MAX_BATCH).max(1),
            queues: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Queues `alerts` of `tenant`; drops them (counted) when the tenant's queue is full.
    pub fn send(&self, tenant: &TenantId, alerts: Vec<serde_json::Value>) {
        let Some(delivery) = &self.delivery else {
            return;
        };
        if alerts.is_empty() {
            return;
        }
        let queue = |fresh: bool| -> Queue {
            let mut queues = self.queues.lock();
            if fresh {
                queues.remove(tenant);
            }
            queues
                .entry(tenant.clone())
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(self.capacity);
                    tokio::spawn(delivery.clone().drain(tenant.clone(), rx));
                    tx
                })
                .clone()
        };
        let mut tx = queue(false);
        // At most MAX_BATCH alerts per request, as Prometheus's notifier sends them.
        let mut dropped = 0;
        for batch in alerts.chunks(MAX_BATCH) {
            let mut sent = tx.try_send(batch.to_vec());
            if let Err(mpsc::error::TrySendError::Closed(b)) = sent {
                // The tenant's drain task ended (idle): start a new one.
                tx = queue(true);
                sent = tx.try_send(b);
            }
            if sent.is_err() {
                dropped += 1;
                self.metrics
                    .notifications
                    .get_or_create(&RulerMetrics::outcome("dropped"))
                    .inc();
            }
        }
        if dropped > 0 {
            tracing::debug!(%tenant, batches = dropped, "the tenant's Alertmanager queue is full; alerts dropped");
        }
    }
}

impl Delivery {
    /// Sends one tenant's batches in order until the notifier goes, or until the tenant has
    /// sent nothing for [`IDLE`] (a tenant whose groups are gone or moved holds no task).
    async fn drain(
        self: Arc<Self>,
        tenant: TenantId,
        mut rx: mpsc::Receiver<Vec<serde_json::Value>>,
    ) {
        let mut failing = vec![false; self.urls.len()];
        loop {
            let alerts = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(a)) => a,
                Ok(None) => return,
                // Idle: refuse new batches (the next sender starts a new task), then send
                // what slipped in before the close; recv answers None once that is done.
                Err(_) => {
                    rx.close();
                    match rx.recv().await {
                        Some(a) => a,
                        None => return,
                    }
                }
            };
            let n = alerts.len() as u64;
            let body = serde_json::Value::Array(alerts).to_string();
            let sends = self.urls.iter().map(|url| {
                let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
                let req = self
                    .client
                    .post(&endpoint)
                    .header("Content-Type", "application/json")
                    .header("X-Scope-OrgID", tenant.as_str())
                    .body(body.clone());
                async move {
                    let err = match req.send().await {
                        Ok(resp) if resp.status().is_success() => None,
                        Ok(resp) => Some(format!("status {}", resp.status())),
                        Err(e) => Some(e.to_string()),
                    };
                    (endpoint, err)
                }
            });
            let results = futures::future::join_all(sends).await;
            for ((endpoint, err), failing) in results.into_iter().zip(failing.iter_mut()) {
                let m = &self.metrics;
                match err {
                    None => {
                        m.notifications
                            .get_or_create(&RulerMetrics::outcome("sent"))
                            .inc();
                        m.alerts_sent.inc_by(n);
                        if *failing {
                            tracing::info!(url = %endpoint, %tenant, "Alertmanager reachable again");
                            *failing = false;
                        }
                    }
                    Some(e) => {
                        m.notifications
                            .get_or_create(&RulerMetrics::outcome("error"))
                            .inc();
                        // Logged once per outage (per tenant), not once per request.
                        if !*failing {
                            tracing::warn!(url = %endpoint, %tenant, error = %e, "sending alerts to Alertmanager failed");
                            *failing = true;
                        }
                    }
                }
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
