//! The ring's self-instrumentation: members by state as this process sees them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::instance::InstanceState;
use crate::token_ring::Ring;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// Ring gauges.
#[derive(Default, Clone)]
pub struct RingMetrics {
    /// Ingesters in the ring by state (UNHEALTHY counted apart from the state they publish).
    pub members: Family<StateLabels, Gauge>,
    /// The replication factor in use (capped by the ACTIVE ingesters or zones).
    pub effective_rf: Gauge,
}

impl RingMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_ring");
        r.register(
            "members",
            "Ingesters in the ring by state, as this process sees them",
            self.members.clone(),
        );
        r.register(
            "effective_replication_factor",
            "Replica set size in use",
            self.effective_rf.clone(),
        );
    }

    pub(crate) fn observe(&self, ring: &Ring) {
        let mut counts = [0i64; 4];
        let mut unhealthy = 0;
        for i in &ring.instances {
            if !i.healthy {
                unhealthy += 1;
                continue;
            }
            counts[match i.state {
                InstanceState::Joining => 0,
                InstanceState::Active => 1,
                InstanceState::Leaving => 2,
                InstanceState::Left => 3,
            }] += 1;
        }
        for (name, n) in [
            ("JOINING", counts[0]),
            ("ACTIVE", counts[1]),
            ("LEAVING", counts[2]),
            ("UNHEALTHY", unhealthy),
        ] {
            self.members
                .get_or_create(&StateLabels { state: name.into() })
                .set(n);
        }
        self.effective_rf.set(ring.effective_rf() as i64);
    }
}
