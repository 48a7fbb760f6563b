//! The encoding of one `s_data_<n>` cell: the series' Prometheus XOR chunks in that slice.
//!
//! `uvarint count`, then per chunk `varint min_t`, `uvarint (max_t - min_t)`, `uvarint len`
//! and `len` bytes of a Prometheus XOR chunk (2-byte sample count included).

use crate::chunk::{SAMPLES_PER_CHUNK, XorAppender};
use crate::{Error, Result};

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_uvarint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let (mut x, mut s) = (0u64, 0u32);
    loop {
        let c = *b.get(*pos).ok_or(Error::CorruptChunk("truncated cell"))?;
        *pos += 1;
        if s >= 64 {
            return Err(Error::CorruptChunk("overlong varint in cell"));
        }
        x |= u64::from(c & 0x7f) << s;
        if c < 0x80 {
            return Ok(x);
        }
        s += 7;
    }
}

/// Encodes samples (time-ordered) as chunks of at most 120 samples.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) -> u64 {
    let chunks: Vec<&[(i64, f64)]> = samples.chunks(SAMPLES_PER_CHUNK as usize).collect();
    put_uvarint(out, chunks.len() as u64);
    for c in &chunks {
        let mut a = XorAppender::with_capacity(c.len() * 2 + 8);
        for &(t, v) in *c {
            a.append(t, v);
        }
        let (min_t, max_t) = (c[0].0, c[c.len() - 1].0);
        put_uvarint(out, ((min_t << 1) ^ (min_t >> 63)) as u64);
        put_uvarint(out, (max_t - min_t) as u64);
        put_uvarint(out, a.bytes().len() as u64);
        out.extend_from_slice(a.bytes());
    }
    chunks.len() as u64
}

/// One chunk of a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellChunk<'a> {
    pub min_t: i64,
    pub max_t: i64,
    pub data: &'a [u8],
}

/// Decodes a cell into its chunks.
pub fn decode(b: &[u8]) -> Result<Vec<CellChunk<'_>>> {
    let mut pos = 0;
    let n = read_uvarint(b, &mut pos)?;
    let mut out = Vec::with_capacity((n as usize).min(b.len()));
    for _ in 0..n {
        let z = read_uvarint(b, &mut pos)?;
        let min_t = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let max_t = min_t.wrapping_add(read_uvarint(b, &mut pos)? as i64);
        let len = read_uvarint(b, &mut pos)? as usize;
        let data = b
            .get(pos..pos.saturating_add(len))
            .ok_or(Error::CorruptChunk("truncated cell chunk"))?;
        pos += len;
        out.push(CellChunk { min_t, max_t, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let samples: Vec<(i64, f64)> = (0..300)
            .map(|i| (-5000 + i * 15_000, i as f64 * 0.5))
            .collect();
        let mut b = vec![];
        assert_eq!(encode(&samples, &mut b), 3);
        let chunks = decode(&b).unwrap();
        assert_eq!(chunks.len(), 3);
        let mut got = vec![];
        for c in &chunks {
            got.extend(crate::chunk::decode_all(c.data).unwrap());
        }
        assert_eq!(got, samples);
        assert_eq!(chunks[0].min_t, -5000);
        for n in 0..b.len() {
            let _ = decode(&b[..n]);
        }
    }
}
