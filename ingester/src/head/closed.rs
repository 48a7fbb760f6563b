//! A series' closed XOR chunks: their bounds and where each is kept ([`ChunkStore`]: a
//! head chunk file, or the heap). 24 bytes per chunk stay in the series; the bytes are the
//! store's.

use super::chunk_store::{ChunkRef, ChunkStore};

/// One closed chunk, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    pub min_t: i64,
    pub max_t: i64,
    pub data: &'a [u8],
}

/// Bounds of a chunk and where it is.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    min_t: i64,
    max_t: i64,
    r: ChunkRef,
}

/// Closed chunks, oldest first, sorted and disjoint in time.
#[derive(Default)]
pub struct ClosedChunks {
    bounds: Vec<Bounds>,
}

/// Who writes a chunk: the store, and the series (id, label hash) it belongs to.
pub struct Writer<'a> {
    pub store: &'a mut ChunkStore,
    pub id: u32,
    pub hash: u64,
}

impl ClosedChunks {
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Chunk `i`.
    pub fn get<'a>(&self, i: usize, store: &'a ChunkStore) -> Option<Chunk<'a>> {
        let b = self.bounds.get(i)?;
        Some(Chunk {
            min_t: b.min_t,
            max_t: b.max_t,
            data: store.get(b.r),
        })
    }

    /// Bounds of chunk `i`.
    pub fn bounds(&self, i: usize) -> Option<(i64, i64)> {
        self.bounds.get(i).map(|b| (b.min_t, b.max_t))
    }

    /// Where chunk `i` is kept.
    pub fn chunk_ref(&self, i: usize) -> Option<ChunkRef> {
        self.bounds.get(i).map(|b| b.r)
    }

    /// Every chunk's bounds, oldest first.
    pub fn all_bounds(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.bounds.iter().map(|b| (b.min_t, b.max_t))
    }

    /// Every chunk, oldest first.
    pub fn iter<'a>(&'a self, store: &'a ChunkStore) -> impl Iterator<Item = Chunk<'a>> + 'a {
        self.bounds.iter().map(move |b| Chunk {
            min_t: b.min_t,
            max_t: b.max_t,
            data: store.get(b.r),
        })
    }

    /// The chunks overlapping `[min_t, max_t]`, oldest first; only their bytes are read
    /// (a chunk file's page is touched only for a chunk a reader needs).
    pub fn overlapping<'a>(
        &'a self,
        min_t: i64,
        max_t: i64,
        store: &'a ChunkStore,
    ) -> impl Iterator<Item = Chunk<'a>> + 'a {
        let start = self.bounds.partition_point(|b| b.max_t < min_t);
        self.bounds[start..]
            .iter()
            .take_while(move |b| b.min_t <= max_t)
            .map(move |b| Chunk {
                min_t: b.min_t,
                max_t: b.max_t,
                data: store.get(b.r),
            })
    }

    /// Whether `t` is inside the bounds of a chunk.
    #[cfg(test)]
    pub fn covers(&self, t: i64) -> bool {
        let i = self.bounds.partition_point(|b| b.max_t < t);
        self.bounds.get(i).is_some_and(|b| b.min_t <= t)
    }

    /// Appends a chunk newer than every chunk held.
    pub fn push(&mut self, min_t: i64, max_t: i64, data: &[u8], w: &mut Writer<'_>) {
        self.splice(self.len(), 0, &[(min_t, max_t, data)], w);
    }

    /// Replaces `remove` chunks from `at` with `new` (each `(min_t, max_t, bytes)`).
    pub fn splice(
        &mut self,
        at: usize,
        remove: usize,
        new: &[(i64, i64, &[u8])],
        w: &mut Writer<'_>,
    ) {
        if self.bounds.capacity() - self.bounds.len() < new.len() {
            // Exactly what is needed and a little more: a series keeps its chunks for hours.
            self.bounds.reserve_exact(new.len() + 1);
        }
        let added: Vec<Bounds> = new
            .iter()
            .map(|&(min_t, max_t, data)| Bounds {
                min_t,
                max_t,
                r: w.store.write(w.id, w.hash, min_t, max_t, data),
            })
            .collect();
        for b in self.bounds.splice(at..at + remove, added) {
            w.store.release(b.r);
        }
    }

    /// Adds a chunk already in the store (WAL replay) in time order, if it overlaps none
    /// held; returns whether it was added (and counted by the store).
    pub fn attach(&mut self, min_t: i64, max_t: i64, r: ChunkRef, store: &mut ChunkStore) -> bool {
        let at = self.bounds.partition_point(|b| b.max_t < min_t);
        if max_t < min_t || self.bounds.get(at).is_some_and(|b| b.min_t <= max_t) {
            return false;
        }
        store.attach(r);
        self.bounds.insert(at, Bounds { min_t, max_t, r });
        true
    }

    /// The index and bounds of the first chunk ending at or after `t`.
    pub fn first_ending_from(&self, t: i64) -> (usize, Option<(i64, i64)>) {
        let i = self.bounds.partition_point(|b| b.max_t < t);
        (i, self.bounds(i))
    }

    /// Replaces the chunks overlapping `[min_t, max_t]` with a stored one (WAL replay: a
    /// chunk rewritten after the checkpoint by an out-of-order insert or a partial drop).
    pub fn replace_overlapping(
        &mut self,
        min_t: i64,
        max_t: i64,
        r: ChunkRef,
        store: &mut ChunkStore,
    ) {
        let lo = self.bounds.partition_point(|b| b.max_t < min_t);
        let hi = self.bounds.partition_point(|b| b.min_t <= max_t);
        store.attach(r);
        for b in self
            .bounds
            .splice(lo..hi.max(lo), [Bounds { min_t, max_t, r }])
        {
            store.release(b.r);
        }
    }

    /// Drops the `n` oldest chunks.
    pub fn drop_front(&mut self, n: usize, store: &mut ChunkStore) {
        for b in self.bounds.drain(..n.min(self.bounds.len())) {
            store.release(b.r);
        }
        if self.bounds.capacity() > 2 * self.bounds.len() + 4 {
            self.bounds.shrink_to_fit();
        }
    }

    /// Drops every chunk (the series is being collected or rebuilt).
    pub fn clear(&mut self, store: &mut ChunkStore) {
        self.drop_front(self.bounds.len(), store);
        self.bounds = Vec::new();
    }

    /// Heap bytes held by the series for its chunks (the store's are counted there).
    pub fn heap_size(&self) -> usize {
        self.bounds.capacity() * std::mem::size_of::<Bounds>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(c: &ClosedChunks, s: &ChunkStore) -> Vec<(i64, i64, Vec<u8>)> {
        c.iter(s)
            .map(|c| (c.min_t, c.max_t, c.data.to_vec()))
            .collect()
    }

    #[test]
    fn push_splice_and_drop_keep_each_chunk_whole_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChunkStore::open(dir.path()).unwrap();
        let mut c = ClosedChunks::default();
        let mut w = Writer {
            store: &mut store,
            id: 1,
            hash: 2,
        };
        c.push(0, 9, &[1, 2, 3], &mut w);
        c.push(10, 19, &[4], &mut w);
        c.push(20, 29, &[5, 6], &mut w);
        assert!(c.covers(15) && !c.covers(30) && !c.covers(-1));
        // Replace the middle chunk with two.
        c.splice(1, 1, &[(10, 14, &[7, 7]), (15, 19, &[8])], &mut w);
        // Insert before the first.
        c.splice(0, 0, &[(-5, -1, &[9])], &mut w);
        assert_eq!(
            all(&c, &store),
            vec![
                (-5, -1, vec![9]),
                (0, 9, vec![1, 2, 3]),
                (10, 14, vec![7, 7]),
                (15, 19, vec![8]),
                (20, 29, vec![5, 6]),
            ]
        );
        c.drop_front(2, &mut store);
        assert_eq!(
            c.get(0, &store).map(|x| (x.min_t, x.data.to_vec())),
            Some((10, vec![7, 7]))
        );
        assert_eq!(c.len(), 3);
        assert!(c.get(3, &store).is_none());
        // Replay: a chunk rewritten later replaces the ones it overlaps.
        let rewritten = store.write(1, 2, 12, 19, &[3]);
        c.replace_overlapping(12, 19, rewritten, &mut store);
        store.release(rewritten);
        assert_eq!(
            all(&c, &store),
            vec![(12, 19, vec![3]), (20, 29, vec![5, 6])]
        );
        c.clear(&mut store);
        assert!(c.is_empty());
    }
}
