//! Shuffle sharding: each tenant's series go to a stable subset of the ring's instances, so
//! one tenant's load (or a bad query) touches only its shard, as Mimir's
//! `ingestion_tenant_shard_size`.
//!
//! The shard of a tenant is chosen from the tokens, so every process picks the same one: per
//! zone, `ceil(size / zones)` picks; each pick draws a token from a generator seeded by the
//! tenant and zone, and walks clockwise to the first ACTIVE instance of that zone not picked
//! yet. A ring change moves few tenants' shards (only picks whose walk meets the changed
//! instance). Series are then placed on the shard's own token ring, with the replication
//! factor capped by the shard's size.
//!
//! Reads (`with_lookback`): an instance registered within the lookback period may have
//! displaced a member that still holds the tenant's recent data, so such an instance is
//! taken and the walk goes on to the next one as well; every JOINING or LEAVING instance is
//! read too.

use std::collections::{BTreeMap, BTreeSet};

use crate::instance::{InstanceDesc, InstanceState};
use crate::token_ring::Ring;

/// A small deterministic generator (SplitMix64): the same tenant gets the same picks in every
/// process and version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seed(tenant: &str, zone: &str) -> u64 {
    u64::from(crate::hash::tenant_key(tenant, zone)) << 32
        | u64::from(crate::hash::tenant_key(zone, tenant))
}

/// Ids of the instances in `tenant`'s shard of `size`; `None` when the shard would be the
/// whole ring (size 0, or at least as many as the ACTIVE instances). With `registered_after`,
/// instances registered after it are taken without counting (see the module doc).
pub fn shard_ids(
    ring: &Ring,
    tenant: &str,
    size: usize,
    registered_after: Option<i64>,
) -> Option<BTreeSet<String>> {
    let active: Vec<&InstanceDesc> = ring
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Active)
        .collect();
    if size == 0 || size >= active.len() {
        return None;
    }
    let mut by_zone: BTreeMap<&str, Vec<(u32, usize)>> = BTreeMap::new();
    for (idx, i) in active.iter().enumerate() {
        let zone = if ring.zone_awareness {
            i.zone.as_str()
        } else {
            ""
        };
        by_zone
            .entry(zone)
            .or_default()
            .extend(i.tokens.iter().map(|&t| (t, idx)));
    }
    let per_zone = size.div_ceil(by_zone.len());
    let mut picked: BTreeSet<String> = BTreeSet::new();
    for (zone, tokens) in &mut by_zone {
        tokens.sort_unstable();
        let instances_in_zone: BTreeSet<usize> = tokens.iter().map(|t| t.1).collect();
        let mut rng = SplitMix(seed(tenant, zone));
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        let mut counted = 0;
        while counted < per_zone && chosen.len() < instances_in_zone.len() {
            let token = (rng.next() >> 32) as u32;
            let start = tokens.partition_point(|t| t.0 < token);
            // One walk per pick; a recently registered instance is taken and the same walk
            // goes on, so the pick it displaced is taken too and later draws are unchanged.
            for k in 0..tokens.len() {
                let idx = tokens[(start + k) % tokens.len()].1;
                if !chosen.insert(idx) {
                    continue;
                }
                let recent =
                    registered_after.is_some_and(|after| active[idx].registered_ms > after);
                if !recent {
                    break;
                }
            }
            counted += 1;
        }
        picked.extend(chosen.into_iter().map(|i| active[i].id.clone()));
    }
    if registered_after.is_some() {
        picked.extend(
            ring.instances
                .iter()
                .filter(|i| matches!(i.state, InstanceState::Joining | InstanceState::Leaving))
                .map(|i| i.id.clone()),
        );
    }
    Some(picked)
}

/// The tenant's shard as a ring of its own (its instances, the same replication settings),
/// for placing series; `None` when the shard is the whole ring.
pub fn shard_ring(ring: &Ring, tenant: &str, size: usize) -> Option<Ring> {
    let ids = shard_ids(ring, tenant, size, None)?;
    let members: Vec<InstanceDesc> = ring
        .instances
        .iter()
        .filter(|i| ids.contains(&i.id))
        .cloned()
        .collect();
    Some(Ring::new(
        members,
        ring.replication_factor,
        ring.zone_awareness,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::random_tokens;

    fn inst(id: &str, zone: &str, registered_ms: i64) -> InstanceDesc {
        InstanceDesc {
            id: id.into(),
            addr: format!("{id}:9095"),
            zone: zone.into(),
            state: InstanceState::Active,
            tokens: random_tokens(128, &Default::default()),
            last_heartbeat_ms: 0,
            healthy: true,
            registered_ms,
        }
    }

    #[test]
    fn shards_are_stable_sized_spread_and_zone_balanced() {
        let insts: Vec<InstanceDesc> = (0..6).map(|i| inst(&format!("i{i}"), "", 0)).collect();
        let ring = Ring::new(insts.clone(), 3, false);
        let a = shard_ids(&ring, "team-a", 2, None).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(shard_ids(&ring, "team-a", 2, None).unwrap(), a, "stable");
        assert!(shard_ids(&ring, "team-a", 6, None).is_none());
        assert!(shard_ids(&ring, "team-a", 0, None).is_none());
        // Tenants spread over the ring.
        let mut seen = BTreeSet::new();
        for t in 0..50 {
            seen.extend(shard_ids(&ring, &format!("t{t}"), 2, None).unwrap());
        }
        assert_eq!(seen.len(), 6);
        // The shard ring replicates within the shard only.
        let sub = shard_ring(&ring, "team-a", 2).unwrap();
        assert_eq!(sub.instances.len(), 2);
        assert_eq!(sub.effective_rf(), 2);
        // Zones: a shard of 3 over 3 zones takes one per zone.
        let zoned: Vec<InstanceDesc> = (0..9)
            .map(|i| inst(&format!("z{i}"), ["a", "b", "c"][i % 3], 0))
            .collect();
        let zring = Ring::new(zoned.clone(), 3, true);
        let s = shard_ids(&zring, "team-a", 3, None).unwrap();
        let zones: BTreeSet<&str> = zoned
            .iter()
            .filter(|i| s.contains(&i.id))
            .map(|i| i.zone.as_str())
            .collect();
        assert_eq!((s.len(), zones.len()), (3, 3));
        // A new instance that takes a place in the shard: reads still include the member
        // it displaced.
        let mut grown = insts;
        let mut found = None;
        for k in 0..200 {
            let mut g = grown.clone();
            g.push(inst(&format!("new{k}"), "", 1000));
            let r = Ring::new(g, 3, false);
            let now = shard_ids(&r, "team-a", 2, None).unwrap();
            if now.iter().any(|id| id.starts_with("new")) {
                found = Some((r, now));
                break;
            }
        }
        let (r, now) = found.expect("some new instance enters the shard");
        let read = shard_ids(&r, "team-a", 2, Some(500)).unwrap();
        assert!(
            read.is_superset(&now) && read.is_superset(&a),
            "{read:?} {now:?} {a:?}"
        );
        grown.clear();
    }
}
