//! The querier: the Prometheus HTTP API and PromQL over the ingesters (and, later, blocks).
//!
//! Read path: [`api`] (HTTP, parameters, JSON in Prometheus's exact shape) → [`promql`]
//! (PromQL, step-vectorised) → [`store::SeriesSource`] → [`ingester_client`] (gRPC fan-out,
//! chunk decoding, merge of replica copies). Every call carries the request's tenant, and
//! nothing is shared between tenants.

pub mod api;
pub mod block_store;
pub mod eval_threads;
pub mod ingester_client;
pub mod json;
pub mod mem_store;
pub mod merged_store;
pub mod metrics;
pub mod promql;
pub mod promqltest;
pub mod series_merge;
pub mod store;
pub mod tenant_limits;
pub mod tenant_stats;

use std::sync::Arc;

use store::SeriesSource;

/// Errors of the querier, each with its Prometheus API `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad parameters or query (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// A valid query the engine cannot evaluate yet (422 `execution`).
    #[error("{0}")]
    Unsupported(String),
    /// Object storage failed (503 `unavailable`).
    #[error("storage: {0}")]
    Storage(String),
    /// The query ran out of time (503 `timeout`).
    #[error("{0}")]
    Timeout(String),
    /// Evaluation failed (422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// An ingester failed (503 `unavailable`).
    #[error("ingester {addr}: {code}: {message}")]
    Ingester {
        addr: String,
        code: tonic::Code,
        message: String,
    },
    /// Too many ingesters failed for a complete answer (503 `unavailable`).
    #[error("{0}")]
    IngestersUnavailable(String),
    /// Data that does not decode (500 `internal`).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Flags owned by the querier.
#[derive(clap::Args, Clone, Debug)]
pub struct QuerierArgs {
    /// gRPC addresses of the ingesters to query (comma separated). Empty in `all` mode: the
    /// in-process ingester is used.
    #[arg(long = "querier.ingester-addrs", value_delimiter = ',')]
    pub ingester_addrs: Vec<String>,
    /// How far back an instant vector selector looks for a sample.
    #[arg(long = "querier.lookback-delta", default_value = "5m")]
    pub lookback_delta: muninn_proto::duration::FlagDuration,
    /// Longest a query may run (a `timeout` parameter may lower it).
    #[arg(long = "querier.timeout", default_value = "2m")]
    pub timeout: muninn_proto::duration::FlagDuration,
    /// Most samples a query may load into memory (as Prometheus's `--query.max-samples`).
    #[arg(long = "querier.max-samples", default_value_t = 50_000_000)]
    pub max_samples: usize,
    /// Most series one query may fetch from storage (0: no limit).
    #[arg(long = "querier.max-fetched-series-per-query", default_value_t = 0)]
    pub max_series: usize,
    /// Most memory one query's values may hold, labels included (estimated: label names and
    /// values of every series held plus 16 bytes a sample or step). A byte count or a size
    /// with a unit: `512MiB`, `1GiB`, `1GB`. 0: no limit.
    #[arg(long = "querier.max-memory-per-query", default_value = "1GiB")]
    pub max_memory_per_query: promql::limits::ByteSize,
    /// Most queries evaluated at once; more wait for a slot (within their timeout). With
    /// `--querier.max-memory-per-query` it bounds the memory of all queries together.
    /// 0: the number of CPU cores.
    #[arg(long = "querier.max-concurrent-queries", default_value_t = 0)]
    pub max_concurrent_queries: usize,
    /// With shuffle sharding, also ask ingesters that registered within this period: they may
    /// have displaced a shard member that still holds the tenant's recent data. Longer than
    /// the head keeps data (1.5 block ranges plus --ingester.retain-after-ship).
    #[arg(
        long = "querier.shuffle-sharding-ingesters-lookback-period",
        default_value = "4h"
    )]
    pub shuffle_sharding_lookback: muninn_proto::duration::FlagDuration,
}

/// A configured querier.
pub struct Querier {
    pub store: Arc<dyn SeriesSource>,
    /// The ingesters alone (head statistics: `status/tsdb`, `user_stats`).
    pub ingesters: Option<ingester_client::IngesterStore>,
    /// Tenant authentication and per-tenant query limits.
    pub tenancy: Arc<muninn_tenancy::Tenancy>,
    pub lookback_ms: i64,
    pub timeout: std::time::Duration,
    pub max_samples: usize,
    pub max_series: usize,
    /// Most bytes one query may hold (0: no limit).
    pub max_bytes: usize,
    /// Slots for queries being evaluated (`--querier.max-concurrent-queries`).
    pub eval_slots: tokio::sync::Semaphore,
    /// The threads evaluations run on, as many as slots (at most 256).
    pub eval_threads: eval_threads::EvalThreads,
    pub metrics: metrics::QuerierMetrics,
}

impl Querier {
    pub fn new(
        store: Arc<dyn SeriesSource>,
        ingesters: Option<ingester_client::IngesterStore>,
        tenancy: Arc<muninn_tenancy::Tenancy>,
        args: &QuerierArgs,
    ) -> Result<Arc<Self>> {
        let slots = match args.max_concurrent_queries {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n.min(tokio::sync::Semaphore::MAX_PERMITS),
        };
        let eval_threads = eval_threads::EvalThreads::start(slots.min(256), api::EVAL_STACK_BYTES)
            .map_err(|e| Error::Config(format!("starting evaluation threads: {e}")))?;
        Ok(Arc::new(Self {
            store,
            ingesters,
            tenancy,
            lookback_ms: args.lookback_delta.as_millis_i64().max(1),
            timeout: args.timeout.0.clamp(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_secs(365 * 86_400),
            ),
            max_samples: args.max_samples,
            max_series: args.max_series,
            max_bytes: usize::try_from(args.max_memory_per_query.0).unwrap_or(usize::MAX),
            eval_slots: tokio::sync::Semaphore::new(slots),
            eval_threads,
            metrics: metrics::QuerierMetrics::default(),
        }))
    }

    /// The store as one query of `tenant` may read it (its query limits applied).
    pub fn store_for(&self, tenant: &muninn_proto::tenant::TenantId) -> Arc<dyn SeriesSource> {
        let t = metrics::TenantLabels {
            tenant: tenant.to_string(),
        };
        tenant_limits::LimitedStore::wrap(
            self.store.clone(),
            self.tenancy.overrides.get(tenant.as_str()),
            muninn_proto::time::now_ms(),
            tenant_limits::Usage {
                series: self.metrics.fetched_series.get_or_create(&t).clone(),
                samples: self.metrics.fetched_samples.get_or_create(&t).clone(),
                chunk_bytes: self.metrics.fetched_chunk_bytes.get_or_create(&t).clone(),
            },
        )
    }

    /// The API routes under `/api/v1` and `/prometheus/api/v1`.
    pub fn http_router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }
}
