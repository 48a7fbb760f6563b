//! The per-tenant fair queue in front of the queriers.
//!
//! Every sub-request (a split piece, a shard, a forwarded call) takes a permit before it goes
//! downstream. At most `--query-frontend.querier-concurrency` permits are out at once, all
//! tenants together, and at most the tenant's `max_query_parallelism` for one tenant. When a
//! permit comes back, the next one goes to the next tenant in turn that has a request waiting
//! and is under its parallelism: a tenant flooding the queue waits behind its own requests,
//! never in front of another tenant's. A tenant with `--query-frontend.max-outstanding-
//! requests-per-tenant` sub-requests waiting gets 429 for new client requests.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use muninn_tenancy::overrides::Overrides;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::metrics::FrontendMetrics;
use crate::{Error, Result};

/// The queue. Cloning shares it.
#[derive(Clone)]
pub struct FairQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    capacity: usize,
    max_outstanding: usize,
    overrides: Arc<Overrides>,
    metrics: Arc<FrontendMetrics>,
}

#[derive(Default)]
struct State {
    inflight: usize,
    tenants: HashMap<String, TenantQueue>,
    /// Tenants with requests waiting, in turn order.
    turn: VecDeque<String>,
}

#[derive(Default)]
struct TenantQueue {
    waiting: VecDeque<oneshot::Sender<Permit>>,
    inflight: usize,
}

/// A slot to send one sub-request downstream; returned when dropped.
pub struct Permit {
    inner: Arc<Inner>,
    tenant: String,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut st = self.inner.state.lock();
        st.inflight = st.inflight.saturating_sub(1);
        let remove = match st.tenants.get_mut(&self.tenant) {
            Some(tq) => {
                tq.inflight = tq.inflight.saturating_sub(1);
                tq.inflight == 0 && tq.waiting.is_empty()
            }
            None => false,
        };
        if remove {
            st.tenants.remove(&self.tenant);
        }
        self.inner.dispatch(&mut st);
    }
}

impl FairQueue {
    pub fn new(
        capacity: usize,
        max_outstanding: usize,
        overrides: Arc<Overrides>,
        metrics: Arc<FrontendMetrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                capacity: capacity.max(1),
                max_outstanding: max_outstanding.max(1),
                overrides,
                metrics,
            }),
        }
    }

    /// Admits a client request of `tenant`, unless the tenant already has
    /// `--query-frontend.max-outstanding-requests-per-tenant` sub-requests waiting (429). An
    /// admitted request's sub-requests (its pieces and shards) all queue.
    pub fn admit(&self, tenant: &str) -> Result<()> {
        let mut st = self.inner.state.lock();
        // Requests given up while waiting no longer count.
        let waiting = st.tenants.get_mut(tenant).map_or(0, |t| {
            t.waiting.retain(|w| !w.is_closed());
            t.waiting.len()
        });
        if waiting >= self.inner.max_outstanding {
            self.inner.metrics.rejected(tenant);
            return Err(Error::TooManyOutstanding(waiting));
        }
        Ok(())
    }

    /// Waits for `tenant`'s turn; the time waited is observed in
    /// `muninn_frontend_queue_duration_seconds{tenant}`.
    pub async fn acquire(&self, tenant: &str) -> Result<Permit> {
        let started = Instant::now();
        let rx = {
            let mut st = self.inner.state.lock();
            let tq = st.tenants.entry(tenant.to_string()).or_default();
            let (tx, rx) = oneshot::channel();
            tq.waiting.push_back(tx);
            let queued = tq.waiting.len();
            if queued == 1 {
                st.turn.push_back(tenant.to_string());
            }
            self.inner.metrics.set_queue_length(tenant, queued);
            self.inner.dispatch(&mut st);
            rx
        };
        let permit = rx
            .await
            .map_err(|_| Error::Downstream("the query frontend's queue was dropped".into()))?;
        self.inner
            .metrics
            .observe_queue_wait(tenant, started.elapsed().as_secs_f64());
        Ok(permit)
    }

    /// Permits out now (all tenants).
    pub fn inflight(&self) -> usize {
        self.inner.state.lock().inflight
    }
}

