//! Closed head chunks in chunk files: replay skips what they hold, checkpoints name them,
//! and a torn file, a rewritten chunk or an interrupted checkpoint loses nothing.

use super::*;

const SERIES: usize = 20;
const STEP: i64 = 10_000;

/// A request giving series `hc{i="<i>"}` the sample `(t, v)` for each `(i, t, v)`.
fn request(samples: impl Iterator<Item = (usize, i64, f64)>) -> WriteRequest {
    WriteRequest {
        timeseries: samples
            .map(|(i, t, v)| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "hc".into(),
                    },
                    Label {
                        name: "i".into(),
                        value: i.to_string(),
                    },
                ],
                samples: vec![Sample {
                    value: v,
                    timestamp: t,
                }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

/// One request per timestamp in `[from, to)`, every [`STEP`]: series `hc{i="<i>"}` get value
/// `t / 1000 + i`.
fn push_range(db: &TenantDb, from: i64, to: i64) {
    for t in (from..to).step_by(STEP as usize) {
        let req = request((0..SERIES).map(|i| (i, t, (t / 1000) as f64 + i as f64)));
        let out = push_request(db, &req, &BOUNDS);
        assert_eq!(out.rejected_samples, 0, "{:?}", out.first);
    }
}

/// Pushes `(t, v)` to series `hc{i="3"}` with a one-hour out-of-order window.
fn push_out_of_order(db: &TenantDb, t: i64, v: f64) {
    let out = push_request(db, &request([(3, t, v)].into_iter()), &OOO_BOUNDS);
    assert_eq!(out.rejected_samples, 0, "{:?}", out.first);
}

fn all_series(db: &TenantDb) -> Vec<Vec<(i64, f64)>> {
    (0..SERIES)
        .map(|i| samples_where(db, "i", &i.to_string()))
        .collect()
}

fn expected(from: i64, to: i64) -> Vec<Vec<(i64, f64)>> {
    (0..SERIES)
        .map(|i| {
            (from..to)
                .step_by(STEP as usize)
                .map(|t| (t, (t / 1000) as f64 + i as f64))
                .collect()
        })
        .collect()
}

fn open(dir: &Path) -> (TenantDb, ReplayReport) {
    TenantDb::open(dir, FsyncPolicy::Never, i64::MAX).unwrap()
}

#[test]
fn closed_chunks_live_in_files_and_replay_skips_their_samples() {
    let dir = tempfile::tempdir().unwrap();
    let end = 600 * STEP;
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, end);
        let head = db.head.read();
        let stats = head.chunk_stats();
        assert_eq!((stats.files, stats.heap_bytes), (1, 0));
        assert!(stats.bytes_written > 0);
        // 600 samples each: 5 closed chunks in the file, only the open one on the heap.
        let (_, chunks, _) = head.stats();
        assert_eq!(chunks, SERIES as u64 * 5);
        drop(head);
        assert_eq!(all_series(&db), expected(0, end));
        // Dropped without a checkpoint, as by kill -9: the page cache holds WAL and files.
    }
    let (db, report) = open(dir.path());
    assert_eq!(all_series(&db), expected(0, end));
    assert_eq!(
        report.samples_in_chunk_files,
        SERIES as u64 * 480,
        "samples in closed chunks are not replayed"
    );
    // A checkpoint names the chunks instead of copying their samples; after it, replay
    // reads the checkpoint and the chunk files.
    assert_eq!(ship_before(&db, 120 * STEP), SERIES);
    db.drop_shipped(Instant::now()).unwrap();
    push_range(&db, end, end + 100 * STEP);
    drop(db);
    let (db, report) = open(dir.path());
    assert_eq!(all_series(&db), expected(120 * STEP, end + 100 * STEP));
    assert!(report.samples_in_chunk_files > 0);
    // Copied as samples, the 480 samples per series in closed chunks would take about
    // 13 bytes each in the checkpoint.
    assert!(
        report.bytes < (SERIES * 480 * 10) as u64,
        "the checkpoint holds chunk references, not samples ({} bytes)",
        report.bytes
    );
}

#[test]
fn a_torn_chunk_file_loses_nothing_the_wal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let end = 400 * STEP;
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, end);
    }
    // Corrupt the newest third of the records.
    let chunk_dir = dir.path().join(CHUNKS_DIR);
    let stored = ChunkStore::open(&chunk_dir).unwrap().records(None);
    let (file, off) = stored[stored.len() * 2 / 3].r.file_offset().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(chunk_dir.join(format!("{file:08}")))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xff; 64], u64::from(off) + 40).unwrap();
    drop(f);
    let (db, report) = open(dir.path());
    assert_eq!(all_series(&db), expected(0, end));
    assert!(report.samples_in_chunk_files < SERIES as u64 * 360);
    // New chunks go to a new file, never after the torn record.
    push_range(&db, end, end + 200 * STEP);
    drop(db);
    let (db, _) = open(dir.path());
    assert_eq!(all_series(&db), expected(0, end + 200 * STEP));
}

