//! Bad input: each kind gets its status and a message naming the problem, valid series in
//! the same request are still ingested, and the process stays healthy.

use muninn_proto::prometheus::{Histogram, TimeSeries};

use crate::harness::{Muninn, now_ms, result, series, write_request};

const T: &str = "bad";

fn value_at(m: &Muninn, q: &str, t: i64) -> Vec<(serde_json::Value, String)> {
    let (code, v) = m.get(
        Some(T),
        "/api/v1/query",
        &[("query", q), ("time", &format!("{}", t as f64 / 1000.0))],
    );
    assert_eq!(code, 200, "{v}");
    result(&v)
        .iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn malformed_bodies_are_refused_with_the_right_status() {
    let mut m = Muninn::all(&["--ingester.max-request-bytes=4096"]);
    let good = crate::harness::encode(&write_request(vec![series(
        &[("__name__", "ok")],
        &[(now_ms(), 1.0)],
    )]));

    let (code, msg) = m.push_raw(Some(T), &[], b"this is not snappy".to_vec());
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("snappy"), "{msg}");

    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0xff, 0xff, 0x01, 0x00])
        .unwrap();
    let (code, msg) = m.push_raw(Some(T), &[], garbage);
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("protobuf"), "{msg}");

    let (code, msg) = m.push_raw(Some(T), &[("Content-Encoding", "gzip")], good.clone());
    assert_eq!(code, 415, "{msg}");
    assert!(msg.contains("Content-Encoding"), "{msg}");

    // Remote write 2.0 is taken (tests/it/remote_write_v2.rs); an unknown message is 415.
    let v3 = "application/x-protobuf;proto=io.prometheus.write.v3.Request";
    let (code, msg) = m.push_raw(Some(T), &[("Content-Type", v3)], good.clone());
    assert_eq!(code, 415, "{msg}");
    let (code, msg) = m.push_raw(
        Some(T),
        &[("Content-Type", "application/json")],
        good.clone(),
    );
    assert_eq!(code, 415, "{msg}");

    let big: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, msg) = m.push_raw(Some(T), &[], big);
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("max-request-bytes"), "{msg}");

    // Small on the wire, large once decompressed.
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 64 << 10])
        .unwrap();
    assert!(bomb.len() < 4096);
    let (code, msg) = m.push_raw(Some(T), &[], bomb);
    assert_eq!(code, 413, "{msg}");

    assert!(m.healthy());
    let (code, msg) = m.push_raw(Some(T), &[], good);
    assert_eq!(code, 200, "{msg}");
}

#[test]
fn invalid_series_are_rejected_and_valid_ones_kept() {
    let mut m = Muninn::all(&[]);
    let now = now_ms();
    let cases: Vec<(TimeSeries, &str)> = vec![
        (
            series(&[("__name__", "1bad")], &[(now, 1.0)]),
            "metric_name_invalid",
        ),
        (
            series(&[("__name__", "m"), ("bad-name", "x")], &[(now, 1.0)]),
            "label_name_invalid",
        ),
        (
            series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(now, 1.0)]),
            "duplicate_label_names",
        ),
        (
            series(&[("__name__", "m"), ("b", "1"), ("a", "2")], &[(now, 1.0)]),
            "labels_not_sorted",
        ),
        (
            series(&[("job", "x")], &[(now, 1.0)]),
            "missing_metric_name",
        ),
    ];
    for (bad, reason) in &cases {
        let good = series(
            &[("__name__", "valid_total"), ("case", reason)],
            &[(now, 5.0)],
        );
        let (code, msg) = m.push(T, &write_request(vec![bad.clone(), good]));
        assert_eq!(code, 400, "{reason}: {msg}");
        assert!(msg.contains(reason), "message names {reason}: {msg}");
        assert!(msg.contains("rejected 1 of 2 samples"), "{msg}");
    }
    // Every valid companion series was ingested.
    assert_eq!(value_at(&m, "valid_total", now).len(), cases.len());

    // Empty label values are dropped, as Prometheus does.
    let (code, msg) = m.push(
        T,
        &write_request(vec![series(
            &[("__name__", "emptyval"), ("a", ""), ("b", "1")],
            &[(now, 3.0)],
        )]),
    );
    assert_eq!(code, 200, "{msg}");
    let got = value_at(&m, "emptyval", now);
    assert_eq!(
        got[0].0,
        serde_json::json!({"__name__": "emptyval", "b": "1"})
    );

    // An invalid native histogram is refused naming why; a valid one is stored.
    let mut h = series(&[("__name__", "hist")], &[]);
    h.histograms.push(Histogram {
        timestamp: now,
        count: Some(muninn_proto::prometheus::histogram::Count::CountInt(3)),
        ..Default::default()
    });
    let (code, msg) = m.push(T, &write_request(vec![h.clone()]));
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("invalid_native_histogram"), "{msg}");
    assert!(
        msg.contains("0 observations found in buckets, but the Count field is 3"),
        "{msg}"
    );
    h.histograms[0].count = Some(muninn_proto::prometheus::histogram::Count::CountInt(0));
    let (code, msg) = m.push(T, &write_request(vec![h]));
    assert_eq!(code, 200, "{msg}");

    let metrics = m.metrics();
    for (_, reason) in &cases {
        assert!(
            metrics.contains(&format!(
                "muninn_discarded_samples_total{{tenant=\"bad\",reason=\"{reason}\"}} 1"
            )),
            "{reason} counted in /metrics"
        );
    }
    assert!(m.healthy());
}

