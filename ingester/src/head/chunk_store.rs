//! Where a head's closed chunks live: out of the heap, in numbered files under the tenant's
//! `chunks_head/` directory, read back through read-only memory maps (as Prometheus's
//! `chunks_head`). The kernel keeps the pages it needs and drops the rest, so a head holds
//! per closed chunk only its bounds and a [`ChunkRef`] (24 bytes) instead of ~150 bytes of
//! chunk, and WAL replay skips every sample a chunk file already holds.
//!
//! File `NNNNNNNN`: an 8-byte header (`MHC1`, version 1, 3 zero bytes), then records:
//! `u32 series id | u64 label hash | i64 min_t | i64 max_t | u8 encoding | u32 length |
//! data | u32 crc32 (IEEE) of everything before it in the record`, all little-endian. A
//! file is preallocated sparse to [`FILE_SIZE`] and mapped whole; a record is complete or
//! the file ends there (zeros or a bad checksum), so a torn tail only loses chunks whose
//! samples are still in the WAL.
//!
//! Records are appended through a buffer: a chunk is readable from the buffer at once and
//! reaches the file at the next [`ChunkStore::flush`] (the end of every push) or when the
//! buffer fills. A file is deleted at the first checkpoint after no series refers to any of
//! its chunks (never the newest, so numbers are never reused). Without a directory
//! (tests), or after a write error, chunks are kept on the heap instead, and WAL checkpoints
//! carry their samples.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// A file is rotated before it would exceed this size.
pub const FILE_SIZE: u64 = 128 << 20;
const MAGIC: &[u8; 4] = b"MHC1";
const FILE_HEADER: usize = 8;
const REC_HEADER: usize = 4 + 8 + 8 + 8 + 1 + 4;
const REC_TRAILER: usize = 4;
/// The write buffer is flushed beyond this size.
const FLUSH_AT: usize = 1 << 20;

/// Where one closed chunk is: a file and an offset, or a heap slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkRef(u64);

impl ChunkRef {
    const HEAP: u64 = 1 << 63;

    fn file(seq: u32, off: u32) -> Self {
        Self((u64::from(seq) << 32) | u64::from(off))
    }

    fn heap(slot: u32) -> Self {
        Self(Self::HEAP | u64::from(slot))
    }

    /// Whether the chunk is in a file (else on the heap).
    pub fn in_file(self) -> bool {
        self.0 & Self::HEAP == 0
    }

    fn seq(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn off(self) -> u32 {
        self.0 as u32
    }

    /// (file, offset) of a chunk in a file.
    pub fn file_offset(self) -> Option<(u32, u32)> {
        self.in_file().then_some((self.seq(), self.off()))
    }

    /// The form a WAL checkpoint records.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// A file reference read back from a checkpoint (`None` for a heap one).
    pub fn from_u64(v: u64) -> Option<Self> {
        (v & Self::HEAP == 0).then_some(Self(v))
    }
}

/// A record found in a chunk file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredChunk {
    pub r: ChunkRef,
    pub series: u32,
    pub hash: u64,
    pub min_t: i64,
    pub max_t: i64,
}

struct MappedFile {
    path: PathBuf,
    map: Mmap,
    /// Chunks referred to by series.
    live: usize,
    /// Whether everything written to it is on disk (files found at open may hold pages a
    /// crash left in the page cache: a checkpoint must not name their chunks before a sync).
    synced: bool,
}

impl MappedFile {
    /// A file no series refers to yet, not known to be synced.
    fn new(path: PathBuf, map: Mmap) -> Self {
        Self {
            path,
            map,
            live: 0,
            synced: false,
        }
    }
}

