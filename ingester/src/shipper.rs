//! Cutting the head into blocks and shipping them to the bucket.
//!
//! A flush builds, for every tenant and every block range (`--ingester.block-range`, aligned
//! to multiples of it as Prometheus aligns blocks) that the head covers, a Parquet block off the
//! async runtime, uploads it (data, then `meta.json`, retried with backoff) and rewrites the
//! tenant's bucket index. Only then are the head's data before the block's end and the WAL
//! behind it dropped (a checkpoint of what remains replaces the WAL). A crash before that
//! leaves the data in the WAL and possibly in a block too; queriers merge blocks with ingester
//! data and count identical samples once, so every sample is queryable exactly once.

use std::sync::Arc;

use muninn_proto::tenant::TenantId;
use muninn_storage::block::writer;

use crate::tenant_db::TenantDb;
use crate::{Error, Ingester, Result};

/// A block a flush uploaded.
#[derive(Debug, Clone)]
pub struct Flushed {
    pub tenant: String,
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub series: u64,
    pub samples: u64,
}

/// Flushes every tenant's whole head to blocks (`POST /ingester/flush`, shutdown).
pub async fn flush(ing: &Arc<Ingester>) -> Result<Vec<Flushed>> {
    cut_all(ing, true).await
}

/// Cuts blocks for every tenant: with `force`, everything; otherwise, as Prometheus does, the
/// oldest block range while the head spans more than 1.5 ranges.
pub async fn cut_all(ing: &Arc<Ingester>, force: bool) -> Result<Vec<Flushed>> {
    let mut out = Vec::new();
    for (tenant, db) in ing.tenants.all() {
        out.extend(cut_tenant(ing, &tenant, &db, force).await?);
    }
    Ok(out)
}

/// Runs [`cut_all`] every `interval` until `shutdown` resolves; failures are logged and retried
/// at the next tick (the WAL still holds the data).
pub async fn run(
    ing: Arc<Ingester>,
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = cut_all(&ing, false).await {
            ing.metrics.block_failures.inc();
            tracing::error!(error = %e, "cutting blocks failed; will retry");
        }
    }
}

async fn cut_tenant(
    ing: &Arc<Ingester>,
    tenant: &TenantId,
    db: &Arc<TenantDb>,
    force: bool,
) -> Result<Vec<Flushed>> {
    let Some(bucket) = ing.bucket.clone() else {
        return Err(Error::Task("no bucket configured".into()));
    };
    let range = ing.config.block_range_ms.max(1);
    let mut out = Vec::new();
    loop {
        let Some((min, max)) = db.head.read().time_range() else {
            break;
        };
        if !force && max - min <= range + range / 2 {
            break;
        }
        let start = min.div_euclid(range) * range;
        let end = start + range;
        let db2 = db.clone();
        let built = tokio::task::spawn_blocking(move || {
            let series = db2.head.read().snapshot(start, end);
            if series.is_empty() {
                return Ok(None);
            }
            writer::build(series, start, end, 1, vec![]).map(Some)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::Task(format!("building block: {e}")))?;
        if let Some((bytes, meta)) = built {
            let size = bytes.len();
            bucket
                .upload_block(tenant, bytes, &meta)
                .await
                .map_err(|e| Error::Task(format!("uploading block: {e}")))?;
            bucket
                .write_index(tenant)
                .await
                .map_err(|e| Error::Task(format!("writing bucket index: {e}")))?;
            ing.metrics.blocks_uploaded.inc();
            tracing::info!(%tenant, block = %meta.ulid, min_time = meta.min_time, max_time = meta.max_time,
                series = meta.stats.num_series, samples = meta.stats.num_samples, bytes = size, "uploaded block");
            out.push(Flushed {
                tenant: tenant.to_string(),
                ulid: meta.ulid.clone(),
                min_time: meta.min_time,
                max_time: meta.max_time,
                series: meta.stats.num_series,
                samples: meta.stats.num_samples,
            });
        }
        // Only now that the block is uploaded and listed does the head (and WAL) let go of it.
        let db2 = db.clone();
        let removed = tokio::task::spawn_blocking(move || db2.truncate_before(end))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        tracing::info!(%tenant, before = end, wal_segments_removed = removed, "truncated head and wal");
    }
    Ok(out)
}
