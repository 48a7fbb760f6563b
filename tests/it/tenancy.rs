//! Multi-tenant SaaS: per-tenant limits from the live-reloaded runtime config file, the
//! ingestion rate limit, series limits, out-of-order windows, tenant authentication, and
//! the usage endpoints, each against a real `muninn` process.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Muninn, agent, now_ms, points, result, series, wait_for, write_request};

/// `muninn all` reading `runtime` as its runtime config file (default reload period: a change
/// to the file applies within about a second).
fn with_runtime(runtime: &str, extra: &[&str]) -> (Muninn, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runtime.yaml");
    std::fs::write(&path, runtime).unwrap();
    let mut args = vec![format!("--runtime-config.file={}", path.display())];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Muninn::all(&args), path, dir)
}

/// `n` series of `name`, each with `per` samples ending at `now`.
fn batch(name: &str, n: usize, per: usize, now: i64) -> muninn_proto::prometheus::WriteRequest {
    write_request(
        (0..n)
            .map(|i| {
                let i = i.to_string();
                let samples: Vec<(i64, f64)> = (0..per)
                    .map(|k| (now - ((per - k) as i64) * 1000, k as f64))
                    .collect();
                series(&[("__name__", name), ("i", &i)], &samples)
            })
            .collect(),
    )
}

fn count(m: &Muninn, tenant: &str, expr: &str) -> f64 {
    let (code, v) = m.get(Some(tenant), "/api/v1/query", &[("query", expr)]);
    assert_eq!(code, 200, "{v}");
    result(&v)
        .first()
        .map_or(0.0, |r| r["value"][1].as_str().unwrap().parse().unwrap())
}

fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn ingestion_rate_limit_refuses_whole_requests_with_429() {
    let (m, _path, _dir) = with_runtime(
        "overrides:\n  limited:\n    ingestion_rate: 1000\n    ingestion_burst_size: 2000\n",
        &[],
    );
    let now = now_ms();
    // 5000 samples at once: more than the burst, refused whole.
    let big = batch("rate_test", 50, 100, now);
    let (code, body) = m.push("limited", &big);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("ingestion_rate"), "{body}");
    assert_eq!(
        count(&m, "limited", "count(rate_test)"),
        0.0,
        "nothing stored"
    );
    let metrics = m.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            "muninn_discarded_samples_total{tenant=\"limited\",reason=\"rate_limited\"}"
        ),
        Some(5000.0),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = m.push("limited", &batch("rate_test", 5, 100, now_ms()));
    assert_eq!(code, 200, "500 samples after 3 s: {body}");
    assert_eq!(count(&m, "limited", "count(rate_test)"), 5.0);
    // A tenant without limits pushes the same 5000 at once.
    let (code, body) = m.push("free", &big);
    assert_eq!(code, 200, "{body}");
    assert_eq!(count(&m, "free", "count(rate_test)"), 50.0);
}

#[test]
fn series_limit_keeps_the_first_series_and_reloads_live() {
    let (m, path, _dir) = with_runtime(
        "overrides:\n  team:\n    max_global_series_per_user: 50\n",
        &[],
    );
    let now = now_ms();
    let req = batch("m", 80, 1, now);
    let (code, body) = m.push("team", &req);
    assert!((400..500).contains(&code), "{code} {body}");
    assert!(body.contains("max_global_series_per_user"), "{body}");
    assert_eq!(
        count(&m, "team", "count(m)"),
        50.0,
        "exactly the limit stored"
    );
    assert_eq!(
        metric_value(
            &m.metrics(),
            "muninn_discarded_samples_total{tenant=\"team\",reason=\"per_user_series_limit\"}"
        ),
        Some(30.0)
    );
    // Another tenant is not limited.
    assert_eq!(m.push("other", &req).0, 200);
    // Raising the limit in the file lets all 80 in within seconds, with no restart.
    std::fs::write(
        &path,
        "overrides:\n  team:\n    max_global_series_per_user: 100\n",
    )
    .unwrap();
    let req2 = batch("m", 80, 1, now + 1000);
    let edited = std::time::Instant::now();
    wait_for("the raised limit", Duration::from_secs(10), || {
        (m.push("team", &req2).0 == 200).then_some(())
    });
    assert!(
        edited.elapsed() < Duration::from_secs(4),
        "the edit applied within seconds, not at the 10 s reload period: {:?}",
        edited.elapsed()
    );
    assert_eq!(count(&m, "team", "count(m)"), 80.0);
    let (code, v) = m.get(Some("team"), "/api/v1/status/tsdb", &[]);
    assert_eq!(code, 200, "{v}");
    let data = &v["data"];
    assert_eq!(data["headStats"]["numSeries"], 80, "{v}");
    assert_eq!(data["seriesCountByMetricName"][0]["name"], "m", "{v}");
    assert_eq!(data["seriesCountByMetricName"][0]["value"], 80, "{v}");
    assert_eq!(data["labelValueCountByLabelName"][0]["name"], "i", "{v}");
    assert_eq!(data["labelValueCountByLabelName"][0]["value"], 80, "{v}");
    // A file that does not parse keeps the last good one, and is counted.
    std::fs::write(
        &path,
        "overrides:\n  team:\n    max_global_series_per_user: lots\n",
    )
    .unwrap();
    wait_for("the failed reload", Duration::from_secs(10), || {
        metric_value(&m.metrics(), "muninn_runtime_config_reload_failures_total")
            .filter(|n| *n >= 1.0)
    });
    assert_eq!(m.push("team", &batch("m2", 10, 1, now)).0, 200);
    let (code, v) = m.get(Some("team"), "/api/v1/user_stats", &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["numSeries"], 90, "{v}");
    assert!(v["ingestionRate"].as_f64().unwrap() >= 0.0, "{v}");
}

