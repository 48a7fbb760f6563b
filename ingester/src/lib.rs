//! The ingester: receives Prometheus remote write, validates it, and keeps each tenant's
//! recent data in an in-memory head backed by a WAL; serves it to queriers over gRPC.
//!
//! Guarantees: a write is acknowledged only after its WAL write, so a crash (SIGKILL) loses no
//! acknowledged sample; tenants never share a head, a WAL directory or a lookup path.
//!
//! Write path: [`push`] (HTTP) → [`distributor`] (HA dedup, ring placement, quorum over the
//! owners: gRPC [`grpc`] `Push`, or in-process) → [`validate`] → [`tenant_db`] (head + WAL) →
//! [`head`] / [`wal`]. Read path: [`grpc`] → [`head`].

pub mod config;
pub mod distributor;
pub mod exemplars;
pub mod grpc;
pub mod head;
pub mod metrics;
pub mod push;
pub mod shipper;
pub mod tenant_db;
pub mod tenants;
pub mod validate;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::IngesterConfig;
use metrics::IngesterMetrics;
use tenants::Tenants;

/// Errors of the ingester.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ingestion task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A running ingester.
pub struct Ingester {
    pub config: IngesterConfig,
    /// Per-tenant limits, authentication, the discarded-samples counter.
    pub tenancy: Arc<muninn_tenancy::Tenancy>,
    /// The ring this ingester is in, once joined: series limits are shares of the global ones.
    pub ring: std::sync::OnceLock<Arc<muninn_ring::RingHandle>>,
    pub tenants: Tenants,
    pub metrics: IngesterMetrics,
    /// Where blocks are shipped; `None` keeps everything in the head.
    pub bucket: Option<muninn_storage::bucket::Bucket>,
    /// Cleared when shutdown begins: pushes get 503 from then on.
    accepting: std::sync::atomic::AtomicBool,
    /// Pushes applying their samples right now ([`Ingester::admit`]).
    in_flight: std::sync::atomic::AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    drained: tokio::sync::Notify,
}

/// How many instances a shuffle shard of `size` has: with zone awareness ⌈size/zones⌉ per
/// zone (as many as each zone has), else `size` (`muninn_ring::shuffle`).
fn shard_members(ring: &muninn_ring::Ring, size: usize) -> usize {
    let mut zones: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for i in ring
        .instances
        .iter()
        .filter(|i| i.state == muninn_ring::InstanceState::Active)
    {
        *zones
            .entry(if ring.zone_awareness {
                i.zone.as_str()
            } else {
                ""
            })
            .or_default() += 1;
    }
    let per_zone = size.div_ceil(zones.len().max(1));
    zones
        .values()
        .map(|&n| n.min(per_zone))
        .sum::<usize>()
        .max(1)
}

/// Decompressed bytes all pushes together may hold at once.
pub const DECOMPRESS_BUDGET_BYTES: usize = 512 << 20;

