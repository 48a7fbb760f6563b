//! The querier's self-instrumentation.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub endpoint: String,
    pub outcome: String,
}

/// Query outcomes.
#[derive(Default)]
pub struct QuerierMetrics {
    /// PromQL queries by endpoint and outcome (success, error, timeout, canceled).
    pub queries: Family<OutcomeLabels, Counter>,
    /// What queries fetched from storage, per tenant (usage, billing).
    pub fetched_series: Family<TenantLabels, Counter>,
    pub fetched_samples: Family<TenantLabels, Counter>,
    pub fetched_chunk_bytes: Family<TenantLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

impl QuerierMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_querier");
        r.register(
            "queries",
            "PromQL queries by endpoint and outcome",
            self.queries.clone(),
        );
        r.register(
            "fetched_series",
            "Series fetched from ingesters and blocks by queries, per tenant",
            self.fetched_series.clone(),
        );
        r.register(
            "fetched_samples",
            "Samples fetched by queries (whole chunks), per tenant",
            self.fetched_samples.clone(),
        );
        r.register(
            "fetched_chunk_bytes",
            "Chunk bytes fetched by queries, per tenant",
            self.fetched_chunk_bytes.clone(),
        );
    }

    pub fn count(&self, endpoint: &str, outcome: &str) {
        self.queries
            .get_or_create(&OutcomeLabels {
                endpoint: endpoint.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}
