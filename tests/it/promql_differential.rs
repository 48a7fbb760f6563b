//! Differential test: the same generated data pushed into Muninn and into a real Prometheus
//! (2.42, its remote-write receiver), then a broad set of PromQL queries compared within a
//! relative tolerance of 1e-6. Sample timestamps sit off every step and range boundary (ms
//! ≡ 371 mod 1000, query times ≡ 500), so the 2.x/3.x left-open range change does not show.

use std::collections::BTreeMap;

use muninn_proto::prometheus::{TimeSeries, WriteRequest};
use serde_json::Value;

use crate::harness::{Muninn, Prometheus, agent, encode, series};

const TENANT: &str = "diff";

/// The instant queries compared with Prometheus (also run as range queries through the query
/// frontend, `frontend.rs`).
pub(crate) const INSTANT_QUERIES: &[&str] = &[
    "diff_requests_total",
    "diff_requests_total{code=\"500\",job=~\"job-[01]\"}",
    "diff_requests_total{instance!=\"i-0\",job!~\"job-2\"}",
    "rate(diff_requests_total[5m])",
    "irate(diff_requests_total[5m])",
    "increase(diff_requests_total[10m])",
    "sum by (job) (rate(diff_requests_total[5m]))",
    "sum without (instance) (rate(diff_requests_total[5m]))",
    "avg by (job) (diff_memory_bytes)",
    "max by (job) (diff_memory_bytes)",
    "min(diff_memory_bytes)",
    "count by (code) (diff_requests_total)",
    "group by (job) (diff_requests_total)",
    "topk(3, diff_memory_bytes)",
    "bottomk(2, diff_memory_bytes) by (job)",
    "quantile(0.9, diff_memory_bytes)",
    "stddev by (job) (diff_memory_bytes)",
    "stdvar(diff_memory_bytes)",
    "count_values(\"v\", round(diff_memory_bytes / 1e8))",
    "histogram_quantile(0.9, sum by (job, le) (rate(diff_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(diff_latency_seconds_bucket[10m]))",
    "rate(diff_requests_total[5m]) / on(job, instance) group_left sum by (job, instance) (rate(diff_requests_total[5m]))",
    "sum by (job, instance) (rate(diff_requests_total[5m])) / ignoring(code) group_right rate(diff_requests_total[5m])",
    "diff_memory_bytes > 4e8",
    "diff_memory_bytes > bool 4e8",
    "4e8 < diff_memory_bytes",
    "diff_memory_bytes - diff_memory_bytes offset 10m",
    "diff_requests_total{code=\"200\"} and diff_requests_total{instance=~\"i-[01]\"}",
    "diff_requests_total{code=\"200\"} or diff_memory_bytes",
    "diff_requests_total unless on(instance) diff_memory_bytes{instance=\"i-2\"}",
    "max_over_time(diff_memory_bytes[10m])",
    "min_over_time(diff_memory_bytes[10m])",
    "avg_over_time(diff_memory_bytes[10m])",
    "sum_over_time(diff_memory_bytes[10m])",
    "count_over_time(diff_memory_bytes[10m])",
    "last_over_time(diff_memory_bytes[10m])",
    "stddev_over_time(diff_memory_bytes[10m])",
    "quantile_over_time(0.5, diff_memory_bytes[10m])",
    "present_over_time(diff_gone[10m])",
    "deriv(diff_memory_bytes[10m])",
    "predict_linear(diff_memory_bytes[10m], 3600)",
    "delta(diff_memory_bytes[10m])",
    "idelta(diff_memory_bytes[10m])",
    "changes(diff_memory_bytes[10m])",
    "resets(diff_requests_total[30m])",
    "max_over_time(rate(diff_requests_total[5m])[15m:1m])",
    "avg_over_time(sum by (job) (diff_memory_bytes)[20m:30s])",
    "label_replace(diff_memory_bytes, \"host\", \"$1\", \"instance\", \"i-(.*)\")",
    "label_join(diff_memory_bytes, \"id\", \"/\", \"job\", \"instance\")",
    "abs(-diff_memory_bytes)",
    "clamp(diff_memory_bytes, 3.9e8, 4.1e8)",
    "clamp_min(diff_memory_bytes, 4e8)",
    "sqrt(diff_memory_bytes) * 2 + 1",
    "ln(diff_memory_bytes) - log2(diff_memory_bytes) + log10(diff_memory_bytes)",
    "timestamp(diff_memory_bytes)",
    "absent(nonexistent{job=\"x\"})",
    "absent(diff_memory_bytes)",
    "absent_over_time(diff_gone[5m])",
    "vector(1) + 1",
    "time()",
    "scalar(sum(diff_memory_bytes))",
    "diff_memory_bytes offset 10m",
    "diff_gone",
    "sort_desc(sum by (job) (diff_memory_bytes))",
    "minute(timestamp(diff_gone))",
    "sum(rate(diff_requests_total[5m])) by (code) * on() group_left vector(2)",
    // Ties: Prometheus's heap keeps the earliest tied series until a better one replaces
    // its root, so the later best value evicts the first zero, not the last.
    "topk(2, max by (job, instance) (diff_requests_total * 0) or vector(1))",
    "bottomk(2, max by (job, instance) (diff_requests_total * 0 + 1) or vector(0))",
    "topk by (job) (1, diff_requests_total * 0)",
    "bottomk(5, max by (job, instance) (diff_requests_total * 0) or vector(-1))",
    // A label function's output with two series of one label set fails, even when what
    // follows (an aggregation, a filter) would hide the collision.
    "sum(label_replace(diff_requests_total, \"code\", \"x\", \"\", \"\"))",
    "label_join(diff_requests_total, \"instance\", \"\", \"job\") > 1e300",
    "count(label_replace(diff_requests_total, \"code\", \"x\", \"code\", \"5.*\"))",
];

