//! The ingester's configuration and its command-line flags (`--ingester.*`); per-tenant limits
//! (`--limits.*`, formerly `--validation.*`) live in `muninn-tenancy`.

use std::path::PathBuf;

use muninn_proto::duration::FlagDuration;

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
    /// Time range of the blocks cut from the head (aligned to multiples of it), e.g. `2h` or
    /// seconds. Samples older than the head's newest sample minus half of it are refused.
    #[arg(long = "ingester.block-range", default_value = "2h")]
    pub block_range: FlagDuration,
    /// How often the head is checked for block ranges to cut, and shipped data retained long
    /// enough is dropped.
    #[arg(long = "ingester.cut-interval", default_value = "1m")]
    pub cut_interval: FlagDuration,
    /// How long shipped data stays queryable in the head after its block is uploaded and
    /// indexed, so that no query misses it while queriers pick up the new index.
    #[arg(long = "ingester.retain-after-ship", default_value = "15m")]
    pub retain_after_ship: FlagDuration,
    /// Flush every tenant's head to blocks on clean shutdown.
    #[arg(long = "ingester.flush-on-shutdown", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub flush_on_shutdown: bool,
}

/// Everything the ingester needs.
#[derive(Clone, Debug)]
pub struct IngesterConfig {
    pub data_dir: PathBuf,
    pub multitenancy: bool,
    pub max_request_bytes: usize,
    pub wal_fsync: FsyncPolicy,
    pub block_range_ms: i64,
    pub flush_on_shutdown: bool,
    pub cut_interval: std::time::Duration,
    pub retain_after_ship: std::time::Duration,
}

impl IngesterConfig {
    /// The time bounds of a push of a tenant with these limits received now.
    pub fn time_bounds(&self, limits: &muninn_tenancy::Limits) -> crate::tenant_db::TimeBounds {
        crate::tenant_db::TimeBounds {
            now_ms: now_ms(),
            grace_ms: limits.creation_grace_period.as_millis_i64(),
            too_old_window_ms: self.block_range_ms / 2,
            ooo_window_ms: limits.out_of_order_window_ms(),
        }
    }

    pub fn new(data_dir: PathBuf, multitenancy: bool, args: &IngesterArgs) -> Self {
        Self {
            data_dir,
            multitenancy,
            max_request_bytes: args.max_request_bytes,
            wal_fsync: args.wal_fsync,
            block_range_ms: args.block_range.as_millis_i64().max(1000),
            flush_on_shutdown: args.flush_on_shutdown,
            cut_interval: args
                .cut_interval
                .0
                .max(std::time::Duration::from_millis(100)),
            retain_after_ship: args.retain_after_ship.0,
        }
    }
}

pub use muninn_proto::time::now_ms;

/// Flags of the write router (`--distributor.*`), taken by every role that routes pushes.
#[derive(clap::Args, Clone, Debug)]
pub struct DistributorArgs {
    /// Deduplicate HA Prometheus pairs: per tenant and `cluster` label, store only the elected
    /// `__replica__`; the others get 202. Enable it on every role of the cluster.
    #[arg(long = "distributor.ha-tracker.enable", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ha_enable: bool,
    /// Label naming an HA cluster.
    #[arg(long = "distributor.ha-tracker.cluster", default_value = "cluster")]
    pub ha_cluster_label: String,
    /// Label naming the replica within an HA cluster; removed before storage.
    #[arg(long = "distributor.ha-tracker.replica", default_value = "__replica__")]
    pub ha_replica_label: String,
    /// The elected replica changes only after it has been silent this long.
    #[arg(
        long = "distributor.ha-tracker.failover-timeout",
        default_value = "30s"
    )]
    pub ha_failover_timeout: FlagDuration,
    /// Longest an owning ingester may take to store its share of a push.
    #[arg(long = "distributor.remote-timeout", default_value = "10s")]
    pub remote_timeout: FlagDuration,
}

impl DistributorArgs {
    /// Checks what flag parsing cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.ha_enable {
            if self.ha_cluster_label.is_empty() || self.ha_replica_label.is_empty() {
                return Err("HA tracker labels must not be empty".into());
            }
            if self.ha_cluster_label == self.ha_replica_label {
                return Err("the HA cluster and replica labels must differ".into());
            }
            if self.ha_failover_timeout.0 < std::time::Duration::from_secs(1) {
                return Err("--distributor.ha-tracker.failover-timeout must be at least 1s".into());
            }
        }
        Ok(())
    }

    /// The router's configuration.
    pub fn config(
        &self,
        multitenancy: bool,
        max_request_bytes: usize,
    ) -> crate::distributor::DistributorConfig {
        crate::distributor::DistributorConfig {
            multitenancy,
            max_request_bytes,
            ha: self
                .ha_enable
                .then(|| crate::distributor::ha_tracker::HaConfig {
                    cluster_label: self.ha_cluster_label.clone(),
                    replica_label: self.ha_replica_label.clone(),
                    failover_timeout: self.ha_failover_timeout.0,
                }),
            owner_timeout: self.remote_timeout.0,
        }
    }
}
