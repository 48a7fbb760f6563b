//! Reliability of the write path against a real `muninn` process: time bounds that cannot
//! blackhole a tenant, cuts and flushes that lose no acknowledged write, shutdown that drains,
//! hostile bodies and timestamps, block ranges that do not divide the chunk range, a full
//! disk under the WAL, many tenants under a small fd limit, and per-tenant failure isolation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Muninn, agent, now_ms, series, wait_for, write_request};

const T: &str = "reliable";

/// A field of `/proc/<pid>/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn flush(m: &Muninn, tenant: Option<&str>) -> (u16, String) {
    let url = match tenant {
        Some(_) => format!("{}/ingester/flush", m.http),
        None => format!("{}/ingester/flush?all=true", m.http),
    };
    let mut req = agent().post(&url);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let mut resp = req.send_empty().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

/// Samples per value of label `k`.
type ByKey = BTreeMap<String, Vec<(i64, f64)>>;

/// Every sample of `metric` in the hour before `at_ms`, per value of label `k`.
fn stored(m: &Muninn, tenant: &str, metric: &str, at_ms: i64) -> ByKey {
    let t = format!("{:.3}", at_ms as f64 / 1000.0);
    let (code, v) = m.get(
        Some(tenant),
        "/api/v1/query",
        &[("query", &format!("{metric}[1h]")), ("time", &t)],
    );
    assert_eq!(code, 200, "{v}");
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let k = s["metric"]["k"].as_str().unwrap_or("").to_owned();
        let vals = crate::harness::points(s);
        out.insert(k, vals);
    }
    out
}

