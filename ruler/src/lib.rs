//! The ruler: per-tenant recording and alerting rule groups, in Prometheus's rule-file
//! format, managed through the Cortex/Mimir ruler API and stored in object storage under the
//! tenant. Groups are sharded over the live rulers of the gossip ring (each group evaluated by
//! exactly one), evaluated with Muninn's PromQL engine at the group interval; recording
//! results and `ALERTS` go back through the push path, alerts to Alertmanager.
//!
//! - `rule_file`: the group format and its validation.
//! - `rule_store`: groups in the bucket.
//! - `manager`: syncing groups from the bucket, ownership, the evaluation loops.
//! - `group`: one group's evaluation, staleness, the API's JSON.
//! - `alerts`: the alert state machine (`for`, `keep_firing_for`, resolution).
//! - `template`: label and annotation templates.
//! - `notifier`: delivery to Alertmanager.
//! - `sharding`: which ruler owns a group.
//! - `api`: the HTTP API.

pub mod alerts;
pub mod api;
pub mod group;
pub mod manager;
pub mod metrics;
pub mod notifier;
pub mod rule_file;
pub mod rule_store;
pub mod sharding;
pub mod template;

pub use manager::Ruler;
use muninn_proto::duration::FlagDuration;

/// The ruler's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule group that does not parse or validate (400).
    #[error("{0}")]
    InvalidRules(String),
    /// A tenant limit on rules (400, as Mimir answers).
    #[error("{0}")]
    Limit(String),
    /// No such namespace or group (404).
    #[error("{0}")]
    NotFound(String),
    /// Object storage failed (500).
    #[error("rule storage: {0}")]
    Storage(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

/// The `--ruler.*` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct RulerArgs {
    /// Alertmanager base URLs (comma-separated); alerts go to `<url>/api/v2/alerts`. Empty:
    /// alerts are evaluated and shown by the API, not sent.
    #[arg(long = "ruler.alertmanager-url", value_delimiter = ',')]
    pub alertmanager_url: Vec<String>,
    /// Interval of groups that name none.
    #[arg(long = "ruler.evaluation-interval", default_value = "1m")]
    pub evaluation_interval: FlagDuration,
    /// How often each ruler re-reads every tenant's groups from the bucket (changes made
    /// through the API are also pushed to every ruler at once).
    #[arg(long = "ruler.poll-interval", default_value = "1m")]
    pub poll_interval: FlagDuration,
    /// Least time between two notifications of the same firing alert.
    #[arg(long = "ruler.resend-delay", default_value = "1m")]
    pub resend_delay: FlagDuration,
    /// URL alerts link back to (their `generatorURL`) and templates see as `$externalURL`.
    #[arg(long = "ruler.external-url", default_value = "")]
    pub external_url: String,
    /// Timeout of one request to Alertmanager.
    #[arg(long = "ruler.notification-timeout", default_value = "10s")]
    pub notification_timeout: FlagDuration,
    /// Alerts waiting for Alertmanager, per tenant (rounded up to whole batches of 256); more
    /// are dropped (counted).
    #[arg(long = "ruler.notification-queue-capacity", default_value_t = 10_000)]
    pub notification_queue_capacity: usize,
}
