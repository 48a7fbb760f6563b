//! A tenant's exemplars: a bounded ring buffer in memory (the oldest go first once it holds
//! the tenant's share of `max_global_exemplars_per_user`), logged to the WAL with the samples so
//! they survive restarts, as Prometheus's and Mimir's exemplar storage.
//!
//! Per series, exemplars are kept in time order: one older than the series' newest exemplar is
//! dropped (`exemplar_out_of_order`), one equal to it is a duplicate (kept once).

use std::collections::{HashMap, VecDeque};

use crate::head::SeriesId;

/// Longest exemplar label set accepted, in characters of names and values together
/// (OpenMetrics' limit, as Prometheus).
pub const MAX_LABELS_CHARS: usize = 128;

/// One stored exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// What happened to one exemplar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Stored,
    Duplicate,
    OutOfOrder,
    TooLong,
    Disabled,
}

/// The newest exemplar of a series in the buffer, and how many it has there.
#[derive(Clone, Copy)]
struct Newest {
    timestamp_ms: i64,
    value_bits: u64,
    labels_hash: u64,
    count: u32,
}

fn labels_hash(labels: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

/// The ring buffer. Adding and evicting are O(1): per series, the buffer keeps its newest
/// exemplar's identity and how many it holds.
#[derive(Default)]
pub struct ExemplarStore {
    buf: VecDeque<(SeriesId, Exemplar)>,
    newest: HashMap<SeriesId, Newest>,
}

impl ExemplarStore {
    /// Adds one exemplar of `series`, evicting the oldest past `capacity` (0: exemplars off).
    pub fn add(&mut self, series: SeriesId, e: Exemplar, capacity: usize) -> Added {
        if capacity == 0 {
            return Added::Disabled;
        }
        let chars: usize = e
            .labels
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        if chars > MAX_LABELS_CHARS {
            return Added::TooLong;
        }
        let hash = labels_hash(&e.labels);
        if let Some(n) = self.newest.get(&series) {
            if e.timestamp_ms < n.timestamp_ms {
                return Added::OutOfOrder;
            }
            if e.timestamp_ms == n.timestamp_ms
                && e.value.to_bits() == n.value_bits
                && hash == n.labels_hash
            {
                return Added::Duplicate;
            }
        }
        self.push(series, e, hash);
        self.trim(capacity);
        Added::Stored
    }

    fn push(&mut self, series: SeriesId, e: Exemplar, labels_hash: u64) {
        let n = self.newest.entry(series).or_insert(Newest {
            timestamp_ms: i64::MIN,
            value_bits: 0,
            labels_hash: 0,
            count: 0,
        });
        if e.timestamp_ms >= n.timestamp_ms {
            n.timestamp_ms = e.timestamp_ms;
            n.value_bits = e.value.to_bits();
            n.labels_hash = labels_hash;
        }
        n.count += 1;
        self.buf.push_back((series, e));
    }

    /// Adds a replayed exemplar (no checks, no bound: the WAL holds only what was stored).
    pub fn replay(&mut self, series: SeriesId, e: Exemplar) {
        let hash = labels_hash(&e.labels);
        self.push(series, e, hash);
    }

    /// Evicts the oldest until at most `capacity` remain.
    pub fn trim(&mut self, capacity: usize) {
        while self.buf.len() > capacity {
            let Some((s, _)) = self.buf.pop_front() else {
                break;
            };
            if let Some(n) = self.newest.get_mut(&s) {
                n.count -= 1;
                if n.count == 0 {
                    self.newest.remove(&s);
                }
            }
        }
    }

    /// Drops every exemplar of the series `gone` names (garbage-collected series).
    pub fn forget(&mut self, gone: impl Fn(SeriesId) -> bool) {
        self.buf.retain(|(s, _)| !gone(*s));
        self.newest.retain(|s, _| !gone(*s));
    }

    /// Exemplars of `series` in `[min_t, max_t]`, oldest first.
    pub fn query(
        &self,
        series: &std::collections::HashSet<SeriesId>,
        min_t: i64,
        max_t: i64,
    ) -> Vec<(SeriesId, &Exemplar)> {
        self.buf
            .iter()
            .filter(|(s, e)| series.contains(s) && (min_t..=max_t).contains(&e.timestamp_ms))
            .map(|(s, e)| (*s, e))
            .collect()
    }

    /// Everything held, for a WAL checkpoint.
    pub fn all(&self) -> impl ExactSizeIterator<Item = &(SeriesId, Exemplar)> {
        self.buf.iter()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(t: i64, v: f64) -> Exemplar {
        Exemplar {
            labels: vec![("trace_id".into(), format!("t{t}"))],
            value: v,
            timestamp_ms: t,
        }
    }

    #[test]
    fn bounded_ordered_and_deduplicated() {
        let mut s = ExemplarStore::default();
        assert_eq!(s.add(1, ex(10, 1.0), 0), Added::Disabled);
        assert_eq!(s.add(1, ex(10, 1.0), 3), Added::Stored);
        assert_eq!(s.add(1, ex(10, 1.0), 3), Added::Duplicate);
        assert_eq!(s.add(1, ex(5, 1.0), 3), Added::OutOfOrder);
        assert_eq!(s.add(2, ex(5, 1.0), 3), Added::Stored, "per series");
        assert_eq!(s.add(1, ex(20, 2.0), 3), Added::Stored);
        assert_eq!(s.add(1, ex(30, 3.0), 3), Added::Stored);
        assert_eq!(s.len(), 3, "the oldest went");
        let ids: std::collections::HashSet<SeriesId> = [1].into_iter().collect();
        let got: Vec<i64> = s
            .query(&ids, 0, 100)
            .iter()
            .map(|(_, e)| e.timestamp_ms)
            .collect();
        assert_eq!(got, vec![20, 30]);
        // Evicting a series' last exemplar forgets its order: an older one is taken again.
        let mut t = ExemplarStore::default();
        assert_eq!(t.add(7, ex(100, 1.0), 1), Added::Stored);
        assert_eq!(t.add(8, ex(1, 1.0), 1), Added::Stored);
        assert_eq!(t.add(7, ex(50, 1.0), 1), Added::Stored);
        let long = Exemplar {
            labels: vec![("trace_id".into(), "x".repeat(200))],
            value: 1.0,
            timestamp_ms: 40,
        };
        assert_eq!(s.add(1, long, 3), Added::TooLong);
    }
}
