//! A separate `muninn ingester` and `muninn querier --querier.ingester-addrs=...` answer
//! exactly as `muninn all` does for the same data.

use crate::harness::{Muninn, now_ms, series, write_request};

#[test]
fn ingester_plus_querier_answer_like_all() {
    let all = Muninn::all(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let ing = Muninn::start_in("ingester", &tmp.path().join("ing"), &[]);
    let q = Muninn::start_in(
        "querier",
        &tmp.path().join("q"),
        &[&format!(
            "--querier.ingester-addrs=127.0.0.1:{}",
            ing.grpc_port
        )],
    );

    let now = now_ms() - 600_000;
    let mut batch = vec![];
    for i in 0..50i64 {
        for job in ["api", "web", "db"] {
            let inst = format!("i-{}", i % 5);
            batch.push(series(
                &[
                    ("__name__", "http_requests_total"),
                    ("instance", &inst),
                    ("job", job),
                ],
                &[(now + i * 15_000, (i * 3) as f64)],
            ));
        }
    }
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    batch.push(series(
        &[("__name__", "gone")],
        &[(now, 1.0), (now + 30_000, stale)],
    ));
    let mut req = write_request(batch);
    req.metadata.push(muninn_proto::prometheus::MetricMetadata {
        r#type: 1,
        metric_family_name: "http_requests_total".into(),
        help: "Requests <by> job & instance".into(),
        unit: String::new(),
    });
    // Series of one request each, so every sample lands in order.
    for ts in req.timeseries.chunks(3) {
        let r = muninn_proto::prometheus::WriteRequest {
            timeseries: ts.to_vec(),
            metadata: req.metadata.clone(),
        };
        assert_eq!(all.push("t1", &r).0, 200);
        assert_eq!(ing.push("t1", &r).0, 200);
    }
    let t = format!("{}", (now + 49 * 15_000) as f64 / 1000.0);
    let t_mid = format!("{}", (now + 20 * 15_000 + 7) as f64 / 1000.0);
    let start = format!("{}", now as f64 / 1000.0);
    let at = format!("http_requests_total @ {start}");
    let queries: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/api/v1/query",
            vec![("query", "http_requests_total"), ("time", &t)],
        ),
        (
            "/api/v1/query",
            vec![
                (
                    "query",
                    "http_requests_total{job=~\"a.*|db\",instance!=\"i-1\"}",
                ),
                ("time", &t_mid),
            ],
        ),
        (
            "/api/v1/query",
            vec![
                ("query", "http_requests_total{job!~\"api\"} offset 1m"),
                ("time", &t),
            ],
        ),
        ("/api/v1/query", vec![("query", &at), ("time", &t)]),
        (
            "/api/v1/query",
            vec![
                ("query", "http_requests_total{job=\"web\"}[2m]"),
                ("time", &t),
            ],
        ),
        ("/api/v1/query", vec![("query", "gone"), ("time", &t_mid)]),
        (
            "/api/v1/query_range",
            vec![
                ("query", "http_requests_total{instance=\"i-2\"}"),
                ("start", &start),
                ("end", &t),
                ("step", "37"),
            ],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "gone"),
                ("start", &start),
                ("end", &t),
                ("step", "10"),
            ],
        ),
        (
            "/api/v1/series",
            vec![("match[]", "http_requests_total"), ("match[]", "gone")],
        ),
        ("/api/v1/labels", vec![]),
        ("/api/v1/label/job/values", vec![]),
        ("/api/v1/metadata", vec![]),
    ];
    for (path, params) in &queries {
        let (c1, a) = all.get(Some("t1"), path, params);
        let (c2, b) = q.get(Some("t1"), path, params);
        assert_eq!(c1, 200, "{path} {params:?}: {a}");
        assert_eq!((c1, &a), (c2, &b), "{path} {params:?}");
        assert_ne!(
            a["data"],
            serde_json::json!([]),
            "{path} {params:?} returns data"
        );
    }
    // Staleness: the marker ends the series; a range query shows it up to the marker only.
    let (_, v) = all.get(
        Some("t1"),
        "/api/v1/query",
        &[("query", "gone"), ("time", &t)],
    );
    assert_eq!(
        v["data"]["result"],
        serde_json::json!([]),
        "stale series is gone: {v}"
    );
}
