//! Prometheus block files as `muninn import-blocks` reads them: the input is written as a
//! block's `index`, `tombstones` and `chunks/000001`, and each is read (every series of the
//! index, every chunk the index names when it fits, chunks at fixed offsets, decoded). A corrupt
//! file must give an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_storage::prom_tsdb::index::Index;
use muninn_storage::prom_tsdb::segments::Segments;
use muninn_storage::prom_tsdb::tombstones::Tombstones;

fn decode(encoding: u8, chunk: &[u8]) {
    match encoding {
        muninn_storage::chunk::ENC_XOR => {
            let _ = muninn_storage::chunk::decode_all(chunk);
        }
        e => {
            let _ = muninn_storage::chunk::histogram::decode_chunk(e, chunk);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let chunks = dir.path().join("chunks");
    std::fs::create_dir_all(&chunks).expect("mkdir");
    let index = dir.path().join("index");
    let tombstones = dir.path().join("tombstones");
    for p in [&index, &tombstones, &chunks.join("000001")] {
        std::fs::write(p, data).expect("write");
    }
    let _ = Tombstones::read(&tombstones);
    let segments = Segments::open(&chunks).ok();
    let mut buf = Vec::new();
    if let Ok(ix) = Index::open(&index)
        && let Ok(series) = ix.series()
        && let Some(seg) = &segments
    {
        for c in series.iter().flat_map(|s| s.chunks.iter()).take(64) {
            if let Ok(enc) = seg.chunk(c.reference, &mut buf) {
                decode(enc, &buf);
            }
        }
    }
    if let Some(seg) = &segments {
        for off in [8u64, 9, 16, (data.len() / 2) as u64, 1 << 32] {
            if let Ok(enc) = seg.chunk(off, &mut buf) {
                decode(enc, &buf);
            }
        }
    }
});
