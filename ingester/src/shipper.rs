//! Cutting the head into blocks and shipping them to the bucket.
//!
//! A cut of one tenant holds the tenant's `cut_lock` from start to end, so cuts of a tenant
//! (the periodic one, `POST /ingester/flush`, the shutdown flush) never overlap. Each step:
//!
//! 1. pick the block range (`--ingester.block-range`, aligned to multiples of it as
//!    Prometheus aligns blocks) holding the oldest sample not shipped yet;
//! 2. snapshot, under the head's read lock (atomic with pushes, which hold the write lock for
//!    a whole request), every series' unshipped samples in that range;
//! 3. build the Parquet block off the async runtime, upload it (data, then `meta.json`,
//!    retried) and add it to the tenant's bucket index with a conditional write;
//! 4. only then mark exactly the snapshotted samples shipped (and log the marks to the WAL).
//!
//! A sample that arrives during the upload is newer than its series' snapshotted samples
//! (appends are in order per series), so it stays unshipped and goes into a later block even
//! if it falls inside the range just shipped: nothing acknowledged is lost. Shipped data stays
//! in the head for `--ingester.retain-after-ship`, so no query misses it while queriers pick up
//! the new index; then it is dropped and the WAL replaced by a checkpoint. A crash at any point
//! leaves the data in the WAL and possibly in a block too; readers and the compactor count
//! identical samples once. The protocol is written down in `docs/visibility.md`.

use std::sync::Arc;
use std::time::Instant;

use muninn_proto::tenant::TenantId;
use muninn_storage::block::writer;

use crate::tenant_db::TenantDb;
use crate::{Error, Ingester, Result};

/// A block a cut uploaded.
#[derive(Debug, Clone)]
pub struct Flushed {
    pub tenant: String,
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub series: u64,
    pub samples: u64,
}

/// What to cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutMode {
    /// As Prometheus: the oldest unshipped block range, while the head's unshipped data spans
    /// more than 1.5 block ranges.
    Auto,
    /// Everything unshipped that is not newer than the head's newest sample when the cut
    /// starts (`/ingester/flush`, shutdown).
    Flush,
}

/// The outcome of cutting several tenants: one tenant's failure does not stop the others.
#[derive(Debug, Default)]
pub struct CutReport {
    pub blocks: Vec<Flushed>,
    pub failures: Vec<(TenantId, Error)>,
}

/// Cuts every tenant (each on its own; failures are collected, not fatal to the others).
pub async fn cut_all(ing: &Arc<Ingester>, mode: CutMode) -> CutReport {
    let mut report = CutReport::default();
    for (tenant, db) in ing.tenants.all() {
        match cut_tenant(ing, &tenant, &db, mode).await {
            Ok(blocks) => report.blocks.extend(blocks),
            Err(e) => {
                ing.metrics.block_failures.inc();
                tracing::error!(%tenant, error = %e, "cutting blocks failed; the WAL keeps the data, will retry");
                report.failures.push((tenant, e));
            }
        }
    }
    report
}

/// Flushes one tenant (`POST /ingester/flush` naming it).
pub async fn flush_tenant(ing: &Arc<Ingester>, tenant: &TenantId) -> CutReport {
    let mut report = CutReport::default();
    if let Some(db) = ing.tenants.get(tenant) {
        match cut_tenant(ing, tenant, &db, CutMode::Flush).await {
            Ok(blocks) => report.blocks = blocks,
            Err(e) => {
                ing.metrics.block_failures.inc();
                report.failures.push((tenant.clone(), e));
            }
        }
    }
    report
}

/// Every `interval` until `shutdown` resolves: cuts what is due, then drops shipped data
/// retained long enough. Failures are logged and retried at the next tick.
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
        cut_all(&ing, CutMode::Auto).await;
        drop_shipped_all(&ing).await;
        // The head's size and live series, after the drop (pushes also set the latter).
        for (tenant, db) in ing.tenants.all() {
            let (bytes, series, chunks) = {
                let head = db.head.read();
                (head.heap_size(), head.live_series(), head.chunk_stats())
            };
            let labels = crate::metrics::TenantLabels {
                tenant: tenant.to_string(),
            };
            ing.metrics
                .head_chunk_files
                .get_or_create(&labels)
                .set(chunks.files as i64);
            ing.metrics
                .head_heap_chunk_bytes
                .get_or_create(&labels)
                .set(chunks.heap_bytes as i64);
            ing.metrics
                .head_heap_bytes
                .get_or_create(&labels)
                .set(bytes as i64);
            ing.metrics
                .memory_series
                .get_or_create(&labels)
                .set(series as i64);
        }
    }
}

