//! Per-tenant limits, named as Mimir names them so that runtime config files carry over, and
//! the `--limits.*` flags that give their defaults.
//!
//! Defaults set no rate and no series limit: a single-user `muninn all` never meets one.
//! `docs/tenancy.md` has a recommended profile for a multi-tenant install.

use muninn_proto::duration::FlagDuration;
use serde::{Deserialize, Serialize};

/// One tenant's limits. `0` means unlimited for counts, rates and durations alike, except where
/// noted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Samples per second a tenant may push (token bucket refilled at this rate).
    pub ingestion_rate: f64,
    /// Samples one burst may hold; 0: one second's worth of `ingestion_rate`.
    pub ingestion_burst_size: u64,
    /// Series a tenant may hold in ingesters, counted before replication.
    pub max_global_series_per_user: u64,
    /// Series one metric name may have, counted before replication.
    pub max_global_series_per_metric: u64,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Longest metric family name, help or unit in a metadata entry.
    pub max_metadata_length: usize,
    /// Samples newer than now plus this are refused (`too_far_in_future`).
    #[serde(with = "dur")]
    pub creation_grace_period: FlagDuration,
    /// Samples up to this far behind the tenant's newest sample are accepted out of order.
    #[serde(with = "dur")]
    pub out_of_order_time_window: FlagDuration,
    /// Series one query may fetch (422 past it).
    pub max_fetched_series_per_query: u64,
    /// Chunk bytes one query may fetch (422 past it).
    pub max_fetched_chunk_bytes_per_query: u64,
    /// Queries see no data older than this (their start is moved up).
    #[serde(with = "dur")]
    pub max_query_lookback: FlagDuration,
    /// Longest `end - start` of a range query (400 past it).
    #[serde(with = "dur")]
    pub max_total_query_length: FlagDuration,
    /// Blocks older than this are deleted by the compactor.
    #[serde(with = "dur")]
    pub compactor_blocks_retention_period: FlagDuration,
    /// Ingesters a tenant's series are spread over (shuffle sharding); 0: all of them.
    pub ingestion_tenant_shard_size: usize,
    /// Exemplars a tenant keeps in ingesters' memory (counted before replication); 0: none
    /// are stored.
    pub max_global_exemplars_per_user: u64,
    /// Sub-queries (split intervals, shards) of this tenant the query frontend runs at once.
    pub max_query_parallelism: usize,
    /// Rule groups the tenant may store in the ruler; 0: no limit.
    pub ruler_max_rule_groups_per_tenant: usize,
    /// Rules one of the tenant's groups may hold; 0: no limit.
    pub ruler_max_rules_per_rule_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ingestion_rate: 0.0,
            ingestion_burst_size: 0,
            max_global_series_per_user: 0,
            max_global_series_per_metric: 0,
            max_label_names_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_metadata_length: 1024,
            creation_grace_period: FlagDuration(std::time::Duration::from_secs(600)),
            out_of_order_time_window: FlagDuration::default(),
            max_fetched_series_per_query: 0,
            max_fetched_chunk_bytes_per_query: 0,
            max_query_lookback: FlagDuration::default(),
            max_total_query_length: FlagDuration::default(),
            compactor_blocks_retention_period: FlagDuration::default(),
            ingestion_tenant_shard_size: 0,
            max_global_exemplars_per_user: 0,
            max_query_parallelism: 14,
            ruler_max_rule_groups_per_tenant: 70,
            ruler_max_rules_per_rule_group: 20,
        }
    }
}

impl Limits {
    /// The bucket size of the rate limiter.
    pub fn burst(&self) -> f64 {
        if self.ingestion_burst_size > 0 {
            self.ingestion_burst_size as f64
        } else {
            self.ingestion_rate
        }
    }

    pub fn out_of_order_window_ms(&self) -> i64 {
        self.out_of_order_time_window.as_millis_i64()
    }
}

