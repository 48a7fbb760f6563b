//! The per-tenant in-memory head: series keyed by their sorted label set, an inverted index
//! (label name → value → sorted series ids) for matchers, and one open XOR chunk per series.
//!
//! Writers hold the write lock for a whole request (see [`crate::tenant_db`]); readers take
//! the read lock and copy out chunk bytes, so a query never blocks on I/O while holding it.

pub mod chunk_store;
mod closed;
pub mod hist;
mod series;
mod symbols;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hashbrown::HashTable;
use muninn_storage::histogram::HistSample;
use muninn_storage::labels::{Label, Labels};
use muninn_storage::matcher::Matcher;

pub use chunk_store::{ChunkRef, ChunkStore, ChunkStoreStats, StoredChunk};
use closed::Writer;
pub use closed::{Chunk, ClosedChunks};
pub use series::{AppendOutcome, CHUNK_RANGE_MS, MemSeries, NOTHING_SHIPPED};
use symbols::Symbols;

/// Id of a series inside one head.
pub type SeriesId = u32;

/// One metric family's metadata, as the metadata API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricMeta {
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// A series as a WAL checkpoint records it: id, labels, its closed chunks in chunk files,
/// the samples still in the head that are not in those, and the newest shipped timestamp
/// ([`NOTHING_SHIPPED`] if none).
pub struct CheckpointSeries {
    pub id: SeriesId,
    pub labels: Vec<(String, String)>,
    pub chunks: Vec<ChunkRef>,
    pub samples: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, HistSample)>,
    pub shipped_t: i64,
}

/// A series' samples of one block range that are not shipped yet, for cutting a block.
pub struct UnshippedSeries {
    pub id: SeriesId,
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, HistSample)>,
}

/// A chunk copied out of the head for a reader.
#[derive(Clone, Debug)]
pub struct ChunkCopy {
    pub min_t: i64,
    pub max_t: i64,
    /// Prometheus's chunk encoding (1 XOR, 2 histogram, 3 float histogram).
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// Mutable state of a head, behind the tenant's lock.
pub struct Head {
    symbols: Symbols,
    lookup: HashTable<SeriesId>,
    series: Vec<MemSeries>,
    /// name → value → ids (ascending; a recycled id is inserted in place).
    postings: HashMap<u32, HashMap<u32, Vec<SeriesId>>>,
    metadata: BTreeMap<String, MetricMeta>,
    samples: u64,
    /// Series created in memory whose WAL record has not been written yet (a WAL write
    /// failed); the next successful write logs them.
    unlogged: Vec<SeriesId>,
    /// The newest timestamp ever appended (never lowered by truncation or a flush): the
    /// "too old" bound is relative to it, as in Prometheus's head.
    max_t: i64,
    /// Tombstoned slots in `series`.
    dead: usize,
    /// Tombstoned slots no WAL record names any more (see [`Head::recycle_pending`]): the
    /// next new series take them.
    free: Vec<SeriesId>,
    /// Tombstoned slots that old WAL segments may still name: collected series, and the gaps
    /// WAL replay leaves. They join `free` after the next successful checkpoint.
    pending: Vec<SeriesId>,
    /// Per slot, how many times it was recycled: a reader that lets go of the lock between
    /// batches (the streamed ingester select) checks that an id still names its series.
    generation: Vec<u32>,
    /// Series given out-of-order samples since the last cut snapshot, with the oldest such
    /// sample: a cut in flight must not mark them shipped past it (see
    /// [`Head::cap_marks`]).
    ooo_since_snapshot: HashMap<SeriesId, i64>,
    /// Where closed chunks are kept.
    chunks: ChunkStore,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            symbols: Symbols::default(),
            lookup: HashTable::new(),
            series: Vec::new(),
            postings: HashMap::new(),
            metadata: BTreeMap::new(),
            samples: 0,
            unlogged: Vec::new(),
            max_t: i64::MIN,
            dead: 0,
            free: Vec::new(),
            pending: Vec::new(),
            generation: Vec::new(),
            ooo_since_snapshot: HashMap::new(),
            chunks: ChunkStore::in_memory(),
        }
    }
}

