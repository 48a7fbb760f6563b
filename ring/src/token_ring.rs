//! The token ring: pure placement logic over a snapshot of the ring's instances.
//!
//! Every instance owns random 32-bit tokens. A key (a series' hash) belongs to the first
//! token at or after it, walking clockwise; its replica set is the first `rf` distinct
//! instances met on that walk, and with zone awareness at most one per zone. Only ACTIVE
//! instances own tokens: a JOINING or LEAVING instance is walked past, which is how ownership
//! moves on a ring change. An unhealthy ACTIVE instance stays in the replica sets it belongs
//! to (a write to it counts as failed): a replica set is never extended because an owner is
//! unreachable.
//!
//! Replica sets are computed once per snapshot, one per token position, so placing a series
//! is a binary search and an index.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::instance::{InstanceDesc, InstanceState};

/// Index of an instance in [`Ring::instances`].
pub type InstanceIdx = u16;

/// The owners of one token range: indices into [`Ring::instances`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaSet {
    pub owners: Vec<InstanceIdx>,
}

/// A snapshot of the ring: instances, their tokens, and the replica sets they imply.
#[derive(Debug, Default)]
pub struct Ring {
    /// Every instance known (all states but LEFT and forgotten), sorted by id.
    pub instances: Vec<InstanceDesc>,
    /// Configured replication factor.
    pub replication_factor: usize,
    pub zone_awareness: bool,
    /// Sorted tokens of the ACTIVE instances with the replica set each starts.
    tokens: Vec<u32>,
    set_of_token: Vec<u32>,
    sets: Vec<Arc<ReplicaSet>>,
    /// Replica set size actually used (the factor, capped by instances or zones available).
    effective_rf: usize,
}

/// Which instances a read asks, and how many of them may fail.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    /// Instances to ask (healthy or not; unhealthy ones count as failed without a call).
    pub instances: Vec<InstanceIdx>,
    /// With zone awareness: how many zones may have failures. Without: how many instances
    /// may fail.
    pub max_failures: usize,
    pub by_zone: bool,
}

