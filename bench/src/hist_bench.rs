//! Native-histogram ingest: a synthetic but realistic workload (request-latency histograms of
//! client_golang's default layout, schema 3, observations log-normally spread, a few to a few
//! dozen per scrape) pushed in scrape order to one or more receivers, with their CPU cost.
//!
//! There is no native-histogram corpus in `../shared/corpus/`: the workload is generated, and
//! reported as such.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use muninn_proto::prometheus::{BucketSpan, Histogram, Label, TimeSeries, WriteRequest, histogram};
use muninn_storage::histogram::exponential_bound;
use prost::Message;

use crate::proc_stats;

const SCHEMA: i32 = 3;
const ZERO_THRESHOLD: f64 = 2.938735877055719e-39;

/// A small deterministic generator (xorshift), so every run pushes the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The bucket of an observation at schema 3 (upper bound inclusive).
fn bucket(v: f64) -> i32 {
    let mut i = (v.log2() * 8.0).ceil() as i32;
    while exponential_bound(i - 1, SCHEMA) >= v {
        i -= 1;
    }
    while exponential_bound(i, SCHEMA) < v {
        i += 1;
    }
    i
}

/// One series' accumulated observations.
#[derive(Default, Clone)]
struct Acc {
    buckets: std::collections::BTreeMap<i32, u64>,
    count: u64,
    sum: f64,
}

impl Acc {
    fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        *self.buckets.entry(bucket(v)).or_default() += 1;
    }

    fn proto(&self, t: i64) -> Histogram {
        let mut spans: Vec<BucketSpan> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let (mut prev_idx, mut prev_count) = (None::<i32>, 0i64);
        for (&i, &c) in &self.buckets {
            match prev_idx {
                Some(p) if i == p + 1 => spans.last_mut().expect("a span").length += 1,
                Some(p) => spans.push(BucketSpan {
                    offset: i - p - 1,
                    length: 1,
                }),
                None => spans.push(BucketSpan {
                    offset: i,
                    length: 1,
                }),
            }
            deltas.push(c as i64 - prev_count);
            prev_count = c as i64;
            prev_idx = Some(i);
        }
        Histogram {
            count: Some(histogram::Count::CountInt(self.count)),
            sum: self.sum,
            schema: SCHEMA,
            zero_threshold: ZERO_THRESHOLD,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: spans,
            positive_deltas: deltas,
            timestamp: t,
            ..Default::default()
        }
    }
}

/// `series` series × `samples` scrapes at `step_ms`, ending a minute before now: one request
/// per scrape per group of `per_request` series.
pub fn workload(
    series: usize,
    samples: usize,
    step_ms: i64,
    per_request: usize,
) -> Vec<Vec<Vec<u8>>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let start = (now - 60_000 - samples as i64 * step_ms) / step_ms * step_ms;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accs = vec![Acc::default(); series];
    let groups = series.div_ceil(per_request);
    // Per group, its requests in time order.
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::with_capacity(samples); groups];
    for k in 0..samples {
        let t = start + k as i64 * step_ms;
        for (g, group) in out.iter_mut().enumerate() {
            let mut req = WriteRequest::default();
            let lo = g * per_request;
            let hi = ((g + 1) * per_request).min(series);
            for (s, acc) in accs.iter_mut().enumerate().take(hi).skip(lo) {
                let n = (rng.next() % 24) as usize;
                for _ in 0..n {
                    let v = (-3.0 + 1.2 * rng.normal()).exp();
                    acc.observe(v);
                }
                req.timeseries.push(TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "bench_request_duration_seconds".into(),
                        },
                        Label {
                            name: "instance".into(),
                            value: format!("host-{:04}", s / 10),
                        },
                        Label {
                            name: "route".into(),
                            value: format!("/api/r{}", s % 10),
                        },
                    ],
                    histograms: vec![acc.proto(t)],
                    ..Default::default()
                });
            }
            group.push(
                snap::raw::Encoder::new()
                    .compress_vec(&req.encode_to_vec())
                    .expect("snappy"),
            );
        }
    }
    out
}

/// Pushes the workload to `url` with `concurrency` workers (each owning whole groups, so each
/// series' histograms arrive in order); prints throughput and the receivers' CPU cost.
pub fn push(
    url: &str,
    pids: &[u32],
    series: usize,
    samples: usize,
    concurrency: usize,
    tenant: &str,
) -> anyhow::Result<()> {
    eprintln!("generating {series} series × {samples} histograms (synthetic, schema 3)...");
    let groups = workload(series, samples, 15_000, 100);
    let total = (series * samples) as u64;
    let reqs: usize = groups.iter().map(Vec::len).sum();
    let bytes: usize = groups.iter().flatten().map(Vec::len).sum();
    eprintln!("{reqs} requests, {:.1} MB snappy", bytes as f64 / 1e6);
    let cpu_of = |pids: &[u32]| -> anyhow::Result<f64> {
        pids.iter().map(|&p| proc_stats::cpu_seconds(p)).sum()
    };
    let cpu0 = cpu_of(pids)?;
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    std::thread::scope(|sc| {
        for w in 0..concurrency {
            let (done, errors, groups) = (done.clone(), errors.clone(), &groups);
            sc.spawn(move || {
                let a = crate::agent();
                let mine: Vec<&Vec<Vec<u8>>> = groups.iter().skip(w).step_by(concurrency).collect();
                for k in 0..samples {
                    for g in &mine {
                        match crate::post(&a, url, tenant, &g[k]) {
                            Ok(code) if (200..300).contains(&code) => {}
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        sc.spawn(|| {
            while done.load(Ordering::Relaxed) < reqs as u64 {
                std::thread::sleep(Duration::from_secs(2));
                eprintln!("progress: {}/{reqs} requests", done.load(Ordering::Relaxed));
            }
        });
    });
    let el = started.elapsed().as_secs_f64();
    let cpu = cpu_of(pids)? - cpu0;
    println!(
        "hist-push {url}: {total} histograms ({series} series) in {el:.2}s = {:.0} histograms/s wall; receiver CPU {cpu:.2}s = {:.3} CPU-s per million histograms = {:.0} histograms/s per core; {} non-2xx",
        total as f64 / el,
        cpu / (total as f64 / 1e6),
        total as f64 / cpu,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_bounds() {
        for v in [0.001, 0.05, 1.0, 1.0905077326652577, 3.7, 1000.0] {
            let i = bucket(v);
            assert!(
                exponential_bound(i - 1, SCHEMA) < v && v <= exponential_bound(i, SCHEMA),
                "{v}"
            );
        }
        let g = workload(3, 4, 15_000, 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].len(), 4);
    }
}
