//! The query frontend's self-instrumentation (`muninn_frontend_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The HTTP status a querier answered, or `error` when none was reached.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

fn wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 3.0, 12))
}

/// The frontend's counters, gauges and histograms.
pub struct FrontendMetrics {
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_errors: Counter,
    pub queue_duration: Family<TenantLabels, Histogram, fn() -> Histogram>,
    pub queue_length: Family<TenantLabels, Gauge>,
    pub rejected: Family<TenantLabels, Counter>,
    pub downstream_requests: Family<StatusLabels, Counter>,
    pub retries: Counter,
    pub split_queries: Counter,
    pub sharded_queries: Counter,
    pub queries: Family<EndpointLabels, Counter>,
}

impl Default for FrontendMetrics {
    fn default() -> Self {
        Self {
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_errors: Counter::default(),
            queue_duration: Family::new_with_constructor(wait_histogram),
            queue_length: Family::default(),
            rejected: Family::default(),
            downstream_requests: Family::default(),
            retries: Counter::default(),
            split_queries: Counter::default(),
            sharded_queries: Counter::default(),
            queries: Family::default(),
        }
    }
}

impl FrontendMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_frontend");
        r.register(
            "results_cache_hits",
            "Range-query pieces answered from the results cache alone",
            self.cache_hits.clone(),
        );
        r.register(
            "results_cache_misses",
            "Range-query pieces the results cache could not answer (wholly or partly)",
            self.cache_misses.clone(),
        );
        r.register(
            "results_cache_errors",
            "Results-cache reads and writes that failed (the query went on without the cache)",
            self.cache_errors.clone(),
        );
        r.register(
            "queue_duration_seconds",
            "Time sub-requests waited in their tenant's queue for a querier slot",
            self.queue_duration.clone(),
        );
        r.register(
            "queue_length",
            "Sub-requests waiting in the tenant's queue",
            self.queue_length.clone(),
        );
        r.register(
            "rejected_requests",
            "Requests refused with 429: the tenant had too many waiting",
            self.rejected.clone(),
        );
        r.register(
            "downstream_requests",
            "Sub-requests sent to queriers, by the status they answered",
            self.downstream_requests.clone(),
        );
        r.register(
            "retries",
            "Sub-requests sent again after a 5xx or an unreachable querier",
            self.retries.clone(),
        );
        r.register(
            "split_queries",
            "Pieces range queries were split into",
            self.split_queries.clone(),
        );
        r.register(
            "sharded_queries",
            "Queries run as shards by series hash",
            self.sharded_queries.clone(),
        );
        r.register(
            "queries",
            "Requests the frontend served, by endpoint",
            self.queries.clone(),
        );
    }

    fn tenant(t: &str) -> TenantLabels {
        TenantLabels {
            tenant: t.to_string(),
        }
    }

    pub fn observe_queue_wait(&self, tenant: &str, seconds: f64) {
        self.queue_duration
            .get_or_create(&Self::tenant(tenant))
            .observe(seconds);
    }

    pub fn set_queue_length(&self, tenant: &str, n: usize) {
        self.queue_length
            .get_or_create(&Self::tenant(tenant))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn rejected(&self, tenant: &str) {
        self.rejected.get_or_create(&Self::tenant(tenant)).inc();
    }

    pub fn downstream(&self, status: &str) {
        self.downstream_requests
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    pub fn query(&self, endpoint: &str) {
        self.queries
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .inc();
    }
}
