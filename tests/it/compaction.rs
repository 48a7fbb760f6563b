//! The compactor on a real bucket: two ingesters write the same series (as replicas do) and
//! flush overlapping blocks; `muninn compactor --once` merges them into one block per range
//! holding each sample once, marks the sources, and every query answers as before.

use crate::harness::{Muninn, compactor_once, live_blocks, now_ms, series, write_request};

const T: &str = "compact";

fn answers(m: &Muninn, end: i64) -> Vec<serde_json::Value> {
    let t = format!("{}", end as f64 / 1000.0);
    let start = format!("{}", (end - 3 * 3_600_000) as f64 / 1000.0);
    let qs: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/api/v1/query", vec![("query", "c_total"), ("time", &t)]),
        (
            "/api/v1/query",
            vec![("query", "c_total[3h]"), ("time", &t)],
        ),
        (
            "/api/v1/query",
            vec![("query", "sum(rate(c_total[10m]))"), ("time", &t)],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "count_over_time(c_total[30m])"),
                ("start", &start),
                ("end", &t),
                ("step", "900"),
            ],
        ),
        (
            "/api/v1/series",
            vec![("match[]", "c_total"), ("start", &start), ("end", &t)],
        ),
    ];
    qs.iter()
        .map(|(p, params)| {
            let (code, v) = m.get(Some(T), p, params);
            assert_eq!(code, 200, "{p}: {v}");
            v
        })
        .collect()
}

