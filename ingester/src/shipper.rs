//! Cutting the head into blocks and shipping them to the bucket.
//!
//! A flush builds, for every tenant and every block range (`--ingester.block-range`, aligned
//! to multiples of it as Prometheus aligns blocks) that the head covers, a Parquet block off the
//! async runtime, uploads it (data, then `meta.json`, retried with backoff) and rewrites the
//! tenant's bucket index. The head and WAL keep their data: queriers merge blocks with
//! ingester data and count identical samples once.

use std::sync::Arc;

use muninn_storage::block::writer;

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

/// Flushes every tenant's head to blocks; returns the blocks uploaded.
pub async fn flush(ing: &Arc<Ingester>) -> Result<Vec<Flushed>> {
    let Some(bucket) = ing.bucket.clone() else {
        return Err(Error::Task("no bucket configured".into()));
    };
    let range = ing.config.block_range_ms.max(1);
    let mut out = Vec::new();
    for (tenant, db) in ing.tenants.all() {
        let Some((min, max)) = db.head.read().time_range() else {
            continue;
        };
        let mut start = min.div_euclid(range) * range;
        let mut uploaded = false;
        while start <= max {
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
                    .upload_block(&tenant, bytes, &meta)
                    .await
                    .map_err(|e| Error::Task(format!("uploading block: {e}")))?;
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
                uploaded = true;
            }
            start = end;
        }
        if uploaded {
            bucket
                .write_index(&tenant)
                .await
                .map_err(|e| Error::Task(format!("writing bucket index: {e}")))?;
        }
    }
    Ok(out)
}
