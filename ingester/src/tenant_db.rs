//! One tenant's head and WAL, and how a decoded write request is applied to them.
//!
//! A request is applied under the head's write lock: series are found or created, samples
//! appended (rejecting out-of-order ones), then the new series, samples and metadata go to the
//! WAL in one write. The response is only sent after that write, so everything acknowledged
//! is in the WAL. Series ids in the WAL are head ids: replay creates series in record order.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

use muninn_proto::histogram_wire::decode_histogram;
use muninn_proto::write_view::WriteRequestView;
use muninn_storage::histogram::{HistSample, from_wire};
use parking_lot::{Mutex, RwLock};

use crate::Result;
use crate::head::{
    AppendOutcome, ChunkRef, ChunkStore, Head, MetricMeta, SeriesId, UnshippedSeries, label_hash,
    label_hash_str,
};
use crate::validate::{Limits, Reason, validate_labels};
use crate::wal::record::{self, Record};
use crate::wal::{FsyncPolicy, ReplayReport, Wal, WalStats};

/// How many rejections a response describes in detail.
const MAX_REPORTED_REASONS: usize = 3;

/// The oldest timestamp accepted at all (the Unix epoch): older ones are refused, which
/// also keeps every time computation (spans, range alignment) far from overflow.
pub const MIN_TIMESTAMP_MS: i64 = 0;

/// Largest gap between the series a head holds and a series id a WAL record names that replay
/// fills with empty slots; beyond it the record is corrupt.
const MAX_WAL_ID_GAP: usize = 1 << 20;

/// The time bounds a push is checked against.
#[derive(Clone, Copy, Debug)]
pub struct TimeBounds {
    /// The ingester's clock.
    pub now_ms: i64,
    /// Samples newer than `now_ms` plus this are refused (`too_far_in_future`).
    pub grace_ms: i64,
    /// Samples older than the head's newest sample minus this are refused
    /// (`sample_too_old`): half the block range, as Prometheus.
    pub too_old_window_ms: i64,
    /// The tenant's `out_of_order_time_window` (0: none): samples older than their series'
    /// newest but within this of the tenant's newest are inserted in order.
    pub ooo_window_ms: i64,
}

/// The series limits one ingester enforces for a tenant: its share of the global limits
/// (0: none).
#[derive(Clone, Copy, Debug, Default)]
pub struct SeriesLimits {
    pub per_user: u64,
    pub per_metric: u64,
    /// Exemplars kept in memory (0: none stored).
    pub exemplars: usize,
}

/// Series whose samples up to a timestamp were shipped at `at`; dropped from the head once
/// they have been retained long enough.
struct ShipEvent {
    at: Instant,
    marks: Vec<(SeriesId, i64)>,
}

/// A tenant's storage.
///
/// Locking rules: pushes take the head's write lock for a whole request, including the WAL
/// write; readers and block snapshots take the read lock; nothing does I/O on object storage
/// or builds blocks under either. Cuts of one tenant are serialized by `cut_lock`.
pub struct TenantDb {
    pub head: RwLock<Head>,
    wal: Mutex<Wal>,
    /// Held for a whole cut (snapshot, build, upload, index, mark), so cuts of one tenant
    /// never run at once.
    pub cut_lock: tokio::sync::Mutex<()>,
    /// Shipped data waiting for `--ingester.retain-after-ship` before it leaves the head.
    shipped: Mutex<VecDeque<ShipEvent>>,
    /// Samples ingested, per second, over the last seconds (the tenant's ingestion rate).
    pub rate: Mutex<RateWindow>,
    /// The tenant's exemplars (a bounded ring buffer, logged to the WAL).
    pub exemplars: Mutex<crate::exemplars::ExemplarStore>,
}

/// Samples per second over the last [`RateWindow::SECONDS`] whole seconds.
#[derive(Default)]
pub struct RateWindow {
    buckets: [(u64, u64); RateWindow::SECONDS as usize + 1],
    pub total: u64,
}

impl RateWindow {
    pub const SECONDS: u64 = 10;

    fn now_s() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    pub fn add(&mut self, n: u64) {
        let s = Self::now_s();
        let b = &mut self.buckets[(s % (Self::SECONDS + 1)) as usize];
        if b.0 != s {
            *b = (s, 0);
        }
        b.1 += n;
        self.total += n;
    }

    /// Samples per second over the last whole seconds (the current one excluded).
    pub fn rate(&self) -> f64 {
        let s = Self::now_s();
        let sum: u64 = self
            .buckets
            .iter()
            .filter(|(sec, _)| *sec < s && *sec + Self::SECONDS >= s)
            .map(|b| b.1)
            .sum();
        sum as f64 / Self::SECONDS as f64
    }
}

/// What happened to one write request.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// Float samples and histograms stored.
    pub ingested_samples: u64,
    /// Of those, histograms.
    pub ingested_histograms: u64,
    pub rejected_samples: u64,
    pub rejected_series: u64,
    /// Metadata entries dropped (too long).
    pub rejected_metadata: u64,
    pub new_series: u64,
    /// Rejected samples per reason.
    pub by_reason: HashMap<Reason, u64>,
    /// The first few rejections: reason and the series it concerns.
    pub first: Vec<(Reason, String)>,
    pub wal: WalStats,
    /// Exemplars stored, and those dropped per reason (`exemplar_out_of_order`,
    /// `exemplar_labels_too_long`).
    pub exemplars_stored: u64,
    pub exemplars_dropped: HashMap<&'static str, u64>,
}

impl PushOutcome {
    fn reject(&mut self, reason: Reason, samples: u64, series: impl FnOnce() -> String) {
        self.rejected_samples += samples;
        *self.by_reason.entry(reason).or_default() += samples;
        if self.first.len() < MAX_REPORTED_REASONS {
            self.first.push((reason, series()));
        }
    }
}

/// The series limit a new series with these labels would break, with the local limit.
fn series_limit_reached(
    head: &Head,
    labels: &[(&str, &str)],
    limits: SeriesLimits,
) -> Option<(Reason, u64)> {
    if limits.per_user > 0 && head.live_series() as u64 >= limits.per_user {
        return Some((Reason::PerUserSeriesLimit, limits.per_user));
    }
    if limits.per_metric > 0 {
        let name = labels.iter().find(|(n, _)| *n == "__name__").map(|l| l.1)?;
        if head.metric_series(name) as u64 >= limits.per_metric {
            return Some((Reason::PerMetricSeriesLimit, limits.per_metric));
        }
    }
    None
}

