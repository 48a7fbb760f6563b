//! One in-memory series: its interned labels, closed XOR chunks and the open head chunk.

use muninn_storage::chunk::{SAMPLES_PER_CHUNK, XorAppender, XorIter};

use super::chunk_store::ChunkStore;
use super::closed::{ClosedChunks, Writer};
use super::hist::HistChunks;

/// Chunks never span a multiple of this many milliseconds (the default block range), so a
/// cut at the default range never splits a chunk; other ranges re-encode the chunk that a
/// cut splits (see [`MemSeries::drop_through`]).
pub const CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// `shipped_t` of a series nothing of which was shipped.
pub const NOTHING_SHIPPED: i64 = i64::MIN;

/// The outcome of appending one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// Same timestamp and the same value bits as the last sample: accepted, nothing stored.
    Duplicate,
    OutOfOrder,
    /// Same timestamp as the last sample with a different value.
    ConflictingDuplicate,
}

/// A series in the head.
pub struct MemSeries {
    /// Interned (name, value) pairs, sorted by name.
    pub labels: Box<[(u32, u32)]>,
    /// Hash of the label bytes, kept to rehash the lookup table without the symbols.
    pub hash: u64,
    pub closed: ClosedChunks,
    pub head: Option<(i64, XorAppender)>,
    /// The newest timestamp of this series that is in an uploaded, indexed block
    /// ([`NOTHING_SHIPPED`] if none). Samples are in order per series, so what is shipped is
    /// always a prefix.
    pub shipped_t: i64,
    /// Native histograms, for the (few) series that have them.
    pub hist: Option<Box<HistChunks>>,
}

impl MemSeries {
    pub fn new(labels: Box<[(u32, u32)]>, hash: u64) -> Self {
        Self {
            labels,
            hash,
            closed: ClosedChunks::default(),
            head: None,
            shipped_t: NOTHING_SHIPPED,
            hist: None,
        }
    }

    /// The newest timestamp of either kind of sample.
    pub fn last_t(&self) -> Option<i64> {
        let f = self.last_float_t();
        let h = self.hist.as_ref().and_then(|h| h.last_t());
        f.max(h)
    }

    /// The newest float sample's timestamp. After WAL replay a series may hold closed
    /// chunks and no open one (every replayed sample was in a chunk file).
    pub fn last_float_t(&self) -> Option<i64> {
        match &self.head {
            Some((_, a)) => Some(a.last_timestamp()),
            None => self
                .closed
                .bounds(self.closed.len().checked_sub(1)?)
                .map(|b| b.1),
        }
    }

    /// Appends a histogram in WAL replay: ordered against the series' histograms only. A
    /// request's float samples are logged before its histograms, so a histogram accepted
    /// before a newer float of the same request replays after it.
    pub fn replay_hist(
        &mut self,
        t: i64,
        h: &muninn_storage::histogram::HistSample,
    ) -> AppendOutcome {
        let hist = self.hist.get_or_insert_with(Default::default);
        let newest = hist.last_t();
        hist.append(t, h, newest)
    }

    /// Appends a histogram newer than every sample of the series.
    pub fn append_hist(
        &mut self,
        t: i64,
        h: &muninn_storage::histogram::HistSample,
    ) -> AppendOutcome {
        let newest = self.last_t();
        if self.last_float_t() == Some(t) {
            // The same timestamp as a float sample.
            return AppendOutcome::ConflictingDuplicate;
        }
        self.hist
            .get_or_insert_with(Default::default)
            .append(t, h, newest)
    }

    /// Every sample held, oldest first.
    pub fn samples<'a>(&'a self, store: &'a ChunkStore) -> impl Iterator<Item = (i64, f64)> + 'a {
        self.closed
            .iter(store)
            .map(|c| c.data)
            .chain(self.head.as_ref().map(|(_, a)| a.bytes()))
            .flat_map(XorIter::new)
    }

    /// Samples in `[min_t, max_t)` newer than `after`, decoding only the chunks that overlap.
    pub fn samples_in(
        &self,
        min_t: i64,
        max_t: i64,
        after: i64,
        store: &ChunkStore,
    ) -> Vec<(i64, f64)> {
        let lo = min_t.max(after.saturating_add(1));
        let chunks = self
            .closed
            .overlapping(lo, max_t.saturating_sub(1), store)
            .map(|c| (c.min_t, c.max_t, c.data))
            .chain(
                self.head
                    .as_ref()
                    .map(|(min, a)| (*min, a.last_timestamp(), a.bytes())),
            );
        let mut out = Vec::new();
        for (cmin, cmax, data) in chunks {
            if cmax < lo || cmin >= max_t {
                continue;
            }
            out.extend(XorIter::new(data).filter(|(t, _)| *t >= lo && *t < max_t));
        }
        out
    }

