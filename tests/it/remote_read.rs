//! Remote read (`POST /api/v1/read`) against real Prometheus 2.42 servers: one reads Muninn
//! through `remote_read` with `read_recent: true` and must answer PromQL as Muninn does; one
//! holds the same data itself (remote-write receiver) and answers the same `ReadRequest`s,
//! raw samples and streamed chunks, which Muninn's answers must equal.

use std::collections::BTreeMap;

use muninn_proto::prometheus as pb;
use prost::Message;

use crate::harness::{Muninn, Prometheus, agent, encode};
use crate::promql_differential::{INSTANT_QUERIES, assert_all_equal, compare, generate, query};

const TENANT: &str = "reader";

/// Muninn (`all`, so the query frontend is in the path) and a Prometheus holding the same two
/// hours of data (pushed to its remote-write receiver); returns them with the data's start.
fn both_with_data() -> (Muninn, Prometheus, i64) {
    let m = Muninn::all(&[]);
    let p = Prometheus::start(
        "global: {scrape_interval: 1h}\nstorage:\n  tsdb:\n    out_of_order_time_window: 3650d\n",
        &["--web.enable-remote-write-receiver"],
    );
    let t0 = (crate::harness::now_ms() - 3 * 3_600_000) / 60_000 * 60_000;
    for req in generate(t0) {
        assert_eq!(m.push(TENANT, &req).0, 200);
        let resp = agent()
            .post(&format!("{}/api/v1/write", p.url))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .send(&encode(&req)[..])
            .unwrap();
        assert!(resp.status().as_u16() < 300, "{}", resp.status());
    }
    (m, p, t0)
}

/// Sends a remote-read request; returns status, content type and body.
pub(crate) fn post_read(
    url: &str,
    req: &pb::ReadRequest,
    tenant: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let mut r = agent()
        .post(&format!("{url}/api/v1/read"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0");
    if let Some(t) = tenant {
        r = r.header("X-Scope-OrgID", t);
    }
    let mut resp = r
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body[..])
        .unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = resp.status().as_u16();
    let mut out = vec![];
    std::io::Read::read_to_end(&mut resp.body_mut().as_reader(), &mut out).unwrap();
    (status, ct, out)
}

/// Series label set → samples `(t, value bits)`.
type Answer = BTreeMap<String, Vec<(i64, u64)>>;

fn key(labels: &[pb::Label]) -> String {
    labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect::<Vec<_>>()
        .join(",")
}

fn samples_answer(body: &[u8]) -> Vec<Answer> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let resp = pb::ReadResponse::decode(raw.as_slice()).unwrap();
    resp.results
        .iter()
        .map(|r| {
            r.timeseries
                .iter()
                .map(|s| {
                    let pts = s
                        .samples
                        .iter()
                        .map(|p| (p.timestamp, p.value.to_bits()))
                        .collect();
                    (key(&s.labels), pts)
                })
                .collect()
        })
        .collect()
}

/// Decodes streamed frames (checking each CRC32C), keeps the samples of each chunk within the
/// query's range (Prometheus sends whole chunks), and groups them per query and series.
fn streamed_answer(mut b: &[u8], ranges: &[(i64, i64)]) -> Vec<Answer> {
    let mut out: Vec<Answer> = vec![Answer::new(); ranges.len()];
    while !b.is_empty() {
        let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
        let crc = u32::from_be_bytes(b[..4].try_into().unwrap());
        let msg = &b[4..4 + len];
        let want = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, msg) as u32;
        assert_eq!(crc, want, "frame checksum");
        let frame = pb::ChunkedReadResponse::decode(msg).unwrap();
        let i = frame.query_index as usize;
        let (mint, maxt) = ranges[i];
        for s in &frame.chunked_series {
            let pts = out[i].entry(key(&s.labels)).or_default();
            for c in &s.chunks {
                assert_eq!(c.r#type, 1, "XOR chunks for float series");
                pts.extend(
                    muninn_storage::chunk::XorIter::new(&c.data)
                        .filter(|(t, _)| *t >= mint && *t <= maxt)
                        .map(|(t, v)| (t, v.to_bits())),
                );
            }
        }
        b = &b[4 + len..];
    }
    out
}

