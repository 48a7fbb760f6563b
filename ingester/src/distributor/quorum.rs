//! Quorum bookkeeping of one routed push: each replica set must have `quorum` owners that
//! stored its series. Decided as soon as every set has its quorum (the push succeeds; slower
//! owners finish in the background) or some set can no longer get it (the push fails).

use std::sync::Arc;

use muninn_ring::{InstanceIdx, ReplicaSet};

/// What the replies so far decide.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Succeeded,
    /// A replica set cannot reach quorum any more.
    Failed,
}

struct SetState {
    owners: usize,
    ok: usize,
    failed: usize,
}

/// Counts replies per replica set.
pub struct Quorum {
    quorum: usize,
    sets: Vec<SetState>,
    /// Replica sets each owner belongs to.
    sets_of: Vec<(InstanceIdx, Vec<usize>)>,
    pending: usize,
    lost: usize,
}

impl Quorum {
    pub fn new(sets: &[Arc<ReplicaSet>], quorum: usize) -> Self {
        let mut sets_of: Vec<(InstanceIdx, Vec<usize>)> = Vec::new();
        for (i, s) in sets.iter().enumerate() {
            for &o in &s.owners {
                match sets_of.iter_mut().find(|(x, _)| *x == o) {
                    Some((_, v)) => v.push(i),
                    None => sets_of.push((o, vec![i])),
                }
            }
        }
        Self {
            quorum,
            pending: sets.len(),
            sets: sets
                .iter()
                .map(|s| SetState {
                    owners: s.owners.len(),
                    ok: 0,
                    failed: 0,
                })
                .collect(),
            sets_of,
            lost: 0,
        }
    }

    /// Records `owner`'s reply and says what is decided.
    pub fn record(&mut self, owner: InstanceIdx, ok: bool) -> Verdict {
        let Some((_, sets)) = self.sets_of.iter().find(|(o, _)| *o == owner) else {
            return self.verdict();
        };
        for &i in sets {
            let s = &mut self.sets[i];
            let need = self.quorum.min(s.owners);
            let was_done = s.ok >= need;
            let was_lost = s.owners - s.failed < need;
            if ok {
                s.ok += 1;
            } else {
                s.failed += 1;
            }
            if !was_done && s.ok >= need {
                self.pending -= 1;
            }
            if !was_lost && s.owners - s.failed < need {
                self.lost += 1;
            }
        }
        self.verdict()
    }

    pub fn verdict(&self) -> Verdict {
        if self.lost > 0 {
            Verdict::Failed
        } else if self.pending == 0 {
            Verdict::Succeeded
        } else {
            Verdict::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(o: &[InstanceIdx]) -> Arc<ReplicaSet> {
        Arc::new(ReplicaSet { owners: o.to_vec() })
    }

    #[test]
    fn decides_on_quorum_and_on_loss() {
        let sets = [set(&[0, 1, 2]), set(&[1, 2, 3])];
        let mut q = Quorum::new(&sets, 2);
        assert_eq!(q.record(0, false), Verdict::Pending);
        assert_eq!(q.record(1, true), Verdict::Pending);
        assert_eq!(q.record(2, true), Verdict::Succeeded, "both sets have 2");
        let mut q = Quorum::new(&sets, 2);
        assert_eq!(q.record(1, false), Verdict::Pending);
        assert_eq!(q.record(2, false), Verdict::Failed, "both sets lost 2 of 3");
        let mut q = Quorum::new(&[set(&[4])], 1);
        assert_eq!(q.record(4, true), Verdict::Succeeded);
        assert_eq!(Quorum::new(&[], 2).verdict(), Verdict::Succeeded);
    }
}