/// The file being appended to. Like the WAL it holds no descriptor between writes: an
/// idle tenant costs no fd.
struct Active {
    seq: u32,
    path: PathBuf,
    /// Bytes of the file written so far; `buf` holds what comes after.
    flushed: u64,
    buf: Vec<u8>,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkStoreStats {
    /// Chunk files on disk.
    pub files: usize,
    /// Bytes written to chunk files since open.
    pub bytes_written: u64,
    /// Bytes of chunks kept on the heap.
    pub heap_bytes: usize,
}

/// The closed chunks of one head.
#[derive(Default)]
pub struct ChunkStore {
    dir: Option<PathBuf>,
    files: BTreeMap<u32, MappedFile>,
    active: Option<Active>,
    next_seq: u32,
    heap: Vec<Option<Box<[u8]>>>,
    free_slots: Vec<u32>,
    /// A write failed: chunks stay on the heap until restart.
    broken: bool,
    stats: ChunkStoreStats,
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> crate::Error {
    crate::Error::io(op, path, e)
}

fn file_path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{seq:08}"))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Parses the record at `r` whose bytes start `b`: its fields and total length. `None`
/// where no complete, intact record starts (the end of a file's records).
fn parse_record(b: &[u8], r: ChunkRef) -> Option<(StoredChunk, usize)> {
    let h = b.get(..REC_HEADER)?;
    let len = le_u32(&h[29..33]) as usize;
    let total = REC_HEADER.checked_add(len)?.checked_add(REC_TRAILER)?;
    let rec = b.get(..total)?;
    let crc = le_u32(&rec[total - REC_TRAILER..]);
    if crc32fast::hash(&rec[..total - REC_TRAILER]) != crc || h[28] != 1 {
        return None;
    }
    let c = StoredChunk {
        r,
        series: le_u32(&h[0..4]),
        hash: le_u64(&h[4..12]),
        min_t: le_u64(&h[12..20]) as i64,
        max_t: le_u64(&h[20..28]) as i64,
    };
    Some((c, total))
}

/// The data of the record at the start of `b`, unchecked (it was checked when written or
/// scanned).
fn record_data(b: &[u8]) -> Option<&[u8]> {
    let len = le_u32(b.get(29..33)?) as usize;
    b.get(REC_HEADER..REC_HEADER + len)
}

/// Visits the intact records of chunk file `path` from offset `start` on.
fn scan_file(
    path: &Path,
    seq: u32,
    start: u64,
    visit: &mut impl FnMut(StoredChunk),
) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut magic = [0u8; 4];
    if file.read_exact_at(&mut magic, 0).is_err() || &magic != MAGIC {
        tracing::warn!(file = %path.display(), "not a head chunk file; ignored");
        return Ok(());
    }
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    r.seek(SeekFrom::Start(start))?;
    let mut pos = start;
    let mut rec = vec![0u8; REC_HEADER];
    loop {
        rec.resize(REC_HEADER, 0);
        if len.saturating_sub(pos) < (REC_HEADER + REC_TRAILER) as u64
            || r.read_exact(&mut rec).is_err()
        {
            break;
        }
        let n = u64::from(le_u32(&rec[29..33]));
        let total = REC_HEADER as u64 + n + REC_TRAILER as u64;
        if total > len - pos {
            break;
        }
        rec.resize(total as usize, 0);
        if r.read_exact(&mut rec[REC_HEADER..]).is_err() {
            break;
        }
        let Some((c, _)) = parse_record(&rec, ChunkRef::file(seq, pos as u32)) else {
            break;
        };
        visit(c);
        pos += total;
    }
    Ok(())
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: chunk files are only ever appended to, by this store, at offsets past every
    // record read through a mapping; readers only read records already complete in the file
    // (or in the write buffer, never through the map), and a file is unmapped and deleted
    // only once no series refers to it. Truncation by someone else would be a SIGBUS, as for
    // any mapped file.
    unsafe { Mmap::map(file) }
}

impl ChunkStore {
    /// A store keeping every chunk on the heap.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Opens the chunk files in `dir` (creating it) and returns every intact record, oldest
    /// file first, from `from` on (`(file, offset)`; `None` for all). Nothing is referred to
    /// until [`ChunkStore::attach`]; [`ChunkStore::drop_unreferenced`] then deletes files no
    /// series uses.
    pub fn open(dir: &Path) -> crate::Result<Self> {
        crate::wal::create_dir_durable(dir)?;
        let mut files = BTreeMap::new();
        let rd = std::fs::read_dir(dir).map_err(|e| io_err("listing chunk files", dir, e))?;
        for e in rd {
            let e = e.map_err(|e| io_err("listing chunk files", dir, e))?;
            let Some(seq) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let path = e.path();
            let file = File::open(&path).map_err(|e| io_err("opening chunk file", &path, e))?;
            let map = map_file(&file).map_err(|e| io_err("mapping chunk file", &path, e))?;
            files.insert(seq, MappedFile::new(path, map));
        }
        let next_seq = files.keys().next_back().map_or(1, |s| s + 1);
        let stats = ChunkStoreStats {
            files: files.len(),
            ..Default::default()
        };
        Ok(Self {
            dir: Some(dir.to_owned()),
            files,
            next_seq,
            stats,
            ..Default::default()
        })
    }