/// The answer without series that have no sample in range (Prometheus lists a series whose
/// chunks only overlap the range: with no samples in `SAMPLES`, with whole chunks when
/// streamed; Muninn streams no chunk for it).
fn with_samples(a: &[Answer]) -> Vec<Answer> {
    a.iter()
        .map(|a| {
            a.iter()
                .filter(|(_, pts)| !pts.is_empty())
                .map(|(k, pts)| (k.clone(), pts.clone()))
                .collect()
        })
        .collect()
}

/// The first difference between two answers, if any.
fn first_difference(want: &[Answer], got: &[Answer]) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!("{} results, want {}", got.len(), want.len()));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w.keys().ne(g.keys()) {
            return Some(format!(
                "query {i}: series {:?}, want {:?}",
                g.keys().collect::<Vec<_>>(),
                w.keys().collect::<Vec<_>>()
            ));
        }
        for (k, wp) in w {
            let gp = &g[k];
            if wp != gp {
                let at = wp.iter().zip(gp).position(|(a, b)| a != b);
                return Some(format!(
                    "query {i} {k}: {} samples, want {}; first difference at {at:?}: {:?} vs {:?}",
                    gp.len(),
                    wp.len(),
                    at.map(|j| gp[j]),
                    at.map(|j| wp[j]),
                ));
            }
        }
    }
    None
}

