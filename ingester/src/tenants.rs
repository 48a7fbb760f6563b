//! The registry of tenant databases: opened lazily on first write, replayed at startup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use muninn_proto::tenant::TenantId;
use parking_lot::RwLock;

use crate::config::now_ms;
use crate::metrics::{IngesterMetrics, TenantLabels};
use crate::tenant_db::TenantDb;
use crate::wal::FsyncPolicy;
use crate::{Error, Result};

/// Every tenant's storage, by tenant.
pub struct Tenants {
    wal_dir: PathBuf,
    fsync: FsyncPolicy,
    /// `--validation.create-grace-period`, for replay.
    grace_ms: i64,
    dbs: RwLock<HashMap<TenantId, Arc<TenantDb>>>,
}

impl Tenants {
    /// Replays the WAL of every tenant directory under `wal_dir`.
    pub fn open(
        wal_dir: &Path,
        fsync: FsyncPolicy,
        grace_ms: i64,
        metrics: &IngesterMetrics,
    ) -> Result<Self> {
        std::fs::create_dir_all(wal_dir).map_err(|e| Error::io("creating wal dir", wal_dir, e))?;
        let mut dbs = HashMap::new();
        let rd =
            std::fs::read_dir(wal_dir).map_err(|e| Error::io("listing wal dir", wal_dir, e))?;
        let mut dirs: Vec<_> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        dirs.sort_by_key(|e| e.file_name());
        for (i, e) in dirs.iter().enumerate() {
            let name = e.file_name();
            let Some(tenant) = name.to_str().and_then(|s| TenantId::new(s).ok()) else {
                tracing::warn!(dir = %e.path().display(), "ignoring wal directory that is not a valid tenant id");
                continue;
            };
            let start = std::time::Instant::now();
            let (db, report) = TenantDb::open(&e.path(), fsync, now_ms().saturating_add(grace_ms))?;
            let series = db.head.read().live_series();
            metrics.wal_replayed_records.inc_by(report.records);
            metrics
                .wal_truncations
                .inc_by(report.truncated.len() as u64);
            metrics
                .memory_series
                .get_or_create(&TenantLabels {
                    tenant: tenant.to_string(),
                })
                .set(series as i64);
            tracing::info!(
                %tenant, tenant_index = i + 1, tenants = dirs.len(), segments = report.segments,
                records = report.records, series, elapsed_ms = start.elapsed().as_millis() as u64,
                "replayed tenant wal"
            );
            dbs.insert(tenant, Arc::new(db));
        }
        Ok(Self {
            wal_dir: wal_dir.to_owned(),
            fsync,
            grace_ms,
            dbs: RwLock::new(dbs),
        })
    }

    /// The newest timestamp a replay keeps: now plus the create grace period.
    fn newest_ok(&self) -> i64 {
        now_ms().saturating_add(self.grace_ms)
    }

    /// The tenant's database, if it has ever written.
    pub fn get(&self, tenant: &TenantId) -> Option<Arc<TenantDb>> {
        self.dbs.read().get(tenant).cloned()
    }

    /// Every tenant with its database.
    pub fn all(&self) -> Vec<(TenantId, Arc<TenantDb>)> {
        let mut v: Vec<_> = self
            .dbs
            .read()
            .iter()
            .map(|(t, d)| (t.clone(), d.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The tenant's database, created on first use.
    pub fn get_or_create(&self, tenant: &TenantId) -> Result<Arc<TenantDb>> {
        if let Some(db) = self.get(tenant) {
            return Ok(db);
        }
        // Opened (directory created and synced) without the registry's lock, so other tenants'
        // pushes do not wait on it. A racing first push of the same tenant opens it too; one
        // of the two is kept, and the other wrote nothing (a WAL creates files on first write).
        // The id was validated, so it is a single safe path component.
        let (db, _) = TenantDb::open(
            &self.wal_dir.join(tenant.as_str()),
            self.fsync,
            self.newest_ok(),
        )?;
        let mut dbs = self.dbs.write();
        if let Some(existing) = dbs.get(tenant) {
            return Ok(existing.clone());
        }
        let db = Arc::new(db);
        dbs.insert(tenant.clone(), db.clone());
        tracing::info!(%tenant, "new tenant");
        Ok(db)
    }
}
