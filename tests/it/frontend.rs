//! The query frontend (`muninn query-frontend`, and in `muninn all`'s query path): range
//! queries split by interval and cached give the querier's own answers; a repeated query is
//! answered from the results cache (in-process or a real memcached) without querier calls;
//! one tenant's flood does not hold back another's queries.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Muninn, agent, free_port, now_ms, wait_for};
use crate::promql_differential::{INSTANT_QUERIES, generate_every, normalize, query};

const TENANT: &str = "diff";
const DAY: i64 = 86_400_000;

/// `muninn all` holding `days` days of the differential test's data (5-minute scrapes) that
/// end an hour ago, a querier alone over its ingester and bucket, and the first scrape's time.
fn cluster(days: i64) -> (Muninn, Muninn, tempfile::TempDir, i64) {
    let a = Muninn::all(&[]);
    let t0 = (now_ms() - days * DAY - 3_600_000) / 60_000 * 60_000;
    for req in generate_every(t0, days * 288, 300_000) {
        let (code, body) = a.push(TENANT, &req);
        assert_eq!(code, 200, "{body}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let q = Muninn::start_in(
        "querier",
        &tmp.path().join("querier"),
        &[
            &format!("--querier.ingester-addrs=127.0.0.1:{}", a.grpc_port),
            &format!(
                "--storage.filesystem.dir={}",
                a.data_dir.join("bucket").display()
            ),
        ],
    );
    (a, q, tmp, t0)
}

/// A query-frontend process in front of `downstream`.
fn frontend(tmp: &tempfile::TempDir, name: &str, downstream: &str, extra: &[&str]) -> Muninn {
    let mut args = vec![format!("--query-frontend.downstream-url={downstream}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Muninn::start_in("query-frontend", &tmp.path().join(name), &args)
}

/// The sum of a metric's samples in `/metrics` text whose labels contain `filter`.
fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Querier range queries so far.
fn querier_calls(q: &Muninn) -> f64 {
    metric(
        &q.metrics(),
        "muninn_querier_queries_total",
        "endpoint=\"query_range\"",
    )
}

/// An answer with its annotation lists sorted (pieces report them in their own order).
fn canonical(mut v: Value) -> Value {
    for k in ["warnings", "infos"] {
        if let Some(Value::Array(a)) = v.get_mut(k) {
            a.sort_by_key(|x| x.to_string());
        }
    }
    v
}

/// Whether two answers agree: errors exactly, results series by series with values within
/// a relative 1e-9 (sharded sums add in another order), annotations as sets.
fn same_answer(want: &Value, got: &Value) -> bool {
    answer_difference(want, got).is_none()
}

/// What differs between two answers (see [`same_answer`]).
fn answer_difference(want: &Value, got: &Value) -> Option<String> {
    let (want, got) = (canonical(want.clone()), canonical(got.clone()));
    if want["status"] != "success" || got["status"] != "success" {
        return (want != got).then(|| "status or error".to_string());
    }
    if want["warnings"] != got["warnings"] || want["infos"] != got["infos"] {
        return Some(format!(
            "annotations {} {} vs {} {}",
            want["warnings"], want["infos"], got["warnings"], got["infos"]
        ));
    }
    let (w, g) = match (normalize(&want), normalize(&got)) {
        (Ok(w), Ok(g)) => (w, g),
        (w, g) => return Some(format!("unreadable: {:?} {:?}", w.err(), g.err())),
    };
    if !w.keys().eq(g.keys()) {
        return Some(format!(
            "series {:?} vs {:?}",
            w.keys().collect::<Vec<_>>(),
            g.keys().collect::<Vec<_>>()
        ));
    }
    for (k, wp) in &w {
        let gp = &g[k];
        if wp.len() != gp.len() {
            return Some(format!("{k}: {} points vs {}", wp.len(), gp.len()));
        }
        for (a, b) in wp.iter().zip(gp) {
            let close = a.1 == b.1
                || matches!(
                    (a.1.parse::<f64>(), b.1.parse::<f64>()),
                    (Ok(x), Ok(y)) if (x - y).abs() <= 1e-9 * (x.abs() + y.abs())
                );
            if a.0 != b.0 || !close {
                return Some(format!("{k}: {a:?} vs {b:?}"));
            }
        }
    }
    None
}

fn range_params(q: &str, start: i64, end: i64, step: &str) -> Vec<(&'static str, String)> {
    let secs = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    vec![
        ("query", q.to_string()),
        ("start", secs(start)),
        ("end", secs(end)),
        ("step", step.to_string()),
    ]
}

#[test]
fn split_and_cached_range_queries_answer_like_the_querier_alone() {
    let (a, q, tmp, t0) = cluster(3);
    let c = frontend(&tmp, "frontend", &q.http, &[]);
    let extra = [
        // Not split: they depend on the whole range.
        "diff_memory_bytes @ end()",
        "rate(diff_requests_total[30m] @ start())",
        "diff_memory_bytes - diff_memory_bytes offset 1h + end() - start()",
        // Split: subqueries align to absolute time; offsets and fixed @ times.
        "max_over_time(rate(diff_requests_total[30m])[2h:7m])",
        "sum(rate(diff_requests_total[1h] offset 1d))",
        "diff_memory_bytes offset -1h",
        "sort(diff_memory_bytes)",
        "rate(diff_memory_bytes[1h])",
    ];
    let at = format!("diff_memory_bytes @ {}", (t0 + DAY) / 1000);
    let queries: Vec<&str> = INSTANT_QUERIES
        .iter()
        .copied()
        .chain(extra)
        .chain([at.as_str()])
        .collect();
    // Three days crossing three midnights, on two step grids.
    let grids = [
        (t0 + 1_800_000 + 500, t0 + 3 * DAY - 1_500, "600"),
        (t0 + 3_600_000 + 250, t0 + 3 * DAY + 1_800_000, "420"),
    ];
    let mut compared = 0;
    let mut nonempty = 0;
    let mut failures = vec![];
    let mut calls = vec![];
    for pass in 0..2 {
        let calls_before = querier_calls(&q);
        for (start, end, step) in grids {
            for qs in &queries {
                let params = range_params(qs, start, end, step);
                let want = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
                for (who, m) in [("all", &a), ("query-frontend", &c)] {
                    let got = query(&m.http, "/api/v1/query_range", &params, Some(TENANT));
                    compared += 1;
                    if let Some(d) = answer_difference(&want, &got) {
                        failures.push(format!("pass {pass} {who} {qs} step {step}: {d}"));
                    }
                }
                if want["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    nonempty += 1;
                }
            }
        }
        // Less the test's own calls to the querier (one per query and grid).
        calls.push(querier_calls(&q) - calls_before - (queries.len() * grids.len()) as f64);
    }
    // Instant queries: shardable aggregations run as shards, the rest is forwarded.
    for qs in &queries {
        for t in [t0 + DAY + 500, t0 + 3 * DAY - 60_000] {
            let params = vec![
                ("query", qs.to_string()),
                ("time", format!("{}.{:03}", t / 1000, t % 1000)),
            ];
            let want = query(&q.http, "/api/v1/query", &params, Some(TENANT));
            for (who, m) in [("all", &a), ("query-frontend", &c)] {
                let got = query(&m.http, "/api/v1/query", &params, Some(TENANT));
                compared += 1;
                if let Some(d) = answer_difference(&want, &got) {
                    failures.push(format!("instant {who} {qs} at {t}: {d}"));
                }
            }
        }
    }
    // The second pass found the pieces of these old ranges cached: only what is never cached
    // (unsplittable queries, failed pieces, steps within the freshness limit) went again.
    eprintln!(
        "frontend calls to the querier: first pass {}, second pass {}",
        calls[0], calls[1]
    );
    assert!(calls[1] * 10.0 < calls[0], "{calls:?}");
    eprintln!(
        "compared {compared} answers with the querier's ({nonempty} range answers with data), {} differ",
        failures.len()
    );
    let total = queries.len() * 2 * grids.len();
    assert!(
        nonempty * 10 >= total * 8,
        "most queries return data: {nonempty} of {total}"
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let m = c.metrics();
    assert!(metric(&m, "muninn_frontend_split_queries_total", "") > 4.0 * queries.len() as f64);
    assert!(metric(&m, "muninn_frontend_results_cache_hits_total", "") > 0.0);
    assert!(
        metric(&m, "muninn_frontend_sharded_queries_total", "") > 20.0,
        "the shardable aggregations ran sharded"
    );
}

#[test]
fn a_repeated_range_query_is_a_cache_hit_without_querier_calls() {
    // Three days: the queries below span at least two UTC midnights at any time of day (with
    // two, a run between 00:00 and 01:00 UTC split them in only two pieces).
    let (_a, q, tmp, t0) = cluster(3);
    let memcached_port = free_port();
    let mut memcached = std::process::Command::new("memcached")
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &memcached_port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ])
        .args(["-u", "root"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("memcached (Debian package memcached) is installed");
    wait_for("memcached listening", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", memcached_port)).ok()
    });
    let in_process = frontend(&tmp, "fe-lru", &q.http, &[]);
    let with_memcached = frontend(
        &tmp,
        "fe-memcached",
        &q.http,
        &[&format!(
            "--query-frontend.results-cache.memcached-addresses=127.0.0.1:{memcached_port}"
        )],
    );
    let params = range_params(
        "sum by (job) (rate(diff_requests_total[15m]))",
        t0 + 3_600_000,
        now_ms() - 1_800_000,
        "300",
    );
    let get = |m: &Muninn, no_store: bool| -> (u16, String) {
        let mut req = agent().get(&format!("{}/api/v1/query_range", m.http));
        for (k, v) in &params {
            req = req.query(*k, v);
        }
        req = req.header("X-Scope-OrgID", TENANT);
        if no_store {
            req = req.header("Cache-Control", "no-store");
        }
        let mut r = req.call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let direct = get(&q, false);
    assert_eq!(direct.0, 200, "{}", direct.1);
    for fe in [&in_process, &with_memcached] {
        let hits = |fe: &Muninn| {
            metric(
                &fe.metrics(),
                "muninn_frontend_results_cache_hits_total",
                "",
            )
        };
        let misses = |fe: &Muninn| {
            metric(
                &fe.metrics(),
                "muninn_frontend_results_cache_misses_total",
                "",
            )
        };
        let before = querier_calls(&q);
        let first = get(fe, false);
        assert_eq!(first.0, 200, "{}", first.1);
        // Sharded sums add in another order than one querier's: compare as values.
        let (fv, dv): (Value, Value) = (
            serde_json::from_str(&first.1).unwrap(),
            serde_json::from_str(&direct.1).unwrap(),
        );
        assert!(
            same_answer(&dv, &fv),
            "the frontend's answer is the querier's"
        );
        let calls = querier_calls(&q) - before;
        let pieces = metric(&fe.metrics(), "muninn_frontend_split_queries_total", "");
        assert!(
            pieces >= 3.0,
            "two days and more split at midnights: {pieces} pieces"
        );
        assert_eq!(calls, pieces * 16.0, "each piece ran as 16 shards");
        assert_eq!(misses(fe), pieces);
        assert_eq!(hits(fe), 0.0);

        let before = querier_calls(&q);
        let second = get(fe, false);
        assert_eq!(
            second, first,
            "the cached answer is the first answer, byte for byte"
        );
        assert_eq!(
            querier_calls(&q),
            before,
            "cached extents need no querier call"
        );
        assert_eq!(hits(fe), pieces, "every piece is a hit");

        // The client may refuse the cache.
        let before = querier_calls(&q);
        let third = get(fe, true);
        assert_eq!(third.0, 200);
        assert_eq!(querier_calls(&q) - before, calls);
        assert_eq!(
            hits(fe),
            pieces,
            "no-store neither reads nor counts the cache"
        );
    }
    // The memcached frontend's hits came from the real server.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", memcached_port)).unwrap();
    use std::io::{BufRead, Write};
    conn.write_all(b"stats\r\n").unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let mut stats = std::collections::HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("END") || line.is_empty() {
            break;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 3 {
            stats.insert(f[1].to_string(), f[2].parse::<u64>().unwrap_or(0));
        }
    }
    assert!(stats["cmd_set"] >= 3, "{stats:?}");
    assert!(stats["get_hits"] >= 3, "{stats:?}");
    let _ = memcached.kill();
    let _ = memcached.wait();
}

#[test]
fn a_tenant_flooding_heavy_queries_does_not_hold_back_another() {
    // Three days: the queries below span at least two UTC midnights at any time of day (with
    // two, a run between 00:00 and 01:00 UTC split them in only two pieces).
    let (_a, q, tmp, t0) = cluster(3);
    // Two querier slots for everyone: the heavy tenant alone could fill them all the time.
    let fe = frontend(
        &tmp,
        "fe",
        &q.http,
        &[
            "--query-frontend.querier-concurrency=2",
            "--query-frontend.cache-results=false",
        ],
    );
    let heavy = range_params(
        "count_over_time(diff_requests_total[1d]) + count_over_time(diff_memory_bytes[1d])",
        t0 + 3_600_000,
        now_ms() - 3_600_000,
        "60",
    );
    let light = range_params("vector(1)", t0 + 3_600_000, now_ms() - 3_600_000, "3600");
    let run = |tenant: &str, params: &[(&str, String)]| -> Duration {
        let started = Instant::now();
        let mut req = agent().get(&format!("{}/api/v1/query_range", fe.http));
        for (k, v) in params {
            req = req.query(*k, v);
        }
        let mut r = req.header("X-Scope-OrgID", tenant).call().unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{body}");
        started.elapsed()
    };
    let heavy_times = std::thread::scope(|s| {
        let floods: Vec<_> = (0..10).map(|_| s.spawn(|| run(TENANT, &heavy))).collect();
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..5 {
            run("light", &light);
            std::thread::sleep(Duration::from_millis(100));
        }
        floods
            .into_iter()
            .map(|f| f.join().unwrap())
            .collect::<Vec<_>>()
    });
    let m = fe.metrics();
    let name = "muninn_frontend_queue_duration_seconds";
    let wait_sum = metric(&m, &format!("{name}_sum"), "tenant=\"light\"");
    let wait_count = metric(&m, &format!("{name}_count"), "tenant=\"light\"");
    assert!(
        wait_count >= 15.0,
        "light's sub-requests were queued: {wait_count}"
    );
    let mut sorted = heavy_times.clone();
    sorted.sort();
    let median_heavy = sorted[sorted.len() / 2].as_secs_f64();
    let light_mean_wait = wait_sum / wait_count;
    eprintln!(
        "heavy queries took {:.2}..{:.2} s (median {median_heavy:.2}); light's sub-requests waited {:.4} s on average",
        sorted[0].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
        light_mean_wait
    );
    assert!(
        light_mean_wait < median_heavy,
        "light waits less than one heavy query runs: {light_mean_wait} vs {median_heavy}"
    );
    // The heavy tenant did wait: its own flood queued behind itself.
    let heavy_sum = metric(&m, &format!("{name}_sum"), &format!("tenant=\"{TENANT}\""));
    let heavy_count = metric(
        &m,
        &format!("{name}_count"),
        &format!("tenant=\"{TENANT}\""),
    );
    assert!(
        heavy_sum / heavy_count > light_mean_wait,
        "heavy waited {} on average, light {light_mean_wait}",
        heavy_sum / heavy_count
    );
}

#[test]
fn results_cached_before_retention_are_not_served_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime.yaml");
    std::fs::write(&runtime, "overrides: {}\n").unwrap();
    let data = dir.path().join("data");
    let m = Muninn::start_in(
        "all",
        &data,
        &[
            &format!("--runtime-config.file={}", runtime.display()),
            "--runtime-config.reload-period=1s",
            "--compactor.interval=1s",
            "--ingester.retain-after-ship=0s",
            "--query-frontend.results-cache.generation-refresh-interval=1s",
        ],
    );
    let t0 = (now_ms() - 3 * DAY) / 60_000 * 60_000;
    for req in generate_every(t0, 3 * 288 - 12, 300_000) {
        assert_eq!(m.push(TENANT, &req).0, 200);
    }
    assert_eq!(m.flush_all(), 200);
    let params = range_params(
        "diff_memory_bytes{job=\"job-0\",instance=\"i-0\"}",
        t0 + 3_600_000,
        t0 + 2 * DAY,
        "600",
    );
    let get = |no_store: bool| -> Value {
        let mut req = agent().get(&format!("{}/api/v1/query_range", m.http));
        for (k, v) in &params {
            req = req.query(*k, v);
        }
        req = req.header("X-Scope-OrgID", TENANT);
        if no_store {
            req = req.header("Cache-Control", "no-store");
        }
        serde_json::from_str(&req.call().unwrap().body_mut().read_to_string().unwrap()).unwrap()
    };
    let points = |v: &Value| -> usize {
        v["data"]["result"].as_array().map_or(0, |r| {
            r.iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum()
        })
    };
    let before = get(false);
    let n_before = points(&before);
    assert!(n_before > 200, "two days of 10-minute steps: {n_before}");
    assert_eq!(get(false), before, "the repeat comes from the cache");
    let hits = metric(&m.metrics(), "muninn_frontend_results_cache_hits_total", "");
    assert!(hits > 0.0);

    // Retention of one day for the tenant: the compactor expires the older blocks and raises
    // the tenant's cache generation; the cached answer must not outlive the data.
    std::fs::write(
        &runtime,
        format!("overrides:\n  {TENANT}:\n    compactor_blocks_retention_period: 1d\n"),
    )
    .unwrap();
    let after = wait_for(
        "the frontend's answer without the expired blocks",
        Duration::from_secs(60),
        || {
            let direct = get(true);
            (points(&direct) < n_before && get(false) == direct).then_some(direct)
        },
    );
    assert!(points(&after) < n_before);
    let marker = data
        .join("bucket")
        .join(TENANT)
        .join("markers/results-cache-generation");
    let generation: u64 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(generation >= 1, "the compactor raised the generation");
}

#[test]
fn a_frontend_finds_its_queriers_in_the_gossip_ring() {
    use crate::cluster::{Cluster, wait_active};
    let c = Cluster::new();
    let rf = "--ingester.ring.replication-factor=1";
    let ing = c.ingester("ing-1", &[rf]);
    let q1 = c.start("querier", "q1", &[rf]);
    let q2 = c.start("querier", "q2", &[rf]);
    let fe = c.start("query-frontend", "fe", &[rf]);
    for m in [&ing, &q1, &q2] {
        wait_active(m, &["ing-1"]);
    }
    let t0 = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    for req in generate_every(t0, 100, 60_000) {
        assert_eq!(ing.push(TENANT, &req).0, 200);
    }
    let params = range_params(
        "sum by (job) (rate(diff_requests_total[10m]))",
        t0 + 600_000,
        t0 + 90 * 60_000,
        "60",
    );
    let want = query(&q1.http, "/api/v1/query_range", &params, Some(TENANT));
    assert_eq!(want["status"], "success", "{want}");
    // The frontend learns the queriers' URLs by gossip and spreads its shards over both.
    let got = wait_for(
        "the frontend to find queriers",
        Duration::from_secs(30),
        || {
            let v = query(&fe.http, "/api/v1/query_range", &params, Some(TENANT));
            (v["status"] == "success").then_some(v)
        },
    );
    assert!(same_answer(&want, &got), "{want}\n{got}");
    for q in [&q1, &q2] {
        assert!(querier_calls(q) > 1.0, "both queriers answered shards");
    }
}