/// A push admitted by [`Ingester::admit`]; leaving it ends the push's part in the drain.
pub struct Admitted<'a>(&'a Ingester);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Ingester {
    /// Opens the data directory, replaying every tenant's WAL (progress in the log).
    pub fn open(
        config: IngesterConfig,
        tenancy: Arc<muninn_tenancy::Tenancy>,
        bucket: Option<muninn_storage::bucket::Bucket>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Arc<Self>> {
        let metrics = IngesterMetrics::default();
        metrics.register(registry);
        let tenants = Tenants::open(
            &config.data_dir.join("wal"),
            config.wal_fsync,
            tenancy.overrides.max_creation_grace_ms(),
            &metrics,
        )?;
        Ok(Arc::new(Self {
            config,
            tenancy,
            ring: std::sync::OnceLock::new(),
            tenants,
            metrics,
            bucket,
            accepting: std::sync::atomic::AtomicBool::new(true),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
        }))
    }

    /// The series limits this ingester enforces for a tenant: the global limits times the
    /// replication factor, divided by the ingesters the tenant's series are spread over (its
    /// shuffle shard, or every ACTIVE ingester), as Mimir does. A ring of one enforces the
    /// global limits themselves.
    pub fn series_limits(&self, limits: &muninn_tenancy::Limits) -> tenant_db::SeriesLimits {
        let (g_user, g_metric, g_ex) = (
            limits.max_global_series_per_user,
            limits.max_global_series_per_metric,
            limits.max_global_exemplars_per_user,
        );
        if g_user == 0 && g_metric == 0 && g_ex == 0 {
            return tenant_db::SeriesLimits::default();
        }
        let (rf, n) = match self.ring.get() {
            Some(r) if r.is_gossip() => {
                let ring = r.ring();
                let active = ring
                    .instances
                    .iter()
                    .filter(|i| i.state == muninn_ring::InstanceState::Active)
                    .count()
                    .max(1);
                let shard = limits.ingestion_tenant_shard_size;
                let n = if shard > 0 && shard < active {
                    shard_members(&ring, shard)
                } else {
                    active
                };
                (ring.effective_rf().clamp(1, n), n)
            }
            _ => (1, 1),
        };
        let share = |g: u64| {
            if g == 0 {
                0
            } else {
                ((g as f64 / n as f64) * rf as f64).max(1.0) as u64
            }
        };
        tenant_db::SeriesLimits {
            per_user: share(g_user),
            per_metric: share(g_metric),
            exemplars: share(g_ex) as usize,
        }
    }

    /// Admits a push to apply its samples, or `None` once shutdown began (answer 503).
    pub fn admit(&self) -> Option<Admitted<'_>> {
        use std::sync::atomic::Ordering;
        if !self.accepting.load(Ordering::SeqCst) {
            return None;
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(self);
        // Re-checked after counting in: either the drain sees this push, or the push sees
        // the drain.
        self.accepting.load(Ordering::SeqCst).then_some(admitted)
    }

    /// Whether pushes are accepted (false once shutdown began).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops accepting pushes (they get 503 from now on) and waits, up to `wait`, for the
    /// pushes applying their samples to finish, so that a shutdown flush sees every
    /// acknowledged write.
    pub async fn stop_accepting(&self, wait: std::time::Duration) {
        use std::sync::atomic::Ordering;
        self.accepting.store(false, Ordering::SeqCst);
        let drained = async {
            loop {
                let notified = self.drained.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(wait, drained).await.is_err() {
            tracing::warn!(
                "pushes still in flight after {wait:?}; flushing anyway (the WAL keeps them)"
            );
        }
    }

    /// HTTP routes of the ingester itself (`/ingester/flush`); `/api/v1/push` belongs to the
    /// [`distributor::Distributor`] in front of it.
    pub fn http_router(self: &Arc<Self>) -> axum::Router {
        push::ingester_router(self.clone())
    }

    /// The gRPC service: queriers read through it, routers push to it. With tenant
    /// authentication on, every call must carry the cluster token.
    pub fn grpc_service(
        self: &Arc<Self>,
        dist: Option<Arc<distributor::Distributor>>,
    ) -> tonic::service::interceptor::InterceptedService<
        muninn_proto::ingester::ingester_server::IngesterServer<grpc::IngesterGrpc>,
        grpc::ClusterAuth,
    > {
        let svc = muninn_proto::ingester::ingester_server::IngesterServer::new(
            grpc::IngesterGrpc::new(self.clone(), dist),
        )
        .max_encoding_message_size(muninn_ring::clients::MAX_MESSAGE_BYTES)
        .max_decoding_message_size(muninn_ring::clients::MAX_MESSAGE_BYTES);
        tonic::service::interceptor::InterceptedService::new(
            svc,
            grpc::ClusterAuth(self.tenancy.auth.clone()),
        )
    }
}
