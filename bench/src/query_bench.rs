//! Query benchmark: the same synthetic data (≥100k series × 2h at 15 s) loaded into Muninn
//! and into Prometheus, then several query shapes timed against both, with the peak RSS
//! growth of each receiver while the query runs. Prints ratios Muninn / Prometheus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use muninn_proto::prometheus::{Label, Sample, TimeSeries};

use crate::{agent, post, proc_stats, snappy_request};

/// A receiver under test.
pub struct Target {
    pub name: String,
    pub write_url: String,
    pub api_url: String,
    pub pid: u32,
}

fn labels(pairs: &[(&str, String)]) -> Vec<Label> {
    let mut v: Vec<Label> = pairs
        .iter()
        .map(|(n, v)| Label {
            name: (*n).into(),
            value: v.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Label sets of the benchmark: `series` counters plus a 10-bucket histogram per 10 of them.
fn shapes(series: usize) -> Vec<Vec<Label>> {
    let mut out = Vec::with_capacity(series + series / 10);
    for k in 0..series {
        out.push(labels(&[
            ("__name__", "bench_http_requests_total".into()),
            ("job", format!("j{}", k % 10)),
            ("instance", format!("i{}", (k / 10) % 500)),
            ("handler", format!("h{}", k / 5000)),
        ]));
    }
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    for k in 0..series / 100 {
        for le in les {
            out.push(labels(&[
                ("__name__", "bench_latency_seconds_bucket".into()),
                ("job", format!("j{}", k % 10)),
                ("instance", format!("i{}", k / 10)),
                ("le", le.into()),
            ]));
        }
    }
    out
}

fn value(k: usize, step: usize, shape: &[Label]) -> f64 {
    let x = (k as u64).wrapping_mul(2_654_435_761) ^ (step as u64).wrapping_mul(40_503);
    let noise = (x % 1000) as f64 / 1000.0;
    if shape.iter().any(|l| l.name == "le") {
        let le: f64 = shape
            .iter()
            .find(|l| l.name == "le")
            .and_then(|l| l.value.parse().ok())
            .unwrap_or(f64::INFINITY);
        // Cumulative buckets: monotonic in le and in time.
        (step as f64) * 10.0 * (1.0 - (-le.min(10.0) * 2.0).exp())
            + if le.is_infinite() { step as f64 } else { 0.0 }
    } else {
        (step as f64) * (1.0 + (k % 7) as f64) + noise
    }
}

/// Loads `steps` samples of every shape into every target, one time step after another.
pub fn load(
    targets: &[Target],
    series: usize,
    steps: usize,
    end_ms: i64,
    concurrency: usize,
) -> anyhow::Result<()> {
    let shapes = shapes(series);
    eprintln!(
        "loading {} series × {steps} samples into {} targets",
        shapes.len(),
        targets.len()
    );
    let batch = 5000;
    for step in 0..steps {
        let t = end_ms - ((steps - 1 - step) as i64) * 15_000;
        let bodies: Vec<Vec<u8>> = shapes
            .chunks(batch)
            .enumerate()
            .map(|(ci, chunk)| {
                let timeseries = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, l)| {
                        let k = ci * batch + j;
                        TimeSeries {
                            labels: l.clone(),
                            samples: vec![Sample {
                                value: value(k, step, l),
                                timestamp: t,
                            }],
                            ..Default::default()
                        }
                    })
                    .collect();
                snappy_request(timeseries)
            })
            .collect();
        for target in targets {
            let next = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..concurrency {
                    s.spawn(|| {
                        let a = agent();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                            let Some(b) = bodies.get(i) else { return };
                            match post(&a, &target.write_url, "bench", b) {
                                Ok(c) if c < 300 => {}
                                other => eprintln!("{}: push failed: {other:?}", target.name),
                            }
                        }
                    });
                }
            });
        }
        if step % 40 == 0 {
            eprintln!("progress: step {}/{steps}", step + 1);
        }
    }
    Ok(())
}

