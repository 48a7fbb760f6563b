//! Membership by gossip: chitchat (scuttlebutt anti-entropy + phi-accrual failure detection)
//! carries each member's key-values; this module publishes ours and turns everyone's into
//! [`Ring`] snapshots.
//!
//! Keys a member publishes (each member writes only its own):
//! - `role`: the process's role (`ingester`, `querier`, `distributor`, `all`);
//! - ingesters only: `ring.addr` (gRPC), `ring.zone`, `ring.state`, `ring.tokens`, and
//!   `ring.heartbeat` (its clock in Unix ms, republished every heartbeat period),
//!   `ring.registered` (when it first took its tokens, Unix ms);
//! - `ha.<tenant>.<cluster>`: HA-tracker elections this member decided (see the distributor).
//!
//! Health comes from `ring.heartbeat`, so every member judges an instance by the same
//! timestamp, as Mimir's ring does. A restarted member has a new chitchat generation; the
//! newest generation of an id wins. Chitchat forgets dead members after the auto-forget period.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use crate::config::RingArgs;
use crate::instance::{InstanceDesc, InstanceState, decode_tokens, encode_tokens};
use crate::{Error, Result};

pub const KEY_ROLE: &str = "role";
/// A querier's HTTP base URL (`http://ip:port`), for query frontends.
pub const KEY_QUERIER_URL: &str = "querier.url";
pub const KEY_ADDR: &str = "ring.addr";
pub const KEY_ZONE: &str = "ring.zone";
pub const KEY_STATE: &str = "ring.state";
pub const KEY_TOKENS: &str = "ring.tokens";
pub const KEY_HEARTBEAT: &str = "ring.heartbeat";
pub const KEY_REGISTERED: &str = "ring.registered";

/// A running gossip member.
pub struct Gossip {
    handle: ChitchatHandle,
    pub interval: Duration,
}

impl Gossip {
    /// Binds the gossip port and starts gossiping with `args.join`.
    pub async fn start(
        args: &RingArgs,
        node_id: &str,
        initial: Vec<(String, String)>,
    ) -> Result<Self> {
        let advertise = match args.advertise_addr {
            Some(a) => a,
            None => advertise_addr(args.bind_addr, &args.join).await,
        };
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.to_owned(), generation, advertise),
            cluster_id: args.cluster_label.clone(),
            gossip_interval: args.gossip_interval.0,
            listen_addr: args.bind_addr,
            seed_nodes: args.join.clone(),
            failure_detector_config: FailureDetectorConfig {
                initial_interval: args.gossip_interval.0,
                dead_node_grace_period: args.auto_forget_period.0,
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: args.auto_forget_period.0 * 2,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = chitchat::spawn_chitchat(config, initial, &UdpTransport)
            .await
            .map_err(|e| Error::Gossip(format!("binding {}: {e:#}", args.bind_addr)))?;
        tracing::info!(bind = %args.bind_addr, %advertise, join = ?args.join, node_id, "gossip started");
        Ok(Self {
            handle,
            interval: args.gossip_interval.0,
        })
    }

    /// Sets one of this member's keys.
    pub async fn set(&self, key: &str, value: &str) {
        let cc = self.handle.chitchat();
        let mut g = cc.lock().await;
        g.self_node_state().set(key, value);
    }

    /// Deletes one of this member's keys.
    pub async fn delete(&self, key: &str) {
        let cc = self.handle.chitchat();
        let mut g = cc.lock().await;
        if g.self_node_state().get(key).is_some() {
            g.self_node_state().delete(key);
        }
    }

    /// Every member's values of keys starting with `prefix`: (member id, key, value).
    pub async fn values_with_prefix(&self, prefix: &str) -> Vec<(String, String, String)> {
        let cc = self.handle.chitchat();
        let g = cc.lock().await;
        let mut out = vec![];
        for (id, state) in g.node_states() {
            for (k, v) in state.iter_prefix(prefix) {
                out.push((id.node_id.to_string(), k.to_owned(), v.value.clone()));
            }
        }
        out
    }

    /// The values of `key` of the live members (member id, value), in member order.
    pub async fn live_values(&self, key: &str) -> Vec<(String, String)> {
        let cc = self.handle.chitchat();
        let g = cc.lock().await;
        let mut out: Vec<(String, String)> = g
            .live_nodes()
            .filter_map(|id| {
                g.node_state(id)
                    .and_then(|s| s.get(key))
                    .map(|v| (id.node_id.to_string(), v.to_owned()))
            })
            .collect();
        out.sort();
        out
    }

