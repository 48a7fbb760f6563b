//! Splits a decoded remote-write request into one request per owner: each series goes, as
//! the bytes it arrived in, to every instance of its replica set; each metric family's
//! metadata to the replica set of (tenant, family). Pure: no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use muninn_proto::write_view::{
    DecodeError, WriteRequestView, put_len_field, write_series_without_label,
};
use muninn_ring::{InstanceIdx, ReplicaSet, Ring};

/// The owners' requests and the replica sets that must each reach quorum.
#[derive(Debug, Default)]
pub struct Split {
    /// Encoded `WriteRequest` per owner (owners with nothing to receive are absent).
    pub bodies: Vec<(InstanceIdx, Vec<u8>)>,
    /// Distinct replica sets that received something.
    pub sets: Vec<Arc<ReplicaSet>>,
    /// Series and metadata entries routed.
    pub entries: usize,
}

/// Why a request cannot be split.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("no ACTIVE ingester in the ring")]
    NoOwners,
    #[error("malformed series: {0}")]
    Decode(#[from] DecodeError),
}

/// Splits `view` (decoded from `body`) of `tenant` over `ring`. With `strip` set, labels of
/// that name are removed from every series (and from its placement key).
pub fn split(
    ring: &Ring,
    tenant: &str,
    body: &[u8],
    view: &WriteRequestView<'_>,
    strip: Option<&[u8]>,
) -> Result<Split, SplitError> {
    // Each owner gets about RF/N of the body: sized once, not grown.
    let share = body.len() * ring.effective_rf() / ring.instances.len().max(1) + 64;
    let mut per_owner: Vec<Vec<u8>> = (0..ring.instances.len())
        .map(|_| Vec::with_capacity(share))
        .collect();
    let mut set_ids: HashMap<*const ReplicaSet, usize> = HashMap::new();
    let mut out = Split::default();
    let mut scratch = Vec::new();
    let mut add = |set: &Arc<ReplicaSet>, msg: &[u8], field: u32, per_owner: &mut [Vec<u8>]| {
        set_ids.entry(Arc::as_ptr(set)).or_insert_with(|| {
            out.sets.push(set.clone());
            out.sets.len() - 1
        });
        for &o in &set.owners {
            put_len_field(&mut per_owner[o as usize], field, msg);
        }
    };
    let mut entries = 0;
    for s in &view.series {
        let labels = view.series_labels(s);
        let pairs = labels
            .iter()
            .filter(|l| strip.is_none_or(|n| l.name != n))
            .map(|l| (l.name, l.value));
        let key = muninn_ring::hash::series_key(tenant, pairs);
        let set = ring.replicas(key).ok_or(SplitError::NoOwners)?;
        let raw = &body[s.raw.start as usize..s.raw.end as usize];
        match strip {
            Some(name) if labels.iter().any(|l| l.name == name) => {
                scratch.clear();
                write_series_without_label(raw, name, &mut scratch)?;
                add(set, &scratch, 1, &mut per_owner);
            }
            _ => add(set, raw, 1, &mut per_owner),
        }
        entries += 1;
    }
    for m in &view.metadata {
        let family = String::from_utf8_lossy(m.family);
        let key = muninn_ring::hash::tenant_key(tenant, &family);
        let set = ring.replicas(key).ok_or(SplitError::NoOwners)?;
        add(set, m.raw, 3, &mut per_owner);
        entries += 1;
    }
    out.entries = entries;
    out.bodies = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(i, b)| (i as InstanceIdx, b))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
    use muninn_ring::{InstanceDesc, InstanceState};
    use prost::Message;

    fn ring(n: usize, rf: usize) -> Ring {
        let insts = (0..n)
            .map(|i| InstanceDesc {
                id: format!("i{i}"),
                addr: String::new(),
                zone: String::new(),
                state: InstanceState::Active,
                tokens: muninn_ring::tokens::random_tokens(32, &Default::default()),
                last_heartbeat_ms: 0,
                healthy: true,
                registered_ms: 0,
            })
            .collect();
        Ring::new(insts, rf, false)
    }

    fn series(job: &str, replica: &str) -> TimeSeries {
        TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
                Label {
                    name: "__replica__".into(),
                    value: replica.into(),
                },
                Label {
                    name: "job".into(),
                    value: job.into(),
                },
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn every_series_reaches_each_of_its_owners_once() {
        let r = ring(5, 3);
        let req = WriteRequest {
            timeseries: (0..200).map(|i| series(&format!("j{i}"), "a")).collect(),
            ..Default::default()
        };
        let body = req.encode_to_vec();
        let view = WriteRequestView::decode(&body).unwrap();
        let s = split(&r, "t", &body, &view, None).unwrap();
        let mut copies = 0;
        for (_, b) in &s.bodies {
            let w = WriteRequest::decode(&b[..]).unwrap();
            copies += w.timeseries.len();
        }
        assert_eq!(copies, 600, "3 copies of each series");
        assert_eq!(s.entries, 200);
    }

    #[test]
    fn stripping_the_replica_label_places_replicas_together() {
        let r = ring(5, 1);
        for job in ["a", "b", "c", "d"] {
            let place = |replica: &str| {
                let body = WriteRequest {
                    timeseries: vec![series(job, replica)],
                    ..Default::default()
                }
                .encode_to_vec();
                let view = WriteRequestView::decode(&body).unwrap();
                let s = split(&r, "t", &body, &view, Some(b"__replica__")).unwrap();
                let (owner, b) = &s.bodies[0];
                let w = WriteRequest::decode(&b[..]).unwrap();
                assert!(
                    w.timeseries[0]
                        .labels
                        .iter()
                        .all(|l| l.name != "__replica__")
                );
                *owner
            };
            assert_eq!(place("r1"), place("r2"));
        }
    }
}
