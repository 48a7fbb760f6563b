//! Soak: the real corpus replayed in a loop at `speed` times its real rate, for `minutes` of
//! wall time, into a running Muninn and a reference Prometheus side by side. Sample times are
//! shifted so that each loop continues the previous one and the data reaches the present at the
//! end (it starts `(speed - 1) × minutes` in the past). Every 10 s it records Muninn's RSS and
//! the disk its WAL and its bucket take, and counts every non-2xx answer. At the
//! end it compares query answers of both (instant queries at several times and range queries).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use muninn_proto::prometheus::WriteRequest;
use prost::Message;

use crate::{agent, post, proc_stats};

/// What to soak.
pub struct Soak<'a> {
    pub muninn_url: &'a str,
    pub muninn_pid: u32,
    pub data_dir: &'a str,
    pub prometheus_url: &'a str,
    pub minutes: f64,
    pub speed: f64,
    pub tenant: &'a str,
    pub report: &'a str,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the soak; returns an error if answers differ or any push failed.
pub fn run(reqs: &[WriteRequest], s: &Soak<'_>) -> anyhow::Result<()> {
    let (cmin, cmax) = reqs
        .iter()
        .flat_map(|r| r.timeseries.iter().flat_map(|t| t.samples.iter()))
        .fold((i64::MAX, i64::MIN), |(a, b), x| {
            (a.min(x.timestamp), b.max(x.timestamp))
        });
    anyhow::ensure!(cmin <= cmax, "empty corpus");
    let span = cmax - cmin + 5_000;
    let wall = Duration::from_secs_f64(s.minutes * 60.0);
    let start = Instant::now();
    let w0 = now_ms();
    // Data time d(w) = d0 + speed × (w - w0), ending at the present.
    let d0 = w0 - ((s.speed - 1.0) * wall.as_millis() as f64) as i64;
    let data_time = |elapsed: Duration| d0 + (s.speed * elapsed.as_millis() as f64) as i64;
    let muninn_push = format!("{}/api/v1/push", s.muninn_url);
    let prom_write = format!("{}/api/v1/write", s.prometheus_url);
    let a = agent();
    let mut report = std::fs::File::create(s.report).context("report file")?;
    writeln!(
        report,
        "elapsed_s\tdata_time_ms\trss_bytes\tdisk_bytes\tsamples\tnon_2xx"
    )?;
    let (mut samples, mut failures) = (0u64, 0u64);
    let mut next_sample = Duration::ZERO;
    let mut last_t = i64::MIN;
    let mut first_error: Option<String> = None;
    'outer: for lap in 0.. {
        let shift = d0 - cmin + lap * span;
        for r in reqs {
            let mut r = r.clone();
            let mut t_max = i64::MIN;
            for ts in &mut r.timeseries {
                for x in &mut ts.samples {
                    x.timestamp += shift;
                    t_max = t_max.max(x.timestamp);
                }
            }
            // Wait until the data clock reaches this request.
            loop {
                let el = start.elapsed();
                if el >= wall {
                    break 'outer;
                }
                if el >= next_sample {
                    let rss = proc_stats::rss_bytes(s.muninn_pid).unwrap_or(0);
                    let dir = std::path::Path::new(s.data_dir);
                    let (wal, bucket) =
                        (dir_bytes(&dir.join("wal")), dir_bytes(&dir.join("bucket")));
                    writeln!(
                        report,
                        "{:.0}\t{}\t{rss}\t{wal}\t{bucket}\t{samples}\t{failures}",
                        el.as_secs_f64(),
                        data_time(el)
                    )?;
                    report.flush()?;
                    eprintln!(
                        "soak {:>5.0}s / {:.0}s: data at {} min before now, RSS {:.1} MB, WAL {:.1} MB, bucket {:.1} MB, {samples} samples, {failures} non-2xx",
                        el.as_secs_f64(),
                        wall.as_secs_f64(),
                        (now_ms() - data_time(el)) / 60_000,
                        rss as f64 / 1e6,
                        wal as f64 / 1e6,
                        bucket as f64 / 1e6
                    );
                    next_sample += Duration::from_secs(10);
                }
                if t_max == i64::MIN || t_max <= data_time(el) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_t = last_t.max(t_max);
            let n: u64 = r.timeseries.iter().map(|t| t.samples.len() as u64).sum();
            let body = snap::raw::Encoder::new().compress_vec(&r.encode_to_vec())?;
            for url in [&muninn_push, &prom_write] {
                let code = post(&a, url, s.tenant, &body)?;
                if !(200..300).contains(&code) {
                    failures += 1;
                    if first_error.is_none() {
                        first_error = Some(format!("{url}: {code}"));
                    }
                }
            }
            samples += n;
        }
    }
    eprintln!("soak: pushed {samples} samples, {failures} non-2xx answers");
    if let Some(e) = &first_error {
        eprintln!("first non-2xx: {e}");
    }
    // Compare answers at the end (both have had 5 s to settle).
    std::thread::sleep(Duration::from_secs(5));
    let (same, total, diffs) = compare(s, d0, span, last_t)?;
    println!(
        "soak {:.0} min at {}x: {samples} samples, {failures} non-2xx answers, {same}/{total} query answers identical to Prometheus; curves in {}",
        s.minutes, s.speed, s.report
    );
    for d in diffs.iter().take(5) {
        println!("  differs: {d}");
    }
    anyhow::ensure!(failures == 0, "non-2xx answers during the soak");
    anyhow::ensure!(same == total, "answers differ from Prometheus");
    Ok(())
}

