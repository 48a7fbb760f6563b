//! HA-pair deduplication: of the Prometheus replicas of one cluster (same `cluster` label,
//! different `__replica__` labels), one is elected per tenant and only its samples are stored;
//! the others get 202 and are dropped. The elected replica changes only after it has been
//! silent for the failover timeout.
//!
//! Agreement without a KV store: the election for (tenant, cluster) is decided by one ingester,
//! the leader, which is the first healthy ACTIVE instance on the ring walk from the key's
//! hash. Every router asks the leader (over gRPC, or in-process when it is the leader), so two
//! replicas pushing through different routers are judged by the same table at once. The leader
//! publishes its decisions in its gossip keys (`ha/<tenant>/<cluster>`); when it dies or leaves,
//! the next instance on the walk takes over and starts from the freshest published record, so
//! the elected replica survives the change. If the leader cannot be reached, routers try the
//! next candidates on the walk in order, so they still agree with each other.
//!
//! During a network partition longer than the heartbeat timeout, each side may reach a
//! different leader and elect its own replica: both replicas are then stored into the same
//! series (samples out of order between them are refused) until the partition heals and the
//! leaders' records converge on the freshest one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use muninn_proto::ingester::HaCheckRequest;
use muninn_proto::tenant::TenantId;
use muninn_ring::RingHandle;
use muninn_ring::clients::ClientPool;
use parking_lot::Mutex;

/// Gossip key prefix of published elections.
pub const KEY_PREFIX: &str = "ha/";

/// Republish an unchanged election at most this often (its last-seen time moves).
const PUBLISH_EVERY_MS: i64 = 1_000;

/// HA tracker settings (`--distributor.ha-tracker.*`).
#[derive(Clone, Debug)]
pub struct HaConfig {
    pub cluster_label: String,
    pub replica_label: String,
    pub failover_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Election {
    replica: String,
    last_seen_ms: i64,
    elected_at_ms: i64,
}

impl Election {
    fn encode(&self) -> String {
        format!(
            "{}\t{}\t{}",
            self.last_seen_ms, self.elected_at_ms, self.replica
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut it = s.splitn(3, '\t');
        Some(Self {
            last_seen_ms: it.next()?.parse().ok()?,
            elected_at_ms: it.next()?.parse().ok()?,
            replica: it.next()?.to_owned(),
        })
    }
}

struct Entry {
    election: Election,
    published_ms: i64,
}

/// The answer for one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub accept: bool,
    pub elected: String,
}

/// Errors asking a leader.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("no healthy ingester can decide the HA election of cluster {0:?}")]
    NoLeader(String),
    #[error("HA election of cluster {cluster:?}: leader {leader} failed: {message}")]
    Leader {
        cluster: String,
        leader: String,
        message: String,
    },
}

/// The tracker of one process: the table of the elections it leads, and how to reach the
/// leaders of the others.
pub struct HaTracker {
    pub config: HaConfig,
    ring: Arc<RingHandle>,
    clients: Arc<ClientPool>,
    table: Mutex<HashMap<(String, String), Entry>>,
    /// Elections changed by this leader (failovers and first elections).
    pub elections: prometheus_client::metrics::counter::Counter,
}

fn gossip_key(tenant: &str, cluster: &str) -> String {
    // Tenant ids never contain '/', so the key splits back unambiguously.
    format!("{KEY_PREFIX}{tenant}/{cluster}")
}

impl HaTracker {
    pub fn new(config: HaConfig, ring: Arc<RingHandle>, clients: Arc<ClientPool>) -> Self {
        Self {
            config,
            ring,
            clients,
            table: Mutex::new(HashMap::new()),
            elections: Default::default(),
        }
    }

