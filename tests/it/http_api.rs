//! The Prometheus HTTP API surface Grafana and other clients use: form POSTs, both path
//! prefixes, exemplars, query formatting and parsing, build info, warnings in responses.

use crate::harness::{Muninn, agent, now_ms, result, series, write_request};

fn post_form(m: &Muninn, path: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut resp = agent()
        .post(&format!("{}{path}", m.http))
        .header("X-Scope-OrgID", "api")
        .send_form(form.iter().copied())
        .unwrap();
    let code = resp.status().as_u16();
    (
        code,
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

#[test]
fn grafana_style_requests() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let req = write_request(vec![
        series(
            &[("__name__", "api_requests_total"), ("job", "a")],
            &[(now - 60_000, 1.0), (now - 30_000, 4.0)],
        ),
        series(
            &[("__name__", "api_requests_total"), ("job", "b")],
            &[(now - 60_000, 2.0), (now - 30_000, 8.0)],
        ),
    ]);
    assert_eq!(m.push("api", &req).0, 200);
    let t = format!("{}", now as f64 / 1000.0);

    // Grafana's health check: instant query `1+1` as a form POST.
    let (code, v) = post_form(
        &m,
        "/prometheus/api/v1/query",
        &[("query", "1+1"), ("time", &t)],
    );
    assert_eq!(code, 200);
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"][1], "2");

    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[
            ("query", "sum by (job) (rate(api_requests_total[5m]))"),
            ("time", &t),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(result(&v).len(), 2);

    let start = format!("{}", (now - 120_000) as f64 / 1000.0);
    let (code, v) = post_form(
        &m,
        "/prometheus/api/v1/query_range",
        &[
            ("query", "sum(api_requests_total)"),
            ("start", &start),
            ("end", &t),
            ("step", "15"),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");

    let (code, v) = post_form(
        &m,
        "/api/v1/series",
        &[
            ("match[]", "api_requests_total"),
            ("start", &start),
            ("end", &t),
        ],
    );
    assert_eq!((code, v["data"].as_array().unwrap().len()), (200, 2));
    let (code, v) = post_form(&m, "/api/v1/labels", &[("match[]", "api_requests_total")]);
    assert_eq!(code, 200);
    assert_eq!(v["data"], serde_json::json!(["__name__", "job"]));
    let (code, v) = m.get(Some("api"), "/api/v1/label/job/values", &[("limit", "1")]);
    assert_eq!((code, v["data"].clone()), (200, serde_json::json!(["a"])));

    // An info annotation travels with the result, as Prometheus 3 sends it.
    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[("query", "rate({job=\"a\"}[5m])"), ("time", &t)],
    );
    assert_eq!(code, 200);
    assert!(v["infos"].is_null(), "a _total counter gets no info: {v}");
    // Annotations carry the (line:col) of the node they are about, as Prometheus's do.
    let (code, v) = post_form(
        &m,
        "/api/v1/query",
        &[
            ("query", "quantile(\n  2, api_requests_total)"),
            ("time", &t),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(
        v["warnings"],
        serde_json::json!([
            "PromQL warning: quantile value should be between 0 and 1, got 2 (2:3)"
        ]),
        "{v}"
    );

    let (code, v) = m.get(
        Some("api"),
        "/api/v1/query_exemplars",
        &[
            ("query", "api_requests_total"),
            ("start", &start),
            ("end", &t),
        ],
    );
    assert_eq!((code, v["data"].clone()), (200, serde_json::json!([])));

    let (code, v) = m.get(
        Some("api"),
        "/api/v1/format_query",
        &[("query", "sum(rate(foo{bar=\"baz\"}[5m]))by(job)")],
    );
    assert_eq!(code, 200);
    assert_eq!(v["data"], "sum by (job) (rate(foo{bar=\"baz\"}[5m]))");

    let (code, v) = m.get(Some("api"), "/api/v1/parse_query", &[("query", "sum(up)")]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["type"], "aggregation", "{v}");

    let (code, v) = m.get(Some("api"), "/api/v1/status/buildinfo", &[]);
    assert_eq!(code, 200);
    assert!(
        v["data"]["version"].as_str().unwrap().starts_with('3'),
        "{v}"
    );

    // Execution errors are 422 `execution`, with Prometheus's message.
    let (code, v) = m.get(
        Some("api"),
        "/api/v1/query",
        &[
            ("query", "api_requests_total + on() api_requests_total"),
            ("time", &t),
        ],
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("many-to-many matching not allowed"),
        "{v}"
    );
}

/// Loads 2,000 `load_metric` series for the expensive query of the timeout and
/// cancellation tests: `sum(sum_over_time(load_metric[5m:1s]))` over 11,000
/// one-second steps.
fn push_expensive_query_data(m: &Muninn, now: i64) {
    // Every series has a sample each minute over the whole range, so every
    // step of every series has a value inside the lookback window: the work
    // cannot be skipped however clever the evaluation gets about empty steps.
    // Pushed oldest first, ten minutes per request, so nothing is out of bounds.
    let times: Vec<i64> = (0..190).rev().map(|k| now - 1000 - k * 60_000).collect();
    for minutes in times.chunks(10) {
        let batch: Vec<_> = (0..2000)
            .map(|i| {
                let inst = i.to_string();
                let samples: Vec<(i64, f64)> = minutes.iter().map(|&ts| (ts, i as f64)).collect();
                series(&[("__name__", "load_metric"), ("i", &inst)], &samples)
            })
            .collect();
        assert_eq!(m.push("api", &write_request(batch)).0, 200);
    }
}

#[test]
fn query_timeout_is_enforced() {
    let m = Muninn::all(&["--querier.timeout=1"]);
    let now = now_ms();
    push_expensive_query_data(&m, now);
    let t = format!("{}", now as f64 / 1000.0);
    // A deliberately expensive query: 2,000 series × 11,000 steps × 300-sample
    // windows, each window full.
    let start = format!("{}", (now - 10_999_000) as f64 / 1000.0);
    let started = std::time::Instant::now();
    let (code, v) = m.get(
        Some("api"),
        "/api/v1/query_range",
        &[
            ("query", "sum(sum_over_time(load_metric[5m:1s]))"),
            ("start", &start),
            ("end", &t),
            ("step", "1"),
            ("timeout", "500ms"),
        ],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stopped near its deadline"
    );
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "timeout");
}

#[test]
fn max_fetched_series_limit() {
    let m = Muninn::all(&["--querier.max-fetched-series-per-query=10"]);
    let now = now_ms();
    let batch: Vec<_> = (0..20)
        .map(|i| {
            series(
                &[("__name__", "many"), ("i", &i.to_string())],
                &[(now - 1000, 1.0)],
            )
        })
        .collect();
    assert_eq!(m.push("api", &write_request(batch)).0, 200);
    let t = format!("{}", now as f64 / 1000.0);
    let (code, v) = m.get(
        Some("api"),
        "/api/v1/query",
        &[("query", "count(many)"), ("time", &t)],
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("max number of series limit (limit: 10 series)"),
        "{v}"
    );
    let (code, v) = m.get(
        Some("api"),
        "/api/v1/query",
        &[("query", "count(many{i=~\"[0-5]\"})"), ("time", &t)],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(result(&v)[0]["value"][1], "6");
}

#[test]
fn a_client_that_disconnects_cancels_its_query() {
    use std::io::Write;
    let m = Muninn::all(&[]);
    let now = now_ms();
    push_expensive_query_data(&m, now);
    // The expensive range query of the timeout test, with no timeout, over a raw connection.
    let q = format!(
        "/api/v1/query_range?query=sum(sum_over_time(load_metric%5B5m:1s%5D))&start={}&end={}&step=1",
        (now - 10_999_000) / 1000,
        now / 1000
    );
    let addr = m.http.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET {q} HTTP/1.1\r\nHost: {addr}\r\nX-Scope-OrgID: api\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(conn);
    let started = std::time::Instant::now();
    // The frontend of `all` runs the query as shards: each one under way is canceled.
    loop {
        let text = m.metrics();
        let outcomes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("muninn_querier_queries_total{endpoint=\"query_range\""))
            .collect();
        let canceled: f64 = outcomes
            .iter()
            .filter(|l| l.contains("outcome=\"canceled\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if canceled >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no query_range counted as canceled after 20 s: {outcomes:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(m.log_text().contains("query canceled"));
}
