//! An alerting rule's alerts and their states, as Prometheus keeps them (`rules/alerting.go`):
//! an alert is pending from the first evaluation that returns its series, firing once it
//! has been returned for `for`, kept firing for `keep_firing_for` after it stops being
//! returned, then inactive (resolved), and forgotten 15 minutes after resolving.

use std::collections::HashMap;

/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule: one series of its expression's result.
#[derive(Clone, Debug)]
pub struct Alert {
    /// Sorted by name; includes `alertname` and the rule's (expanded) labels.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_ms: Option<i64>,
    /// Until when the last notification keeps it firing at Alertmanager.
    pub valid_until_ms: i64,
    /// When the rule stopped returning it while `keep_firing_for` holds it firing.
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Whether Alertmanager must hear about it now (`needsSending`).
    pub fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        match (self.resolved_at_ms, self.last_sent_ms) {
            (_, None) => true,
            (Some(r), Some(s)) if r > s => true,
            // Prometheus: `LastSentAt.Add(resendDelay).Before(ts)`.
            (_, Some(s)) => s + resend_delay_ms < ts,
        }
    }
}

/// One evaluation's result for the rule: an alert's labels, annotations and value.
pub struct Returned {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub value: f64,
}

/// The rule's alerts by label set.
#[derive(Default, Debug)]
pub struct ActiveAlerts {
    pub alerts: HashMap<Vec<(String, String)>, Alert>,
}

