//! Tenancy: what an operator running Muninn for many tenants configures per tenant.
//!
//! - [`limits`]: the per-tenant limits (Mimir's names) and their `--limits.*` default flags;
//! - [`overrides`]: the runtime config file (`overrides: {<tenant>: {...}}`) reloaded live;
//! - [`rate`]: the ingestion rate limiter (a token bucket per tenant);
//! - [`auth`]: optional tenant authentication (`--auth.tenants-file`) and the tenant of a request;
//! - [`discarded`]: `muninn_discarded_samples_total{tenant,reason}`, shared by every refusal.
//!
//! One [`Tenancy`] per process holds them; every role gets an `Arc` of it.

pub mod auth;
pub mod discarded;
pub mod limits;
pub mod overrides;
pub mod rate;

use std::path::PathBuf;
use std::sync::Arc;

use muninn_proto::duration::FlagDuration;

pub use auth::{AuthError, Authenticator};
pub use discarded::Discarded;
pub use limits::{Limits, LimitsArgs};
pub use overrides::Overrides;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Tenancy flags: limits defaults, the runtime config file, authentication.
#[derive(clap::Args, Clone, Debug)]
pub struct TenancyArgs {
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Runtime config file (YAML, Mimir's format): `overrides: {<tenant>: {<limit>: value}}`,
    /// reloaded without a restart. A file that fails to parse keeps the last good one.
    #[arg(long = "runtime-config.file")]
    pub runtime_config_file: Option<PathBuf>,
    /// How often the runtime config file (and the tenants file) is re-read; a file whose
    /// modification time or size changed is re-read within a second anyway.
    #[arg(long = "runtime-config.reload-period", default_value = "10s")]
    pub runtime_config_reload_period: FlagDuration,
    /// Tenants file (YAML, reloaded): `tenants: {<id>: {password_sha256: <hex>}}` and
    /// `admin: {password_sha256: <hex>}`. When set, every write and read must authenticate:
    /// the basic-auth user is the tenant and its password must match.
    #[arg(long = "auth.tenants-file")]
    pub tenants_file: Option<PathBuf>,
    /// With `--auth.tenants-file`: also trust a bare `X-Scope-OrgID` (for installs behind an
    /// authenticating proxy).
    #[arg(long = "auth.trust-org-id-header", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trust_org_id_header: bool,
}

/// The process's tenancy services.
pub struct Tenancy {
    pub overrides: Arc<Overrides>,
    pub auth: Arc<Authenticator>,
    pub discarded: Discarded,
    reload_period: std::time::Duration,
}

impl Tenancy {
    /// Loads the files named by the flags. A file that cannot be read or parsed at start is an
    /// error (later reloads keep the last good one).
    pub fn new(args: &TenancyArgs, multitenancy: bool) -> Result<Arc<Self>, Error> {
        let overrides = Arc::new(Overrides::new(
            Limits::from(&args.limits),
            args.runtime_config_file.clone(),
        ));
        overrides.reload()?;
        let auth = Arc::new(Authenticator::new(
            multitenancy,
            args.tenants_file.clone(),
            args.trust_org_id_header,
        ));
        auth.reload()?;
        if auth.enabled() && auth.cluster_token().is_none() {
            tracing::warn!(
                "the tenants file has no admin credential: internal gRPC calls are not authenticated (keep --grpc-addr on a private network)"
            );
        }
        Ok(Arc::new(Self {
            overrides,
            auth,
            discarded: Discarded::default(),
            reload_period: args
                .runtime_config_reload_period
                .0
                .max(std::time::Duration::from_millis(100)),
        }))
    }

    /// Defaults only, no files: for tests and tools.
    pub fn with_defaults(limits: Limits, multitenancy: bool) -> Arc<Self> {
        Arc::new(Self {
            overrides: Arc::new(Overrides::new(limits, None)),
            auth: Arc::new(Authenticator::new(multitenancy, None, false)),
            discarded: Discarded::default(),
            reload_period: std::time::Duration::from_secs(10),
        })
    }

    /// Registers the tenancy metrics.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        self.discarded.register(r);
        self.overrides.metrics.register(r);
        r.register(
            "muninn_auth_tenants_file_reload_failures",
            "Tenants file loads that failed (the last good one stays)",
            self.auth.failures.clone(),
        );
    }

    /// Re-reads the runtime config and tenants files every reload period until `stop`, and
    /// sooner when a file's modification time or size changes (checked every second, a
    /// `stat` each), so an edited limit applies within about a second.
    pub async fn run_reloader(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let tick = self.reload_period.min(std::time::Duration::from_secs(1));
        let mut last_read = tokio::time::Instant::now();
        let mut seen = self.file_stamps();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let stamps = self.file_stamps();
            if stamps == seen && last_read.elapsed() < self.reload_period {
                continue;
            }
            seen = stamps;
            last_read = tokio::time::Instant::now();
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                // Failures are logged and counted inside; the last good files stay.
                let _ = me.overrides.reload();
                let _ = me.auth.reload();
            })
            .await;
        }
    }

    /// (modification time, size) of each configured file, `None` where unreadable.
    fn file_stamps(&self) -> Vec<Option<(std::time::SystemTime, u64)>> {
        [self.overrides.path(), self.auth.path()]
            .into_iter()
            .flatten()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}
