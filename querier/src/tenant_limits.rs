//! Per-tenant query limits from the runtime config (`max_fetched_series_per_query`,
//! `max_fetched_chunk_bytes_per_query`, `max_query_lookback`), applied by wrapping the store a
//! query reads for its duration, which also counts what the tenant fetched
//! (`muninn_querier_fetched_{series,samples,chunk_bytes}_total{tenant}`).
//! `max_total_query_length` is checked by the API before evaluation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::matcher::Matcher;
use muninn_tenancy::Limits;
use prometheus_client::metrics::counter::Counter;

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
    usage: Usage,
}

/// The tenant's usage counters.
pub struct Usage {
    pub series: Counter,
    pub samples: Counter,
    pub chunk_bytes: Counter,
}

impl LimitedStore {
    /// The store as one query of a tenant with `limits` may see it.
    pub fn wrap(
        inner: Arc<dyn SeriesSource>,
        limits: Arc<Limits>,
        now_ms: i64,
        usage: Usage,
    ) -> Arc<dyn SeriesSource> {
        let lookback = limits.max_query_lookback.as_millis_i64();
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
            usage,
        })
    }

    fn account(&self, data: &[SeriesData]) -> Result<()> {
        let (mut samples, mut bytes) = (0u64, 0u64);
        for s in data {
            match &s.samples {
                Samples::Raw(v) => {
                    samples += v.len() as u64;
                    bytes += (v.len() * 16) as u64;
                }
                Samples::Chunks { chunks, .. } => {
                    for c in chunks {
                        samples += c.num_samples();
                        bytes += c.byte_len() as u64;
                    }
                }
            }
        }
        self.usage.series.inc_by(data.len() as u64);
        self.usage.samples.inc_by(samples);
        self.usage.chunk_bytes.inc_by(bytes);
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
    fn select_stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<crate::store::SeriesStream<'a>>> {
        use futures::StreamExt;
        Box::pin(async move {
            let mint = mint.max(self.min_t);
            if maxt < mint {
                let empty: crate::store::SeriesStream<'a> = Box::pin(futures::stream::empty());
                return Ok(empty);
            }
            let inner = self
                .inner
                .select_stream(tenant, matchers, mint, maxt)
                .await?;
            // Limits and usage are counted series by series, as they arrive.
            let s: crate::store::SeriesStream<'a> = inner
                .map(move |r| {
                    let s = r?;
                    self.account(std::slice::from_ref(&s))?;
                    Ok(s)
                })
                .boxed();
            Ok(s)
        })
    }

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
