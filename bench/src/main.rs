//! `muninn-bench`: the figures behind Muninn's performance claims, printed, never asserted.
//!
//! - `decode`: snappy + protobuf decoding of the real remote-write corpus, samples/s on one core.
//! - `push`: replays the corpus (many copies, `instance` rewritten, timestamps shifted to now)
//!   into a running receiver (Muninn's `/api/v1/push` or Prometheus's `/api/v1/write`) and
//!   reports samples/s and the receiver's CPU seconds per million samples (from /proc).
//! - `series-memory`: creates N active series with the corpus's label shapes in a running
//!   receiver and reports its RSS growth per series.

mod churn;
mod corpus;
mod hist_bench;
mod proc_stats;
mod query_bench;
mod soak;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use muninn_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use muninn_proto::write_view::WriteRequestView;
use prost::Message;

#[derive(Parser)]
#[command(name = "muninn-bench")]
struct Cli {
    /// The remote-write corpus (u32-LE-length-prefixed snappy bodies).
    #[arg(long, default_value = "../shared/corpus/node-prometheus.rwlog")]
    corpus: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode throughput of the corpus on one core.
    Decode {
        /// Passes over the corpus.
        #[arg(long, default_value_t = 5)]
        passes: usize,
    },
    /// End-to-end replay into a running receiver.
    Push {
        /// Receiver URL, e.g. http://127.0.0.1:9009/api/v1/push or http://127.0.0.1:9090/api/v1/write;
        /// several (comma-separated) spread the workers over them (the routers of a ring).
        #[arg(long, value_delimiter = ',', required = true)]
        url: Vec<String>,
        /// PIDs whose CPU time is the cost (comma-separated: every router and owner).
        #[arg(long, value_delimiter = ',', required = true)]
        pid: Vec<u32>,
        /// Copies of the corpus's series (each with its own `instance`).
        #[arg(long, default_value_t = 20)]
        copies: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Corpus requests to replay per copy (0: all).
        #[arg(long, default_value_t = 0)]
        requests: usize,
        /// Tenant (sent as X-Scope-OrgID).
        #[arg(long, default_value = "bench")]
        tenant: String,
    },
    /// Native-histogram ingest (synthetic workload: there is no histogram corpus) into a
    /// running receiver.
    HistPush {
        /// Receiver URL (Muninn's /api/v1/push or Prometheus's /api/v1/write).
        #[arg(long)]
        url: String,
        /// PIDs whose CPU time is the cost.
        #[arg(long, value_delimiter = ',', required = true)]
        pid: Vec<u32>,
        #[arg(long, default_value_t = 2000)]
        series: usize,
        /// Histograms per series (15 s apart).
        #[arg(long, default_value_t = 240)]
        samples: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value = "bench")]
        tenant: String,
    },
    /// Soak: the corpus in a loop at `--speed`× its real rate for `--minutes`, into Muninn and
    /// a reference Prometheus; RSS and disk curves, non-2xx count, answers compared at the end.
    Soak {
        #[arg(long)]
        muninn_url: String,
        #[arg(long)]
        muninn_pid: u32,
        /// Muninn's data directory (WAL and filesystem bucket), for the disk curve.
        #[arg(long)]
        data_dir: String,
        /// Prometheus base URL (remote-write receiver enabled).
        #[arg(long)]
        prometheus_url: String,
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        #[arg(long, default_value_t = 10.0)]
        speed: f64,
        #[arg(long, default_value = "soak")]
        tenant: String,
        /// Where the curves go (TSV: elapsed, data time, RSS, disk, samples, non-2xx).
        #[arg(long, default_value = "soak.tsv")]
        report: String,
    },
    /// Query latency and peak memory, Muninn vs Prometheus, on the same synthetic data.
    Query {
        /// Muninn base URL (e.g. http://127.0.0.1:29009) and PID.
        #[arg(long)]
        muninn_url: String,
        /// Where Muninn takes remote write, when not at `--muninn-url` (a ring's querier
        /// takes none: give an ingester's or distributor's base URL).
        #[arg(long)]
        muninn_write_url: Option<String>,
        #[arg(long)]
        muninn_pid: u32,
        /// Prometheus base URL (remote-write receiver enabled) and PID.
        #[arg(long)]
        prometheus_url: String,
        #[arg(long)]
        prometheus_pid: u32,
        /// Counter series (plus a 10-bucket histogram per 100 of them).
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Samples per series, 15 s apart (480 = 2h).
        #[arg(long, default_value_t = 480)]
        steps: usize,
        /// Skip loading (data already there); give the end time used when loading.
        #[arg(long)]
        end_ms: Option<i64>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Bytes per sample of the corpus stored as Muninn blocks (block-range aligned, as cut).
    BlockSize {
        /// Block range in hours.
        #[arg(long, default_value_t = 2)]
        range_hours: i64,
    },
    /// Compaction throughput and peak RSS: the corpus written as `replicas` identical
    /// (overlapping) block sets, `copies` times over with distinct `instance`s, then one
    /// in-process compaction pass.
    Compaction {
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value_t = 4)]
        copies: usize,
        /// Bucket directory (emptied first).
        #[arg(long, default_value = "/tmp/muninn-compaction-bench")]
        dir: String,
        /// Only write the input blocks (then run `muninn compactor --once` on them yourself).
        #[arg(long)]
        prepare_only: bool,
    },
    /// Writes the corpus as OpenMetrics text (for `promtool tsdb create-blocks-from openmetrics`).
    Openmetrics {
        /// Copies of every series, the copies with `instance` rewritten (`<instance>-c<k>`).
        #[arg(long, default_value_t = 1)]
        copies: usize,
    },
    /// RSS per active series of a running receiver.
    /// Series churn: rounds of short-lived series, each flushed and dropped, with RSS and the
    /// head estimate after each (start Muninn with `--ingester.retain-after-ship=0s`).
    Churn {
        /// Muninn base URL (pushes, `/ingester/flush`, `/metrics`).
        #[arg(long)]
        url: String,
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value = "bench")]
        tenant: String,
    },
    SeriesMemory {
        #[arg(long)]
        url: String,
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 1_000_000)]
        series: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Samples per series (sent in rounds, 15 s apart in sample time).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long, default_value = "bench")]
        tenant: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bodies =
        corpus::read(&cli.corpus).with_context(|| format!("reading corpus {}", cli.corpus))?;
    match cli.cmd {
        Cmd::Decode { passes } => decode(&bodies, passes),
        Cmd::Push {
            url,
            pid,
            copies,
            concurrency,
            requests,
            tenant,
        } => push(&bodies, &url, &pid, copies, concurrency, requests, &tenant),
        Cmd::HistPush {
            url,
            pid,
            series,
            samples,
            concurrency,
            tenant,
        } => hist_bench::push(&url, &pid, series, samples, concurrency, &tenant),
        Cmd::Query {
            muninn_url,
            muninn_write_url,
            muninn_pid,
            prometheus_url,
            prometheus_pid,
            series,
            steps,
            end_ms,
            runs,
            concurrency,
        } => {
            let targets = [
                query_bench::Target {
                    name: "muninn".into(),
                    write_url: format!(
                        "{}/api/v1/push",
                        muninn_write_url.as_deref().unwrap_or(&muninn_url)
                    ),
                    api_url: muninn_url.clone(),
                    pid: muninn_pid,
                },
                query_bench::Target {
                    name: "prometheus".into(),
                    write_url: format!("{prometheus_url}/api/v1/write"),
                    api_url: prometheus_url.clone(),
                    pid: prometheus_pid,
                },
            ];
            let end = match end_ms {
                Some(e) => e,
                None => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis() as i64;
                    let end = now / 15_000 * 15_000 - 15_000 + 371;
                    query_bench::load(&targets, series, steps, end, concurrency)?;
                    println!("loaded; rerun queries with --end-ms {end}");
                    end
                }
            };
            let end_s = (end + 129) as f64 / 1000.0;
            println!(
                "| query | muninn s | prometheus s | latency ratio | muninn RSS growth, peak (median) | prometheus RSS growth, peak (median) |"
            );
            println!("|---|---|---|---|---|---|");
            for (name, path, params) in query_bench::queries(end_s) {
                let m = query_bench::time_query(&targets[0], path, &params, runs)?;
                let p = query_bench::time_query(&targets[1], path, &params, runs)?;
                println!(
                    "| {name} | {:.4} | {:.4} | {:.2} | {:.1} MB ({:.1}) | {:.1} MB ({:.1}) |",
                    m.median_s,
                    p.median_s,
                    m.median_s / p.median_s,
                    m.peak_growth as f64 / 1e6,
                    m.median_growth as f64 / 1e6,
                    p.peak_growth as f64 / 1e6,
                    p.median_growth as f64 / 1e6,
                );
            }
            Ok(())
        }
        Cmd::Soak {
            muninn_url,
            muninn_pid,
            data_dir,
            prometheus_url,
            minutes,
            speed,
            tenant,
            report,
        } => soak::run(
            &corpus::decode_all(&bodies)?,
            &soak::Soak {
                muninn_url: &muninn_url,
                muninn_pid,
                data_dir: &data_dir,
                prometheus_url: &prometheus_url,
                minutes,
                speed,
                tenant: &tenant,
                report: &report,
            },
        ),
        Cmd::BlockSize { range_hours } => block_size(&bodies, range_hours * 3_600_000),
        Cmd::Openmetrics { copies } => openmetrics(&bodies, copies),
        Cmd::Compaction {
            replicas,
            copies,
            dir,
            prepare_only,
        } => compaction(&bodies, replicas, copies, &dir, prepare_only),
        Cmd::Churn {
            url,
            pid,
            series,
            rounds,
            concurrency,
            tenant,
        } => churn::run(&bodies, &url, pid, series, rounds, concurrency, &tenant),
        Cmd::SeriesMemory {
            url,
            pid,
            series,
            concurrency,
            rounds,
            tenant,
        } => series_memory(&bodies, &url, pid, series, concurrency, rounds, &tenant),
    }
}

