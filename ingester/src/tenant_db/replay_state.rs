//! State that WAL replay keeps per series (`TenantDb::open`): WAL ids to head ids, the
//! head chunk records written since the checkpoint, and a cursor on each series' chunks.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::MAX_WAL_ID_GAP;
use crate::head::{ChunkRef, Head, SeriesId, StoredChunk};

/// WAL series ids to head ids during replay: dense (ids are dense), with a map for the
/// implausible ones a corrupt record may carry.
#[derive(Default)]
pub(super) struct IdMap {
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
}

impl IdMap {
    pub(super) fn insert(&mut self, wal_id: u32, id: u32) {
        let i = wal_id as usize;
        if i <= self.dense.len() + MAX_WAL_ID_GAP {
            if self.dense.len() <= i {
                self.dense.resize(i + 1, u32::MAX);
            }
            self.dense[i] = id;
        } else {
            self.sparse.insert(wal_id, id);
        }
    }

    pub(super) fn get(&self, wal_id: u32) -> Option<u32> {
        match self.dense.get(wal_id as usize) {
            Some(&id) if id != u32::MAX => Some(id),
            // An implausible id stored apart before the dense ids grew past it.
            _ => self.sparse.get(&wal_id).copied(),
        }
    }
}

/// Per series during WAL replay: the newest timestamp replayed, and a cursor on its closed
/// chunks. Samples of a series replay mostly in time order, so whether one is inside a
/// stored chunk is answered from this compact array, moving to the next chunk about once
/// every 120 samples, instead of searching the series' chunks for every sample.
#[derive(Default)]
pub(super) struct Cursors(Vec<Cursor>);

#[derive(Clone, Copy)]
struct Cursor {
    newest: i64,
    /// Index and bounds of the chunk the cursor is on; `idx == u32::MAX`: not placed yet.
    idx: u32,
    lo: i64,
    hi: i64,
}

const UNPLACED: Cursor = Cursor {
    newest: i64::MIN,
    idx: u32::MAX,
    lo: i64::MAX,
    hi: i64::MAX,
};

impl Cursors {
    fn get(&mut self, id: SeriesId) -> &mut Cursor {
        let i = id as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, UNPLACED);
        }
        &mut self.0[i]
    }

    /// Records `t` for series `id` as replayed. `None` if it is not newer than every sample
    /// replayed before: written out of order, it may be missing from a stored chunk whose
    /// rewrite did not reach the disk, so the caller inserts it (a duplicate is recognised)
    /// and resets the cursor. Else whether it is inside one of the series' stored chunks,
    /// which then holds it: chunks hold every sample written in order in their range.
    pub(super) fn stored(&mut self, head: &Head, id: SeriesId, t: i64) -> Option<bool> {
        let c = self.get(id);
        if t <= c.newest {
            return None;
        }
        c.newest = t;
        if c.idx == u32::MAX {
            let (i, b) = head.chunk_ending_from(id, t);
            (c.idx, (c.lo, c.hi)) = (i as u32, b.unwrap_or((i64::MAX, i64::MAX)));
        }
        while t > c.hi {
            c.idx += 1;
            (c.lo, c.hi) = head
                .chunk_bounds(id, c.idx as usize)
                .unwrap_or((i64::MAX, i64::MAX));
        }
        Some(t >= c.lo)
    }

    /// The series' chunks changed: the cursor is placed again at its next sample.
    pub(super) fn reset(&mut self, id: SeriesId) {
        let c = self.get(id);
        c.idx = u32::MAX;
    }

    /// What the series held at a checkpoint: samples up to `t` were written before it.
    pub(super) fn see(&mut self, id: SeriesId, t: i64) {
        let c = self.get(id);
        c.newest = c.newest.max(t);
    }
}

/// Head chunk records written after the checkpoint the WAL starts with (all of them without
/// one), grouped by WAL series id in file order: each series gets them once, when replay
/// creates it (before its samples, so they are skipped) or at the end.
pub(super) struct PendingChunks {
    /// `recs[start[i]..start[i + 1]]` are series `i`'s.
    start: Vec<u32>,
    recs: Vec<Pending>,
    taken: Vec<bool>,
    /// Replay's time bounds, and the samples of attached chunks left out by them.
    ok: RangeInclusive<i64>,
    pub(super) out_of_bounds: u64,
}

#[derive(Clone, Copy, Default)]
struct Pending {
    r: ChunkRef,
    hash: u64,
    min_t: i64,
    max_t: i64,
}

impl PendingChunks {
    /// Reads the records from `from` on: a pass counting them per series, then a pass
    /// filling one array of exactly their number (replay's memory stays close to the head's).
    pub(super) fn load(head: &Head, from: Option<(u32, u32)>, ok: RangeInclusive<i64>) -> Self {
        let mut counts: Vec<u32> = Vec::new();
        let mut seen = 0usize;
        head.scan_stored_chunks(from, |c| {
            let i = c.series as usize;
            seen += 1;
            // Ids are dense: one far past the records read so far is implausible (a corrupt
            // record; its samples are still in the WAL) and must not make replay allocate
            // up to it.
            if i < seen + MAX_WAL_ID_GAP {
                if counts.len() <= i {
                    counts.resize(i + 1, 0);
                }
                counts[i] += 1;
            }
        });
        let mut start = Vec::with_capacity(counts.len() + 1);
        let mut total = 0u32;
        start.push(0);
        for n in &mut counts {
            total += *n;
            start.push(total);
            // Now where series i's next record goes.
            *n = total - *n;
        }
        let mut recs = vec![Pending::default(); total as usize];
        head.scan_stored_chunks(from, |c| {
            let i = c.series as usize;
            if let Some(next) = counts.get_mut(i)
                && (*next as usize) < start[i + 1] as usize
            {
                recs[*next as usize] = Pending {
                    r: c.r,
                    hash: c.hash,
                    min_t: c.min_t,
                    max_t: c.max_t,
                };
                *next += 1;
            }
        });
        // A record the second pass did not see again (a read error) leaves its slot
        // default, which no series' label hash matches.
        let taken = vec![false; counts.len()];
        Self {
            start,
            recs,
            taken,
            ok,
            out_of_bounds: 0,
        }
    }

    /// Gives head series `id` the records of WAL series `wal_id` (once).
    pub(super) fn attach(&mut self, head: &mut Head, wal_id: u32, id: SeriesId) {
        let i = wal_id as usize;
        if self.taken.get(i) != Some(&false) {
            return;
        }
        self.taken[i] = true;
        for p in &self.recs[self.start[i] as usize..self.start[i + 1] as usize] {
            let c = StoredChunk {
                r: p.r,
                series: wal_id,
                hash: p.hash,
                min_t: p.min_t,
                max_t: p.max_t,
            };
            self.out_of_bounds += head.attach_chunk(id, wal_id, &c, true, &self.ok);
        }
    }

    /// Attaches what no series took yet to the series replay knows.
    pub(super) fn attach_rest(&mut self, head: &mut Head, ids: &IdMap) {
        for wal_id in 0..self.taken.len() as u32 {
            if let Some(id) = ids.get(wal_id) {
                self.attach(head, wal_id, id);
            }
        }
    }
}
