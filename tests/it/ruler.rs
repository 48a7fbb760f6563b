//! The ruler against real components: rule groups managed through the Cortex/Mimir ruler API,
//! evaluated by `muninn all` (and by rulers of a gossip cluster), alerts received by a real
//! Alertmanager (Debian `prometheus-alertmanager`), the API's rules accepted by `promtool
//! check rules`, recording results equal to the expression evaluated directly.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::harness::{
    Alertmanager, Muninn, agent, now_ms, result, series, wait_for, write_request,
};

const GROUP: &str = r#"name: nodes
interval: 2s
rules:
  - record: job:node_up:sum
    expr: sum by (job) (node_up)
    labels:
      source: ruler
  - alert: NodeDown
    expr: node_up == 0
    for: 3s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
      value: "{{ $value | humanize }}"
"#;

fn config_call(
    m: &Muninn,
    method: &str,
    tenant: Option<&str>,
    path: &str,
    body: &str,
) -> (u16, String) {
    let url = format!("{}/prometheus/config/v1/rules{path}", m.http);
    let a = agent();
    let mut req = match method {
        "GET" => a.get(&url).force_send_body(),
        "POST" => a.post(&url),
        "DELETE" => a.delete(&url).force_send_body(),
        _ => unreachable!(),
    };
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let mut resp = req
        .header("Content-Type", "application/yaml")
        .send(body)
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// `node_up` for two instances, a up and b at `b_value`: over the last minute with
/// `history`, else one sample now.
fn push_nodes(m: &Muninn, tenant: &str, b_value: f64, history: bool) {
    let now = now_ms();
    let n = if history { 12 } else { 1 };
    let samples =
        |v: f64| -> Vec<(i64, f64)> { (0..n).map(|i| (now - (n - 1 - i) * 5_000, v)).collect() };
    let (s, _) = m.push(
        tenant,
        &write_request(vec![
            series(
                &[("__name__", "node_up"), ("instance", "a"), ("job", "node")],
                &samples(1.0),
            ),
            series(
                &[("__name__", "node_up"), ("instance", "b"), ("job", "node")],
                &samples(b_value),
            ),
        ]),
    );
    assert_eq!(s, 200);
}

fn query(m: &Muninn, tenant: &str, q: &str, t: Option<i64>) -> Vec<Value> {
    let ts = t.map(|t| format!("{:.3}", t as f64 / 1000.0));
    let mut params = vec![("query", q)];
    if let Some(ts) = &ts {
        params.push(("time", ts.as_str()));
    }
    let (s, v) = m.get(Some(tenant), "/prometheus/api/v1/query", &params);
    assert_eq!(s, 200, "{q}: {v}");
    result(&v).clone()
}

#[test]
fn rules_are_evaluated_recorded_alerted_to_alertmanager_and_marked_stale() {
    let am = Alertmanager::start();
    let am_flag = format!("--ruler.alertmanager-url={}", am.url);
    let m = Muninn::all(&[
        &am_flag,
        "--ruler.poll-interval=30s",
        "--ruler.resend-delay=5m",
    ]);
    push_nodes(&m, "t1", 0.0, true);

    // Bad input: no tenant, invalid YAML, an invalid expression.
    assert_eq!(config_call(&m, "POST", None, "/ns1", GROUP).0, 401);
    let (s, body) = config_call(&m, "POST", Some("t1"), "/ns1", "name: [x");
    assert_eq!(s, 400, "{body}");
    let (s, body) = config_call(
        &m,
        "POST",
        Some("t1"),
        "/ns1",
        "name: g\nrules:\n  - record: r\n    expr: sum(\n",
    );
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("could not parse"), "{body}");
    assert_eq!(
        config_call(&m, "GET", Some("t1"), "", "").0,
        404,
        "no groups yet"
    );

    let posted = now_ms();
    let (s, body) = config_call(&m, "POST", Some("t1"), "/ns1", GROUP);
    assert_eq!(s, 202, "{body}");

    // The group as stored: promtool accepts it as a rule file.
    let (s, yaml) = config_call(&m, "GET", Some("t1"), "/ns1", "");
    assert_eq!(s, 200);
    assert!(yaml.starts_with("ns1:"), "{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, yaml.replacen("ns1:", "groups:", 1)).unwrap();
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules refused {yaml}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, one) = config_call(&m, "GET", Some("t1"), "/ns1/nodes", "");
    assert_eq!(s, 200);
    assert!(one.starts_with("name: nodes"), "{one}");
    assert_eq!(config_call(&m, "GET", Some("t1"), "/ns1/other", "").0, 404);
    assert_eq!(
        config_call(&m, "GET", Some("t2"), "", "").0,
        404,
        "tenants are apart"
    );

    // Alertmanager receives the alert, templated, after `for`.
    let alert = wait_for("NodeDown at Alertmanager", Duration::from_secs(30), || {
        am.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "NodeDown")
    });
    assert_eq!(alert["labels"]["instance"], "b");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["job"], "node");
    assert!(alert["labels"].get("__name__").is_none());
    assert_eq!(alert["annotations"]["summary"], "b of node is down");
    assert_eq!(alert["annotations"]["value"], "0");
    assert_eq!(alert["status"]["state"], "active");

    // The recording rule's series: its first evaluation within one interval of the POST, and
    // every sample equal to the expression evaluated directly at its timestamp.
    let recorded = query(&m, "t1", "job:node_up:sum[1m]", None);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["metric"]["source"], "ruler");
    assert_eq!(recorded[0]["metric"]["job"], "node");
    let points: Vec<(f64, String)> = recorded[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
        .collect();
    assert!(points.len() >= 2, "{points:?}");
    let first_ms = (points[0].0 * 1000.0).round() as i64;
    assert!(
        first_ms <= posted + 2_000 + 500,
        "first evaluation at {first_ms}, POST at {posted}: more than one 2 s interval"
    );
    for (t, v) in &points {
        let direct = query(
            &m,
            "t1",
            "sum by (job) (node_up)",
            Some((t * 1000.0).round() as i64),
        );
        assert_eq!(direct.len(), 1);
        assert_eq!(direct[0]["value"][1].as_str().unwrap(), v, "at {t}");
    }

    // ALERTS and ALERTS_FOR_STATE.
    let alerts = query(&m, "t1", "ALERTS", None);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["metric"]["alertstate"], "firing");
    assert_eq!(alerts[0]["metric"]["instance"], "b");
    let for_state = query(&m, "t1", "ALERTS_FOR_STATE", None);
    assert_eq!(for_state.len(), 1);
    let active_at: f64 = for_state[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(active_at >= (posted / 1000 - 1) as f64 && active_at <= (now_ms() / 1000) as f64);
    assert!(
        query(&m, "t2", "ALERTS", None).is_empty(),
        "tenants are apart"
    );

    // The state APIs, in Prometheus's shape.
    let (s, rules) = m.get(Some("t1"), "/prometheus/api/v1/rules", &[]);
    assert_eq!(s, 200);
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "nodes");
    assert_eq!(groups[0]["file"], "ns1");
    assert_eq!(groups[0]["interval"], 2.0);
    let r = groups[0]["rules"].as_array().unwrap();
    assert_eq!(r[0]["type"], "recording");
    assert_eq!(r[0]["health"], "ok");
    assert_eq!(r[1]["type"], "alerting");
    assert_eq!(r[1]["state"], "firing");
    assert_eq!(r[1]["duration"], 3.0);
    assert_eq!(r[1]["alerts"][0]["labels"]["instance"], "b");
    let (_, only_alerting) = m.get(Some("t1"), "/prometheus/api/v1/rules", &[("type", "alert")]);
    assert_eq!(
        only_alerting["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (s, a) = m.get(Some("t1"), "/prometheus/api/v1/alerts", &[]);
    assert_eq!(s, 200);
    let list = a["data"]["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "firing");
    assert_eq!(list[0]["annotations"]["summary"], "b of node is down");

    // An edited group keeps its alerts' state (Prometheus's CopyState): still firing, still
    // active since the same time, the new annotation in place.
    let active_at = list[0]["activeAt"].clone();
    let edited = GROUP.replace("is down", "is unreachable");
    assert_eq!(config_call(&m, "POST", Some("t1"), "/ns1", &edited).0, 202);
    let list = wait_for(
        "the edited group evaluated",
        Duration::from_secs(20),
        || {
            let (_, a) = m.get(Some("t1"), "/prometheus/api/v1/alerts", &[]);
            let list = a["data"]["alerts"].as_array().cloned().unwrap_or_default();
            (list.len() == 1 && list[0]["annotations"]["summary"] == "b of node is unreachable")
                .then_some(list)
        },
    );
    assert_eq!(list[0]["state"], "firing");
    assert_eq!(
        list[0]["activeAt"], active_at,
        "the alert's state was carried over"
    );

    // b comes back: the alert resolves at Alertmanager, and ALERTS is marked stale at once
    // (without the marker it would linger for the 5 m lookback).
    push_nodes(&m, "t1", 1.0, false);
    wait_for("ALERTS marked stale", Duration::from_secs(20), || {
        query(&m, "t1", "ALERTS", None).is_empty().then_some(())
    });
    wait_for(
        "NodeDown resolved at Alertmanager",
        Duration::from_secs(20),
        || {
            am.alerts()
                .iter()
                .all(|a| a["labels"]["alertname"] != "NodeDown" || a["status"]["state"] != "active")
                .then_some(())
        },
    );

    // Deleting the group marks its recording series stale.
    assert!(!query(&m, "t1", "job:node_up:sum", None).is_empty());
    let (s, _) = config_call(&m, "DELETE", Some("t1"), "/ns1/nodes", "");
    assert_eq!(s, 202);
    assert_eq!(
        config_call(&m, "DELETE", Some("t1"), "/ns1/nodes", "").0,
        404
    );
    wait_for(
        "recorded series marked stale",
        Duration::from_secs(20),
        || {
            query(&m, "t1", "job:node_up:sum", None)
                .is_empty()
                .then_some(())
        },
    );
    assert!(
        m.metrics()
            .contains("muninn_ruler_group_evaluations_total{tenant=\"t1\"}")
    );
}

/// A group whose rules name `n`: `vector(1)` recorded as `rule_marker{group="gN"}`.
fn marker_group(n: usize) -> String {
    format!(
        "name: g{n}\ninterval: 1s\nrules:\n  - record: rule_marker\n    expr: vector({n})\n    labels:\n      group: g{n}\n"
    )
}

fn owned(m: &Muninn) -> u64 {
    m.metrics()
        .lines()
        .find(|l| l.starts_with("muninn_ruler_groups_owned "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn rule_groups_are_sharded_over_rulers_and_move_when_one_leaves() {
    let c = Cluster::new();
    let _ing = c.ingester("ing-1", &["--ingester.ring.replication-factor=1"]);
    let r1 = c.start(
        "ruler",
        "ruler-1",
        &["--ingester.ring.replication-factor=1"],
    );
    let r2 = c.start(
        "ruler",
        "ruler-2",
        &["--ingester.ring.replication-factor=1"],
    );
    let q = c.start(
        "querier",
        "querier",
        &["--ingester.ring.replication-factor=1"],
    );
    let groups = 16;
    // Both rulers see each other before the groups arrive.
    wait_for("rulers ready", Duration::from_secs(30), || {
        [&r1, &r2]
            .iter()
            .all(|r| r.get(Some("t"), "/prometheus/api/v1/rules", &[]).0 == 200)
            .then_some(())
    });
    for n in 0..groups {
        let (s, body) = config_call(&r1, "POST", Some("t"), "/markers", &marker_group(n));
        assert_eq!(s, 202, "{body}");
    }
    // Each group evaluated by exactly one ruler, both rulers holding some.
    let (a, b) = wait_for(
        "groups spread over both rulers",
        Duration::from_secs(30),
        || {
            let (a, b) = (owned(&r1), owned(&r2));
            (a + b == groups as u64).then_some((a, b))
        },
    );
    assert!(a > 0 && b > 0, "ruler-1 owns {a}, ruler-2 owns {b}");
    // Either ruler answers for every group, once (it asks the other for its own).
    for r in [&r1, &r2] {
        let (_, rules) = r.get(Some("t"), "/prometheus/api/v1/rules", &[]);
        let names: Vec<&str> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), groups, "{names:?}");
        assert_eq!(unique.len(), groups);
    }
    // Every group's results arrive through the ring, from whichever ruler owns it.
    wait_for("every group recorded", Duration::from_secs(30), || {
        let v = query(&q, "t", "rule_marker", None);
        (v.len() == groups).then_some(())
    });
    // A ruler leaves: the other takes every group.
    drop(r2);
    wait_for(
        "the remaining ruler owns every group",
        Duration::from_secs(60),
        || (owned(&r1) == groups as u64).then_some(()),
    );
    let before = now_ms();
    wait_for(
        "every group evaluated after the move",
        Duration::from_secs(30),
        || {
            let v = query(&q, "t", "timestamp(rule_marker)", None);
            (v.len() == groups
                && v.iter().all(|s| {
                    s["value"][1].as_str().unwrap().parse::<f64>().unwrap() * 1000.0 > before as f64
                }))
            .then_some(())
        },
    );
}

#[test]
fn rule_limits_of_the_tenant_are_enforced_on_post() {
    let m = Muninn::all(&[
        "--limits.ruler-max-rule-groups-per-tenant=1",
        "--limits.ruler-max-rules-per-rule-group=1",
    ]);
    let (s, body) = config_call(&m, "POST", Some("t"), "/ns", GROUP);
    assert_eq!(s, 400, "two rules in a group over a limit of one");
    assert!(
        body.contains("per-user rules per rule group limit"),
        "{body}"
    );
    assert_eq!(
        config_call(&m, "POST", Some("t"), "/ns", &marker_group(1)).0,
        202
    );
    assert_eq!(
        config_call(&m, "POST", Some("t"), "/ns", &marker_group(1)).0,
        202,
        "replacing a group is not a new one"
    );
    let (s, body) = config_call(&m, "POST", Some("t"), "/ns", &marker_group(2));
    assert_eq!(s, 400, "a second group over a limit of one");
    assert!(body.contains("per-user rule groups limit"), "{body}");
    assert_eq!(
        config_call(&m, "POST", Some("other"), "/ns", &marker_group(2)).0,
        202,
        "limits are per tenant"
    );

    // Concurrent POSTs of new groups cannot pass the limit together: each counts the groups
    // the others stored (a limit of 3, 12 at once, for a tenant with none yet).
    let m = Muninn::all(&["--limits.ruler-max-rule-groups-per-tenant=3"]);
    let codes: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..12)
            .map(|n| {
                let m = &m;
                s.spawn(move || config_call(m, "POST", Some("race"), "/ns", &marker_group(n)).0)
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(
        codes.iter().filter(|&&c| c == 202).count(),
        3,
        "exactly the limit accepted: {codes:?}"
    );
    assert_eq!(codes.iter().filter(|&&c| c == 400).count(), 9, "{codes:?}");
    let (s, listed) = config_call(&m, "GET", Some("race"), "", "");
    assert_eq!(s, 200);
    assert_eq!(listed.matches("- name: g").count(), 3, "{listed}");
}

/// The pending and firing alerts of `tenant` as `/prometheus/api/v1/alerts` shows them.
fn alerts_of(m: &Muninn, tenant: &str) -> Vec<Value> {
    let (_, a) = m.get(Some(tenant), "/prometheus/api/v1/alerts", &[]);
    a["data"]["alerts"].as_array().cloned().unwrap_or_default()
}

#[test]
fn after_a_crash_the_ruler_restores_for_from_alerts_for_state() {
    let mut m = Muninn::all(&["--ruler.poll-interval=30s"]);
    push_nodes(&m, "t", 0.0, true);
    let group = "name: slow\ninterval: 1s\nrules:\n  - alert: NodeDown\n    expr: node_up == 0\n    for: 20s\n";
    assert_eq!(config_call(&m, "POST", Some("t"), "/ns", group).0, 202);
    let pending = wait_for("NodeDown pending", Duration::from_secs(20), || {
        alerts_of(&m, "t")
            .into_iter()
            .find(|a| a["state"] == "pending")
    });
    let active_at = pending["activeAt"].as_str().unwrap().to_string();
    // ALERTS_FOR_STATE is written at every evaluation; give it two.
    std::thread::sleep(Duration::from_secs(3));
    m.restart();
    // The group starts afresh after the crash: its first evaluation restores the activation
    // time (ALERTS_FOR_STATE keeps whole seconds), so `for` counts from before the crash.
    let restored = wait_for(
        "NodeDown after the restart",
        Duration::from_secs(20),
        || alerts_of(&m, "t").into_iter().next(),
    );
    let restored_at = restored["activeAt"].as_str().unwrap().to_string();
    assert_eq!(
        restored_at[..19],
        active_at[..19],
        "activeAt {restored_at} after the restart, {active_at} before"
    );
}

#[test]
fn a_group_limit_fails_a_rule_that_returns_more() {
    let m = Muninn::all(&[]);
    push_nodes(&m, "t", 0.0, true);
    let group = "name: limited\ninterval: 1s\nlimit: 1\nrules:\n  - record: node_up:copy\n    expr: node_up\n  - alert: AnyNode\n    expr: node_up >= 0\n";
    assert_eq!(config_call(&m, "POST", Some("t"), "/ns", group).0, 202);
    let rules = wait_for(
        "the limited group evaluated",
        Duration::from_secs(20),
        || {
            let (_, r) = m.get(Some("t"), "/prometheus/api/v1/rules", &[]);
            let rules = r["data"]["groups"][0]["rules"].as_array().cloned()?;
            (rules.len() == 2 && rules.iter().all(|r| r["health"] == "err")).then_some(rules)
        },
    );
    assert_eq!(rules[0]["lastError"], "exceeded limit of 1 with 2 series");
    assert_eq!(rules[1]["lastError"], "exceeded limit of 1 with 2 alerts");
    assert!(
        rules[1]["alerts"].as_array().unwrap().is_empty(),
        "the alerts are dropped"
    );
    assert!(
        query(&m, "t", "node_up:copy", None).is_empty(),
        "nothing recorded"
    );
    assert!(query(&m, "t", "ALERTS", None).is_empty());
}

/// A native histogram `rh_latency` sample: `k` observations spread over two buckets.
fn hist(instance: &str, t: i64, k: u64) -> muninn_proto::prometheus::TimeSeries {
    use muninn_proto::prometheus as pb;
    pb::TimeSeries {
        labels: [
            ("__name__", "rh_latency"),
            ("instance", instance),
            ("job", "api"),
        ]
        .iter()
        .map(|(n, v)| pb::Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect(),
        histograms: vec![pb::Histogram {
            count: Some(pb::histogram::Count::CountInt(3 * k)),
            sum: 1.5 * k as f64,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(pb::histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: vec![pb::BucketSpan {
                offset: 0,
                length: 2,
            }],
            // Deltas: k, then 2k.
            positive_deltas: vec![k as i64, k as i64],
            timestamp: t,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn recording_rules_record_native_histogram_results_as_histograms() {
    let m = Muninn::all(&[]);
    let now = now_ms();
    let req = muninn_proto::prometheus::WriteRequest {
        timeseries: ["a", "b"]
            .iter()
            .enumerate()
            .flat_map(|(i, inst)| {
                (0..12).map(move |s| {
                    hist(
                        inst,
                        now - (11 - s) * 5_000,
                        (i as u64 + 1) * (s + 1) as u64,
                    )
                })
            })
            .collect(),
        ..Default::default()
    };
    let (s, body) = m.push("t", &req);
    assert_eq!(s, 200, "{body}");
    let group = "name: hist\ninterval: 1s\nrules:\n  - record: job:rh_latency:sum\n    expr: sum by (job) (rh_latency)\n";
    assert_eq!(config_call(&m, "POST", Some("t"), "/ns", group).0, 202);
    // The recorded samples, with their timestamps: each must equal the expression evaluated
    // directly at that time, a histogram (no float, and no evaluation error).
    let recorded = wait_for("two recorded histograms", Duration::from_secs(15), || {
        let (_, v) = m.get(
            Some("t"),
            "/api/v1/query",
            &[("query", "job:rh_latency:sum[1m]")],
        );
        let r = v["data"]["result"].as_array()?.first()?.clone();
        (r["histograms"].as_array()?.len() >= 2).then_some(r)
    });
    assert_eq!(recorded["metric"]["job"], "api");
    assert!(recorded.get("values").is_none(), "no floats: {recorded}");
    for h in recorded["histograms"].as_array().unwrap() {
        let t = (h[0].as_f64().unwrap() * 1000.0).round() as i64;
        let direct = query(&m, "t", "sum by (job) (rh_latency)", Some(t));
        assert_eq!(direct.len(), 1);
        assert_eq!(direct[0]["histogram"][1], h[1], "at {t}");
        // 3 + 6 observations per step of the newest samples: a real sum, not one series.
        assert_eq!(h[1]["count"], "108", "{h}");
    }
    let (_, rules) = m.get(Some("t"), "/prometheus/api/v1/rules", &[]);
    let rule = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["health"], "ok", "{rule}");
    // Deleting the group marks the recorded histogram series stale.
    assert_eq!(config_call(&m, "DELETE", Some("t"), "/ns/hist", "").0, 202);
    wait_for("the recorded series stale", Duration::from_secs(10), || {
        query(&m, "t", "job:rh_latency:sum", None)
            .is_empty()
            .then_some(())
    });
}

/// (tenant, body) of each request a test Alertmanager took.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// An Alertmanager that takes every tenant's alerts at once except `slow`'s, whose requests
/// it holds unanswered (an Alertmanager slow for one tenant): a fault injector beside the
/// real Alertmanager of the other tests. Returns its URL and the (tenant, body) it took.
fn alertmanager_slow_for(slow: &'static str) -> (String, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let got = got2.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let (mut tenant, mut len) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "x-scope-orgid" => tenant = v.trim().to_string(),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                if tenant == slow {
                    std::thread::sleep(Duration::from_secs(120));
                    return;
                }
                got.lock()
                    .unwrap()
                    .push((tenant, String::from_utf8_lossy(&body).into_owned()));
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    (url, got)
}

#[test]
fn a_tenant_whose_alerts_back_up_delays_no_other_tenants_alerts() {
    let (am, got) = alertmanager_slow_for("noisy");
    let am_flag = format!("--ruler.alertmanager-url={am}");
    let m = Muninn::all(&[
        &am_flag,
        "--ruler.notification-queue-capacity=1",
        "--ruler.notification-timeout=60s",
    ]);
    // Three groups of `noisy` fire at once: one batch hangs at the Alertmanager, one waits in
    // the queue, the third finds it full and is dropped.
    for g in 0..3 {
        let group = format!(
            "name: storm{g}\ninterval: 1s\nrules:\n  - alert: Storm{g}\n    expr: vector(1)\n"
        );
        assert_eq!(config_call(&m, "POST", Some("noisy"), "/ns", &group).0, 202);
    }
    wait_for("a noisy batch dropped", Duration::from_secs(15), || {
        m.metrics()
            .lines()
            .any(|l| {
                l.starts_with("muninn_ruler_notifications_total{outcome=\"dropped\"}")
                    && !l.ends_with(" 0")
            })
            .then_some(())
    });
    // Now the quiet tenant's alert: it must not wait behind, or be dropped with, noisy's.
    let group = "name: quiet\ninterval: 1s\nrules:\n  - alert: QuietOne\n    expr: vector(1)\n";
    assert_eq!(config_call(&m, "POST", Some("quiet"), "/ns", group).0, 202);
    wait_for(
        "quiet's alert at the Alertmanager",
        Duration::from_secs(10),
        || {
            got.lock()
                .unwrap()
                .iter()
                .any(|(t, body)| t == "quiet" && body.contains("QuietOne"))
                .then_some(())
        },
    );
    assert!(
        got.lock().unwrap().iter().all(|(t, _)| t == "quiet"),
        "noisy's requests are all held"
    );
}

#[test]
fn templates_query_the_rules_tenant() {
    let m = Muninn::all(&[]);
    push_nodes(&m, "t", 0.0, true);
    // Another tenant's node_up must not reach t's templates.
    let (s, _) = m.push(
        "other",
        &write_request(vec![series(
            &[("__name__", "node_up"), ("instance", "c"), ("job", "node")],
            &[(now_ms(), 1.0)],
        )]),
    );
    assert_eq!(s, 200);
    let group = r#"name: templated
interval: 1s
rules:
  - alert: NodeDown
    expr: node_up == 0
    annotations:
      up: '{{ with query "sum(node_up)" }}{{ . | first | value }}{{ end }} of {{ with query "count(node_up)" }}{{ . | first | value }}{{ end }} up'
      mine: '{{ with printf "node_up{instance=''%s''}" $labels.instance | query }}{{ . | first | label "instance" }}{{ end }}'
      all: '{{ range query "node_up" | sortByLabel "instance" }}{{ .Labels.instance }}={{ .Value }} {{ end }}'
      bad: '{{ query "sum(" }}'
"#;
    let (s, body) = config_call(&m, "POST", Some("t"), "/ns", group);
    assert_eq!(s, 202, "{body}");
    let alert = wait_for(
        "NodeDown with its annotations",
        Duration::from_secs(15),
        || alerts_of(&m, "t").into_iter().next(),
    );
    let a = &alert["annotations"];
    assert_eq!(a["up"], "1 of 2 up", "{alert}");
    assert_eq!(a["mine"], "b", "{alert}");
    assert_eq!(a["all"], "a=1 b=0 ", "{alert}");
    let bad = a["bad"].as_str().unwrap();
    assert!(
        bad.starts_with("<error expanding template:") && bad.contains("error parsing query"),
        "{alert}"
    );
}
