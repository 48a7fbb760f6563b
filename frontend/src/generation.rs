//! Per-tenant results-cache generations, read from the bucket
//! (`<tenant>/markers/results-cache-generation`, raised by the compactor when retention
//! removes data) and kept for `--query-frontend.results-cache.generation-refresh-interval`.
//! The generation is part of every cache key: once it changes, results computed before are
//! no longer served.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use muninn_proto::tenant::TenantId;
use muninn_storage::bucket::Bucket;
use parking_lot::Mutex;

/// The generations of the tenants seen lately.
pub struct Generations {
    bucket: Option<Bucket>,
    refresh: Duration,
    known: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Generations {
    /// Generations read from `bucket` (none: always 0).
    pub fn new(bucket: Option<Bucket>, refresh: Duration) -> Self {
        Self {
            bucket,
            refresh,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's generation, or `None` if it cannot be read (the cache is then skipped:
    /// serving results of an unknown generation could serve removed data).
    pub async fn get(&self, tenant: &str) -> Option<u64> {
        let Some(bucket) = &self.bucket else {
            return Some(0);
        };
        if let Some((g, at)) = self.known.lock().get(tenant)
            && at.elapsed() < self.refresh
        {
            return Some(*g);
        }
        let id = TenantId::new(tenant).ok()?;
        match bucket.results_cache_generation(&id).await {
            Ok(g) => {
                self.known
                    .lock()
                    .insert(tenant.to_string(), (g, Instant::now()));
                Some(g)
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "reading the results-cache generation failed; not using the cache");
                None
            }
        }
    }
}
