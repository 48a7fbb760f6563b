//! Rule groups in Prometheus's rule-file format: parsing, validation and serialisation.
//!
//! A group as the ruler API receives it (one group per POST body) and as the bucket stores it:
//!
//! ```yaml
//! name: example
//! interval: 30s
//! rules:
//!   - record: job:up:sum
//!     expr: sum by (job) (up)
//!   - alert: InstanceDown
//!     expr: up == 0
//!     for: 5m
//!     labels: {severity: page}
//!     annotations: {summary: "{{ $labels.instance }} down"}
//! ```
//!
//! Unknown keys are refused (Prometheus parses rule files strictly).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::template;

/// One rule group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    /// Evaluation interval (a Prometheus duration); absent: `--ruler.evaluation-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Most series a rule of this group may produce; 0: no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
    /// Shifts evaluation timestamps back (a Prometheus duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_offset: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One recording or alerting rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A namespace's groups, as `GET /prometheus/config/v1/rules` answers (namespace → groups).
pub type Namespaces = BTreeMap<String, Vec<RuleGroup>>;

/// Parses one group from YAML and validates it.
pub fn parse_group(text: &str) -> Result<RuleGroup, Error> {
    let g: RuleGroup = serde_saphyr::from_str(text)
        .map_err(|e| Error::InvalidRules(format!("parsing the rule group: {e}")))?;
    g.validate()?;
    Ok(g)
}

/// Parses a stored group (validated when it was stored): its templates are compiled when
/// the group starts, not at every sync.
pub fn load_group(text: &str) -> Result<RuleGroup, Error> {
    let g: RuleGroup = serde_saphyr::from_str(text)
        .map_err(|e| Error::InvalidRules(format!("parsing the rule group: {e}")))?;
    g.validate_with(false)?;
    Ok(g)
}

/// Serialises groups by namespace as YAML.
pub fn to_yaml<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_saphyr::to_string(v).map_err(|e| Error::Internal(format!("writing YAML: {e}")))
}

/// Parses a Prometheus duration (`30s`, `1h30m`, `2d`); absent is `None`.
pub fn duration_ms(what: &str, s: Option<&str>) -> Result<Option<i64>, Error> {
    match s {
        None => Ok(None),
        Some(s) => muninn_proto::duration::parse_duration_ms(s)
            .filter(|ms| *ms >= 0)
            .map(Some)
            .ok_or_else(|| Error::InvalidRules(format!("{what}: invalid duration {s:?}"))),
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RuleGroup {
    /// Checks what Prometheus's `promtool check rules` checks: names, expressions, durations,
    /// label names and templates.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_with(true)
    }

    fn validate_with(&self, templates: bool) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::InvalidRules(format!("group {:?}: {msg}", self.name)));
        if self.name.is_empty() {
            return Err(Error::InvalidRules("a rule group needs a name".into()));
        }
        if self.name.len() > 1024 {
            return bad("the group name is longer than 1024 bytes".into());
        }
        if let Some(ms) = duration_ms("interval", self.interval.as_deref())?
            && ms == 0
        {
            return bad("interval must be positive".into());
        }
        duration_ms("query_offset", self.query_offset.as_deref())?;
        if self.rules.is_empty() {
            return bad("a rule group needs at least one rule".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let Err(Error::InvalidRules(m)) = r.validate(templates) {
                return bad(format!("rule {}: {m}", i + 1));
            }
        }
        Ok(())
    }

    /// The group's interval, or `default_ms`.
    pub fn interval_ms(&self, default_ms: i64) -> i64 {
        duration_ms("interval", self.interval.as_deref())
            .ok()
            .flatten()
            .filter(|ms| *ms > 0)
            .unwrap_or(default_ms)
    }
}

impl RuleDef {
    /// The rule's name (its record or alert).
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or_default()
    }

    fn validate(&self, templates: bool) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidRules(m.to_string()));
        match (&self.record, &self.alert) {
            (Some(_), Some(_)) => return bad("only one of 'record' and 'alert' must be set"),
            (None, None) => return bad("one of 'record' or 'alert' must be set"),
            (Some(r), None) => {
                if !valid_metric_name(r) {
                    return Err(Error::InvalidRules(format!(
                        "invalid recording rule name: {r}"
                    )));
                }
                if self.for_.is_some() || self.keep_firing_for.is_some() {
                    return bad("invalid field 'for' or 'keep_firing_for' in recording rule");
                }
                if !self.annotations.is_empty() {
                    return bad("invalid field 'annotations' in recording rule");
                }
            }
            (None, Some(a)) => {
                if a.is_empty() {
                    return bad("alert name must not be empty");
                }
            }
        }
        if self.expr.trim().is_empty() {
            return bad("field 'expr' must be set in rule");
        }
        muninn_querier::promql::parse::parse(&self.expr)
            .map_err(|e| Error::InvalidRules(format!("could not parse expression: {e}")))?;
        duration_ms("for", self.for_.as_deref())?;
        duration_ms("keep_firing_for", self.keep_firing_for.as_deref())?;
        for (k, v) in &self.labels {
            if !valid_label_name(k) || k == "__name__" {
                return Err(Error::InvalidRules(format!("invalid label name: {k}")));
            }
            if self.alert.is_some() && templates {
                template::check(v).map_err(|e| Error::InvalidRules(format!("label {k:?}: {e}")))?;
            }
        }
        for (k, v) in &self.annotations {
            if !valid_label_name(k) {
                return Err(Error::InvalidRules(format!("invalid annotation name: {k}")));
            }
            if templates {
                template::check(v)
                    .map_err(|e| Error::InvalidRules(format!("annotation {k:?}: {e}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "name: g1\ninterval: 10s\nrules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 1m\n    keep_firing_for: 30s\n    labels: {severity: page}\n    annotations:\n      summary: '{{ $labels.instance }} is down ({{ $value | humanize }})'\n";

    #[test]
    fn a_group_round_trips_through_yaml() {
        let g = parse_group(GROUP).unwrap();
        assert_eq!(g.rules.len(), 2);
        assert_eq!(g.interval_ms(60_000), 10_000);
        assert_eq!(g.rules[1].for_.as_deref(), Some("1m"));
        let text = to_yaml(&g).unwrap();
        assert_eq!(parse_group(&text).unwrap(), g, "{text}");
    }

    #[test]
    fn invalid_groups_are_refused_with_the_reason() {
        for (text, needle) in [
            ("name: g\nrules: []\n", "at least one rule"),
            ("rules:\n  - record: a\n    expr: up\n", "missing field"),
            (
                "name: g\nrules:\n  - record: a\n    expr: sum(\n",
                "could not parse",
            ),
            (
                "name: g\nrules:\n  - record: a\n    alert: b\n    expr: up\n",
                "only one",
            ),
            (
                "name: g\nrules:\n  - record: 1a\n    expr: up\n",
                "invalid recording",
            ),
            (
                "name: g\nrules:\n  - alert: a\n    expr: up\n    for: soon\n",
                "invalid duration",
            ),
            (
                "name: g\nrules:\n  - alert: a\n    expr: up\n    annotations: {x: '{{ $labels.'}\n",
                "annotation",
            ),
            ("name: g\nrulez: []\n", "unknown field"),
            (
                "name: g\nrules:\n  - record: a\n    expr: up\n    for: 1m\n",
                "recording rule",
            ),
        ] {
            let e = parse_group(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
