//! The querier's local block cache: a repeated query over blocks reads no block data from
//! object storage, and a restarted querier uses the files its previous run cached.

use crate::harness::{Muninn, now_ms};
use crate::promql_differential::{generate_every, query};

const TENANT: &str = "cached";

/// Object-store requests of `operation` the process made so far.
fn bucket_requests(m: &Muninn, operation: &str) -> f64 {
    let label = format!("operation=\"{operation}\"");
    m.metrics()
        .lines()
        .filter(|l| l.starts_with("muninn_bucket_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Block data reads (byte ranges of data files).
fn bucket_reads(m: &Muninn) -> f64 {
    bucket_requests(m, "get_range")
}

/// Pushes 200 five-minute steps of the differential data from 20 h ago into a fresh `all`,
/// flushes it into blocks, and returns it (its bucket under `data/bucket`) with `t0`.
fn all_with_blocks(data: &std::path::Path) -> (Muninn, i64) {
    let all = Muninn::start_in("all", data, &[]);
    let t0 = (now_ms() - 20 * 3_600_000) / 60_000 * 60_000;
    for req in generate_every(t0, 200, 300_000) {
        assert_eq!(all.push(TENANT, &req).0, 200);
    }
    assert_eq!(all.flush_all(), 200);
    (all, t0)
}

#[test]
fn a_repeated_query_over_blocks_reads_no_block_data_from_object_storage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_all, t0) = all_with_blocks(&data);
    // A querier over the bucket alone: every answer comes from blocks.
    let bucket = format!("--storage.filesystem.dir={}", data.join("bucket").display());
    let mut q = Muninn::start_in("querier", &dir.path().join("q"), &[&bucket]);
    let params = [
        ("query", "sum by (job) (rate(diff_requests_total[30m])) + on(job) group_left max by (job) (diff_memory_bytes)".to_string()),
        ("start", format!("{}", (t0 + 3_600_000) / 1000)),
        ("end", format!("{}", (t0 + 16 * 3_600_000) / 1000)),
        ("step", "300".to_string()),
    ];
    let before = bucket_reads(&q);
    let first = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
    assert_eq!(first["status"], "success", "{first}");
    assert!(!first["data"]["result"].as_array().unwrap().is_empty());
    let cold = bucket_reads(&q) - before;
    assert!(cold > 0.0, "the first query reads the blocks");

    let before = bucket_reads(&q);
    let second = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
    assert_eq!(second, first);
    assert_eq!(bucket_reads(&q) - before, 0.0, "no block data read again");
    let hits: f64 = q
        .metrics()
        .lines()
        .filter(|l| l.starts_with("muninn_block_cache_hits_total "))
        .filter_map(|l| l.rsplit(" ").next()?.parse::<f64>().ok())
        .sum();
    assert!(hits >= cold, "{hits} hits");

    // A restarted querier finds its cache directory as it left it.
    q.restart();
    let before = bucket_reads(&q);
    let third = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
    assert_eq!(third, first);
    assert_eq!(
        bucket_reads(&q) - before,
        0.0,
        "the cache survives a restart"
    );
}

#[test]
fn the_bucket_index_is_read_once_per_update_interval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_all, t0) = all_with_blocks(&data);
    let bucket = format!("--storage.filesystem.dir={}", data.join("bucket").display());
    let every_query = Muninn::start_in(
        "querier",
        &dir.path().join("q0"),
        &[&bucket, "--blocks-storage.bucket-index.update-interval=0s"],
    );
    let cached = Muninn::start_in("querier", &dir.path().join("q1"), &[&bucket]);
    let params = [
        ("query", "count(diff_memory_bytes)".to_string()),
        ("start", format!("{}", (t0 + 3_600_000) / 1000)),
        ("end", format!("{}", (t0 + 16 * 3_600_000) / 1000)),
        ("step", "600".to_string()),
    ];
    let mut answers = vec![];
    for (q, name) in [(&every_query, "0s"), (&cached, "1m (default)")] {
        let first = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
        assert_eq!(first["status"], "success", "{first}");
        assert!(!first["data"]["result"].as_array().unwrap().is_empty());
        let before = bucket_requests(q, "get");
        for _ in 0..3 {
            let again = query(&q.http, "/api/v1/query_range", &params, Some(TENANT));
            assert_eq!(again, first);
        }
        answers.push((name, bucket_requests(q, "get") - before, first));
    }
    assert!(
        answers[0].1 >= 3.0,
        "with interval 0s every query reads the index: {} GETs",
        answers[0].1
    );
    assert_eq!(
        answers[1].1, 0.0,
        "within the update interval the cached index is used"
    );
    assert_eq!(answers[0].2, answers[1].2);
}

#[test]
fn a_querier_reads_the_index_again_when_an_ingester_leaves() {
    use crate::cluster::{Cluster, stored, wait_active};
    let c = Cluster::new();
    let rf = "--ingester.ring.replication-factor=1";
    let mut ing = c.ingester("ing-1", &[rf]);
    // An index cached for an hour: only the ring change can make the querier read it again.
    let q = c.start(
        "querier",
        "q",
        &[rf, "--blocks-storage.bucket-index.update-interval=1h"],
    );
    wait_active(&q, &["ing-1"]);
    let t0 = crate::cluster::stream_start();
    for k in 0..30 {
        assert_eq!(ing.push("t", &crate::cluster::numbered(t0, k, 4)).0, 200);
    }
    let end = t0 + 30_000;
    let before = stored(&q, "t", end);
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(before.values().all(|ts| ts.len() == 30), "{before:?}");
    // The ingester leaves: it flushes its head into a block and goes from the ring.
    let status = ing.sigterm_and_wait(std::time::Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    crate::harness::wait_for(
        "the ring to lose ing-1",
        std::time::Duration::from_secs(30),
        || crate::cluster::states(&q).is_empty().then_some(()),
    );
    // No wait: the first query that no longer sees ing-1 reads the index again.
    let after = stored(&q, "t", end);
    assert_eq!(after, before, "the flushed data is answered from its block");
}
