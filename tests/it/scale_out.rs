//! Scale-out: ingesters joined by gossip, series replicated over the ring (RF 3), ingesters
//! lost, added and removed while a writer runs, zone awareness, and HA-pair deduplication.
//! Real processes on loopback, one shared filesystem bucket.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::cluster::{
    Cluster, assert_exactly_once, memory_series, numbered, owners, ring, states, stored,
    stream_start, wait_active,
};
use crate::harness::{push_to, series, wait_for, write_request};

const SERIES: usize = 20;

/// Pushes `numbered(k)` through `via` (round robin) for `ks`; records acked and refused.
fn write_stream(
    via: &[&str],
    t0: i64,
    ks: std::ops::Range<i64>,
    acked: &mut BTreeSet<i64>,
    refused: &mut BTreeSet<i64>,
) {
    for k in ks {
        let http = via[k as usize % via.len()];
        let (status, body) = push_to(http, "t", &numbered(t0, k, SERIES));
        if status == 200 {
            acked.insert(k);
        } else {
            eprintln!("push {k} via {http}: {status} {body}");
            refused.insert(k);
        }
    }
}

#[test]
fn replicated_writes_survive_a_killed_ingester_and_lose_quorum_beyond() {
    let c = Cluster::new();
    let i1 = c.ingester("ing-1", &[]);
    let i2 = c.ingester("ing-2", &[]);
    let mut i3 = c.ingester("ing-3", &[]);
    let mut i4 = c.ingester("ing-4", &[]);
    let q = c.start("querier", "q", &[]);
    let all = ["ing-1", "ing-2", "ing-3", "ing-4"];
    for m in [&i1, &i2, &i3, &i4, &q] {
        wait_active(m, &all);
    }
    assert_eq!(ring(&q)["effective_replication_factor"], 3);

    let t0 = stream_start();
    let (mut acked, mut refused) = (BTreeSet::new(), BTreeSet::new());
    let via = [i1.http.as_str(), i2.http.as_str()];
    write_stream(&via, t0, 0..40, &mut acked, &mut refused);
    assert_eq!(memory_series(&[&i1, &i2, &i3, &i4], "t"), 3 * SERIES as i64);
    // SIGKILL a third ingester mid-stream: the writer does not pause.
    let writer_t0 = t0;
    let killer = std::thread::spawn({
        let pid = i3.pid().unwrap();
        move || {
            std::thread::sleep(Duration::from_millis(150));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    write_stream(&via, writer_t0, 40..120, &mut acked, &mut refused);
    killer.join().unwrap();
    i3.kill9(); // reap it
    assert!(
        refused.len() <= 2,
        "at most a couple of pushes refused, got {refused:?}"
    );
    // The kill landed mid-stream: writes to ing-3 failed and were outvoted.
    let failures = format!("{}{}", i1.metrics(), i2.metrics());
    assert!(
        failures.contains("muninn_distributor_owner_push_failures_total{instance=\"ing-3\"}"),
        "no write to ing-3 failed: was it killed mid-stream?"
    );
    let end = t0 + 120 * 1000;
    // With the ingester down, the querier still counts every acknowledged sample once.
    assert_exactly_once(&stored(&q, "t", end), SERIES, t0, &acked, &refused);
    // It restarts with its tokens (ACTIVE at once) and WAL; replicas fill its gap.
    i3.start_again();
    wait_active(&q, &all);
    write_stream(&via, t0, 120..140, &mut acked, &mut refused);
    let end = t0 + 140 * 1000;
    assert_exactly_once(&stored(&q, "t", end), SERIES, t0, &acked, &refused);
    assert_eq!(
        memory_series(&[&i1, &i2, &i3, &i4], "t"),
        3 * SERIES as i64,
        "each series on exactly 3 ingesters"
    );

    // Two of four down: a series whose replica set holds both lost its quorum.
    let sets = owners(&q, "t", SERIES);
    i3.kill9();
    i4.kill9();
    let dead = BTreeSet::from(["ing-3".to_string(), "ing-4".to_string()]);
    let mut lost = 0;
    for (i, set) in sets.iter().enumerate() {
        let s = i.to_string();
        let req = write_request(vec![series(
            &[("__name__", "seq"), ("s", &s)],
            &[(t0 + 150_000, 150.0)],
        )]);
        let (status, body) = push_to(&i1.http, "t", &req);
        if set.intersection(&dead).count() >= 2 {
            lost += 1;
            assert!(
                status >= 500,
                "series {i} on {set:?} lost quorum: {status} {body}"
            );
        } else {
            assert_eq!(status, 200, "series {i} on {set:?} has quorum: {body}");
        }
    }
    assert!(
        lost > 0,
        "some series live on both dead ingesters: {sets:?}"
    );
    // And a query can no longer be complete: 503 naming the missing ingesters.
    let t = format!("{}", end as f64 / 1000.0);
    let (status, v) = q.get(
        Some("t"),
        "/api/v1/query",
        &[("query", "seq"), ("time", &t)],
    );
    assert_eq!(status, 503, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("ing-3") && msg.contains("ing-4"), "{msg}");
}

#[test]
fn dead_ingester_turns_unhealthy_then_is_forgotten() {
    let c = Cluster::new();
    let fast = [
        "--ingester.ring.heartbeat-timeout=2s",
        "--ingester.ring.auto-forget-unhealthy-period=5s",
    ];
    let i1 = c.ingester("ing-1", &fast);
    let mut i2 = c.ingester("ing-2", &fast);
    wait_active(&i1, &["ing-1", "ing-2"]);
    let html = crate::harness::agent()
        .get(&format!("{}/ingester/ring", i1.http))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(html.contains("<table>") && html.contains("ing-2"), "{html}");
    i2.kill9();
    wait_for("ing-2 UNHEALTHY", Duration::from_secs(10), || {
        (states(&i1).get("ing-2").map(String::as_str) == Some("UNHEALTHY")).then_some(())
    });
    wait_for("ing-2 forgotten", Duration::from_secs(15), || {
        (!states(&i1).contains_key("ing-2")).then_some(())
    });
    assert!(
        i1.metrics()
            .contains("muninn_ring_members{state=\"ACTIVE\"} 1")
    );
}

#[test]
fn scale_up_and_down_while_writing_loses_nothing() {
    let c = Cluster::new();
    let i1 = c.ingester("ing-1", &[]);
    let i2 = c.ingester("ing-2", &[]);
    let i3 = c.ingester("ing-3", &[]);
    let d = c.start("distributor", "d", &[]);
    let q = c.start("querier", "q", &[]);
    for m in [&i1, &d, &q] {
        wait_active(m, &["ing-1", "ing-2", "ing-3"]);
    }
    let t0 = stream_start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writer pushes through the stateless distributor and one ingester that stays.
    let writer = std::thread::spawn({
        let via = [d.http.clone(), i1.http.clone()];
        let stop = stop.clone();
        move || {
            let (mut acked, mut refused) = (BTreeSet::new(), BTreeSet::new());
            let mut k = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let via: Vec<&str> = via.iter().map(String::as_str).collect();
                write_stream(&via, t0, k..k + 1, &mut acked, &mut refused);
                k += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (acked, refused, k)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    // Scale up 3 → 4.
    let mut i4 = c.ingester("ing-4", &[]);
    wait_active(&q, &["ing-1", "ing-2", "ing-3", "ing-4"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        memory_series(&[&i4], "t") > 0,
        "the new ingester owns some series"
    );
    // Scale down 4 → 3: SIGTERM leaves (LEAVING, flush, LEFT) with no manual step.
    let status = i4.sigterm_and_wait(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
    wait_active(&q, &["ing-1", "ing-2", "ing-3"]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, refused, n) = writer.join().unwrap();
    assert!(n > 50, "the writer ran through the changes ({n} pushes)");
    assert!(refused.is_empty(), "no write failed: {refused:?}");
    let end = t0 + n * 1000;
    assert_exactly_once(&stored(&q, "t", end), SERIES, t0, &acked, &refused);

    // Flush the remaining heads (RF copies → overlapping blocks), compact, and count again.
    for m in [&i1, &i2, &i3] {
        assert_eq!(m.flush_all(), 200);
    }
    let bucket = format!("--storage.filesystem.dir={}", c.bucket().display());
    let out = crate::harness::compactor_once(&[
        &bucket,
        &format!("--data-dir={}", c.dir.path().join("comp").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&stored(&q, "t", end), SERIES, t0, &acked, &refused);
}

#[test]
fn killing_a_whole_zone_loses_nothing_and_fails_no_write() {
    let c = Cluster::new();
    let zoned = |zone: &'static str| {
        [
            format!("--ingester.ring.zone={zone}"),
            "--ingester.ring.zone-awareness-enabled=true".to_string(),
        ]
    };
    let mut ms = vec![];
    for (name, zone) in [
        ("a-1", "zone-a"),
        ("a-2", "zone-a"),
        ("b-1", "zone-b"),
        ("b-2", "zone-b"),
        ("c-1", "zone-c"),
        ("c-2", "zone-c"),
    ] {
        let z = zoned(zone);
        ms.push(c.ingester(name, &[&z[0], &z[1]]));
    }
    let q = c.start(
        "querier",
        "q",
        &["--ingester.ring.zone-awareness-enabled=true"],
    );
    let ids = ["a-1", "a-2", "b-1", "b-2", "c-1", "c-2"];
    wait_active(&q, &ids);
    wait_active(&ms[2], &ids);
    wait_active(&ms[4], &ids);
    for set in owners(&q, "t", SERIES) {
        let zones: BTreeSet<char> = set.iter().map(|id| id.chars().next().unwrap()).collect();
        assert_eq!(zones.len(), 3, "one replica per zone: {set:?}");
    }
    let t0 = stream_start();
    let (mut acked, mut refused) = (BTreeSet::new(), BTreeSet::new());
    let (h2, h4) = (ms[2].http.clone(), ms[4].http.clone());
    let via = [h2.as_str(), h4.as_str()];
    write_stream(&via, t0, 0..30, &mut acked, &mut refused);
    let started = Instant::now();
    ms[0].kill9();
    ms[1].kill9();
    write_stream(&via, t0, 30..80, &mut acked, &mut refused);
    assert!(refused.is_empty(), "no write failed: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_exactly_once(&stored(&q, "t", t0 + 80_000), SERIES, t0, &acked, &refused);
}

#[test]
fn ha_pair_stores_one_replica_and_fails_over_after_silence() {
    let c = Cluster::new();
    let ha = [
        "--distributor.ha-tracker.enable=true",
        "--distributor.ha-tracker.failover-timeout=10s",
    ];
    let i1 = c.ingester("ing-1", &ha);
    let i2 = c.ingester("ing-2", &ha);
    let i3 = c.ingester("ing-3", &ha);
    let q = c.start("querier", "q", &[]);
    for m in [&i1, &i2, &i3, &q] {
        wait_active(m, &["ing-1", "ing-2", "ing-3"]);
    }
    let t0 = stream_start();
    let push = |via: &str, replica: &str, k: i64| {
        let v = if replica == "r1" { 1000.0 } else { 2000.0 } + k as f64;
        let req = write_request(vec![series(
            &[
                ("__name__", "ha_up"),
                ("__replica__", replica),
                ("cluster", "prom-a"),
            ],
            &[(t0 + k * 1000, v)],
        )]);
        push_to(via, "t", &req)
    };
    // r1 alone, then r1 and r2 through different ingesters.
    for k in 0..5 {
        assert_eq!(push(&i1.http, "r1", k).0, 200);
    }
    for k in 5..15 {
        assert_eq!(push(&i1.http, "r1", k).0, 200);
        let (status, body) = push(&i2.http, "r2", k);
        assert_eq!(status, 202, "r2 is not elected: {body}");
        assert!(body.contains("r1"), "{body}");
    }
    // r1 goes silent; r2 keeps pushing and is refused until the failover timeout passed.
    let silent = Instant::now();
    let mut k = 15;
    let mut first_stored = None;
    while silent.elapsed() < Duration::from_secs(20) {
        let (status, body) = push(&i3.http, "r2", k);
        match status {
            202 => assert!(
                silent.elapsed() < Duration::from_secs(13),
                "still refused {:?} after r1 went silent",
                silent.elapsed()
            ),
            200 => {
                assert!(
                    silent.elapsed() >= Duration::from_secs(10),
                    "failover only after the timeout ({:?})",
                    silent.elapsed()
                );
                first_stored.get_or_insert(k);
                if k > first_stored.unwrap() + 3 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {body}"),
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let first = first_stored.expect("r2 stored after the failover");
    let t = format!("{}", (t0 + k * 1000) as f64 / 1000.0);
    let (status, v) = q.get(
        Some("t"),
        "/api/v1/query",
        &[("query", "ha_up[1h]"), ("time", &t)],
    );
    assert_eq!(status, 200, "{v}");
    let res = crate::harness::result(&v);
    assert_eq!(res.len(), 1, "one series, without the replica label: {v}");
    assert!(res[0]["metric"].get("__replica__").is_none());
    assert_eq!(res[0]["metric"]["cluster"], "prom-a");
    let pts = crate::harness::points(&res[0]);
    let ks: BTreeSet<i64> = pts.iter().map(|(ts, _)| (ts - t0) / 1000).collect();
    let want: BTreeSet<i64> = (0..15).chain(first..k).collect();
    assert!(
        want.is_subset(&ks),
        "r1's samples and r2's after the failover all stored: {ks:?}"
    );
    for (ts, val) in pts {
        let k = (ts - t0) / 1000;
        if k < 15 {
            assert_eq!(
                val,
                1000.0 + k as f64,
                "only r1's samples before the failover"
            );
        } else {
            assert!(k >= first, "r2's refused samples are not stored (k={k})");
            assert_eq!(val, 2000.0 + k as f64);
        }
    }
}

#[test]
fn bad_input_through_the_ring_is_refused_once_and_the_rest_kept() {
    let c = Cluster::new();
    let i1 = c.ingester("ing-1", &[]);
    let i2 = c.ingester("ing-2", &[]);
    wait_active(&i1, &["ing-1", "ing-2"]);
    wait_active(&i2, &["ing-1", "ing-2"]);
    let t = crate::cluster::stream_start();
    let req = write_request(vec![
        series(&[("__name__", "ok_metric"), ("job", "a")], &[(t, 1.0)]),
        series(&[("__name__", "bad metric"), ("job", "a")], &[(t, 1.0)]),
    ]);
    let (status, body) = push_to(&i1.http, "t", &req);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("metric_name_invalid"), "{body}");
    // The valid series is on both owners (effective RF 2), the invalid one nowhere.
    assert_eq!(memory_series(&[&i1, &i2], "t"), 2);
    // Logged once, by the router; the owners report without logging.
    std::thread::sleep(Duration::from_millis(200));
    let count = |m: &crate::harness::Muninn| m.log_text().matches("push rejected").count();
    assert_eq!((count(&i1), count(&i2)), (1, 0));
}

#[test]
fn a_querier_with_neither_ring_nor_ingesters_answers_from_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let q = crate::harness::Muninn::start_in("querier", &tmp.path().join("q"), &[]);
    let (status, v) = q.get(Some("t"), "/api/v1/query", &[("query", "up")]);
    assert_eq!(status, 200, "{v}");
    assert!(q.log_text().contains("answering from blocks alone"));
}
