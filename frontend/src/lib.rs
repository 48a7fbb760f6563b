//! The query frontend (`muninn query-frontend`, and in front of the querier in `muninn all`):
//! it serves the Prometheus HTTP API and forwards to queriers, after Cortex's and Mimir's
//! query frontend.
//!
//! Range-query path: [`api`] (tenant, parameters) → [`split`] (pieces by
//! `--query-frontend.split-queries-by-interval`, step-aligned) → [`extents`] (what the
//! [`cache`] already holds for each piece, what must be fetched) → [`queue`] (per-tenant fair
//! queue, `max_query_parallelism`) → [`downstream`] (a querier over HTTP, or the in-process
//! one; 5xx retried) → [`matrix`] (responses merged into the one the whole query gives).
//! Other endpoints are forwarded through the queue as they are.

pub mod api;
pub mod cache;
pub mod downstream;
pub mod extents;
pub mod generation;
pub mod matrix;
pub mod metrics;
pub mod queue;
pub mod shard;
pub mod split;

use std::sync::Arc;

use muninn_proto::duration::FlagDuration;

/// Errors of the query frontend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A querier could not be reached or did not answer (502 to the client).
    #[error("querier: {0}")]
    Downstream(String),
    /// A querier's answer is not the JSON it should be (502).
    #[error("decoding a querier response: {0}")]
    Decode(String),
    /// The tenant has too many requests waiting (429).
    #[error("too many outstanding requests for this tenant ({0} queued)")]
    TooManyOutstanding(usize),
    /// The results cache failed; the query goes on without it.
    #[error("results cache: {0}")]
    Cache(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Flags owned by the query frontend.
#[derive(clap::Args, Clone, Debug)]
pub struct FrontendArgs {
    /// Base URLs of the queriers to forward to (comma separated, e.g.
    /// `http://querier:9009`); requests go round-robin. Empty in `all`: the in-process querier.
    #[arg(long = "query-frontend.downstream-url", value_delimiter = ',')]
    pub downstream_url: Vec<String>,
    /// Range queries are split into pieces of this interval (aligned to multiples of it,
    /// each piece on the query's step grid), run in parallel and cached per piece. 0: no
    /// splitting (nor results caching).
    #[arg(
        long = "query-frontend.split-queries-by-interval",
        default_value = "24h"
    )]
    pub split_interval: FlagDuration,
    /// Results newer than now minus this are never cached (recent data may still change).
    #[arg(long = "query-frontend.max-cache-freshness", default_value = "10m")]
    pub max_cache_freshness: FlagDuration,
    /// Cache range-query results (per tenant, query, step and split interval).
    #[arg(long = "query-frontend.cache-results", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cache_results: bool,
    /// Memory the in-process results cache may hold (least recently used entries go first).
    #[arg(
        long = "query-frontend.results-cache.max-size-bytes",
        default_value_t = 256 << 20
    )]
    pub cache_max_bytes: usize,
    /// How long a tenant's results-cache generation (raised by the compactor when retention
    /// removes data; part of every cache key) is used before it is read from the bucket again.
    #[arg(
        long = "query-frontend.results-cache.generation-refresh-interval",
        default_value = "1m"
    )]
    pub generation_refresh: FlagDuration,
    /// memcached servers (`host:port`, comma separated) for the results cache instead of the
    /// in-process one; keys are spread over them by hash.
    #[arg(
        long = "query-frontend.results-cache.memcached-addresses",
        value_delimiter = ','
    )]
    pub memcached_addresses: Vec<String>,
    /// Shardable aggregations are split into this many shards by series hash, run in
    /// parallel and merged. 0 or 1: no sharding.
    #[arg(
        long = "query-frontend.query-sharding-total-shards",
        default_value_t = 16
    )]
    pub sharding_total_shards: usize,
    /// A sub-request that fails with a 5xx or cannot reach a querier is retried this many
    /// times.
    #[arg(long = "query-frontend.max-retries-per-request", default_value_t = 5)]
    pub max_retries: usize,
    /// Sub-requests of one tenant that may wait in its queue; past it, new requests get 429.
    #[arg(
        long = "query-frontend.max-outstanding-requests-per-tenant",
        default_value_t = 100
    )]
    pub max_outstanding_per_tenant: usize,
    /// Sub-requests in flight to the queriers, all tenants together (the queriers' worker
    /// slots); tenants take turns for them.
    #[arg(long = "query-frontend.querier-concurrency", default_value_t = 16)]
    pub querier_concurrency: usize,
}

