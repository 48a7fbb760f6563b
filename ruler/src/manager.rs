//! The ruler's loops: a sync loop that reads every tenant's groups from the bucket and keeps
//! one evaluation task per group this ruler owns, and the evaluation tasks themselves.
//!
//! Sync runs every `--ruler.poll-interval`, when the API changed a group (here or, told over
//! HTTP, on another ruler), and when the set of live rulers in the gossip changes. Ownership
//! is `sharding::owner` over the live rulers' ids. A group's evaluations fall on
//! `offset + k × interval` (the offset a hash of the group, as Prometheus staggers groups),
//! so a group that moves to another ruler keeps its timestamps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use muninn_ingester::distributor::Distributor;
use muninn_proto::prometheus::{TimeSeries, WriteRequest};
use muninn_proto::tenant::TenantId;
use muninn_proto::time::now_ms;
use muninn_querier::Querier;
use muninn_ring::RingHandle;
use parking_lot::RwLock;
use prost::Message;
use tokio::sync::{Notify, watch};

use crate::group::{EvalEnv, Group, GroupKey};
use crate::metrics::RulerMetrics;
use crate::notifier::Notifier;
use crate::rule_file::RuleGroup;
use crate::rule_store::RuleStore;
use crate::{RulerArgs, sharding};

/// Gossip key under which a ruler publishes its HTTP base URL.
pub const KEY_RULER_URL: &str = "ruler.url";

/// Why a group's task stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Running,
    /// Deleted from the bucket: its series get staleness markers.
    Deleted,
    /// Changed, moved to another ruler, or the ruler stops: no markers (the next owner
    /// goes on writing them).
    Quiet,
}

/// What the API shows of a group: its JSON after the last evaluation (so a reader never
/// waits for an evaluation).
#[derive(Default)]
pub struct Snapshot {
    pub group: serde_json::Value,
    pub alerts: Vec<serde_json::Value>,
}

struct Running {
    def: RuleGroup,
    snapshot: Arc<RwLock<Snapshot>>,
    stop: watch::Sender<Stop>,
    /// The task; it returns the group's state when stopped quietly (a replacement takes it
    /// over).
    task: tokio::task::JoinHandle<Option<Group>>,
}

/// A ruler.
pub struct Ruler {
    args: RulerArgs,
    pub store: RuleStore,
    env: Arc<EvalEnv>,
    distributor: Arc<Distributor>,
    ring: Option<Arc<RingHandle>>,
    self_id: String,
    notifier: Notifier,
    pub metrics: Arc<RulerMetrics>,
    groups: parking_lot::Mutex<HashMap<GroupKey, Running>>,
    sync_now: Notify,
    pub(crate) http: reqwest::Client,
}

