//! Native histograms end to end.
//!
//! The chunk-encoding test uses a real Prometheus 2.42 (`--enable-feature=native-histograms`)
//! as the independent source of histogram chunks: the same remote-write body (made by an
//! independent Python encoder, `tests/it/py/rw_hist_encode.py`) goes to Prometheus and through
//! Muninn's decoder and chunk appender, and the chunks must be byte-identical.

use muninn_proto::histogram_wire::decode_histogram;
use muninn_proto::write_view::WriteRequestView;
use muninn_storage::chunk::histogram::{Appended, HistogramAppender};
use muninn_storage::histogram::{HistSample, from_wire};

use crate::harness::*;

/// An uncompressed remote-write body of native histograms from the independent encoder.
pub fn hist_body(start_ms: i64, step_ms: i64, n: usize, what: &str) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .arg("tests/it/py/rw_hist_encode.py")
        .arg(start_ms.to_string())
        .arg(step_ms.to_string())
        .arg(n.to_string())
        .arg(what)
        .output()
        .expect("python3 (scripts/test installs protobuf for it)");
    assert!(
        out.status.success(),
        "encoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn post_snappy(url: &str, body: &[u8], extra: &[(&str, &str)]) -> u16 {
    let compressed = snap::raw::Encoder::new().compress_vec(body).unwrap();
    let mut req = agent()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    match req.send(&compressed[..]) {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(c)) => c,
        Err(e) => panic!("push failed: {e}"),
    }
}

/// Chunks of a Prometheus `chunks/NNNNNN` segment file: `(encoding, bytes)` in file order.
fn read_segment(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = vec![];
    let mut pos = 8; // magic + version + padding
    while pos < b.len() {
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let c = b[pos];
            pos += 1;
            len |= u64::from(c & 0x7f) << shift;
            if c < 0x80 {
                break;
            }
            shift += 7;
        }
        if len == 0 {
            break;
        }
        let enc = b[pos];
        let data = b[pos + 1..pos + 1 + len as usize].to_vec();
        pos += 1 + len as usize + 4; // data and CRC32C
        out.push((enc, data));
    }
    out
}

#[test]
fn histogram_chunks_are_byte_identical_to_prometheus() {
    let start = now_ms() - 3_600_000;
    let body = hist_body(start, 15_000, 200, "counters");
    let prom = Prometheus::start(
        "global: {}\n",
        &[
            "--enable-feature=native-histograms",
            "--web.enable-remote-write-receiver",
            "--web.enable-admin-api",
        ],
    );
    assert_eq!(
        post_snappy(&format!("{}/api/v1/write", prom.url), &body, &[]),
        204
    );
    let snap: serde_json::Value = {
        let mut r = agent()
            .post(&format!("{}/api/v1/admin/tsdb/snapshot", prom.url))
            .send_empty()
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let name = snap["data"]["name"]
        .as_str()
        .expect("snapshot name")
        .to_owned();
    let dir = prom.tsdb_dir().join("snapshots").join(name);
    let block = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("chunks").is_dir())
        .expect("a block in the snapshot");
    let seg = std::fs::read(block.join("chunks").join("000001")).unwrap();
    let theirs: Vec<Vec<u8>> = read_segment(&seg)
        .into_iter()
        .filter(|(enc, _)| *enc == muninn_storage::chunk::ENC_HISTOGRAM)
        .map(|(_, b)| b)
        .collect();
    assert!(
        theirs.len() >= 3,
        "Prometheus wrote {} histogram chunks",
        theirs.len()
    );

    // The same body through Muninn: series in label order, as the block holds them.
    let view = WriteRequestView::decode(&body).unwrap();
    let mut series: Vec<(String, Vec<(i64, HistSample)>)> = view
        .series
        .iter()
        .map(|s| {
            let labels: Vec<String> = view
                .series_labels(s)
                .iter()
                .map(|l| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(l.name),
                        String::from_utf8_lossy(l.value)
                    )
                })
                .collect();
            let hs = view
                .series_histograms(s)
                .iter()
                .map(|m| {
                    let w = decode_histogram(m).unwrap();
                    (w.timestamp_ms, from_wire(&w).unwrap())
                })
                .collect();
            (labels.join(","), hs)
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));

    // Cut where Prometheus's head cut (its cut times are its own head policy), encode, compare.
    let mut ours: Vec<Vec<u8>> = vec![];
    let mut k = 0;
    for (_, samples) in &series {
        let mut it = samples.iter();
        let mut prev: Option<HistogramAppender> = None;
        let mut left = samples.len();
        while left > 0 {
            let n = u16::from_be_bytes([theirs[k][0], theirs[k][1]]) as usize;
            let mut app = HistogramAppender::new();
            for _ in 0..n {
                let (t, HistSample::Int(h)) = it.next().unwrap() else {
                    panic!("integer histograms expected");
                };
                match app.append(*t, h, prev.as_ref()) {
                    Appended::Here => {}
                    Appended::NewChunk(_) => panic!("Muninn would cut a chunk Prometheus did not"),
                }
            }
            ours.push(app.bytes().to_vec());
            prev = Some(app);
            left -= n;
            k += 1;
        }
    }
    assert_eq!(ours.len(), theirs.len());
    let mut same_headers = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a[..2], b[..2], "chunk {i}: sample count");
        assert!(
            a[3..] == b[3..],
            "chunk {i}: {} vs {} bytes, first difference at byte {:?}",
            a.len(),
            b.len(),
            a.iter().zip(b.iter()).position(|(x, y)| x != y)
        );
        same_headers += usize::from(a[2] == b[2]);
    }
    eprintln!(
        "{} histogram chunks byte-identical to Prometheus 2.42's ({} with the same counter-reset header byte)",
        ours.len(),
        same_headers
    );
}

