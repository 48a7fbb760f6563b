//! Blocks end to end: push, flush (`POST /ingester/flush`), then drop the ingester and its data
//! dir: a fresh `muninn all` on the same bucket, and a `muninn querier` with no ingesters at
//! all, answer every query as before. Any Parquet reader (pyarrow) can open the block.

use std::time::Duration;

use crate::harness::{Muninn, agent, now_ms, series, write_request};

const T: &str = "blocks";

fn answers(m: &Muninn, end: i64) -> Vec<serde_json::Value> {
    let t = format!("{}", end as f64 / 1000.0);
    let start = format!("{}", (end - 3 * 3_600_000) as f64 / 1000.0);
    let qs: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/api/v1/query",
            vec![("query", "blk_requests_total"), ("time", &t)],
        ),
        (
            "/api/v1/query",
            vec![
                ("query", "sum by (job) (rate(blk_requests_total[5m]))"),
                ("time", &t),
            ],
        ),
        (
            "/api/v1/query",
            vec![("query", "blk_requests_total{job=\"a\"}[3h]"), ("time", &t)],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "max(blk_temp)"),
                ("start", &start),
                ("end", &t),
                ("step", "600"),
            ],
        ),
        (
            "/api/v1/series",
            vec![("match[]", "blk_temp"), ("start", &start), ("end", &t)],
        ),
        ("/api/v1/labels", vec![("start", &start), ("end", &t)]),
        (
            "/api/v1/label/job/values",
            vec![("start", &start), ("end", &t)],
        ),
    ];
    qs.iter()
        .map(|(p, params)| {
            let (code, v) = m.get(Some(T), p, params);
            assert_eq!(code, 200, "{p} {params:?}: {v}");
            v
        })
        .collect()
}