/// A deterministic pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Two hours of 15 s samples, ending at `t0 + 2h`, one request per scrape.
pub(crate) fn generate(t0: i64) -> Vec<WriteRequest> {
    generate_every(t0, 480, 15_000)
}

/// `n` scrapes `every` ms apart from `t0`, one request per scrape; `diff_gone` stops with a
/// staleness marker half-way.
pub(crate) fn generate_every(t0: i64, n: i64, every: i64) -> Vec<WriteRequest> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut counters: BTreeMap<(usize, usize, usize), f64> = BTreeMap::new();
    let mut gauges: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut buckets: BTreeMap<usize, [f64; 5]> = BTreeMap::new();
    let les = ["0.1", "0.5", "1", "5", "+Inf"];
    let mut out = vec![];
    for i in 0..n {
        let t = t0 + i * every + 371;
        let mut ts: Vec<TimeSeries> = vec![];
        for job in 0..3 {
            for inst in 0..4 {
                for code in 0..2 {
                    let c = counters.entry((job, inst, code)).or_insert(0.0);
                    *c += (rng.next() * 10.0 * (code as f64 * 5.0 + 1.0)).floor();
                    if rng.next() < 0.004 {
                        *c = 0.0; // counter reset
                    }
                    let (j, n, k) = (
                        format!("job-{job}"),
                        format!("i-{inst}"),
                        if code == 0 { "200" } else { "500" },
                    );
                    ts.push(series(
                        &[
                            ("__name__", "diff_requests_total"),
                            ("code", k),
                            ("instance", &n),
                            ("job", &j),
                        ],
                        &[(t, *c)],
                    ));
                }
                let g = gauges.entry((job, inst)).or_insert(4e8);
                *g += (rng.next() - 0.5) * 2e7;
                let (j, n) = (format!("job-{job}"), format!("i-{inst}"));
                ts.push(series(
                    &[
                        ("__name__", "diff_memory_bytes"),
                        ("instance", &n),
                        ("job", &j),
                    ],
                    &[(t, *g)],
                ));
            }
            let b = buckets.entry(job).or_insert([0.0; 5]);
            let obs = (rng.next() * 20.0).floor();
            for _ in 0..obs as usize {
                let v = rng.next() * rng.next() * 8.0;
                for (k, le) in [0.1, 0.5, 1.0, 5.0, f64::INFINITY].iter().enumerate() {
                    if v <= *le {
                        b[k] += 1.0;
                    }
                }
            }
            for (k, le) in les.iter().enumerate() {
                let j = format!("job-{job}");
                ts.push(series(
                    &[
                        ("__name__", "diff_latency_seconds_bucket"),
                        ("job", &j),
                        ("le", le),
                    ],
                    &[(t, b[k])],
                ));
            }
        }
        // A series that disappears half-way with a staleness marker.
        if i < n / 2 {
            ts.push(series(&[("__name__", "diff_gone")], &[(t, i as f64)]));
        } else if i == n / 2 {
            ts.push(series(
                &[("__name__", "diff_gone")],
                &[(t, f64::from_bits(0x7ff0_0000_0000_0002))],
            ));
        }
        out.push(WriteRequest {
            timeseries: ts,
            metadata: vec![],
        });
    }
    out
}

pub(crate) fn query(
    url: &str,
    path: &str,
    params: &[(&str, String)],
    tenant: Option<&str>,
) -> Value {
    let mut req = agent().get(&format!("{url}{path}"));
    for (k, v) in params {
        req = req.query(*k, v);
    }
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let text = req.call().unwrap().body_mut().read_to_string().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

pub(crate) fn close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        return false;
    };
    if x.is_nan() && y.is_nan() {
        return true;
    }
    let diff = (x - y).abs();
    let sum = x.abs() + y.abs();
    diff <= 1e-6 * sum.min(f64::MAX) || diff < 1e-12
}