/// Serde for durations as Mimir's files write them: `"10m"`, `"1h30m"`, or seconds.
mod dur {
    use muninn_proto::duration::FlagDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &FlagDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FlagDuration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The `--limits.*` flags: the defaults of every tenant without an override.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitsArgs {
    /// Samples per second each tenant may push; 0: unlimited. Over it a push gets 429.
    #[arg(long = "limits.ingestion-rate", default_value_t = 0.0)]
    pub ingestion_rate: f64,
    /// Largest burst of samples; 0: one second of --limits.ingestion-rate.
    #[arg(long = "limits.ingestion-burst-size", default_value_t = 0)]
    pub ingestion_burst_size: u64,
    /// Series per tenant (before replication); 0: unlimited.
    #[arg(long = "limits.max-global-series-per-user", default_value_t = 0)]
    pub max_global_series_per_user: u64,
    /// Series per metric name and tenant (before replication); 0: unlimited.
    #[arg(long = "limits.max-global-series-per-metric", default_value_t = 0)]
    pub max_global_series_per_metric: u64,
    /// Most labels a series may have.
    #[arg(
        long = "limits.max-label-names-per-series",
        alias = "validation.max-label-names-per-series",
        default_value_t = 30
    )]
    pub max_label_names_per_series: usize,
    /// Longest label name accepted.
    #[arg(
        long = "limits.max-label-name-length",
        alias = "validation.max-label-name-length",
        default_value_t = 1024
    )]
    pub max_label_name_length: usize,
    /// Longest label value accepted.
    #[arg(
        long = "limits.max-label-value-length",
        alias = "validation.max-label-value-length",
        default_value_t = 2048
    )]
    pub max_label_value_length: usize,
    /// Longest metric name, help or unit in a metadata entry.
    #[arg(long = "limits.max-metadata-length", default_value_t = 1024)]
    pub max_metadata_length: usize,
    /// Samples further than this ahead of the ingester's clock are refused.
    #[arg(
        long = "limits.creation-grace-period",
        alias = "validation.create-grace-period",
        default_value = "10m"
    )]
    pub creation_grace_period: FlagDuration,
    /// Accept samples up to this far behind the tenant's newest sample out of order; 0: none.
    #[arg(long = "limits.out-of-order-time-window", default_value = "0s")]
    pub out_of_order_time_window: FlagDuration,
    /// Series one query may fetch; 0: unlimited.
    #[arg(long = "limits.max-fetched-series-per-query", default_value_t = 0)]
    pub max_fetched_series_per_query: u64,
    /// Chunk bytes one query may fetch; 0: unlimited.
    #[arg(long = "limits.max-fetched-chunk-bytes-per-query", default_value_t = 0)]
    pub max_fetched_chunk_bytes_per_query: u64,
    /// Queries see no data older than this; 0: no limit.
    #[arg(long = "limits.max-query-lookback", default_value = "0s")]
    pub max_query_lookback: FlagDuration,
    /// Longest time range of a query; 0: no limit.
    #[arg(long = "limits.max-total-query-length", default_value = "0s")]
    pub max_total_query_length: FlagDuration,
    /// Blocks older than this are deleted by the compactor; 0: kept forever.
    #[arg(
        long = "limits.compactor-blocks-retention-period",
        alias = "compactor.retention",
        default_value = "0s"
    )]
    pub compactor_blocks_retention_period: FlagDuration,
    /// Ingesters each tenant's series go to (shuffle sharding); 0: all.
    #[arg(long = "limits.ingestion-tenant-shard-size", default_value_t = 0)]
    pub ingestion_tenant_shard_size: usize,
    /// Exemplars each tenant keeps in memory (before replication); 0: exemplars are dropped.
    #[arg(long = "limits.max-global-exemplars-per-user", default_value_t = 0)]
    pub max_global_exemplars_per_user: u64,
    /// Sub-queries (split intervals, shards) of one tenant the query frontend runs at once;
    /// the rest wait in the tenant's queue.
    #[arg(long = "limits.max-query-parallelism", default_value_t = 14)]
    pub max_query_parallelism: usize,
    /// Rule groups each tenant may store in the ruler; 0: no limit.
    #[arg(long = "limits.ruler-max-rule-groups-per-tenant", default_value_t = 70)]
    pub ruler_max_rule_groups_per_tenant: usize,
    /// Rules one rule group may hold; 0: no limit.
    #[arg(long = "limits.ruler-max-rules-per-rule-group", default_value_t = 20)]
    pub ruler_max_rules_per_rule_group: usize,
}

impl From<&LimitsArgs> for Limits {
    fn from(a: &LimitsArgs) -> Self {
        Self {
            ingestion_rate: a.ingestion_rate.max(0.0),
            ingestion_burst_size: a.ingestion_burst_size,
            max_global_series_per_user: a.max_global_series_per_user,
            max_global_series_per_metric: a.max_global_series_per_metric,
            max_label_names_per_series: a.max_label_names_per_series,
            max_label_name_length: a.max_label_name_length,
            max_label_value_length: a.max_label_value_length,
            max_metadata_length: a.max_metadata_length,
            creation_grace_period: a.creation_grace_period,
            out_of_order_time_window: a.out_of_order_time_window,
            max_fetched_series_per_query: a.max_fetched_series_per_query,
            max_fetched_chunk_bytes_per_query: a.max_fetched_chunk_bytes_per_query,
            max_query_lookback: a.max_query_lookback,
            max_total_query_length: a.max_total_query_length,
            compactor_blocks_retention_period: a.compactor_blocks_retention_period,
            ingestion_tenant_shard_size: a.ingestion_tenant_shard_size,
            max_global_exemplars_per_user: a.max_global_exemplars_per_user,
            max_query_parallelism: a.max_query_parallelism.max(1),
            ruler_max_rule_groups_per_tenant: a.ruler_max_rule_groups_per_tenant,
            ruler_max_rules_per_rule_group: a.ruler_max_rules_per_rule_group,
        }
    }
}
