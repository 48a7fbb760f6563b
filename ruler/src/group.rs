//! One rule group's evaluation: its rules in order, each query run at the group's timestamp
//! through Muninn's PromQL engine; recording results and the `ALERTS`/`ALERTS_FOR_STATE`
//! series become samples for the push path, with a staleness marker for every series a rule
//! returned last time and no longer returns (Prometheus's `rules/group.go`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use muninn_proto::prometheus::{Label as PLabel, Sample, TimeSeries};
use muninn_proto::tenant::TenantId;
use muninn_querier::promql::{Point, QueryValue};
use promql_parser::parser::Expr;

use crate::alerts::{ActiveAlerts, Alert, AlertState, Returned};
use crate::rule_file::{RuleDef, RuleGroup, duration_ms};
use crate::template;

/// A series' labels, sorted by name (`__name__` included where it has one).
pub type LabelSet = Vec<(String, String)>;

/// Identifies a group: tenant, namespace (the rule file), group name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub tenant: TenantId,
    pub namespace: String,
    pub name: String,
}

impl GroupKey {
    /// The string the ring hashes to place the group.
    pub fn shard_key(&self) -> String {
        format!(
            "{}\0{}\0{}",
            self.tenant.as_str(),
            self.namespace,
            self.name
        )
    }
}

/// A rule's health after its last evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A rule and what its evaluations left.
pub struct Rule {
    pub def: RuleDef,
    pub expr: Expr,
    pub for_ms: i64,
    pub keep_firing_ms: i64,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
    /// The series this rule wrote at its last successful evaluation.
    pub written: HashSet<LabelSet>,
    pub alerts: ActiveAlerts,
    /// An alerting rule's label and annotation templates, parsed once.
    label_templates: Vec<(String, template::Compiled)>,
    annotation_templates: Vec<(String, template::Compiled)>,
}

/// A group's state.
pub struct Group {
    pub key: GroupKey,
    pub def: RuleGroup,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
    pub rules: Vec<Rule>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
    /// Series of rules a replaced version of this group had and this one lacks: staleness
    /// markers at the next evaluation.
    pending_stale: Vec<LabelSet>,
    /// Whether alerting rules restore their `for` state from `ALERTS_FOR_STATE` at the next
    /// evaluation (a group that starts here without the state of a replaced version: after
    /// a restart, or moved from another ruler).
    restore_for_state: bool,
}

/// What evaluation needs from the process.
pub struct EvalEnv {
    pub querier: Arc<muninn_querier::Querier>,
    pub external_url: String,
    pub resend_delay_ms: i64,
}

/// One evaluation's output.
#[derive(Default)]
pub struct Output {
    pub series: Vec<TimeSeries>,
    /// Alerts to send to Alertmanager, with their rule's expression.
    pub alerts: Vec<(Alert, String)>,
    pub failures: u64,
}

fn stale_nan() -> f64 {
    f64::from_bits(muninn_storage::STALE_NAN_BITS)
}

fn series(labels: &LabelSet, ts: i64, value: f64) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| PLabel {
                name: n.clone(),
                value: v.clone(),
            })
            .collect(),
        samples: vec![Sample {
            value,
            timestamp: ts,
        }],
        ..Default::default()
    }
}

/// Sets (or, with an empty value, removes) `name` in a sorted label set.
fn set_label(ls: &mut LabelSet, name: &str, value: String) {
    match ls.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            ls.remove(i);
        }
        Ok(i) => ls[i].1 = value,
        Err(_) if value.is_empty() => {}
        Err(i) => ls.insert(i, (name.to_string(), value)),
    }
}

