//! A Prometheus index (format v2): the symbol table and every series entry, in index order,
//! with its reference (its offset / 16), labels and chunk metas.

use std::path::{Path, PathBuf};

use super::{be_u32, be_u64, corrupt, crc32c, uvarint, varint};
use crate::Result;
use crate::labels::Labels;

const MAGIC: u32 = 0xBAAA_D700;
const TOC_LEN: usize = 6 * 8 + 4;

/// A chunk of a series: its time range and where it is in the segment files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    /// Segment sequence (high 32 bits) and offset in it.
    pub reference: u64,
}

/// One series of the index.
#[derive(Clone, Debug)]
pub struct SeriesEntry {
    /// The series reference tombstones name (offset / 16).
    pub reference: u64,
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

/// An index file, mapped (not read) into memory: a large block's index stays in the page
/// cache, which the kernel may evict, instead of the import's heap. Prometheus's blocks are
/// immutable once written, which is what makes the mapping safe to read.
pub struct Index {
    path: PathBuf,
    data: memmap2::Mmap,
    symbols: Vec<String>,
    series_start: usize,
    series_end: usize,
}

impl Index {
    /// Maps and checks the file: magic, version 2, table of contents, symbol table.
    #[allow(unsafe_code)]
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| corrupt(path, e))?;
        // SAFETY: the file is a finished Prometheus block's index, never written again. A
        // source rewritten under the import would fail its checksums; one truncated under it
        // would raise SIGBUS and end the import (which a re-run resumes).
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| corrupt(path, e))?;
        let bad = |what: &str| corrupt(path, what);
        if be_u32(&data, 0) != Some(MAGIC) {
            return Err(bad("not a Prometheus index (bad magic)"));
        }
        match data.get(4) {
            Some(2) => {}
            Some(v) => {
                return Err(corrupt(
                    path,
                    format!("index format v{v} (only v2, Prometheus ≥ 2.1, is read)"),
                ));
            }
            None => return Err(bad("truncated header")),
        }
        let toc = data
            .len()
            .checked_sub(TOC_LEN)
            .ok_or_else(|| bad("too short for a table of contents"))?;
        if be_u32(&data, toc + 48) != Some(crc32c(&data[toc..toc + 48])) {
            return Err(bad("table of contents checksum mismatch"));
        }
        let off = |i: usize| -> Result<usize> {
            let v = be_u64(&data, toc + 8 * i).ok_or_else(|| bad("truncated table of contents"))?;
            usize::try_from(v)
                .ok()
                .filter(|v| *v <= toc)
                .ok_or_else(|| bad("table of contents offset out of the file"))
        };
        let (symbols_off, series_off, label_indices_off) = (off(0)?, off(1)?, off(2)?);
        let postings_off = off(4)?;
        // The series section ends where the next non-empty section starts.
        let series_end = [label_indices_off, postings_off, toc]
            .into_iter()
            .filter(|o| *o > series_off)
            .min()
            .unwrap_or(toc);
        let symbols =
            read_symbols(&data, symbols_off).ok_or_else(|| bad("corrupt symbol table"))?;
        Ok(Self {
            path: path.to_path_buf(),
            data,
            symbols,
            series_start: series_off,
            series_end,
        })
    }

    /// Every series, in index order (sorted by labels).
    pub fn series(&self) -> Result<Vec<SeriesEntry>> {
        let mut out = vec![];
        let mut pos = self.series_start;
        let d = &self.data;
        while pos < self.series_end {
            pos = pos.div_ceil(16) * 16;
            if pos >= self.series_end {
                break;
            }
            let reference = (pos / 16) as u64;
            let len =
                uvarint(d, &mut pos).ok_or_else(|| self.bad("truncated series entry"))? as usize;
            if len == 0 {
                // Padding at the end of the section.
                continue;
            }
            let end = pos
                .checked_add(len)
                .filter(|e| e.checked_add(4).is_some_and(|x| x <= d.len()))
                .ok_or_else(|| self.bad("series entry runs past the file"))?;
            let body = &d[pos..end];
            if be_u32(d, end) != Some(crc32c(body)) {
                return Err(self.bad(format!("series {reference}: checksum mismatch")));
            }
            let entry = self
                .parse_series(body, reference)
                .ok_or_else(|| self.bad(format!("series {reference}: corrupt entry")))?;
            out.push(entry);
            pos = end + 4;
        }
        Ok(out)
    }

    fn bad(&self, what: impl std::fmt::Display) -> crate::Error {
        corrupt(&self.path, what)
    }

    fn parse_series(&self, b: &[u8], reference: u64) -> Option<SeriesEntry> {
        let mut pos = 0;
        let n = uvarint(b, &mut pos)?;
        let mut pairs = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let name = self.symbols.get(uvarint(b, &mut pos)? as usize)?;
            let value = self.symbols.get(uvarint(b, &mut pos)? as usize)?;
            pairs.push((name.clone(), value.clone()));
        }
        let nchunks = uvarint(b, &mut pos)?;
        let mut chunks = Vec::with_capacity(nchunks.min(1 << 16) as usize);
        let (mut max_t, mut reference_acc) = (0i64, 0i64);
        for i in 0..nchunks {
            // Deltas wrap as in Prometheus's reader: a chunk starting before the previous
            // one ended (overlapping chunks, found in some Thanos blocks) has a "negative"
            // unsigned delta.
            let min_t = if i == 0 {
                varint(b, &mut pos)?
            } else {
                max_t.wrapping_add(uvarint(b, &mut pos)? as i64)
            };
            max_t = min_t.wrapping_add(uvarint(b, &mut pos)? as i64);
            reference_acc = if i == 0 {
                i64::try_from(uvarint(b, &mut pos)?).ok()?
            } else {
                reference_acc.checked_add(varint(b, &mut pos)?)?
            };
            chunks.push(ChunkMeta {
                min_t,
                max_t,
                reference: u64::try_from(reference_acc).ok()?,
            });
        }
        (pos == b.len()).then(|| SeriesEntry {
            reference,
            labels: Labels::from_pairs(pairs),
            chunks,
        })
    }
}

fn read_symbols(d: &[u8], at: usize) -> Option<Vec<String>> {
    let len = be_u32(d, at)? as usize;
    let body = d.get(at + 4..at.checked_add(4 + len)?)?;
    if be_u32(d, at + 4 + len)? != crc32c(body) {
        return None;
    }
    let count = be_u32(body, 0)? as usize;
    let mut pos = 4;
    let mut out = Vec::with_capacity(count.min(body.len()));
    for _ in 0..count {
        let n = uvarint(body, &mut pos)? as usize;
        let s = body.get(pos..pos.checked_add(n)?)?;
        out.push(String::from_utf8(s.to_vec()).ok()?);
        pos += n;
    }
    Some(out)
}
