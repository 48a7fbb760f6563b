//! Series churn (issue 13): rounds of short-lived series against a running Muninn. Each round
//! creates `series` new series (the corpus's label shapes, `instance` rewritten per round and
//! copy, one sample each), flushes them to blocks (`POST /ingester/flush?all=true`), waits
//! until the head has dropped and garbage-collected them (start Muninn with
//! `--ingester.retain-after-ship=0s` and a short `--ingester.cut-interval`), then reads the
//! process's RSS and the head's own estimate. Without freeing label strings and reusing
//! series slots, every round would add to both.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use muninn_proto::prometheus::{Sample, TimeSeries};

use crate::{agent, corpus, post, proc_stats, rewrite_instance, snappy_request};

/// The tenant's value of a gauge on `/metrics`, if listed.
fn gauge(text: &str, name: &str, tenant: &str) -> Option<f64> {
    let prefix = format!("{name}{{tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

pub fn run(
    bodies: &[Vec<u8>],
    base: &str,
    pid: u32,
    series: usize,
    rounds: usize,
    concurrency: usize,
    tenant: &str,
) -> anyhow::Result<()> {
    let reqs = corpus::decode_all(bodies)?;
    let shapes = corpus::label_shapes(&reqs);
    let a = agent();
    let push_url = format!("{base}/api/v1/push");
    let rss0 = proc_stats::rss_bytes(pid)?;
    eprintln!(
        "churn: {rounds} rounds of {series} series ({} corpus shapes); RSS before: {:.1} MB",
        shapes.len(),
        rss0 as f64 / 1e6
    );
    println!("| round | RSS after push | RSS after drop | head estimate after drop |");
    println!("|---|---|---|---|");
    let mut first: Option<u64> = None;
    let mut last = 0u64;
    for round in 0..rounds {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let batch = 2000;
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..concurrency {
                s.spawn(|| {
                    let a = agent();
                    loop {
                        let lo = next.fetch_add(batch, Ordering::Relaxed);
                        if lo >= series {
                            return;
                        }
                        let hi = (lo + batch).min(series);
                        let timeseries = (lo..hi)
                            .map(|k| {
                                let mut labels = shapes[k % shapes.len()].clone();
                                rewrite_instance(
                                    &mut labels,
                                    round * series / shapes.len() + 1 + k / shapes.len(),
                                );
                                TimeSeries {
                                    labels,
                                    samples: vec![Sample {
                                        value: k as f64,
                                        timestamp: now,
                                    }],
                                    ..Default::default()
                                }
                            })
                            .collect();
                        let body = snappy_request(timeseries);
                        match post(&a, &push_url, tenant, &body) {
                            Ok(code) if code < 300 => {}
                            other => eprintln!("push: {other:?}"),
                        }
                    }
                });
            }
        });
        let after_push = proc_stats::rss_bytes(pid)?;
        let code = a
            .post(&format!("{base}/ingester/flush?all=true"))
            .send_empty()?
            .status()
            .as_u16();
        anyhow::ensure!(code < 300, "flush answered {code}");
        // Wait for the drop: the tenant's in-memory series fall to zero.
        let start = Instant::now();
        let text = loop {
            let text = a
                .get(&format!("{base}/metrics"))
                .call()?
                .body_mut()
                .read_to_string()?;
            if gauge(&text, "muninn_ingester_memory_series", tenant) == Some(0.0) {
                break text;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "round {round}: series still in the head after 120 s (is --ingester.retain-after-ship=0s?)"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        // The head estimate is set on the next cut-interval tick.
        std::thread::sleep(Duration::from_secs(2));
        let after = proc_stats::rss_bytes(pid)?;
        let text2 = a
            .get(&format!("{base}/metrics"))
            .call()?
            .body_mut()
            .read_to_string()
            .unwrap_or(text);
        let heap = gauge(&text2, "muninn_ingester_head_heap_bytes", tenant).unwrap_or(f64::NAN);
        first.get_or_insert(after);
        last = after;
        println!(
            "| {} | {:.1} MB | {:.1} MB | {:.2} MB |",
            round + 1,
            after_push as f64 / 1e6,
            after as f64 / 1e6,
            heap / 1e6
        );
        eprintln!("progress: round {}/{rounds} done", round + 1);
    }
    if let Some(f) = first {
        println!(
            "churn: RSS after the last round's drop is {:.2}x the first round's ({:.1} MB vs {:.1} MB)",
            last as f64 / f as f64,
            last as f64 / 1e6,
            f as f64 / 1e6
        );
    }
    Ok(())
}