pub(crate) fn matcher(t: pb::label_matcher::Type, name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn remote_read_answers_equal_prometheus_own_in_samples_and_streamed_chunks() {
    use pb::label_matcher::Type;
    let (m, p, t0) = both_with_data();
    let min = 60_000;
    let queries = [
        // Everything, across the staleness marker of diff_gone.
        (
            t0,
            t0 + 120 * min,
            vec![matcher(Type::Re, "__name__", "diff_.*")],
        ),
        (
            t0 + 17 * min + 123,
            t0 + 61 * min,
            vec![
                matcher(Type::Eq, "__name__", "diff_requests_total"),
                matcher(Type::Neq, "code", "200"),
                matcher(Type::Nre, "instance", "i-[01]"),
            ],
        ),
        // A point range on a sample (samples are at 371 ms past each 15 s step). At a time
        // between two samples, whether Prometheus returns the series depends on where its
        // chunks start, which follows the wall clock: that failed once at a 30-minute mark.
        (
            t0 + 30 * min + 371,
            t0 + 30 * min + 371,
            vec![matcher(Type::Eq, "__name__", "diff_memory_bytes")],
        ),
        // Nothing matches.
        (t0, t0 + 60 * min, vec![matcher(Type::Eq, "job", "none")]),
    ];
    let ranges: Vec<(i64, i64)> = queries.iter().map(|(s, e, _)| (*s, *e)).collect();
    let request = |types: Vec<i32>| pb::ReadRequest {
        queries: queries
            .iter()
            .map(|(s, e, ms)| pb::Query {
                start_timestamp_ms: *s,
                end_timestamp_ms: *e,
                matchers: ms.clone(),
                hints: None,
            })
            .collect(),
        accepted_response_types: types,
    };

    let samples = request(vec![]);
    let (ps, pct, pbody) = post_read(&p.url, &samples, None);
    let (ms, mct, mbody) = post_read(&m.http, &samples, Some(TENANT));
    assert_eq!((ps, ms), (200, 200), "{}", String::from_utf8_lossy(&mbody));
    assert_eq!(mct, pct);
    let want = samples_answer(&pbody);
    let got = samples_answer(&mbody);
    assert_eq!(want.len(), 4);
    assert!(
        want[0].len() > 50 && want[1].len() > 2 && !want[2].is_empty() && want[3].is_empty(),
        "prometheus answers the queries: {:?}",
        want.iter().map(|a| a.len()).collect::<Vec<_>>()
    );
    assert_eq!(
        first_difference(&want, &got),
        None,
        "raw samples equal prometheus's"
    );

    let streamed = request(vec![1, 0]);
    let (ps, pct, pbody) = post_read(&p.url, &streamed, None);
    let (ms, mct, mbody) = post_read(&m.http, &streamed, Some(TENANT));
    assert_eq!((ps, ms), (200, 200), "{}", String::from_utf8_lossy(&mbody));
    assert_eq!(
        pct,
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    assert_eq!(mct, pct);
    let want_streamed = streamed_answer(&pbody, &ranges);
    let want = with_samples(&want);
    assert_eq!(
        first_difference(&want, &with_samples(&want_streamed)),
        None,
        "prometheus streams what it samples"
    );
    let got_streamed = streamed_answer(&mbody, &ranges);
    assert_eq!(
        first_difference(&want, &with_samples(&got_streamed)),
        None,
        "streamed chunks"
    );

    // Tenants stay apart: another tenant reads nothing.
    let (s, _, body) = post_read(&m.http, &samples, Some("someone-else"));
    assert_eq!(s, 200);
    assert!(samples_answer(&body).iter().all(|a| a.is_empty()));

    // Bad requests: 400 with a reason, and the server keeps serving.
    let garbage = agent()
        .post(&format!("{}/api/v1/read", m.http))
        .header("X-Scope-OrgID", TENANT)
        .config()
        .http_status_as_error(false)
        .build()
        .send(&b"not snappy"[..])
        .unwrap();
    assert_eq!(garbage.status().as_u16(), 400);
    let bad_re = pb::ReadRequest {
        queries: vec![pb::Query {
            start_timestamp_ms: t0,
            end_timestamp_ms: t0 + min,
            matchers: vec![matcher(Type::Re, "job", "(")],
            hints: None,
        }],
        accepted_response_types: vec![],
    };
    let (s, _, body) = post_read(&m.http, &bad_re, Some(TENANT));
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    let (s, _, _) = post_read(&m.http, &samples, Some(TENANT));
    assert_eq!(s, 200);
}

#[test]
fn prometheus_with_remote_read_answers_promql_as_muninn_does() {
    let (m, _p, t0) = both_with_data();
    // A Prometheus with no data of its own, reading everything from Muninn. The basic-auth
    // user names the tenant: Prometheus 2.42 does not send remote_read's `headers`.
    let reader = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1h}}\nremote_read:\n  - url: {}/prometheus/api/v1/read\n    read_recent: true\n    basic_auth: {{username: {TENANT}, password: unused}}\n",
            m.http
        ),
        &[],
    );
    let s = |ms: i64| format!("{}.500", (t0 + ms) / 1000);
    let at = |min: i64| s(min * 60_000);
    let (mut compared, mut nonempty, mut failures) = (0, 0, vec![]);
    for q in INSTANT_QUERIES {
        for t in [at(25), at(100)] {
            let params = [("query", q.to_string()), ("time", t.clone())];
            let want = query(&m.http, "/api/v1/query", &params, Some(TENANT));
            let got = query(&reader.url, "/api/v1/query", &params, None);
            if let Err(e) = compare(&format!("{q} @ {t}"), &want, &got, &mut nonempty) {
                failures.push(e);
            }
            compared += 1;
        }
    }
    for q in [
        "rate(diff_requests_total[5m])",
        "sum by (job) (rate(diff_requests_total[5m]))",
        "diff_gone",
        "max_over_time(diff_memory_bytes[10m])",
    ] {
        let params = [
            ("query", q.to_string()),
            ("start", at(10)),
            ("end", at(110)),
            ("step", "60".to_string()),
        ];
        let want = query(&m.http, "/api/v1/query_range", &params, Some(TENANT));
        let got = query(&reader.url, "/api/v1/query_range", &params, None);
        if let Err(e) = compare(&format!("range {q}"), &want, &got, &mut nonempty) {
            failures.push(e);
        }
        compared += 1;
    }
    assert_all_equal(
        "through prometheus remote_read",
        compared,
        nonempty,
        &failures,
    );
    let reads: f64 = m
        .metrics()
        .lines()
        .filter(|l| {
            l.starts_with("muninn_querier_queries_total{")
                && l.contains("endpoint=\"read\"")
                && l.contains("outcome=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(reads >= compared as f64, "{reads} remote reads served");
}