impl Group {
    /// A group ready to evaluate; `default_interval_ms` applies where it names none.
    pub fn new(key: GroupKey, def: RuleGroup, default_interval_ms: i64) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(def.rules.len());
        for r in &def.rules {
            let expr = muninn_querier::promql::parse::parse(&r.expr)?;
            let compile = |m: &BTreeMap<String, String>| -> Result<Vec<_>, String> {
                m.iter()
                    .map(|(k, v)| template::Compiled::new(v).map(|c| (k.clone(), c)))
                    .collect()
            };
            rules.push(Rule {
                label_templates: compile(&r.labels)?,
                annotation_templates: compile(&r.annotations)?,
                def: r.clone(),
                expr,
                for_ms: duration_ms("for", r.for_.as_deref())
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0),
                keep_firing_ms: duration_ms("keep_firing_for", r.keep_firing_for.as_deref())
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0),
                health: Health::Unknown,
                last_error: None,
                last_eval_ms: None,
                eval_seconds: 0.0,
                written: HashSet::new(),
                alerts: ActiveAlerts::default(),
            });
        }
        Ok(Self {
            interval_ms: def.interval_ms(default_interval_ms),
            query_offset_ms: duration_ms("query_offset", def.query_offset.as_deref())
                .map_err(|e| e.to_string())?
                .unwrap_or(0),
            key,
            def,
            rules,
            last_eval_ms: None,
            eval_seconds: 0.0,
            pending_stale: vec![],
            restore_for_state: true,
        })
    }

    /// Takes over the state of `old`, the version of this group it replaces (Prometheus's
    /// `CopyState`): a rule with the same name and labels keeps its alerts, the series it
    /// wrote and its health; the series of old rules left unmatched get staleness markers at
    /// the next evaluation.
    pub fn copy_state(&mut self, old: Group) {
        let key = |d: &RuleDef| (d.name().to_string(), d.labels.clone(), d.alert.is_some());
        let mut unmatched: Vec<Option<Rule>> = old.rules.into_iter().map(Some).collect();
        for rule in &mut self.rules {
            let k = key(&rule.def);
            let Some(slot) = unmatched
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| key(&o.def) == k))
            else {
                continue;
            };
            let Some(o) = slot.take() else {
                continue;
            };
            rule.written = o.written;
            rule.alerts = o.alerts;
            rule.health = o.health;
            rule.last_error = o.last_error;
            rule.last_eval_ms = o.last_eval_ms;
            rule.eval_seconds = o.eval_seconds;
        }
        self.pending_stale = old.pending_stale;
        self.pending_stale
            .extend(unmatched.into_iter().flatten().flat_map(|r| r.written));
        self.last_eval_ms = old.last_eval_ms;
        self.eval_seconds = old.eval_seconds;
        self.restore_for_state = false;
    }

    /// `ALERTS_FOR_STATE` of `rule` over the last hour: alert labels → activation (ms).
    async fn for_state(&self, env: &EvalEnv, rule: &Rule, at: i64) -> HashMap<LabelSet, i64> {
        let name = rule.def.alert.as_deref().unwrap_or_default();
        let q = format!(
            "last_over_time(ALERTS_FOR_STATE{{alertname={}}}[1h])",
            muninn_querier::promql::parse::go_quote(name)
        );
        let Ok(expr) = muninn_querier::promql::parse::parse(&q) else {
            return HashMap::new();
        };
        let Ok(r) =
            muninn_querier::api::instant_for(&env.querier, "rule", &self.key.tenant, expr, at)
                .await
        else {
            return HashMap::new();
        };
        let QueryValue::Vector(v) = r.value else {
            return HashMap::new();
        };
        v.into_iter()
            .filter_map(|(labels, p)| {
                let mut ls = to_set(&labels);
                set_label(&mut ls, muninn_storage::labels::METRIC_NAME, String::new());
                p.float()
                    .filter(|f| f.is_finite())
                    .map(|f| (ls, (f * 1000.0) as i64))
            })
            .collect()
    }

    /// Evaluates every rule at `ts` (ms), in order.
    pub async fn evaluate(&mut self, env: &EvalEnv, ts: i64) -> Output {
        let started = std::time::Instant::now();
        let mut out = Output::default();
        let query_ts = ts - self.query_offset_ms;
        let limit = self.def.limit as usize;
        // Restored `for` state, fetched before the evaluation proper (once).
        let mut restored: Vec<Option<HashMap<LabelSet, i64>>> = vec![None; self.rules.len()];
        if self.restore_for_state {
            for (i, rule) in self.rules.iter().enumerate() {
                if rule.def.alert.is_some() && rule.for_ms > 0 {
                    restored[i] = Some(self.for_state(env, rule, query_ts).await);
                }
            }
        }
        // Samples carry the query's timestamp (Prometheus: `ts - query_offset`).
        for gone in self.pending_stale.drain(..) {
            out.series.push(series(&gone, query_ts, stale_nan()));
        }
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let rule_started = std::time::Instant::now();
            let r = muninn_querier::api::instant_for(
                &env.querier,
                "rule",
                &self.key.tenant,
                rule.expr.clone(),
                query_ts,
            )
            .await;
            let result = r.map_err(|e| e.to_string()).and_then(|r| match r.value {
                QueryValue::Vector(v) => Ok(v),
                QueryValue::Scalar(f) => Ok(vec![(Default::default(), Point::F(f))]),
                _ => Err("rule result is not a vector or scalar".to_string()),
            });
            let written = result.and_then(|v| {
                // The group's `limit`: series of a recording rule; alerts (pending, firing or
                // resolved and still kept) of an alerting rule, checked after its update.
                if rule.def.record.is_some() && limit > 0 && v.len() > limit {
                    return Err(format!("exceeded limit of {limit} with {} series", v.len()));
                }
                match rule.def.record.clone() {
                    Some(name) => record(rule, &name, v, query_ts, &mut out),
                    None => template::with_query(
                        template_query(env, &self.key.tenant, query_ts),
                        || {
                            alert(
                                rule,
                                env,
                                v,
                                (ts, query_ts),
                                (self.interval_ms, limit),
                                restored[i].take(),
                                &mut out,
                            )
                        },
                    ),
                }
            });
            rule.last_eval_ms = Some(ts);
            rule.eval_seconds = rule_started.elapsed().as_secs_f64();
            match written {
                Ok(now) => {
                    // Staleness: what the rule wrote last time and not now.
                    for gone in rule.written.difference(&now) {
                        out.series.push(series(gone, query_ts, stale_nan()));
                    }
                    rule.written = now;
                    rule.health = Health::Ok;
                    rule.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(tenant = %self.key.tenant, namespace = %self.key.namespace, group = %self.key.name, rule = rule.def.name(), error = %e, "rule evaluation failed");
                    rule.health = Health::Err;
                    rule.last_error = Some(e);
                    out.failures += 1;
                }
            }
        }
        self.last_eval_ms = Some(ts);
        self.eval_seconds = started.elapsed().as_secs_f64();
        self.restore_for_state = false;
        out
    }

    /// Staleness markers for every series the group wrote (it was deleted).
    pub fn stale_markers(&self, ts: i64) -> Vec<TimeSeries> {
        self.rules
            .iter()
            .flat_map(|r| r.written.iter())
            .map(|ls| series(ls, ts, stale_nan()))
            .collect()
    }
}

