//! The write path's router: takes a remote-write body, asks the HA tracker whether its
//! replica may store, splits its series over the ring and sends each owner its share over
//! gRPC (or applies it in-process when this ingester is an owner). A push succeeds when every
//! series reached a quorum of its owners; otherwise it fails with 5xx so the sender retries
//! (owners that did store keep the samples: a retry finds them as duplicates).
//!
//! Owners validate labels when they create a series (and skip it for series they hold), so
//! validation costs once per series per owner, not once per push at the router; the router
//! reports the owners' rejections once. An ingester that is a ring of its own (`muninn all`,
//! or no `--memberlist.join`) with no HA tracker skips all of this and applies the body
//! directly, as before the ring existed.

pub mod ha_tracker;
pub mod quorum;
pub mod split;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use muninn_proto::ingester::PushRequest;
use muninn_proto::tenant::TenantId;
use muninn_proto::write_view::WriteRequestView;
use muninn_ring::clients::ClientPool;
use muninn_ring::{InstanceIdx, RingHandle};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::Ingester;
use crate::metrics::{StatusLabels, TenantLabels};
use crate::push::PushError;
use ha_tracker::{HaConfig, HaTracker};
use quorum::{Quorum, Verdict};

/// Longest HA cluster or replica label value accepted.
pub const MAX_HA_LABEL_BYTES: usize = 256;

/// Distributor settings.
#[derive(Clone, Debug)]
pub struct DistributorConfig {
    pub multitenancy: bool,
    pub max_request_bytes: usize,
    pub ha: Option<HaConfig>,
    /// Longest an owner may take to store its share.
    pub owner_timeout: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub instance: String,
}

/// The router's metrics.
#[derive(Default)]
pub struct DistributorMetrics {
    /// `POST /api/v1/push` requests by status code.
    pub push_requests: Family<StatusLabels, Counter>,
    /// Owner writes that failed (unreachable, unhealthy, shutting down, errors) by instance.
    pub owner_failures: Family<InstanceLabels, Counter>,
    /// Samples of non-elected HA replicas, dropped with 202.
    pub ha_dropped_samples: Family<TenantLabels, Counter>,
    /// Samples routed to owners (before replication).
    pub routed_samples: Family<TenantLabels, Counter>,
    /// Samples stored, counted once per push at the router (before replication).
    pub received_samples: Family<TenantLabels, Counter>,
}

impl DistributorMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_distributor");
        r.register(
            "push_requests",
            "Remote-write requests by status code",
            self.push_requests.clone(),
        );
        r.register(
            "owner_push_failures",
            "Writes to an owning ingester that failed, by instance",
            self.owner_failures.clone(),
        );
        r.register(
            "ha_dropped_samples",
            "Samples of non-elected HA replicas, dropped (202)",
            self.ha_dropped_samples.clone(),
        );
        r.register(
            "routed_samples",
            "Samples routed to their owners, before replication",
            self.routed_samples.clone(),
        );
        r.register(
            "received_samples",
            "Samples stored per tenant, counted once at the router (before replication)",
            self.received_samples.clone(),
        );
    }
}

/// What a successful push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The request came from a non-elected HA replica.
    HaDropped {
        replica: String,
        elected: String,
    },
}

/// One owner's answer.
#[derive(Debug, Default, Clone)]
pub struct OwnerReply {
    pub ingested_samples: u64,
    pub rejected_samples: u64,
    pub rejected_series: u64,
    pub first_errors: Vec<String>,
}

struct OwnerFailure {
    instance: String,
    message: String,
    unavailable: bool,
}

/// A tenant's shard ring and what it was built from.
struct ShardCache {
    from: Arc<muninn_ring::Ring>,
    size: usize,
    ring: Option<Arc<muninn_ring::Ring>>,
}