/// A 1.0 request re-encoded as remote write 2.0 (the spec's field numbers): one symbols
/// table, label refs, samples, and each series' family metadata as its `Metadata`.
fn encode_v2(r: &WriteRequest) -> Vec<u8> {
    use muninn_proto::varint::put_uvarint;
    use muninn_proto::write_view::put_len_field;
    use std::collections::HashMap;
    fn intern<'a>(
        s: &'a str,
        symbols: &mut Vec<&'a str>,
        index: &mut HashMap<&'a str, u64>,
    ) -> u64 {
        *index.entry(s).or_insert_with(|| {
            symbols.push(s);
            symbols.len() as u64 - 1
        })
    }
    let mut symbols: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, u64> = HashMap::new();
    intern("", &mut symbols, &mut index);
    let meta: HashMap<&str, &muninn_proto::prometheus::MetricMetadata> = r
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m))
        .collect();
    let mut out_series: Vec<Vec<u8>> = Vec::with_capacity(r.timeseries.len());
    for ts in &r.timeseries {
        let mut t = Vec::new();
        let mut refs = Vec::new();
        let mut name = "";
        for l in &ts.labels {
            put_uvarint(&mut refs, intern(&l.name, &mut symbols, &mut index));
            put_uvarint(&mut refs, intern(&l.value, &mut symbols, &mut index));
            if l.name == "__name__" {
                name = &l.value;
            }
        }
        put_len_field(&mut t, 1, &refs);
        for smp in &ts.samples {
            let mut b = vec![0x09];
            b.extend_from_slice(&smp.value.to_le_bytes());
            put_uvarint(&mut b, 2 << 3);
            put_uvarint(&mut b, smp.timestamp as u64);
            put_len_field(&mut t, 2, &b);
        }
        if let Some(m) = meta.get(name) {
            let mut b = Vec::new();
            let help = intern(&m.help, &mut symbols, &mut index);
            let unit = intern(&m.unit, &mut symbols, &mut index);
            for (f, v) in [(1u64, m.r#type as u64), (3, help), (4, unit)] {
                put_uvarint(&mut b, f << 3);
                put_uvarint(&mut b, v);
            }
            put_len_field(&mut t, 5, &b);
        }
        out_series.push(t);
    }
    let mut out = Vec::new();
    for s in &symbols {
        put_len_field(&mut out, 4, s.as_bytes());
    }
    for t in &out_series {
        put_len_field(&mut out, 5, t);
    }
    out
}