    /// Visits every intact record in the files opened, from position `from` (as
    /// [`ChunkStore::mark`] gave it) on, oldest first. A file's records end at its first
    /// incomplete or corrupt one. Files are read, not touched through their maps, so replay
    /// does not fill the process's resident set with every chunk.
    pub fn scan(&self, from: Option<(u32, u32)>, mut visit: impl FnMut(StoredChunk)) {
        for (&seq, f) in &self.files {
            let start = match from {
                Some((s, _)) if seq < s => continue,
                Some((s, off)) if seq == s => u64::from(off).max(FILE_HEADER as u64),
                _ => FILE_HEADER as u64,
            };
            if let Err(e) = scan_file(&f.path, seq, start, &mut visit) {
                tracing::warn!(file = %f.path.display(), error = %e, "reading a head chunk file failed; its later chunks are taken from the WAL");
            }
        }
    }

    /// [`ChunkStore::scan`] into a list.
    pub fn records(&self, from: Option<(u32, u32)>) -> Vec<StoredChunk> {
        let mut out = Vec::new();
        self.scan(from, |c| out.push(c));
        out
    }

    /// The record `r` names, checked (for references read back from a WAL checkpoint).
    pub fn lookup(&self, r: ChunkRef) -> Option<StoredChunk> {
        if !r.in_file() {
            return None;
        }
        let f = self.files.get(&r.seq())?;
        parse_record(f.map.get(r.off() as usize..)?, r).map(|(c, _)| c)
    }

    /// Lets the kernel take back the pages of every map from this process's resident set
    /// (after WAL replay read chunk headers through them); they are read again on demand.
    #[allow(unsafe_code)]
    pub fn release_pages(&self) {
        for f in self.files.values() {
            // SAFETY: a read-only shared file mapping: MADV_DONTNEED only drops this
            // process's page table entries, the next read faults the file's pages back in.
            if let Err(e) = unsafe { f.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) } {
                tracing::debug!(file = %f.path.display(), error = %e, "madvise failed");
            }
        }
    }

    /// Counts one more series reference to `r` (WAL replay attaching a stored chunk).
    pub fn attach(&mut self, r: ChunkRef) {
        if let Some(f) = self.files.get_mut(&r.seq()) {
            f.live += 1;
        }
    }

    /// Deletes the files no series refers to, except the one written to and the newest:
    /// after each checkpoint (never earlier: the checkpoint on disk may name their chunks).
    pub fn drop_unreferenced(&mut self) {
        let dead: Vec<u32> = self
            .files
            .iter()
            .filter(|(seq, f)| f.live == 0 && !self.keeps(**seq))
            .map(|(s, _)| *s)
            .collect();
        for seq in dead {
            self.remove_file(seq);
        }
    }

    /// Whether file `seq` must stay even when unreferenced: the one written to, and the
    /// newest (numbers must never be reused after a restart).
    fn keeps(&self, seq: u32) -> bool {
        self.active.as_ref().is_some_and(|a| a.seq == seq)
            || self.files.keys().next_back() == Some(&seq)
    }