/// The router of one process.
pub struct Distributor {
    pub config: DistributorConfig,
    pub ring: Arc<RingHandle>,
    pub clients: Arc<ClientPool>,
    /// This process's ingester, when it is one.
    pub local: Option<Arc<Ingester>>,
    pub ha: Option<HaTracker>,
    pub metrics: DistributorMetrics,
    /// Per-tenant limits and the discarded-samples counter.
    pub tenancy: Arc<muninn_tenancy::Tenancy>,
    /// The ingestion rate limit, enforced here (the router) per tenant.
    rate: muninn_tenancy::rate::RateLimiter,
    /// Shuffle-shard rings per tenant, for the ring snapshot they were built from.
    shards: parking_lot::Mutex<std::collections::HashMap<String, ShardCache>>,
    accepting: AtomicBool,
    /// Decompressed bytes (KiB permits) all pushes may hold at once.
    pub decompress_budget: tokio::sync::Semaphore,
}

impl Distributor {
    pub fn new(
        config: DistributorConfig,
        tenancy: Arc<muninn_tenancy::Tenancy>,
        ring: Arc<RingHandle>,
        clients: Arc<ClientPool>,
        local: Option<Arc<Ingester>>,
    ) -> Self {
        let ha = config
            .ha
            .clone()
            .map(|c| HaTracker::new(c, ring.clone(), clients.clone()));
        Self {
            config,
            ring,
            clients,
            local,
            ha,
            metrics: DistributorMetrics::default(),
            tenancy,
            rate: Default::default(),
            shards: Default::default(),
            accepting: AtomicBool::new(true),
            decompress_budget: tokio::sync::Semaphore::new(crate::DECOMPRESS_BUDGET_BYTES >> 10),
        }
    }

    pub fn register(&self, r: &mut Registry) {
        self.metrics.register(r);
        if let Some(ha) = &self.ha {
            r.register(
                "muninn_distributor_ha_elections",
                "HA replicas elected by this process as leader (first elections and failovers)",
                ha.elections.clone(),
            );
        }
    }