fn decode(bodies: &[Vec<u8>], passes: usize) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut dec = snap::raw::Decoder::new();
    let (mut samples, mut labels, mut bytes) = (0u64, 0u64, 0u64);
    // Warm-up pass, then timed passes.
    for pass in 0..=passes {
        let start = Instant::now();
        let (mut s_pass, mut l_pass) = (0u64, 0u64);
        for b in bodies {
            let n = snap::raw::decompress_len(b)?;
            buf.resize(n, 0);
            dec.decompress(b, &mut buf)?;
            let v = WriteRequestView::decode(&buf)?;
            s_pass += v.samples.len() as u64;
            l_pass += v.labels.len() as u64;
            if pass > 0 {
                bytes += b.len() as u64;
            }
        }
        let el = start.elapsed();
        if pass > 0 {
            samples += s_pass;
            labels += l_pass;
            eprintln!(
                "pass {pass}/{passes}: {s_pass} samples in {el:?} = {:.2}M samples/s",
                s_pass as f64 / el.as_secs_f64() / 1e6
            );
        }
    }
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..passes {
        for b in bodies {
            let n = snap::raw::decompress_len(b)?;
            buf.resize(n, 0);
            dec.decompress(b, &mut buf)?;
            total += WriteRequestView::decode(&buf)?.samples.len() as u64;
        }
    }
    let el = start.elapsed();
    println!(
        "decode (snappy + borrowed protobuf view), 1 core: {:.2}M samples/s ({} samples, {} labels, {:.1} MB compressed over {} passes)",
        total as f64 / el.as_secs_f64() / 1e6,
        samples,
        labels,
        bytes as f64 / 1e6 / passes as f64,
        passes
    );
    // For reference: prost's owned decoding of the same bodies.
    let start = Instant::now();
    let mut total = 0u64;
    for b in bodies {
        let n = snap::raw::decompress_len(b)?;
        buf.resize(n, 0);
        dec.decompress(b, &mut buf)?;
        let r = WriteRequest::decode(&buf[..])?;
        total += r
            .timeseries
            .iter()
            .map(|t| t.samples.len() as u64)
            .sum::<u64>();
    }
    let el = start.elapsed();
    println!(
        "reference: snappy + prost owned decode, 1 core: {:.2}M samples/s",
        total as f64 / el.as_secs_f64() / 1e6
    );
    // The same requests as remote write 2.0 (symbols table, label refs, per-series metadata),
    // decoded the way the receiver does: snappy, translation to 1.0, the 1.0 view.
    let mut v2_bodies = Vec::with_capacity(bodies.len());
    for b in bodies {
        let n = snap::raw::decompress_len(b)?;
        buf.resize(n, 0);
        dec.decompress(b, &mut buf)?;
        let r = WriteRequest::decode(&buf[..])?;
        v2_bodies.push(snap::raw::Encoder::new().compress_vec(&encode_v2(&r))?);
    }
    let v1_bytes: usize = bodies.iter().map(Vec::len).sum();
    let v2_bytes: usize = v2_bodies.iter().map(Vec::len).sum();
    let mut v1 = Vec::new();
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..passes {
        for b in &v2_bodies {
            let n = snap::raw::decompress_len(b)?;
            buf.resize(n, 0);
            dec.decompress(b, &mut buf)?;
            muninn_proto::write_v2::translate(&buf, &mut v1)?;
            total += WriteRequestView::decode(&v1)?.samples.len() as u64;
        }
    }
    let el = start.elapsed();
    println!(
        "remote write 2.0 routed (snappy + translation to 1.0 + view), 1 core: {:.2}M samples/s; compressed size {:.2}x of 1.0",
        total as f64 / el.as_secs_f64() / 1e6,
        v2_bytes as f64 / v1_bytes.max(1) as f64
    );
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..passes {
        for b in &v2_bodies {
            let n = snap::raw::decompress_len(b)?;
            buf.resize(n, 0);
            dec.decompress(b, &mut buf)?;
            total += muninn_proto::write_v2::decode_view(&buf)?.0.samples.len() as u64;
        }
    }
    let el = start.elapsed();
    println!(
        "remote write 2.0 applied locally (snappy + borrowed view over the symbols table), 1 core: {:.2}M samples/s",
        total as f64 / el.as_secs_f64() / 1e6
    );
    Ok(())
}