    /// Whether `replica` of `cluster` may store samples now, asking the leader.
    pub async fn check(
        &self,
        tenant: &TenantId,
        cluster: &str,
        replica: &str,
    ) -> Result<Decision, HaError> {
        let ring = self.ring.ring();
        let key = muninn_ring::hash::tenant_key(tenant.as_str(), cluster);
        let candidates = ring.leader_candidates(key, 3);
        let self_id = self.ring.self_id();
        if candidates.is_empty() {
            // No ingester in the ring is healthy; an ingester outside any ring decides alone.
            if self_id.is_some() && !self.ring.is_gossip() {
                return Ok(self.decide(tenant.as_str(), cluster, replica).await);
            }
            return Err(HaError::NoLeader(cluster.to_owned()));
        }
        let mut last_err = None;
        for idx in candidates {
            let inst = &ring.instances[idx as usize];
            if self_id.as_deref() == Some(inst.id.as_str()) {
                return Ok(self.decide(tenant.as_str(), cluster, replica).await);
            }
            let client = match self.clients.get(&inst.addr) {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some((inst.id.clone(), e.to_string()));
                    continue;
                }
            };
            let mut req = self.clients.request(
                tenant.as_str(),
                HaCheckRequest {
                    cluster: cluster.to_owned(),
                    replica: replica.to_owned(),
                },
            );
            req.set_timeout(Duration::from_secs(2));
            match client.clone().ha_check(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    return Ok(Decision {
                        accept: r.accept,
                        elected: r.elected,
                    });
                }
                Err(s) => last_err = Some((inst.id.clone(), s.message().to_owned())),
            }
        }
        let (leader, message) = last_err.unwrap_or_default();
        Err(HaError::Leader {
            cluster: cluster.to_owned(),
            leader,
            message,
        })
    }

    /// Decides as the leader of (tenant, cluster).
    pub async fn decide(&self, tenant: &str, cluster: &str, replica: &str) -> Decision {
        let table_key = (tenant.to_owned(), cluster.to_owned());
        let now = muninn_proto::time::now_ms();
        // An entry this process has not updated for a while may be stale (another instance
        // led meanwhile): the freshest published record wins over it.
        let stale = self
            .table
            .lock()
            .get(&table_key)
            .is_none_or(|e| now - e.election.last_seen_ms > PUBLISH_EVERY_MS);
        let inherited = if stale {
            self.freshest_published(tenant, cluster).await
        } else {
            None
        };
        let timeout = self.config.failover_timeout.as_millis() as i64;
        let (decision, publish) = {
            let mut table = self.table.lock();
            let entry = table.entry(table_key).or_insert_with(|| Entry {
                election: Election {
                    replica: String::new(),
                    last_seen_ms: 0,
                    elected_at_ms: 0,
                },
                published_ms: 0,
            });
            if let Some(p) = inherited
                && p.last_seen_ms > entry.election.last_seen_ms
            {
                entry.election = p;
            }
            let e = &mut entry.election;
            let accept = if e.replica == replica {
                e.last_seen_ms = e.last_seen_ms.max(now);
                true
            } else if e.replica.is_empty() || now - e.last_seen_ms > timeout {
                if e.replica.is_empty() {
                    tracing::info!(tenant, cluster, replica, "HA: replica elected");
                } else {
                    tracing::warn!(
                        tenant,
                        cluster,
                        replica,
                        previous = %e.replica,
                        silent_ms = now - e.last_seen_ms,
                        "HA: failover to another replica"
                    );
                }
                self.elections.inc();
                *e = Election {
                    replica: replica.to_owned(),
                    last_seen_ms: now,
                    elected_at_ms: now,
                };
                entry.published_ms = 0;
                true
            } else {
                false
            };
            let decision = Decision {
                accept,
                elected: entry.election.replica.clone(),
            };
            let publish = (now - entry.published_ms >= PUBLISH_EVERY_MS).then(|| {
                entry.published_ms = now;
                entry.election.encode()
            });
            (decision, publish)
        };
        if let Some(v) = publish {
            self.ring.publish(&gossip_key(tenant, cluster), &v).await;
        }
        decision
    }

    /// The most recently seen election any member published for (tenant, cluster).
    async fn freshest_published(&self, tenant: &str, cluster: &str) -> Option<Election> {
        let key = gossip_key(tenant, cluster);
        self.ring
            .values_with_prefix(&key)
            .await
            .into_iter()
            .filter(|(_, k, _)| *k == key)
            .filter_map(|(_, _, v)| Election::decode(&v))
            .max_by_key(|e| e.last_seen_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_record_round_trips() {
        let e = Election {
            replica: "r\t1".into(),
            last_seen_ms: 5,
            elected_at_ms: 3,
        };
        assert_eq!(Election::decode(&e.encode()), Some(e));
        assert_eq!(Election::decode("x"), None);
    }

    #[tokio::test]
    async fn elects_then_fails_over_after_silence() {
        let ring = RingHandle::local(None, 1, false);
        let t = HaTracker::new(
            HaConfig {
                cluster_label: "cluster".into(),
                replica_label: "__replica__".into(),
                failover_timeout: Duration::from_millis(300),
            },
            ring,
            Arc::new(ClientPool::default()),
        );
        assert!(t.decide("t", "c", "r1").await.accept);
        assert!(!t.decide("t", "c", "r2").await.accept);
        assert!(t.decide("t", "c", "r1").await.accept);
        assert!(t.decide("u", "c", "r2").await.accept, "tenants are apart");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let d = t.decide("t", "c", "r2").await;
        assert!(d.accept && d.elected == "r2");
        assert!(!t.decide("t", "c", "r1").await.accept);
    }
}
