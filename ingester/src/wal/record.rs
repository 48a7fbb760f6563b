//! WAL record payloads: pure encode/decode, no I/O.
//!
//! A payload is a type byte and a body. Series records carry the labels of newly created
//! series with the id they got in the head that wrote them; samples records refer to those
//! ids; metadata records carry metric family metadata; histogram records carry native
//! histograms in [`codec`]'s form.

use muninn_proto::varint::{put_uvarint, put_varint, read_uvarint, read_varint};
use muninn_storage::histogram::{HistSample, codec};

const SERIES: u8 = 1;
const SAMPLES: u8 = 2;
const METADATA: u8 = 3;
const SHIPPED: u8 = 4;
const EXEMPLARS: u8 = 5;
const HISTOGRAMS: u8 = 6;
const HEAD_CHUNKS: u8 = 7;
const CHUNK_MARK: u8 = 8;

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(u32, Vec<(String, String)>)>),
    Samples(Vec<(u32, i64, f64)>),
    /// (family, type, help, unit)
    Metadata(Vec<(String, String, String, String)>),
    /// (series id, timestamp): the series' samples up to and including the timestamp are in
    /// an uploaded, indexed block.
    Shipped(Vec<(u32, i64)>),
    /// (series id, timestamp, value, labels) of stored exemplars.
    Exemplars(Vec<ExemplarEntry>),
    /// (series id, timestamp, histogram) of native-histogram samples.
    Histograms(Vec<(u32, i64, HistSample)>),
    /// (series id, closed chunks in head chunk files, oldest first), as a checkpoint lists
    /// them (see [`crate::head::ChunkRef`]).
    HeadChunks(Vec<(u32, Vec<u64>)>),
    /// The first record of a checkpoint: head chunk records from this (file, offset) on are
    /// newer than the checkpoint.
    ChunkMark(u32, u32),
}

/// One exemplar as the WAL records it.
pub type ExemplarEntry = (u32, i64, f64, Vec<(String, String)>);

/// Why a payload does not decode (its frame's crc matched, so this is a writer bug or an
/// unknown newer record type).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("truncated record")]
    Truncated,
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("record string is not UTF-8")]
    Utf8,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Encodes the labels of new series.
pub fn encode_series<'a>(
    series: impl ExactSizeIterator<Item = (u32, &'a [(&'a str, &'a str)])>,
    out: &mut Vec<u8>,
) {
    out.push(SERIES);
    put_uvarint(out, series.len() as u64);
    for (id, labels) in series {
        put_uvarint(out, u64::from(id));
        put_uvarint(out, labels.len() as u64);
        for (n, v) in labels {
            put_str(out, n);
            put_str(out, v);
        }
    }
}