/// Drops, for every tenant, shipped data older than `--ingester.retain-after-ship`.
pub async fn drop_shipped_all(ing: &Arc<Ingester>) {
    let Some(deadline) = Instant::now().checked_sub(ing.config.retain_after_ship) else {
        return;
    };
    for (tenant, db) in ing.tenants.all() {
        if !db.has_shipped_due(deadline) {
            continue;
        }
        let _cut = db.cut_lock.lock().await;
        let db2 = db.clone();
        match tokio::task::spawn_blocking(move || db2.drop_shipped(deadline)).await {
            Ok(Ok(Some(removed))) => {
                tracing::info!(%tenant, wal_segments_removed = removed, "dropped shipped data from the head; wal checkpointed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(%tenant, error = %e, "dropping shipped data failed; will retry")
            }
            Err(e) => tracing::error!(%tenant, error = %e, "dropping shipped data panicked"),
        }
    }
}

/// The next block range `[start, end)` to cut, if any, judged on `head`.
fn next_range(
    head: &crate::head::Head,
    range: i64,
    mode: CutMode,
    flush_upto: Option<i64>,
) -> Option<(i64, i64)> {
    let oldest = head.oldest_unshipped()?;
    match mode {
        CutMode::Auto => {
            let newest = head.max_time()?;
            if newest.saturating_sub(oldest) <= range.saturating_add(range / 2) {
                return None;
            }
        }
        CutMode::Flush => {
            if flush_upto.is_none_or(|upto| oldest > upto) {
                return None;
            }
        }
    }
    let start = oldest.div_euclid(range).saturating_mul(range);
    Some((start, start.saturating_add(range)))
}

async fn cut_tenant(
    ing: &Arc<Ingester>,
    tenant: &TenantId,
    db: &Arc<TenantDb>,
    mode: CutMode,
) -> Result<Vec<Flushed>> {
    let Some(bucket) = ing.bucket.clone() else {
        return Err(Error::Task("no bucket configured".into()));
    };
    let _cut = db.cut_lock.lock().await;
    let range = ing.config.block_range_ms.max(1);
    let flush_upto = db.head.read().max_time();
    let mut out = Vec::new();
    loop {
        let db2 = db.clone();
        let built = tokio::task::spawn_blocking(move || {
            // The range is chosen and snapshotted under one lock: no sample can slip in below
            // it unseen (an out-of-order one arriving later is capped at mark time).
            let Some((start, end, snapshot)) = db2.snapshot_next(|head| {
                let (start, end) = next_range(head, range, mode, flush_upto)?;
                // A flush ships what was there when it started: samples that lagging writers
                // add to the same range meanwhile wait for the next cut instead of making
                // tiny blocks.
                let snap_end = match (mode, flush_upto) {
                    (CutMode::Flush, Some(upto)) => end.min(upto.saturating_add(1)),
                    _ => end,
                };
                Some((start, end, snap_end))
            }) else {
                return Ok(None);
            };
            let mut marks = Vec::with_capacity(snapshot.len());
            let mut series = Vec::with_capacity(snapshot.len());
            for u in snapshot {
                let last = u.samples.last().map(|s| s.0);
                let last_h = u.histograms.last().map(|s| s.0);
                if let Some(last) = last.max(last_h) {
                    marks.push((u.id, last));
                    series.push((u.labels, u.samples, u.histograms));
                }
            }
            if series.is_empty() {
                return Ok(None);
            }
            writer::build_with_histograms(series, start, end, 1, vec![]).map(|b| Some((b, marks)))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::Task(format!("building block: {e}")))?;
        // Nothing to cut, or (never: the oldest unshipped sample is in the range) nothing in it.
        let Some(((bytes, mut meta), marks)) = built else {
            break;
        };
        let size = bytes.len();
        meta.stats.num_bytes = size as u64;
        bucket
            .upload_block(tenant, bytes, &meta)
            .await
            .map_err(|e| Error::Task(format!("uploading block: {e}")))?;
        bucket
            .add_to_index(tenant, &meta)
            .await
            .map_err(|e| Error::Task(format!("updating bucket index: {e}")))?;
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
        // Only now that the block is uploaded and listed are its samples marked shipped.
        let db2 = db.clone();
        tokio::task::spawn_blocking(move || db2.mark_shipped(marks))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
    }
    Ok(out)
}