/// Rewrites `instance` (adding one if absent) to make copy `c` of a series distinct.
fn rewrite_instance(labels: &mut Vec<Label>, c: usize) {
    match labels.iter_mut().find(|l| l.name == "instance") {
        Some(l) => l.value = format!("{}-c{c}", l.value),
        None => {
            labels.push(Label {
                name: "instance".into(),
                value: format!("c{c}"),
            });
            labels.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
}

/// A remote-write 1.0 body of `timeseries`, as sent on the wire.
pub(crate) fn snappy_request(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(
            &WriteRequest {
                timeseries,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .expect("snappy")
}

fn post(agent: &ureq::Agent, url: &str, tenant: &str, body: &[u8]) -> anyhow::Result<u16> {
    let resp = agent
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("X-Scope-OrgID", tenant)
        .send(body)?;
    Ok(resp.status().as_u16())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

#[allow(clippy::too_many_arguments)]
fn push(
    bodies: &[Vec<u8>],
    urls: &[String],
    pids: &[u32],
    copies: usize,
    concurrency: usize,
    requests: usize,
    tenant: &str,
) -> anyhow::Result<()> {
    let reqs = corpus::decode_all(bodies)?;
    let reqs: Vec<WriteRequest> = if requests > 0 {
        reqs.into_iter().take(requests).collect()
    } else {
        reqs
    };
    let max_ts = reqs
        .iter()
        .flat_map(|r| {
            r.timeseries
                .iter()
                .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
        })
        .max()
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let shift = now - 60_000 - max_ts;
    eprintln!("preparing {} requests × {copies} copies...", reqs.len());
    // Worker w owns copies w, w+concurrency, ...: each copy's requests go in order.
    let prepared: Vec<Vec<Vec<u8>>> = (0..concurrency)
        .map(|w| {
            let mut out = vec![];
            for req in &reqs {
                for c in (w..copies).step_by(concurrency) {
                    let mut r = req.clone();
                    for ts in &mut r.timeseries {
                        rewrite_instance(&mut ts.labels, c);
                        for s in &mut ts.samples {
                            s.timestamp += shift;
                        }
                    }
                    out.push(
                        snap::raw::Encoder::new()
                            .compress_vec(&r.encode_to_vec())
                            .expect("snappy"),
                    );
                }
            }
            out
        })
        .collect();
    let samples_per_copy: u64 = reqs
        .iter()
        .map(|r| {
            r.timeseries
                .iter()
                .map(|t| t.samples.len() as u64)
                .sum::<u64>()
        })
        .sum();
    let total_samples = samples_per_copy * copies as u64;
    let total_reqs: usize = prepared.iter().map(Vec::len).sum();
    eprintln!(
        "replaying {total_reqs} requests, {total_samples} samples, {} series",
        copies * 950
    );
    let cpu_of = |pids: &[u32]| -> anyhow::Result<f64> {
        pids.iter().map(|&p| proc_stats::cpu_seconds(p)).sum()
    };
    let cpu0 = cpu_of(pids)?;
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for (w, bodies) in prepared.iter().enumerate() {
            let (done, errors) = (done.clone(), errors.clone());
            let url = urls[w % urls.len()].as_str();
            s.spawn(move || {
                let a = agent();
                for b in bodies {
                    match post(&a, url, tenant, b) {
                        Ok(code) if (200..300).contains(&code) => {}
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        s.spawn(|| {
            while done.load(Ordering::Relaxed) < total_reqs as u64 {
                std::thread::sleep(Duration::from_secs(2));
                eprintln!(
                    "progress: {}/{} requests",
                    done.load(Ordering::Relaxed),
                    total_reqs
                );
            }
        });
    });
    let el = start.elapsed().as_secs_f64();
    let cpu = cpu_of(pids)? - cpu0;
    let url = urls.join(",");
    println!(
        "push {url}: {total_samples} samples in {el:.2}s = {:.2}M samples/s wall; receiver CPU {cpu:.2}s = {:.3} CPU-s per million samples = {:.2}M samples/s per core; {} non-2xx",
        total_samples as f64 / el / 1e6,
        cpu / (total_samples as f64 / 1e6),
        total_samples as f64 / cpu / 1e6,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

fn openmetrics(bodies: &[Vec<u8>], copies: usize) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use std::io::Write;
    type Key = (String, Vec<(String, String)>);
    let mut series: BTreeMap<Key, Vec<(i64, f64)>> = BTreeMap::new();
    for r in corpus::decode_all(bodies)? {
        for ts in &r.timeseries {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            let rest = ts
                .labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            series
                .entry((name, rest))
                .or_default()
                .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
        }
    }
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::new(out.lock());
    for ((name, labels), samples) in &mut series {
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        // The copies of a series follow it, so a metric family's lines stay together.
        for copy in 0..copies.max(1) {
            let l: Vec<String> = labels
                .iter()
                .map(|(n, v)| match (n.as_str(), copy) {
                    ("instance", 1..) => format!("{n}={:?}", format!("{v}-c{copy}")),
                    _ => format!("{n}={:?}", v),
                })
                .collect();
            for (t, v) in samples.iter() {
                let v = if v.is_nan() {
                    "NaN".to_string()
                } else {
                    format!("{v:?}")
                };
                writeln!(
                    w,
                    "{name}{{{}}} {v} {}.{:03}",
                    l.join(","),
                    t.div_euclid(1000),
                    t.rem_euclid(1000)
                )?;
            }
        }
    }
    writeln!(w, "# EOF")?;
    Ok(())
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            n += if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map_or(0, |m| m.len())
            };
        }
    }
    n
}

fn compaction(
    bodies: &[Vec<u8>],
    replicas: usize,
    copies: usize,
    dir: &str,
    prepare_only: bool,
) -> anyhow::Result<()> {
    let series = corpus::series(&corpus::decode_all(bodies)?);
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for v in series.values() {
        min = min.min(v[0].0);
        max = max.max(v[v.len() - 1].0);
    }
    let _ = std::fs::remove_dir_all(dir);
    let bucket = muninn_storage::bucket::Bucket::filesystem(std::path::Path::new(dir))?;
    let tenant = muninn_proto::tenant::TenantId::new("bench")?;
    let range = 2 * 3_600_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut samples_in = 0u64;
    let mut start = min.div_euclid(range) * range;
    while start <= max {
        let input: Vec<_> = (0..copies)
            .flat_map(|c| {
                series.iter().map(move |(l, s)| {
                    let mut l = l.clone();
                    for (n, v) in &mut l {
                        if n == "instance" {
                            *v = format!("{v}-c{c}");
                        }
                    }
                    // Distinct values per copy, so Parquet cannot share their chunks.
                    let s: Vec<(i64, f64)> =
                        s.iter().map(|&(t, v)| (t, v + c as f64 * 0.25)).collect();
                    (muninn_storage::labels::Labels::from_pairs(l), s)
                })
            })
            .collect();
        for _ in 0..replicas {
            let (data, meta) = muninn_storage::block::writer::build(
                input.clone(),
                start,
                start + range,
                1,
                vec![],
            )?;
            if meta.stats.num_samples == 0 {
                continue;
            }
            samples_in += meta.stats.num_samples;
            rt.block_on(bucket.upload_block(&tenant, data, &meta))?;
        }
        start += range;
    }
    rt.block_on(bucket.write_index(&tenant))?;
    let before = dir_bytes(std::path::Path::new(dir));
    eprintln!(
        "{samples_in} samples in {replicas} replicas × {copies} copies of the corpus: {before} bytes"
    );
    if prepare_only {
        println!(
            "prepared {samples_in} samples ({} unique), {before} bytes, in {dir}",
            samples_in / replicas as u64
        );
        return Ok(());
    }
    let args = muninn_compactor::CompactorArgs {
        interval: "1h".parse().map_err(anyhow::Error::msg)?,
        once: true,
        block_ranges: vec![
            "2h".parse().map_err(anyhow::Error::msg)?,
            "12h".parse().map_err(anyhow::Error::msg)?,
            "24h".parse().map_err(anyhow::Error::msg)?,
        ],
        retention_overrides: vec![],
        concurrency: 1,
        deletion_delay: Default::default(),
    };
    let metrics = muninn_compactor::CompactorMetrics::default();
    let cpu0 = proc_stats::cpu_seconds(std::process::id())?;
    let rss0 = proc_stats::rss_bytes(std::process::id())?;
    let t0 = Instant::now();
    let overrides = muninn_tenancy::Overrides::new(Default::default(), None);
    let failed = rt.block_on(muninn_compactor::pass(&bucket, &args, &overrides, &metrics));
    anyhow::ensure!(failed == 0, "compaction failed");
    let el = t0.elapsed().as_secs_f64();
    let cpu = proc_stats::cpu_seconds(std::process::id())? - cpu0;
    let after = dir_bytes(std::path::Path::new(dir));
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .to_owned();
    let unique = samples_in / replicas as u64;
    println!(
        "compaction: {samples_in} samples read ({unique} unique) in {el:.2}s wall, {cpu:.2} CPU-s = {:.2}M samples/s per core; \
         bytes {before} -> {after} ({:.3} -> {:.3} bytes per unique sample); RSS before pass {:.0} MB, peak {hwm}",
        samples_in as f64 / cpu / 1e6,
        before as f64 / unique as f64,
        after as f64 / unique as f64,
        rss0 as f64 / 1e6,
    );
    Ok(())
}

fn block_size(bodies: &[Vec<u8>], range: i64) -> anyhow::Result<()> {
    let series = corpus::series(&corpus::decode_all(bodies)?);
    let mut min = i64::MAX;
    let mut max = i64::MIN;
    let mut total = 0u64;
    for v in series.values() {
        total += v.len() as u64;
        min = min.min(v[0].0);
        max = max.max(v[v.len() - 1].0);
    }
    let mut bytes = 0usize;
    let mut blocks = 0;
    let mut start = min.div_euclid(range) * range;
    while start <= max {
        let end = start + range;
        let input: Vec<_> = series
            .iter()
            .map(|(l, s)| {
                (
                    muninn_storage::labels::Labels::from_pairs(l.iter().cloned()),
                    s.clone(),
                )
            })
            .collect();
        let (data, meta) = muninn_storage::block::writer::build(input, start, end, 1, vec![])?;
        if meta.stats.num_samples > 0 {
            bytes += data.len() + serde_json::to_vec_pretty(&meta)?.len();
            blocks += 1;
            eprintln!(
                "block [{start}, {end}): {} series, {} samples, {} bytes",
                meta.stats.num_series,
                meta.stats.num_samples,
                data.len()
            );
        }
        start = end;
    }
    println!(
        "block-size: {total} samples, {} series in {blocks} blocks: {bytes} bytes = {:.3} bytes/sample (Prometheus TSDB blocks of the same samples: 1.85 MB = 1.35 bytes/sample per corpus README) ratio {:.2}",
        series.len(),
        bytes as f64 / total as f64,
        bytes as f64 / total as f64 / 1.35
    );
    decode_speed(&series)
}

/// Decode cost of the two float encodings on the corpus, one core: every series cut into
/// 120-sample Prometheus XOR chunks and into 120-sample packed runs (block format 3), each
/// decoded in full several times.
fn decode_speed(
    series: &std::collections::BTreeMap<corpus::LabelPairs, Vec<(i64, f64)>>,
) -> anyhow::Result<()> {
    use muninn_storage::chunk::{FloatChunk, XorAppender, packed};
    let (mut xor, mut runs) = (Vec::new(), Vec::new());
    let mut total = 0usize;
    for s in series.values() {
        for part in s.chunks(120) {
            let mut a = XorAppender::with_capacity(part.len() * 2 + 8);
            for &(t, v) in part {
                a.append(t, v);
            }
            xor.push(FloatChunk::Xor(a.into_bytes().into()));
            let mut b = Vec::new();
            packed::encode(part, &mut b);
            runs.push(FloatChunk::Packed(b.into()));
            total += part.len();
        }
    }
    let mut out = Vec::with_capacity(200);
    for (name, chunks) in [("xor", &xor), ("packed", &runs)] {
        let passes = 20;
        let start = Instant::now();
        for _ in 0..passes {
            for c in chunks.iter() {
                out.clear();
                c.decode_range(i64::MIN, i64::MAX, &mut out)?;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / (passes * total) as f64;
        println!("decode {name}: {ns:.2} ns/sample ({total} samples x {passes}, one core)");
    }
    Ok(())
}

fn series_memory(
    bodies: &[Vec<u8>],
    url: &str,
    pid: u32,
    n: usize,
    concurrency: usize,
    rounds: usize,
    tenant: &str,
) -> anyhow::Result<()> {
    let reqs = corpus::decode_all(bodies)?;
    // The distinct label sets of the corpus: the shapes to copy.
    let shapes = corpus::label_shapes(&reqs);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - rounds as i64 * 15_000;
    let rss0 = proc_stats::rss_bytes(pid)?;
    eprintln!(
        "{} series shapes in the corpus; creating {n} series; receiver RSS before: {:.1} MB",
        shapes.len(),
        rss0 as f64 / 1e6
    );
    let batch = 2000;
    let batches: Vec<(usize, usize)> = (0..n)
        .step_by(batch)
        .map(|s| (s, (s + batch).min(n)))
        .collect();
    for round in 0..rounds {
        let now = now + round as i64 * 15_000;
        let next = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..concurrency {
                s.spawn(|| {
                    let a = agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&(lo, hi)) = batches.get(i) else {
                            return;
                        };
                        let timeseries = (lo..hi)
                            .map(|k| {
                                let mut labels = shapes[k % shapes.len()].clone();
                                rewrite_instance(&mut labels, k / shapes.len());
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
                        if let Ok(code) = post(&a, url, tenant, &body)
                            && code >= 300
                        {
                            eprintln!("non-2xx: {code}");
                        }
                        if i.is_multiple_of(50) {
                            eprintln!(
                                "progress: round {}/{rounds}, {}/{} series",
                                round + 1,
                                hi,
                                n
                            );
                        }
                    }
                });
            }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = proc_stats::rss_bytes(pid)?;
    println!(
        "series-memory {url}: {n} active series, {rounds} samples each; RSS {:.1} MB -> {:.1} MB; {:.0} bytes per series (RSS growth / series), {:.0} bytes per series (total RSS / series)",
        rss0 as f64 / 1e6,
        rss1 as f64 / 1e6,
        (rss1 - rss0) as f64 / n as f64,
        rss1 as f64 / n as f64
    );
    Ok(())
}