    fn remove_file(&mut self, seq: u32) {
        if let Some(f) = self.files.remove(&seq) {
            drop(f.map);
            if let Err(e) = std::fs::remove_file(&f.path) {
                tracing::warn!(file = %f.path.display(), error = %e, "removing a head chunk file failed");
            }
        }
        self.stats.files = self.files.len();
    }

    /// Stores a closed chunk of series `series` (label hash `hash`); it is referred to once.
    pub fn write(
        &mut self,
        series: u32,
        hash: u64,
        min_t: i64,
        max_t: i64,
        data: &[u8],
    ) -> ChunkRef {
        if self.dir.is_some() && !self.broken {
            match self.append(series, hash, min_t, max_t, data) {
                Ok(r) => return r,
                Err(e) => {
                    tracing::error!(error = %e, "writing head chunks failed; keeping closed chunks in memory until restart");
                    self.broken = true;
                }
            }
        }
        self.stats.heap_bytes += data.len();
        let b: Box<[u8]> = data.into();
        match self.free_slots.pop() {
            Some(slot) => {
                self.heap[slot as usize] = Some(b);
                ChunkRef::heap(slot)
            }
            None => {
                self.heap.push(Some(b));
                ChunkRef::heap(self.heap.len() as u32 - 1)
            }
        }
    }

