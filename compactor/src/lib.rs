//! The compactor: merges, deduplicates and expires each tenant's blocks in object storage.
//!
//! A pass, per tenant: mark blocks that a listed block already replaces (finishing a pass a
//! crash interrupted), expire blocks past retention, run the [`planner`]'s jobs one at a time
//! ([`executor`]: vertical merges of overlapping blocks, then horizontal merges through the
//! level ranges), and delete blocks marked longer ago than the deletion delay. Deletion is
//! two-phase: a replacement is uploaded and listed in the bucket index before its sources are
//! marked, and marked blocks stay readable until the delay passes. The compactor rewrites the
//! tenant's bucket index after each change. Overlaps are merged, never a reason to stop.

pub mod executor;
pub mod planner;

use std::time::Duration;

use futures::StreamExt;

use muninn_proto::duration::{FlagDuration, parse_duration_ms};
use muninn_proto::tenant::TenantId;
use muninn_storage::bucket::Bucket;
use muninn_tenancy::Overrides;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Errors of the compactor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Storage(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Flags owned by the compactor.
#[derive(clap::Args, Clone, Debug)]
pub struct CompactorArgs {
    /// Time between compaction passes.
    #[arg(long = "compactor.interval", default_value = "1h")]
    pub interval: FlagDuration,
    /// Run one pass and exit (0 on success).
    #[arg(long = "once", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub once: bool,
    /// Level ranges, smallest first (durations; bare numbers are seconds).
    #[arg(
        long = "compactor.block-ranges",
        value_delimiter = ',',
        default_value = "2h,12h,24h"
    )]
    pub block_ranges: Vec<FlagDuration>,
    /// Per-tenant retention overrides, `tenant=duration` (or seconds), comma separated. The
    /// runtime config file's `compactor_blocks_retention_period` wins over these; the default
    /// is `--limits.compactor-blocks-retention-period` (formerly `--compactor.retention`).
    #[arg(long = "compactor.retention-overrides", value_delimiter = ',')]
    pub retention_overrides: Vec<String>,
    /// Tenants compacted in parallel.
    #[arg(long = "compactor.concurrency", default_value_t = 2)]
    pub concurrency: usize,
    /// How long a marked block stays before its objects are deleted.
    #[arg(long = "compactor.deletion-delay", default_value = "12h")]
    pub deletion_delay: FlagDuration,
}