/// Hash of a label set (sorted `(name, value)` pairs): names and values with separators.
pub fn label_hash<'a>(
    labels: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    scratch: &mut Vec<u8>,
) -> u64 {
    scratch.clear();
    for (n, v) in labels {
        scratch.extend_from_slice(n);
        scratch.push(0xff);
        scratch.extend_from_slice(v);
        scratch.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(scratch)
}

/// [`label_hash`] of string pairs.
pub fn label_hash_str(labels: &[(&str, &str)], scratch: &mut Vec<u8>) -> u64 {
    label_hash(
        labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        scratch,
    )
}

impl Head {
    /// A head whose closed chunks go to `chunks`.
    pub fn with_chunks(chunks: ChunkStore) -> Self {
        Self {
            chunks,
            ..Self::default()
        }
    }

    /// The chunk store's counters.
    pub fn chunk_stats(&self) -> ChunkStoreStats {
        self.chunks.stats()
    }

    /// Writes buffered closed chunks to their file (the end of every push).
    pub fn flush_chunks(&mut self) {
        if let Err(e) = self.chunks.flush() {
            tracing::error!(error = %e, "writing head chunks failed; keeping closed chunks in memory until restart");
        }
    }

    /// Makes every closed chunk in a file durable, and returns the position from which
    /// records are newer (see [`ChunkStore::mark`]): a WAL checkpoint starts with it.
    pub fn sync_chunks(&mut self) -> crate::Result<(u32, u32)> {
        self.chunks.sync()?;
        Ok(self.chunks.mark())
    }

    /// Visits the records of the chunk files from `from` on (WAL replay).
    pub fn scan_stored_chunks(&self, from: Option<(u32, u32)>, visit: impl FnMut(StoredChunk)) {
        self.chunks.scan(from, visit)
    }

    /// The checked record `r` names (WAL replay).
    pub fn stored_chunk(&self, r: ChunkRef) -> Option<StoredChunk> {
        self.chunks.lookup(r)
    }

    /// Gives series `id` a stored chunk (WAL replay) that was written for WAL series
    /// `wal_id`. A chunk listed by a checkpoint (`rewritten` false) is added only after every
    /// chunk the series holds; one written after the checkpoint may be a rewrite (an
    /// out-of-order insert, a partial drop) and replaces the chunks it overlaps. A chunk of
    /// another series (a recycled id: another label hash) is ignored.
    ///
    /// A chunk reaching outside `ok` (replay's time bounds: written before they existed, or
    /// with another clock) is not attached: its samples inside them are appended, and the
    /// number left out is returned, as replay skips such WAL samples.
    pub fn attach_chunk(
        &mut self,
        id: SeriesId,
        wal_id: u32,
        c: &StoredChunk,
        rewritten: bool,
        ok: &std::ops::RangeInclusive<i64>,
    ) -> u64 {
        let Some(s) = self.series.get_mut(id as usize) else {
            return 0;
        };
        if s.is_dead() || c.series != wal_id || c.hash != s.hash || c.max_t < c.min_t {
            return 0;
        }
        if !ok.contains(&c.min_t) || !ok.contains(&c.max_t) {
            let samples: Vec<(i64, f64)> =
                muninn_storage::chunk::XorIter::new(self.chunks.get(c.r)).collect();
            let mut left_out = 0;
            for (t, v) in samples {
                if !ok.contains(&t) {
                    left_out += 1;
                } else if self.append(id, t, v) == AppendOutcome::OutOfOrder {
                    self.insert(id, t, v);
                }
            }
            return left_out;
        }
        // Samples the open chunk holds up to the stored one's end came from the WAL and are
        // in the stored chunk (or a later one): the open chunk is rebuilt from what follows.
        if let Some((min_t, a)) = &s.head
            && *min_t <= c.max_t
        {
            if a.last_timestamp() <= c.max_t {
                s.head = None;
            } else {
                return 0;
            }
        }
        if rewritten {
            s.closed
                .replace_overlapping(c.min_t, c.max_t, c.r, &mut self.chunks);
        } else {
            s.closed.attach(c.min_t, c.max_t, c.r, &mut self.chunks);
        }
        self.max_t = self.max_t.max(c.max_t);
        0
    }

    /// Bounds of closed chunk `i` of series `id`.
    pub fn chunk_bounds(&self, id: SeriesId, i: usize) -> Option<(i64, i64)> {
        self.series.get(id as usize)?.closed.bounds(i)
    }

    /// The index and bounds of the first closed chunk of series `id` ending at or after `t`.
    pub fn chunk_ending_from(&self, id: SeriesId, t: i64) -> (usize, Option<(i64, i64)>) {
        self.series
            .get(id as usize)
            .map_or((0, None), |s| s.closed.first_ending_from(t))
    }

    /// Deletes chunk files no series refers to (after each checkpoint).
    pub fn drop_unreferenced_chunks(&mut self) {
        self.chunks.drop_unreferenced();
    }

    /// Drops the chunk files' pages from the resident set (after WAL replay).
    pub fn release_chunk_pages(&self) {
        self.chunks.release_pages();
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Samples appended since start (replay included).
    pub fn num_samples(&self) -> u64 {
        self.samples
    }

    /// The id of a series (labels sorted, validated), if present.
    pub fn find(&self, labels: &[(&str, &str)], hash: u64) -> Option<SeriesId> {
        self.find_bytes(
            labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            labels.len(),
            hash,
        )
    }

    /// The id of the series whose labels are exactly these `len` byte pairs, if present. Since
    /// only validated label sets are stored, a match means the pairs are valid too.
    pub fn find_bytes<'a>(
        &self,
        labels: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        len: usize,
        hash: u64,
    ) -> Option<SeriesId> {
        self.lookup
            .find(hash, |&id| {
                let s = &self.series[id as usize];
                s.labels.len() == len
                    && s.labels
                        .iter()
                        .zip(labels.clone())
                        .all(|(&(n, v), (ln, lv))| {
                            self.symbols.resolve(v).as_bytes() == lv
                                && self.symbols.resolve(n).as_bytes() == ln
                        })
            })
            .copied()
    }

    /// Creates a series; the caller checked with [`Head::find`] that it does not exist. It
    /// takes a recycled slot when there is one.
    pub fn create(&mut self, labels: &[(&str, &str)], hash: u64) -> SeriesId {
        match self.free.pop() {
            Some(id) => self.fill(id, labels, hash),
            None => {
                let id = self.series.len() as SeriesId;
                self.series.push(MemSeries::new(Box::new([]), 0));
                self.generation.push(0);
                self.dead += 1;
                self.fill(id, labels, hash)
            }
        }
    }

    /// Puts a new series in the tombstoned slot `id`: labels interned, postings (kept
    /// ascending) and lookup entry added.
    fn fill(&mut self, id: SeriesId, labels: &[(&str, &str)], hash: u64) -> SeriesId {
        debug_assert!(self.series[id as usize].is_dead());
        let interned: Box<[(u32, u32)]> = labels
            .iter()
            .map(|(n, v)| (self.symbols.intern(n), self.symbols.intern(v)))
            .collect();
        for &(n, v) in interned.iter() {
            let ids = self.postings.entry(n).or_default().entry(v).or_default();
            match ids.last() {
                Some(&last) if last >= id => {
                    if let Err(pos) = ids.binary_search(&id) {
                        ids.insert(pos, id);
                    }
                }
                _ => ids.push(id),
            }
        }
        self.series[id as usize] = MemSeries::new(interned, hash);
        self.dead -= 1;
        let series = &self.series;
        self.lookup
            .insert_unique(hash, id, |&i| series[i as usize].hash);
        id
    }

    /// Finds or creates a series. Returns the id and whether it was created.
    pub fn get_or_create(&mut self, labels: &[(&str, &str)], hash: u64) -> (SeriesId, bool) {
        match self.find(labels, hash) {
            Some(id) => (id, false),
            None => (self.create(labels, hash), true),
        }
    }

    /// Appends one sample to a series (in order per series; time bounds are the caller's).
    pub fn append(&mut self, id: SeriesId, t: i64, v: f64) -> AppendOutcome {
        let s = &mut self.series[id as usize];
        let mut w = Writer {
            store: &mut self.chunks,
            id,
            hash: s.hash,
        };
        let out = s.append(t, v, &mut w);
        if out == AppendOutcome::Appended {
            self.samples += 1;
            self.max_t = self.max_t.max(t);
        }
        out
    }

    /// Appends one native histogram to a series (in order; time bounds are the caller's).
    pub fn append_hist(&mut self, id: SeriesId, t: i64, h: &HistSample) -> AppendOutcome {
        let out = self.series[id as usize].append_hist(t, h);
        if out == AppendOutcome::Appended {
            self.samples += 1;
            self.max_t = self.max_t.max(t);
        }
        out
    }

    /// Appends a replayed histogram (ordered among the series' histograms only).
    pub fn replay_hist(&mut self, id: SeriesId, t: i64, h: &HistSample) -> AppendOutcome {
        let out = self.series[id as usize].replay_hist(t, h);
        if out == AppendOutcome::Appended {
            self.samples += 1;
            self.max_t = self.max_t.max(t);
        }
        out
    }

    /// Inserts a sample older than its series' newest (out-of-order ingestion; the window is
    /// the caller's). If the series was shipped past `t`, its shipped mark moves back below
    /// `t` so the sample goes into a later block (with copies of the shipped samples after
    /// it, which readers and the compactor count once).
    pub fn insert(&mut self, id: SeriesId, t: i64, v: f64) -> AppendOutcome {
        let s = &mut self.series[id as usize];
        let mut w = Writer {
            store: &mut self.chunks,
            id,
            hash: s.hash,
        };
        let out = s.insert(t, v, &mut w);
        if out == AppendOutcome::Appended {
            self.samples += 1;
            self.max_t = self.max_t.max(t);
            if s.shipped_t >= t {
                s.shipped_t = t - 1;
            }
            let e = self.ooo_since_snapshot.entry(id).or_insert(t);
            *e = (*e).min(t);
        }
        out
    }

    /// Forgets the out-of-order inserts seen so far: a cut snapshot is being taken, and it
    /// holds them.
    pub fn start_snapshot(&mut self) {
        self.ooo_since_snapshot.clear();
    }

    /// Caps the marks of a cut so no series is marked shipped at or past an out-of-order
    /// sample inserted after the cut's snapshot (which its block does not hold).
    pub fn cap_marks(&mut self, marks: &mut [(SeriesId, i64)]) {
        if self.ooo_since_snapshot.is_empty() {
            return;
        }
        for (id, t) in marks.iter_mut() {
            if let Some(&oldest) = self.ooo_since_snapshot.get(id) {
                *t = (*t).min(oldest - 1);
            }
        }
    }

    /// Live series, chunks (closed and open), and the oldest and newest sample held.
    pub fn stats(&self) -> (u64, u64, Option<(i64, i64)>) {
        let mut chunks = 0u64;
        let mut range: Option<(i64, i64)> = None;
        for s in self.series.iter().filter(|s| !s.is_dead()) {
            chunks += s.closed.len() as u64 + u64::from(s.head.is_some());
            if let Some(h) = &s.hist {
                chunks += h.closed.len() as u64 + u64::from(h.head.is_some());
            }
            if let Some((lo, hi)) = s.time_range() {
                range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        (self.live_series() as u64, chunks, range)
    }

    /// Series of one metric name.
    pub fn metric_series(&self, metric: &str) -> usize {
        let (Some(n), Some(v)) = (
            self.symbols.get(b"__name__"),
            self.symbols.get(metric.as_bytes()),
        ) else {
            return 0;
        };
        self.postings
            .get(&n)
            .and_then(|values| values.get(&v))
            .map_or(0, Vec::len)
    }

    /// The newest timestamp ever appended, if any.
    pub fn max_time(&self) -> Option<i64> {
        (self.max_t != i64::MIN).then_some(self.max_t)
    }

    /// The oldest timestamp the head accepts: its newest minus `window` (Prometheus: half
    /// the block range). `None` while the head has never had a sample.
    pub fn appendable_min(&self, window: i64) -> Option<i64> {
        self.max_time().map(|m| m.saturating_sub(window))
    }

    /// Takes the ids of series still missing from the WAL.
    pub fn take_unlogged(&mut self) -> Vec<SeriesId> {
        std::mem::take(&mut self.unlogged)
    }

    /// Remembers series whose WAL record was not written.
    pub fn mark_unlogged(&mut self, ids: impl IntoIterator<Item = SeriesId>) {
        self.unlogged.extend(ids);
    }

    /// Records a metric family's metadata (the latest wins).
    pub fn set_metadata(&mut self, family: &str, meta: MetricMeta) {
        if self.metadata.get(family) != Some(&meta) {
            self.metadata.insert(family.to_owned(), meta);
        }
    }

    /// Metadata, optionally of one family.
    pub fn metadata(&self, family: Option<&str>) -> Vec<(String, MetricMeta)> {
        match family {
            Some(f) => self
                .metadata
                .get(f)
                .map(|m| (f.to_owned(), m.clone()))
                .into_iter()
                .collect(),
            None => self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The labels of a series.
    pub fn labels(&self, id: SeriesId) -> Labels {
        Labels(
            self.series[id as usize]
                .labels
                .iter()
                .map(|&(n, v)| Label {
                    name: self.symbols.resolve(n).to_owned(),
                    value: self.symbols.resolve(v).to_owned(),
                })
                .collect(),
        )
    }

    /// The label pairs of a series, borrowed from the symbol table.
    pub fn label_pairs(&self, id: SeriesId) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.series[id as usize]
            .labels
            .iter()
            .map(|&(n, v)| (self.symbols.resolve(n), self.symbols.resolve(v)))
    }

    /// Orders two series by their label sets as [`Labels`] orders them (name, then value, label
    /// by label), without building them.
    pub fn cmp_labels(&self, a: SeriesId, b: SeriesId) -> std::cmp::Ordering {
        let (la, lb) = (
            &self.series[a as usize].labels,
            &self.series[b as usize].labels,
        );
        for (&(an, av), &(bn, bv)) in la.iter().zip(lb.iter()) {
            let o = self
                .symbols
                .resolve(an)
                .cmp(self.symbols.resolve(bn))
                .then_with(|| self.symbols.resolve(av).cmp(self.symbols.resolve(bv)));
            if o.is_ne() {
                return o;
            }
        }
        la.len().cmp(&lb.len())
    }

    fn label_value(&self, s: &MemSeries, name_id: Option<u32>) -> &str {
        let Some(name_id) = name_id else { return "" };
        s.labels
            .iter()
            .find(|(n, _)| *n == name_id)
            .map_or("", |&(_, v)| self.symbols.resolve(v))
    }

    /// Ids of the series matching every matcher, ascending.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        // Intersect the postings of matchers that need the label to be present, then check
        // every matcher on each candidate (covers absent labels and empty-matching matchers).
        let mut candidates: Option<Vec<SeriesId>> = None;
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let Some(name) = self.symbols.get(m.name.as_bytes()) else {
                return vec![];
            };
            let Some(values) = self.postings.get(&name) else {
                return vec![];
            };
            let mut ids: Vec<SeriesId> = match m.op {
                muninn_storage::matcher::MatchOp::Equal => self
                    .symbols
                    .get(m.value.as_bytes())
                    .and_then(|v| values.get(&v))
                    .cloned()
                    .unwrap_or_default(),
                _ => {
                    let mut ids: Vec<SeriesId> = values
                        .iter()
                        .filter(|(v, _)| m.matches(self.symbols.resolve(**v)))
                        .flat_map(|(_, ids)| ids.iter().copied())
                        .collect();
                    ids.sort_unstable();
                    ids
                }
            };
            if let Some(c) = candidates {
                ids = intersect(&c, &ids);
            }
            if ids.is_empty() {
                return ids;
            }
            candidates = Some(ids);
        }
        let ids: Vec<SeriesId> = candidates.unwrap_or_else(|| {
            (0..self.series.len() as SeriesId)
                .filter(|&id| !self.series[id as usize].is_dead())
                .collect()
        });
        let name_ids: Vec<Option<u32>> = matchers
            .iter()
            .map(|m| self.symbols.get(m.name.as_bytes()))
            .collect();
        ids.into_iter()
            .filter(|&id| {
                let s = &self.series[id as usize];
                matchers
                    .iter()
                    .zip(&name_ids)
                    .all(|(m, &n)| m.matches(self.label_value(s, n)))
            })
            .collect()
    }

    /// Whether a series has samples in `[mint, maxt]` (by chunk bounds).
    pub fn overlaps(&self, id: SeriesId, mint: i64, maxt: i64) -> bool {
        self.series[id as usize]
            .time_range()
            .is_some_and(|(a, b)| a <= maxt && b >= mint)
    }

    /// Copies of the chunks of a series that overlap `[mint, maxt]`, oldest first.
    pub fn chunks(&self, id: SeriesId, mint: i64, maxt: i64) -> Vec<ChunkCopy> {
        let s = &self.series[id as usize];
        let mut out: Vec<ChunkCopy> = s
            .closed
            .overlapping(mint, maxt, &self.chunks)
            .map(|c| ChunkCopy {
                min_t: c.min_t,
                max_t: c.max_t,
                encoding: muninn_storage::chunk::ENC_XOR,
                data: c.data.to_vec(),
            })
            .collect();
        if let Some((min_t, a)) = &s.head {
            let max_t = a.last_timestamp();
            if *min_t <= maxt && max_t >= mint {
                out.push(ChunkCopy {
                    min_t: *min_t,
                    max_t,
                    encoding: muninn_storage::chunk::ENC_XOR,
                    data: a.bytes().to_vec(),
                });
            }
        }
        if let Some(h) = &s.hist {
            for (encoding, min_t, max_t, data) in h.chunks() {
                if min_t <= maxt && max_t >= mint {
                    out.push(ChunkCopy {
                        min_t,
                        max_t,
                        encoding,
                        data: data.to_vec(),
                    });
                }
            }
        }
        out
    }

    /// Label names of the matching series with data in range; all names without matchers.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for id in self.select_in_range(matchers, mint, maxt) {
            for &(n, _) in self.series[id as usize].labels.iter() {
                out.insert(self.symbols.resolve(n).to_owned());
            }
        }
        out
    }

    /// Values of one label over the matching series with data in range.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(name_id) = self.symbols.get(name.as_bytes()) else {
            return out;
        };
        for id in self.select_in_range(matchers, mint, maxt) {
            let v = self.label_value(&self.series[id as usize], Some(name_id));
            if !v.is_empty() {
                out.insert(v.to_owned());
            }
        }
        out
    }

    fn select_in_range(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesId> {
        let ids = if matchers.is_empty() {
            (0..self.series.len() as SeriesId).collect()
        } else {
            self.select(matchers)
        };
        ids.into_iter()
            .filter(|&id| self.overlaps(id, mint, maxt))
            .collect()
    }

    /// The oldest sample of any series that is not shipped yet.
    pub fn oldest_unshipped(&self) -> Option<i64> {
        self.series
            .iter()
            .filter_map(|s| s.first_unshipped(&self.chunks))
            .min()
    }

    /// Every series' samples in `[min_t, max_t)` that are not shipped yet, for cutting a block.
    pub fn snapshot_unshipped(&self, min_t: i64, max_t: i64) -> Vec<UnshippedSeries> {
        let mut out = Vec::new();
        for (id, s) in self.series.iter().enumerate() {
            if s.is_dead() || s.last_t().is_none_or(|t| t <= s.shipped_t) {
                continue;
            }
            let samples = s.samples_in(min_t, max_t, s.shipped_t, &self.chunks);
            let histograms = s
                .hist
                .as_ref()
                .map(|h| h.samples_in(min_t, max_t, s.shipped_t))
                .unwrap_or_default();
            if !samples.is_empty() || !histograms.is_empty() {
                out.push(UnshippedSeries {
                    id: id as SeriesId,
                    labels: self.labels(id as SeriesId),
                    samples,
                    histograms,
                });
            }
        }
        out
    }

    /// Records that each series' samples up to the given timestamp are in an indexed block.
    pub fn mark_shipped(&mut self, marks: &[(SeriesId, i64)]) {
        for &(id, t) in marks {
            if let Some(s) = self.series.get_mut(id as usize)
                && !s.is_dead()
            {
                s.shipped_t = s.shipped_t.max(t);
            }
        }
    }

    /// Drops the samples that `marks` name as shipped (each series up to its timestamp),
    /// then garbage-collects series left empty. Returns the ids collected.
    pub fn drop_shipped(&mut self, marks: &[(SeriesId, i64)]) -> Vec<SeriesId> {
        for &(id, t) in marks {
            if let Some(s) = self.series.get_mut(id as usize)
                && !s.is_dead()
            {
                let mut w = Writer {
                    store: &mut self.chunks,
                    id,
                    hash: s.hash,
                };
                let through = t.min(s.shipped_t);
                s.drop_through(through, &mut w);
            }
        }
        self.gc()
    }

    /// Garbage-collects series left without samples: they leave the lookup table and the
    /// postings, their label strings are released, and their slot keeps only a tombstone.
    /// A series that comes back gets a new id. The slots are reused only after
    /// [`Head::recycle_pending`], once no WAL record names them. Returns the ids collected.
    fn gc(&mut self) -> Vec<SeriesId> {
        let dead: Vec<SeriesId> = (0..self.series.len() as SeriesId)
            .filter(|&id| {
                let s = &self.series[id as usize];
                !s.is_dead() && s.is_empty()
            })
            .collect();
        if dead.is_empty() {
            return dead;
        }
        let set: std::collections::HashSet<SeriesId> = dead.iter().copied().collect();
        for &id in &dead {
            let hash = self.series[id as usize].hash;
            if let Ok(e) = self.lookup.find_entry(hash, |&i| i == id) {
                e.remove();
            }
        }
        for values in self.postings.values_mut() {
            for ids in values.values_mut() {
                ids.retain(|i| !set.contains(i));
            }
            values.retain(|_, ids| !ids.is_empty());
            shrink_if_sparse(values);
        }
        self.postings.retain(|_, values| !values.is_empty());
        shrink_if_sparse(&mut self.postings);
        for &id in &dead {
            let mut old = std::mem::replace(
                &mut self.series[id as usize],
                MemSeries::new(Box::new([]), 0),
            );
            old.closed.clear(&mut self.chunks);
            for &(n, v) in old.labels.iter() {
                self.symbols.release(n);
                self.symbols.release(v);
            }
        }
        self.unlogged.retain(|id| !set.contains(id));
        self.ooo_since_snapshot.retain(|id, _| !set.contains(id));
        self.dead += dead.len();
        self.pending.extend_from_slice(&dead);
        dead
    }

    /// Makes the pending tombstoned slots reusable. Call only once no WAL record names them
    /// (the WAL checkpoint written after their collection succeeded): a reused id is a WAL
    /// reference to the new series. Each slot's generation moves on, so a reader holding an
    /// id across a lock release can tell.
    pub fn recycle_pending(&mut self) {
        let mut ids = std::mem::take(&mut self.pending);
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let i = id as usize;
            // A replay gap may have been filled since; a slot is never on `free` twice.
            if i < self.series.len() && self.series[i].is_dead() {
                self.generation[i] = self.generation[i].wrapping_add(1);
                self.free.push(id);
            }
        }
    }

    /// The generation of slot `id` (see [`Head::recycle`]); `None` for an id out of range.
    pub fn generation(&self, id: SeriesId) -> Option<u32> {
        self.generation.get(id as usize).copied()
    }

    /// Distinct label strings held.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// Live (not collected) series.
    pub fn live_series(&self) -> usize {
        self.series.len() - self.dead
    }

    /// Creates a series at a given id (WAL replay keeps the ids the WAL refers to), unless
    /// that id holds another live series; returns the id used.
    pub fn create_at(&mut self, id: SeriesId, labels: &[(&str, &str)], hash: u64) -> SeriesId {
        let idx = id as usize;
        if idx >= self.series.len() {
            while self.series.len() < idx {
                self.pending.push(self.series.len() as SeriesId);
                self.series.push(MemSeries::new(Box::new([]), 0));
                self.generation.push(0);
                self.dead += 1;
            }
            self.series.push(MemSeries::new(Box::new([]), 0));
            self.generation.push(0);
            self.dead += 1;
            return self.fill(id, labels, hash);
        }
        if !self.series[idx].is_dead() {
            return self.create(labels, hash);
        }
        if let Some(pos) = self.free.iter().position(|&f| f == id) {
            self.free.swap_remove(pos);
        }
        self.fill(id, labels, hash)
    }

    /// Bytes of chunks a series holds that a checkpoint copies (0 for an unknown id): those
    /// not in a chunk file.
    pub fn series_chunk_bytes(&self, id: SeriesId) -> usize {
        self.series.get(id as usize).map_or(0, |s| {
            (0..s.closed.len())
                .filter_map(|i| s.closed.chunk_ref(i))
                .filter(|r| !self.chunks.is_durable(*r))
                .map(|r| self.chunks.get(r).len())
                .sum::<usize>()
                + s.head.as_ref().map_or(0, |(_, a)| a.bytes().len())
                + s.hist.as_ref().map_or(0, |h| h.heap_size())
        })
    }

    /// Series `ids` with labels and all samples still in the head (for a WAL checkpoint).
    pub fn checkpoint_data(&self, ids: std::ops::Range<SeriesId>) -> Vec<CheckpointSeries> {
        ids.filter(|&id| (id as usize) < self.series.len() && !self.series[id as usize].is_dead())
            .map(|id| {
                let labels = self
                    .labels(id)
                    .0
                    .into_iter()
                    .map(|l| (l.name, l.value))
                    .collect();
                let s = &self.series[id as usize];
                // The leading chunks in files are listed; from the first one that is not,
                // samples are copied (chunks are kept on the heap only after a write error).
                let n = (0..s.closed.len())
                    .take_while(|&i| {
                        s.closed
                            .chunk_ref(i)
                            .is_some_and(|r| self.chunks.is_durable(r))
                    })
                    .count();
                let chunks = (0..n).filter_map(|i| s.closed.chunk_ref(i)).collect();
                let samples = (n..s.closed.len())
                    .filter_map(|i| s.closed.get(i, &self.chunks))
                    .map(|c| c.data)
                    .chain(s.head.as_ref().map(|(_, a)| a.bytes()))
                    .flat_map(muninn_storage::chunk::XorIter::new)
                    .collect();
                CheckpointSeries {
                    id,
                    labels,
                    chunks,
                    samples,
                    histograms: s.hist.as_ref().map(|h| h.all()).unwrap_or_default(),
                    shipped_t: s.shipped_t,
                }
            })
            .collect()
    }

    /// Approximate heap bytes held by the head.
    pub fn heap_size(&self) -> usize {
        let postings: usize = self
            .postings
            .values()
            .map(|m| m.capacity() * 40 + m.values().map(|v| v.capacity() * 4).sum::<usize>())
            .sum();
        self.symbols.heap_size()
            + self.chunks.heap_size()
            + self.lookup.capacity() * 5
            + self.series.capacity() * std::mem::size_of::<MemSeries>()
            + self.generation.capacity() * 4
            + (self.free.capacity() + self.pending.capacity()) * 4
            + self.series.iter().map(MemSeries::heap_size).sum::<usize>()
            + postings
    }
}