#[test]
fn out_of_order_window_accepts_late_samples_in_time_order() {
    let (m, _path, _dir) = with_runtime(
        "overrides:\n  late:\n    out_of_order_time_window: 1h\n",
        &[],
    );
    let now = now_ms() / 1000 * 1000;
    let one = |t: i64, v: f64| write_request(vec![series(&[("__name__", "ooo")], &[(t, v)])]);
    for tenant in ["late", "strict"] {
        assert_eq!(m.push(tenant, &one(now, 3.0)).0, 200);
    }
    let (code, body) = m.push("late", &one(now - 30 * 60_000, 1.0));
    assert_eq!(code, 200, "30 minutes late, inside the window: {body}");
    let (code, body) = m.push("late", &one(now - 20 * 60_000, 2.0));
    assert_eq!(code, 200, "20 minutes late: {body}");
    let (code, body) = m.push("late", &one(now - 3 * 3_600_000, 9.0));
    assert_eq!(code, 400, "3 hours late: {body}");
    let (code, body) = m.push("strict", &one(now - 30 * 60_000, 1.0));
    assert_eq!(code, 400, "no window: {body}");
    assert!(
        body.contains("out-of-order") || body.contains("out_of_order"),
        "{body}"
    );
    let answer = |tenant: &str| {
        let (code, v) = m.get(
            Some(tenant),
            "/api/v1/query",
            &[("query", "ooo[2h]"), ("time", &format!("{}", now / 1000))],
        );
        assert_eq!(code, 200, "{v}");
        points(&result(&v)[0])
    };
    let want = vec![
        (now - 30 * 60_000, 1.0),
        (now - 20 * 60_000, 2.0),
        (now, 3.0),
    ];
    assert_eq!(answer("late"), want);
    assert_eq!(answer("strict"), vec![(now, 3.0)]);
    // Shipped in a block with the late samples, and still answered in order.
    let mut resp = agent()
        .post(&format!("{}/ingester/flush", m.http))
        .header("X-Scope-OrgID", "late")
        .send("")
        .unwrap();
    let text = resp.body_mut().read_to_string().unwrap();
    // One block, or two when the last 30 minutes cross a 2h block boundary.
    let shipped: u64 = text
        .lines()
        .filter_map(|l| l.rsplit("samples=").next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(shipped, 3, "{text}");
    assert_eq!(answer("late"), want);
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        muninn_proto::tenant::base64_encode(format!("{user}:{password}").as_bytes())
    )
}

