//! Exemplars end to end: a real Prometheus 2.42 (exemplar storage on) scrapes an OpenMetrics
//! target exposing exemplars and remote-writes them (`send_exemplars: true`); Muninn stores
//! them per tenant (bounded by `max_global_exemplars_per_user`), answers `query_exemplars` in
//! Prometheus's shape with the same exemplars Prometheus itself holds, and keeps them across a
//! restart (WAL).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Muninn, Prometheus, agent, now_ms, wait_for};

/// An OpenMetrics target: a counter whose every scrape carries a new exemplar.
fn target() -> (u16, Arc<AtomicU64>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicU64::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let k = n2.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                "# TYPE ex_requests counter\n# HELP ex_requests Requests.\nex_requests_total{{path=\"/a\"}} {k} # {{trace_id=\"trace-{k}\"}} {k}.5\n# EOF\n"
            );
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, n)
}

/// `(series labels, exemplar labels, value, timestamp)` of a `query_exemplars` answer.
fn exemplars(v: &Value) -> BTreeSet<(String, String, String, String)> {
    assert_eq!(v["status"], "success", "{v}");
    let mut out = BTreeSet::new();
    for s in v["data"].as_array().unwrap() {
        for e in s["exemplars"].as_array().unwrap() {
            out.insert((
                s["seriesLabels"].to_string(),
                e["labels"].to_string(),
                e["value"].to_string(),
                e["timestamp"].to_string(),
            ));
        }
    }
    out
}

fn ask(url: &str, tenant: Option<&str>) -> Value {
    let now = now_ms() as f64 / 1000.0;
    let mut req = agent()
        .get(&format!("{url}/api/v1/query_exemplars"))
        .query("query", "ex_requests_total")
        .query("start", format!("{}", now - 600.0))
        .query("end", format!("{}", now + 60.0));
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    serde_json::from_str(&req.call().unwrap().body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn exemplars_from_a_real_prometheus_are_stored_and_answered() {
    let (port, scrapes) = target();
    let mut m = Muninn::all(&["--limits.max-global-exemplars-per-user=1000"]);
    let config = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['127.0.0.1:{port}']
remote_write:
  - url: {}/api/v1/push
    basic_auth: {{username: ex-tenant, password: x}}
    send_exemplars: true
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"#,
        m.http
    );
    let p = Prometheus::start(&config, &["--enable-feature=exemplar-storage"]);
    let got = wait_for("exemplars in muninn", Duration::from_secs(60), || {
        let got = exemplars(&ask(&m.http, Some("ex-tenant")));
        (got.len() >= 3).then_some(got)
    });
    assert!(scrapes.load(Ordering::SeqCst) >= 3);
    // Every exemplar Muninn answers is one Prometheus holds, exactly (labels, value, time).
    let reference = exemplars(&ask(&p.url, None));
    for e in &got {
        assert!(
            reference.contains(e),
            "{e:?} is not among Prometheus's {reference:?}"
        );
    }
    assert!(got.iter().all(|e| e.1.contains("trace-")), "{got:?}");
    let stored = m
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("muninn_ingester_exemplars_stored_total{tenant=\"ex-tenant\"} ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    assert!(
        stored >= got.len() as f64,
        "stored {stored} < answered {}",
        got.len()
    );
    // Another tenant sees none; a restart keeps them (WAL).
    assert!(exemplars(&ask(&m.http, Some("other"))).is_empty());
    drop(p);
    let before = exemplars(&ask(&m.http, Some("ex-tenant")));
    m.restart();
    wait_for("restart", Duration::from_secs(30), || {
        m.healthy().then_some(())
    });
    let after = exemplars(&ask(&m.http, Some("ex-tenant")));
    assert!(
        after.is_superset(&before) && !after.is_empty(),
        "{before:?} vs {after:?}"
    );
}
