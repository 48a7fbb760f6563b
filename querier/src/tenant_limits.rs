//! Per-tenant query limits from the runtime config (`max_fetched_series_per_query`,
//! `max_fetched_chunk_bytes_per_query`, `max_query_lookback`), applied by wrapping the store a
//! query reads for its duration. `max_total_query_length` is checked by the API before
//! evaluation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::matcher::Matcher;
use muninn_tenancy::Limits;

use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};
use crate::{Error, Result};

/// One query's view of the store under its tenant's limits.
pub struct LimitedStore {
    inner: Arc<dyn SeriesSource>,
    limits: Arc<Limits>,
    /// Oldest timestamp the tenant may read (`max_query_lookback`).
    min_t: i64,
    series: AtomicU64,
    chunk_bytes: AtomicU64,
}

impl LimitedStore {
    /// The store as this query of a tenant with `limits` may see it; the store itself when
    /// no query limit is set.
    pub fn wrap(
        inner: Arc<dyn SeriesSource>,
        limits: Arc<Limits>,
        now_ms: i64,
    ) -> Arc<dyn SeriesSource> {
        let lookback = limits.max_query_lookback.as_millis_i64();
        if lookback == 0
            && limits.max_fetched_series_per_query == 0
            && limits.max_fetched_chunk_bytes_per_query == 0
        {
            return inner;
        }
        Arc::new(Self {
            inner,
            min_t: if lookback > 0 {
                now_ms.saturating_sub(lookback)
            } else {
                i64::MIN
            },
            limits,
            series: AtomicU64::new(0),
            chunk_bytes: AtomicU64::new(0),
        })
    }

    fn account(&self, data: &[SeriesData]) -> Result<()> {
        let max_series = self.limits.max_fetched_series_per_query;
        if max_series > 0 {
            let n = self.series.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if n > max_series {
                return Err(Error::Execution(format!(
                    "the query exceeded the maximum number of series it may fetch (max_fetched_series_per_query: {max_series})"
                )));
            }
        }
        let max_bytes = self.limits.max_fetched_chunk_bytes_per_query;
        if max_bytes > 0 {
            let bytes: u64 = data
                .iter()
                .map(|s| match &s.samples {
                    Samples::Raw(v) => (v.len() * 16) as u64,
                    Samples::Chunks { chunks, .. } => chunks.iter().map(|c| c.len() as u64).sum(),
                })
                .sum();
            let n = self.chunk_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            if n > max_bytes {
                return Err(Error::Execution(format!(
                    "the query exceeded the maximum chunk bytes it may fetch (max_fetched_chunk_bytes_per_query: {max_bytes})"
                )));
            }
        }
        Ok(())
    }
}

impl SeriesSource for LimitedStore {
    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        Box::pin(async move {
            let mint = mint.max(self.min_t);
            if maxt < mint {
                return Ok(vec![]);
            }
            let data = self
                .inner
                .select(tenant, matchers, mint, maxt, labels_only)
                .await?;
            self.account(&data)?;
            Ok(data)
        })
    }

    fn label_names<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        let mint = mint.max(self.min_t);
        if maxt < mint {
            return Box::pin(async { Ok(vec![]) });
        }
        self.inner.label_names(tenant, matchers, mint, maxt)
    }

    fn label_values<'a>(
        &'a self,
        tenant: &'a TenantId,
        name: &'a str,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        let mint = mint.max(self.min_t);
        if maxt < mint {
            return Box::pin(async { Ok(vec![]) });
        }
        self.inner.label_values(tenant, name, matchers, mint, maxt)
    }

    fn metadata<'a>(
        &'a self,
        tenant: &'a TenantId,
        family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>> {
        self.inner.metadata(tenant, family)
    }
}