/// The result of an instant query as comparable values: labels → (float or histogram JSON).
fn by_labels(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = v["data"]["result"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|r| {
            let val = if r.get("histogram").is_some() {
                r["histogram"][1].clone()
            } else {
                r["value"][1].clone()
            };
            (r["metric"].to_string(), val)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Whether two JSON sample values (float strings or histogram objects) agree.
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    if a.is_string() || b.is_string() {
        return close(num(a), num(b));
    }
    let buckets = |h: &serde_json::Value| -> Vec<(i64, f64, f64, f64)> {
        h["buckets"]
            .as_array()
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        (
                            b[0].as_i64().unwrap_or(-1),
                            num(&b[1]),
                            num(&b[2]),
                            num(&b[3]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ba, bb) = (buckets(a), buckets(b));
    close(num(&a["count"]), num(&b["count"]))
        && close(num(&a["sum"]), num(&b["sum"]))
        && ba.len() == bb.len()
        && ba
            .iter()
            .zip(&bb)
            .all(|(x, y)| x.0 == y.0 && close(x.1, y.1) && close(x.2, y.2) && close(x.3, y.3))
}

#[test]
fn native_histograms_are_stored_and_answered_like_prometheus() {
    let step = 15_000;
    let start = (now_ms() - 200 * step) / 1000 * 1000;
    let at = start + 199 * step;
    let ints = hist_body(start, step, 200, "int");
    let tmp = tempfile::tempdir().unwrap();
    let storage = format!(
        "--storage.filesystem.dir={}",
        tmp.path().join("bucket").display()
    );
    let mut m = Muninn::start_in(
        "all",
        &tmp.path().join("data1"),
        &[&storage, "--ingester.flush-on-shutdown=false"],
    );
    let compressed = |b: &[u8]| snap::raw::Encoder::new().compress_vec(b).unwrap();
    let (code, body) = m.push_raw(Some("team-a"), &[], compressed(&ints));
    assert_eq!(code, 200, "{body}");
    // Float histograms over remote write 2.0, from the same independent encoder.
    let v2 = {
        let out = std::process::Command::new("python3")
            .args([
                "tests/it/py/rw_hist_encode.py",
                &start.to_string(),
                &step.to_string(),
                "200",
                "float",
                "v2",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let resp = agent()
        .post(&format!("{}/api/v1/push", m.http))
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .header("X-Scope-OrgID", "team-a")
        .send(&compressed(&v2)[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("X-Prometheus-Remote-Write-Histograms-Written")
            .and_then(|v| v.to_str().ok()),
        Some("200")
    );

    let prom = Prometheus::start(
        "global: {}\n",
        &[
            "--enable-feature=native-histograms",
            "--web.enable-remote-write-receiver",
        ],
    );
    assert_eq!(
        post_snappy(&format!("{}/api/v1/write", prom.url), &ints, &[]),
        204
    );

    let t = format!("{}", at as f64 / 1000.0);
    // Queries whose semantics did not change between Prometheus 2.42 and 3.x (3.x
    // extrapolates histogram rate/increase to the window's edges where 2.42 does not, and
    // 2.42's irate and binary operators return a float 0 for histograms, and its
    // histogram_quantile interpolates linearly where 3.x interpolates exponentially; those are
    // checked against Prometheus 3's own test files in the conformance suite).
    let queries = [
        "nh_requests",
        "nh_queue",
        "histogram_count(nh_requests)",
        "histogram_sum(nh_queue)",
        "sum by (kind) (nh_requests)",
        "histogram_fraction(0, 2, nh_requests)",
        "count(nh_queue)",
    ];
    let check = |m: &Muninn, what: &str| {
        for q in queries {
            let (code, ours) = m.get(
                Some("team-a"),
                "/api/v1/query",
                &[("query", q), ("time", &t)],
            );
            assert_eq!(code, 200, "{what} {q}: {ours}");
            let theirs = prom.get("/api/v1/query", &[("query", q), ("time", &t)]);
            let (a, b) = (by_labels(&ours), by_labels(&theirs));
            assert!(!b.is_empty(), "{q}: Prometheus has no result");
            assert_eq!(a.len(), b.len(), "{what} {q}: {a:?} vs {b:?}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.0, y.0, "{what} {q}");
                assert!(
                    same_value(&x.1, &y.1),
                    "{what} {q} {}: ours {} theirs {}",
                    x.0,
                    x.1,
                    y.1
                );
            }
        }
        // The float histograms written over 2.0 (Prometheus 2.42 cannot store those).
        let (code, v) = m.get(
            Some("team-a"),
            "/api/v1/query",
            &[("query", "histogram_count(nh_float)"), ("time", &t)],
        );
        assert_eq!(code, 200);
        let n = num(&v["data"]["result"][0]["value"][1]);
        assert!(n > 100.0, "{what}: nh_float count {n}");
        // Tenant isolation.
        let (_, other) = m.get(
            Some("team-b"),
            "/api/v1/query",
            &[("query", "nh_requests"), ("time", &t)],
        );
        assert_eq!(other["data"]["result"], serde_json::json!([]), "{what}");
    };
    check(&m, "from the head");

    // A range query returns "histograms" points.
    let (code, r) = m.get(
        Some("team-a"),
        "/api/v1/query_range",
        &[
            ("query", "nh_queue"),
            ("start", &format!("{}", (at - 60_000) as f64 / 1000.0)),
            ("end", &t),
            ("step", "15"),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(
        r["data"]["result"][0]["histograms"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert!(r["data"]["result"][0].get("values").is_none());

    // Invalid histograms are refused naming why; the valid rest of the request is stored.
    let bad = muninn_proto::prometheus::WriteRequest {
        timeseries: vec![muninn_proto::prometheus::TimeSeries {
            labels: vec![muninn_proto::prometheus::Label {
                name: "__name__".into(),
                value: "nh_bad".into(),
            }],
            histograms: vec![muninn_proto::prometheus::Histogram {
                count: Some(muninn_proto::prometheus::histogram::Count::CountInt(5)),
                sum: 1.0,
                positive_spans: vec![muninn_proto::prometheus::BucketSpan {
                    offset: 0,
                    length: 2,
                }],
                positive_deltas: vec![2],
                timestamp: at,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (code, body) = m.push("team-a", &bad);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid native histogram") && body.contains("spans need 2 buckets, have 1"),
        "{body}"
    );

    // Acknowledged histograms survive a crash (WAL replay) ...
    m.kill9();
    m.restart();
    check(&m, "after WAL replay");
    // ... and a flush into blocks: with the ingester and its WAL gone, the bucket answers.
    let mut resp = agent()
        .post(&format!("{}/ingester/flush?all=true", m.http))
        .send_empty()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    m.kill9();
    std::fs::remove_dir_all(tmp.path().join("data1")).unwrap();
    let q = Muninn::start_in("querier", &tmp.path().join("q"), &[&storage]);
    check(&q, "from blocks alone");
}
