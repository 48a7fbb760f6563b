//! Remote write's `Histogram` message (1.0 `prometheus.Histogram`, identical in 2.0's
//! `io.prometheus.write.v2.Histogram`), decoded into an owned form the ingester validates
//! and converts. Repeated numeric fields are read packed or unpacked, as protobuf allows.

use crate::varint::read_uvarint;
use crate::write_view::{DecodeError, read_key, read_len, skip};

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;

/// Integer or float count (the `count` and `zero_count` oneofs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Count {
    Int(u64),
    Float(f64),
}

impl Default for Count {
    fn default() -> Self {
        Count::Int(0)
    }
}

/// A decoded histogram sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WireHistogram {
    pub count: Count,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: Count,
    /// `(offset, length)` per span.
    pub negative_spans: Vec<(i32, u32)>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<(i32, u32)>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
    /// 0 unknown, 1 reset, 2 no reset, 3 gauge.
    pub reset_hint: i32,
    pub timestamp_ms: i64,
    pub custom_values: Vec<f64>,
}

impl WireHistogram {
    /// Whether this is a float histogram (its count is a float).
    pub fn is_float(&self) -> bool {
        matches!(self.count, Count::Float(_))
    }
}

fn zigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn f64_at(buf: &[u8], pos: &mut usize) -> Result<f64, DecodeError> {
    let b: [u8; 8] = buf
        .get(*pos..*pos + 8)
        .ok_or(DecodeError::Truncated)?
        .try_into()
        .map_err(|_| DecodeError::Truncated)?;
    *pos += 8;
    Ok(f64::from_le_bytes(b))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    read_uvarint(buf, pos).ok_or(DecodeError::Varint)
}

/// Appends a repeated `sint64` (packed or one).
fn sint64s(buf: &[u8], pos: &mut usize, wt: u8, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    match wt {
        VARINT => out.push(zigzag(varint(buf, pos)?)),
        LEN => {
            let p = read_len(buf, pos)?;
            let mut q = 0;
            while q < p.len() {
                out.push(zigzag(varint(p, &mut q)?));
            }
        }
        _ => return Err(DecodeError::WireType(wt)),
    }
    Ok(())
}

/// Appends a repeated `double` (packed or one).
fn doubles(buf: &[u8], pos: &mut usize, wt: u8, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    match wt {
        I64 => out.push(f64_at(buf, pos)?),
        LEN => {
            let p = read_len(buf, pos)?;
            if p.len() % 8 != 0 {
                return Err(DecodeError::Truncated);
            }
            out.extend(p.chunks_exact(8).map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b)
            }));
        }
        _ => return Err(DecodeError::WireType(wt)),
    }
    Ok(())
}

fn span(buf: &[u8]) -> Result<(i32, u32), DecodeError> {
    let (mut offset, mut length) = (0i32, 0u32);
    let mut pos = 0;
    while pos < buf.len() {
        let (f, wt) = read_key(buf, &mut pos)?;
        match (f, wt) {
            (1, VARINT) => offset = zigzag(varint(buf, &mut pos)?) as i32,
            (2, VARINT) => length = varint(buf, &mut pos)? as u32,
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok((offset, length))
}

/// Decodes one `Histogram` message.
pub fn decode_histogram(buf: &[u8]) -> Result<WireHistogram, DecodeError> {
    let mut h = WireHistogram::default();
    let mut pos = 0;
    while pos < buf.len() {
        let (f, wt) = read_key(buf, &mut pos)?;
        let want = |w: u8| {
            if wt == w {
                Ok(())
            } else {
                Err(DecodeError::FieldType {
                    field: f,
                    got: wt,
                    want: w,
                })
            }
        };
        match f {
            1 => {
                want(VARINT)?;
                h.count = Count::Int(varint(buf, &mut pos)?);
            }
            2 => {
                want(I64)?;
                h.count = Count::Float(f64_at(buf, &mut pos)?);
            }
            3 => {
                want(I64)?;
                h.sum = f64_at(buf, &mut pos)?;
            }
            4 => {
                want(VARINT)?;
                h.schema = zigzag(varint(buf, &mut pos)?) as i32;
            }
            5 => {
                want(I64)?;
                h.zero_threshold = f64_at(buf, &mut pos)?;
            }
            6 => {
                want(VARINT)?;
                h.zero_count = Count::Int(varint(buf, &mut pos)?);
            }
            7 => {
                want(I64)?;
                h.zero_count = Count::Float(f64_at(buf, &mut pos)?);
            }
            8 | 11 => {
                want(LEN)?;
                let s = span(read_len(buf, &mut pos)?)?;
                if f == 8 {
                    h.negative_spans.push(s);
                } else {
                    h.positive_spans.push(s);
                }
            }
            9 => sint64s(buf, &mut pos, wt, &mut h.negative_deltas)?,
            12 => sint64s(buf, &mut pos, wt, &mut h.positive_deltas)?,
            10 => doubles(buf, &mut pos, wt, &mut h.negative_counts)?,
            13 => doubles(buf, &mut pos, wt, &mut h.positive_counts)?,
            14 => {
                want(VARINT)?;
                h.reset_hint = varint(buf, &mut pos)? as i32;
            }
            15 => {
                want(VARINT)?;
                h.timestamp_ms = varint(buf, &mut pos)? as i64;
            }
            16 => doubles(buf, &mut pos, wt, &mut h.custom_values)?,
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::put_uvarint;

    #[test]
    fn decodes_packed_and_unpacked() {
        let mut b = vec![];
        put_uvarint(&mut b, 1 << 3); // count_int
        put_uvarint(&mut b, 7);
        b.push((3 << 3) | 1); // sum
        b.extend_from_slice(&2.5f64.to_le_bytes());
        b.push(4 << 3); // schema -1 (zigzag 1)
        b.push(1);
        // positive span {offset: -2, length: 2}
        b.push((11 << 3) | 2);
        b.extend_from_slice(&[4, 8, 3, 16, 2]);
        // positive_deltas packed [3, -1]
        b.push((12 << 3) | 2);
        b.extend_from_slice(&[2, 6, 1]);
        // one more unpacked delta 2
        b.push(12 << 3);
        b.push(4);
        b.push(15 << 3); // timestamp 1000
        put_uvarint(&mut b, 1000);
        let h = decode_histogram(&b).unwrap();
        assert_eq!(h.count, Count::Int(7));
        assert_eq!(h.sum, 2.5);
        assert_eq!(h.schema, -1);
        assert_eq!(h.positive_spans, vec![(-2, 2)]);
        assert_eq!(h.positive_deltas, vec![3, -1, 2]);
        assert_eq!(h.timestamp_ms, 1000);
        assert!(decode_histogram(&[(2 << 3) | 1, 0]).is_err());
    }
}