/// Gives memory back after churn emptied most of a map, without reallocating a map that
/// is merely not full (every truncate would otherwise rebuild every postings map).
fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > 4 * m.len().max(16) {
        m.shrink_to_fit();
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_storage::matcher::MatchOp;

    fn add(h: &mut Head, labels: &[(&str, &str)]) -> SeriesId {
        let mut scratch = vec![];
        let hash = label_hash_str(labels, &mut scratch);
        h.get_or_create(labels, hash).0
    }

    #[test]
    fn select_with_all_matcher_types() {
        let mut h = Head::default();
        let a = add(&mut h, &[("__name__", "up"), ("job", "api")]);
        let b = add(&mut h, &[("__name__", "up"), ("job", "web")]);
        let c = add(&mut h, &[("__name__", "up")]);
        assert_eq!(
            add(&mut h, &[("__name__", "up"), ("job", "api")]),
            a,
            "found again"
        );
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        let name = m(MatchOp::Equal, "__name__", "up");
        assert_eq!(h.select(std::slice::from_ref(&name)), vec![a, b, c]);
        assert_eq!(
            h.select(&[name.clone(), m(MatchOp::Equal, "job", "web")]),
            vec![b]
        );
        assert_eq!(
            h.select(&[name.clone(), m(MatchOp::NotEqual, "job", "web")]),
            vec![a, c]
        );
        assert_eq!(
            h.select(&[name.clone(), m(MatchOp::Regex, "job", "a.*|w.*")]),
            vec![a, b]
        );
        assert_eq!(
            h.select(&[name.clone(), m(MatchOp::NotRegex, "job", "a.*")]),
            vec![b, c]
        );
        assert_eq!(
            h.select(&[name.clone(), m(MatchOp::Equal, "job", "")]),
            vec![c]
        );
        assert_eq!(
            h.select(&[m(MatchOp::Equal, "nope", "x")]),
            Vec::<SeriesId>::new()
        );
        assert_eq!(h.labels(b).to_string(), r#"{__name__="up", job="web"}"#);
    }
}