    /// Whether pushes are taken (false once shutdown began).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
            && self.local.as_ref().is_none_or(|i| i.is_accepting())
    }

    /// Refuses pushes from now on (503).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// True when this process is the only owner there can be: apply bodies directly.
    fn local_only(&self) -> Option<&Arc<Ingester>> {
        if self.ha.is_some() || self.ring.is_gossip() {
            return None;
        }
        self.local.as_ref()
    }

    /// Takes `samples` from the tenant's ingestion rate budget, or refuses the whole request
    /// (429; nothing is stored and no tokens are taken). As Mimir's global strategy, each
    /// router enforces the tenant's rate divided by the routers in the cluster.
    pub fn check_rate(&self, tenant: &TenantId, samples: u64) -> Result<(), PushError> {
        let limits = self.tenancy.overrides.get(tenant.as_str());
        if limits.ingestion_rate <= 0.0 {
            return Ok(());
        }
        let routers = self.ring.routers().max(1) as f64;
        let rate = limits.ingestion_rate / routers;
        if self.rate.allow(
            tenant.as_str(),
            samples,
            rate,
            limits.burst(),
            std::time::Instant::now(),
        ) {
            return Ok(());
        }
        self.tenancy.discarded.add(
            tenant.as_str(),
            crate::validate::Reason::RateLimited.as_str(),
            samples,
        );
        Err(PushError::RateLimited(format!(
            "ingestion rate limit exceeded for tenant {tenant}: {samples} samples in this request; \
             limit ingestion_rate {} samples/s ({rate:.0}/s on each of {routers} routers), \
             ingestion_burst_size {}",
            limits.ingestion_rate,
            limits.burst()
        )))
    }

    /// Stores a snappy remote-write body of `tenant`.
    pub async fn push(&self, tenant: &TenantId, body: &[u8]) -> Result<Pushed, PushError> {
        if let Some(ing) = self.local_only() {
            let _admitted = ing.admit().ok_or(PushError::ShuttingDown)?;
            let outcome = tokio::task::block_in_place(|| {
                crate::push::ingest(ing, tenant, body, |view| {
                    self.check_rate(tenant, view.samples.len() as u64)
                })
            })?;
            return self.applied_locally(ing, tenant, &outcome);
        }
        let limit = self.config.max_request_bytes;
        let plain = tokio::task::block_in_place(|| {
            let mut buf = Vec::new();
            crate::push::decompress(body, limit, &mut buf).map(|n| {
                buf.truncate(n);
                buf
            })
        })?;
        self.route(tenant, plain).await
    }

    /// Stores an uncompressed remote write 2.0 request of `tenant`. Applied here, it is
    /// decoded straight into the head's view; routed, it is translated into the 1.0 request
    /// whose series bytes the owners receive.
    pub async fn push_v2(
        &self,
        tenant: &TenantId,
        plain: Vec<u8>,
    ) -> Result<(Pushed, muninn_proto::write_v2::V2Counts), PushError> {
        if let Some(ing) = self.local_only() {
            let _admitted = ing.admit().ok_or(PushError::ShuttingDown)?;
            let (outcome, counts) = tokio::task::block_in_place(|| {
                let (view, counts) = muninn_proto::write_v2::decode_view(&plain)?;
                self.check_rate(tenant, view.samples.len() as u64)?;
                crate::push::apply_view(ing, tenant, &view).map(|o| (o, counts))
            })?;
            return self
                .applied_locally(ing, tenant, &outcome)
                .map(|p| (p, counts));
        }
        let (v1, counts) = tokio::task::block_in_place(|| {
            let mut v1 = Vec::new();
            muninn_proto::write_v2::translate(&plain, &mut v1).map(|c| (v1, c))
        })?;
        self.route(tenant, v1).await.map(|p| (p, counts))
    }

    /// The answer to a push this process applied itself.
    fn applied_locally(
        &self,
        ing: &Ingester,
        tenant: &TenantId,
        outcome: &crate::tenant_db::PushOutcome,
    ) -> Result<Pushed, PushError> {
        crate::push::record_metrics(ing, tenant, outcome);
        self.count_received(tenant, outcome.ingested_samples);
        if outcome.rejected_samples > 0 || outcome.rejected_metadata > 0 {
            return Err(PushError::Rejected(crate::push::rejection_message(outcome)));
        }
        Ok(Pushed::Stored)
    }

    /// HA dedup, rate limit, placement and replication of an uncompressed request.
    async fn route(&self, tenant: &TenantId, plain: Vec<u8>) -> Result<Pushed, PushError> {
        // Decoded once; the view borrows `plain` across the HA check.
        let view = tokio::task::block_in_place(|| WriteRequestView::decode(&plain))?;
        let samples = view.samples.len() as u64;
        let mut strip: Option<&[u8]> = None;
        if let (Some(ha), Some((cluster, replica))) = (&self.ha, self.ha_labels(&view)) {
            // The values become gossip keys: bounded, so one push cannot outgrow a packet.
            if cluster.len() > MAX_HA_LABEL_BYTES || replica.len() > MAX_HA_LABEL_BYTES {
                return Err(PushError::Rejected(format!(
                    "HA labels {:?}/{:?} longer than {MAX_HA_LABEL_BYTES} bytes",
                    ha.config.cluster_label, ha.config.replica_label
                )));
            }
            let d = ha
                .check(tenant, &cluster, &replica)
                .await
                .map_err(|e| PushError::Unavailable(e.to_string()))?;
            if !d.accept {
                self.metrics
                    .ha_dropped_samples
                    .get_or_create(&TenantLabels {
                        tenant: tenant.to_string(),
                    })
                    .inc_by(samples);
                return Ok(Pushed::HaDropped {
                    replica,
                    elected: d.elected,
                });
            }
            strip = Some(ha.config.replica_label.as_bytes());
        }
        // After HA dedup, as Mimir: a non-elected replica's samples cost the tenant nothing.
        self.check_rate(tenant, samples)?;
        let ring = self.placement_ring(tenant);
        let split = tokio::task::block_in_place(|| {
            split::split(&ring, tenant.as_str(), &plain, &view, strip)
                .map_err(|e| PushError::Unavailable(e.to_string()))
        })?;
        drop(view);
        self.metrics
            .routed_samples
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc_by(samples);
        if split.bodies.is_empty() {
            return Ok(Pushed::Stored);
        }
        let rejected = std::sync::atomic::AtomicU64::new(0);
        let r = self.replicate(tenant, &ring, split, &rejected).await;
        if r.is_ok() || matches!(r, Err(PushError::Rejected(_))) {
            let refused = rejected.load(Ordering::Relaxed);
            self.count_received(tenant, samples.saturating_sub(refused));
        }
        r
    }

    fn count_received(&self, tenant: &TenantId, n: u64) {
        if n > 0 {
            self.metrics
                .received_samples
                .get_or_create(&TenantLabels {
                    tenant: tenant.to_string(),
                })
                .inc_by(n);
        }
    }

    /// The ring a tenant's series are placed on: its shuffle shard
    /// (`ingestion_tenant_shard_size`) or the whole ring.
    fn placement_ring(&self, tenant: &TenantId) -> Arc<muninn_ring::Ring> {
        let ring = self.ring.ring();
        let size = self
            .tenancy
            .overrides
            .get(tenant.as_str())
            .ingestion_tenant_shard_size;
        if size == 0 {
            return ring;
        }
        let mut shards = self.shards.lock();
        if let Some(c) = shards.get(tenant.as_str())
            && c.size == size
            && Arc::ptr_eq(&c.from, &ring)
        {
            return c.ring.clone().unwrap_or(ring);
        }
        let shard = muninn_ring::shuffle::shard_ring(&ring, tenant.as_str(), size).map(Arc::new);
        shards.insert(
            tenant.to_string(),
            ShardCache {
                from: ring.clone(),
                size,
                ring: shard.clone(),
            },
        );
        shard.unwrap_or(ring)
    }

    /// The (cluster, replica) label values of the request's first series, if it has both.
    fn ha_labels(&self, view: &WriteRequestView<'_>) -> Option<(String, String)> {
        let ha = self.ha.as_ref()?;
        let first = view.series.first()?;
        let labels = view.series_labels(first);
        let get = |name: &str| {
            labels
                .iter()
                .find(|l| l.name == name.as_bytes())
                .map(|l| String::from_utf8_lossy(l.value).into_owned())
        };
        Some((
            get(&ha.config.cluster_label)?,
            get(&ha.config.replica_label)?,
        ))
    }

    /// Sends each owner its body; decides on quorum as replies arrive.
    async fn replicate(
        &self,
        tenant: &TenantId,
        ring: &muninn_ring::Ring,
        split: split::Split,
        rejected: &std::sync::atomic::AtomicU64,
    ) -> Result<Pushed, PushError> {
        let mut quorum = Quorum::new(&split.sets, ring.quorum());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            InstanceIdx,
            Result<OwnerReply, OwnerFailure>,
        )>();
        let self_id = self.ring.self_id();
        let mut expected = 0;
        let mut local_share: Option<(InstanceIdx, String, Vec<u8>)> = None;
        for (owner, body) in split.bodies {
            expected += 1;
            let inst = &ring.instances[owner as usize];
            if self_id.as_deref() == Some(inst.id.as_str()) && self.local.is_some() {
                local_share = Some((owner, inst.id.clone(), body));
                continue;
            }
            let tx = tx.clone();
            if !inst.healthy {
                let _ = tx.send((
                    owner,
                    Err(OwnerFailure {
                        instance: inst.id.clone(),
                        message: "unhealthy (no heartbeat within the heartbeat timeout)".into(),
                        unavailable: true,
                    }),
                ));
                continue;
            }
            let client = self.clients.get(&inst.addr);
            let req = self.clients.request(
                tenant.as_str(),
                PushRequest {
                    write_request: body.into(),
                },
            );
            let (id, timeout) = (inst.id.clone(), self.config.owner_timeout);
            tokio::spawn(async move {
                let r = match client {
                    Ok(c) => send(c, req, timeout).await,
                    Err(e) => Err((e.to_string(), false)),
                };
                let r = r.map_err(|(message, unavailable)| OwnerFailure {
                    instance: id,
                    message,
                    unavailable,
                });
                let _ = tx.send((owner, r));
            });
        }
        // This process's own share is applied here, while the remote ones travel.
        if let (Some((owner, id, body)), Some(ing)) = (local_share, &self.local) {
            let r = tokio::task::block_in_place(|| ing.push_routed(tenant, &body)).map_err(|e| {
                OwnerFailure {
                    instance: id,
                    unavailable: matches!(e, PushError::ShuttingDown),
                    message: e.to_string(),
                }
            });
            let _ = tx.send((owner, r));
        }
        drop(tx);
        let mut replies: Vec<OwnerReply> = Vec::new();
        let mut failures: Vec<OwnerFailure> = Vec::new();
        let mut verdict = Verdict::Pending;
        while verdict == Verdict::Pending {
            let Some((owner, r)) = rx.recv().await else {
                break;
            };
            expected -= 1;
            verdict = quorum.record(owner, r.is_ok());
            match r {
                Ok(reply) => replies.push(reply),
                Err(f) => {
                    self.metrics
                        .owner_failures
                        .get_or_create(&InstanceLabels {
                            instance: f.instance.clone(),
                        })
                        .inc();
                    failures.push(f);
                }
            }
            if expected == 0 {
                break;
            }
        }
        if quorum.verdict() != Verdict::Succeeded {
            let unavailable = failures.iter().all(|f| f.unavailable);
            let mut msg = format!(
                "write did not reach a quorum ({} of {}) of ingesters for some series:",
                ring.quorum(),
                ring.effective_rf()
            );
            for f in &failures {
                let _ = write!(msg, " {}: {};", f.instance, f.message);
            }
            return Err(PushError::Replication {
                message: msg,
                unavailable,
            });
        }
        // Owners judge the same series alike; report the fullest account once.
        if let Some(worst) = replies
            .iter()
            .max_by_key(|r| (r.rejected_samples, r.first_errors.len()))
            && (worst.rejected_samples > 0 || !worst.first_errors.is_empty())
        {
            rejected.store(worst.rejected_samples, Ordering::Relaxed);
            let mut s = format!(
                "rejected {} samples ({} series rejected whole); first errors:",
                worst.rejected_samples, worst.rejected_series
            );
            for e in &worst.first_errors {
                let _ = write!(s, " {e};");
            }
            return Err(PushError::Rejected(s));
        }
        Ok(Pushed::Stored)
    }
}

/// One owner's gRPC push. Errors carry whether the owner was unavailable (vs. failing).
async fn send(
    mut client: muninn_proto::ingester::ingester_client::IngesterClient<tonic::transport::Channel>,
    mut req: tonic::Request<PushRequest>,
    timeout: Duration,
) -> Result<OwnerReply, (String, bool)> {
    req.set_timeout(timeout);
    match client.push(req).await {
        Ok(r) => {
            let r = r.into_inner();
            Ok(OwnerReply {
                ingested_samples: r.ingested_samples,
                rejected_samples: r.rejected_samples,
                rejected_series: r.rejected_series,
                first_errors: r.first_errors,
            })
        }
        Err(s) => {
            use tonic::Code;
            let unavailable = matches!(
                s.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
            );
            Err((format!("{:?}: {}", s.code(), s.message()), unavailable))
        }
    }
}