#[test]
fn flushed_blocks_answer_like_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let mut m = Muninn::start_in(
        "all",
        &tmp.path().join("data1"),
        &[&storage, "--ingester.flush-on-shutdown=false"],
    );
    // Three hours of data: the head spans two block ranges.
    let end = now_ms() / 1000 * 1000 - 1000;
    let start = end - 3 * 3_600_000;
    for k in 0..360i64 {
        let t = start + k * 30_000 + 7;
        let mut batch = vec![];
        for (job, inst) in [("a", "0"), ("a", "1"), ("b", "0")] {
            batch.push(series(
                &[
                    ("__name__", "blk_requests_total"),
                    ("instance", inst),
                    ("job", job),
                ],
                &[(t, (k * 3) as f64)],
            ));
        }
        batch.push(series(
            &[("__name__", "blk_temp"), ("room", "x")],
            &[(t, 20.0 + (k % 7) as f64 * 0.5)],
        ));
        assert_eq!(m.push(T, &write_request(batch)).0, 200);
    }
    let before = answers(&m, end);
    assert!(!before[0]["data"]["result"].as_array().unwrap().is_empty());

    let mut resp = agent()
        .post(&format!("{}/ingester/flush?all=true", m.http))
        .send_empty()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    assert!(
        body.starts_with("flushed 2 blocks") || body.starts_with("flushed 3 blocks"),
        "{body}"
    );
    let tenant_dir = bucket.join(T);
    assert!(tenant_dir.join("bucket-index.json").exists());
    let blocks: Vec<_> = std::fs::read_dir(&tenant_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(blocks.len() >= 2);
    for b in &blocks {
        assert!(b.path().join("meta.json").exists() && b.path().join("block.parquet").exists());
    }
    assert!(
        m.metrics()
            .contains("muninn_ingester_blocks_uploaded_total")
    );

    // Head and blocks together count each sample once.
    assert_eq!(answers(&m, end), before);

    // Lose the ingester and its WAL: the bucket alone answers.
    m.kill9();
    std::fs::remove_dir_all(tmp.path().join("data1")).unwrap();
    let fresh = Muninn::start_in("all", &tmp.path().join("data2"), &[&storage]);
    assert_eq!(answers(&fresh, end), before);
    let q = Muninn::start_in("querier", &tmp.path().join("q"), &[&storage]);
    assert_eq!(answers(&q, end), before);

    // Any Parquet reader opens a block: one row per series, labels as columns.
    let block = blocks
        .iter()
        .map(|b| b.path().join("block.parquet"))
        .next()
        .unwrap();
    let script = format!(
        "import pyarrow.parquet as pq\nt = pq.read_table({:?})\nprint(t.num_rows)\nprint(sorted(set(t.column('s_lbl___name__').to_pylist())))\nprint(sorted(c for c in t.column_names if c.startswith('s_lbl_')))",
        block.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyarrow (pip install pyarrow; .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "4", "one row per series: {text}");
    assert_eq!(lines[1], "['blk_requests_total', 'blk_temp']");
    assert_eq!(
        lines[2],
        "['s_lbl___name__', 's_lbl_instance', 's_lbl_job', 's_lbl_room']"
    );
    let _ = Duration::from_secs(0);
}

#[test]
fn blocks_on_a_real_s3_server() {
    let s3 = crate::harness::Seaweed::start("muninn-blocks");
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--storage.backend=s3".to_string(),
        format!("--storage.s3.endpoint={}", s3.endpoint),
        format!("--storage.s3.bucket={}", s3.bucket),
        "--storage.s3.allow-http=true".to_string(),
        "--ingester.flush-on-shutdown=false".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("AWS_ACCESS_KEY_ID", crate::harness::S3_KEY),
        ("AWS_SECRET_ACCESS_KEY", crate::harness::S3_SECRET),
    ];
    let mut m = Muninn::start_in_env("all", &tmp.path().join("d1"), &args, &env);
    let end = now_ms() / 1000 * 1000 - 1000;
    for k in 0..240i64 {
        let t = end - 2 * 3_600_000 + k * 30_000 + 7;
        let batch = vec![
            series(
                &[
                    ("__name__", "blk_requests_total"),
                    ("instance", "0"),
                    ("job", "a"),
                ],
                &[(t, k as f64)],
            ),
            series(
                &[("__name__", "blk_temp"), ("room", "x")],
                &[(t, 20.0 + (k % 5) as f64)],
            ),
        ];
        assert_eq!(m.push(T, &write_request(batch)).0, 200);
    }
    let before = answers(&m, end);
    let mut resp = agent()
        .post(&format!("{}/ingester/flush?all=true", m.http))
        .send_empty()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    assert!(!body.starts_with("flushed 0"), "{body}");
    let metrics = m.metrics();
    assert!(
        metrics.contains("muninn_bucket_requests_total{operation=\"put\"}"),
        "uploads counted: {}",
        metrics
            .lines()
            .filter(|l| l.contains("bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    m.kill9();
    std::fs::remove_dir_all(tmp.path().join("d1")).unwrap();

    let fresh = Muninn::start_in_env("all", &tmp.path().join("d2"), &args, &env);
    assert_eq!(answers(&fresh, end), before, "the bucket alone answers");
    // Wrong credentials are refused by the server (SigV4 is enforced), not silently ignored.
    let bad = [
        ("AWS_ACCESS_KEY_ID", "nope"),
        ("AWS_SECRET_ACCESS_KEY", "nope"),
    ];
    let q = Muninn::start_in_env("querier", &tmp.path().join("q"), &args, &bad);
    let t = format!("{}", end as f64 / 1000.0);
    let (code, v) = q.get(
        Some(T),
        "/api/v1/query",
        &[("query", "blk_temp"), ("time", &t)],
    );
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "unavailable");
}

#[test]
fn head_is_cut_automatically_and_the_wal_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = format!(
        "--storage.filesystem.dir={}",
        tmp.path().join("bucket").display()
    );
    let args = [
        storage.as_str(),
        "--ingester.block-range=10m",
        "--ingester.cut-interval=1s",
        "--ingester.retain-after-ship=0s",
        "--ingester.flush-on-shutdown=false",
    ];
    let mut m = Muninn::start_in("all", &tmp.path().join("data"), &args);
    let end = now_ms() / 1000 * 1000 - 1000;
    let start = end - 45 * 60_000;
    for k in 0..270i64 {
        let t = start + k * 10_000 + 3;
        let batch = vec![
            series(
                &[
                    ("__name__", "blk_requests_total"),
                    ("instance", "0"),
                    ("job", "a"),
                ],
                &[(t, k as f64)],
            ),
            series(
                &[("__name__", "blk_temp"), ("room", "x")],
                &[(t, (k % 9) as f64)],
            ),
        ];
        assert_eq!(m.push(T, &write_request(batch)).0, 200);
    }
    let before = answers(&m, end);
    crate::harness::wait_for(
        "two blocks cut by the ingester itself",
        Duration::from_secs(30),
        || {
            let text = m.metrics();
            let n = text
                .lines()
                .find(|l| l.starts_with("muninn_ingester_blocks_uploaded_total "))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0);
            (n >= 2.0 && m.log_text().contains("dropped shipped data from the head")).then_some(())
        },
    );
    // The head refuses what is older than its newest sample minus half the block range, and
    // answers are unchanged.
    let old = write_request(vec![series(
        &[("__name__", "blk_temp"), ("room", "x")],
        &[(start + 1, 1.0)],
    )]);
    let (code, msg) = m.push(T, &old);
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("sample_too_old"), "{msg}");
    assert_eq!(answers(&m, end), before);
    // The WAL was replaced by a checkpoint: after a crash, head + blocks still answer the same.
    m.restart();
    assert_eq!(answers(&m, end), before);
}