#[test]
fn replicas_are_deduplicated_and_answers_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let a = Muninn::start_in("ingester", &tmp.path().join("a"), &[&storage]);
    let b = Muninn::start_in("ingester", &tmp.path().join("b"), &[&storage]);
    let end = now_ms() / 1000 * 1000 - 1000;
    let start = end - 3 * 3_600_000;
    let mut samples = 0;
    for k in 0..360i64 {
        let t = start + k * 30_000 + 11;
        let batch: Vec<_> = (0..5)
            .map(|i| {
                series(
                    &[("__name__", "c_total"), ("i", &i.to_string())],
                    &[(t, (k * (i + 1)) as f64)],
                )
            })
            .collect();
        samples += batch.len() as u64;
        let req = write_request(batch);
        assert_eq!(a.push(T, &req).0, 200);
        assert_eq!(b.push(T, &req).0, 200);
    }
    for m in [&a, &b] {
        assert_eq!(m.flush_all(), 200);
    }
    let before_blocks = live_blocks(&bucket, T);
    let ranges: std::collections::BTreeSet<i64> = before_blocks
        .iter()
        .map(|b| b["minTime"].as_i64().unwrap())
        .collect();
    assert!(ranges.len() >= 2);
    assert_eq!(
        before_blocks.len(),
        2 * ranges.len(),
        "two replicas of every block range"
    );
    let q = Muninn::start_in("querier", &tmp.path().join("q"), &[&storage]);
    let before = answers(&q, end);

    let out = compactor_once(&[
        &storage,
        &format!("--data-dir={}", tmp.path().join("c").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_blocks = live_blocks(&bucket, T);
    assert_eq!(
        after_blocks.len(),
        ranges.len(),
        "one block per range: {after_blocks:?}"
    );
    let total: u64 = after_blocks
        .iter()
        .map(|b| b["stats"]["numSamples"].as_u64().unwrap())
        .sum();
    assert_eq!(total, samples, "each sample stored once");
    for blk in &after_blocks {
        assert_eq!(blk["compaction"]["level"], 2);
        assert_eq!(blk["compaction"]["sources"].as_array().unwrap().len(), 2);
    }
    // Sources are marked, still present for queriers holding an old index, but not used.
    for old in &before_blocks {
        let dir = bucket.join(T).join(old["ulid"].as_str().unwrap());
        assert!(dir.join("deletion-mark.json").exists());
        assert!(
            dir.join("meta.json").exists(),
            "deleted only after the deletion delay"
        );
    }
    assert_eq!(answers(&q, end), before);

    // With the delay passed, the sources go; answers stay the same. A second pass is a no-op.
    let out = compactor_once(&[
        &storage,
        "--compactor.deletion-delay=0",
        &format!("--data-dir={}", tmp.path().join("c").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for old in &before_blocks {
        assert!(
            !bucket
                .join(T)
                .join(old["ulid"].as_str().unwrap())
                .join("meta.json")
                .exists()
        );
    }
    assert_eq!(live_blocks(&bucket, T).len(), ranges.len());
    assert_eq!(answers(&q, end), before);
}

#[test]
fn retention_expires_only_that_tenants_old_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let storage = format!("--storage.filesystem.dir={}", bucket.display());
    let m = Muninn::start_in("ingester", &tmp.path().join("a"), &[&storage]);
    // Each batch must lie inside one 2 h block, or a tenant gets 3 blocks, not 2: the old
    // batch runs 99 s on from `end − 10 h` (the same offset in its block as `end`), the new
    // one the 100 s up to `end`. So `end` keeps more than 100 s from both block edges.
    let now = now_ms() / 1000 * 1000 - 1000;
    let offset = now.rem_euclid(7_200_000);
    let end = if offset < 101_000 {
        now - offset - 200_000
    } else if offset > 7_000_000 {
        now - offset + 7_000_000
    } else {
        now
    };
    for tenant in ["short", "long"] {
        // Ten hours ago, then now.
        for base in [end - 10 * 3_600_000, end - 100_000] {
            let samples: Vec<(i64, f64)> = (0..100i64).map(|k| (base + k * 1000, 1.0)).collect();
            let req = write_request(vec![series(&[("__name__", "r")], &samples)]);
            assert_eq!(m.push(tenant, &req).0, 200);
        }
    }
    assert_eq!(m.flush_all(), 200);
    let count = |tenant: &str| {
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bucket.join(tenant).join("bucket-index.json")).unwrap(),
        )
        .unwrap();
        let marked: Vec<String> = index["deletionMarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        index["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| !marked.contains(&b["ulid"].as_str().unwrap().to_owned()))
            .count()
    };
    assert_eq!((count("short"), count("long")), (2, 2));
    let out = compactor_once(&[
        &storage,
        "--compactor.retention-overrides=short=7200",
        &format!("--data-dir={}", tmp.path().join("c").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count("short"),
        1,
        "the ten-hour-old block of `short` expired"
    );
    assert_eq!(count("long"), 2, "other tenants keep theirs");
}

/// Two ingesters write the same data and flush: overlapping replica blocks in `bucket`.
fn replica_blocks(tmp: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> i64 {
    let a = Muninn::start_in_env("ingester", &tmp.join("a"), args, env);
    let b = Muninn::start_in_env("ingester", &tmp.join("b"), args, env);
    let end = now_ms() / 1000 * 1000 - 1000;
    let start = end - 3 * 3_600_000;
    for k in 0..180i64 {
        let t = start + k * 60_000 + 11;
        let batch: Vec<_> = (0..3)
            .map(|i| {
                series(
                    &[("__name__", "c_total"), ("i", &i.to_string())],
                    &[(t, (k * (i + 1)) as f64)],
                )
            })
            .collect();
        let req = write_request(batch);
        assert_eq!(a.push(T, &req).0, 200);
        assert_eq!(b.push(T, &req).0, 200);
    }
    for m in [&a, &b] {
        assert_eq!(m.flush_all(), 200);
    }
    end
}

#[test]
fn a_compactor_killed_at_any_step_loses_and_duplicates_nothing() {
    for point in ["after-upload", "mid-mark", "after-mark", "mid-delete"] {
        let tmp = tempfile::tempdir().unwrap();
        let bucket = tmp.path().join("bucket");
        let storage = format!("--storage.filesystem.dir={}", bucket.display());
        let end = replica_blocks(tmp.path(), &[&storage], &[]);
        let ranges: std::collections::BTreeSet<i64> = live_blocks(&bucket, T)
            .iter()
            .map(|b| b["minTime"].as_i64().unwrap())
            .collect();
        let q = Muninn::start_in("querier", &tmp.path().join("q"), &[&storage]);
        let before = answers(&q, end);
        let data_dir = format!("--data-dir={}", tmp.path().join("c").display());
        let args = [
            storage.as_str(),
            "--compactor.deletion-delay=0",
            data_dir.as_str(),
        ];
        let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_muninn"))
            .args(["compactor", "--once"])
            .args(args)
            .env("MUNINN_COMPACTOR_CRASH_AT", point)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&crashed.stderr);
        assert!(
            !crashed.status.success(),
            "{point}: the pass was killed: {stderr}"
        );
        assert!(
            stderr.contains(&format!("crash point {point}")),
            "{point}: {stderr}"
        );
        assert_eq!(answers(&q, end), before, "{point}: after the crash");
        let out = compactor_once(&args);
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(answers(&q, end), before, "{point}: after the repair pass");
        assert_eq!(
            live_blocks(&bucket, T).len(),
            ranges.len(),
            "{point}: one block per range"
        );
    }
}

#[test]
fn compaction_on_a_real_s3_server() {
    let s3 = crate::harness::Seaweed::start("muninn-compact");
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--storage.backend=s3".to_string(),
        format!("--storage.s3.endpoint={}", s3.endpoint),
        format!("--storage.s3.bucket={}", s3.bucket),
        "--storage.s3.allow-http=true".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("AWS_ACCESS_KEY_ID", crate::harness::S3_KEY),
        ("AWS_SECRET_ACCESS_KEY", crate::harness::S3_SECRET),
    ];
    let end = replica_blocks(tmp.path(), &args, &env);
    let q = Muninn::start_in_env("querier", &tmp.path().join("q"), &args, &env);
    let before = answers(&q, end);
    let data_dir = format!("--data-dir={}", tmp.path().join("c").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muninn"))
        .args([
            "compactor",
            "--once",
            "--compactor.deletion-delay=0",
            &data_dir,
        ])
        .args(&args)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.matches("compacted").count() >= 2, "{log}");
    assert_eq!(answers(&q, end), before);
}