fn get_as(
    m: &Muninn,
    headers: &[(&str, &str)],
    path: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = agent().get(&format!("{}{path}", m.http));
    for (k, v) in params {
        req = req.query(*k, *v);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let code = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn tenants_authenticate_with_their_password() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.yaml");
    std::fs::write(
        &tenants,
        format!(
            "tenants:\n  team-a: {{password_sha256: {}}}\n  team-b: {{password_sha256: {}}}\nadmin: {{password_sha256: {}}}\n",
            sha256("pass-a"),
            sha256("pass-b"),
            sha256("root")
        ),
    )
    .unwrap();
    let metrics_port = crate::harness::free_port();
    let m = Muninn::all(&[
        &format!("--auth.tenants-file={}", tenants.display()),
        &format!("--server.metrics-addr=127.0.0.1:{metrics_port}"),
    ]);
    let now = now_ms();
    let body = crate::harness::encode(&batch("secret", 3, 1, now));
    let a_ok = basic("team-a", "pass-a");
    let (code, text) = m.push_raw(None, &[("Authorization", &a_ok)], body.clone());
    assert_eq!(code, 200, "{text}");
    for (what, headers) in [
        (
            "wrong password",
            vec![("Authorization", basic("team-a", "nope"))],
        ),
        (
            "empty password",
            vec![("Authorization", basic("team-a", ""))],
        ),
        (
            "another tenant's password",
            vec![("Authorization", basic("team-b", "pass-a"))],
        ),
        ("bare header", vec![("X-Scope-OrgID", "team-a".to_string())]),
        ("nothing", vec![]),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, text) = m.push_raw(None, &h, body.clone());
        assert_eq!(code, 401, "push with {what}: {text}");
        let (code, v) = get_as(&m, &h, "/api/v1/query", &[("query", "secret")]);
        assert_eq!(code, 401, "query with {what}: {v}");
    }
    assert!(
        !m.log_text().contains("pass-a"),
        "passwords are never logged"
    );
    let (code, v) = get_as(
        &m,
        &[("Authorization", &a_ok)],
        "/api/v1/query",
        &[("query", "count(secret)")],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(result(&v)[0]["value"][1], "3");
    // Team b's credentials see nothing of team a's.
    let b_ok = basic("team-b", "pass-b");
    for (path, params) in [
        ("/api/v1/query", vec![("query", "{__name__=~\".+\"}")]),
        ("/api/v1/series", vec![("match[]", "{__name__=~\".+\"}")]),
        ("/api/v1/label/__name__/values", vec![]),
        ("/api/v1/status/tsdb", vec![]),
    ] {
        let (code, v) = get_as(&m, &[("Authorization", &b_ok)], path, &params);
        assert_eq!(code, 200, "{path}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains("secret"),
            "{path} leaks team a's data to team b: {text}"
        );
    }
    // Admin endpoints need the admin credential; /ready and / stay open; /metrics moved.
    let flush = |auth: Option<&str>| {
        let mut r = agent().post(&format!("{}/ingester/flush?all=true", m.http));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send("").unwrap().status().as_u16()
    };
    assert_eq!(flush(None), 401);
    assert_eq!(flush(Some(&a_ok)), 401, "a tenant is not an admin");
    assert_eq!(flush(Some(&basic("admin", "root"))), 200);
    assert_eq!(get_as(&m, &[], "/ready", &[]).0, 200);
    assert_eq!(get_as(&m, &[], "/", &[]).0, 200);
    assert_eq!(
        get_as(&m, &[], "/metrics", &[]).0,
        404,
        "moved off the HTTP address"
    );
    let text = agent()
        .get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        text.contains("muninn_ingester_ingested_samples_total{tenant=\"team-a\"}"),
        "{text}"
    );
}

