//! The querier's local block cache: a repeated query over blocks reads no block data from
//! object storage, and a restarted querier uses the files its previous run cached.

use crate::harness::{Muninn, agent, now_ms};
use crate::promql_differential::{generate_every, query};

const TENANT: &str = "cached";

fn bucket_reads(m: &Muninn) -> f64 {
    m.metrics()
        .lines()
        .filter(|l| {
            l.starts_with("muninn_bucket_requests_total{") && l.contains("operation=\"get_range\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_repeated_query_over_blocks_reads_no_block_data_from_object_storage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let all = Muninn::start_in("all", &data, &[]);
    let t0 = (now_ms() - 20 * 3_600_000) / 60_000 * 60_000;
    for req in generate_every(t0, 200, 300_000) {
        assert_eq!(all.push(TENANT, &req).0, 200);
    }
    let code = agent()
        .post(&format!("{}/ingester/flush?all=true", all.http))
        .send("")
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 200);
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
