//! Remote write 2.0 receiver, against messages built by an independent encoder: Python's
//! protobuf package with a descriptor made from the spec's field numbers
//! (`tests/it/py/rw2_encode.py`), snappy-compressed here.

use crate::harness::{Muninn, agent, now_ms, result};

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn encode_with_python(case: &str, now: i64) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .arg("tests/it/py/rw2_encode.py")
        .arg(case)
        .arg(now.to_string())
        .output()
        .expect("python3 (scripts/test installs protobuf for it)");
    assert!(
        out.status.success(),
        "python protobuf encoder (pip install protobuf; scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    snap::raw::Encoder::new().compress_vec(&out.stdout).unwrap()
}

/// POSTs `body` with `content_type`; status, the three "written" headers, and the body.
fn post(m: &Muninn, content_type: &str, body: &[u8]) -> (u16, [Option<String>; 3], String) {
    let mut resp = agent()
        .post(&format!("{}/api/v1/push", m.http))
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .header("X-Scope-OrgID", "rw2")
        .send(body)
        .unwrap();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let written = [
        h("X-Prometheus-Remote-Write-Samples-Written"),
        h("X-Prometheus-Remote-Write-Histograms-Written"),
        h("X-Prometheus-Remote-Write-Exemplars-Written"),
    ];
    let status = resp.status().as_u16();
    (
        status,
        written,
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn remote_write_2_0_from_an_independent_encoder() {
    let m = Muninn::all(&["--limits.max-global-exemplars-per-user=100"]);
    let now = now_ms() / 1000 * 1000;
    let (code, written, text) = post(&m, V2, &encode_with_python("ok", now));
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        written,
        [Some("7".into()), Some("0".into()), Some("2".into())],
        "samples, histograms, exemplars written"
    );
    // The exemplars' labels came through the symbols table.
    let (code, v) = m.get(
        Some("rw2"),
        "/api/v1/query_exemplars",
        &[
            ("query", "rw2_requests_total"),
            ("start", &format!("{}", now / 1000 - 60)),
            ("end", &format!("{}", now / 1000 + 60)),
        ],
    );
    assert_eq!(code, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{v}");
    assert_eq!(
        data[0]["exemplars"][0]["labels"]["trace_id"], "abc123",
        "{v}"
    );
    assert_eq!(data[0]["exemplars"][0]["value"], "1", "{v}");
    let t = format!("{}", now / 1000);
    let (code, v) = m.get(
        Some("rw2"),
        "/api/v1/query",
        &[("query", "rw2_requests_total"), ("time", &t)],
    );
    assert_eq!(code, 200, "{v}");
    let mut got: Vec<(String, String)> = result(&v)
        .iter()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("a".into(), "20".into()), ("b".into(), "21".into())]
    );
    let (_, v) = m.get(
        Some("rw2"),
        "/api/v1/query",
        &[("query", "rw2_temperature"), ("time", &t)],
    );
    assert_eq!(result(&v)[0]["value"][1], "21.5", "{v}");
    // Per-series metadata (type, help and unit through the symbols table).
    let (_, v) = m.get(Some("rw2"), "/api/v1/metadata", &[]);
    let md = &v["data"];
    assert_eq!(md["rw2_requests_total"][0]["type"], "counter", "{v}");
    assert_eq!(
        md["rw2_requests_total"][0]["help"], "Requests served.",
        "{v}"
    );
    assert_eq!(md["rw2_temperature"][0]["type"], "gauge", "{v}");
    assert_eq!(md["rw2_temperature"][0]["unit"], "celsius", "{v}");
    // The spec's error cases: a bad symbol reference is 400, an unknown message 415.
    let (code, _, text) = post(&m, V2, &encode_with_python("bad-symbol", now));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("symbol reference"), "{text}");
    let (code, _, text) = post(
        &m,
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        &encode_with_python("ok", now),
    );
    assert_eq!(code, 415, "{text}");
    // 1.0 named explicitly still works.
    let v1 = crate::harness::encode(&crate::harness::write_request(vec![
        crate::harness::series(&[("__name__", "rw1_named")], &[(now, 1.0)]),
    ]));
    let (code, _, text) = post(
        &m,
        "application/x-protobuf;proto=prometheus.WriteRequest",
        &v1,
    );
    assert_eq!(code, 200, "{text}");
}

#[test]
fn remote_write_2_0_routed_over_a_ring() {
    use crate::cluster::{Cluster, memory_series, wait_active};
    let c = Cluster::new();
    let ids = ["ing-1", "ing-2", "ing-3"];
    let ings: Vec<Muninn> = ids.iter().map(|id| c.ingester(id, &[])).collect();
    let q = c.start("querier", "q", &[]);
    for m in ings.iter().chain([&q]) {
        wait_active(m, &ids);
    }
    let now = now_ms() / 1000 * 1000;
    // Through one ingester as router: translated to 1.0 and sent to each series' owners.
    let (code, written, text) = post(&ings[0], V2, &encode_with_python("ok", now));
    assert_eq!(code, 200, "{text}");
    assert_eq!(written[0].as_deref(), Some("7"));
    let refs: Vec<&Muninn> = ings.iter().collect();
    // Acknowledged at quorum (2 of 3): the third copies may land a moment later.
    crate::harness::wait_for("3 series, RF 3", std::time::Duration::from_secs(10), || {
        (memory_series(&refs, "rw2") == 3 * 3).then_some(())
    });
    let t = format!("{}", now / 1000);
    let (code, v) = q.get(
        Some("rw2"),
        "/api/v1/query",
        &[("query", "sum(rw2_requests_total)"), ("time", &t)],
    );
    assert_eq!(
        (code, result(&v)[0]["value"][1].as_str()),
        (200, Some("41")),
        "{v}"
    );
    let (_, v) = q.get(Some("rw2"), "/api/v1/metadata", &[]);
    assert_eq!(v["data"]["rw2_temperature"][0]["unit"], "celsius", "{v}");
}
