//! [`RingHandle`]: the ring as a process holds it. Either local (an ingester that is a ring of
//! its own, `muninn all`, or a querier with no ring) or kept up to date from gossip, with this
//! process's own instance (if it is an ingester) published into it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::Result;
use crate::config::RingArgs;
use crate::gossip::{self, Gossip, KEY_HEARTBEAT, KEY_ROLE, KEY_STATE};
use crate::instance::{InstanceDesc, InstanceState};
use crate::token_ring::Ring;

/// The ring of this process.
pub struct RingHandle {
    view: RwLock<Arc<Ring>>,
    gossip: tokio::sync::Mutex<Option<Gossip>>,
    gossip_interval: Option<Duration>,
    me: Mutex<Option<InstanceDesc>>,
    rf: usize,
    zone_awareness: bool,
    heartbeat_timeout: Duration,
    forget_after: Duration,
    heartbeat_period: Duration,
    metrics: crate::metrics::RingMetrics,
    /// Live members that route writes (ingesters, distributors, `all`): the ingestion rate
    /// limit is split among them.
    routers: std::sync::atomic::AtomicUsize,
    /// This process's id in the gossip (None without gossip).
    member_id: Option<String>,
}

impl RingHandle {
    /// A ring that only ever holds `me` (or nothing): no gossip.
    pub fn local(me: Option<InstanceDesc>, rf: usize, zone_awareness: bool) -> Arc<Self> {
        let h = Self {
            view: RwLock::new(Arc::new(Ring::default())),
            gossip: tokio::sync::Mutex::new(None),
            gossip_interval: None,
            me: Mutex::new(me),
            rf,
            zone_awareness,
            heartbeat_timeout: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            heartbeat_period: Duration::from_secs(5),
            metrics: Default::default(),
            routers: std::sync::atomic::AtomicUsize::new(1),
            member_id: None,
        };
        h.rebuild_local();
        Arc::new(h)
    }

    /// Joins the gossip cluster of `args.join` as `node_id` running `role`, publishing `me`
    /// when this process is an ingester, and keeps the ring up to date in the background.
    pub async fn join(
        args: &RingArgs,
        node_id: &str,
        role: &str,
        me: Option<InstanceDesc>,
        rf: usize,
    ) -> Result<Arc<Self>> {
        let mut initial = vec![(KEY_ROLE.to_owned(), role.to_owned())];
        if let Some(d) = &me {
            let mut d = d.clone();
            d.last_heartbeat_ms = muninn_proto::time::now_ms();
            initial.extend(gossip::ring_keys(&d));
        }
        let g = Gossip::start(args, node_id, initial).await?;
        let h = Arc::new(Self {
            view: RwLock::new(Arc::new(Ring::default())),
            gossip_interval: Some(g.interval),
            gossip: tokio::sync::Mutex::new(Some(g)),
            me: Mutex::new(me),
            rf,
            zone_awareness: args.zone_awareness,
            heartbeat_timeout: args.heartbeat_timeout.0,
            forget_after: args.auto_forget_period.0,
            heartbeat_period: args.heartbeat_period(),
            metrics: Default::default(),
            routers: std::sync::atomic::AtomicUsize::new(1),
            member_id: Some(node_id.to_owned()),
        });
        h.refresh().await;
        let weak = Arc::downgrade(&h);
        tokio::spawn(refresh_loop(weak, args.gossip_interval.0));
        Ok(h)
    }

    /// The current snapshot.
    pub fn ring(&self) -> Arc<Ring> {
        self.view.read().clone()
    }

    /// This process's instance id, if it is an ingester in the ring.
    pub fn self_id(&self) -> Option<String> {
        self.me.lock().as_ref().map(|d| d.id.clone())
    }

    /// This process's member id in the gossip, whatever its role; `None` without gossip.
    pub fn member_id(&self) -> Option<String> {
        self.member_id.clone()
    }

