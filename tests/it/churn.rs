//! Series churn (issue 13): rounds of short-lived series, each flushed to blocks and dropped
//! from the head. The head frees their label strings and reuses their slots, so after every
//! round it is no bigger than after the first; every round stays answerable (old rounds from
//! blocks, the last one from the head, in recycled slots, across a crash).

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const TENANT: &str = "churn";

/// The tenant's value of an ingester gauge on `/metrics`.
fn gauge(m: &Muninn, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{tenant=\"{TENANT}\"}} ");
    m.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .and_then(|v| v.trim().parse().ok())
}

fn push_round(m: &Muninn, round: i64, n: usize, t: i64) {
    let batch: Vec<_> = (0..n)
        .map(|i| {
            series(
                &[
                    ("__name__", "churn"),
                    ("job", "batch"),
                    ("pod", &format!("r{round}-{i}")),
                ],
                &[(t, i as f64)],
            )
        })
        .collect();
    assert_eq!(m.push(TENANT, &write_request(batch)).0, 200);
}

fn count_at(m: &Muninn, round: i64, t: i64) -> Value {
    let (code, v) = m.get(
        Some(TENANT),
        "/api/v1/query",
        &[
            ("query", &format!("count(churn{{pod=~\"r{round}-.*\"}})")),
            ("time", &format!("{}", t as f64 / 1000.0)),
        ],
    );
    assert_eq!(code, 200, "{v}");
    result(&v)[0]["value"][1].clone()
}

#[test]
fn churned_series_free_their_memory_and_stay_queryable() {
    let mut m = Muninn::all(&[
        "--ingester.retain-after-ship=0s",
        "--ingester.cut-interval=1s",
    ]);
    const N: usize = 3000;
    const ROUNDS: i64 = 10;
    // Rounds six minutes apart (more than the lookback), oldest first.
    let now = now_ms();
    let t = |round: i64| now - (ROUNDS + 1 - round) * 360_000;
    let mut first_heap = 0.0;
    for round in 0..ROUNDS {
        push_round(&m, round, N, t(round));
        assert_eq!(gauge(&m, "muninn_ingester_memory_series"), Some(N as f64));
        assert_eq!(m.flush_all(), 200);
        // Dropped and collected on the next tick (both gauges are set then).
        wait_for(
            "the round to leave the head",
            Duration::from_secs(30),
            || (gauge(&m, "muninn_ingester_memory_series") == Some(0.0)).then_some(()),
        );
        let heap = gauge(&m, "muninn_ingester_head_heap_bytes").unwrap();
        if round == 0 {
            first_heap = heap;
        }
        assert!(
            heap <= first_heap * 1.1,
            "round {round}: the empty head holds {heap} bytes, {first_heap} after round 0"
        );
    }
    // Every round answers from blocks.
    for round in [0, 4, ROUNDS - 1] {
        assert_eq!(
            count_at(&m, round, t(round)),
            N.to_string(),
            "round {round}"
        );
    }
    // The last round stays in the head (recycled slots) through a crash and WAL replay.
    push_round(&m, ROUNDS, N, t(ROUNDS));
    m.restart();
    wait_for("restart", Duration::from_secs(30), || {
        m.healthy().then_some(())
    });
    assert_eq!(gauge(&m, "muninn_ingester_memory_series"), Some(N as f64));
    assert_eq!(count_at(&m, ROUNDS, t(ROUNDS)), N.to_string());
    let (code, v) = m.get(
        Some(TENANT),
        "/api/v1/query",
        &[
            ("query", &format!("churn{{pod=\"r{ROUNDS}-1234\"}}")),
            ("time", &format!("{}", t(ROUNDS) as f64 / 1000.0)),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(result(&v).len(), 1, "{v}");
    assert_eq!(result(&v)[0]["value"][1], "1234");
    assert_eq!(count_at(&m, ROUNDS - 1, t(ROUNDS - 1)), N.to_string());
}
