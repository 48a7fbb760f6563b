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

/// The ring buffer.
#[derive(Default)]
pub struct ExemplarStore {
    buf: VecDeque<(SeriesId, Exemplar)>,
    /// Newest exemplar timestamp per series still in the buffer.
    newest: HashMap<SeriesId, i64>,
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
        if let Some(&newest) = self.newest.get(&series) {
            if e.timestamp_ms < newest {
                return Added::OutOfOrder;
            }
            if e.timestamp_ms == newest
                && self
                    .buf
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == series)
                    .is_some_and(|(_, x)| {
                        x.labels == e.labels && x.value.to_bits() == e.value.to_bits()
                    })
            {
                return Added::Duplicate;
            }
        }
        self.newest.insert(series, e.timestamp_ms);
        self.buf.push_back((series, e));
        self.trim(capacity);
        Added::Stored
    }

    /// Adds a replayed exemplar (no checks, no bound: the WAL holds only what was stored).
    pub fn replay(&mut self, series: SeriesId, e: Exemplar) {
        let n = self.newest.entry(series).or_insert(e.timestamp_ms);
        *n = (*n).max(e.timestamp_ms);
        self.buf.push_back((series, e));
    }

    /// Evicts the oldest until at most `capacity` remain.
    pub fn trim(&mut self, capacity: usize) {
        while self.buf.len() > capacity {
            if let Some((s, e)) = self.buf.pop_front()
                && self.newest.get(&s) == Some(&e.timestamp_ms)
                && !self.buf.iter().any(|(x, _)| *x == s)
            {
                self.newest.remove(&s);
            }
        }
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
        let long = Exemplar {
            labels: vec![("trace_id".into(), "x".repeat(200))],
            value: 1.0,
            timestamp_ms: 40,
        };
        assert_eq!(s.add(1, long, 3), Added::TooLong);
    }
}
