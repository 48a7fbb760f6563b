//! A compact binary form of one histogram sample, for Muninn's WAL (record type 6): kind,
//! hint, schema, zero bucket, count, sum, spans, buckets (integer deltas as varints, float
//! counts as 8 bytes) and custom bounds.

use muninn_proto::varint::{put_uvarint, put_varint, read_uvarint, read_varint};

use super::{CounterResetHint, FloatHistogram, HistSample, Histogram, Span};

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn get_f64(b: &[u8], pos: &mut usize) -> Option<f64> {
    let s = b.get(*pos..*pos + 8)?;
    *pos += 8;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(f64::from_le_bytes(a))
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, i64::from(s.offset));
        put_uvarint(out, u64::from(s.length));
    }
}

fn get_len(b: &[u8], pos: &mut usize) -> Option<usize> {
    let n = read_uvarint(b, pos)?;
    // Every element takes at least one byte.
    (n as usize <= b.len()).then_some(n as usize)
}

fn get_spans(b: &[u8], pos: &mut usize) -> Option<Vec<Span>> {
    let n = get_len(b, pos)?;
    (0..n)
        .map(|_| {
            Some(Span {
                offset: i32::try_from(read_varint(b, pos)?).ok()?,
                length: u32::try_from(read_uvarint(b, pos)?).ok()?,
            })
        })
        .collect()
}

/// Appends the encoding of `h` to `out`.
pub fn encode(h: &HistSample, out: &mut Vec<u8>) {
    let (kind, hint, schema, zt) = match h {
        HistSample::Int(x) => (0u8, x.hint, x.schema, x.zero_threshold),
        HistSample::Float(x) => (1u8, x.hint, x.schema, x.zero_threshold),
    };
    out.push(kind);
    out.push(hint as u8);
    put_varint(out, i64::from(schema));
    put_f64(out, zt);
    match h {
        HistSample::Int(x) => {
            put_uvarint(out, x.zero_count);
            put_uvarint(out, x.count);
            put_f64(out, x.sum);
            put_spans(out, &x.positive_spans);
            put_spans(out, &x.negative_spans);
            for d in [&x.positive_deltas, &x.negative_deltas] {
                put_uvarint(out, d.len() as u64);
                for &v in d {
                    put_varint(out, v);
                }
            }
            put_uvarint(out, x.custom_values.len() as u64);
            x.custom_values.iter().for_each(|v| put_f64(out, *v));
        }
        HistSample::Float(x) => {
            put_f64(out, x.zero_count);
            put_f64(out, x.count);
            put_f64(out, x.sum);
            put_spans(out, &x.positive_spans);
            put_spans(out, &x.negative_spans);
            for d in [&x.positive_buckets, &x.negative_buckets] {
                put_uvarint(out, d.len() as u64);
                d.iter().for_each(|v| put_f64(out, *v));
            }
            put_uvarint(out, x.custom_values.len() as u64);
            x.custom_values.iter().for_each(|v| put_f64(out, *v));
        }
    }
}

/// Decodes one histogram at `pos`, advancing it.
pub fn decode(b: &[u8], pos: &mut usize) -> Option<HistSample> {
    let kind = *b.get(*pos)?;
    let hint = CounterResetHint::from_u8(*b.get(*pos + 1)?);
    *pos += 2;
    let schema = i32::try_from(read_varint(b, pos)?).ok()?;
    let zero_threshold = get_f64(b, pos)?;
    let f64s = |b: &[u8], pos: &mut usize| -> Option<Vec<f64>> {
        let n = get_len(b, pos)?;
        (0..n).map(|_| get_f64(b, pos)).collect()
    };
    match kind {
        0 => {
            let zero_count = read_uvarint(b, pos)?;
            let count = read_uvarint(b, pos)?;
            let sum = get_f64(b, pos)?;
            let positive_spans = get_spans(b, pos)?;
            let negative_spans = get_spans(b, pos)?;
            let mut ints = || -> Option<Vec<i64>> {
                let n = get_len(b, pos)?;
                (0..n).map(|_| read_varint(b, pos)).collect()
            };
            let positive_deltas = ints()?;
            let negative_deltas = ints()?;
            let custom_values = f64s(b, pos)?;
            Some(HistSample::Int(Histogram {
                hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans,
                negative_spans,
                positive_deltas,
                negative_deltas,
                custom_values,
            }))
        }
        1 => {
            let zero_count = get_f64(b, pos)?;
            let count = get_f64(b, pos)?;
            let sum = get_f64(b, pos)?;
            let positive_spans = get_spans(b, pos)?;
            let negative_spans = get_spans(b, pos)?;
            let positive_buckets = f64s(b, pos)?;
            let negative_buckets = f64s(b, pos)?;
            let custom_values = f64s(b, pos)?;
            Some(HistSample::Float(FloatHistogram {
                hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans,
                negative_spans,
                positive_buckets,
                negative_buckets,
                custom_values,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let i = HistSample::Int(Histogram {
            hint: CounterResetHint::Gauge,
            schema: -2,
            zero_threshold: 0.001,
            zero_count: 3,
            count: 10,
            sum: -4.5,
            positive_spans: vec![Span {
                offset: -3,
                length: 2,
            }],
            positive_deltas: vec![4, -1],
            negative_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            negative_deltas: vec![0],
            custom_values: vec![],
        });
        let f = HistSample::Float(FloatHistogram {
            schema: -53,
            count: 2.5,
            sum: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 1.5],
            custom_values: vec![0.5],
            ..Default::default()
        });
        let mut b = vec![];
        encode(&i, &mut b);
        encode(&f, &mut b);
        let mut pos = 0;
        assert_eq!(decode(&b, &mut pos), Some(i));
        assert_eq!(decode(&b, &mut pos), Some(f));
        assert_eq!(pos, b.len());
        assert_eq!(decode(&b[..b.len() - 3], &mut 0).map(|_| ()), Some(()));
        let mut p = 0;
        decode(&b, &mut p);
        assert_eq!(decode(&b[..b.len() - 3], &mut p), None);
    }
}