/// A configured query frontend.
pub struct Frontend {
    pub args: FrontendArgs,
    pub downstream: Arc<dyn downstream::Downstream>,
    pub cache: Option<Arc<dyn cache::ResultsCache>>,
    pub queue: queue::FairQueue,
    pub generations: generation::Generations,
    /// The queriers' `--querier.max-fetched-series-per-query` (0: none), which a sharded
    /// query would apply per shard.
    pub querier_series_limit: usize,
    /// The queriers' `--querier.timeout`: a split or sharded query as a whole is held to
    /// it (or to a shorter `timeout` parameter), as one querier would hold it.
    pub querier_timeout: std::time::Duration,
    pub tenancy: Arc<muninn_tenancy::Tenancy>,
    pub metrics: Arc<metrics::FrontendMetrics>,
}

impl Frontend {
    /// A frontend forwarding to `downstream`, with the results cache the flags choose; the
    /// tenants' cache generations are read from `bucket`.
    pub fn new(
        args: &FrontendArgs,
        downstream: Arc<dyn downstream::Downstream>,
        tenancy: Arc<muninn_tenancy::Tenancy>,
        bucket: Option<muninn_storage::bucket::Bucket>,
        querier_series_limit: usize,
        querier_timeout: std::time::Duration,
    ) -> Result<Arc<Self>> {
        let metrics = Arc::new(metrics::FrontendMetrics::default());
        let cache: Option<Arc<dyn cache::ResultsCache>> = if !args.cache_results {
            None
        } else if args.memcached_addresses.is_empty() {
            Some(Arc::new(cache::LruResultsCache::new(args.cache_max_bytes)))
        } else {
            Some(Arc::new(cache::Memcached::new(&args.memcached_addresses)?))
        };
        let queue = queue::FairQueue::new(
            args.querier_concurrency.max(1),
            args.max_outstanding_per_tenant.max(1),
            tenancy.overrides.clone(),
            metrics.clone(),
        );
        Ok(Arc::new(Self {
            args: args.clone(),
            downstream,
            cache,
            queue,
            generations: generation::Generations::new(bucket, args.generation_refresh.0),
            querier_series_limit,
            querier_timeout,
            tenancy,
            metrics,
        }))
    }

    /// How many shards `tenant`'s queries run as: none while a per-query fetch limit is in
    /// force (a shard fetches less, so the limit would no longer hold for the query).
    pub fn shards_for(&self, tenant: &str) -> usize {
        let limits = self.tenancy.overrides.get(tenant);
        if self.querier_series_limit > 0
            || limits.max_fetched_series_per_query > 0
            || limits.max_fetched_chunk_bytes_per_query > 0
        {
            0
        } else {
            self.args.sharding_total_shards
        }
    }

    /// How long a query may run: the queriers' timeout, or a shorter `timeout` parameter.
    pub fn timeout(&self, p: &muninn_querier::api::params::Params) -> std::time::Duration {
        let limit = self
            .querier_timeout
            .max(std::time::Duration::from_millis(1));
        match p.duration("timeout") {
            Ok(Some(ms)) if ms > 0 => limit.min(std::time::Duration::from_millis(ms as u64)),
            _ => limit,
        }
    }

    /// The API routes under `/api/v1` and `/prometheus/api/v1`.
    pub fn http_router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }
}