pub(crate) fn sha256(s: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn shuffle_sharding_keeps_a_tenant_on_its_shard() {
    use crate::cluster::{Cluster, memory_series, wait_active};
    let c = Cluster::new();
    let runtime = c.dir.path().join("runtime.yaml");
    std::fs::write(
        &runtime,
        "overrides:\n  noisy:\n    ingestion_tenant_shard_size: 2\n",
    )
    .unwrap();
    let rc = format!("--runtime-config.file={}", runtime.display());
    let ids = ["ing-1", "ing-2", "ing-3", "ing-4", "ing-5", "ing-6"];
    let ings: Vec<Muninn> = ids.iter().map(|id| c.ingester(id, &[&rc])).collect();
    // Every ingester here registered seconds ago: with the default lookback the querier would
    // ask them all (any could have displaced a shard member); without it, only the shard.
    let q = c.start(
        "querier",
        "q",
        &[
            &rc,
            "--querier.shuffle-sharding-ingesters-lookback-period=0s",
        ],
    );
    for m in ings.iter().chain([&q]) {
        wait_active(m, &ids);
    }
    let now = now_ms();
    let req = batch("sharded", 30, 5, now);
    for (i, m) in ings.iter().enumerate() {
        // Written through every ingester: each routes to the same shard.
        let part = write_request(req.timeseries[i * 5..i * 5 + 5].to_vec());
        let (code, body) = m.push("noisy", &part);
        assert_eq!(code, 200, "{body}");
        let (code, body) = m.push("quiet", &part);
        assert_eq!(code, 200, "{body}");
    }
    let holders: Vec<&str> = ids
        .iter()
        .zip(&ings)
        .filter(|(_, m)| memory_series(&[m], "noisy") > 0)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        holders.len(),
        2,
        "the tenant lives on exactly 2 ingesters: {holders:?}"
    );
    let refs: Vec<&Muninn> = ings.iter().collect();
    assert_eq!(
        memory_series(&refs, "noisy"),
        2 * 30,
        "each series on both shard members"
    );
    // Without a shard size, a tenant spreads over the ring (RF 3 copies).
    assert_eq!(memory_series(&refs, "quiet"), 3 * 30);
    assert!(
        ings.iter()
            .filter(|m| memory_series(&[m], "quiet") > 0)
            .count()
            > 2,
        "an unsharded tenant uses the whole ring"
    );
    // Queries answer exactly: every series with every sample, once.
    assert_eq!(count(&q, "noisy", "count(sharded)"), 30.0);
    // So does a querier with the default lookback (it asks every ingester here, as all of
    // them registered within it), and usage counts replicas once.
    let q2 = c.start("querier", "q2", &[&rc]);
    wait_active(&q2, &ids);
    assert_eq!(count(&q2, "noisy", "count(sharded)"), 30.0);
    let (code, v) = q2.get(Some("noisy"), "/api/v1/user_stats", &[]);
    assert_eq!((code, v["numSeries"].as_u64()), (200, Some(30)), "{v}");
    assert_eq!(
        count(&q, "noisy", "sum(count_over_time(sharded[10m]))"),
        150.0
    );
    assert_eq!(count(&q, "noisy", "sum(sharded)"), 30.0 * 4.0);
    // The querier asks only the shard: two ingesters outside it may die (more than RF 3
    // tolerates over the whole ring) and the tenant's answer is still complete.
    let mut ings = ings;
    let outside: Vec<usize> = (0..ids.len())
        .filter(|i| !holders.contains(&ids[*i]))
        .collect();
    ings[outside[0]].kill9();
    ings[outside[1]].kill9();
    assert_eq!(count(&q, "noisy", "count(sharded)"), 30.0);
    // A shard member down: each acknowledged series is on both members (a write needs both),
    // so the survivor answers completely; with both down, 503 naming them, never a partial
    // count.
    let first = ids.iter().position(|id| *id == holders[0]).unwrap();
    ings[first].kill9();
    assert_eq!(count(&q, "noisy", "count(sharded)"), 30.0);
    let second = ids.iter().position(|id| *id == holders[1]).unwrap();
    ings[second].kill9();
    let (code, v) = q.get(
        Some("noisy"),
        "/api/v1/query",
        &[("query", "count(sharded)")],
    );
    assert_eq!(code, 503, "{v}");
    assert!(v.to_string().contains(holders[0]), "{v}");
}