/// Pushes one sample per series (`k` = 0..series) at the current time, in a loop, until
/// `stop`; returns what was acknowledged (200) and every other status seen.
fn writer(
    m_http: String,
    tenant: &'static str,
    metric: &'static str,
    series_n: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(ByKey, Vec<String>)> {
    std::thread::spawn(move || {
        let mut acked = ByKey::new();
        let mut other = Vec::new();
        let mut last_t = 0;
        let mut n = 0u64;
        let a = agent();
        while !stop.load(Ordering::Relaxed) {
            let t = now_ms().max(last_t + 1);
            last_t = t;
            n += 1;
            let keys: Vec<String> = (0..series_n).map(|k| k.to_string()).collect();
            let req = write_request(
                keys.iter()
                    .map(|k| series(&[("__name__", metric), ("k", k)], &[(t, n as f64)]))
                    .collect(),
            );
            let resp = a
                .post(&format!("{m_http}/api/v1/push"))
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Scope-OrgID", tenant)
                .send(&crate::harness::encode(&req)[..]);
            match resp {
                Ok(r) if r.status() == 200 => {
                    for k in &keys {
                        acked.entry(k.clone()).or_default().push((t, n as f64));
                    }
                }
                Ok(mut r) => other.push(format!(
                    "{} {}",
                    r.status(),
                    r.body_mut().read_to_string().unwrap_or_default()
                )),
                Err(e) => other.push(format!("transport: {e}")),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (acked, other)
    })
}

#[test]
fn a_far_future_sample_does_not_blackhole_the_tenant() {
    let m = Muninn::all(&["--ingester.cut-interval=1s"]);
    let far = now_ms() + 10 * 86_400_000;
    let (code, msg) = m.push(
        T,
        &write_request(vec![series(&[("__name__", "ff")], &[(far, 1.0)])]),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("too_far_in_future"), "{msg}");
    let mut pushed = vec![];
    for i in 0..8 {
        let t = now_ms();
        let (code, msg) = m.push(
            T,
            &write_request(vec![series(&[("__name__", "ff")], &[(t, i as f64)])]),
        );
        assert_eq!(code, 200, "push {i} after the far-future sample: {msg}");
        pushed.push((t, i as f64));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let got = stored(&m, T, "ff", now_ms());
    assert_eq!(got.get(""), Some(&pushed));
}

#[test]
fn pushes_during_repeated_flushes_lose_nothing() {
    // Shipped data leaves the head at once (retain 0s) and the periodic cut runs every second,
    // so flushes, cuts, truncations and WAL checkpoints all race with the writer.
    let mut m = Muninn::all(&[
        "--ingester.cut-interval=1s",
        "--ingester.retain-after-ship=0s",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(m.http.clone(), T, "fl", 20, stop.clone());
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(700));
        let (code, body) = flush(&m, Some(T));
        assert_eq!(code, 200, "flush {i}: {body}");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (acked, other) = w.join().unwrap();
    assert!(other.is_empty(), "non-200 answers: {other:?}");
    assert!(acked["0"].len() > 100, "the writer got going");
    let end = now_ms() + 1000;
    let blocks = m.metrics();
    assert!(
        blocks.contains("muninn_ingester_blocks_uploaded_total"),
        "{blocks}"
    );
    assert_eq!(
        stored(&m, T, "fl", end),
        acked,
        "every acknowledged sample, once"
    );
    m.restart();
    assert_eq!(
        stored(&m, T, "fl", end),
        acked,
        "and after a crash and restart"
    );
}

#[test]
fn shutdown_drains_then_flushes_and_loses_nothing() {
    let mut m = Muninn::all(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(m.http.clone(), T, "sd", 10, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let status = m.sigterm_and_wait(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let (acked, other) = w.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    // While draining, pushes get 503; after the listener closes, connections are refused.
    for o in &other {
        assert!(o.starts_with("503") || o.starts_with("transport"), "{o}");
    }
    assert!(m.log_text().contains("flushed the head to indexed blocks"));
    m.start_again();
    assert_eq!(stored(&m, T, "sd", now_ms() + 1000), acked);
}

#[test]
fn snappy_bombs_are_refused_without_allocating() {
    let m = Muninn::all(&[]);
    let pid = m.pid().unwrap();
    // A snappy header declaring 100 MB, and one byte of data: 5 bytes in all.
    let mut bomb = Vec::new();
    let mut n: u64 = 100_000_000;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.push(0);
    assert_eq!(bomb.len(), 5);
    let deadline = Instant::now() + Duration::from_secs(8);
    let statuses = Arc::new(Mutex::new(BTreeSet::new()));
    let threads: Vec<_> = (0..30)
        .map(|_| {
            let (http, bomb, statuses) = (m.http.clone(), bomb.clone(), statuses.clone());
            std::thread::spawn(move || {
                let a = agent();
                while Instant::now() < deadline {
                    let r = a
                        .post(&format!("{http}/api/v1/push"))
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .header("X-Scope-OrgID", T)
                        .send(&bomb[..]);
                    statuses
                        .lock()
                        .unwrap()
                        .insert(r.map(|r| r.status().as_u16()).unwrap_or(0));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*statuses.lock().unwrap(), BTreeSet::from([400]));
    let hwm = status_kb(pid, "VmHWM:");
    println!("peak RSS after 30 clients x 8 s of 5-byte snappy bombs: {hwm} kB");
    assert!(hwm < 1_500_000, "peak RSS {hwm} kB");
    let t = now_ms();
    let ok = write_request(vec![series(&[("__name__", "after")], &[(t, 1.0)])]);
    assert_eq!(m.push(T, &ok).0, 200);
}

#[test]
fn an_int64_min_timestamp_is_refused_and_cuts_go_on() {
    let m = Muninn::all(&["--ingester.cut-interval=1s"]);
    let (code, msg) = m.push(
        T,
        &write_request(vec![series(
            &[("__name__", "tmin")],
            &[(i64::MIN + 1000, 1.0)],
        )]),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("timestamp_out_of_range"), "{msg}");
    let t = now_ms();
    let ok = write_request(vec![series(&[("__name__", "tmin")], &[(t, 2.0)])]);
    assert_eq!(m.push(T, &ok).0, 200);
    let (code, body) = flush(&m, Some(T));
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("flushed 1 blocks"), "{body}");
    assert_eq!(
        stored(&m, T, "tmin", t + 1000).get(""),
        Some(&vec![(t, 2.0)])
    );
}

/// The bucket index of `tenant` under `bucket`.
fn index(bucket: &std::path::Path, tenant: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bucket.join(tenant).join("bucket-index.json")).unwrap())
        .unwrap()
}

#[test]
fn a_one_hour_block_range_cuts_each_range_once_and_sigterm_exits() {
    block_range_cuts_each_range_once("1h", 3_600_000);
}

#[test]
fn a_block_range_that_does_not_divide_two_hours_cuts_each_range_once() {
    // 90m ranges straddle the head's 2h-aligned chunks: the cut splits (re-encodes) them.
    block_range_cuts_each_range_once("90m", 5_400_000);
}

fn block_range_cuts_each_range_once(flag: &str, range_ms: i64) {
    let tmp = tempfile::tempdir().unwrap();
    let block_range = format!("--ingester.block-range={flag}");
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let mut m = Muninn::start_in(
        "all",
        &tmp.path().join("data"),
        &[&storage, &block_range, "--ingester.cut-interval=1s"],
    );
    // Four ranges of one sample a minute for 10 series, in time order.
    let end = now_ms() / 1000 * 1000;
    let start = end - 4 * range_ms;
    let mut pushed = 0u64;
    let mut t = start;
    while t <= end {
        let req = write_request(
            (0..10)
                .map(|k| {
                    series(
                        &[("__name__", "hr"), ("k", &k.to_string())],
                        &[(t, (t / 60_000) as f64)],
                    )
                })
                .collect(),
        );
        assert_eq!(m.push(T, &req).0, 200);
        pushed += 10;
        t += 60_000;
    }
    let uploaded = |m: &Muninn| {
        m.metrics()
            .lines()
            .find(|l| l.starts_with("muninn_ingester_blocks_uploaded_total "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_for("the ingester's own cuts", Duration::from_secs(30), || {
        (uploaded(&m) >= 2.0).then_some(())
    });
    // The cut loop may still be shipping ranges; once it is done, the count stays put (a
    // range cut again and again, at every 1 s tick, would never let it settle).
    let mut last = uploaded(&m);
    let settled = wait_for("the block count to settle", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_secs(3));
        let now = uploaded(&m);
        let done = now == last;
        last = now;
        done.then_some(now)
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(uploaded(&m), settled, "no range is cut again and again");
    let status = m.sigterm_and_wait(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM exit: {status:?}"
    );
    let idx = index(&bucket, T);
    let blocks = idx["blocks"].as_array().unwrap();
    let ranges: Vec<(i64, i64)> = blocks
        .iter()
        .map(|b| {
            (
                b["minTime"].as_i64().unwrap(),
                b["maxTime"].as_i64().unwrap(),
            )
        })
        .collect();
    let distinct: BTreeSet<_> = ranges.iter().map(|r| r.0.div_euclid(range_ms)).collect();
    for (min, max) in &ranges {
        assert_eq!(
            min.div_euclid(range_ms),
            (max - 1).div_euclid(range_ms),
            "one range per block"
        );
    }
    assert_eq!(distinct.len(), ranges.len(), "each range once: {ranges:?}");
    let samples: u64 = blocks
        .iter()
        .map(|b| b["stats"]["numSamples"].as_u64().unwrap())
        .sum();
    assert_eq!(samples, pushed, "every sample in exactly one block");
}

#[test]
fn ten_thousand_tenants_under_a_1024_fd_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Muninn::start_wrapped(
        "all",
        &tmp.path().join("data"),
        &[],
        &["prlimit", "--nofile=1024:1024", "--"],
    );
    let pid = m.pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")),
        "{limits}"
    );
    let rss_before = status_kb(pid, "VmRSS:");
    let t = now_ms();
    const N: usize = 10_000;
    let http = m.http.clone();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let http = http.clone();
            std::thread::spawn(move || {
                let a = agent();
                for i in (w..N).step_by(4) {
                    let req = write_request(vec![series(&[("__name__", "one")], &[(t, i as f64)])]);
                    let mut r = a
                        .post(&format!("{http}/api/v1/push"))
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .header("X-Scope-OrgID", &format!("tenant-{i}"))
                        .send(&crate::harness::encode(&req)[..])
                        .unwrap();
                    let st = r.status().as_u16();
                    assert_eq!(
                        st,
                        200,
                        "tenant-{i}: {}",
                        r.body_mut().read_to_string().unwrap()
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let fds = open_fds(pid);
    let rss_after = status_kb(pid, "VmRSS:");
    println!(
        "{N} one-series tenants: {fds} open fds, RSS {rss_before} -> {rss_after} kB ({:.1} kB per tenant)",
        (rss_after.saturating_sub(rss_before)) as f64 / N as f64
    );
    assert!(fds < 200, "fds grow with tenants: {fds}");
    let per_tenant = (rss_after.saturating_sub(rss_before)) * 1024 / N as u64;
    assert!(
        per_tenant <= 10 * 1024,
        "an idle tenant costs {per_tenant} bytes of RSS"
    );
    let wal_files = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum()
    };
    let files = wal_files(&tmp.path().join("data"));
    m.restart();
    assert_eq!(
        wal_files(&tmp.path().join("data")),
        files,
        "a restart adds no files per tenant"
    );
    for i in [0, 1, N / 2, N - 1] {
        let got = stored(&m, &format!("tenant-{i}"), "one", t + 1000);
        assert_eq!(got.get(""), Some(&vec![(t, i as f64)]), "tenant-{i}");
    }
    let pid = m.pid().unwrap();
    assert!(open_fds(pid) < 200);
}

/// A tmpfs mounted for the life of the value.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_under_the_wal_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "4m");
    let storage = format!(
        "--storage.filesystem.dir={}",
        tmp.path().join("bucket").display()
    );
    let mut m = Muninn::start_in("all", &disk.0.join("data"), &[&storage]);
    // Fill the disk but for about 600 KB.
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![1u8; 3_400_000]).unwrap();
    let mut acked: Vec<(i64, f64)> = Vec::new();
    let mut failed = 0;
    let mut t = now_ms() - 60_000;
    for i in 0..20_000 {
        t += 1;
        // Big requests (a long label value per series) reach the end of the disk quickly.
        let pad = "x".repeat(1500);
        let req = write_request(vec![
            series(&[("__name__", "full"), ("k", "0")], &[(t, i as f64)]),
            series(
                &[("__name__", "pad"), ("k", &format!("{i}-{pad}"))],
                &[(t, 0.0)],
            ),
        ]);
        let (code, _) = m.push(T, &req);
        match code {
            200 => acked.push((t, i as f64)),
            500 => {
                failed += 1;
                if failed == 5 {
                    break;
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(failed > 0, "the disk never filled");
    assert!(!acked.is_empty());
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..20 {
        t += 1;
        let i = acked.len() as f64 + 100_000.0;
        let req = write_request(vec![series(&[("__name__", "full"), ("k", "0")], &[(t, i)])]);
        let (code, msg) = m.push(T, &req);
        assert_eq!(code, 200, "after space came back: {msg}");
        acked.push((t, i));
    }
    m.restart();
    let got = stored(&m, T, "full", t + 1000);
    assert_eq!(
        got.get("0"),
        Some(&acked),
        "every acknowledged sample after a crash"
    );
    drop(m);
}

#[test]
fn one_failing_tenant_does_not_stop_the_others_cuts() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    // Tenant `broken`'s prefix is a file, so its uploads fail; `fine`'s succeed.
    std::fs::write(bucket.join("broken"), b"not a directory").unwrap();
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let m = Muninn::start_in("all", &tmp.path().join("data"), &[&storage]);
    let t = now_ms();
    for tenant in ["broken", "fine"] {
        let req = write_request(vec![series(&[("__name__", "iso")], &[(t, 1.0)])]);
        assert_eq!(m.push(tenant, &req).0, 200);
    }
    let (code, body) = flush(&m, None);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("flush of tenant broken failed"), "{body}");
    assert!(!body.contains("flush of tenant fine"), "{body}");
    assert_eq!(
        index(&bucket, "fine")["blocks"].as_array().unwrap().len(),
        1
    );
    // Once the bucket is repaired, the next flush ships the failed tenant's data: its head
    // kept it.
    std::fs::remove_file(bucket.join("broken")).unwrap();
    let (code, body) = flush(&m, None);
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("flushed 1 blocks\nbroken "), "{body}");
    assert_eq!(
        stored(&m, "broken", "iso", t + 1000).get(""),
        Some(&vec![(t, 1.0)])
    );
}

#[test]
fn tenants_with_escaped_characters_are_compacted_and_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let tenant = "we*ird(t)'x";
    let m = Muninn::start_in("ingester", &tmp.path().join("a"), &[&storage]);
    let end = now_ms() / 1000 * 1000 - 1000;
    // Ten hours ago, then now: two blocks.
    for base in [end - 10 * 3_600_000, end - 100_000] {
        let samples: Vec<(i64, f64)> = (0..100i64).map(|k| (base + k * 1000, 1.0)).collect();
        let req = write_request(vec![series(&[("__name__", "r")], &samples)]);
        assert_eq!(m.push(tenant, &req).0, 200);
    }
    assert_eq!(flush(&m, Some(tenant)).0, 200);
    // Queriers see expired blocks go within their bucket-index update interval.
    let q = Muninn::start_in(
        "querier",
        &tmp.path().join("q"),
        &[&storage, "--blocks-storage.bucket-index.update-interval=1s"],
    );
    let count_at = |at: i64| {
        let (code, v) = q.get(
            Some(tenant),
            "/api/v1/query",
            &[
                ("query", "count_over_time(r[5m])"),
                ("time", &format!("{}", at as f64 / 1000.0)),
            ],
        );
        assert_eq!(code, 200, "{v}");
        v["data"]["result"].as_array().unwrap().len()
    };
    let old = end - 10 * 3_600_000 + 100_000;
    assert_eq!((count_at(old), count_at(end)), (1, 1));
    let out = crate::harness::compactor_once(&[
        &storage,
        &format!("--compactor.retention-overrides={tenant}=7200"),
        &format!("--data-dir={}", tmp.path().join("c").display()),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("expired"), "the tenant was compacted: {log}");
    wait_for(
        "the expired block to leave the querier's index",
        std::time::Duration::from_secs(10),
        || (count_at(old) == 0).then_some(()),
    );
    assert_eq!(
        (count_at(old), count_at(end)),
        (0, 1),
        "its ten-hour-old block expired, the recent one stays"
    );
}

#[test]
fn a_flush_naming_a_tenant_leaves_the_others_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let m = Muninn::start_in("all", &tmp.path().join("data"), &[&storage]);
    let t = now_ms();
    for tenant in ["flushed", "untouched"] {
        let req = write_request(vec![series(&[("__name__", "one")], &[(t, 1.0)])]);
        assert_eq!(m.push(tenant, &req).0, 200);
    }
    // No tenant and no ?all=true: refused.
    let mut resp = agent()
        .post(&format!("{}/ingester/flush", m.http))
        .send_empty()
        .unwrap();
    let (code, body) = (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = flush(&m, Some("flushed"));
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("flushed 1 blocks\nflushed "), "{body}");
    assert_eq!(
        index(&bucket, "flushed")["blocks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        !bucket.join("untouched").exists(),
        "the other tenant was not flushed"
    );
    // Flushing the same tenant again uploads nothing new (it is all shipped).
    let (code, body) = flush(&m, Some("flushed"));
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("flushed 0 blocks"), "{body}");
}
