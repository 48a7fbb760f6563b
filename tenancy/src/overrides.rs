//! The runtime config file: per-tenant overrides of the [`Limits`] defaults, re-read every
//! `--runtime-config.reload-period` without a restart.
//!
//! Format (Mimir's): `overrides: {<tenant>: {<limit>: <value>, ...}}`. A tenant's entry names
//! only what differs; the rest comes from the `--limits.*` defaults. Unknown keys are errors
//! (as Mimir's strict parsing), and a file with an error keeps the last good one in force: it
//! is logged once per distinct content and counted in
//! `muninn_runtime_config_reload_failures_total`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::{Error, Limits};

/// Reload metrics.
#[derive(Default)]
pub struct ReloadMetrics {
    pub failures: Counter,
    pub last_successful: Gauge,
    pub reloads: Counter,
}

impl ReloadMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_runtime_config");
        r.register(
            "reload_failures",
            "Runtime config or tenants file loads that failed (the last good one stays)",
            self.failures.clone(),
        );
        r.register(
            "last_reload_successful",
            "1 if the last load of the runtime config file succeeded",
            self.last_successful.clone(),
        );
        r.register(
            "reloads",
            "Runtime config file contents applied",
            self.reloads.clone(),
        );
    }
}

/// The limits in force: defaults plus per-tenant overrides.
pub struct Overrides {
    defaults: Arc<Limits>,
    tenants: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
    path: Option<PathBuf>,
    /// The content last seen (applied or refused), so an unchanged file costs a read.
    last_text: Mutex<Option<String>>,
    pub metrics: ReloadMetrics,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    #[serde(default)]
    overrides: Option<HashMap<String, serde_json::Value>>,
}

impl Overrides {
    pub fn new(defaults: Limits, path: Option<PathBuf>) -> Self {
        let metrics = ReloadMetrics::default();
        metrics.last_successful.set(1);
        Self {
            defaults: Arc::new(defaults),
            tenants: RwLock::new(Arc::new(HashMap::new())),
            path,
            last_text: Mutex::new(None),
            metrics,
        }
    }

    /// The limits of `tenant`.
    pub fn get(&self, tenant: &str) -> Arc<Limits> {
        self.tenants
            .read()
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// The defaults (`--limits.*`).
    pub fn defaults(&self) -> Arc<Limits> {
        self.defaults.clone()
    }

    /// Tenants with an override.
    pub fn tenants_with_overrides(&self) -> Vec<String> {
        self.tenants.read().keys().cloned().collect()
    }

    /// Re-reads the file if it changed. `Ok(true)` when new overrides were applied.
    pub fn reload(&self) -> Result<bool, Error> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                return Err(self.failed(Error::Read {
                    path: path.clone(),
                    source,
                }));
            }
        };
        let mut last = self.last_text.lock();
        if last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        *last = Some(text.clone());
        drop(last);
        match parse(&text, &self.defaults) {
            Ok(map) => {
                let n = map.len();
                *self.tenants.write() = Arc::new(map);
                self.metrics.last_successful.set(1);
                self.metrics.reloads.inc();
                tracing::info!(path = %path.display(), tenants = n, "runtime config loaded");
                Ok(true)
            }
            Err(message) => Err(self.failed(Error::Parse {
                path: path.clone(),
                message,
            })),
        }
    }

    fn failed(&self, e: Error) -> Error {
        self.metrics.failures.inc();
        self.metrics.last_successful.set(0);
        tracing::error!(error = %e, "runtime config not applied; the last good one stays in force");
        e
    }
}

/// Parses a runtime config file into each tenant's full limits.
pub fn parse(text: &str, defaults: &Limits) -> Result<HashMap<String, Arc<Limits>>, String> {
    if text.trim().is_empty() {
        return Ok(HashMap::new());
    }
    let file: RuntimeFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let base = serde_json::to_value(defaults).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for (tenant, over) in file.overrides.unwrap_or_default() {
        muninn_proto::tenant::TenantId::new(&tenant)
            .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
        let mut merged = base.clone();
        match (&mut merged, over) {
            (serde_json::Value::Object(m), serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    m.insert(k, v);
                }
            }
            (_, serde_json::Value::Null) => {}
            _ => return Err(format!("overrides: tenant {tenant:?}: expected a mapping")),
        }
        let limits: Limits = serde_json::from_value(merged)
            .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
        out.insert(tenant, Arc::new(limits));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_over_defaults_and_bad_files_keep_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        std::fs::write(
            &path,
            "overrides:\n  team-a:\n    ingestion_rate: 1000\n    ingestion_burst_size: 2000\n    out_of_order_time_window: 1h\n",
        )
        .unwrap();
        let defaults = Limits {
            max_global_series_per_user: 7,
            ..Limits::default()
        };
        let o = Overrides::new(defaults, Some(path.clone()));
        assert!(o.reload().unwrap());
        let a = o.get("team-a");
        assert_eq!(a.ingestion_rate, 1000.0);
        assert_eq!(a.ingestion_burst_size, 2000);
        assert_eq!(a.out_of_order_window_ms(), 3_600_000);
        assert_eq!(a.max_global_series_per_user, 7, "defaults fill the rest");
        assert_eq!(o.get("team-b").ingestion_rate, 0.0);
        assert!(!o.reload().unwrap(), "unchanged file: nothing applied");
        // An unknown key (a typo) is refused whole; the last good overrides stay.
        std::fs::write(&path, "overrides:\n  team-a:\n    ingestion_rat: 5\n").unwrap();
        assert!(o.reload().is_err());
        assert_eq!(o.get("team-a").ingestion_rate, 1000.0);
        assert_eq!(o.metrics.failures.get(), 1);
        assert_eq!(o.metrics.last_successful.get(), 0);
        std::fs::write(&path, "overrides: [").unwrap();
        assert!(o.reload().is_err());
        std::fs::write(
            &path,
            "overrides:\n  team-a:\n    max_global_series_per_user: 80\n",
        )
        .unwrap();
        assert!(o.reload().unwrap());
        assert_eq!(o.get("team-a").max_global_series_per_user, 80);
        assert_eq!(o.get("team-a").ingestion_rate, 0.0);
        assert_eq!(o.metrics.last_successful.get(), 1);
        // Durations as seconds, and a bad tenant id.
        assert_eq!(
            parse(
                "overrides: {t: {max_query_lookback: 90}}",
                &Limits::default()
            )
            .unwrap()["t"]
                .max_query_lookback
                .as_millis_i64(),
            90_000
        );
        assert!(parse("overrides: {'a/b': {}}", &Limits::default()).is_err());
        assert!(parse("limits: {}", &Limits::default()).is_err());
    }
}