#[test]
fn query_limits_apply_per_tenant_and_usage_is_counted() {
    let (m, _path, _dir) = with_runtime(
        "overrides:\n  capped:\n    max_fetched_series_per_query: 5\n    max_total_query_length: 1h\n    max_query_lookback: 30m\n",
        &[],
    );
    let now = now_ms() / 1000 * 1000;
    let req = write_request(
        (0..10)
            .map(|i| {
                let i = i.to_string();
                series(
                    &[("__name__", "q"), ("i", &i)],
                    &[(now - 50 * 60_000, 1.0), (now - 60_000, 2.0)],
                )
            })
            .collect(),
    );
    for t in ["capped", "open"] {
        assert_eq!(m.push(t, &req).0, 200);
    }
    let t = format!("{}", now / 1000);
    // Too many series for the tenant: 422, naming the limit.
    let (code, v) = m.get(
        Some("capped"),
        "/api/v1/query",
        &[("query", "sum(q)"), ("time", &t)],
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v.to_string().contains("max_fetched_series_per_query"),
        "{v}"
    );
    let (code, v) = m.get(
        Some("open"),
        "/api/v1/query",
        &[("query", "sum(q)"), ("time", &t)],
    );
    assert_eq!(
        (code, result(&v)[0]["value"][1].as_str()),
        (200, Some("20")),
        "{v}"
    );
    // Five series fit; data older than the lookback is invisible.
    let (code, v) = m.get(
        Some("capped"),
        "/api/v1/query",
        &[
            ("query", "count_over_time(q{i=~\"[0-4]\"}[2h])"),
            ("time", &t),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert!(result(&v).iter().all(|r| r["value"][1] == "1"), "{v}");
    let (_, v) = m.get(
        Some("open"),
        "/api/v1/query",
        &[
            ("query", "count_over_time(q{i=~\"[0-4]\"}[2h])"),
            ("time", &t),
        ],
    );
    assert!(result(&v).iter().all(|r| r["value"][1] == "2"), "{v}");
    // A range longer than max_total_query_length: 400.
    let start = format!("{}", now / 1000 - 2 * 3600);
    let (code, v) = m.get(
        Some("capped"),
        "/api/v1/query_range",
        &[
            ("query", "count(q{i=\"1\"})"),
            ("start", &start),
            ("end", &t),
            ("step", "60"),
        ],
    );
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("max_total_query_length"), "{v}");
    // So is a remote read over that range; the open tenant's is answered.
    {
        use crate::remote_read::{matcher, post_read};
        use muninn_proto::prometheus as pb;
        let read = pb::ReadRequest {
            queries: vec![pb::Query {
                start_timestamp_ms: now - 2 * 3_600_000,
                end_timestamp_ms: now,
                matchers: vec![matcher(pb::label_matcher::Type::Eq, "__name__", "q")],
                hints: None,
            }],
            accepted_response_types: vec![],
        };
        let (code, _, body) = post_read(&m.http, &read, Some("capped"));
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{text}");
        assert!(text.contains("max_total_query_length"), "{text}");
        assert_eq!(post_read(&m.http, &read, Some("open")).0, 200);
    }
    // What queries fetched is counted per tenant.
    let metrics = m.metrics();
    let fetched = metric_value(
        &metrics,
        "muninn_querier_fetched_series_total{tenant=\"open\"}",
    );
    assert!(fetched.is_some_and(|n| n >= 15.0), "{metrics}");
    assert!(
        metric_value(
            &metrics,
            "muninn_querier_fetched_samples_total{tenant=\"open\"}"
        )
        // sum(q): at least the newest sample of 10 series; count_over_time: 2 of 5 series.
        .is_some_and(|n| n >= 20.0)
    );
}

#[test]
fn a_real_prometheus_writes_with_its_tenant_password() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.yaml");
    std::fs::write(
        &tenants,
        format!(
            "tenants:\n  prom-a: {{password_sha256: {}}}\n  prom-b: {{password_sha256: {}}}\n",
            sha256("right"),
            sha256("other")
        ),
    )
    .unwrap();
    let m = Muninn::all(&[&format!("--auth.tenants-file={}", tenants.display())]);
    // Two queues from one Prometheus: prom-a with its password, prom-b with a wrong one.
    let config = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['{{SELF}}']
remote_write:
  - url: {url}/api/v1/push
    basic_auth: {{username: prom-a, password: right}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
  - url: {url}/api/v1/push
    basic_auth: {{username: prom-b, password: wrong}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"#,
        url = m.http
    );
    let _p = crate::harness::Prometheus::start(&config, &[]);
    let a = basic("prom-a", "right");
    wait_for("prom-a's samples", Duration::from_secs(60), || {
        let (code, v) = get_as(
            &m,
            &[("Authorization", &a)],
            "/api/v1/query",
            &[("query", "up")],
        );
        (code == 200 && !result(&v).is_empty()).then_some(())
    });
    // prom-b's pushes were refused with 401 (Prometheus drops them): nothing stored.
    let b = basic("prom-b", "other");
    let (code, v) = get_as(
        &m,
        &[("Authorization", &b)],
        "/api/v1/query",
        &[("query", "up")],
    );
    assert_eq!(code, 200, "{v}");
    assert!(
        result(&v).is_empty(),
        "a wrong password stores nothing: {v}"
    );
    assert!(
        m.log_text().contains("prom-b"),
        "the refused pushes are logged with their user"
    );
}

#[test]
fn internal_grpc_needs_the_cluster_token_when_authentication_is_on() {
    use crate::cluster::{Cluster, memory_series, wait_active};
    let c = Cluster::new();
    let tenants = c.dir.path().join("tenants.yaml");
    std::fs::write(
        &tenants,
        format!(
            "tenants:\n  team-a: {{password_sha256: {}}}\nadmin: {{password_sha256: {}}}\n",
            sha256("pass-a"),
            sha256("root")
        ),
    )
    .unwrap();
    let tf = format!("--auth.tenants-file={}", tenants.display());
    let ids = ["ing-1", "ing-2", "ing-3"];
    let ings: Vec<Muninn> = ids.iter().map(|id| c.ingester(id, &[&tf])).collect();
    let q = c.start("querier", "q", &[&tf]);
    for m in ings.iter().chain([&q]) {
        wait_active(m, &ids);
    }
    // Routed to the other owners over gRPC (with the token), read back over gRPC.
    let a = basic("team-a", "pass-a");
    let body = crate::harness::encode(&batch("tok", 10, 1, now_ms()));
    let (code, text) = ings[0].push_raw(None, &[("Authorization", &a)], body);
    assert_eq!(code, 200, "{text}");
    let refs: Vec<&Muninn> = ings.iter().collect();
    // The push is acknowledged at quorum (2 of 3); the third copy may land a moment later.
    crate::harness::wait_for("RF 3 copies", std::time::Duration::from_secs(10), || {
        (memory_series(&refs, "team-a") == 30).then_some(())
    });
    let (code, v) = get_as(
        &q,
        &[("Authorization", &a)],
        "/api/v1/query",
        &[("query", "count(tok)")],
    );
    assert_eq!(
        (code, result(&v)[0]["value"][1].as_str()),
        (200, Some("10")),
        "{v}"
    );
    // A client of the gRPC port without the token is refused, whatever tenant it names.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut client = muninn_proto::ingester::ingester_client::IngesterClient::connect(format!(
            "http://127.0.0.1:{}",
            ings[1].grpc_port
        ))
        .await
        .unwrap();
        let mut req = tonic::Request::new(muninn_proto::ingester::LabelNamesRequest {
            start_ms: 0,
            end_ms: i64::MAX,
            matchers: vec![],
        });
        req.metadata_mut()
            .insert("x-scope-orgid", "team-a".parse().unwrap());
        client.label_names(req).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}