/// An iterator with a known length, for record encoders that write the count first.
struct ExactLen<I>(I, usize);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let v = self.0.next()?;
        self.1 -= 1;
        Some(v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

fn metric_type_name(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

fn series_text(labels: &[muninn_proto::write_view::LabelRef<'_>]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .take(12)
        .map(|l| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(l.name),
                String::from_utf8_lossy(l.value)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The tenant's closed head chunks, under its WAL directory.
pub const CHUNKS_DIR: &str = "chunks_head";

mod replay_state;
use replay_state::{Cursors, IdMap, PendingChunks};

impl TenantDb {
    /// Opens (replaying) the WAL in `dir`. Replayed samples outside the time bounds
    /// (negative, or newer than `newest_ok`: written before those bounds existed, or with
    /// another clock) are skipped with a warning, so they cannot blackhole the tenant.
    pub fn open(dir: &Path, fsync: FsyncPolicy, newest_ok: i64) -> Result<(Self, ReplayReport)> {
        crate::wal::create_dir_durable(dir)?;
        let mut head = Head::with_chunks(ChunkStore::open(&dir.join(CHUNKS_DIR))?);
        let mut ids = IdMap::default();
        // Closed chunks written since the checkpoint the WAL starts with (all of them if it
        // starts with none), by series: attached before the series' samples replay, so the
        // samples they hold are skipped. Read at the first record.
        let mut pending: Option<PendingChunks> = None;
        let mut skipped = 0u64;
        // Per series, the newest timestamp replayed so far: a sample older than it was
        // written out of order, and may be missing from a stored chunk that covers it (an
        // older version of a chunk whose rewrite did not reach the disk), so it is checked
        // against the chunk instead of skipped.
        let mut cursors = Cursors::default();
        let mut scratch = Vec::new();
        let mut unknown_refs = 0u64;
        let mut corrupt_ids = 0u64;
        let mut out_of_bounds = 0u64;
        let mut shipped: HashMap<SeriesId, i64> = HashMap::new();
        let mut exemplars = crate::exemplars::ExemplarStore::default();
        let (wal, mut report) = Wal::open(dir, fsync, |rec| {
            let pending = pending.get_or_insert_with(|| {
                let from = match &rec {
                    Record::ChunkMark(f, o) => Some((*f, *o)),
                    _ => None,
                };
                PendingChunks::load(&head, from, MIN_TIMESTAMP_MS..=newest_ok)
            });
            match rec {
                Record::ChunkMark(..) => {}
                Record::HeadChunks(series) => {
                    for (wal_id, refs) in series {
                        let Some(id) = ids.get(wal_id) else {
                            continue;
                        };
                        for r in refs.into_iter().filter_map(ChunkRef::from_u64) {
                            if let Some(c) = head.stored_chunk(r) {
                                out_of_bounds += head.attach_chunk(
                                    id,
                                    wal_id,
                                    &c,
                                    false,
                                    &(MIN_TIMESTAMP_MS..=newest_ok),
                                );
                                cursors.see(id, c.max_t);
                            }
                        }
                        pending.attach(&mut head, wal_id, id);
                        cursors.reset(id);
                    }
                }
                Record::Exemplars(entries) => {
                    for (wal_id, t, v, labels) in entries {
                        if let Some(id) = ids.get(wal_id) {
                            exemplars.replay(
                                id,
                                crate::exemplars::Exemplar {
                                    labels,
                                    value: v,
                                    timestamp_ms: t,
                                },
                            );
                        }
                    }
                }
                Record::Series(series) => {
                    for (wal_id, labels) in series {
                        // Every stored series has labels (an empty set marks a collected slot);
                        // a record without any is corrupt.
                        if labels.is_empty() {
                            corrupt_ids += 1;
                            continue;
                        }
                        let pairs: Vec<(&str, &str)> = labels
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str()))
                            .collect();
                        let hash = label_hash_str(&pairs, &mut scratch);
                        // Keep the WAL's ids (later records refer to them), even across
                        // garbage-collected gaps.
                        let id = match head.find(&pairs, hash) {
                            Some(id) => id,
                            // Ids are dense (one per series ever created); a far larger one is
                            // a corrupt record, which must not make replay allocate the gap.
                            None if wal_id as usize > head.num_series() + MAX_WAL_ID_GAP => {
                                corrupt_ids += 1;
                                head.create(&pairs, hash)
                            }
                            None => head.create_at(wal_id, &pairs, hash),
                        };
                        ids.insert(wal_id, id);
                        // Chunks written after the checkpoint, before the series' samples
                        // (a checkpoint's chunk list, if one follows, goes in before them).
                        pending.attach(&mut head, wal_id, id);
                        cursors.reset(id);
                    }
                }
                Record::Samples(samples) => {
                    for (wal_id, t, v) in samples {
                        if !(MIN_TIMESTAMP_MS..=newest_ok).contains(&t) {
                            out_of_bounds += 1;
                            continue;
                        }
                        match ids.get(wal_id) {
                            Some(id) => {
                                let stored = cursors.stored(&head, id, t);
                                if stored == Some(true) {
                                    skipped += 1;
                                    continue;
                                }
                                if stored.is_none() {
                                    // An insert may have reshaped the series' chunks.
                                    cursors.reset(id);
                                }
                                // Out-of-order samples in the WAL were accepted in their window.
                                if head.append(id, t, v) == AppendOutcome::OutOfOrder
                                    && head.insert(id, t, v) == AppendOutcome::Appended
                                    && let Some(m) = shipped.get_mut(&id)
                                    && *m >= t
                                {
                                    *m = t - 1;
                                }
                            }
                            None => unknown_refs += 1,
                        }
                    }
                }
                Record::Histograms(entries) => {
                    for (wal_id, t, h) in entries {
                        if !(MIN_TIMESTAMP_MS..=newest_ok).contains(&t) {
                            out_of_bounds += 1;
                            continue;
                        }
                        // A record with a valid checksum but an inconsistent histogram is corrupt.
                        let valid = muninn_storage::is_stale_nan(h.sum())
                            || match &h {
                                HistSample::Int(x) => x.validate().is_ok(),
                                HistSample::Float(x) => x.validate().is_ok(),
                            };
                        if !valid {
                            corrupt_ids += 1;
                            continue;
                        }
                        match ids.get(wal_id) {
                            // Replayed in order; a duplicate (a retried push) is skipped.
                            Some(id) => {
                                head.replay_hist(id, t, &h);
                            }
                            None => unknown_refs += 1,
                        }
                    }
                }
                Record::Shipped(marks) => {
                    for (wal_id, t) in marks {
                        if let Some(id) = ids.get(wal_id) {
                            shipped.insert(id, t);
                        }
                    }
                }
                Record::Metadata(entries) => {
                    for (family, metric_type, help, unit) in entries {
                        head.set_metadata(
                            &family,
                            MetricMeta {
                                metric_type,
                                help,
                                unit,
                            },
                        );
                    }
                }
            }
        })?;
        // Stored chunks of series no record named after their creation.
        if let Some(mut pending) = pending {
            pending.attach_rest(&mut head, &ids);
            out_of_bounds += pending.out_of_bounds;
        }
        // Files no series uses stay until the next checkpoint: the one on disk may still name
        // their chunks, and a crash before it replays them again.
        head.flush_chunks();
        head.release_chunk_pages();
        report.samples_in_chunk_files = skipped;
        let chunk_stats = head.chunk_stats();
        tracing::info!(dir = %dir.display(), samples_in_chunk_files = skipped, chunk_files = chunk_stats.files, "wal replayed");
        if out_of_bounds > 0 {
            tracing::warn!(dir = %dir.display(), samples = out_of_bounds, newest_ok, "skipped wal samples outside the time bounds");
        }
        if corrupt_ids > 0 {
            tracing::warn!(dir = %dir.display(), series = corrupt_ids, "wal series records with implausible ids (given new ids) or no labels (skipped)");
        }
        if unknown_refs > 0 {
            tracing::warn!(dir = %dir.display(), samples = unknown_refs, "wal samples referred to unknown series and were skipped");
        }
        // Shipped data replayed from the WAL is retained again from now on.
        let marks: Vec<(SeriesId, i64)> = shipped.into_iter().collect();
        head.mark_shipped(&marks);
        let mut events = VecDeque::new();
        if !marks.is_empty() {
            events.push_back(ShipEvent {
                at: Instant::now(),
                marks,
            });
        }
        Ok((
            Self {
                head: RwLock::new(head),
                wal: Mutex::new(wal),
                cut_lock: tokio::sync::Mutex::new(()),
                shipped: Mutex::new(events),
                rate: Mutex::new(RateWindow::default()),
                exemplars: Mutex::new(exemplars),
            },
            report,
        ))
    }

    /// Not yet shipped samples of every series in `[min_t, max_t)`.
    pub fn snapshot_unshipped(&self, min_t: i64, max_t: i64) -> Vec<UnshippedSeries> {
        self.snapshot_next(|_| Some((min_t, max_t, max_t)))
            .map(|(_, _, s)| s)
            .unwrap_or_default()
    }

    /// Chooses a range with `choose` (`(start, end, snapshot end)`) and snapshots the
    /// unshipped samples in `[start, snapshot end)` atomically: pushes wait meanwhile, and
    /// out-of-order samples inserted from then on are remembered so the cut's marks stop
    /// below them ([`TenantDb::mark_shipped`]).
    pub fn snapshot_next(
        &self,
        choose: impl FnOnce(&Head) -> Option<(i64, i64, i64)>,
    ) -> Option<(i64, i64, Vec<UnshippedSeries>)> {
        let mut head = self.head.write();
        let (start, end, snap_end) = choose(&head)?;
        head.start_snapshot();
        let head = parking_lot::RwLockWriteGuard::downgrade(head);
        Some((start, end, head.snapshot_unshipped(start, snap_end)))
    }

    /// After a block holding these samples is uploaded and indexed: marks them shipped (so no
    /// later cut ships them again), logs the marks to the WAL (so a restart does not either),
    /// and schedules their removal from the head after the retention. A WAL failure here is
    /// logged, not returned: the block is already indexed, and at worst a restart ships the
    /// same samples again, which readers and the compactor deduplicate.
    pub fn mark_shipped(&self, mut marks: Vec<(SeriesId, i64)>) {
        let mut head = self.head.write();
        // Out-of-order samples that arrived during the cut are not in its block.
        head.cap_marks(&mut marks);
        head.mark_shipped(&marks);
        if let Err(e) = self
            .wal
            .lock()
            .write(|fb| fb.frame(|b| record::encode_shipped(&marks, b)))
        {
            tracing::error!(error = %e, "logging shipped marks failed");
        }
        drop(head);
        self.shipped.lock().push_back(ShipEvent {
            at: Instant::now(),
            marks,
        });
    }

    /// Whether some shipped data was shipped at or before `shipped_before`.
    pub fn has_shipped_due(&self, shipped_before: Instant) -> bool {
        self.shipped
            .lock()
            .front()
            .is_some_and(|e| e.at <= shipped_before)
    }

    /// Drops from the head the data shipped at or before `shipped_before`, then replaces the
    /// WAL with a checkpoint of what the head still holds. Returns the WAL segments removed,
    /// or `None` if nothing was due.
    pub fn drop_shipped(&self, shipped_before: Instant) -> Result<Option<usize>> {
        let due: Vec<ShipEvent> = {
            let mut q = self.shipped.lock();
            let n = q.iter().take_while(|e| e.at <= shipped_before).count();
            q.drain(..n).collect()
        };
        if due.is_empty() {
            return Ok(None);
        }
        let marks: Vec<(SeriesId, i64)> = due.into_iter().flat_map(|e| e.marks).collect();
        self.truncate(|head| head.drop_shipped(&marks)).map(Some)
    }

    /// Applies `drop` to the head (it returns the series it garbage-collected), then
    /// replaces the WAL with a checkpoint of what the head still holds, written in batches of
    /// series so memory stays bounded. Returns the WAL segments removed. Writes wait meanwhile.
    /// Once the checkpoint is written no WAL record names the collected series, so their
    /// slots are recycled for new series (not before: a failed checkpoint leaves the old
    /// segments, which still name them, and the slots wait for the next checkpoint).
    fn truncate(&self, drop: impl FnOnce(&mut Head) -> Vec<SeriesId>) -> Result<usize> {
        // A batch holds at most this many series, or this many bytes of chunks (decoded, a
        // few times more), whichever comes first: memory stays flat however big the head.
        const BATCH_SERIES: u32 = 10_000;
        const BATCH_CHUNK_BYTES: usize = 256 << 10;
        let mut head = self.head.write();
        let collected = drop(&mut head);
        if !collected.is_empty() {
            tracing::info!(
                series = collected.len(),
                symbols = head.num_symbols(),
                "garbage-collected series without samples"
            );
            // Their exemplars go too, and their marks in ship events not yet due: neither the
            // checkpoint nor a recycled id may carry them (a later event naming a recycled id
            // would drop the new series' shipped samples before their retention is over).
            let set: std::collections::HashSet<SeriesId> = collected.iter().copied().collect();
            self.exemplars.lock().forget(|id| set.contains(&id));
            for e in self.shipped.lock().iter_mut() {
                e.marks.retain(|(id, _)| !set.contains(id));
            }
        }
        let n = head.num_series() as u32;
        let mut wal = self.wal.lock();
        let first_kept = wal.start_checkpoint()?;
        // Chunk files first: the checkpoint names their chunks instead of copying samples.
        let mark = head.sync_chunks()?;
        wal.write(|fb| fb.frame(|b| record::encode_chunk_mark(mark.0, mark.1, b)))?;
        let mut start = 0;
        while start < n {
            let mut end = start;
            let mut bytes = 0;
            while end < n && end - start < BATCH_SERIES && bytes < BATCH_CHUNK_BYTES {
                bytes += head.series_chunk_bytes(end);
                end += 1;
            }
            let data = head.checkpoint_data(start..end);
            wal.write(|fb| {
                let series: Vec<(u32, Vec<(&str, &str)>)> = data
                    .iter()
                    .map(|c| {
                        (
                            c.id,
                            c.labels
                                .iter()
                                .map(|(n, v)| (n.as_str(), v.as_str()))
                                .collect(),
                        )
                    })
                    .collect();
                fb.frame(|b| {
                    record::encode_series(series.iter().map(|(id, l)| (*id, l.as_slice())), b)
                });
                let chunks: Vec<(u32, Vec<u64>)> = data
                    .iter()
                    .filter(|c| !c.chunks.is_empty())
                    .map(|c| (c.id, c.chunks.iter().map(|r| r.to_u64()).collect()))
                    .collect();
                if !chunks.is_empty() {
                    fb.frame(|b| {
                        record::encode_head_chunks(
                            chunks.iter().map(|(id, r)| (*id, r.as_slice())),
                            b,
                        )
                    });
                }
                let samples: Vec<(u32, i64, f64)> = data
                    .iter()
                    .flat_map(|c| c.samples.iter().map(move |&(t, v)| (c.id, t, v)))
                    .collect();
                if !samples.is_empty() {
                    fb.frame(|b| record::encode_samples(&samples, b));
                }
                let hists: Vec<(u32, i64, &HistSample)> = data
                    .iter()
                    .flat_map(|c| c.histograms.iter().map(move |(t, h)| (c.id, *t, h)))
                    .collect();
                if !hists.is_empty() {
                    fb.frame(|b| record::encode_histograms(hists.iter().copied(), b));
                }
                let shipped: Vec<(u32, i64)> = data
                    .iter()
                    .filter(|c| c.shipped_t != crate::head::NOTHING_SHIPPED)
                    .map(|c| (c.id, c.shipped_t))
                    .collect();
                if !shipped.is_empty() {
                    fb.frame(|b| record::encode_shipped(&shipped, b));
                }
            })?;
            start = end;
        }
        let meta = head.metadata(None);
        let md: Vec<(&str, &str, &str, &str)> = meta
            .iter()
            .map(|(f, m)| {
                (
                    f.as_str(),
                    m.metric_type.as_str(),
                    m.help.as_str(),
                    m.unit.as_str(),
                )
            })
            .collect();
        if !md.is_empty() {
            wal.write(|fb| fb.frame(|b| record::encode_metadata(&md, b)))?;
        }
        let exemplars = self.exemplars.lock();
        if !exemplars.is_empty() {
            wal.write(|fb| {
                fb.frame(|b| {
                    record::encode_exemplars(
                        exemplars
                            .all()
                            .map(|(id, e)| (*id, e.timestamp_ms, e.value, e.labels.as_slice())),
                        b,
                    )
                })
            })?;
        }
        std::mem::drop(exemplars);
        let removed = wal.finish_checkpoint(first_kept)?;
        head.recycle_pending();
        // Chunk files only dropped chunks used: no checkpoint names them any more.
        head.drop_unreferenced_chunks();
        Ok(removed)
    }

    /// Stores the exemplars of request series `s` (head series `id`); those stored are
    /// appended to `logged` for the WAL.
    fn add_exemplars(
        &self,
        req: &WriteRequestView<'_>,
        s: &muninn_proto::write_view::SeriesRef,
        id: SeriesId,
        capacity: usize,
        logged: &mut Vec<(u32, crate::exemplars::Exemplar)>,
        dropped: &mut HashMap<&'static str, u64>,
    ) {
        let mut store = self.exemplars.lock();
        for e in req.series_exemplars(s) {
            let mut labels = Vec::with_capacity((e.labels.end - e.labels.start) as usize);
            for l in req.exemplar_labels(e) {
                if let (Ok(n), Ok(v)) = (std::str::from_utf8(l.name), std::str::from_utf8(l.value))
                {
                    labels.push((n.to_owned(), v.to_owned()));
                }
            }
            let ex = crate::exemplars::Exemplar {
                labels,
                value: e.value,
                timestamp_ms: e.timestamp_ms,
            };
            match store.add(id, ex.clone(), capacity) {
                crate::exemplars::Added::Stored => logged.push((id, ex)),
                crate::exemplars::Added::OutOfOrder => {
                    *dropped.entry("exemplar_out_of_order").or_default() += 1
                }
                crate::exemplars::Added::TooLong => {
                    *dropped.entry("exemplar_labels_too_long").or_default() += 1
                }
                crate::exemplars::Added::Duplicate | crate::exemplars::Added::Disabled => {}
            }
        }
    }

    /// Applies a decoded request. Invalid series and samples are counted in the outcome;
    /// `Err` only for our own faults (WAL I/O), after which the client should retry.
    pub fn push(
        &self,
        req: &WriteRequestView<'_>,
        limits: &Limits,
        series_limits: SeriesLimits,
        bounds: &TimeBounds,
    ) -> Result<PushOutcome> {
        let mut out = PushOutcome::default();
        let mut labels_buf: Vec<(&str, &str)> = Vec::with_capacity(16);
        let mut scratch = Vec::with_capacity(256);
        let mut new_series: Vec<(u32, Vec<(&str, &str)>)> = Vec::new();
        let mut samples: Vec<(u32, i64, f64)> = Vec::with_capacity(req.samples.len());
        let mut new_exemplars: Vec<(u32, crate::exemplars::Exemplar)> = Vec::new();
        let mut hist_records: Vec<(u32, i64, HistSample)> = Vec::new();
        let mut head = self.head.write();
        for s in &req.series {
            let lbls = req.series_labels(s);
            // Native histograms: decoded and validated first; an invalid one is refused
            // naming why, the rest of the series stays.
            let mut hists: Vec<(i64, HistSample)> = Vec::new();
            for m in req.series_histograms(s) {
                let decoded = decode_histogram(m)
                    .map_err(|e| e.to_string())
                    .and_then(|w| {
                        from_wire(&w)
                            .map(|h| (w.timestamp_ms, h))
                            .map_err(|e| e.to_string())
                    });
                match decoded {
                    Ok(x) => hists.push(x),
                    Err(why) => out.reject(Reason::NativeHistogram, 1, || {
                        format!("{} ({why})", series_text(lbls))
                    }),
                }
            }
            hists.sort_by_key(|h| h.0);
            let ss = req.series_samples(s);
            if ss.is_empty() && hists.is_empty() {
                // Exemplars sent apart from their samples (as Prometheus sends them) belong to
                // a series the head already holds; others are dropped.
                if s.exemplars > 0
                    && series_limits.exemplars > 0
                    && validate_labels(lbls, limits, &mut labels_buf).is_ok()
                {
                    let hash = label_hash_str(&labels_buf, &mut scratch);
                    if let Some(id) = head.find(&labels_buf, hash) {
                        self.add_exemplars(
                            req,
                            s,
                            id,
                            series_limits.exemplars,
                            &mut new_exemplars,
                            &mut out.exemplars_dropped,
                        );
                    }
                }
                continue;
            }
            // Fast path: a label set already in the head was validated when it was created, so
            // an exact byte match skips validation (sets with empty values take the slow path,
            // as those labels are dropped before storing).
            let existing = if lbls.iter().all(|l| !l.value.is_empty()) {
                let pairs = lbls.iter().map(|l| (l.name, l.value));
                let hash = label_hash(pairs.clone(), &mut scratch);
                head.find_bytes(pairs, lbls.len(), hash)
            } else {
                None
            };
            // Time bounds first, as Prometheus: a series none of whose samples may be stored
            // is not created (junk timestamps must not grow the head or the WAL).
            let newest_ok = bounds.now_ms.saturating_add(bounds.grace_ms);
            let window = bounds.too_old_window_ms.max(bounds.ooo_window_ms);
            let appendable_min = head.appendable_min(window);
            let out_of_bounds = |t: i64| -> Option<Reason> {
                if t < MIN_TIMESTAMP_MS {
                    Some(Reason::TimestampOutOfRange)
                } else if t > newest_ok {
                    Some(Reason::TooFarInFuture)
                } else if appendable_min.is_some_and(|min| t < min) {
                    Some(Reason::TooOld)
                } else {
                    None
                }
            };
            if existing.is_none()
                && ss.iter().all(|x| out_of_bounds(x.timestamp_ms).is_some())
                && hists.iter().all(|(t, _)| out_of_bounds(*t).is_some())
            {
                for t in ss
                    .iter()
                    .map(|x| x.timestamp_ms)
                    .chain(hists.iter().map(|h| h.0))
                {
                    if let Some(reason) = out_of_bounds(t) {
                        out.reject(reason, 1, || series_text(lbls));
                    }
                }
                continue;
            }
            let id = match existing {
                Some(id) => id,
                None => {
                    if let Err(reason) = validate_labels(lbls, limits, &mut labels_buf) {
                        out.rejected_series += 1;
                        out.reject(reason, (ss.len() + hists.len()) as u64, || {
                            series_text(lbls)
                        });
                        continue;
                    }
                    let hash = label_hash_str(&labels_buf, &mut scratch);
                    match head.find(&labels_buf, hash) {
                        Some(id) => id,
                        None => {
                            if let Some((reason, limit)) =
                                series_limit_reached(&head, &labels_buf, series_limits)
                            {
                                out.rejected_series += 1;
                                out.reject(reason, (ss.len() + hists.len()) as u64, || {
                                    format!(
                                        "{} (limit on this ingester: {limit})",
                                        series_text(lbls)
                                    )
                                });
                                continue;
                            }
                            let id = head.create(&labels_buf, hash);
                            new_series.push((id, labels_buf.clone()));
                            out.new_series += 1;
                            id
                        }
                    }
                }
            };
            if series_limits.exemplars > 0 && s.exemplars > 0 {
                self.add_exemplars(
                    req,
                    s,
                    id,
                    series_limits.exemplars,
                    &mut new_exemplars,
                    &mut out.exemplars_dropped,
                );
            }
            for sample in ss {
                let t = sample.timestamp_ms;
                // The head's newest sample may have moved within this request.
                let reason = out_of_bounds(t).or_else(|| {
                    head.appendable_min(window)
                        .is_some_and(|min| t < min)
                        .then_some(Reason::TooOld)
                });
                if let Some(reason) = reason {
                    out.reject(reason, 1, || series_text(lbls));
                    continue;
                }
                let mut appended = head.append(id, t, sample.value);
                if appended == AppendOutcome::OutOfOrder
                    && bounds.ooo_window_ms > 0
                    && head
                        .appendable_min(bounds.ooo_window_ms)
                        .is_some_and(|min| t >= min)
                {
                    appended = head.insert(id, t, sample.value);
                }
                match appended {
                    AppendOutcome::Appended => {
                        samples.push((id, sample.timestamp_ms, sample.value));
                        out.ingested_samples += 1;
                    }
                    // Logged again: if this is a sender's retry after a failed WAL write, the
                    // first copy only reached memory. Replay treats it as the duplicate it is.
                    AppendOutcome::Duplicate => {
                        samples.push((id, sample.timestamp_ms, sample.value));
                        out.ingested_samples += 1;
                    }
                    AppendOutcome::OutOfOrder => {
                        out.reject(Reason::OutOfOrder, 1, || series_text(lbls))
                    }
                    AppendOutcome::ConflictingDuplicate => {
                        out.reject(Reason::DuplicateTimestamp, 1, || series_text(lbls))
                    }
                }
            }
            for (t, h) in hists {
                let reason = out_of_bounds(t).or_else(|| {
                    head.appendable_min(window)
                        .is_some_and(|min| t < min)
                        .then_some(Reason::TooOld)
                });
                if let Some(reason) = reason {
                    out.reject(reason, 1, || series_text(lbls));
                    continue;
                }
                match head.append_hist(id, t, &h) {
                    // A duplicate is logged again, as for float samples.
                    AppendOutcome::Appended | AppendOutcome::Duplicate => {
                        hist_records.push((id, t, h));
                        out.ingested_samples += 1;
                        out.ingested_histograms += 1;
                    }
                    AppendOutcome::OutOfOrder => {
                        out.reject(Reason::OutOfOrder, 1, || series_text(lbls))
                    }
                    AppendOutcome::ConflictingDuplicate => {
                        out.reject(Reason::DuplicateTimestamp, 1, || series_text(lbls))
                    }
                }
            }
        }
        let mut metadata: Vec<(&str, &str, &str, &str)> = Vec::new();
        for m in &req.metadata {
            let (Ok(family), Ok(help), Ok(unit)) = (
                std::str::from_utf8(m.family),
                std::str::from_utf8(m.help),
                std::str::from_utf8(m.unit),
            ) else {
                continue;
            };
            if family.is_empty() {
                continue;
            }
            let max = limits.max_metadata_length;
            if family.len() > max || help.len() > max || unit.len() > max {
                out.rejected_metadata += 1;
                if out.first.len() < MAX_REPORTED_REASONS {
                    out.first
                        .push((Reason::MetadataTooLong, format!("metric family {family:?}")));
                }
                continue;
            }
            let meta = MetricMeta {
                metric_type: metric_type_name(m.metric_type).to_owned(),
                help: help.to_owned(),
                unit: unit.to_owned(),
            };
            if head.metadata(Some(family)).first().map(|(_, m)| m) != Some(&meta) {
                head.set_metadata(family, meta);
                metadata.push((family, metric_type_name(m.metric_type), help, unit));
            }
        }
        // Series whose record an earlier, failed WAL write lost go out again first, so no
        // later sample record refers to a series the WAL does not know.
        let retry: Vec<(u32, Vec<(String, String)>)> = head
            .take_unlogged()
            .into_iter()
            .map(|id| {
                (
                    id,
                    head.labels(id)
                        .0
                        .into_iter()
                        .map(|l| (l.name, l.value))
                        .collect(),
                )
            })
            .collect();
        let retry_refs: Vec<(u32, Vec<(&str, &str)>)> = retry
            .iter()
            .map(|(id, l)| {
                (
                    *id,
                    l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
                )
            })
            .collect();
        let written = self.wal.lock().write(|fb| {
            if !retry_refs.is_empty() || !new_series.is_empty() {
                let all = retry_refs.iter().chain(new_series.iter());
                let n = retry_refs.len() + new_series.len();
                fb.frame(|b| {
                    record::encode_series(ExactLen(all.map(|(id, l)| (*id, l.as_slice())), n), b)
                });
            }
            if !samples.is_empty() {
                fb.frame(|b| record::encode_samples(&samples, b));
            }
            if !hist_records.is_empty() {
                fb.frame(|b| {
                    record::encode_histograms(hist_records.iter().map(|(id, t, h)| (*id, *t, h)), b)
                });
            }
            if !new_exemplars.is_empty() {
                fb.frame(|b| {
                    record::encode_exemplars(
                        new_exemplars
                            .iter()
                            .map(|(id, e)| (*id, e.timestamp_ms, e.value, e.labels.as_slice())),
                        b,
                    )
                });
            }
            if !metadata.is_empty() {
                fb.frame(|b| record::encode_metadata(&metadata, b));
            }
        });
        // Buffered closed chunks go to their file, after the WAL write (a full buffer was
        // written earlier: a crash then may keep chunks of this unacknowledged request, as it
        // keeps its samples in the head).
        head.flush_chunks();
        match written {
            Ok(stats) => {
                out.wal = stats;
                out.exemplars_stored = new_exemplars.len() as u64;
                self.rate.lock().add(out.ingested_samples);
            }
            Err(e) => {
                head.mark_unlogged(
                    retry
                        .iter()
                        .map(|(id, _)| *id)
                        .chain(new_series.iter().map(|(id, _)| *id)),
                );
                return Err(e);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;

    const BOUNDS: TimeBounds = TimeBounds {
        now_ms: 10_000_000,
        grace_ms: 600_000,
        too_old_window_ms: 3_600_000,
        ooo_window_ms: 0,
    };

    /// [`BOUNDS`] with a one-hour out-of-order window.
    const OOO_BOUNDS: TimeBounds = TimeBounds {
        ooo_window_ms: 3_600_000,
        ..BOUNDS
    };

    fn push_with(db: &TenantDb, name: &str, t: i64, v: f64, bounds: &TimeBounds) -> PushOutcome {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: name.into(),
                }],
                samples: vec![Sample {
                    value: v,
                    timestamp: t,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        push_request(db, &req, bounds)
    }

    fn push_request(db: &TenantDb, req: &WriteRequest, bounds: &TimeBounds) -> PushOutcome {
        let bytes = req.encode_to_vec();
        let view = WriteRequestView::decode(&bytes).unwrap();
        db.push(&view, &Limits::default(), SeriesLimits::default(), bounds)
            .unwrap()
    }

    fn push(db: &TenantDb, name: &str, t: i64, v: f64) {
        let out = push_with(db, name, t, v, &BOUNDS);
        assert_eq!(out.rejected_samples, 0, "{:?}", out.first);
    }

    mod head_chunk_tests;

    #[test]
    fn histograms_and_floats_of_one_request_survive_replay() {
        use muninn_proto::prometheus::{BucketSpan, Histogram, histogram};
        let dir = tempfile::tempdir().unwrap();
        let series = |h: Option<i64>, f: Option<i64>| TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "mixed".into(),
            }],
            samples: f
                .map(|t| Sample {
                    value: 1.0,
                    timestamp: t,
                })
                .into_iter()
                .collect(),
            histograms: h
                .map(|t| Histogram {
                    count: Some(histogram::Count::CountInt(2)),
                    sum: 3.0,
                    positive_spans: vec![BucketSpan {
                        offset: 0,
                        length: 1,
                    }],
                    positive_deltas: vec![2],
                    timestamp: t,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        {
            let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
            // One request: the series' histogram at 10, then its float at 20 (two entries).
            let req = WriteRequest {
                timeseries: vec![series(Some(10), None), series(None, Some(20))],
                metadata: vec![],
            };
            let bytes = req.encode_to_vec();
            let view = WriteRequestView::decode(&bytes).unwrap();
            let out = db
                .push(&view, &Limits::default(), SeriesLimits::default(), &BOUNDS)
                .unwrap();
            assert_eq!((out.ingested_samples, out.rejected_samples), (2, 0));
            assert_eq!(out.ingested_histograms, 1);
        }
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        let head = db.head.read();
        let id = head.select(&[]).first().copied().unwrap_or(0);
        let chunks = head.chunks(id, 0, 100);
        let encodings: Vec<u8> = chunks.iter().map(|c| c.encoding).collect();
        assert!(
            encodings.contains(&1) && encodings.contains(&2),
            "{encodings:?}"
        );
    }

    fn samples(db: &TenantDb, name: &str) -> Vec<(i64, f64)> {
        samples_where(db, "__name__", name)
    }

    /// Samples of the series whose label `label` is `value`.
    fn samples_where(db: &TenantDb, label: &str, value: &str) -> Vec<(i64, f64)> {
        let head = db.head.read();
        let m = muninn_storage::matcher::Matcher::new(
            muninn_storage::matcher::MatchOp::Equal,
            label,
            value,
        )
        .unwrap();
        let ids = head.select(&[m]);
        ids.iter()
            .flat_map(|&id| head.chunks(id, i64::MIN, i64::MAX))
            .flat_map(|c| muninn_storage::chunk::decode_all(&c.data).unwrap())
            .collect()
    }

    /// Ships everything before `t` the way the shipper does: snapshot, then mark.
    fn ship_before(db: &TenantDb, t: i64) -> usize {
        let snap = db.snapshot_unshipped(0, t);
        let n = snap.len();
        db.mark_shipped(
            snap.into_iter()
                .map(|u| (u.id, u.samples.last().unwrap().0))
                .collect(),
        );
        n
    }

    #[test]
    fn collected_series_keep_wal_ids_consistent_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
            push(&db, "gone", 1000, 1.0); // id 0: only old data
            push(&db, "kept", 1000, 1.0); // id 1
            push(&db, "kept", 5000, 2.0);
            assert_eq!(ship_before(&db, 3000), 2);
            db.drop_shipped(Instant::now()).unwrap();
            assert_eq!(db.head.read().live_series(), 1, "`gone` was collected");
            assert!(samples(&db, "gone").is_empty());
            push(&db, "kept", 6000, 3.0);
            push(&db, "gone", 7000, 4.0); // comes back, in the recycled slot 0
            assert_eq!(db.head.read().num_series(), 2, "slot 0 was reused");
            assert_eq!(db.head.read().generation(0), Some(1));
        }
        {
            let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
            assert_eq!(samples(&db, "kept"), vec![(5000, 2.0), (6000, 3.0)]);
            assert_eq!(samples(&db, "gone"), vec![(7000, 4.0)]);
            assert_eq!(db.head.read().live_series(), 2);
            // Writes after a restart refer to the replayed ids, which must be the WAL's.
            push(&db, "kept", 8000, 5.0);
        }
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        assert_eq!(
            samples(&db, "kept"),
            vec![(5000, 2.0), (6000, 3.0), (8000, 5.0)]
        );
        assert_eq!(samples(&db, "gone"), vec![(7000, 4.0)]);
    }

    /// Pushes `n` series `churn{pod="r<round>-<i>"}` with one sample each, value `i`.
    fn push_churn(db: &TenantDb, round: usize, n: usize, t: i64) {
        let req = WriteRequest {
            timeseries: (0..n)
                .map(|i| TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "churn".into(),
                        },
                        Label {
                            name: "pod".into(),
                            value: format!("r{round}-{i}"),
                        },
                    ],
                    samples: vec![Sample {
                        value: i as f64,
                        timestamp: t,
                    }],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        };
        let out = push_request(db, &req, &BOUNDS);
        assert_eq!(out.rejected_samples, 0, "{:?}", out.first);
    }

    #[test]
    fn series_churn_reuses_slots_and_frees_label_strings() {
        const N: usize = 5_000;
        let dir = tempfile::tempdir().unwrap();
        let (mut slots, mut first_heap) = (0, 0);
        {
            let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
            for round in 0..10 {
                let t = round as i64 * 100_000 + 1000;
                push_churn(&db, round, N, t);
                push(&db, "kept", t, round as f64);
                let heap = db.head.read().heap_size();
                if round == 0 {
                    first_heap = heap;
                }
                assert!(
                    heap <= first_heap + first_heap / 10,
                    "round {round}: head {heap} bytes, round 0 {first_heap}"
                );
                ship_before(&db, t + 1);
                // `kept` has a newer sample, so only the churned series empty out.
                push(&db, "kept", t + 50_000, round as f64 + 0.5);
                db.drop_shipped(Instant::now()).unwrap();
                let head = db.head.read();
                assert_eq!(head.live_series(), 1, "round {round}");
                // Only `__name__` and `kept` are still used: `churn`, `pod` and every pod
                // name were freed.
                assert_eq!(head.num_symbols(), 2, "round {round}");
                if round == 0 {
                    slots = head.num_series();
                }
                assert_eq!(head.num_series(), slots, "round {round}: slots reused");
            }
            // The last round stays in the head, in recycled slots, across a restart.
            push_churn(&db, 10, N, 1_100_000);
            assert_eq!(db.head.read().num_series(), slots);
        }
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        // Replay put the last round back in the slots it had: no more than before.
        assert!(db.head.read().num_series() <= slots);
        for i in [0, 1, 2_345, N - 1] {
            assert_eq!(
                samples_where(&db, "pod", &format!("r10-{i}")),
                vec![(1_100_000, i as f64)]
            );
            assert!(samples_where(&db, "pod", &format!("r9-{i}")).is_empty());
        }
        assert_eq!(db.head.read().live_series(), N + 1);
        assert_eq!(samples(&db, "kept").last(), Some(&(950_000 + 1000, 9.5)));
    }

    #[test]
    fn shipped_data_is_retained_then_dropped_and_never_shipped_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        push(&db, "a", 1000, 1.0);
        push(&db, "a", 2000, 2.0);
        let before = Instant::now();
        assert_eq!(ship_before(&db, 10_000), 1);
        // A write after the snapshot, inside the shipped range, is not lost: it is unshipped.
        push(&db, "a", 3000, 3.0);
        let snap = db.snapshot_unshipped(0, 10_000);
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].samples, vec![(3000, 3.0)]);
        // Retained: not due yet for a deadline before the ship.
        assert_eq!(db.drop_shipped(before).unwrap(), None);
        assert_eq!(samples(&db, "a").len(), 3);
        // A restart keeps the shipped marks (WAL record): nothing is shipped twice.
        drop(db);
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        assert_eq!(
            db.snapshot_unshipped(0, 10_000)[0].samples,
            vec![(3000, 3.0)]
        );
        db.drop_shipped(Instant::now()).unwrap();
        assert_eq!(samples(&db, "a"), vec![(3000, 3.0)]);
    }

    #[test]
    fn a_ship_event_due_later_never_drops_from_a_recycled_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        let now = BOUNDS.now_ms;
        push(&db, "a", now, 1.0);
        assert_eq!(ship_before(&db, now + 1), 1); // event 1
        let after_first = Instant::now();
        // A late sample into the shipped stretch; a second cut ships it (event 2, naming `a`).
        assert_eq!(
            push_with(&db, "a", now - 10_000, 0.5, &OOO_BOUNDS).rejected_samples,
            0
        );
        assert_eq!(ship_before(&db, now + 1), 1);
        let after_second = Instant::now();
        // Event 1 comes due: `a` is emptied and collected, its slot recycled for `b`.
        db.drop_shipped(after_first).unwrap();
        assert_eq!(db.head.read().live_series(), 0);
        push(&db, "b", now - 20_000, 2.0);
        assert_eq!(db.head.read().num_series(), 1, "`b` took the recycled slot");
        assert_eq!(ship_before(&db, now + 1), 1); // event 3
        // Event 2 comes due: it named `a`'s id, which must not reach `b`, whose shipped data
        // stays for its own retention (event 3).
        db.drop_shipped(after_second).unwrap();
        assert_eq!(samples(&db, "b"), vec![(now - 20_000, 2.0)]);
        db.drop_shipped(Instant::now()).unwrap();
        assert!(samples(&db, "b").is_empty());
    }

    #[test]
    fn out_of_order_samples_are_never_marked_shipped_unshipped() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        let now = BOUNDS.now_ms;
        push(&db, "a", now - 600_000, 1.0);
        push(&db, "a", now, 2.0);
        // Without a window: 30 minutes late is out of order.
        assert_eq!(
            push_with(&db, "a", now - 1_800_000, 9.0, &BOUNDS).first[0].0,
            Reason::OutOfOrder
        );
        // With one: accepted, and the series reads in time order.
        assert_eq!(
            push_with(&db, "a", now - 1_800_000, 0.5, &OOO_BOUNDS).rejected_samples,
            0
        );
        assert_eq!(
            samples(&db, "a"),
            vec![(now - 1_800_000, 0.5), (now - 600_000, 1.0), (now, 2.0)]
        );
        // A cut snapshots the series; an out-of-order sample arrives during the upload.
        let snap = db.snapshot_unshipped(0, i64::MAX);
        assert_eq!(snap[0].samples.len(), 3);
        assert_eq!(
            push_with(&db, "a", now - 1_200_000, 0.7, &OOO_BOUNDS).rejected_samples,
            0
        );
        db.mark_shipped(vec![(snap[0].id, now)]);
        // The late sample is not in the shipped block: still unshipped, so shipped again.
        let again = db.snapshot_unshipped(0, i64::MAX);
        assert!(
            again[0].samples.contains(&(now - 1_200_000, 0.7)),
            "{:?}",
            again[0].samples
        );
        let marks: Vec<(SeriesId, i64)> = vec![(again[0].id, now)];
        db.mark_shipped(marks);
        assert!(db.snapshot_unshipped(0, i64::MAX).is_empty());
        // Late into an already shipped stretch: the mark moves back, the sample ships.
        assert_eq!(
            push_with(&db, "a", now - 300_000, 1.5, &OOO_BOUNDS).rejected_samples,
            0
        );
        let third = db.snapshot_unshipped(0, i64::MAX);
        assert!(third[0].samples.contains(&(now - 300_000, 1.5)));
        // A cut of a later range; a late sample below that range arrives during its upload:
        // the marks stop below it, so it is shipped by a later cut, not lost.
        let third_marks: Vec<(SeriesId, i64)> = third.iter().map(|s| (s.id, now)).collect();
        db.mark_shipped(third_marks);
        push(&db, "a", now + 1000, 3.0);
        let (start, _, snap) = db
            .snapshot_next(|_| Some((now + 500, now + 2000, now + 2000)))
            .unwrap();
        assert_eq!(
            (start, snap[0].samples.clone()),
            (now + 500, vec![(now + 1000, 3.0)])
        );
        assert_eq!(
            push_with(&db, "a", now - 100_000, 1.7, &OOO_BOUNDS).rejected_samples,
            0
        );
        db.mark_shipped(vec![(snap[0].id, now + 1000)]);
        let left = db.snapshot_unshipped(0, i64::MAX);
        assert!(
            left[0].samples.contains(&(now - 100_000, 1.7)),
            "{:?}",
            left[0].samples
        );
        // Too old even for the window, and all of it survives a restart in order.
        assert_eq!(
            push_with(&db, "a", now - 2 * 3_600_000, 1.0, &OOO_BOUNDS).first[0].0,
            Reason::TooOld
        );
        drop(db);
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        assert_eq!(samples(&db, "a").len(), 7);
        let left = db.snapshot_unshipped(0, i64::MAX);
        assert!(
            left[0].samples.contains(&(now - 100_000, 1.7)),
            "{:?}",
            left[0].samples
        );
    }

    #[test]
    fn series_limits_refuse_new_series_only() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        let limits = SeriesLimits {
            per_user: 3,
            per_metric: 2,
            exemplars: 0,
        };
        let push_l = |name: &str, job: &str| {
            let req = WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: name.into(),
                        },
                        Label {
                            name: "job".into(),
                            value: job.into(),
                        },
                    ],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: BOUNDS.now_ms,
                    }],
                    ..Default::default()
                }],
                metadata: vec![],
            };
            let bytes = req.encode_to_vec();
            let view = WriteRequestView::decode(&bytes).unwrap();
            db.push(&view, &Limits::default(), limits, &BOUNDS).unwrap()
        };
        assert_eq!(push_l("m", "1").rejected_samples, 0);
        assert_eq!(push_l("m", "2").rejected_samples, 0);
        assert_eq!(push_l("m", "3").first[0].0, Reason::PerMetricSeriesLimit);
        assert_eq!(push_l("n", "1").rejected_samples, 0);
        assert_eq!(push_l("o", "1").first[0].0, Reason::PerUserSeriesLimit);
        // Existing series keep taking samples.
        assert_eq!(push_l("m", "1").rejected_samples, 0);
    }

    #[test]
    fn time_bounds_follow_prometheus() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
        let reason = |o: PushOutcome| o.first.first().map(|r| r.0);
        // Far future: refused, and it does not move the too-old bound.
        let far = BOUNDS.now_ms + 10 * 86_400_000;
        assert_eq!(
            reason(push_with(&db, "a", far, 1.0, &BOUNDS)),
            Some(Reason::TooFarInFuture)
        );
        assert_eq!(
            reason(push_with(&db, "a", i64::MIN + 1000, 1.0, &BOUNDS)),
            Some(Reason::TimestampOutOfRange)
        );
        push(&db, "a", BOUNDS.now_ms, 1.0);
        // Older than the head's newest minus the window: too old, even for a new series.
        assert_eq!(
            reason(push_with(&db, "b", BOUNDS.now_ms - 3_600_001, 1.0, &BOUNDS)),
            Some(Reason::TooOld)
        );
        push(&db, "b", BOUNDS.now_ms - 3_599_000, 1.0);
        // A flush (everything shipped and dropped) does not move the bound.
        ship_before(&db, i64::MAX);
        db.drop_shipped(Instant::now()).unwrap();
        push(&db, "b", BOUNDS.now_ms - 3_000_000, 1.0);
        push(&db, "a", BOUNDS.now_ms + 1000, 1.0);
    }
}
