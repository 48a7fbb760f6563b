//! A real Prometheus scrapes itself and remote-writes to `muninn all` (tenant from the
//! basic-auth user name, the only way Prometheus 2.42 can name one); Muninn must then answer
//! the same queries with the same series and values as that Prometheus.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Muninn, Prometheus, now_ms, result, wait_for};

const TENANT: &str = "team-prom";

/// `{labels} -> value` of an instant-vector response.
fn vector(v: &Value) -> BTreeMap<String, String> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    result(v)
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn muninn_query(m: &Muninn, q: &str, t: &str) -> Value {
    let auth = format!("{TENANT}:secret");
    let mut req = crate::harness::agent()
        .get(&format!("{}/prometheus/api/v1/query", m.http))
        .query("query", q)
        .query("time", t);
    // Basic auth, exactly as Prometheus's remote_write sends it.
    req = req.header(
        "Authorization",
        &format!("Basic {}", base64(auth.as_bytes())),
    );
    serde_json::from_str(&req.call().unwrap().body_mut().read_to_string().unwrap()).unwrap()
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn prometheus_remote_write_matches_prometheus_answers() {
    let m = Muninn::all(&[]);
    let config = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['{{SELF}}']
remote_write:
  - url: {}/api/v1/push
    basic_auth: {{username: {TENANT}, password: secret}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 1s}}
"#,
        m.http
    );
    let p = Prometheus::start(&config, &[]);

    wait_for(
        "prometheus_build_info in muninn",
        Duration::from_secs(60),
        || {
            let v = muninn_query(
                &m,
                "prometheus_build_info",
                &format!("{}", now_ms() as f64 / 1000.0),
            );
            (!result(&v).is_empty()).then_some(())
        },
    );

    // Compare at a time a few seconds back, so remote write has delivered everything up to
    // it; retry while it catches up.
    let mut last = String::new();
    let compared = wait_for(
        "muninn to answer like prometheus (see the last difference above)",
        Duration::from_secs(60),
        || {
            let t = format!("{:.3}", (now_ms() - 4_000) as f64 / 1000.0);
            for q in ["up", "prometheus_build_info", r#"{job="prometheus"}"#] {
                let want = vector(&p.get("/api/v1/query", &[("query", q), ("time", &t)]));
                if want.is_empty() {
                    return None;
                }
                let got = vector(&muninn_query(&m, q, &t));
                if want != got {
                    let missing: Vec<_> = want
                        .iter()
                        .filter(|(k, v)| got.get(*k) != Some(v))
                        .take(3)
                        .collect();
                    let now = format!(
                        "{q} at {t}: {} series vs {}; first differences: {missing:?}",
                        got.len(),
                        want.len()
                    );
                    if now != last {
                        eprintln!("{now}");
                        last = now;
                    }
                    return None;
                }
            }
            Some(t)
        },
    );
    let up = muninn_query(&m, "up", &compared);
    assert_eq!(result(&up)[0]["value"][1], "1", "{up}");
    assert_eq!(result(&up)[0]["metric"]["job"], "prometheus");
    let all = muninn_query(&m, r#"{job="prometheus"}"#, &compared);
    assert!(
        result(&all).len() > 100,
        "a self-scraping Prometheus has hundreds of series: {}",
        result(&all).len()
    );

    // The series endpoint lists the same series as Prometheus's for the same window.
    let (s, _) = (compared.parse::<f64>().unwrap(), ());
    let start = format!("{:.3}", s - 2.0);
    let want: std::collections::BTreeSet<String> = p.get(
        "/api/v1/series",
        &[
            ("match[]", "prometheus_build_info"),
            ("start", &start),
            ("end", &compared),
        ],
    )["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let (code, got) = m.get(
        Some(TENANT),
        "/api/v1/series",
        &[
            ("match[]", "prometheus_build_info"),
            ("start", &start),
            ("end", &compared),
        ],
    );
    assert_eq!(code, 200);
    let got: std::collections::BTreeSet<String> = got["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(got, want);

    // Metadata arrives in its own requests.
    let want = p.get("/api/v1/metadata", &[("metric", "prometheus_build_info")]);
    wait_for("metadata in muninn", Duration::from_secs(30), || {
        let (_, got) = m.get(
            Some(TENANT),
            "/api/v1/metadata",
            &[("metric", "prometheus_build_info")],
        );
        (got["data"] == want["data"]).then_some(())
    });
}