impl CompactorArgs {
    /// Checks the flags: level ranges of at least a minute, ascending. (Bare numbers are
    /// seconds, as in every duration flag; `2,12,24` meant hours before durations were
    /// accepted and is refused rather than silently compacting 2-second ranges.)
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(r) = self
            .block_ranges
            .iter()
            .find(|r| r.0 < Duration::from_secs(60))
        {
            return Err(format!(
                "--compactor.block-ranges: range {r} is under a minute (write durations such as 2h,12h,24h)"
            ));
        }
        if self.block_ranges.windows(2).any(|w| w[0] >= w[1]) {
            return Err("--compactor.block-ranges must be ascending".into());
        }
        Ok(())
    }

    /// Retention of a tenant: its entry in the runtime config file, then the flag overrides,
    /// then the `--limits.compactor-blocks-retention-period` default.
    fn retention_ms(&self, tenant: &TenantId, overrides: &Overrides) -> i64 {
        if overrides.is_set(tenant.as_str(), "compactor_blocks_retention_period") {
            return overrides
                .get(tenant.as_str())
                .compactor_blocks_retention_period
                .as_millis_i64();
        }
        for o in &self.retention_overrides {
            if let Some((t, s)) = o.split_once('=')
                && t == tenant.as_str()
                && let Some(ms) = parse_duration_ms(s)
            {
                return ms;
            }
        }
        overrides
            .defaults()
            .compactor_blocks_retention_period
            .as_millis_i64()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

/// Compaction metrics.
#[derive(Default)]
pub struct CompactorMetrics {
    pub compactions: Family<TenantLabels, Counter>,
    pub blocks_compacted: Family<TenantLabels, Counter>,
    pub blocks_deleted: Family<TenantLabels, Counter>,
    pub failures: Family<TenantLabels, Counter>,
    pub last_success: Family<TenantLabels, Gauge>,
    /// What a tenant stores in blocks (live blocks of its index), for billing.
    pub tenant_blocks: Family<TenantLabels, Gauge>,
    pub tenant_block_bytes: Family<TenantLabels, Gauge>,
    pub tenant_block_samples: Family<TenantLabels, Gauge>,
}

impl CompactorMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_compactor");
        r.register(
            "compactions",
            "Compaction jobs run",
            self.compactions.clone(),
        );
        r.register(
            "blocks_compacted",
            "Source blocks merged into new blocks",
            self.blocks_compacted.clone(),
        );
        r.register(
            "blocks_deleted",
            "Blocks deleted after the deletion delay or retention",
            self.blocks_deleted.clone(),
        );
        r.register(
            "failures",
            "Failed compaction passes",
            self.failures.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "Last successful pass per tenant",
            self.last_success.clone(),
        );
        r.register(
            "tenant_blocks",
            "Live blocks per tenant after the last pass",
            self.tenant_blocks.clone(),
        );
        r.register(
            "tenant_block_bytes",
            "Bytes of live blocks per tenant after the last pass (blocks from before numBytes existed count 0)",
            self.tenant_block_bytes.clone(),
        );
        r.register(
            "tenant_block_samples",
            "Samples in live blocks per tenant after the last pass (replica copies not yet merged count each)",
            self.tenant_block_samples.clone(),
        );
    }
}

