//! The runtime config file: per-tenant overrides of the [`Limits`] defaults, re-read every
//! `--runtime-config.reload-period` without a restart.
//!
//! Format (Mimir's): `overrides: {<tenant>: {<limit>: <value>, ...}}`. A tenant's entry names
//! only what differs; the rest comes from the `--limits.*` defaults. Keys Muninn does not
//! know (other Mimir limits, other top-level sections of a Mimir file) are ignored with a
//! warning naming them, so Mimir files carry over, and counted in
//! `muninn_runtime_config_unknown_keys`. A file that does not parse, or a known key with a bad
//! value, keeps the last good file in force: it is logged once per distinct content and counted
//! in `muninn_runtime_config_reload_failures_total`.

use std::collections::{BTreeSet, HashMap};
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
    pub unknown_keys: Gauge,
}

impl ReloadMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_runtime_config");
        r.register(
            "reload_failures",
            "Runtime config file loads that failed (the last good one stays)",
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
        r.register(
            "unknown_keys",
            "Keys of the applied runtime config file that Muninn ignored",
            self.unknown_keys.clone(),
        );
    }
}

/// The limits in force: defaults plus per-tenant overrides.
pub struct Overrides {
    defaults: Arc<Limits>,
    tenants: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
    /// The keys each tenant's entry sets explicitly.
    explicit: RwLock<Arc<HashMap<String, BTreeSet<String>>>>,
    path: Option<PathBuf>,
    /// The content last seen (applied or refused), so an unchanged file costs a read.
    last_text: Mutex<Option<String>>,
    pub metrics: ReloadMetrics,
}

/// A parsed runtime config file.
#[derive(Default, Debug)]
pub struct Parsed {
    pub tenants: HashMap<String, Arc<Limits>>,
    pub explicit: HashMap<String, BTreeSet<String>>,
    /// Ignored keys, as `overrides.<tenant>.<key>` or a top-level section name.
    pub unknown: Vec<String>,
}

impl Overrides {
    pub fn new(defaults: Limits, path: Option<PathBuf>) -> Self {
        let metrics = ReloadMetrics::default();
        metrics.last_successful.set(1);
        Self {
            defaults: Arc::new(defaults),
            tenants: RwLock::new(Arc::new(HashMap::new())),
            explicit: RwLock::new(Arc::new(HashMap::new())),
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

    /// The runtime config file, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The defaults (`--limits.*`).
    pub fn defaults(&self) -> Arc<Limits> {
        self.defaults.clone()
    }

    /// Whether the runtime config file sets `key` for `tenant` itself.
    pub fn is_set(&self, tenant: &str, key: &str) -> bool {
        self.explicit
            .read()
            .get(tenant)
            .is_some_and(|keys| keys.contains(key))
    }

    /// The largest `creation_grace_period` of any tenant, in ms (WAL replay keeps samples up to
    /// now plus this).
    pub fn max_creation_grace_ms(&self) -> i64 {
        self.tenants
            .read()
            .values()
            .map(|l| l.creation_grace_period.as_millis_i64())
            .chain(std::iter::once(
                self.defaults.creation_grace_period.as_millis_i64(),
            ))
            .max()
            .unwrap_or(0)
    }

    /// Re-reads the file if it changed. `Ok(true)` when new overrides were applied.
    pub fn reload(&self) -> Result<bool, Error> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                // Re-read and re-judged once readable again (e.g. a ConfigMap symlink swap).
                *self.last_text.lock() = None;
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
            Ok(parsed) => {
                let n = parsed.tenants.len();
                if !parsed.unknown.is_empty() {
                    tracing::warn!(path = %path.display(), keys = ?parsed.unknown, "runtime config keys Muninn does not know were ignored");
                }
                self.metrics.unknown_keys.set(parsed.unknown.len() as i64);
                *self.tenants.write() = Arc::new(parsed.tenants);
                *self.explicit.write() = Arc::new(parsed.explicit);
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
pub fn parse(text: &str, defaults: &Limits) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let file: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let top = match file {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => return Ok(out),
        _ => return Err("the runtime config must be a mapping (overrides: {...})".into()),
    };
    let base = match serde_json::to_value(defaults).map_err(|e| e.to_string())? {
        serde_json::Value::Object(m) => m,
        _ => return Err("limits do not serialize to a mapping".into()),
    };
    for (key, value) in top {
        if key != "overrides" {
            out.unknown.push(key);
            continue;
        }
        let tenants = match value {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => continue,
            _ => return Err("overrides: expected a mapping of tenant ids".into()),
        };
        for (tenant, over) in tenants {
            muninn_proto::tenant::TenantId::new(&tenant)
                .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
            let mut merged = base.clone();
            let mut set = BTreeSet::new();
            match over {
                serde_json::Value::Object(o) => {
                    for (k, v) in o {
                        if base.contains_key(&k) {
                            set.insert(k.clone());
                            merged.insert(k, v);
                        } else {
                            out.unknown.push(format!("overrides.{tenant}.{k}"));
                        }
                    }
                }
                serde_json::Value::Null => {}
                _ => return Err(format!("overrides: tenant {tenant:?}: expected a mapping")),
            }
            let limits: Limits = serde_json::from_value(serde_json::Value::Object(merged))
                .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
            out.explicit.insert(tenant.clone(), set);
            out.tenants.insert(tenant, Arc::new(limits));
        }
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
        assert!(o.is_set("team-a", "ingestion_rate"));
        assert!(!o.is_set("team-a", "compactor_blocks_retention_period"));
        // A bad value is refused whole; the last good overrides stay.
        std::fs::write(&path, "overrides:\n  team-a:\n    ingestion_rate: lots\n").unwrap();
        assert!(o.reload().is_err());
        assert_eq!(o.get("team-a").ingestion_rate, 1000.0);
        assert_eq!(o.metrics.failures.get(), 1);
        assert_eq!(o.metrics.last_successful.get(), 0);
        std::fs::write(&path, "overrides: [").unwrap();
        assert!(o.reload().is_err());
        // Keys Muninn does not know (a Mimir file's other limits) are ignored, not fatal.
        std::fs::write(
            &path,
            "multi_kv_config: {}\noverrides:\n  team-a:\n    ingestion_rate: 7\n    max_fetched_chunks_per_query: 5\n",
        )
        .unwrap();
        assert!(o.reload().unwrap());
        assert_eq!(o.get("team-a").ingestion_rate, 7.0);
        assert_eq!(o.metrics.unknown_keys.get(), 2);
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
            .unwrap()
            .tenants["t"]
                .max_query_lookback
                .as_millis_i64(),
            90_000
        );
        assert!(parse("overrides: {'a/b': {}}", &Limits::default()).is_err());
        assert!(parse("[1]", &Limits::default()).is_err());
    }
}
