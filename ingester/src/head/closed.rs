//! A series' closed XOR chunks, back to back in one allocation of their exact size.
//!
//! A head holds a dozen closed chunks per series for every two hours at a 10 s scrape. As
//! separate boxes they cost an allocation each, 32 bytes of metadata each and the
//! allocator's rounding of each, and tens of thousands of small long-lived blocks spread over
//! the pages of every thread's heap. Here a series holds two allocations: the chunks' bytes,
//! and their bounds with where each ends.

/// One closed chunk, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    pub min_t: i64,
    pub max_t: i64,
    pub data: &'a [u8],
}

/// Bounds of a chunk and the end of its bytes in [`ClosedChunks::data`].
#[derive(Clone, Copy, Debug)]
struct Bounds {
    min_t: i64,
    max_t: i64,
    end: u32,
}

/// Closed chunks, oldest first, sorted and disjoint in time.
#[derive(Default)]
pub struct ClosedChunks {
    bounds: Vec<Bounds>,
    data: Vec<u8>,
}

impl ClosedChunks {
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Chunk `i`.
    pub fn get(&self, i: usize) -> Option<Chunk<'_>> {
        let b = self.bounds.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.bounds[i - 1].end as usize,
        };
        Some(Chunk {
            min_t: b.min_t,
            max_t: b.max_t,
            data: &self.data[start..b.end as usize],
        })
    }

    pub fn first(&self) -> Option<Chunk<'_>> {
        self.get(0)
    }

    /// Every chunk, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Chunk<'_>> + '_ {
        let mut start = 0usize;
        self.bounds.iter().map(move |b| {
            let c = Chunk {
                min_t: b.min_t,
                max_t: b.max_t,
                data: &self.data[start..b.end as usize],
            };
            start = b.end as usize;
            c
        })
    }

    /// Appends a chunk newer than every chunk held. Both allocations grow to their exact
    /// size: a chunk is closed once every 120 samples, so the copy is cheap, and no capacity
    /// sits unused for the hours the head keeps the series.
    pub fn push(&mut self, min_t: i64, max_t: i64, data: &[u8]) {
        self.splice(self.len(), 0, &[(min_t, max_t, data)]);
    }

    /// Replaces `remove` chunks from `at` with `new` (each `(min_t, max_t, bytes)`).
    pub fn splice(&mut self, at: usize, remove: usize, new: &[(i64, i64, &[u8])]) {
        let start = match at {
            0 => 0,
            _ => self.bounds[at - 1].end as usize,
        };
        let old_end = match at + remove {
            0 => 0,
            n => self.bounds[n - 1].end as usize,
        };
        let added: usize = new.iter().map(|c| c.2.len()).sum();
        let mut data = Vec::with_capacity(self.data.len() - (old_end - start) + added);
        data.extend_from_slice(&self.data[..start]);
        let mut bounds = Vec::with_capacity(self.bounds.len() - remove + new.len());
        bounds.extend_from_slice(&self.bounds[..at]);
        for &(min_t, max_t, bytes) in new {
            data.extend_from_slice(bytes);
            bounds.push(Bounds {
                min_t,
                max_t,
                end: data.len() as u32,
            });
        }
        let shift = data.len() as i64 - old_end as i64;
        data.extend_from_slice(&self.data[old_end..]);
        bounds.extend(self.bounds[at + remove..].iter().map(|b| Bounds {
            end: (i64::from(b.end) + shift) as u32,
            ..*b
        }));
        self.data = data;
        self.bounds = bounds;
    }

    /// Drops the `n` oldest chunks.
    pub fn drop_front(&mut self, n: usize) {
        self.splice(0, n.min(self.len()), &[]);
    }

    /// Bytes of chunk data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.data.capacity() + self.bounds.capacity() * std::mem::size_of::<Bounds>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(c: &ClosedChunks) -> Vec<(i64, i64, Vec<u8>)> {
        c.iter()
            .map(|c| (c.min_t, c.max_t, c.data.to_vec()))
            .collect()
    }

    #[test]
    fn push_splice_and_drop_keep_each_chunk_whole_and_exact() {
        let mut c = ClosedChunks::default();
        c.push(0, 9, &[1, 2, 3]);
        c.push(10, 19, &[4]);
        c.push(20, 29, &[5, 6]);
        assert_eq!(c.data_len(), 6);
        assert_eq!(c.heap_size(), 6 + 3 * std::mem::size_of::<Bounds>());
        // Replace the middle chunk with two.
        c.splice(1, 1, &[(10, 14, &[7, 7]), (15, 19, &[8])]);
        assert_eq!(
            all(&c),
            vec![
                (0, 9, vec![1, 2, 3]),
                (10, 14, vec![7, 7]),
                (15, 19, vec![8]),
                (20, 29, vec![5, 6]),
            ]
        );
        // Insert before the first.
        c.splice(0, 0, &[(-5, -1, &[9])]);
        assert_eq!(c.first().map(|x| x.data.to_vec()), Some(vec![9]));
        c.drop_front(2);
        assert_eq!(
            c.get(0).map(|x| (x.min_t, x.data.to_vec())),
            Some((10, vec![7, 7]))
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(3).map(|x| x.min_t), None);
        c.drop_front(10);
        assert!(c.is_empty() && c.data_len() == 0);
    }
}