/// Templates' `query`: PromQL for `tenant` at `at` (the rule's query time, as Prometheus runs
/// it), through the same path as the rules. Templates expand synchronously inside the group's
/// task, so the query blocks that worker thread (`block_in_place` hands its other tasks to the
/// rest of the runtime) until it answers, within the querier's timeout.
fn template_query(env: &EvalEnv, tenant: &TenantId, at: i64) -> template::QueryFn {
    let querier = env.querier.clone();
    let tenant = tenant.clone();
    Arc::new(move |q: &str| {
        let expr = promql_parser::parser::parse(q)
            .map_err(|e| format!("error parsing query {q:?}: {e}"))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "query needs the ruler's runtime".to_string())?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err("query needs the multi-threaded runtime".into());
        }
        let r = tokio::task::block_in_place(|| {
            handle.block_on(muninn_querier::api::instant_for(
                &querier, "rule", &tenant, expr, at,
            ))
        })
        .map_err(|e| format!("error executing query {q:?}: {e}"))?;
        match r.value {
            QueryValue::Vector(v) => Ok(v
                .into_iter()
                .filter_map(|(l, p)| p.float().map(|f| (to_set(&l), f)))
                .collect()),
            QueryValue::Scalar(f) => Ok(vec![(vec![], f)]),
            _ => Err(format!(
                "query {q:?} returned neither a vector nor a scalar"
            )),
        }
    })
}

