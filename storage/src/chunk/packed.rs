//! Packed float runs: the sample encoding of a format-version-3 block cell
//! (`docs/block-format.md`). Smaller than Prometheus's XOR chunks once the page is compressed,
//! because it keeps whole bytes where XOR packs bits: a regular scrape's timestamps become runs
//! of zero bytes, and values that are decimals of a few digits (counters, most gauges) become
//! small integer deltas; the page compression then squeezes both. Values that are not such decimals fall back
//! to Gorilla's XOR bits, so no input is ever worse off by much.
//!
//! A run of `count ≥ 1` time-ordered samples:
//!
//! ```text
//! uvarint count
//! varint  min_t                      (zig-zag)
//! uvarint max_t − min_t
//! uvarint length in bytes of the timestamps that follow
//! varint  first delta, then count−2 deltas of deltas    (zig-zag; absent for one sample)
//! u8      value mode
//!   0x00..=0x0f  decimal, exponent e = mode: value = m / 10^e; varint m_0, then m_k − m_{k−1}
//!   0x10..=0x1f  decimal as above, e = mode & 0x0f; varint m_0, m_1 − m_0, then deltas of deltas
//!   0xff         Gorilla XOR bits: the first value's 64 bits, then each value XORed against the last
//! ```
//!
//! Every value round-trips bit for bit: a value takes the decimal path only when
//! `m / 10^e` gives back its exact bits (so -0.0, NaN and infinities take the XOR path).

use muninn_proto::varint::{self, put_uvarint, put_varint};

use super::bstream::{BitReader, BitWriter};
use super::xor::{xor_read, xor_write};
use crate::{Error, Result};

/// Largest decimal exponent tried: `10^15` is exact and mantissas stay below 2^53.
const MAX_EXP: u8 = 15;
const MODE_DOD: u8 = 0x10;
const MODE_XOR: u8 = 0xff;
/// Largest mantissa magnitude: integers up to 2^53 are exact in an f64.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

const POW10: [f64; MAX_EXP as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

fn read_uvarint(b: &[u8], pos: &mut usize) -> Result<u64> {
    varint::read_uvarint(b, pos).ok_or(Error::CorruptChunk(
        "truncated or overlong varint in packed run",
    ))
}

fn read_varint(b: &[u8], pos: &mut usize) -> Result<i64> {
    varint::read_varint(b, pos).ok_or(Error::CorruptChunk(
        "truncated or overlong varint in packed run",
    ))
}

/// The mantissas of `values` at the smallest exponent that gives every value back exactly.
fn decimal(values: impl Iterator<Item = f64> + Clone) -> Option<(u8, Vec<i64>)> {
    'exp: for e in 0..=MAX_EXP {
        let p = POW10[usize::from(e)];
        let mut ms = Vec::new();
        for v in values.clone() {
            let m = (v * p).round();
            // NaN and infinities fail here too.
            if m.is_nan() || m.abs() > MAX_MANTISSA {
                continue 'exp;
            }
            // Checked through the integer, exactly as the decoder computes it (-0.0 fails).
            let m = m as i64;
            if (m as f64 / p).to_bits() != v.to_bits() {
                continue 'exp;
            }
            ms.push(m);
        }
        return Some((e, ms));
    }
    None
}

/// Appends the run of `samples` (time-ordered, at least one) to `out`.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return;
    };
    put_uvarint(out, samples.len() as u64);
    put_varint(out, first.0);
    put_uvarint(out, last.0.wrapping_sub(first.0) as u64);
    // The timestamps' length lets a reader walk timestamps and values in one pass.
    let mut ts = Vec::with_capacity(samples.len());
    let mut prev_delta = 0i64;
    for (k, w) in samples.windows(2).enumerate() {
        let d = w[1].0.wrapping_sub(w[0].0);
        put_varint(
            &mut ts,
            if k == 0 {
                d
            } else {
                d.wrapping_sub(prev_delta)
            },
        );
        prev_delta = d;
    }
    put_uvarint(out, ts.len() as u64);
    out.extend_from_slice(&ts);
    match decimal(samples.iter().map(|s| s.1)) {
        Some((e, ms)) => {
            let (mut by_delta, mut by_dod) = (Vec::new(), Vec::new());
            put_varint(&mut by_delta, ms[0]);
            put_varint(&mut by_dod, ms[0]);
            let mut prev = 0i64;
            for (k, w) in ms.windows(2).enumerate() {
                let d = w[1].wrapping_sub(w[0]);
                put_varint(&mut by_delta, d);
                put_varint(&mut by_dod, if k == 0 { d } else { d.wrapping_sub(prev) });
                prev = d;
            }
            if by_dod.len() < by_delta.len() {
                out.push(MODE_DOD | e);
                out.extend_from_slice(&by_dod);
            } else {
                out.push(e);
                out.extend_from_slice(&by_delta);
            }
        }
        None => {
            out.push(MODE_XOR);
            let mut w = BitWriter::default();
            let mut bits = Vec::with_capacity(samples.len() * 2 + 8);
            w.write_bits(&mut bits, first.1.to_bits(), 64);
            let (mut leading, mut trailing) = (0xffu8, 0u8);
            for pair in samples.windows(2) {
                xor_write(
                    &mut w,
                    &mut bits,
                    pair[1].1,
                    pair[0].1,
                    &mut leading,
                    &mut trailing,
                );
            }
            out.extend_from_slice(&bits);
        }
    }
}