impl Ruler {
    /// A ruler reading groups from `store`, querying through `querier`, writing through
    /// `distributor`; `ring` with gossip shards groups over the live rulers.
    pub fn new(
        args: RulerArgs,
        store: RuleStore,
        querier: Arc<Querier>,
        distributor: Arc<Distributor>,
        ring: Option<Arc<RingHandle>>,
        self_id: String,
    ) -> Arc<Self> {
        let metrics = Arc::new(RulerMetrics::default());
        let notifier = Notifier::start(
            args.alertmanager_url
                .iter()
                .filter(|u| !u.is_empty())
                .cloned()
                .collect(),
            args.notification_timeout.0,
            args.notification_queue_capacity,
            metrics.clone(),
        );
        let env = Arc::new(EvalEnv {
            querier,
            external_url: args.external_url.clone(),
            resend_delay_ms: args.resend_delay.as_millis_i64().max(0),
        });
        Arc::new(Self {
            args,
            store,
            env,
            distributor,
            ring: ring.filter(|r| r.is_gossip()),
            self_id,
            notifier,
            metrics,
            groups: Default::default(),
            sync_now: Notify::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    pub fn args(&self) -> &RulerArgs {
        &self.args
    }

    /// The live rulers: (id, URL), this one included.
    pub async fn members(&self) -> Vec<(String, String)> {
        let mut m = match &self.ring {
            Some(r) => r.live_values(KEY_RULER_URL).await,
            None => vec![],
        };
        if !m.iter().any(|(id, _)| *id == self.self_id) {
            m.push((self.self_id.clone(), String::new()));
        }
        m.sort();
        m
    }

    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    /// Asks for a sync now (an API change).
    pub fn request_sync(&self) {
        self.sync_now.notify_one();
    }

    /// The state of the groups this ruler evaluates, for `tenant`, sorted.
    pub fn owned(&self, tenant: &TenantId) -> Vec<Arc<RwLock<Snapshot>>> {
        let g = self.groups.lock();
        let mut v: Vec<(&GroupKey, Arc<RwLock<Snapshot>>)> = g
            .iter()
            .filter(|(k, _)| k.tenant == *tenant)
            .map(|(k, r)| (k, r.snapshot.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// Runs the sync loop until `stop` resolves; then stops every group quietly.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let poll = self.args.poll_interval.0.max(Duration::from_millis(100));
        let mut last_sync = tokio::time::Instant::now();
        let mut last_members = self.member_ids().await;
        self.sync().await;
        loop {
            let woke = tokio::select! {
                _ = &mut stop => break,
                _ = self.sync_now.notified() => true,
                _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            };
            let members = self.member_ids().await;
            if woke {
                // API changes arrive in bursts: at most two syncs a second.
                tokio::time::sleep_until(last_sync + Duration::from_millis(500)).await;
            }
            if woke || members != last_members || last_sync.elapsed() >= poll {
                if members != last_members {
                    tracing::info!(
                        rulers = members.len(),
                        "ruler membership changed: resharding rule groups"
                    );
                }
                last_members = members;
                last_sync = tokio::time::Instant::now();
                self.sync().await;
            }
        }
        let running: Vec<Running> = self.groups.lock().drain().map(|(_, r)| r).collect();
        for r in running {
            let _ = r.stop.send(Stop::Quiet);
        }
    }

    async fn member_ids(&self) -> Vec<String> {
        self.members().await.into_iter().map(|(id, _)| id).collect()
    }

    /// Reads every tenant's groups and starts, replaces or stops evaluation tasks so that
    /// exactly the groups this ruler owns run here.
    pub async fn sync(self: &Arc<Self>) {
        let members = self.member_ids().await;
        let tenants = match self.store.tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "rule sync: listing tenants failed; keeping the current groups");
                self.metrics
                    .syncs
                    .get_or_create(&RulerMetrics::outcome("error"))
                    .inc();
                return;
            }
        };
        let mut desired: HashMap<GroupKey, RuleGroup> = HashMap::new();
        let mut all_keys = std::collections::HashSet::new();
        let mut failed_tenants = std::collections::HashSet::new();
        let mut loaded = 0;
        for tenant in tenants {
            let groups = match self.store.list(&tenant).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "rule sync: listing the tenant's groups failed; keeping its current groups");
                    failed_tenants.insert(tenant);
                    continue;
                }
            };
            loaded += groups.len();
            for sg in groups {
                let key = GroupKey {
                    tenant: tenant.clone(),
                    namespace: sg.namespace,
                    name: sg.group.name.clone(),
                };
                all_keys.insert(key.clone());
                if sharding::owner(&members, &key.shard_key()) == Some(self.self_id.as_str()) {
                    desired.insert(key, sg.group);
                }
            }
        }
        let mut groups = self.groups.lock();
        // Replaced here: the new version takes the old one's state over.
        let mut handover: HashMap<GroupKey, tokio::task::JoinHandle<Option<Group>>> =
            HashMap::new();
        let keys: Vec<GroupKey> = groups.keys().cloned().collect();
        for key in keys {
            if failed_tenants.contains(&key.tenant) {
                continue;
            }
            let Some(running) = groups.get(&key) else {
                continue;
            };
            if running.task.is_finished() {
                // The task ended on its own (it panicked): start the group again.
                tracing::error!(tenant = %key.tenant, namespace = %key.namespace, group = %key.name, "rule group task ended unexpectedly; restarting it");
                groups.remove(&key);
                continue;
            }
            if desired.get(&key).is_some_and(|d| *d == running.def) {
                continue;
            }
            let why = if all_keys.contains(&key) {
                Stop::Quiet
            } else {
                Stop::Deleted
            };
            tracing::info!(tenant = %key.tenant, namespace = %key.namespace, group = %key.name, reason = ?why, "rule group stops here");
            if let Some(r) = groups.remove(&key) {
                let _ = r.stop.send(why);
                if why == Stop::Quiet && desired.contains_key(&key) {
                    handover.insert(key, r.task);
                }
            }
        }
        let default_ms = self.args.evaluation_interval.as_millis_i64().max(1000);
        for (key, def) in desired {
            if groups.contains_key(&key) {
                continue;
            }
            let group = match Group::new(key.clone(), def.clone(), default_ms) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(tenant = %key.tenant, group = %key.name, error = %e, "skipping a rule group that does not load");
                    continue;
                }
            };
            tracing::info!(tenant = %key.tenant, namespace = %key.namespace, group = %key.name, interval_ms = group.interval_ms, "rule group starts here");
            let snapshot = Arc::new(RwLock::new(Snapshot::default()));
            let (tx, rx) = watch::channel(Stop::Running);
            let task = tokio::spawn(self.clone().run_group(
                group,
                snapshot.clone(),
                rx,
                handover.remove(&key),
            ));
            groups.insert(
                key,
                Running {
                    def,
                    snapshot,
                    stop: tx,
                    task,
                },
            );
        }
        self.metrics.groups_owned.set(groups.len() as i64);
        self.metrics.groups_loaded.set(loaded as i64);
        self.metrics
            .syncs
            .get_or_create(&RulerMetrics::outcome("success"))
            .inc();
    }

    /// One group's evaluation loop; returns the group's state when stopped quietly.
    async fn run_group(
        self: Arc<Self>,
        mut group: Group,
        snapshot: Arc<RwLock<Snapshot>>,
        mut stop: watch::Receiver<Stop>,
        previous: Option<tokio::task::JoinHandle<Option<Group>>>,
    ) -> Option<Group> {
        if let Some(prev) = previous
            && let Ok(Some(old)) = prev.await
        {
            group.copy_state(old);
        }
        let key = group.key.clone();
        let interval = group.interval_ms.max(1);
        let offset =
            (xxhash_rust::xxh3::xxh3_64(key.shard_key().as_bytes()) % interval as u64) as i64;
        let tenant_labels = RulerMetrics::tenant(key.tenant.as_str());
        // The first tick after `t`.
        let tick_after = |t: i64| (t - offset).div_euclid(interval) * interval + offset + interval;
        let mut next = tick_after(now_ms());
        publish(&group, &snapshot);
        loop {
            let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
            let why = tokio::select! {
                _ = tokio::time::sleep(wait) => None,
                r = stop.wait_for(|s| *s != Stop::Running) => {
                    Some(r.map(|s| *s).unwrap_or(Stop::Quiet))
                }
            };
            match why {
                Some(Stop::Deleted) => {
                    self.write(&key.tenant, group.stale_markers(now_ms())).await;
                    return None;
                }
                Some(_) => return Some(group),
                None => {}
            }
            let ts = next;
            let started = std::time::Instant::now();
            let out = group.evaluate(&self.env, ts).await;
            let took = started.elapsed();
            self.metrics.evaluations.get_or_create(&tenant_labels).inc();
            self.metrics.evaluation_seconds.observe(took.as_secs_f64());
            if out.failures > 0 {
                self.metrics
                    .evaluation_failures
                    .get_or_create(&tenant_labels)
                    .inc_by(out.failures);
            }
            let stopped = *stop.borrow();
            match stopped {
                // Moved or replaced during the evaluation: the next owner writes this tick.
                Stop::Quiet => return Some(group),
                Stop::Deleted => {
                    // Write what the evaluation produced, so the markers below cover exactly
                    // the series that were written.
                    self.write(&key.tenant, out.series).await;
                    self.write(&key.tenant, group.stale_markers(now_ms().max(ts)))
                        .await;
                    return None;
                }
                Stop::Running => {}
            }
            self.write(&key.tenant, out.series).await;
            let alerts: Vec<serde_json::Value> = out
                .alerts
                .iter()
                .map(|(a, expr)| crate::notifier::alert_json(a, expr, &self.args.external_url))
                .collect();
            self.notifier.send(&key.tenant, alerts);
            publish(&group, &snapshot);
            // The next tick after now: an evaluation that ran past ticks skips them.
            let after = tick_after(now_ms().max(ts));
            let missed = (after - ts) / interval - 1;
            if missed > 0 {
                self.metrics
                    .missed_iterations
                    .get_or_create(&tenant_labels)
                    .inc_by(missed as u64);
                tracing::warn!(tenant = %key.tenant, group = %key.name, missed, "rule group evaluation ran past its interval; skipping iterations");
            }
            next = after;
        }
    }

    /// Writes rule results through the push path.
    async fn write(&self, tenant: &TenantId, series: Vec<TimeSeries>) {
        if series.is_empty() {
            return;
        }
        let n = series.len() as u64;
        let body = WriteRequest {
            timeseries: series,
            metadata: vec![],
        }
        .encode_to_vec();
        let body = match snap::raw::Encoder::new().compress_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "compressing rule results failed");
                return;
            }
        };
        let labels = RulerMetrics::tenant(tenant.as_str());
        match self.distributor.push(tenant, &body).await {
            Ok(_) => {
                self.metrics
                    .samples_written
                    .get_or_create(&labels)
                    .inc_by(n);
            }
            Err(e) => {
                self.metrics.write_failures.get_or_create(&labels).inc();
                tracing::warn!(tenant = %tenant, samples = n, error = %e, "writing rule results failed");
            }
        }
    }

    /// Tells every other live ruler to sync now (after an API change); best effort, the poll
    /// catches up with one that does not hear it.
    pub async fn notify_others(&self) {
        for (id, url) in self.members().await {
            if id == self.self_id || url.is_empty() {
                continue;
            }
            let mut req = self.http.post(format!("{url}/ruler/sync"));
            if let Some(t) = self.env.querier.tenancy.auth.cluster_token() {
                req = req.header(muninn_proto::CLUSTER_TOKEN_METADATA_KEY, t);
            }
            let r = req.send().await;
            if let Err(e) = r {
                tracing::warn!(ruler = %id, error = %e, "could not tell a ruler to sync");
            }
        }
    }
}

/// Publishes the group's state for the API.
fn publish(group: &Group, snapshot: &RwLock<Snapshot>) {
    let s = Snapshot {
        group: group.rules_json(crate::group::RuleFilter::All),
        alerts: group.alerts_json(),
    };
    *snapshot.write() = s;
}