/// A query shape: name, API path, parameters.
pub type QueryShape = (&'static str, &'static str, Vec<(&'static str, String)>);

/// The query shapes.
pub fn queries(end_s: f64) -> Vec<QueryShape> {
    let t = format!("{end_s:.3}");
    let range = |q: &str| {
        vec![
            ("query", q.to_string()),
            ("start", format!("{:.3}", end_s - 3600.0)),
            ("end", t.clone()),
            ("step", "60".into()),
        ]
    };
    let inst = |q: &str| vec![("query", q.to_string()), ("time", t.clone())];
    vec![
        (
            "selector (10k series)",
            "/api/v1/query",
            inst("bench_http_requests_total{job=\"j1\"}"),
        ),
        (
            "rate over 100k series",
            "/api/v1/query",
            inst("rate(bench_http_requests_total[5m])"),
        ),
        (
            "sum by job of rate, 1h range",
            "/api/v1/query_range",
            range("sum by (job) (rate(bench_http_requests_total[5m]))"),
        ),
        (
            "histogram_quantile, 1h range",
            "/api/v1/query_range",
            range(
                "histogram_quantile(0.99, sum by (le, job) (rate(bench_latency_seconds_bucket[5m])))",
            ),
        ),
        (
            "subquery",
            "/api/v1/query",
            inst("max_over_time(rate(bench_http_requests_total{job=\"j2\"}[5m])[30m:1m])"),
        ),
        (
            "topk of rate",
            "/api/v1/query",
            inst("topk(10, rate(bench_http_requests_total[5m]))"),
        ),
    ]
}

/// One query's figures over its runs.
pub struct QueryFigures {
    /// Median latency, seconds.
    pub median_s: f64,
    /// Largest RSS growth of any run, bytes.
    pub peak_growth: u64,
    /// Median RSS growth of the runs, bytes.
    pub median_growth: u64,
}

/// Runs one query `runs` times. Each run's RSS growth is the process's peak RSS during the
/// run (the kernel's high-water mark, reset before the run) minus its RSS before; where the
/// mark cannot be reset, RSS sampled every 2 ms.
pub fn time_query(
    target: &Target,
    path: &str,
    params: &[(&str, String)],
    runs: usize,
) -> anyhow::Result<QueryFigures> {
    let a = agent();
    let url = format!("{}{path}", target.api_url);
    let mut times = vec![];
    let mut growths = vec![];
    for _ in 0..runs {
        let exact = proc_stats::reset_peak_rss(target.pid);
        let base = proc_stats::rss_bytes(target.pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(base));
        let sampler = (!exact).then(|| {
            let (stop, max, pid) = (stop.clone(), max.clone(), target.pid);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = proc_stats::rss_bytes(pid) {
                        max.fetch_max(r, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        let start = Instant::now();
        // Every run evaluates: the frontend's results cache is bypassed (Prometheus has none).
        let mut req = a
            .get(&url)
            .header("X-Scope-OrgID", "bench")
            .header("Cache-Control", "no-store");
        for (k, v) in params {
            req = req.query(*k, v);
        }
        let mut resp = req.call()?;
        let body = resp.body_mut().read_to_string()?;
        let el = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = sampler {
            let _ = s.join();
        }
        if exact {
            max.fetch_max(proc_stats::peak_rss_bytes(target.pid)?, Ordering::Relaxed);
        }
        anyhow::ensure!(
            resp.status().as_u16() == 200,
            "{}: {} {}",
            target.name,
            resp.status(),
            &body[..body.len().min(300)]
        );
        times.push(el);
        growths.push(max.load(Ordering::Relaxed).saturating_sub(base));
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    growths.sort_unstable();
    Ok(QueryFigures {
        median_s: times[times.len() / 2],
        peak_growth: growths.last().copied().unwrap_or(0),
        median_growth: growths[growths.len() / 2],
    })
}