impl ActiveAlerts {
    /// Applies one evaluation at `ts`: `returned` are the series the expression returned.
    pub fn update(&mut self, ts: i64, returned: Vec<Returned>, for_ms: i64, keep_firing_ms: i64) {
        let mut seen = std::collections::HashSet::with_capacity(returned.len());
        for r in returned {
            seen.insert(r.labels.clone());
            match self.alerts.get_mut(&r.labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = r.value;
                    a.annotations = r.annotations;
                }
                _ => {
                    self.alerts.insert(
                        r.labels.clone(),
                        Alert {
                            labels: r.labels,
                            annotations: r.annotations,
                            state: AlertState::Pending,
                            value: r.value,
                            active_at_ms: ts,
                            fired_at_ms: None,
                            resolved_at_ms: None,
                            last_sent_ms: None,
                            valid_until_ms: 0,
                            keep_firing_since_ms: None,
                        },
                    );
                }
            }
        }
        self.alerts.retain(|labels, a| {
            if seen.contains(labels) {
                return true;
            }
            if keep_firing_ms > 0 && a.state == AlertState::Firing {
                let since = *a.keep_firing_since_ms.get_or_insert(ts);
                if ts - since < keep_firing_ms {
                    return true;
                }
            }
            // Pending alerts go at once; resolved ones after the retention.
            if a.state == AlertState::Pending
                || a.resolved_at_ms
                    .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
            {
                return false;
            }
            if a.state != AlertState::Inactive {
                a.state = AlertState::Inactive;
                a.resolved_at_ms = Some(ts);
            }
            true
        });
        for (labels, a) in self.alerts.iter_mut() {
            if !seen.contains(labels) {
                continue;
            }
            a.keep_firing_since_ms = None;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
        }
    }

    /// Gives pending alerts the activation `restored` (alert labels → ms) recorded for them
    /// before this ruler took the group over, so `for` counts from there; those that have
    /// been active for `for` fire now.
    pub fn restore(
        &mut self,
        ts: i64,
        restored: &HashMap<Vec<(String, String)>, i64>,
        for_ms: i64,
    ) {
        for (labels, a) in self.alerts.iter_mut() {
            let Some(&at) = restored.get(labels) else {
                continue;
            };
            if a.state != AlertState::Pending || at >= a.active_at_ms {
                continue;
            }
            a.active_at_ms = at;
            if ts - at >= for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
        }
    }

    /// The rule's state: the highest of its alerts'.
    pub fn rule_state(&self) -> AlertState {
        let mut s = AlertState::Inactive;
        for a in self.alerts.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => s = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        s
    }

    /// The alerts to send now, marked sent: firing ones valid until `ts + 4 × max(resend,
    /// interval)`, resolved ones ending at their resolution.
    pub fn to_send(&mut self, ts: i64, resend_delay_ms: i64, interval_ms: i64) -> Vec<Alert> {
        let mut out = vec![];
        for a in self.alerts.values_mut() {
            if !a.needs_sending(ts, resend_delay_ms) {
                continue;
            }
            a.last_sent_ms = Some(ts);
            a.valid_until_ms = ts + 4 * resend_delay_ms.max(interval_ms);
            out.push(a.clone());
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(instance: &str, v: f64) -> Returned {
        Returned {
            labels: vec![
                ("alertname".into(), "Down".into()),
                ("instance".into(), instance.into()),
            ],
            annotations: vec![],
            value: v,
        }
    }

    fn state(a: &ActiveAlerts, instance: &str) -> Option<AlertState> {
        a.alerts
            .values()
            .find(|x| x.labels[1].1 == instance)
            .map(|x| x.state)
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved_then_forgotten() {
        let mut a = ActiveAlerts::default();
        a.update(0, vec![ret("a", 1.0)], 60_000, 0);
        assert_eq!(state(&a, "a"), Some(AlertState::Pending));
        assert!(
            a.to_send(0, 60_000, 10_000).is_empty(),
            "pending is not sent"
        );
        a.update(50_000, vec![ret("a", 2.0)], 60_000, 0);
        assert_eq!(state(&a, "a"), Some(AlertState::Pending));
        a.update(60_000, vec![ret("a", 3.0)], 60_000, 0);
        assert_eq!(state(&a, "a"), Some(AlertState::Firing));
        let sent = a.to_send(60_000, 60_000, 10_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until_ms, 60_000 + 240_000);
        assert!(a.to_send(70_000, 60_000, 10_000).is_empty(), "resend waits");
        assert!(
            a.to_send(120_000, 60_000, 10_000).is_empty(),
            "strictly after the delay"
        );
        assert_eq!(a.to_send(130_000, 60_000, 10_000).len(), 1, "resent");
        a.update(140_000, vec![], 60_000, 0);
        assert_eq!(state(&a, "a"), Some(AlertState::Inactive));
        let sent = a.to_send(140_000, 60_000, 10_000);
        assert_eq!(
            sent[0].resolved_at_ms,
            Some(140_000),
            "resolution sent at once"
        );
        a.update(140_000 + RESOLVED_RETENTION_MS + 1, vec![], 60_000, 0);
        assert!(a.alerts.is_empty(), "forgotten after the retention");
    }

    #[test]
    fn a_pending_alert_that_stops_is_dropped_and_restarts_its_for() {
        let mut a = ActiveAlerts::default();
        a.update(0, vec![ret("a", 1.0)], 60_000, 0);
        a.update(30_000, vec![], 60_000, 0);
        assert!(a.alerts.is_empty());
        a.update(40_000, vec![ret("a", 1.0)], 60_000, 0);
        a.update(90_000, vec![ret("a", 1.0)], 60_000, 0);
        assert_eq!(
            state(&a, "a"),
            Some(AlertState::Pending),
            "for counts from 40 s"
        );
    }

    #[test]
    fn restored_activation_continues_for_across_a_move() {
        let mut a = ActiveAlerts::default();
        a.update(100_000, vec![ret("a", 1.0), ret("b", 1.0)], 60_000, 0);
        let restored: HashMap<Vec<(String, String)>, i64> = [
            (ret("a", 0.0).labels, 30_000),
            (ret("b", 0.0).labels, 80_000),
        ]
        .into_iter()
        .collect();
        a.restore(100_000, &restored, 60_000);
        assert_eq!(
            state(&a, "a"),
            Some(AlertState::Firing),
            "active since 30 s: fires"
        );
        assert_eq!(state(&a, "b"), Some(AlertState::Pending));
        a.update(140_000, vec![ret("a", 1.0), ret("b", 1.0)], 60_000, 0);
        assert_eq!(
            state(&a, "b"),
            Some(AlertState::Firing),
            "for counted from 80 s"
        );
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut a = ActiveAlerts::default();
        a.update(0, vec![ret("a", 1.0)], 0, 30_000);
        assert_eq!(
            state(&a, "a"),
            Some(AlertState::Firing),
            "for 0 fires at once"
        );
        a.update(10_000, vec![], 0, 30_000);
        a.update(30_000, vec![], 0, 30_000);
        assert_eq!(state(&a, "a"), Some(AlertState::Firing), "kept firing");
        a.update(40_000, vec![], 0, 30_000);
        assert_eq!(
            state(&a, "a"),
            Some(AlertState::Inactive),
            "30 s after it stopped"
        );
        assert_eq!(a.rule_state(), AlertState::Inactive);
    }
}