    fn append(
        &mut self,
        series: u32,
        hash: u64,
        min_t: i64,
        max_t: i64,
        data: &[u8],
    ) -> crate::Result<ChunkRef> {
        let total = (REC_HEADER + data.len() + REC_TRAILER) as u64;
        let full = self
            .active
            .as_ref()
            .is_some_and(|a| a.flushed + a.buf.len() as u64 + total > FILE_SIZE);
        if full || self.active.is_none() {
            self.rotate()?;
        }
        let Some(a) = self.active.as_mut() else {
            return Err(crate::Error::Task("no active chunk file".into()));
        };
        let off = a.flushed + a.buf.len() as u64;
        let start = a.buf.len();
        a.buf.extend_from_slice(&series.to_le_bytes());
        a.buf.extend_from_slice(&hash.to_le_bytes());
        a.buf.extend_from_slice(&min_t.to_le_bytes());
        a.buf.extend_from_slice(&max_t.to_le_bytes());
        a.buf.push(1);
        a.buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        a.buf.extend_from_slice(data);
        let crc = crc32fast::hash(&a.buf[start..]);
        a.buf.extend_from_slice(&crc.to_le_bytes());
        let seq = a.seq;
        if let Some(f) = self.files.get_mut(&seq) {
            f.live += 1;
        }
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.buf.len() >= FLUSH_AT)
        {
            self.flush()?;
        }
        Ok(ChunkRef::file(seq, off as u32))
    }

    /// Finishes the active file (flushed and synced) and starts the next one.
    fn rotate(&mut self) -> crate::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Err(crate::Error::Task("chunk store has no directory".into()));
        };
        if let Some(old) = self.active.as_ref().map(|a| a.seq) {
            self.sync()?;
            self.active = None;
            if let Some(f) = self.files.get_mut(&old) {
                f.synced = true;
            }
        }
        let seq = self.next_seq;
        let path = file_path(&dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err("creating chunk file", &path, e))?;
        let mut header = [0u8; FILE_HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4] = 1;
        file.write_all_at(&header, 0)
            .and_then(|()| file.set_len(FILE_SIZE))
            .map_err(|e| io_err("preparing chunk file", &path, e))?;
        let map = map_file(&file).map_err(|e| io_err("mapping chunk file", &path, e))?;
        crate::wal::sync_dir(&dir)?;
        self.next_seq += 1;
        self.files.insert(seq, MappedFile::new(path, map));
        self.stats.files = self.files.len();
        drop(file);
        self.active = Some(Active {
            seq,
            path: file_path(&dir, seq),
            flushed: FILE_HEADER as u64,
            buf: Vec::new(),
        });
        Ok(())
    }

    /// Writes the buffered records to their file. After an error the records stay readable
    /// from the buffer, never durable, and later chunks go to the heap.
    pub fn flush(&mut self) -> crate::Result<()> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if a.buf.is_empty() || self.broken {
            return Ok(());
        }
        let written = OpenOptions::new()
            .write(true)
            .open(&a.path)
            .and_then(|f| f.write_all_at(&a.buf, a.flushed));
        match written {
            Ok(()) => {
                a.flushed += a.buf.len() as u64;
                self.stats.bytes_written += a.buf.len() as u64;
                a.buf.clear();
                if a.buf.capacity() > 2 * FLUSH_AT {
                    a.buf.shrink_to(FLUSH_AT);
                }
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(io_err("writing chunk file", &a.path, e))
            }
        }
    }

    /// Flushes, then makes every file durable (before a WAL checkpoint relies on them): the
    /// active one, and those not synced since open.
    pub fn sync(&mut self) -> crate::Result<()> {
        self.flush()?;
        let active = self.active.as_ref().map(|a| a.seq);
        for (&seq, f) in self.files.iter_mut() {
            if f.synced && Some(seq) != active {
                continue;
            }
            File::open(&f.path)
                .and_then(|file| file.sync_data())
                .map_err(|e| io_err("syncing chunk file", &f.path, e))?;
            // The active file gets more records; the others are complete.
            f.synced = Some(seq) != active;
        }
        Ok(())
    }

    /// Whether `r` is in a file and written to it (after [`ChunkStore::sync`]: on disk).
    pub fn is_durable(&self, r: ChunkRef) -> bool {
        r.in_file()
            && self.files.contains_key(&r.seq())
            && match &self.active {
                Some(a) if a.seq == r.seq() => u64::from(r.off()) < a.flushed,
                _ => true,
            }
    }

    /// Where the next record goes: records from here on are newer than a checkpoint taken
    /// now ([`ChunkStore::scan`] from it).
    pub fn mark(&self) -> (u32, u32) {
        match &self.active {
            Some(a) => (a.seq, (a.flushed + a.buf.len() as u64) as u32),
            None => (self.next_seq, 0),
        }
    }

    /// The data of chunk `r` (empty if it is gone, which a consistent head never asks).
    pub fn get(&self, r: ChunkRef) -> &[u8] {
        self.try_get(r).unwrap_or(&[])
    }

    fn try_get(&self, r: ChunkRef) -> Option<&[u8]> {
        if !r.in_file() {
            return self.heap.get((r.0 & !ChunkRef::HEAP) as usize)?.as_deref();
        }
        let off = u64::from(r.off());
        if let Some(a) = &self.active
            && a.seq == r.seq()
            && off >= a.flushed
        {
            return record_data(a.buf.get((off - a.flushed) as usize..)?);
        }
        record_data(self.files.get(&r.seq())?.map.get(off as usize..)?)
    }

    /// Drops one reference to `r`; a heap chunk is freed. A file left without references
    /// stays until [`ChunkStore::drop_unreferenced`]: the checkpoint on disk may still name
    /// its chunks until the next one is written.
    pub fn release(&mut self, r: ChunkRef) {
        if !r.in_file() {
            let slot = (r.0 & !ChunkRef::HEAP) as u32;
            if let Some(b) = self.heap.get_mut(slot as usize).and_then(Option::take) {
                self.stats.heap_bytes -= b.len();
                self.free_slots.push(slot);
            }
            return;
        }
        if let Some(f) = self.files.get_mut(&r.seq()) {
            f.live = f.live.saturating_sub(1);
        }
    }

    pub fn stats(&self) -> ChunkStoreStats {
        self.stats
    }

    /// Heap bytes held (buffer, heap chunks, slot table).
    pub fn heap_size(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.buf.capacity())
            + self.stats.heap_bytes
            + self.heap.capacity() * std::mem::size_of::<Option<Box<[u8]>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_read_back_from_buffer_file_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ChunkStore::open(dir.path()).unwrap();
        let a = s.write(7, 77, 0, 10, b"first");
        assert_eq!(s.get(a), b"first", "readable from the buffer");
        s.flush().unwrap();
        let b = s.write(8, 88, 5, 15, b"second");
        assert_eq!((s.get(a), s.get(b)), (&b"first"[..], &b"second"[..]));
        assert!(s.is_durable(a) && !s.is_durable(b));
        let mark = s.mark();
        let c = s.write(7, 77, 11, 20, b"third");
        s.sync().unwrap();
        assert!(s.is_durable(c));
        drop(s);

        let s = ChunkStore::open(dir.path()).unwrap();
        let all = s.records(None);
        assert_eq!(
            all.iter().map(|c| (c.series, c.min_t)).collect::<Vec<_>>(),
            vec![(7, 0), (8, 5), (7, 11)]
        );
        assert_eq!(s.records(Some(mark)).len(), 1, "records from the mark on");
        assert_eq!(s.get(all[1].r), b"second");
        assert_eq!(s.lookup(all[2].r).map(|c| c.hash), Some(77));
        assert_eq!(
            s.lookup(ChunkRef::file(all[2].r.seq(), 9)),
            None,
            "not a record start"
        );
    }

    #[test]
    fn a_torn_tail_ends_the_file_and_later_writes_go_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ChunkStore::open(dir.path()).unwrap();
        let a = s.write(1, 1, 0, 1, b"kept");
        let b = s.write(1, 1, 2, 3, b"torn");
        s.sync().unwrap();
        drop(s);
        // Corrupt the second record's data.
        let path = file_path(dir.path(), 1);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"x", u64::from(b.off()) + REC_HEADER as u64)
            .unwrap();
        let mut s = ChunkStore::open(dir.path()).unwrap();
        assert_eq!(
            s.records(None).iter().map(|c| c.r).collect::<Vec<_>>(),
            vec![a]
        );
        s.attach(a);
        let c = s.write(2, 2, 0, 1, b"new");
        assert_eq!(c.seq(), 2, "never appended after a torn record");
        assert_eq!(s.get(a), b"kept");
    }

    #[test]
    fn files_without_live_chunks_are_deleted_except_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ChunkStore::open(dir.path()).unwrap();
        let big = vec![0u8; (FILE_SIZE / 3) as usize];
        let refs: Vec<ChunkRef> = (0..4).map(|i| s.write(i, 0, 0, 0, &big)).collect();
        assert_eq!(
            refs.iter().map(|r| r.seq()).collect::<Vec<_>>(),
            vec![1, 1, 2, 2]
        );
        s.release(refs[0]);
        s.drop_unreferenced();
        assert!(file_path(dir.path(), 1).exists());
        s.release(refs[1]);
        assert!(
            file_path(dir.path(), 1).exists(),
            "kept until the next checkpoint"
        );
        s.drop_unreferenced();
        assert!(
            !file_path(dir.path(), 1).exists(),
            "unreferenced file deleted"
        );
        s.release(refs[2]);
        s.release(refs[3]);
        s.drop_unreferenced();
        assert!(file_path(dir.path(), 2).exists(), "the active file stays");
        assert_eq!(s.stats().files, 1);
    }

    #[test]
    fn heap_chunks_are_freed_and_slots_reused() {
        let mut s = ChunkStore::in_memory();
        let a = s.write(0, 0, 0, 1, b"abc");
        assert!(!a.in_file());
        assert_eq!(s.get(a), b"abc");
        s.release(a);
        assert_eq!(s.get(a), b"");
        let b = s.write(0, 0, 0, 1, b"de");
        assert_eq!((a, s.get(b)), (b, &b"de"[..]));
        assert_eq!(s.stats().heap_bytes, 2);
    }
}