    /// Live members that take the cluster's writes: the distributors when there are any
    /// (writes are then expected to go to them), else the ingesters (and `all`).
    pub async fn live_routers(&self) -> usize {
        let cc = self.handle.chitchat();
        let g = cc.lock().await;
        let live: Vec<ChitchatId> = g.live_nodes().cloned().collect();
        let (mut distributors, mut ingesters) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for id in &live {
            match g.node_state(id).and_then(|s| s.get(KEY_ROLE)) {
                Some("distributor") => {
                    distributors.insert(id.node_id.clone());
                }
                Some("ingester" | "all") => {
                    ingesters.insert(id.node_id.clone());
                }
                _ => {}
            }
        }
        if distributors.is_empty() {
            ingesters.len()
        } else {
            distributors.len()
        }
    }

    /// The ingesters every member's keys describe, newest generation per id. Health and
    /// forgetting are judged against `now_ms`.
    pub async fn instances(
        &self,
        now_ms: i64,
        heartbeat_timeout: Duration,
        forget_after: Duration,
    ) -> Vec<InstanceDesc> {
        let cc = self.handle.chitchat();
        let g = cc.lock().await;
        let mut newest: HashMap<&str, (u64, InstanceDesc)> = HashMap::new();
        for (id, state) in g.node_states() {
            if state.get(KEY_STATE).is_none() {
                continue;
            }
            let Some(desc) = describe(&id.node_id, |k| state.get(k)) else {
                tracing::debug!(node = %id.node_id, "ignoring a member with malformed ring keys");
                continue;
            };
            match newest.get(&*id.node_id) {
                Some((gen_, _)) if *gen_ >= id.generation_id => {}
                _ => {
                    newest.insert(&id.node_id, (id.generation_id, desc));
                }
            }
        }
        let timeout = heartbeat_timeout.as_millis() as i64;
        let forget = forget_after.as_millis() as i64;
        newest
            .into_values()
            .map(|(_, mut d)| {
                let age = now_ms.saturating_sub(d.last_heartbeat_ms);
                d.healthy = age <= timeout;
                (d, age)
            })
            .filter(|(_, age)| *age <= forget)
            .map(|(d, _)| d)
            .collect()
    }

    /// Leaves: stops gossiping (after the caller published its last state).
    pub async fn shutdown(self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::warn!(error = %e, "stopping gossip");
        }
    }
}

/// An instance from its ring keys, or `None` if one is missing or malformed.
fn describe<'a>(id: &str, get: impl Fn(&str) -> Option<&'a str>) -> Option<InstanceDesc> {
    Some(InstanceDesc {
        id: id.to_owned(),
        addr: get(KEY_ADDR)?.to_owned(),
        zone: get(KEY_ZONE).unwrap_or("").to_owned(),
        state: get(KEY_STATE)?.parse::<InstanceState>().ok()?,
        tokens: decode_tokens(get(KEY_TOKENS)?)?,
        last_heartbeat_ms: get(KEY_HEARTBEAT)?.parse().ok()?,
        healthy: true,
        registered_ms: get(KEY_REGISTERED)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// The ring keys describing `d`.
pub fn ring_keys(d: &InstanceDesc) -> Vec<(String, String)> {
    vec![
        (KEY_ADDR.into(), d.addr.clone()),
        (KEY_ZONE.into(), d.zone.clone()),
        (KEY_STATE.into(), d.state.as_str().into()),
        (KEY_TOKENS.into(), encode_tokens(&d.tokens)),
        (KEY_HEARTBEAT.into(), d.last_heartbeat_ms.to_string()),
        (KEY_REGISTERED.into(), d.registered_ms.to_string()),
    ]
}

/// The address others reach `bind` at: itself unless it is unspecified; then this host's
/// address on the route to the first join address (no packet is sent), else loopback.
pub async fn advertise_addr(bind: SocketAddr, join: &[String]) -> SocketAddr {
    if !bind.ip().is_unspecified() {
        return bind;
    }
    SocketAddr::new(local_ip_towards(join).await, bind.port())
}

/// This host's address on the route to the first resolvable of `peers`.
pub async fn local_ip_towards(peers: &[String]) -> std::net::IpAddr {
    for p in peers {
        let Ok(mut addrs) = tokio::net::lookup_host(p.as_str()).await else {
            continue;
        };
        let Some(target) = addrs.next() else { continue };
        let unspecified: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        if let Ok(sock) = std::net::UdpSocket::bind(unspecified)
            && sock.connect(target).is_ok()
            && let Ok(local) = sock.local_addr()
        {
            return local.ip();
        }
    }
    std::net::Ipv4Addr::LOCALHOST.into()
}

/// Shared so the handle can hand it out.
pub type SharedGossip = Arc<Gossip>;
