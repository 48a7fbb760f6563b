//! Muninn's XOR codec against chunks written by Prometheus itself.
//!
//! Reads the promtool-made blocks in `../shared/reference-blocks/` (a minimal TSDB index v2
//! and chunk-file reader lives here), decodes every chunk, compares each sample with
//! `promtool tsdb dump`'s output, and re-encodes the samples expecting the very same bytes.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use muninn_storage::chunk::{XorAppender, decode_all};

const BLOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference-blocks");

fn uvarint(b: &[u8], pos: &mut usize) -> u64 {
    let (mut x, mut s) = (0u64, 0);
    loop {
        let c = b[*pos];
        *pos += 1;
        x |= u64::from(c & 0x7f) << s;
        if c < 0x80 {
            return x;
        }
        s += 7;
    }
}

fn varint(b: &[u8], pos: &mut usize) -> i64 {
    let u = uvarint(b, pos);
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// (label string as promtool prints it, chunk refs) per series of a block's index.
fn read_index(index: &[u8]) -> Vec<(String, Vec<u64>)> {
    let toc = index.len() - 52;
    let symbols_off = be_u64(index, toc) as usize;
    let series_off = be_u64(index, toc + 8) as usize;
    let label_indices_off = be_u64(index, toc + 16) as usize;

    let count = be_u32(index, symbols_off + 4) as usize;
    let mut pos = symbols_off + 8;
    let mut symbols = Vec::with_capacity(count);
    for _ in 0..count {
        let n = uvarint(index, &mut pos) as usize;
        symbols.push(String::from_utf8(index[pos..pos + n].to_vec()).unwrap());
        pos += n;
    }

    let mut out = vec![];
    let mut pos = series_off;
    while pos < label_indices_off {
        pos = pos.div_ceil(16) * 16;
        if pos >= label_indices_off {
            break;
        }
        let len = uvarint(index, &mut pos) as usize;
        if len == 0 {
            continue;
        }
        let end = pos + len;
        let nlabels = uvarint(index, &mut pos);
        let mut parts = vec![];
        for _ in 0..nlabels {
            let n = &symbols[uvarint(index, &mut pos) as usize];
            let v = &symbols[uvarint(index, &mut pos) as usize];
            parts.push(format!("{n}={v:?}"));
        }
        let nchunks = uvarint(index, &mut pos);
        let mut refs = vec![];
        let (mut maxt, mut cref) = (0i64, 0i64);
        for i in 0..nchunks {
            if i == 0 {
                let mint = varint(index, &mut pos);
                maxt = mint + uvarint(index, &mut pos) as i64;
                cref = uvarint(index, &mut pos) as i64;
            } else {
                let mint = maxt + uvarint(index, &mut pos) as i64;
                maxt = mint + uvarint(index, &mut pos) as i64;
                cref += varint(index, &mut pos);
            }
            refs.push(cref as u64);
        }
        assert_eq!(pos, end, "series entry fully consumed");
        pos = end + 4; // crc32
        out.push((format!("{{{}}}", parts.join(", ")), refs));
    }
    out
}

/// The chunk bytes at `cref` (segment in the high 32 bits, offset in the low).
fn chunk_at(segments: &[Vec<u8>], cref: u64) -> &[u8] {
    let seg = &segments[(cref >> 32) as usize];
    let mut pos = (cref & 0xffff_ffff) as usize;
    let len = uvarint(seg, &mut pos) as usize;
    assert_eq!(seg[pos], 1, "XOR encoding");
    &seg[pos + 1..pos + 1 + len]
}

fn dump() -> HashMap<String, Vec<(i64, f64)>> {
    let f = std::fs::File::open(Path::new(BLOCKS).join("dump.txt.gz")).expect("reference dump");
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .unwrap();
    let mut m: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for line in s.lines() {
        let close = line.rfind('}').unwrap();
        let (lbls, rest) = line.split_at(close + 1);
        let mut it = rest.split_whitespace();
        let v: f64 = it.next().unwrap().parse().unwrap();
        let t: i64 = it.next().unwrap().parse().unwrap();
        m.entry(lbls.to_owned()).or_default().push((t, v));
    }
    m
}

#[test]
fn decodes_and_reencodes_prometheus_chunks_byte_for_byte() {
    let mut want = dump();
    let mut blocks: Vec<_> = std::fs::read_dir(BLOCKS)
        .expect("../shared/reference-blocks")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("index").exists())
        .map(|e| e.path())
        .collect();
    blocks.sort();
    assert_eq!(blocks.len(), 3);

    let (mut chunks, mut samples) = (0usize, 0usize);
    let mut got: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for b in &blocks {
        let index = std::fs::read(b.join("index")).unwrap();
        let mut segs: Vec<_> = std::fs::read_dir(b.join("chunks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        let segments: Vec<Vec<u8>> = segs.iter().map(|p| std::fs::read(p).unwrap()).collect();
        for (lbls, refs) in read_index(&index) {
            for cref in refs {
                let data = chunk_at(&segments, cref);
                let decoded = decode_all(data).expect("decodes");
                let mut app = XorAppender::default();
                for &(t, v) in &decoded {
                    app.append(t, v);
                }
                assert_eq!(app.bytes(), data, "re-encoded chunk of {lbls} differs");
                chunks += 1;
                samples += decoded.len();
                got.entry(lbls.clone()).or_default().extend(decoded);
            }
        }
    }
    assert_eq!(samples, 187_200);
    assert_eq!(chunks, 3 * 520);
    assert_eq!(got.len(), want.len());
    for (lbls, g) in &mut got {
        g.sort_by_key(|s| s.0);
        let w = want
            .get_mut(lbls)
            .unwrap_or_else(|| panic!("{lbls} not in dump"));
        w.sort_by_key(|s| s.0);
        assert_eq!(g.len(), w.len(), "{lbls}");
        for (a, b) in g.iter().zip(w.iter()) {
            assert_eq!(a.0, b.0, "{lbls}");
            assert!(
                a.1 == b.1 || (a.1.is_nan() && b.1.is_nan()),
                "{lbls} at {}: {} vs {}",
                a.0,
                a.1,
                b.1
            );
        }
    }
}