/// A run's sample count and time range, read without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub count: u64,
    pub min_t: i64,
    pub max_t: i64,
}

/// Reads the header of the run `b` starts with; returns it and where the timestamps begin.
fn read_header(b: &[u8]) -> Result<(Header, usize)> {
    let mut pos = 0;
    let count = read_uvarint(b, &mut pos)?;
    let min_t = read_varint(b, &mut pos)?;
    let max_t = min_t.wrapping_add(read_uvarint(b, &mut pos)? as i64);
    // Every sample after the first takes at least one byte of timestamp.
    if count == 0 || count - 1 > b.len() as u64 {
        return Err(Error::CorruptChunk("packed run count out of range"));
    }
    Ok((
        Header {
            count,
            min_t,
            max_t,
        },
        pos,
    ))
}

/// The header of the run `b` holds.
pub fn header(b: &[u8]) -> Result<Header> {
    read_header(b).map(|(h, _)| h)
}

/// Reads a zig-zag varint, with a fast path for the one-byte case (most deltas).
#[inline(always)]
fn next_varint(b: &[u8], pos: &mut usize) -> Result<i64> {
    if let Some(&c) = b.get(*pos)
        && c < 0x80
    {
        *pos += 1;
        let z = u64::from(c);
        return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
    }
    read_varint(b, pos)
}