#[test]
fn a_chunk_rewritten_after_the_checkpoint_replays_as_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, 300 * STEP);
        ship_before(&db, 0);
        db.drop_shipped(Instant::now()).unwrap(); // a checkpoint naming the chunks
        // Into the first closed chunk (written before the checkpoint), between two samples.
        push_out_of_order(&db, 15_000, -1.0);
    }
    let (db, _) = open(dir.path());
    let mut want = expected(0, 300 * STEP);
    want[3].insert(2, (15_000, -1.0));
    assert_eq!(all_series(&db), want);
    assert_eq!(
        db.head.read().chunk_stats().bytes_written,
        0,
        "the rewritten chunk replaced the checkpoint's: replay rewrote nothing"
    );
}

#[test]
fn an_interrupted_checkpoint_replays_old_segments_and_chunks_together() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let end = 500 * STEP;
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, end);
        // The WAL segments as they are before the checkpoint.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, old.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        assert_eq!(ship_before(&db, 250 * STEP), SERIES);
        db.drop_shipped(Instant::now()).unwrap();
        assert_eq!(all_series(&db), expected(250 * STEP, end));
    }
    // A crash before the old segments were deleted: they replay first, then the checkpoint.
    for e in std::fs::read_dir(old.path()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let (db, _) = open(dir.path());
    assert_eq!(
        all_series(&db),
        expected(0, end),
        "retained again, in order, nothing twice"
    );
}

#[test]
fn an_out_of_order_sample_survives_losing_the_rewrite_of_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, 300 * STEP);
        ship_before(&db, 0);
        db.drop_shipped(Instant::now()).unwrap(); // the checkpoint names the first chunk
        push_out_of_order(&db, 15_000, -1.0);
        // A second one into the same chunk: replay meets it right after the first.
        push_out_of_order(&db, 25_000, -2.0);
    }
    // The rewrites of the chunk (the two newest records) never reached the disk.
    let chunk_dir = dir.path().join(CHUNKS_DIR);
    let stored = ChunkStore::open(&chunk_dir).unwrap().records(None);
    let last = stored[stored.len() - 2];
    assert_eq!((last.series, last.min_t), (3, 0), "the first rewrite");
    let (file, off) = last.r.file_offset().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(chunk_dir.join(format!("{file:08}")))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0; 8], u64::from(off)).unwrap();
    drop(f);
    let (db, _) = open(dir.path());
    let mut want = expected(0, 300 * STEP);
    want[3].insert(2, (15_000, -1.0));
    want[3].insert(4, (25_000, -2.0));
    assert_eq!(
        all_series(&db),
        want,
        "taken from the WAL, not hidden by the old chunk"
    );
}

#[test]
fn stored_chunks_respect_the_replay_time_bounds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _) = open(dir.path());
        push_range(&db, 0, 600 * STEP);
    }
    // The clock went back: what is now in the future is left out, from chunks as from the
    // WAL, and the rest of a chunk that straddles the bound stays.
    let newest_ok = 300 * STEP + 5_000;
    let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, newest_ok).unwrap();
    assert_eq!(all_series(&db), expected(0, 301 * STEP));
    assert_eq!(db.head.read().max_time(), Some(300 * STEP));
}

#[test]
fn chunks_stay_on_the_heap_when_their_file_cannot_be_written_and_checkpoints_copy_them() {
    let dir = tempfile::tempdir().unwrap();
    let chunk_dir = dir.path().join(CHUNKS_DIR);
    {
        let (db, _) = open(dir.path());
        // The chunk directory becomes unusable (a file where it was): no chunk file can be
        // created.
        std::fs::remove_dir_all(&chunk_dir).unwrap();
        std::fs::write(&chunk_dir, b"not a directory").unwrap();
        push_range(&db, 0, 300 * STEP);
        let stats = db.head.read().chunk_stats();
        assert_eq!(stats.files, 0);
        assert!(stats.heap_bytes > 0, "closed chunks kept on the heap");
        assert_eq!(all_series(&db), expected(0, 300 * STEP));
        // A checkpoint copies their samples (no file holds them).
        ship_before(&db, 0);
        db.drop_shipped(Instant::now()).unwrap();
        push_range(&db, 300 * STEP, 320 * STEP);
    }
    std::fs::remove_file(&chunk_dir).unwrap();
    let (db, report) = open(dir.path());
    assert_eq!(all_series(&db), expected(0, 320 * STEP));
    assert_eq!(report.samples_in_chunk_files, 0);
}
