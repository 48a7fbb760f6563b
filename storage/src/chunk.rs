//! Chunk codecs: pure functions over byte slices.
//!
//! Prometheus's XOR encoding ([`xor`], encoding 1) and its native-histogram encodings
//! ([`histogram`], encodings 2 and 3), byte-compatible with Prometheus's chunks; and the
//! packed runs of format-version-3 block cells ([`packed`]).

mod bstream;
pub mod histogram;
pub mod packed;
mod varbit;
pub mod xor;

pub use xor::{XorAppender, XorIter, decode_all};

/// Prometheus's chunk encoding numbers.
pub const ENC_XOR: u8 = 1;
pub const ENC_HISTOGRAM: u8 = 2;
pub const ENC_FLOAT_HISTOGRAM: u8 = 3;

/// Samples per chunk at which the head cuts a new chunk, as Prometheus does.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Float samples as stored: a Prometheus XOR chunk (the head, ingesters' answers, blocks up to
/// format version 2) or a packed run (a format-version-3 block cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloatChunk {
    Xor(bytes::Bytes),
    Packed(bytes::Bytes),
}

impl FloatChunk {
    /// Encoded size in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            FloatChunk::Xor(b) | FloatChunk::Packed(b) => b.len(),
        }
    }

    /// Samples the chunk holds, from its header (0 when the header is unreadable).
    pub fn num_samples(&self) -> u64 {
        match self {
            FloatChunk::Xor(b) => b
                .get(..2)
                .map_or(0, |h| u64::from(u16::from_be_bytes([h[0], h[1]]))),
            FloatChunk::Packed(b) => packed::header(b).map_or(0, |h| h.count),
        }
    }

    /// All its samples, failing on corruption.
    pub fn samples(&self) -> crate::Result<Vec<(i64, f64)>> {
        let mut out = Vec::new();
        self.decode_range(i64::MIN, i64::MAX, &mut out)?;
        Ok(out)
    }

    /// Appends the samples in `[mint, maxt]` to `out`, failing on corruption.
    pub fn decode_range(
        &self,
        mint: i64,
        maxt: i64,
        out: &mut Vec<(i64, f64)>,
    ) -> crate::Result<()> {
        match self {
            FloatChunk::Xor(b) => {
                let mut it = XorIter::new(b);
                out.extend(it.by_ref().filter(|(t, _)| *t >= mint && *t <= maxt));
                match it.err() {
                    Some(e) => Err(crate::Error::CorruptChunk(e)),
                    None => Ok(()),
                }
            }
            FloatChunk::Packed(b) => packed::decode_range(b, mint, maxt, out),
        }
    }
}
