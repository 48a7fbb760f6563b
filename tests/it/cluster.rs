//! A cluster of real `muninn` processes on loopback, joined by gossip, sharing one filesystem
//! bucket: helpers for the scale-out tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use muninn_proto::prometheus::WriteRequest;
use serde_json::Value;

use crate::harness::{Muninn, agent, free_udp_port, now_ms, series, wait_for, write_request};

/// Processes of one gossip cluster.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// Gossip ports of every member started so far (the join list of the next one).
    ports: RefCell<Vec<u16>>,
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ports: RefCell::new(vec![]),
        }
    }

    pub fn bucket(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    /// Starts `role` as a member, joining every member started before it.
    pub fn start(&self, role: &str, name: &str, extra: &[&str]) -> Muninn {
        let port = free_udp_port();
        let mut ports = self.ports.borrow_mut();
        ports.push(port);
        let join = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec![
            format!("--memberlist.bind-addr=127.0.0.1:{port}"),
            format!("--memberlist.join={join}"),
            "--memberlist.gossip-interval=100ms".to_string(),
            format!("--storage.filesystem.dir={}", self.bucket().display()),
        ];
        if role == "ingester" {
            args.push(format!("--ingester.ring.instance-id={name}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Muninn::start_in(role, &self.dir.path().join(name), &refs)
    }

    pub fn ingester(&self, name: &str, extra: &[&str]) -> Muninn {
        self.start("ingester", name, extra)
    }
}

/// The ring as `m` shows it on `/ingester/ring` (JSON).
pub fn ring(m: &Muninn) -> Value {
    let mut r = agent()
        .get(&format!("{}/ingester/ring", m.http))
        .header("Accept", "application/json")
        .call()
        .expect("GET /ingester/ring");
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// Instance id → shown state.
pub fn states(m: &Muninn) -> BTreeMap<String, String> {
    ring(m)["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until `m` sees exactly `ids` in the ring, all ACTIVE.
pub fn wait_active(m: &Muninn, ids: &[&str]) {
    let want: BTreeMap<String, String> = ids
        .iter()
        .map(|i| (i.to_string(), "ACTIVE".to_string()))
        .collect();
    wait_for(
        &format!("{} to see {ids:?} ACTIVE", m.http),
        Duration::from_secs(30),
        || (states(m) == want).then_some(()),
    );
}

/// The owners (instance ids) of each `seq{s="i"}` series, computed from the ring `m` shows
/// with the same placement code the routers use.
pub fn owners(m: &Muninn, tenant: &str, n_series: usize) -> Vec<BTreeSet<String>> {
    let r = ring(m);
    let instances: Vec<muninn_ring::InstanceDesc> = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| muninn_ring::InstanceDesc {
            id: i["id"].as_str().unwrap().into(),
            addr: i["addr"].as_str().unwrap().into(),
            zone: i["zone"].as_str().unwrap().into(),
            state: i["published_state"].as_str().unwrap().parse().unwrap(),
            tokens: i["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect(),
            last_heartbeat_ms: 0,
            healthy: true,
            registered_ms: 0,
        })
        .collect();
    let ring = muninn_ring::Ring::new(
        instances,
        r["replication_factor"].as_u64().unwrap() as usize,
        r["zone_awareness_enabled"].as_bool().unwrap(),
    );
    (0..n_series)
        .map(|i| {
            let s = i.to_string();
            let labels = [(&b"__name__"[..], &b"seq"[..]), (&b"s"[..], s.as_bytes())];
            let key = muninn_ring::hash::series_key(tenant, labels.into_iter());
            ring.replicas(key)
                .unwrap()
                .owners
                .iter()
                .map(|&o| ring.instances[o as usize].id.clone())
                .collect()
        })
        .collect()
}

/// Push number `k` of the numbered stream: every `seq{s="i"}` gets the sample
/// `(t0 + k s, k)`.
pub fn numbered(t0: i64, k: i64, n_series: usize) -> WriteRequest {
    write_request(
        (0..n_series)
            .map(|i| {
                let s = i.to_string();
                series(
                    &[("__name__", "seq"), ("s", &s)],
                    &[(t0 + k * 1000, k as f64)],
                )
            })
            .collect(),
    )
}

/// A start time for numbered streams: recent, so no sample is too old or too new.
pub fn stream_start() -> i64 {
    (now_ms() - 20 * 60_000) / 1000 * 1000
}

/// Every stored timestamp of each `seq` series, as the querier at `q` answers
/// `seq[1h]` at `at_ms`. Panics on a non-200 answer.
pub fn stored(q: &Muninn, tenant: &str, at_ms: i64) -> BTreeMap<String, Vec<i64>> {
    let t = format!("{}", at_ms as f64 / 1000.0);
    let (status, v) = q.get(
        Some(tenant),
        "/api/v1/query",
        &[("query", "seq[1h]"), ("time", &t)],
    );
    assert_eq!(status, 200, "{v}");
    crate::harness::result(&v)
        .iter()
        .map(|s| {
            let name = s["metric"]["s"].as_str().unwrap().to_owned();
            let ts = crate::harness::points(s).into_iter().map(|p| p.0).collect();
            (name, ts)
        })
        .collect()
}

/// Checks that each of `n_series` series holds every acknowledged push's sample exactly once
/// (timestamps `t0 + k s` for `k` in `acked`), and nothing but acknowledged or refused pushes.
pub fn assert_exactly_once(
    got: &BTreeMap<String, Vec<i64>>,
    n_series: usize,
    t0: i64,
    acked: &BTreeSet<i64>,
    refused: &BTreeSet<i64>,
) {
    assert_eq!(got.len(), n_series, "series: {:?}", got.keys());
    for (name, ts) in got {
        let set: BTreeSet<i64> = ts.iter().copied().collect();
        assert_eq!(set.len(), ts.len(), "series {name}: a sample counted twice");
        let ks: BTreeSet<i64> = set.iter().map(|t| (t - t0) / 1000).collect();
        let missing: Vec<_> = acked.difference(&ks).collect();
        assert!(
            missing.is_empty(),
            "series {name}: acknowledged pushes missing: {missing:?}"
        );
        let extra: Vec<_> = ks
            .iter()
            .filter(|k| !acked.contains(k) && !refused.contains(k))
            .collect();
        assert!(
            extra.is_empty(),
            "series {name}: never-sent samples {extra:?}"
        );
    }
}

/// The sum over `ms` of `muninn_ingester_memory_series{tenant}`.
pub fn memory_series(ms: &[&Muninn], tenant: &str) -> i64 {
    let needle = format!("muninn_ingester_memory_series{{tenant=\"{tenant}\"}} ");
    ms.iter()
        .map(|m| {
            m.metrics()
                .lines()
                .find_map(|l| l.strip_prefix(&needle))
                .map_or(0, |v| v.trim().parse::<i64>().unwrap())
        })
        .sum()
}