#[test]
fn late_samples_written_during_flushes_are_all_kept() {
    // Cuts every 200 ms, shipped data leaves the head at once: a late sample marked shipped
    // without being in a block would be lost, not just hidden.
    let (m, _path, _dir) = with_runtime(
        "overrides:\n  late:\n    out_of_order_time_window: 2h\n",
        &[
            "--ingester.cut-interval=200ms",
            "--ingester.retain-after-ship=0s",
        ],
    );
    let base = now_ms() / 1000 * 1000;
    let first = write_request(
        (0..5)
            .map(|i| {
                series(
                    &[("__name__", "churn"), ("i", &i.to_string())],
                    &[(base, -1.0)],
                )
            })
            .collect(),
    );
    assert_eq!(m.push("late", &first).0, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let (http, stop) = (m.http.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let code = agent()
                    .post(&format!("{http}/ingester/flush"))
                    .header("X-Scope-OrgID", "late")
                    .send("")
                    .unwrap()
                    .status()
                    .as_u16();
                assert_eq!(code, 200);
                n += 1;
            }
            n
        })
    };
    // Late samples, every one at a distinct time up to 90 minutes back, in scrambled order.
    let mut acked: Vec<std::collections::BTreeMap<i64, f64>> = vec![Default::default(); 5];
    for a in &mut acked {
        a.insert(base, -1.0);
    }
    for k in 0..400i64 {
        let (i, t) = ((k % 5) as usize, base - ((k * 7919) % 5400 + 1) * 1000);
        let req = write_request(vec![series(
            &[("__name__", "churn"), ("i", &i.to_string())],
            &[(t, k as f64)],
        )]);
        let (code, body) = m.push("late", &req);
        assert_eq!(code, 200, "{body}");
        acked[i].insert(t, k as f64);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flushes = flusher.join().unwrap();
    assert!(flushes > 0);
    agent()
        .post(&format!("{}/ingester/flush", m.http))
        .header("X-Scope-OrgID", "late")
        .send("")
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // Every acknowledged sample, from blocks and head together, exactly once and in order.
    for (i, want) in acked.iter().enumerate() {
        let (code, v) = m.get(
            Some("late"),
            "/api/v1/query",
            &[
                ("query", &format!("churn{{i=\"{i}\"}}[3h]")),
                ("time", &format!("{}", base / 1000)),
            ],
        );
        assert_eq!(code, 200, "{v}");
        let got = points(&result(&v)[0]);
        let want: Vec<(i64, f64)> = want.iter().map(|(t, v)| (*t, *v)).collect();
        assert_eq!(got.len(), want.len(), "series {i} after {flushes} flushes");
        assert_eq!(got, want, "series {i}");
    }
}