impl Inner {
    /// Hands free slots to waiting requests, one tenant after another.
    fn dispatch(self: &Arc<Self>, st: &mut State) {
        let mut idle_turns = 0;
        while st.inflight < self.capacity && idle_turns < st.turn.len() {
            let Some(tenant) = st.turn.pop_front() else {
                break;
            };
            let limit = self.overrides.get(&tenant).max_query_parallelism.max(1);
            let Some(tq) = st.tenants.get_mut(&tenant) else {
                continue;
            };
            if tq.inflight >= limit {
                // At its parallelism: its turn passes to the next tenant.
                st.turn.push_back(tenant);
                idle_turns += 1;
                continue;
            }
            let mut granted = false;
            while let Some(tx) = tq.waiting.pop_front() {
                let permit = Permit {
                    inner: self.clone(),
                    tenant: tenant.clone(),
                    armed: true,
                };
                match tx.send(permit) {
                    Ok(()) => {
                        granted = true;
                        break;
                    }
                    // The request was given up while waiting: nothing to count.
                    Err(mut p) => p.armed = false,
                }
            }
            let queued = tq.waiting.len();
            if granted {
                tq.inflight += 1;
                st.inflight += 1;
                idle_turns = 0;
            }
            if queued > 0 {
                st.turn.push_back(tenant.clone());
            } else if tq.inflight == 0 {
                st.tenants.remove(&tenant);
            }
            self.metrics.set_queue_length(&tenant, queued);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize, parallelism: usize) -> FairQueue {
        let limits = muninn_tenancy::limits::Limits {
            max_query_parallelism: parallelism,
            ..Default::default()
        };
        FairQueue::new(
            capacity,
            100,
            Arc::new(Overrides::new(limits, None)),
            Arc::new(FrontendMetrics::default()),
        )
    }

    #[tokio::test]
    async fn a_flooding_tenant_does_not_hold_back_another() {
        let q = queue(2, 2);
        // Tenant a takes both slots and queues 10 more.
        let a1 = q.acquire("a").await.unwrap();
        let a2 = q.acquire("a").await.unwrap();
        let mut waiting_a = vec![];
        for _ in 0..10 {
            let q = q.clone();
            waiting_a.push(tokio::spawn(async move { q.acquire("a").await.map(drop) }));
        }
        tokio::task::yield_now().await;
        let b = {
            let q = q.clone();
            tokio::spawn(async move { q.acquire("b").await })
        };
        tokio::task::yield_now().await;
        // One slot frees: b, which came after a's ten, gets it (its turn comes first).
        drop(a1);
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), b)
            .await
            .expect("b was served")
            .unwrap()
            .unwrap();
        assert_eq!(q.inflight(), 2);
        drop((a2, b));
        for w in waiting_a {
            w.await.unwrap().unwrap();
        }
        assert_eq!(q.inflight(), 0);
    }

    #[tokio::test]
    async fn a_tenant_stays_within_its_parallelism_and_outstanding_limit() {
        let limits = muninn_tenancy::limits::Limits {
            max_query_parallelism: 1,
            ..Default::default()
        };
        let q = FairQueue::new(
            4,
            2,
            Arc::new(Overrides::new(limits, None)),
            Arc::new(FrontendMetrics::default()),
        );
        let a1 = q.acquire("a").await.unwrap();
        let pending: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.acquire("a").await.map(drop) })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(q.inflight(), 1, "parallelism 1 although 3 slots are free");
        assert!(matches!(q.admit("a"), Err(Error::TooManyOutstanding(2))));
        assert!(q.admit("b").is_ok(), "another tenant is admitted");
        drop(a1);
        for p in pending {
            p.await.unwrap().unwrap();
        }
        assert_eq!(q.inflight(), 0);
    }

    #[tokio::test]
    async fn a_request_given_up_while_waiting_frees_its_place() {
        let q = queue(1, 1);
        let a = q.acquire("a").await.unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.acquire("a").await.map(drop) })
        };
        tokio::task::yield_now().await;
        waiter.abort();
        let _ = waiter.await;
        drop(a);
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), q.acquire("a"))
            .await
            .expect("the slot came back")
            .unwrap();
        assert_eq!(q.inflight(), 1);
        drop(again);
        assert_eq!(q.inflight(), 0);
    }
}