#[test]
fn out_of_order_and_duplicate_samples() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let s = |t: i64, v: f64| write_request(vec![series(&[("__name__", "ooo")], &[(t, v)])]);
    assert_eq!(m.push(T, &s(now, 1.0)).0, 200);
    let (code, msg) = m.push(T, &s(now - 1000, 2.0));
    assert_eq!(code, 400);
    assert!(msg.contains("sample_out_of_order"), "{msg}");
    let (code, msg) = m.push(T, &s(now, 3.0));
    assert_eq!(code, 400);
    assert!(msg.contains("sample_duplicate_timestamp"), "{msg}");
    // The same sample again (a sender's retry) is fine.
    assert_eq!(m.push(T, &s(now, 1.0)).0, 200);
    // Out of order within one request: the earlier-in-order samples stay.
    let req = write_request(vec![series(
        &[("__name__", "ooo2")],
        &[(now, 1.0), (now - 5, 2.0), (now + 5, 3.0)],
    )]);
    let (code, msg) = m.push(T, &req);
    assert_eq!(code, 400);
    assert!(msg.contains("rejected 1 of 3"), "{msg}");
    let (_, v) = m.get(
        Some(T),
        "/api/v1/query",
        &[
            ("query", "ooo2[1m]"),
            ("time", &format!("{}", (now + 10) as f64 / 1000.0)),
        ],
    );
    assert_eq!(result(&v)[0]["values"].as_array().unwrap().len(), 2);
    assert_eq!(
        value_at(&m, "ooo", now),
        vec![(serde_json::json!({"__name__": "ooo"}), "1".to_owned())]
    );
}

#[test]
fn bad_queries_get_prometheus_errors() {
    let m = Muninn::all(&[]);
    let (code, v) = m.get(Some(T), "/api/v1/query", &[("query", "up{")]);
    assert_eq!(code, 400);
    assert_eq!(v["errorType"], "bad_data");
    let (code, v) = m.get(
        Some(T),
        "/api/v1/query",
        &[("query", "up"), ("time", "yesterday")],
    );
    assert_eq!(code, 400);
    assert_eq!(
        v["error"],
        "invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp"
    );
    let (code, v) = m.get(
        Some(T),
        "/api/v1/query_range",
        &[
            ("query", "up[5m]"),
            ("start", "0"),
            ("end", "10"),
            ("step", "1"),
        ],
    );
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("range vector"), "{v}");
    let (code, v) = m.get(
        Some(T),
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "0"),
            ("end", "100000"),
            ("step", "1"),
        ],
    );
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("11,000"), "{v}");
    let (code, v) = m.get(Some(T), "/api/v1/series", &[]);
    assert_eq!(code, 400);
    assert_eq!(v["error"], "no match[] parameter provided");
    let (code, v) = m.get(Some(T), "/api/v1/query", &[("query", "up{job=~\"(\"}")]);
    assert_eq!(code, 400, "{v}");
    let (code, v) = m.get(Some(T), "/api/v1/query", &[("query", "1+1")]);
    assert_eq!(code, 200);
    assert_eq!(v["data"]["result"][1], "2", "Grafana's health check");
}
