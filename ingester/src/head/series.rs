//! One in-memory series: its interned labels, closed XOR chunks and the open head chunk.

use muninn_storage::chunk::{SAMPLES_PER_CHUNK, XorAppender};

/// Chunks never span a multiple of this many milliseconds (the default block range), so a
/// later block cut never splits a chunk.
pub const CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// A closed, immutable chunk.
pub struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Box<[u8]>,
}

/// The outcome of appending one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// Same timestamp and the same value bits as the last sample: accepted, nothing stored.
    Duplicate,
    OutOfOrder,
    /// Same timestamp as the last sample with a different value.
    ConflictingDuplicate,
    /// Older than what the head still accepts (its data up to there is in blocks).
    TooOld,
}

/// A series in the head.
pub struct MemSeries {
    /// Interned (name, value) pairs, sorted by name.
    pub labels: Box<[(u32, u32)]>,
    /// Hash of the label bytes, kept to rehash the lookup table without the symbols.
    pub hash: u64,
    pub closed: Vec<ClosedChunk>,
    pub head: Option<(i64, XorAppender)>,
}

impl MemSeries {
    pub fn new(labels: Box<[(u32, u32)]>, hash: u64) -> Self {
        Self {
            labels,
            hash,
            closed: Vec::new(),
            head: None,
        }
    }

    /// Timestamp and value of the newest sample.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.head
            .as_ref()
            .map(|(_, a)| (a.last_timestamp(), a.last_value()))
    }

    /// Oldest and newest timestamps held.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let max = self.last()?.0;
        let min = self
            .closed
            .first()
            .map(|c| c.min_t)
            .or(self.head.as_ref().map(|h| h.0))?;
        Some((min, max))
    }

    /// Appends a sample, rejecting it if older than the newest one.
    pub fn append(&mut self, t: i64, v: f64) -> AppendOutcome {
        if let Some((lt, lv)) = self.last() {
            if t < lt {
                return AppendOutcome::OutOfOrder;
            }
            if t == lt {
                return if lv.to_bits() == v.to_bits() {
                    AppendOutcome::Duplicate
                } else {
                    AppendOutcome::ConflictingDuplicate
                };
            }
        }
        let cut = match &self.head {
            None => true,
            Some((min_t, a)) => {
                a.num_samples() >= SAMPLES_PER_CHUNK
                    || t.div_euclid(CHUNK_RANGE_MS) != min_t.div_euclid(CHUNK_RANGE_MS)
            }
        };
        if cut {
            if let Some((min_t, a)) = self.head.take() {
                let max_t = a.last_timestamp();
                self.closed.push(ClosedChunk {
                    min_t,
                    max_t,
                    data: a.into_bytes().into_boxed_slice(),
                });
            }
            // Room for a few samples; a scrape-interval series grows to ~150 bytes.
            self.head = Some((t, XorAppender::with_capacity(32)));
        }
        if let Some((_, a)) = &mut self.head {
            a.append(t, v);
        }
        AppendOutcome::Appended
    }

    /// Whether the series holds no samples.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.head.is_none()
    }

    /// Whether this slot is a garbage-collected series (valid series always have labels).
    pub fn is_dead(&self) -> bool {
        self.labels.is_empty()
    }

    /// Drops chunks that end before `t` (already in a block).
    pub fn truncate_before(&mut self, t: i64) {
        self.closed.retain(|c| c.max_t >= t);
        if self
            .head
            .as_ref()
            .is_some_and(|(_, a)| a.last_timestamp() < t)
        {
            self.head = None;
        }
    }

    /// Heap bytes held by this series (labels and chunks).
    pub fn heap_size(&self) -> usize {
        self.labels.len() * 8
            + self.closed.capacity() * std::mem::size_of::<ClosedChunk>()
            + self.closed.iter().map(|c| c.data.len()).sum::<usize>()
            + self.head.as_ref().map_or(0, |(_, a)| a.heap_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_chunks_at_120_samples_and_range_boundaries() {
        let mut s = MemSeries::new(Box::new([]), 0);
        for i in 0..300 {
            assert_eq!(s.append(i * 1000, i as f64), AppendOutcome::Appended);
        }
        assert_eq!(s.closed.len(), 2);
        assert_eq!(s.append(299_000, 299.0), AppendOutcome::Duplicate);
        assert_eq!(s.append(299_000, 1.0), AppendOutcome::ConflictingDuplicate);
        assert_eq!(s.append(1, 1.0), AppendOutcome::OutOfOrder);
        s.append(CHUNK_RANGE_MS, 1.0);
        assert_eq!(s.closed.len(), 3, "boundary cut");
        assert_eq!(s.time_range(), Some((0, CHUNK_RANGE_MS)));
    }
}