/// Test-only fault injection: when `MUNINN_COMPACTOR_CRASH_AT` names this point, the process
/// aborts here (no unwinding, no cleanup: like SIGKILL), so tests can crash a pass at chosen
/// steps and check that the next pass repairs everything.
pub fn crash_point(name: &str) {
    if std::env::var("MUNINN_COMPACTOR_CRASH_AT").is_ok_and(|v| v == name) {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
}

use muninn_proto::time::now_ms;

fn serr(e: muninn_storage::Error) -> Error {
    Error::Storage(e.to_string())
}

/// One pass over one tenant.
pub async fn compact_tenant(
    bucket: &Bucket,
    tenant: &TenantId,
    args: &CompactorArgs,
    overrides: &Overrides,
    metrics: &CompactorMetrics,
) -> Result<()> {
    let t = TenantLabels {
        tenant: tenant.to_string(),
    };
    let mut index = bucket.write_index(tenant).await.map_err(serr)?;
    let marked: std::collections::HashSet<String> =
        index.deletion_marks.iter().map(|m| m.id.clone()).collect();
    // Finish what a crash interrupted: sources of listed blocks get their marks.
    let replaced: Vec<String> = index
        .blocks
        .iter()
        .flat_map(|b| {
            b.compaction
                .sources
                .iter()
                .filter(move |s| **s != b.ulid)
                .cloned()
        })
        .filter(|s| index.blocks.iter().any(|b| b.ulid == *s) && !marked.contains(s))
        .collect();
    for ulid in &replaced {
        bucket
            .mark_for_deletion(tenant, ulid, "compacted")
            .await
            .map_err(serr)?;
    }
    // Retention.
    let retention = args.retention_ms(tenant, overrides);
    let mut expired_any = false;
    if retention > 0 {
        let cutoff = now_ms() - retention;
        let mut expired = 0;
        for b in index.live_blocks().iter().filter(|b| b.max_time <= cutoff) {
            tracing::info!(%tenant, block = %b.ulid, max_time = b.max_time, "block expired by retention");
            bucket
                .mark_for_deletion(tenant, &b.ulid, "retention")
                .await
                .map_err(serr)?;
            expired += 1;
        }
        expired_any = expired > 0;
    }
    index = bucket.write_index(tenant).await.map_err(serr)?;
    if expired_any {
        // Query results cached before no longer hold: the frontend's keys change. Raised
        // after the index lists the marks, so a result cached under the new generation was
        // computed without the expired blocks.
        let generation = bucket
            .bump_results_cache_generation(tenant)
            .await
            .map_err(serr)?;
        tracing::info!(%tenant, generation, "results-cache generation raised after retention");
    }
    let ranges: Vec<i64> = args
        .block_ranges
        .iter()
        .map(|d| d.as_millis_i64().max(1))
        .collect();
    // Jobs, one at a time, until the plan is empty.
    loop {
        let live = index.live_blocks();
        let Some(job) = planner::plan(&live, &ranges) else {
            break;
        };
        let start = std::time::Instant::now();
        let out = executor::run(bucket, tenant, &job).await?;
        metrics.compactions.get_or_create(&t).inc();
        metrics
            .blocks_compacted
            .get_or_create(&t)
            .inc_by(job.sources.len() as u64);
        tracing::info!(
            %tenant, vertical = job.vertical, sources = job.sources.len(), new_block = %out.new_block.ulid,
            min_time = job.min_time, max_time = job.max_time, level = job.level,
            source_samples = out.source_samples, samples = out.new_block.stats.num_samples,
            elapsed_ms = start.elapsed().as_millis() as u64, "compacted"
        );
        index = bucket.index(tenant).await.map_err(serr)?;
    }
    // Delete blocks marked long enough ago.
    let delay = args.deletion_delay.as_millis_i64();
    let now = now_ms();
    let mut deleted = 0;
    for m in index
        .deletion_marks
        .iter()
        .filter(|m| now.saturating_sub(m.deletion_time_ms) >= delay)
    {
        bucket.delete_block(tenant, &m.id).await.map_err(serr)?;
        deleted += 1;
        crash_point("mid-delete");
    }
    if deleted > 0 {
        metrics.blocks_deleted.get_or_create(&t).inc_by(deleted);
        bucket.write_index(tenant).await.map_err(serr)?;
        tracing::info!(%tenant, deleted, "deleted marked blocks");
    }
    metrics.last_success.get_or_create(&t).set(now / 1000);
    let index = bucket.index(tenant).await.map_err(serr)?;
    let live = index.live_blocks();
    metrics
        .tenant_blocks
        .get_or_create(&t)
        .set(live.len() as i64);
    metrics
        .tenant_block_bytes
        .get_or_create(&t)
        .set(live.iter().map(|b| b.stats.num_bytes as i64).sum());
    metrics
        .tenant_block_samples
        .get_or_create(&t)
        .set(live.iter().map(|b| b.stats.num_samples as i64).sum());
    Ok(())
}

/// One pass over every tenant of the bucket. Returns the number of tenants that failed.
pub async fn pass(
    bucket: &Bucket,
    args: &CompactorArgs,
    overrides: &Overrides,
    metrics: &CompactorMetrics,
) -> usize {
    let tenants = match bucket.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "listing tenants failed");
            return 1;
        }
    };
    // Tenants in parallel, at most `--compactor.concurrency` at a time.
    let results: Vec<bool> = futures::stream::iter(tenants)
        .map(|tenant| async move {
            match compact_tenant(bucket, &tenant, args, overrides, metrics).await {
                Ok(()) => true,
                Err(e) => {
                    metrics.failures.get_or_create(&TenantLabels { tenant: tenant.to_string() }).inc();
                    tracing::error!(%tenant, error = %e, "compaction failed; the next pass retries");
                    false
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    results.iter().filter(|ok| !**ok).count()
}

/// Runs passes every `--compactor.interval` until `shutdown` resolves.
pub async fn run(
    bucket: Bucket,
    args: CompactorArgs,
    overrides: std::sync::Arc<Overrides>,
    metrics: std::sync::Arc<CompactorMetrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let interval = args.interval.0.max(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        let failed = pass(&bucket, &args, &overrides, &metrics).await;
        tracing::info!(failed_tenants = failed, "compaction pass done");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