impl Ring {
    /// Builds the snapshot. `instances` may come in any order; LEFT ones are dropped.
    pub fn new(
        mut instances: Vec<InstanceDesc>,
        replication_factor: usize,
        zone_awareness: bool,
    ) -> Self {
        instances.retain(|i| i.state != InstanceState::Left);
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tokens: Vec<(u32, InstanceIdx)> = instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.state == InstanceState::Active)
            .flat_map(|(idx, i)| i.tokens.iter().map(move |&t| (t, idx as InstanceIdx)))
            .collect();
        // Ties between instances (a token collision) resolve by instance order: every
        // process sorts the same way, so all agree.
        tokens.sort_unstable();
        tokens.dedup_by_key(|t| t.0);
        let active: Vec<&InstanceDesc> = instances
            .iter()
            .filter(|i| i.state == InstanceState::Active)
            .collect();
        let cap = if zone_awareness {
            active
                .iter()
                .map(|i| &i.zone)
                .collect::<BTreeSet<_>>()
                .len()
        } else {
            active.len()
        };
        let effective_rf = replication_factor.max(1).min(cap);
        let mut sets: Vec<Arc<ReplicaSet>> = Vec::new();
        let mut index: std::collections::HashMap<Vec<InstanceIdx>, u32> =
            std::collections::HashMap::new();
        let mut set_of_token = Vec::with_capacity(tokens.len());
        for start in 0..tokens.len() {
            let owners = walk(&tokens, start, effective_rf, zone_awareness, &instances);
            let id = *index.entry(owners.clone()).or_insert_with(|| {
                sets.push(Arc::new(ReplicaSet { owners }));
                (sets.len() - 1) as u32
            });
            set_of_token.push(id);
        }
        Self {
            instances,
            replication_factor,
            zone_awareness,
            tokens: tokens.into_iter().map(|t| t.0).collect(),
            set_of_token,
            sets,
            effective_rf,
        }
    }

    /// The replica set size in use: the configured factor, or fewer when the ring has fewer
    /// ACTIVE instances (or zones) than that.
    pub fn effective_rf(&self) -> usize {
        self.effective_rf
    }

    /// Successful writes a key needs: a majority of its replica set.
    pub fn quorum(&self) -> usize {
        self.effective_rf / 2 + 1
    }

    /// The replica set owning `key`, or `None` when no instance is ACTIVE.
    pub fn replicas(&self, key: u32) -> Option<&Arc<ReplicaSet>> {
        if self.tokens.is_empty() {
            return None;
        }
        let pos = self.tokens.partition_point(|&t| t < key);
        let pos = if pos == self.tokens.len() { 0 } else { pos };
        self.sets.get(self.set_of_token[pos] as usize)
    }

    /// Up to `n` distinct healthy ACTIVE instances in the order `key`'s walk meets them. The
    /// first decides for keys that need a single decider (the HA tracker's elections); the
    /// others, in order, when it cannot be reached.
    pub fn leader_candidates(&self, key: u32, n: usize) -> Vec<InstanceIdx> {
        let mut out = Vec::with_capacity(n);
        if self.tokens.is_empty() {
            return out;
        }
        let start = self.tokens.partition_point(|&t| t < key) % self.tokens.len();
        let mut seen = BTreeSet::new();
        for i in 0..self.tokens.len() {
            let set = &self.sets[self.set_of_token[(start + i) % self.tokens.len()] as usize];
            let first = set.owners[0];
            if seen.insert(first) && self.instances[first as usize].healthy {
                out.push(first);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    /// The instances a query asks: every instance that may hold recent data (all but LEFT
    /// and forgotten ones), and how many may fail while the answer stays complete: every
    /// acknowledged series reached a quorum of its replicas, so quorum − 1 of them may fail
    /// (1 with RF 3, and also with RF 2, whose writes need both replicas).
    pub fn read_plan(&self) -> ReadPlan {
        let tolerated = self.quorum().saturating_sub(1);
        ReadPlan {
            instances: (0..self.instances.len() as InstanceIdx).collect(),
            max_failures: tolerated,
            by_zone: self.zone_awareness,
        }
    }

    /// Index of the instance named `id`.
    pub fn find(&self, id: &str) -> Option<InstanceIdx> {
        self.instances
            .binary_search_by(|i| i.id.as_str().cmp(id))
            .ok()
            .map(|i| i as InstanceIdx)
    }

    /// Number of distinct replica sets (for tests and the ring page).
    pub fn replica_sets(&self) -> usize {
        self.sets.len()
    }
}

impl ReadPlan {
    /// Whether the failures of `failed` instances still leave every key with an answering
    /// quorum member.
    pub fn tolerates(&self, ring: &Ring, failed: &[InstanceIdx]) -> bool {
        if self.by_zone {
            let zones: BTreeSet<&str> = failed
                .iter()
                .map(|&i| ring.instances[i as usize].zone.as_str())
                .collect();
            zones.len() <= self.max_failures
        } else {
            failed.len() <= self.max_failures
        }
    }
}

/// The first `rf` distinct instances (distinct zones with zone awareness) from `start`.
fn walk(
    tokens: &[(u32, InstanceIdx)],
    start: usize,
    rf: usize,
    zone_awareness: bool,
    instances: &[InstanceDesc],
) -> Vec<InstanceIdx> {
    let mut owners: Vec<InstanceIdx> = Vec::with_capacity(rf);
    let mut zones: Vec<&str> = Vec::with_capacity(rf);
    for i in 0..tokens.len() {
        if owners.len() == rf {
            break;
        }
        let idx = tokens[(start + i) % tokens.len()].1;
        if owners.contains(&idx) {
            continue;
        }
        let zone = instances[idx as usize].zone.as_str();
        if zone_awareness && zones.contains(&zone) {
            continue;
        }
        owners.push(idx);
        zones.push(zone);
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::random_tokens;

    fn inst(id: &str, zone: &str, state: InstanceState, n: usize) -> InstanceDesc {
        InstanceDesc {
            id: id.into(),
            addr: format!("{id}:9095"),
            zone: zone.into(),
            state,
            tokens: random_tokens(n, &Default::default()),
            last_heartbeat_ms: 0,
            healthy: true,
            registered_ms: 0,
        }
    }

    fn owners_of(ring: &Ring, key: u32) -> Vec<String> {
        let mut v: Vec<String> = ring
            .replicas(key)
            .unwrap()
            .owners
            .iter()
            .map(|&i| ring.instances[i as usize].id.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replica_sets_are_distinct_and_zone_aware() {
        let a = ["a", "b", "c", "d", "e", "f"];
        let insts: Vec<_> = a
            .iter()
            .enumerate()
            .map(|(i, id)| inst(id, ["z1", "z2", "z3"][i % 3], InstanceState::Active, 128))
            .collect();
        let ring = Ring::new(insts.clone(), 3, true);
        assert_eq!(ring.effective_rf(), 3);
        for k in (0..u32::MAX).step_by(7_919_993) {
            let set = ring.replicas(k).unwrap();
            let zones: BTreeSet<_> = set
                .owners
                .iter()
                .map(|&i| ring.instances[i as usize].zone.clone())
                .collect();
            assert_eq!(zones.len(), 3, "one owner per zone");
        }
        let plain = Ring::new(insts, 3, false);
        for k in (0..u32::MAX).step_by(7_919_993) {
            let set = plain.replicas(k).unwrap();
            assert_eq!(set.owners.iter().collect::<BTreeSet<_>>().len(), 3);
        }
    }

    #[test]
    fn fewer_instances_than_rf_caps_the_factor() {
        let ring = Ring::new(vec![inst("a", "", InstanceState::Active, 8)], 3, false);
        assert_eq!(ring.effective_rf(), 1);
        assert_eq!(ring.quorum(), 1);
        let two = Ring::new(
            vec![
                inst("a", "", InstanceState::Active, 8),
                inst("b", "", InstanceState::Active, 8),
            ],
            3,
            false,
        );
        assert_eq!((two.effective_rf(), two.quorum()), (2, 2));
        assert!(Ring::new(vec![], 3, false).replicas(1).is_none());
    }

    #[test]
    fn joining_and_leaving_instances_own_nothing() {
        let ring = Ring::new(
            vec![
                inst("a", "", InstanceState::Active, 16),
                inst("b", "", InstanceState::Joining, 16),
                inst("c", "", InstanceState::Leaving, 16),
                inst("d", "", InstanceState::Left, 16),
            ],
            3,
            false,
        );
        assert_eq!(ring.effective_rf(), 1);
        assert_eq!(owners_of(&ring, 12345), vec!["a"]);
        assert_eq!(ring.instances.len(), 3, "LEFT is gone, the others are read");
        assert_eq!(ring.read_plan().instances.len(), 3);
    }

    #[test]
    fn adding_an_instance_moves_a_small_fraction() {
        let base: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| inst(id, "", InstanceState::Active, 128))
            .collect();
        let mut more = base.clone();
        more.push(inst("d", "", InstanceState::Active, 128));
        let (r3, r4) = (Ring::new(base, 1, false), Ring::new(more, 1, false));
        let keys: Vec<u32> = (0..20_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let moved = keys
            .iter()
            .filter(|&&k| owners_of(&r3, k) != owners_of(&r4, k))
            .count();
        let frac = moved as f64 / keys.len() as f64;
        // The new instance takes about a quarter; nothing moves between the old ones.
        assert!((0.15..0.35).contains(&frac), "moved {frac}");
        for &k in &keys {
            let after = owners_of(&r4, k);
            assert!(after == owners_of(&r3, k) || after == vec!["d"]);
        }
    }

    #[test]
    fn read_plan_tolerance() {
        let insts: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| inst(id, "", InstanceState::Active, 16))
            .collect();
        let ring = Ring::new(insts, 3, false);
        let plan = ring.read_plan();
        assert!(plan.tolerates(&ring, &[1]));
        assert!(!plan.tolerates(&ring, &[1, 2]));
        let zoned: Vec<_> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .enumerate()
            .map(|(i, id)| inst(id, ["z1", "z2", "z3"][i / 2], InstanceState::Active, 16))
            .collect();
        let ring = Ring::new(zoned, 3, true);
        let plan = ring.read_plan();
        assert!(plan.tolerates(&ring, &[0, 1]), "a whole zone");
        assert!(!plan.tolerates(&ring, &[0, 2]), "two zones");
    }

    #[test]
    fn leader_skips_unhealthy() {
        let mut insts: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| inst(id, "", InstanceState::Active, 16))
            .collect();
        let ring = Ring::new(insts.clone(), 3, false);
        let all = ring.leader_candidates(42, 3);
        assert_eq!(all.len(), 3);
        insts[all[0] as usize].healthy = false;
        let ring2 = Ring::new(insts, 3, false);
        assert_eq!(
            ring2.leader_candidates(42, 3),
            all[1..].to_vec(),
            "the next in line"
        );
    }
}