fn to_set(labels: &muninn_storage::labels::Labels) -> LabelSet {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn record(
    rule: &Rule,
    name: &str,
    v: Vec<(muninn_storage::labels::Labels, Point)>,
    ts: i64,
    out: &mut Output,
) -> Result<HashSet<LabelSet>, String> {
    let mut now = HashSet::with_capacity(v.len());
    let mut batch = Vec::with_capacity(v.len());
    for (labels, p) in v {
        let mut ls = to_set(&labels);
        set_label(
            &mut ls,
            muninn_storage::labels::METRIC_NAME,
            name.to_string(),
        );
        for (k, val) in &rule.def.labels {
            set_label(&mut ls, k, val.clone());
        }
        if !now.insert(ls.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        batch.push(match p {
            Point::F(value) => series(&ls, ts, value),
            // A native histogram result is recorded as one (a float histogram), as Prometheus
            // records it.
            Point::H(h) => {
                let mut s = series(&ls, ts, 0.0);
                s.samples.clear();
                s.histograms = vec![muninn_querier::api::remote_read::histogram_pb(ts, &h)];
                s
            }
        });
    }
    out.series.extend(batch);
    Ok(now)
}

/// An alerting rule's evaluation at `ts` (its query at `query_ts`); `restored` holds the
/// activation times `ALERTS_FOR_STATE` kept, applied to alerts that are new now.
fn alert(
    rule: &mut Rule,
    env: &EvalEnv,
    v: Vec<(muninn_storage::labels::Labels, Point)>,
    (ts, query_ts): (i64, i64),
    (interval_ms, limit): (i64, usize),
    restored: Option<HashMap<LabelSet, i64>>,
    out: &mut Output,
) -> Result<HashSet<LabelSet>, String> {
    let alertname = rule.def.alert.clone().unwrap_or_default();
    let mut returned = Vec::with_capacity(v.len());
    let mut seen = HashSet::with_capacity(v.len());
    for (labels, p) in v {
        let value = match p {
            Point::F(f) => f,
            Point::H(h) => h.sum,
        };
        let sample_labels = to_set(&labels);
        let data = template::Data {
            labels: &sample_labels,
            value,
            external_url: &env.external_url,
        };
        let mut ls = sample_labels.clone();
        set_label(&mut ls, muninn_storage::labels::METRIC_NAME, String::new());
        for (k, t) in &rule.label_templates {
            set_label(&mut ls, k, t.expand(&data));
        }
        set_label(&mut ls, "alertname", alertname.clone());
        let annotations: Vec<(String, String)> = rule
            .annotation_templates
            .iter()
            .map(|(k, t)| (k.clone(), t.expand(&data)))
            .collect();
        if !seen.insert(ls.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        returned.push(Returned {
            labels: ls,
            annotations,
            value,
        });
    }
    rule.alerts
        .update(ts, returned, rule.for_ms, rule.keep_firing_ms);
    if let Some(restored) = restored {
        rule.alerts.restore(ts, &restored, rule.for_ms);
    }
    // Prometheus: past the limit, the rule forgets its alerts and fails.
    let n = rule.alerts.alerts.len();
    if limit > 0 && n > limit {
        rule.alerts.alerts.clear();
        return Err(format!("exceeded limit of {limit} with {n} alerts"));
    }
    let mut now = HashSet::new();
    let mut active: Vec<&Alert> = rule
        .alerts
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .collect();
    active.sort_by(|a, b| a.labels.cmp(&b.labels));
    for a in active {
        let mut alerts = a.labels.clone();
        set_label(&mut alerts, "__name__", "ALERTS".into());
        set_label(&mut alerts, "alertstate", a.state.as_str().into());
        out.series.push(series(&alerts, query_ts, 1.0));
        now.insert(alerts);
        let mut for_state = a.labels.clone();
        set_label(&mut for_state, "__name__", "ALERTS_FOR_STATE".into());
        out.series
            .push(series(&for_state, query_ts, (a.active_at_ms / 1000) as f64));
        now.insert(for_state);
    }
    let expr = rule.def.expr.clone();
    out.alerts.extend(
        rule.alerts
            .to_send(ts, env.resend_delay_ms, interval_ms)
            .into_iter()
            .map(|a| (a, expr.clone())),
    );
    Ok(now)
}

/// A label set as a JSON object.
pub fn labels_json(ls: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        ls.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// Milliseconds since the epoch as RFC 3339 (UTC, as Prometheus's API writes times).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = template::civil_from_days(days);
    let frac = if frac > 0 {
        format!(".{frac:03}").trim_end_matches('0').to_string()
    } else {
        String::new()
    };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as the alerts API writes values.
pub fn go_e(v: f64) -> String {
    if !v.is_finite() {
        return template::go_float(v);
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    format!("{m}e{sign}{digits:0>2}")
}

const NEVER: &str = "0001-01-01T00:00:00Z";

fn alert_json(a: &Alert) -> serde_json::Value {
    let mut m = serde_json::json!({
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at_ms),
        "value": go_e(a.value),
    });
    if let Some(s) = a.keep_firing_since_ms {
        m["keepFiringSince"] = rfc3339(s).into();
    }
    m
}

/// Which rules an API call wants (`type=alert|record`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RuleFilter {
    All,
    Alerting,
    Recording,
}

impl Group {
    /// The group as `GET /api/v1/rules` shows it.
    pub fn rules_json(&self, filter: RuleFilter) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .filter(|r| match filter {
                RuleFilter::All => true,
                RuleFilter::Alerting => r.def.alert.is_some(),
                RuleFilter::Recording => r.def.record.is_some(),
            })
            .map(|r| {
                let labels: Vec<(String, String)> = r
                    .def
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut j = match &r.def.alert {
                    Some(name) => {
                        let mut alerts: Vec<&Alert> = r
                            .alerts
                            .alerts
                            .values()
                            .filter(|a| a.state != AlertState::Inactive)
                            .collect();
                        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
                        let annotations: Vec<(String, String)> = r
                            .def
                            .annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        serde_json::json!({
                            "state": r.alerts.rule_state().as_str(),
                            "name": name,
                            "query": r.def.expr,
                            "duration": r.for_ms as f64 / 1000.0,
                            "keepFiringFor": r.keep_firing_ms as f64 / 1000.0,
                            "labels": labels_json(&labels),
                            "annotations": labels_json(&annotations),
                            "alerts": alerts.into_iter().map(alert_json).collect::<Vec<_>>(),
                            "type": "alerting",
                        })
                    }
                    None => serde_json::json!({
                        "name": r.def.record.clone().unwrap_or_default(),
                        "query": r.def.expr,
                        "labels": labels_json(&labels),
                        "type": "recording",
                    }),
                };
                j["health"] = r.health.as_str().into();
                if let Some(e) = &r.last_error {
                    j["lastError"] = e.clone().into();
                }
                j["evaluationTime"] = r.eval_seconds.into();
                j["lastEvaluation"] = r.last_eval_ms.map_or(NEVER.into(), rfc3339).into();
                j
            })
            .collect();
        serde_json::json!({
            "name": self.key.name,
            "file": self.key.namespace,
            "rules": rules,
            "interval": self.interval_ms as f64 / 1000.0,
            "limit": self.def.limit,
            "evaluationTime": self.eval_seconds,
            "lastEvaluation": self.last_eval_ms.map_or(NEVER.into(), rfc3339),
        })
    }

    /// The group's pending and firing alerts as `GET /api/v1/alerts` shows them.
    pub fn alerts_json(&self) -> Vec<serde_json::Value> {
        let mut v: Vec<&Alert> = self
            .rules
            .iter()
            .flat_map(|r| r.alerts.alerts.values())
            .filter(|a| a.state != AlertState::Inactive)
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v.into_iter().map(alert_json).collect()
    }
}

/// Namespace → groups, for the API's YAML answers.
pub fn by_namespace(
    groups: impl IntoIterator<Item = (String, RuleGroup)>,
) -> BTreeMap<String, Vec<RuleGroup>> {
    let mut m: BTreeMap<String, Vec<RuleGroup>> = BTreeMap::new();
    for (ns, g) in groups {
        m.entry(ns).or_default().push(g);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_edits_keep_the_set_sorted() {
        let mut ls: LabelSet = vec![("a".into(), "1".into()), ("c".into(), "3".into())];
        set_label(&mut ls, "b", "2".into());
        set_label(&mut ls, "c", "x".into());
        set_label(&mut ls, "a", String::new());
        assert_eq!(ls, vec![("b".into(), "2".into()), ("c".into(), "x".into())]);
    }

    #[test]
    fn api_time_and_value_formats() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(go_e(1.0), "1e+00");
        assert_eq!(go_e(0.25), "2.5e-01");
        assert_eq!(go_e(12345.0), "1.2345e+04");
    }
}