/// Result as {metric json -> [(t, value)]}, or a scalar as one entry.
pub(crate) fn normalize(v: &Value) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
    if v["status"] != "success" {
        return Err(format!("{v}"));
    }
    let d = &v["data"];
    let mut out = BTreeMap::new();
    match d["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.insert(
                "scalar".into(),
                vec![(
                    d["result"][0].to_string(),
                    d["result"][1].as_str().unwrap_or("").to_owned(),
                )],
            );
        }
        Some("vector") => {
            for s in d["result"].as_array().unwrap() {
                out.insert(
                    s["metric"].to_string(),
                    vec![(
                        s["value"][0].to_string(),
                        s["value"][1].as_str().unwrap().to_owned(),
                    )],
                );
            }
        }
        Some("matrix") => {
            for s in d["result"].as_array().unwrap() {
                let pts = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].to_string(), p[1].as_str().unwrap().to_owned()))
                    .collect();
                out.insert(s["metric"].to_string(), pts);
            }
        }
        other => return Err(format!("unknown resultType {other:?}")),
    }
    Ok(out)
}

/// Reports a differential run and fails it unless every answer was equal and at least 90% of
/// the queries had data.
pub(crate) fn assert_all_equal(what: &str, compared: usize, nonempty: usize, failures: &[String]) {
    eprintln!(
        "compared {compared} queries {what} ({nonempty} with data), {} differ",
        failures.len()
    );
    assert!(
        nonempty * 10 >= compared * 9,
        "most queries return data: {nonempty} of {compared}"
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} queries differ ({what}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub(crate) fn compare(
    q: &str,
    want: &Value,
    got: &Value,
    nonempty: &mut usize,
) -> Result<(), String> {
    // Where Prometheus fails, Muninn must fail the same way.
    if want["status"] == "error" || got["status"] == "error" {
        if want["errorType"] == got["errorType"] && want["error"] == got["error"] {
            *nonempty += 1;
            return Ok(());
        }
        return Err(format!("{q}:\n prometheus {want}\n muninn     {got}"));
    }
    let (w, g) = (normalize(want)?, normalize(got)?);
    if !w.is_empty() {
        *nonempty += 1;
    }
    if w.keys().ne(g.keys()) {
        return Err(format!(
            "{q}: series differ:\n prometheus {:?}\n muninn     {:?}",
            w.keys().collect::<Vec<_>>(),
            g.keys().collect::<Vec<_>>()
        ));
    }
    for (k, wp) in &w {
        let gp = &g[k];
        if wp.len() != gp.len()
            || wp
                .iter()
                .zip(gp)
                .any(|(a, b)| a.0 != b.0 || !close(&a.1, &b.1))
        {
            return Err(format!("{q}: {k}:\n prometheus {wp:?}\n muninn     {gp:?}"));
        }
    }
    Ok(())
}

#[test]
fn promql_answers_match_prometheus() {
    let m = Muninn::all(&[]);
    let p = Prometheus::start(
        "global: {scrape_interval: 1h}\nstorage:\n  tsdb:\n    out_of_order_time_window: 3650d\n",
        &["--web.enable-remote-write-receiver"],
    );
    let now = crate::harness::now_ms();
    let t0 = (now - 3 * 3_600_000) / 60_000 * 60_000;
    for req in generate(t0) {
        assert_eq!(m.push(TENANT, &req).0, 200);
        let resp = agent()
            .post(&format!("{}/api/v1/write", p.url))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .send(&encode(&req)[..])
            .unwrap();
        assert!(
            resp.status().as_u16() < 300,
            "prometheus write: {}",
            resp.status()
        );
    }
    let s = |ms: i64| format!("{}.500", (t0 + ms) / 1000);
    let at = |min: i64| s(min * 60_000);
    let instant = INSTANT_QUERIES;
    let times = [at(25), at(61), at(100)];
    let mut failures = vec![];
    let mut compared = 0;
    let mut nonempty = 0;
    for q in instant {
        for t in &times {
            let params = [("query", q.to_string()), ("time", t.clone())];
            let want = query(&p.url, "/api/v1/query", &params, None);
            let got = query(&m.http, "/api/v1/query", &params, Some(TENANT));
            if let Err(e) = compare(&format!("{q} @ {t}"), &want, &got, &mut nonempty) {
                failures.push(e);
            }
            compared += 1;
        }
    }
    let at_q = format!("diff_memory_bytes @ {}", at(20));
    let range = [
        "rate(diff_requests_total[5m])",
        "sum by (job) (rate(diff_requests_total[5m]))",
        "diff_gone",
        "histogram_quantile(0.99, sum by (le) (rate(diff_latency_seconds_bucket[5m])))",
        &at_q,
        "avg_over_time(diff_memory_bytes[3m]) > 4e8",
        "topk(2, diff_memory_bytes)",
        // (No tie case here: in a range query Prometheus feeds topk the output of a range
        // aggregation in map order, so which tied series it picks varies from run to run.)
        "time() - timestamp(diff_gone)",
    ];
    for q in range {
        let params = [
            ("query", q.to_string()),
            ("start", at(10)),
            ("end", at(110)),
            ("step", "60".to_string()),
        ];
        let want = query(&p.url, "/api/v1/query_range", &params, None);
        let got = query(&m.http, "/api/v1/query_range", &params, Some(TENANT));
        if let Err(e) = compare(&format!("range {q}"), &want, &got, &mut nonempty) {
            failures.push(e);
        }
        compared += 1;
    }
    assert_all_equal("with prometheus", compared, nonempty, &failures);
}