    /// Live members that take the cluster's writes (distributors if any, else ingesters; 1
    /// without gossip).
    pub fn routers(&self) -> usize {
        self.routers
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1)
    }

    /// Whether the ring comes from gossip.
    pub fn is_gossip(&self) -> bool {
        self.gossip_interval.is_some()
    }

    /// Publishes this ingester's new state and rebuilds the snapshot.
    pub async fn set_state(&self, state: InstanceState) {
        let Some(id) = ({
            let mut me = self.me.lock();
            me.as_mut().map(|d| {
                d.state = state;
                d.id.clone()
            })
        }) else {
            return;
        };
        tracing::info!(instance = %id, %state, "ring state");
        if let Some(g) = self.gossip.lock().await.as_ref() {
            g.set(KEY_STATE, state.as_str()).await;
        }
        self.refresh().await;
    }

    /// Publishes one of this member's keys (no-op without gossip).
    pub async fn publish(&self, key: &str, value: &str) {
        if let Some(g) = self.gossip.lock().await.as_ref() {
            g.set(key, value).await;
        }
    }

    /// The live members' values of `key`: (member id, value); empty without gossip.
    pub async fn live_values(&self, key: &str) -> Vec<(String, String)> {
        match self.gossip.lock().await.as_ref() {
            Some(g) => g.live_values(key).await,
            None => vec![],
        }
    }

    /// Every member's values under `prefix` (empty without gossip).
    pub async fn values_with_prefix(&self, prefix: &str) -> Vec<(String, String, String)> {
        match self.gossip.lock().await.as_ref() {
            Some(g) => g.values_with_prefix(prefix).await,
            None => vec![],
        }
    }

    /// Leaves the ring: publishes LEFT, gives the gossip a few rounds to carry it, and stops
    /// gossiping. Members drop a LEFT instance at once; one that never hears it forgets the
    /// instance after the auto-forget period.
    pub async fn leave(&self) {
        self.set_state(InstanceState::Left).await;
        let Some(g) = self.gossip.lock().await.take() else {
            return;
        };
        tokio::time::sleep(g.interval * 5).await;
        g.shutdown().await;
    }

    /// The ring's metrics (members by state, heartbeat ages).
    pub fn metrics(&self) -> &crate::metrics::RingMetrics {
        &self.metrics
    }

    fn rebuild_local(&self) {
        let mut me = self.me.lock().clone();
        if let Some(d) = me.as_mut() {
            d.last_heartbeat_ms = muninn_proto::time::now_ms();
        }
        let ring = Ring::new(me.into_iter().collect(), self.rf, self.zone_awareness);
        self.metrics.observe(&ring);
        *self.view.write() = Arc::new(ring);
    }

    /// Rebuilds the snapshot from the gossip state.
    async fn refresh(&self) {
        let guard = self.gossip.lock().await;
        let Some(g) = guard.as_ref() else {
            drop(guard);
            self.rebuild_local();
            return;
        };
        let now = muninn_proto::time::now_ms();
        let instances = g
            .instances(now, self.heartbeat_timeout, self.forget_after)
            .await;
        let routers = g.live_routers().await;
        drop(guard);
        self.routers
            .store(routers, std::sync::atomic::Ordering::Relaxed);
        let before = self.ring();
        let ring = Ring::new(instances, self.rf, self.zone_awareness);
        log_changes(&before, &ring);
        self.metrics.observe(&ring);
        if ring.effective_rf() < self.rf
            && before.effective_rf() != ring.effective_rf()
            && !ring.instances.is_empty()
        {
            tracing::warn!(
                configured = self.rf,
                effective = ring.effective_rf(),
                "fewer ACTIVE ingesters (or zones) than the replication factor; replicating to all of them"
            );
        }
        *self.view.write() = Arc::new(ring);
    }

    async fn heartbeat(&self) {
        if self.me.lock().is_none() {
            return;
        }
        if let Some(g) = self.gossip.lock().await.as_ref() {
            g.set(KEY_HEARTBEAT, &muninn_proto::time::now_ms().to_string())
                .await;
        }
    }
}

async fn refresh_loop(h: Weak<RingHandle>, every: Duration) {
    let mut last_beat = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(h) = h.upgrade() else { return };
        if h.gossip.lock().await.is_none() {
            return;
        }
        if last_beat.elapsed() >= h.heartbeat_period {
            h.heartbeat().await;
            last_beat = tokio::time::Instant::now();
        }
        h.refresh().await;
    }
}

/// Logs instances that appeared, disappeared, or changed state or health.
fn log_changes(before: &Ring, after: &Ring) {
    for i in &after.instances {
        match before.find(&i.id).map(|x| &before.instances[x as usize]) {
            None => {
                tracing::info!(instance = %i.id, addr = %i.addr, state = %i.state, "ring member appeared")
            }
            Some(b) if b.state != i.state || b.healthy != i.healthy => tracing::info!(
                instance = %i.id,
                state = %i.state,
                healthy = i.healthy,
                "ring member changed"
            ),
            Some(_) => {}
        }
    }
    for b in &before.instances {
        if after.find(&b.id).is_none() {
            tracing::info!(instance = %b.id, "ring member removed (left or forgotten)");
        }
    }
}