/// Appends the samples of the run `b` that fall in `[mint, maxt]` to `out`: one pass over
/// timestamps and values together, stopping after `maxt`.
pub fn decode_range(b: &[u8], mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) -> Result<()> {
    let (h, mut pos) = read_header(b)?;
    let ts_len = read_uvarint(b, &mut pos)? as usize;
    let ts = b
        .get(pos..pos.saturating_add(ts_len))
        .ok_or(Error::CorruptChunk("truncated packed timestamps"))?;
    pos += ts_len;
    let (&mode, values) = b[pos..]
        .split_first()
        .ok_or(Error::CorruptChunk("truncated packed run"))?;
    let n = h.count as usize;
    if h.min_t > maxt || h.max_t < mint {
        return Ok(());
    }
    // Timestamps: the k-th (k ≥ 1) from the first delta and the deltas of deltas.
    let (mut tp, mut t, mut d) = (0usize, h.min_t, 0i64);
    let mut next_t = |k: usize| -> Result<i64> {
        if k > 0 {
            let x = next_varint(ts, &mut tp)?;
            d = if k == 1 { x } else { d.wrapping_add(x) };
            t = t.wrapping_add(d);
        }
        Ok(t)
    };
    let corrupt_end = Error::CorruptChunk("packed run ends off its max time");
    if mode == MODE_XOR {
        let mut r = BitReader::new(values);
        let mut v = f64::from_bits(
            r.read_bits(64)
                .ok_or(Error::CorruptChunk("truncated packed values"))?,
        );
        let (mut leading, mut trailing) = (0u8, 0u8);
        for k in 0..n {
            let t = next_t(k)?;
            if k > 0 {
                xor_read(&mut r, &mut v, &mut leading, &mut trailing)
                    .ok_or(Error::CorruptChunk("truncated packed values"))?;
            }
            if t > maxt {
                return Ok(());
            }
            if t >= mint {
                out.push((t, v));
            }
            if k + 1 == n && t != h.max_t {
                return Err(corrupt_end);
            }
        }
        return Ok(());
    }
    let e = mode & !MODE_DOD;
    if e > MAX_EXP || (mode & MODE_DOD != 0 && mode != MODE_DOD | e) {
        return Err(Error::CorruptChunk("unknown packed value mode"));
    }
    let p = POW10[usize::from(e)];
    let dod = mode & MODE_DOD != 0;
    let (mut vp, mut m, mut dm) = (0usize, 0i64, 0i64);
    for k in 0..n {
        let t = next_t(k)?;
        let x = next_varint(values, &mut vp)?;
        match k {
            0 => m = x,
            1 => {
                dm = x;
                m = m.wrapping_add(dm);
            }
            _ => {
                dm = if dod { dm.wrapping_add(x) } else { x };
                m = m.wrapping_add(dm);
            }
        }
        if t > maxt {
            return Ok(());
        }
        if t >= mint {
            // Exponent 0 (integers) needs no division.
            out.push((t, if e == 0 { m as f64 } else { m as f64 / p }));
        }
        if k + 1 == n && t != h.max_t {
            return Err(corrupt_end);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut b = vec![];
        encode(samples, &mut b);
        let mut got = vec![];
        decode_range(&b, i64::MIN, i64::MAX, &mut got).unwrap();
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(samples) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), w.1.to_bits(), "{} vs {}", g.1, w.1);
        }
        let h = header(&b).unwrap();
        assert_eq!(
            (h.count, h.min_t, h.max_t),
            (
                samples.len() as u64,
                samples[0].0,
                samples[samples.len() - 1].0
            )
        );
        b
    }

    #[test]
    fn every_value_shape_roundtrips_bit_for_bit() {
        let ts = |n: i64| (0..n).map(move |k| 1_795_550_400_000 + k * 15_000);
        // Integer counter: decimal exponent 0, deltas of deltas.
        let b = roundtrip(&ts(360).map(|t| (t, (t / 1000) as f64)).collect::<Vec<_>>());
        // One byte per timestamp and one per value before page compression.
        assert!(b.len() < 2 * 360 + 32, "{} bytes", b.len());
        // Decimal counter with a reset.
        roundtrip(
            &ts(360)
                .enumerate()
                .map(|(k, t)| (t, ((k % 200) * 37) as f64 / 100.0))
                .collect::<Vec<_>>(),
        );
        // Arbitrary floats, special values and a staleness marker: XOR path.
        let specials = [
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0002),
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            0.1 + 0.2,
            -1e300,
        ];
        roundtrip(&ts(specials.len() as i64).zip(specials).collect::<Vec<_>>());
        // Decimals at the edge of the mantissa range and of the exponent range.
        roundtrip(&[(0, 9_007_199_254_740_992.0), (1, -9_007_199_254_740_992.0)]);
        roundtrip(&[(0, 1e-15), (1, 123_456_789.123_456)]);
        roundtrip(&[(0, 9_007_199_254_740_994.0), (5, 1e300)]);
        roundtrip(&[(0, -0.0), (1, 1.0)]);
        // One sample; irregular and negative timestamps.
        roundtrip(&[(-5, 2.5)]);
        roundtrip(&[
            (-10_000, 1.0),
            (-3, 2.0),
            (7, 3.0),
            (1_000_000_000_000, 4.0),
        ]);
    }

    #[test]
    fn a_range_keeps_only_its_samples() {
        let s: Vec<(i64, f64)> = (0..100).map(|k| (k * 10, k as f64 * 0.5)).collect();
        let mut b = vec![];
        encode(&s, &mut b);
        let mut got = vec![];
        decode_range(&b, 105, 300, &mut got).unwrap();
        assert_eq!(got, s[11..=30].to_vec());
    }

    #[test]
    fn corrupt_runs_are_errors_never_panics() {
        let s: Vec<(i64, f64)> = (0..50)
            .map(|k| (k * 1000 + k % 3, (k * k) as f64))
            .collect();
        let x: Vec<(i64, f64)> = (0..50).map(|k| (k * 1000, k as f64 / 3.0)).collect();
        for samples in [&s, &x] {
            let mut b = vec![];
            encode(samples, &mut b);
            for k in 0..b.len() {
                let _ = decode_range(&b[..k], i64::MIN, i64::MAX, &mut vec![]);
                let mut flipped = b.clone();
                flipped[k] ^= 0x5a;
                let _ = decode_range(&flipped, i64::MIN, i64::MAX, &mut vec![]);
            }
            assert!(decode_range(&b[..b.len() / 2], i64::MIN, i64::MAX, &mut vec![]).is_err());
        }
        assert!(decode_range(&[], 0, 1, &mut vec![]).is_err());
        // A count far beyond the bytes is refused before anything is allocated for it.
        let mut huge = vec![];
        put_uvarint(&mut huge, u64::MAX / 2);
        huge.extend_from_slice(&[0, 0, 0]);
        assert!(decode_range(&huge, 0, 1, &mut vec![]).is_err());
    }
}
