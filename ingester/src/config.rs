//! The ingester's configuration and its command-line flags (`--ingester.*`, `--validation.*`).

use std::path::PathBuf;

use crate::validate::Limits;
use crate::wal::FsyncPolicy;

/// Flags owned by the ingester; the binary flattens them into its command line.
#[derive(clap::Args, Clone, Debug)]
pub struct IngesterArgs {
    /// Largest accepted remote-write message, compressed or decompressed, in bytes (larger: 413).
    #[arg(long = "ingester.max-request-bytes", default_value_t = 100 << 20)]
    pub max_request_bytes: usize,
    /// When to fsync the WAL: `never` (survives process crashes) or `always` (also power loss,
    /// an fdatasync per request).
    #[arg(long = "ingester.wal-fsync", default_value = "never")]
    pub wal_fsync: FsyncPolicy,
    /// Time range of the blocks cut from the head, in seconds (aligned to multiples of it).
    #[arg(long = "ingester.block-range", default_value_t = 7200)]
    pub block_range_seconds: u64,
    /// Seconds between checks for block ranges to cut from the head.
    #[arg(long = "ingester.cut-interval", default_value_t = 60)]
    pub cut_interval_seconds: u64,
    /// Flush every tenant's head to blocks on clean shutdown.
    #[arg(long = "ingester.flush-on-shutdown", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub flush_on_shutdown: bool,
    /// Longest label name accepted.
    #[arg(long = "validation.max-label-name-length", default_value_t = 1024)]
    pub max_label_name_length: usize,
    /// Longest label value accepted.
    #[arg(long = "validation.max-label-value-length", default_value_t = 2048)]
    pub max_label_value_length: usize,
    /// Most labels a series may have.
    #[arg(long = "validation.max-label-names-per-series", default_value_t = 30)]
    pub max_label_names_per_series: usize,
}

/// Everything the ingester needs.
#[derive(Clone, Debug)]
pub struct IngesterConfig {
    pub data_dir: PathBuf,
    pub multitenancy: bool,
    pub max_request_bytes: usize,
    pub wal_fsync: FsyncPolicy,
    pub limits: Limits,
    pub block_range_ms: i64,
    pub flush_on_shutdown: bool,
    pub cut_interval: std::time::Duration,
}

impl IngesterConfig {
    pub fn new(data_dir: PathBuf, multitenancy: bool, args: &IngesterArgs) -> Self {
        Self {
            data_dir,
            multitenancy,
            max_request_bytes: args.max_request_bytes,
            wal_fsync: args.wal_fsync,
            block_range_ms: args.block_range_seconds.max(1) as i64 * 1000,
            flush_on_shutdown: args.flush_on_shutdown,
            cut_interval: std::time::Duration::from_secs(args.cut_interval_seconds.max(1)),
            limits: Limits {
                max_label_name_length: args.max_label_name_length,
                max_label_value_length: args.max_label_value_length,
                max_label_names_per_series: args.max_label_names_per_series,
            },
        }
    }
}