/// Queries both at several times over the soaked range; returns (identical, total, diffs).
///
/// Times sit inside laps, away from where one lap of the corpus ends and the next begins:
/// there every counter starts anew, and Prometheus 2.42 (the reference) extrapolates `rate` at a
/// series' start differently from Prometheus 3 (whose semantics Muninn follows: the zero-point
/// check comes after the threshold check since 3.0).
fn compare(
    s: &Soak<'_>,
    lap0: i64,
    span: i64,
    last_t: i64,
) -> anyhow::Result<(usize, usize, Vec<String>)> {
    let queries = [
        "count({__name__=~\".+\"})",
        "sum(rate(prometheus_http_requests_total[5m]))",
        "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        "max_over_time(node_load1[30m])",
        "count by (job) (up)",
        "sum(increase(prometheus_tsdb_head_samples_appended_total[1h]))",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10m])))",
        "avg(node_memory_MemAvailable_bytes)",
    ];
    let a = agent();
    // Lap k starts at lap0 + k·span; query 70 and 100 minutes into each lap the soak covered
    // that far: the longest window below (1h) then never reaches back to a lap's start.
    let (cmin_shifted, mut at) = (lap0, Vec::new());
    for k in 0.. {
        let lap_start = cmin_shifted + k * span;
        if lap_start > last_t {
            break;
        }
        // +371 ms: corpus samples sit on whole seconds from its start, and a sample exactly at
        // a window's left edge is inside it for Prometheus 2.x and outside for 3.x.
        for off in [70 * 60_000 + 371, 100 * 60_000 + 371] {
            if lap_start + off < last_t - 60_000 {
                at.push(lap_start + off);
            }
        }
    }
    anyhow::ensure!(
        !at.is_empty(),
        "the soak is too short to compare answers (needs 70 min of data: --minutes x --speed >= 70)"
    );
    let (mut same, mut total, mut diffs) = (0, 0, Vec::new());
    let get =
        |base: &str, path: &str, params: &[(&str, String)]| -> anyhow::Result<serde_json::Value> {
            let mut req = a
                .get(&format!("{base}{path}"))
                .header("X-Scope-OrgID", s.tenant);
            for (k, v) in params {
                req = req.query(*k, v);
            }
            let text = req.call()?.body_mut().read_to_string()?;
            Ok(serde_json::from_str(&text)?)
        };
    for q in queries {
        for &t in &at {
            let p = [
                ("query", q.to_string()),
                ("time", format!("{:.3}", t as f64 / 1000.0)),
            ];
            let m = get(s.muninn_url, "/api/v1/query", &p)?;
            let r = get(s.prometheus_url, "/api/v1/query", &p)?;
            total += 1;
            if same_result(&m["data"]["result"], &r["data"]["result"]) {
                same += 1;
            } else {
                diffs.push(format!(
                    "{q} @ {t}: muninn {} vs prometheus {}",
                    m["data"], r["data"]
                ));
            }
        }
        // A range over the part of a lap that the queries above use.
        let mut lap = (last_t - cmin_shifted) / span;
        if last_t - (cmin_shifted + lap * span) < 115 * 60_000 {
            lap -= 1;
        }
        let lap_start = cmin_shifted + lap.max(0) * span;
        let (from, to) = (
            lap_start + 65 * 60_000 + 371,
            lap_start + 115 * 60_000 + 371,
        );
        let p = [
            ("query", q.to_string()),
            ("start", format!("{:.3}", from as f64 / 1000.0)),
            ("end", format!("{:.3}", to.max(from) as f64 / 1000.0)),
            ("step", "60".to_string()),
        ];
        let m = get(s.muninn_url, "/api/v1/query_range", &p)?;
        let r = get(s.prometheus_url, "/api/v1/query_range", &p)?;
        total += 1;
        if same_result(&m["data"]["result"], &r["data"]["result"]) {
            same += 1;
        } else {
            diffs.push(format!(
                "range {q}: muninn {} vs prometheus {}",
                m["data"], r["data"]
            ));
        }
    }
    Ok((same, total, diffs))
}

/// Same series (in any order) with values equal within 1e-6 (relative).
fn same_result(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let norm = |v: &serde_json::Value| -> Vec<(String, Vec<(f64, f64)>)> {
        let mut out: Vec<(String, Vec<(f64, f64)>)> = v
            .as_array()
            .map(|arr| {
                arr.iter()
                    .map(|s| {
                        let pts: Vec<&serde_json::Value> = match s.get("values") {
                            Some(vs) => vs
                                .as_array()
                                .map(|x| x.iter().collect())
                                .unwrap_or_default(),
                            None => s.get("value").into_iter().collect(),
                        };
                        let pts = pts
                            .iter()
                            .map(|p| {
                                (
                                    p[0].as_f64().unwrap_or(f64::NAN),
                                    p[1].as_str()
                                        .and_then(|x| x.parse().ok())
                                        .unwrap_or(f64::NAN),
                                )
                            })
                            .collect();
                        (s["metric"].to_string(), pts)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    };
    let (x, y) = (norm(a), norm(b));
    x.len() == y.len()
        && x.iter().zip(&y).all(|(p, q)| {
            p.0 == q.0
                && p.1.len() == q.1.len()
                && p.1.iter().zip(&q.1).all(|(u, v)| {
                    u.0 == v.0
                        && (u.1 == v.1
                            || (u.1.is_nan() && v.1.is_nan())
                            || (u.1 - v.1).abs() <= 1e-6 * u.1.abs().max(v.1.abs()))
                })
        })
}
