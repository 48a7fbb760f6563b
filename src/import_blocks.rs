//! `muninn import-blocks --tenant T [storage flags] SOURCE`: imports Prometheus TSDB blocks (a
//! Prometheus data directory, one block directory, or a Thanos-style bucket, on disk or
//! `s3://bucket/prefix`)
//! into tenant T's blocks in the configured object storage, with progress on stderr. The
//! blocks are in the tenant's bucket index when the command exits; queriers and the compactor
//! then use them like any other. See `docs/operations.md` ("Migrating from Prometheus").

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use muninn_proto::tenant::TenantId;

/// Imports Prometheus TSDB blocks into a tenant's Muninn blocks.
#[derive(Parser, Debug)]
#[command(name = "muninn import-blocks")]
pub struct ImportArgs {
    /// The tenant the blocks are imported for.
    #[arg(long)]
    pub tenant: String,
    /// Local data directory (the filesystem bucket's default home, as for the other roles).
    #[arg(long = "data-dir", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where converted block files wait for their upload (default: the system's temp dir).
    #[arg(long = "tmp-dir")]
    pub tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub storage: muninn_storage::bucket::StorageArgs,
    /// Endpoint of the source bucket's S3 server (an `s3://` source).
    #[arg(long = "source.s3.endpoint")]
    pub source_s3_endpoint: Option<String>,
    /// Region of the source bucket.
    #[arg(long = "source.s3.region", default_value = "us-east-1")]
    pub source_s3_region: String,
    /// Allow plain HTTP to the source bucket's endpoint.
    #[arg(long = "source.s3.allow-http", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub source_s3_allow_http: bool,
    /// A Prometheus data directory, a block directory, a Thanos-style bucket on disk, or a
    /// Thanos-style bucket on S3: `s3://bucket[/prefix]` (credentials from
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`).
    pub source: String,
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs the command; returns the process exit code.
pub fn run(args: &[OsString]) -> i32 {
    let mut argv = vec![OsString::from("muninn import-blocks")];
    argv.extend(args.iter().cloned());
    let a = match ImportArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let tenant = match TenantId::new(&a.tenant) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("--tenant {:?}: {e}", a.tenant);
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return 1;
        }
    };
    let started = std::time::Instant::now();
    let cpu0 = cpu_seconds();
    // Say where the blocks go: a forgotten storage flag must not pass unnoticed.
    let destination = match a.storage.backend.as_str() {
        "s3" => format!(
            "s3 bucket {} at {}",
            a.storage.s3_bucket.as_deref().unwrap_or("?"),
            a.storage.s3_endpoint.as_deref().unwrap_or("AWS")
        ),
        other => format!(
            "{other} bucket {}",
            a.storage
                .filesystem_dir
                .clone()
                .unwrap_or_else(|| a.data_dir.join("bucket"))
                .display()
        ),
    };
    eprintln!(
        "importing {} into tenant {tenant} of the {destination}",
        a.source
    );
    let result = rt.block_on(async {
        let bucket = a.storage.open(&a.data_dir)?;
        let tmp = a.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        use muninn_storage::prom_tsdb::import::{Source, import};
        let source = if a.source.starts_with("s3://") {
            let (store, prefix) = muninn_storage::prom_tsdb::remote::s3_source(
                &a.source,
                a.source_s3_endpoint.as_deref(),
                &a.source_s3_region,
                a.source_s3_allow_http,
            )?;
            Source::Bucket { store, prefix }
        } else {
            Source::Dir(PathBuf::from(&a.source))
        };
        import(&bucket, &tenant, &source, &tmp, |line| eprintln!("{line}")).await
    });
    match result {
        Ok(report) => {
            let wall = started.elapsed().as_secs_f64();
            let samples = report.samples();
            let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
            let imported = report.blocks.iter().filter(|b| !b.skipped).count();
            eprintln!(
                "imported {imported} blocks ({} skipped) for tenant {tenant}: {samples} samples in {wall:.2} s; {:.0} samples/s, {} CPU s ({} samples per CPU second)",
                report.blocks.len() - imported,
                samples as f64 / wall.max(1e-9),
                cpu.map_or("?".into(), |c| format!("{c:.2}")),
                cpu.filter(|c| *c > 0.0)
                    .map_or("?".into(), |c| format!("{:.0}", samples as f64 / c)),
            );
            0
        }
        Err(e) => {
            eprintln!("import-blocks failed: {e}");
            1
        }
    }
}