    /// The oldest sample not shipped yet.
    pub fn first_unshipped(&self, store: &ChunkStore) -> Option<i64> {
        let after = self.shipped_t;
        let h = self.hist.as_ref().and_then(|h| h.first_after(after));
        let f = self.first_unshipped_float(after, store);
        match (f, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn first_unshipped_float(&self, after: i64, store: &ChunkStore) -> Option<i64> {
        if self.last_float_t()? <= after {
            return None;
        }
        let chunks = self
            .closed
            .overlapping(after.saturating_add(1), i64::MAX, store)
            .map(|c| (c.max_t, c.data))
            .chain(
                self.head
                    .as_ref()
                    .map(|(_, a)| (a.last_timestamp(), a.bytes())),
            );
        for (cmax, data) in chunks {
            if cmax > after {
                return XorIter::new(data).map(|(t, _)| t).find(|t| *t > after);
            }
        }
        None
    }

    /// Drops every sample at or before `t` (shipped and retained long enough). A chunk that
    /// straddles `t` is re-encoded with what remains, so any block range works.
    pub fn drop_through(&mut self, t: i64, w: &mut Writer<'_>) {
        if let Some(h) = &mut self.hist {
            h.drop_through(t);
            if h.is_empty() {
                self.hist = None;
            }
        }
        // Chunks are sorted and disjoint: those ending by `t` are a prefix.
        let done = self.closed.all_bounds().take_while(|c| c.1 <= t).count();
        self.closed.drop_front(done, w.store);
        if let Some(c) = self.closed.get(0, w.store)
            && c.min_t <= t
        {
            let mut a = XorAppender::with_capacity(c.data.len());
            let mut min_t = None;
            for (ts, v) in XorIter::new(c.data).filter(|(ts, _)| *ts > t) {
                min_t.get_or_insert(ts);
                a.append(ts, v);
            }
            let max_t = c.max_t;
            match min_t {
                Some(m) => self.closed.splice(0, 1, &[(m, max_t, a.bytes())], w),
                None => self.closed.drop_front(1, w.store),
            }
        }
        if let Some((min_t, a)) = &self.head
            && *min_t <= t
        {
            if a.last_timestamp() <= t {
                self.head = None;
            } else {
                let mut b = XorAppender::with_capacity(a.bytes().len());
                let mut first = None;
                for (ts, v) in a.iter().filter(|(ts, _)| *ts > t) {
                    first.get_or_insert(ts);
                    b.append(ts, v);
                }
                self.head = first.map(|f| (f, b));
            }
        }
    }

    /// Timestamp and value of the newest sample.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.head
            .as_ref()
            .map(|(_, a)| (a.last_timestamp(), a.last_value()))
    }

    /// Oldest and newest timestamps held (of either kind).
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let f = self.float_time_range();
        let h = self.hist.as_ref().and_then(|h| h.time_range());
        match (f, h) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        }
    }

    fn float_time_range(&self) -> Option<(i64, i64)> {
        let max = self.last_float_t()?;
        let min = self
            .closed
            .bounds(0)
            .map(|c| c.0)
            .or(self.head.as_ref().map(|h| h.0))?;
        Some((min, max))
    }

    /// Appends a sample, rejecting it if older than the newest one.
    pub fn append(&mut self, t: i64, v: f64, w: &mut Writer<'_>) -> AppendOutcome {
        if let Some(ht) = self.hist.as_ref().and_then(|h| h.last_t()) {
            if t < ht {
                return AppendOutcome::OutOfOrder;
            }
            if t == ht {
                return AppendOutcome::ConflictingDuplicate;
            }
        }
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
        } else if let Some(lt) = self.last_float_t() {
            // Only closed chunks (after WAL replay): compared with the newest one's samples.
            if t < lt {
                return AppendOutcome::OutOfOrder;
            }
            if t == lt {
                let last = self
                    .closed
                    .len()
                    .checked_sub(1)
                    .and_then(|i| self.closed.get(i, w.store))
                    .and_then(|c| XorIter::new(c.data).last());
                return match last {
                    Some((_, lv)) if lv.to_bits() == v.to_bits() => AppendOutcome::Duplicate,
                    _ => AppendOutcome::ConflictingDuplicate,
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
                self.closed.push(min_t, a.last_timestamp(), a.bytes(), w);
            }
            // Room for a few samples; a scrape-interval series grows to ~150 bytes.
            self.head = Some((t, XorAppender::with_capacity(32)));
        }
        if let Some((_, a)) = &mut self.head {
            a.append(t, v);
        }
        AppendOutcome::Appended
    }

    /// Inserts a sample older than the newest one (out-of-order ingestion; the window is the
    /// caller's). The chunk whose time range holds `t` is re-encoded with it; in a gap between
    /// chunks it joins the neighbour in the same `CHUNK_RANGE_MS` window, or starts a chunk of
    /// its own, so chunks stay sorted and non-overlapping and every reader (queries, cuts,
    /// checkpoints) keeps seeing one ordered sequence. A chunk grown past twice the usual
    /// size is split in two.
    pub fn insert(&mut self, t: i64, v: f64, w: &mut Writer<'_>) -> AppendOutcome {
        if let Some(h) = &self.hist
            && h.chunks().any(|(_, min, max, _)| min <= t && t <= max)
            && h.all().iter().any(|(ht, _)| *ht == t)
        {
            return AppendOutcome::ConflictingDuplicate;
        }
        let Some(last_t) = self.last_float_t() else {
            return self.append(t, v, w);
        };
        if t > last_t || (t == last_t && self.head.is_some()) {
            return self.append(t, v, w);
        }
        // Index of the first chunk (closed, then the open one at `closed.len()`) ending at or
        // after `t`; one exists since `t` is older than the newest sample.
        let idx = self
            .closed
            .all_bounds()
            .position(|c| c.1 >= t)
            .unwrap_or(self.closed.len());
        let min_t = match (self.closed.bounds(idx), &self.head) {
            (Some(c), _) => c.0,
            (None, Some((m, _))) => *m,
            (None, None) => return self.append(t, v, w),
        };
        let window = |x: i64| x.div_euclid(CHUNK_RANGE_MS);
        let target = if min_t <= t {
            idx
        } else if idx > 0
            && self
                .closed
                .bounds(idx - 1)
                .is_some_and(|c| window(c.1) == window(t))
        {
            idx - 1
        } else if window(min_t) == window(t) {
            idx
        } else {
            // A chunk of its own, before chunk `idx`.
            let mut a = XorAppender::with_capacity(16);
            a.append(t, v);
            self.closed.splice(idx, 0, &[(t, t, a.bytes())], w);
            return AppendOutcome::Appended;
        };
        let is_open = target == self.closed.len();
        let data: &[u8] = if is_open {
            match &self.head {
                Some((_, a)) => a.bytes(),
                None => return self.append(t, v, w),
            }
        } else {
            match self.closed.get(target, w.store) {
                Some(c) => c.data,
                None => return self.append(t, v, w),
            }
        };
        let mut samples: Vec<(i64, f64)> = XorIter::new(data).collect();
        let pos = samples.partition_point(|&(st, _)| st < t);
        if let Some(&(st, sv)) = samples.get(pos)
            && st == t
        {
            return if sv.to_bits() == v.to_bits() {
                AppendOutcome::Duplicate
            } else {
                AppendOutcome::ConflictingDuplicate
            };
        }
        samples.insert(pos, (t, v));
        let encode = |part: &[(i64, f64)]| {
            let mut a = XorAppender::with_capacity(part.len() * 2 + 16);
            for &(st, sv) in part {
                a.append(st, sv);
            }
            a
        };
        let split = samples.len() > 2 * usize::from(SAMPLES_PER_CHUNK);
        let (first, second) = if split {
            samples.split_at(samples.len() / 2)
        } else {
            (&samples[..], &samples[..0])
        };
        let bounds = |part: &[(i64, f64)]| (part[0].0, part[part.len() - 1].0);
        if is_open {
            if split {
                let (min_t, max_t) = bounds(first);
                self.closed.push(min_t, max_t, encode(first).bytes(), w);
                self.head = Some((second[0].0, encode(second)));
            } else {
                self.head = Some((first[0].0, encode(first)));
            }
        } else {
            let parts: Vec<(i64, i64, XorAppender)> = [first, second]
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| (bounds(p).0, bounds(p).1, encode(p)))
                .collect();
            let new: Vec<(i64, i64, &[u8])> =
                parts.iter().map(|(a, b, x)| (*a, *b, x.bytes())).collect();
            self.closed.splice(target, 1, &new, w);
        }
        AppendOutcome::Appended
    }

    /// Whether the series holds no samples.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.head.is_none() && self.hist.is_none()
    }

    /// Whether this slot is a garbage-collected series (valid series always have labels).
    pub fn is_dead(&self) -> bool {
        self.labels.is_empty()
    }

    /// Heap bytes held by this series (labels and chunks).
    pub fn heap_size(&self) -> usize {
        self.labels.len() * 8
            + self.closed.heap_size()
            + self.head.as_ref().map_or(0, |(_, a)| a.heap_size())
            + self.hist.as_ref().map_or(0, |h| h.heap_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_chunks_at_120_samples_and_range_boundaries() {
        let mut store = ChunkStore::in_memory();
        let mut w = Writer {
            store: &mut store,
            id: 0,
            hash: 0,
        };
        let mut s = MemSeries::new(Box::new([]), 0);
        for i in 0..300 {
            assert_eq!(
                s.append(i * 1000, i as f64, &mut w),
                AppendOutcome::Appended
            );
        }
        assert_eq!(s.closed.len(), 2);
        assert_eq!(s.append(299_000, 299.0, &mut w), AppendOutcome::Duplicate);
        assert_eq!(
            s.append(299_000, 1.0, &mut w),
            AppendOutcome::ConflictingDuplicate
        );
        assert_eq!(s.append(1, 1.0, &mut w), AppendOutcome::OutOfOrder);
        s.append(CHUNK_RANGE_MS, 1.0, &mut w);
        assert_eq!(s.closed.len(), 3, "boundary cut");
        assert_eq!(s.time_range(), Some((0, CHUNK_RANGE_MS)));
    }

    #[test]
    fn out_of_order_inserts_keep_one_ordered_sequence() {
        let mut store = ChunkStore::in_memory();
        let mut w = Writer {
            store: &mut store,
            id: 0,
            hash: 0,
        };
        let mut s = MemSeries::new(Box::new([]), 0);
        let mut want = std::collections::BTreeMap::new();
        // Two chunk-range windows, with gaps, then inserts everywhere: into closed chunks,
        // the open chunk, gaps, before the first chunk, and enough to force splits.
        for i in (0..400).map(|i| i * 20_000) {
            s.append(i, i as f64, &mut w);
            want.insert(i, i as f64);
        }
        let last = 399 * 20_000;
        let mut x = 7u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = ((x >> 33) % last as u64) as i64 - 1000;
            if t < 0 {
                continue;
            }
            let out = s.insert(t, t as f64, &mut w);
            if want.insert(t, t as f64).is_some() {
                assert_eq!(out, AppendOutcome::Duplicate);
            } else {
                assert_eq!(out, AppendOutcome::Appended);
            }
        }
        assert_eq!(
            s.insert(0, 5.0, &mut w),
            AppendOutcome::ConflictingDuplicate
        );
        let got: Vec<(i64, f64)> = s.samples(w.store).collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        // Chunks sorted, disjoint, bounded, within one window each.
        let mut prev = i64::MIN;
        for c in s.closed.iter(w.store) {
            let ts: Vec<i64> = XorIter::new(c.data).map(|(t, _)| t).collect();
            assert_eq!((ts[0], *ts.last().unwrap()), (c.min_t, c.max_t));
            assert!(c.min_t > prev && ts.len() <= 2 * usize::from(SAMPLES_PER_CHUNK));
            assert_eq!(
                c.min_t.div_euclid(CHUNK_RANGE_MS),
                c.max_t.div_euclid(CHUNK_RANGE_MS)
            );
            prev = c.max_t;
        }
        assert_eq!(s.append(last + 1, 1.0, &mut w), AppendOutcome::Appended);
    }

    #[test]
    fn drop_through_splits_chunks_at_any_time() {
        let mut store = ChunkStore::in_memory();
        let mut w = Writer {
            store: &mut store,
            id: 0,
            hash: 0,
        };
        let mut s = MemSeries::new(Box::new([]), 0);
        for i in 0..300 {
            s.append(i * 1000, i as f64, &mut w);
        }
        assert_eq!(s.first_unshipped(w.store), Some(0));
        s.shipped_t = 150_000;
        assert_eq!(s.first_unshipped(w.store), Some(151_000));
        assert_eq!(s.samples_in(100_000, 160_000, 150_000, w.store).len(), 9);
        // 150 s falls inside the second closed chunk (120..240 s).
        s.drop_through(150_000, &mut w);
        let left: Vec<i64> = s.samples(w.store).map(|(t, _)| t).collect();
        assert_eq!(left, (151..300).map(|i| i * 1000).collect::<Vec<_>>());
        assert_eq!(s.time_range(), Some((151_000, 299_000)));
        // Inside the open chunk: it is rebuilt and still takes appends.
        s.drop_through(250_000, &mut w);
        assert_eq!(s.closed.len(), 0);
        assert_eq!(s.append(300_000, 1.0, &mut w), AppendOutcome::Appended);
        let left: Vec<i64> = s.samples(w.store).map(|(t, _)| t).collect();
        assert_eq!(left.first(), Some(&251_000));
        assert_eq!(left.len(), 50);
        s.drop_through(300_000, &mut w);
        assert!(s.is_empty());
    }
}
