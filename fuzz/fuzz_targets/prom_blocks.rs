//! Prometheus block files as `muninn import-blocks` reads them. The input is split in three
//! (two little-endian u16 lengths first): an `index`, a `tombstones` file and a chunk segment
//! `chunks/000001`. Checksums the reader verifies first (the index's table of contents and
//! symbol table, the tombstones' entries) are recomputed, and the segment gets its magic, so
//! mutations reach the parsers behind them. Every series of the index is read, every chunk it
//! names (and chunks at fixed offsets) decoded. A corrupt file must give an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_storage::prom_tsdb::index::Index;
use muninn_storage::prom_tsdb::segments::Segments;
use muninn_storage::prom_tsdb::tombstones::Tombstones;

fn crc(b: &[u8]) -> [u8; 4] {
    (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, b) as u32).to_be_bytes()
}

/// Recomputes the table of contents' and the symbol table's checksums where they fit.
fn fix_index(b: &mut [u8]) {
    let Some(toc) = b.len().checked_sub(52) else {
        return;
    };
    let sum = crc(&b[toc..toc + 48]);
    b[toc + 48..toc + 52].copy_from_slice(&sum);
    let off = u64::from_be_bytes(b[toc..toc + 8].try_into().unwrap_or_default()) as usize;
    let Some(len) = b
        .get(off..off.saturating_add(4))
        .map(|l| u32::from_be_bytes(l.try_into().unwrap_or_default()) as usize)
    else {
        return;
    };
    let end = off.saturating_add(4).saturating_add(len);
    if end.saturating_add(4) <= toc {
        let sum = crc(&b[off + 4..end]);
        b[end..end + 4].copy_from_slice(&sum);
    }
}

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
    if data.len() < 4 {
        return;
    }
    let la = u16::from_le_bytes([data[0], data[1]]) as usize;
    let lb = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (index, rest) = rest.split_at(la.min(rest.len()));
    let (tomb, segment) = rest.split_at(lb.min(rest.len()));
    let mut index = index.to_vec();
    fix_index(&mut index);
    let mut tomb = tomb.to_vec();
    if tomb.len() >= 9 {
        let n = tomb.len();
        let sum = crc(&tomb[5..n - 4]);
        tomb[n - 4..].copy_from_slice(&sum);
    }
    let mut seg = vec![0x85, 0xBD, 0x40, 0xDD, 1, 0, 0, 0];
    seg.extend_from_slice(segment);

    let dir = tempfile::tempdir().expect("tempdir");
    let chunks = dir.path().join("chunks");
    std::fs::create_dir_all(&chunks).expect("mkdir");
    std::fs::write(dir.path().join("index"), &index).expect("write");
    std::fs::write(dir.path().join("tombstones"), &tomb).expect("write");
    std::fs::write(chunks.join("000001"), &seg).expect("write");
    let _ = Tombstones::read(&dir.path().join("tombstones"));
    let segments = Segments::open(&chunks).ok();
    let mut buf = Vec::new();
    if let Ok(ix) = Index::open(&dir.path().join("index"))
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
        for off in [8u64, 9, 16, ((segment.len() + 8) / 2) as u64, 1 << 32] {
            if let Ok(enc) = seg.chunk(off, &mut buf) {
                decode(enc, &buf);
            }
        }
    }
});

