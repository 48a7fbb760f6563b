//! The write-ahead log of one tenant: numbered segment files of framed records.
//!
//! Frame: `u32 LE payload length | u32 LE crc32 (IEEE) of payload | payload` (see
//! [`record`]). A request's records are written with one `write` before the request is
//! acknowledged, so SIGKILL at any moment loses nothing acknowledged (the data is in the
//! page cache); `FsyncPolicy::Always` adds an fdatasync per request for power loss.
//!
//! Replay reads every segment in order. An incomplete or corrupt frame is where the log ends:
//! the file is truncated there with a warning, never a crash. New writes always go to a fresh
//! segment after the last one, so a repaired file is never appended to.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use record::Record;

/// Segments are rotated beyond this size.
pub const SEGMENT_SIZE: u64 = 128 << 20;
const FRAME_HEADER: usize = 8;

/// When the WAL is synced to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Rely on the OS page cache: survives process crashes, not power loss.
    #[default]
    Never,
    /// fdatasync before every acknowledgement: survives power loss.
    Always,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => Err(format!("unknown fsync policy {s:?} (want never or always)")),
        }
    }
}

/// Counters the WAL reports to its owner's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalStats {
    pub bytes_written: u64,
    pub fsyncs: u64,
}

/// An open WAL. It holds no file descriptor between writes (a tenant that is idle costs no
/// fd), and its next segment is created by the first write after open, so restarts of an
/// idle tenant add no files.
pub struct Wal {
    dir: PathBuf,
    /// The segment writes go to.
    segment: u64,
    /// Whether `segment` has been created (by a write since open or the last rotation).
    created: bool,
    /// Bytes of whole frames in `segment`: where a failed write is cut back to.
    segment_bytes: u64,
    fsync: FsyncPolicy,
    #[cfg(test)]
    fail_after: Option<usize>,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    /// Frames dropped at a torn or corrupt point (one per affected segment).
    pub truncated: Vec<(PathBuf, u64)>,
    /// Samples not replayed because a head chunk file holds them (set by the head's owner).
    pub samples_in_chunk_files: u64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Numbered segment files of a WAL directory, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = vec![];
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing wal", dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io("listing wal", dir, e))?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Creates `dir` if missing; a new directory's entry in its parent is synced.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Largest write buffer a thread keeps between writes.
const KEEP_BUF: usize = 16 << 20;

thread_local! {
    /// The buffer a write's frames are built in: one per thread rather than one per tenant,
    /// so an idle tenant holds none, and a busy thread reuses its memory across requests.
    static WRITE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Wal {
    /// Replays `dir` through `apply` and repairs a torn tail. Later writes go to a new
    /// segment after the last one.
    pub fn open(
        dir: &Path,
        fsync: FsyncPolicy,
        mut apply: impl FnMut(Record),
    ) -> Result<(Self, ReplayReport)> {
        create_dir_durable(dir)?;
        let segments = list_segments(dir)?;
        let mut report = ReplayReport {
            segments: segments.len(),
            ..Default::default()
        };
        for (i, &n) in segments.iter().enumerate() {
            let path = segment_path(dir, n);
            let file = File::open(&path).map_err(|e| Error::io("opening wal segment", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| Error::io("reading wal segment", &path, e))?
                .len() as usize;
            let (records, good) = replay_segment(file, len, &mut apply)
                .map_err(|e| Error::io("reading wal segment", &path, e))?;
            report.records += records;
            report.bytes += good as u64;
            if good < len {
                tracing::warn!(
                    segment = %path.display(),
                    offset = good,
                    dropped_bytes = len - good,
                    "wal segment ends in a torn or corrupt record; truncating it there"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io("opening wal segment", &path, e))?;
                f.set_len(good as u64)
                    .map_err(|e| Error::io("truncating wal segment", &path, e))?;
                f.sync_all()
                    .map_err(|e| Error::io("syncing wal segment", &path, e))?;
                report.truncated.push((path.clone(), (len - good) as u64));
            }
            if segments.len() > 1 {
                tracing::info!(dir = %dir.display(), segment = i + 1, of = segments.len(), records = report.records, "wal replay progress");
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                segment: segments.last().map_or(0, |n| n + 1),
                created: false,
                segment_bytes: 0,
                fsync,
                #[cfg(test)]
                fail_after: None,
            },
            report,
        ))
    }

    /// Opens the current segment for appending, creating it (and syncing the directory) on
    /// the first write.
    fn open_segment(&mut self) -> Result<File> {
        let path = segment_path(&self.dir, self.segment);
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("opening wal segment", &path, e))?;
        if !self.created {
            self.created = true;
            self.segment_bytes = 0;
            sync_dir(&self.dir)?;
        }
        Ok(f)
    }

    /// Appends framed payloads, built by `build` into one buffer, with a single write; syncs
    /// per the policy. Returns what was written and synced.
    ///
    /// A failed write (e.g. ENOSPC after part of the buffer went out) is cut back to the last
    /// whole frame before the error is returned; if even that fails, later writes go to a
    /// new segment. Either way no later frame ever follows a torn one, so replay, which
    /// stops a segment at its first bad frame, never drops an acknowledged write.
    pub fn write(&mut self, build: impl FnOnce(&mut FrameBuilder<'_>)) -> Result<WalStats> {
        WRITE_BUF.with_borrow_mut(|buf| {
            buf.clear();
            build(&mut FrameBuilder { buf });
            let result = self.write_buf(buf);
            if buf.capacity() > KEEP_BUF {
                *buf = Vec::new();
            }
            result
        })
    }

    fn write_buf(&mut self, buf: &[u8]) -> Result<WalStats> {
        let len = buf.len() as u64;
        if len == 0 {
            return Ok(WalStats::default());
        }
        if self.created && self.segment_bytes > 0 && self.segment_bytes + len > SEGMENT_SIZE {
            self.rotate()?;
        }
        let mut file = self.open_segment()?;
        let path = segment_path(&self.dir, self.segment);
        let written = self.write_all(&mut file, buf).and_then(|()| {
            if self.fsync == FsyncPolicy::Always {
                file.sync_data()?;
            }
            Ok(())
        });
        if let Err(e) = written {
            let repaired = file
                .set_len(self.segment_bytes)
                .and_then(|()| file.sync_data());
            if let Err(re) = repaired {
                tracing::error!(segment = %path.display(), error = %re, "cannot cut a failed wal write back; moving to a new segment");
                self.segment += 1;
                self.created = false;
            }
            return Err(Error::io("writing wal", &path, e));
        }
        self.segment_bytes += len;
        Ok(WalStats {
            bytes_written: len,
            fsyncs: u64::from(self.fsync == FsyncPolicy::Always),
        })
    }

    #[cfg(not(test))]
    fn write_all(&self, file: &mut File, buf: &[u8]) -> std::io::Result<()> {
        file.write_all(buf)
    }

    /// Test builds can fail a write after `fail_after` bytes, as a full disk does.
    #[cfg(test)]
    fn write_all(&mut self, file: &mut File, buf: &[u8]) -> std::io::Result<()> {
        match self.fail_after.take() {
            Some(n) => {
                file.write_all(&buf[..n.min(buf.len())])?;
                Err(std::io::Error::from_raw_os_error(libc_enospc()))
            }
            None => file.write_all(buf),
        }
    }

    /// Starts a checkpoint: later writes go to a fresh segment. Write everything the head
    /// still needs with [`Wal::write`], then call [`Wal::finish_checkpoint`] with the returned
    /// segment number. A crash at any point leaves a WAL that replays to the same head: until
    /// the old segments are deleted, old records and the checkpoint overlap, and replay treats
    /// the repeats as duplicates.
    pub fn start_checkpoint(&mut self) -> Result<u64> {
        self.rotate()?;
        Ok(self.segment)
    }

    /// Syncs the checkpoint, then deletes every segment before `first_kept`. Returns how many.
    pub fn finish_checkpoint(&mut self, first_kept: u64) -> Result<usize> {
        self.sync_current()?;
        let mut removed = 0;
        // Newest first: a crash part way leaves the WAL starting where it started, with the
        // previous checkpoint's chunk mark (`docs/wal-format.md`).
        for n in list_segments(&self.dir)?
            .into_iter()
            .filter(|n| *n < first_kept)
            .rev()
        {
            let p = segment_path(&self.dir, n);
            std::fs::remove_file(&p).map_err(|e| Error::io("removing wal segment", &p, e))?;
            removed += 1;
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    fn sync_current(&self) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.segment);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("syncing wal segment", &path, e))
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync_current()?;
        if self.created {
            self.segment += 1;
        }
        self.created = false;
        self.segment_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
fn libc_enospc() -> i32 {
    28
}

/// Appends one whole frame holding `payload` to `out` (the codec [`FrameBuilder`] writes in
/// place; tools and tests that make segments use this).
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Builds frames into the WAL's write buffer.
pub struct FrameBuilder<'a> {
    buf: &'a mut Vec<u8>,
}

impl FrameBuilder<'_> {
    /// Adds one frame whose payload `encode` appends.
    pub fn frame(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        encode(self.buf);
        let payload = &self.buf[start + FRAME_HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Applies every intact frame of a segment of `len` bytes, read as a stream (one frame in
/// memory at a time: replay memory does not grow with the segment size); returns (records
/// applied, bytes of intact frames).
fn replay_segment(
    file: File,
    len: usize,
    apply: &mut impl FnMut(Record),
) -> std::io::Result<(u64, usize)> {
    use std::io::Read;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut pos = 0;
    let mut records = 0;
    let mut payload = Vec::new();
    while len - pos >= FRAME_HEADER {
        let mut h = [0u8; FRAME_HEADER];
        r.read_exact(&mut h)?;
        let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if n > len - pos - FRAME_HEADER {
            break;
        }
        payload.resize(n, 0);
        r.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        match record::decode(&payload) {
            Ok(rec) => apply(rec),
            Err(e) => {
                tracing::warn!(error = %e, offset = pos, "skipping undecodable wal record with a valid checksum");
            }
        }
        records += 1;
        pos += FRAME_HEADER + n;
        // A frame far larger than usual must not pin its buffer for the rest of replay.
        if payload.capacity() > 16 << 20 {
            payload = Vec::new();
        }
    }
    Ok((records, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples_frame(fb: &mut FrameBuilder<'_>, i: u32) {
        fb.frame(|b| record::encode_samples(&[(i, i64::from(i), f64::from(i))], b));
    }

    fn replay(dir: &Path) -> (Vec<u32>, ReplayReport) {
        let mut got = vec![];
        let (_, rep) = Wal::open(dir, FsyncPolicy::Never, |r| {
            if let Record::Samples(s) = r {
                got.extend(s.iter().map(|x| x.0));
            }
        })
        .unwrap();
        (got, rep)
    }

    #[test]
    fn torn_and_corrupt_tails_are_truncated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path(), FsyncPolicy::Always, |_| {}).unwrap();
            for i in 0..10 {
                w.write(|fb| samples_frame(fb, i)).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let full = fs::read(&seg).unwrap();
        // Torn: cut in the middle of the last frame.
        fs::write(&seg, &full[..full.len() - 3]).unwrap();
        let (got, rep) = replay(dir.path());
        assert_eq!(got, (0..9).collect::<Vec<_>>());
        assert_eq!(rep.truncated.len(), 1);
        assert_eq!(fs::read(&seg).unwrap().len(), full.len() / 10 * 9);
        // Corrupt: flip a byte inside frame 5 of the repaired segment.
        let mut data = fs::read(&seg).unwrap();
        let frame = full.len() / 10;
        data[frame * 5 + 10] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        let (got, _) = replay(dir.path());
        assert_eq!(got, (0..5).collect::<Vec<_>>());
        // Opening (replaying) creates no segment: restarts of an idle tenant add no files.
        assert_eq!(list_segments(dir.path()).unwrap(), vec![0]);
    }

    #[test]
    fn a_failed_write_is_cut_back_so_later_writes_survive_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path(), FsyncPolicy::Never, |_| {}).unwrap();
            w.write(|fb| samples_frame(fb, 0)).unwrap();
            // A full disk: part of the next frame reaches the file, then ENOSPC.
            w.fail_after = Some(5);
            assert!(w.write(|fb| samples_frame(fb, 1)).is_err());
            // The sender retries; later writes follow.
            w.write(|fb| samples_frame(fb, 1)).unwrap();
            w.write(|fb| samples_frame(fb, 2)).unwrap();
        }
        let (got, rep) = replay(dir.path());
        assert_eq!(got, vec![0, 1, 2], "nothing after the failed write is lost");
        assert!(rep.truncated.is_empty(), "no torn frame was left behind");
    }
}