/// Encodes samples; timestamps as deltas from the first, values as their raw bits.
pub fn encode_samples(samples: &[(u32, i64, f64)], out: &mut Vec<u8>) {
    out.push(SAMPLES);
    put_uvarint(out, samples.len() as u64);
    let base = samples.first().map_or(0, |s| s.1);
    put_varint(out, base);
    for &(id, t, v) in samples {
        put_uvarint(out, u64::from(id));
        put_varint(out, t.wrapping_sub(base));
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Encodes metadata entries `(family, type, help, unit)`.
pub fn encode_metadata(entries: &[(&str, &str, &str, &str)], out: &mut Vec<u8>) {
    out.push(METADATA);
    put_uvarint(out, entries.len() as u64);
    for (f, t, h, u) in entries {
        put_str(out, f);
        put_str(out, t);
        put_str(out, h);
        put_str(out, u);
    }
}

/// Encodes shipped marks `(series id, last shipped timestamp)`.
pub fn encode_shipped(marks: &[(u32, i64)], out: &mut Vec<u8>) {
    out.push(SHIPPED);
    put_uvarint(out, marks.len() as u64);
    for &(id, t) in marks {
        put_uvarint(out, u64::from(id));
        put_varint(out, t);
    }
}

/// Encodes exemplars `(series id, timestamp, value, labels)`.
pub fn encode_exemplars<'a>(
    entries: impl ExactSizeIterator<Item = (u32, i64, f64, &'a [(String, String)])>,
    out: &mut Vec<u8>,
) {
    out.push(EXEMPLARS);
    put_uvarint(out, entries.len() as u64);
    for (id, t, v, labels) in entries {
        put_uvarint(out, u64::from(id));
        put_varint(out, t);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
        put_uvarint(out, labels.len() as u64);
        for (n, val) in labels {
            put_str(out, n);
            put_str(out, val);
        }
    }
}

/// Encodes the closed chunks each series keeps in chunk files (references ascending per
/// series, stored as deltas).
pub fn encode_head_chunks<'a>(
    series: impl ExactSizeIterator<Item = (u32, &'a [u64])>,
    out: &mut Vec<u8>,
) {
    out.push(HEAD_CHUNKS);
    put_uvarint(out, series.len() as u64);
    for (id, refs) in series {
        put_uvarint(out, u64::from(id));
        put_uvarint(out, refs.len() as u64);
        let mut prev = 0u64;
        for &r in refs {
            put_varint(out, r.wrapping_sub(prev) as i64);
            prev = r;
        }
    }
}

/// Encodes a checkpoint's chunk file position.
pub fn encode_chunk_mark(file: u32, offset: u32, out: &mut Vec<u8>) {
    out.push(CHUNK_MARK);
    put_uvarint(out, u64::from(file));
    put_uvarint(out, u64::from(offset));
}

/// Encodes native-histogram samples `(series id, timestamp, histogram)`.
pub fn encode_histograms<'a>(
    entries: impl ExactSizeIterator<Item = (u32, i64, &'a HistSample)>,
    out: &mut Vec<u8>,
) {
    out.push(HISTOGRAMS);
    put_uvarint(out, entries.len() as u64);
    for (id, t, h) in entries {
        put_uvarint(out, u64::from(id));
        put_varint(out, t);
        codec::encode(h, out);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        read_uvarint(self.b, &mut self.pos).ok_or(RecordError::Truncated)
    }
    fn varint(&mut self) -> Result<i64, RecordError> {
        read_varint(self.b, &mut self.pos).ok_or(RecordError::Truncated)
    }
    fn count(&mut self) -> Result<usize, RecordError> {
        // Every element takes at least one byte: a larger count is corruption, not a reason
        // to allocate.
        let n = self.uvarint()? as usize;
        if n > self.b.len() - self.pos {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, RecordError> {
        let n = self.uvarint()? as usize;
        let s = self
            .b
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(RecordError::Truncated)?;
        self.pos += n;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError::Utf8)
    }
    fn u64_le(&mut self) -> Result<u64, RecordError> {
        let s = self
            .b
            .get(self.pos..self.pos + 8)
            .ok_or(RecordError::Truncated)?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

/// Decodes a payload.
pub fn decode(payload: &[u8]) -> Result<Record, RecordError> {
    let (&ty, body) = payload.split_first().ok_or(RecordError::Truncated)?;
    let mut r = Reader { b: body, pos: 0 };
    match ty {
        SERIES => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()? as u32;
                let nl = r.count()?;
                let mut labels = Vec::with_capacity(nl);
                for _ in 0..nl {
                    labels.push((r.string()?, r.string()?));
                }
                out.push((id, labels));
            }
            Ok(Record::Series(out))
        }
        SAMPLES => {
            let n = r.count()?;
            let base = r.varint()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()? as u32;
                let t = base.wrapping_add(r.varint()?);
                let v = f64::from_bits(r.u64_le()?);
                out.push((id, t, v));
            }
            Ok(Record::Samples(out))
        }
        METADATA => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push((r.string()?, r.string()?, r.string()?, r.string()?));
            }
            Ok(Record::Metadata(out))
        }
        SHIPPED => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push((r.uvarint()? as u32, r.varint()?));
            }
            Ok(Record::Shipped(out))
        }
        EXEMPLARS => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()? as u32;
                let t = r.varint()?;
                let v = f64::from_bits(r.u64_le()?);
                let nl = r.count()?;
                let mut labels = Vec::with_capacity(nl);
                for _ in 0..nl {
                    labels.push((r.string()?, r.string()?));
                }
                out.push((id, t, v, labels));
            }
            Ok(Record::Exemplars(out))
        }
        HISTOGRAMS => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()? as u32;
                let t = r.varint()?;
                let h = codec::decode(r.b, &mut r.pos).ok_or(RecordError::Truncated)?;
                out.push((id, t, h));
            }
            Ok(Record::Histograms(out))
        }
        HEAD_CHUNKS => {
            let n = r.count()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()? as u32;
                let nr = r.count()?;
                let mut refs = Vec::with_capacity(nr);
                let mut prev = 0u64;
                for _ in 0..nr {
                    prev = prev.wrapping_add(r.varint()? as u64);
                    refs.push(prev);
                }
                out.push((id, refs));
            }
            Ok(Record::HeadChunks(out))
        }
        CHUNK_MARK => Ok(Record::ChunkMark(r.uvarint()? as u32, r.uvarint()? as u32)),
        other => Err(RecordError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let labels: &[(&str, &str)] = &[("__name__", "up"), ("job", "x")];
        let mut b = vec![];
        encode_series([(7u32, labels)].into_iter(), &mut b);
        assert_eq!(
            decode(&b).unwrap(),
            Record::Series(vec![(
                7,
                vec![("__name__".into(), "up".into()), ("job".into(), "x".into())]
            )])
        );
        let stale = f64::from_bits(muninn_storage::STALE_NAN_BITS);
        let mut b = vec![];
        encode_samples(&[(1, 1000, 1.5), (2, 900, stale)], &mut b);
        let Record::Samples(s) = decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!((s[0].0, s[0].1, s[0].2), (1, 1000, 1.5));
        assert_eq!(
            (s[1].1, s[1].2.to_bits()),
            (900, muninn_storage::STALE_NAN_BITS)
        );
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
        let mut b = vec![];
        encode_metadata(&[("up", "gauge", "h", "")], &mut b);
        assert!(matches!(decode(&b).unwrap(), Record::Metadata(m) if m[0].0 == "up"));
        let mut b = vec![];
        encode_shipped(&[(3, i64::MIN), (4, 7_200_000)], &mut b);
        assert_eq!(
            decode(&b).unwrap(),
            Record::Shipped(vec![(3, i64::MIN), (4, 7_200_000)])
        );
        let mut b = vec![];
        let refs = [(1u64 << 32) | 8, (1 << 32) | 200, (3 << 32) | 8];
        encode_head_chunks([(5u32, &refs[..]), (6, &[][..])].into_iter(), &mut b);
        assert_eq!(
            decode(&b).unwrap(),
            Record::HeadChunks(vec![(5, refs.to_vec()), (6, vec![])])
        );
        let mut b = vec![];
        encode_chunk_mark(4, 1 << 27, &mut b);
        assert_eq!(decode(&b).unwrap(), Record::ChunkMark(4, 1 << 27));
        assert_eq!(decode(&[9]), Err(RecordError::UnknownType(9)));
    }
}
