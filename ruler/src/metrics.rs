//! The ruler's own metrics (`muninn_ruler_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Counters and gauges of rule evaluation and alert delivery.
pub struct RulerMetrics {
    pub evaluations: Family<TenantLabels, Counter>,
    pub evaluation_failures: Family<TenantLabels, Counter>,
    pub missed_iterations: Family<TenantLabels, Counter>,
    pub samples_written: Family<TenantLabels, Counter>,
    pub write_failures: Family<TenantLabels, Counter>,
    pub evaluation_seconds: Histogram,
    /// Rule groups this ruler evaluates.
    pub groups_owned: Gauge,
    /// Rule groups of every tenant in the bucket at the last sync.
    pub groups_loaded: Gauge,
    pub syncs: Family<OutcomeLabels, Counter>,
    pub notifications: Family<OutcomeLabels, Counter>,
    pub alerts_sent: Counter,
}

impl Default for RulerMetrics {
    fn default() -> Self {
        Self {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            missed_iterations: Family::default(),
            samples_written: Family::default(),
            write_failures: Family::default(),
            evaluation_seconds: Histogram::new([0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0]),
            groups_owned: Gauge::default(),
            groups_loaded: Gauge::default(),
            syncs: Family::default(),
            notifications: Family::default(),
            alerts_sent: Counter::default(),
        }
    }
}

impl RulerMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_ruler");
        r.register(
            "group_evaluations",
            "Rule group evaluations by tenant",
            self.evaluations.clone(),
        );
        r.register(
            "group_evaluation_failures",
            "Rule evaluations that failed (query, template or write) by tenant",
            self.evaluation_failures.clone(),
        );
        r.register(
            "group_missed_iterations",
            "Group evaluations skipped because the previous one ran past its interval",
            self.missed_iterations.clone(),
        );
        r.register(
            "samples_written",
            "Samples written back through the push path (recording rules, ALERTS, staleness markers)",
            self.samples_written.clone(),
        );
        r.register(
            "write_failures",
            "Rule result writes the push path refused",
            self.write_failures.clone(),
        );
        r.register(
            "group_evaluation_duration_seconds",
            "Time one group evaluation took",
            self.evaluation_seconds.clone(),
        );
        r.register(
            "groups_owned",
            "Rule groups this ruler evaluates",
            self.groups_owned.clone(),
        );
        r.register(
            "groups_loaded",
            "Rule groups of every tenant found at the last sync",
            self.groups_loaded.clone(),
        );
        r.register(
            "syncs",
            "Rule syncs from the bucket by outcome",
            self.syncs.clone(),
        );
        r.register(
            "notifications",
            "Alertmanager requests by outcome (sent, error, dropped)",
            self.notifications.clone(),
        );
        r.register(
            "alerts_sent",
            "Alerts sent to Alertmanager",
            self.alerts_sent.clone(),
        );
    }

    pub fn tenant(t: &str) -> TenantLabels {
        TenantLabels {
            tenant: t.to_string(),
        }
    }

    pub fn outcome(o: &str) -> OutcomeLabels {
        OutcomeLabels {
            outcome: o.to_string(),
        }
    }
}
