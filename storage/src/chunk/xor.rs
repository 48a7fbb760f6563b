//! Prometheus's XOR chunk encoding (Gorilla, with millisecond timestamp buckets).
//!
//! Layout, byte for byte as Prometheus writes it: a big-endian `u16` sample count, then a bit
//! stream: the first timestamp as a zig-zag varint and the first value's 64 bits; the second
//! timestamp as an unsigned varint delta and an XOR'd value; then delta-of-delta timestamps in
//! buckets of 0/14/17/20/64 bits and XOR'd values with leading/trailing-zero windows.

use super::bstream::{BitReader, BitWriter};
use crate::{Error, Result};

/// Appends samples to one XOR chunk. The chunk's bytes are [`XorAppender::bytes`].
#[derive(Debug, Clone)]
pub struct XorAppender {
    buf: Vec<u8>,
    w: BitWriter,
    num: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::with_capacity(2)
    }
}

impl XorAppender {
    /// A new, empty chunk with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap.max(2));
        buf.extend_from_slice(&[0, 0]);
        Self {
            buf,
            w: BitWriter { free: 0 },
            num: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// Timestamp of the last appended sample (meaningless when empty).
    pub fn last_timestamp(&self) -> i64 {
        self.t
    }

    /// Value of the last appended sample.
    pub fn last_value(&self) -> f64 {
        self.v
    }

    /// The chunk as Prometheus stores it.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the appender, returning its bytes trimmed to size.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.shrink_to_fit();
        self.buf
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends a sample. Callers keep timestamps increasing; the codec does not check.
    pub fn append(&mut self, t: i64, v: f64) {
        let buf = &mut self.buf;
        let mut t_delta = 0u64;
        match self.num {
            0 => {
                let mut tmp = Vec::with_capacity(10);
                put_varint(&mut tmp, t);
                for b in tmp {
                    self.w.write_byte(buf, b);
                }
                self.w.write_bits(buf, v.to_bits(), 64);
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let mut tmp = Vec::with_capacity(10);
                put_uvarint(&mut tmp, t_delta);
                for b in tmp {
                    self.w.write_byte(buf, b);
                }
                xor_write(
                    &mut self.w,
                    buf,
                    v,
                    self.v,
                    &mut self.leading,
                    &mut self.trailing,
                );
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(buf, false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(buf, 0b10, 2);
                    self.w.write_bits(buf, dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(buf, 0b110, 3);
                    self.w.write_bits(buf, dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(buf, 0b1110, 4);
                    self.w.write_bits(buf, dod as u64, 20);
                } else {
                    self.w.write_bits(buf, 0b1111, 4);
                    self.w.write_bits(buf, dod as u64, 64);
                }
                xor_write(
                    &mut self.w,
                    buf,
                    v,
                    self.v,
                    &mut self.leading,
                    &mut self.trailing,
                );
            }
        }
        self.t = t;
        self.v = v;
        self.t_delta = t_delta;
        self.num += 1;
        buf[..2].copy_from_slice(&self.num.to_be_bytes());
    }

    /// An iterator over the samples appended so far.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.buf)
    }
}

#[inline]
fn bit_range(x: i64, nbits: u8) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// Writes `new` as Gorilla's XOR against `cur` (shared by [`super::packed`]); `leading` starts
/// at `0xff`, meaning no window yet.
#[inline]
pub(crate) fn xor_write(
    w: &mut BitWriter,
    buf: &mut Vec<u8>,
    new: f64,
    cur: f64,
    leading: &mut u8,
    trailing: &mut u8,
) {
    let delta = new.to_bits() ^ cur.to_bits();
    if delta == 0 {
        w.write_bit(buf, false);
        return;
    }
    w.write_bit(buf, true);
    let mut new_leading = delta.leading_zeros() as u8;
    let new_trailing = delta.trailing_zeros() as u8;
    // Clamp: the leading count is written in 5 bits.
    if new_leading >= 32 {
        new_leading = 31;
    }
    if *leading != 0xff && new_leading >= *leading && new_trailing >= *trailing {
        w.write_bit(buf, false);
        w.write_bits(buf, delta >> *trailing, 64 - *leading - *trailing);
        return;
    }
    *leading = new_leading;
    *trailing = new_trailing;
    w.write_bit(buf, true);
    w.write_bits(buf, u64::from(new_leading), 5);
    // 64 significant bits are written as 0 in the 6-bit field; a 0 count cannot occur.
    let sigbits = 64 - new_leading - new_trailing;
    w.write_bits(buf, u64::from(sigbits), 6);
    w.write_bits(buf, delta >> new_trailing, sigbits);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one value written by [`xor_write`], XOR-ing it into `v`; `None` on corruption.
#[inline]
pub(crate) fn xor_read(
    r: &mut BitReader<'_>,
    v: &mut f64,
    leading: &mut u8,
    trailing: &mut u8,
) -> Option<()> {
    if !r.read_bit()? {
        return Some(());
    }
    let (lead, mbits) = if !r.read_bit()? {
        (
            *leading,
            64u8.checked_sub(*leading)?.checked_sub(*trailing)?,
        )
    } else {
        let lead = r.read_bits(5)? as u8;
        let mut mbits = r.read_bits(6)? as u8;
        if mbits == 0 {
            mbits = 64;
        }
        if lead + mbits > 64 {
            return None;
        }
        *trailing = 64 - lead - mbits;
        *leading = lead;
        (lead, mbits)
    };
    if mbits == 0 || lead + mbits > 64 {
        return None;
    }
    let bits = r.read_bits(mbits)?;
    let shift = 64 - lead - mbits;
    *v = f64::from_bits(v.to_bits() ^ (bits << shift));
    Some(())
}

/// Iterates the samples of an XOR chunk. Corruption ends the iteration; [`XorIter::err`]
/// tells it apart from the end.
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    err: Option<&'static str>,
}

impl<'a> XorIter<'a> {
    /// Iterates `chunk` (the 2-byte count header included).
    pub fn new(chunk: &'a [u8]) -> Self {
        let (total, body) = match chunk {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
            _ => (0, &[][..]),
        };
        Self {
            r: BitReader::new(body),
            total,
            read: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
            err: if chunk.len() < 2 {
                Some("chunk shorter than its header")
            } else {
                None
            },
        }
    }

    /// Samples the chunk header announces.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    /// The corruption that ended iteration early, if any.
    pub fn err(&self) -> Option<&'static str> {
        self.err
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut s = 0u32;
        for i in 0..10 {
            let b = self.r.read_byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return None;
                }
                return Some(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        None
    }

    fn read_value(&mut self) -> Option<()> {
        xor_read(
            &mut self.r,
            &mut self.v,
            &mut self.leading,
            &mut self.trailing,
        )
    }

    fn next_sample(&mut self) -> Option<(i64, f64)> {
        match self.read {
            0 => {
                let u = self.read_uvarint()?;
                self.t = ((u >> 1) as i64) ^ -((u & 1) as i64);
                self.v = f64::from_bits(self.r.read_bits(64)?);
            }
            1 => {
                self.t_delta = self.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0u8;
                while prefix < 4 {
                    if !self.r.read_bit()? {
                        break;
                    }
                    prefix += 1;
                }
                let sz = match prefix {
                    0 => 0,
                    1 => 14,
                    2 => 17,
                    3 => 20,
                    _ => 64,
                };
                let dod = if sz == 0 {
                    0i64
                } else {
                    let bits = self.r.read_bits(sz)?;
                    if sz == 64 {
                        bits as i64
                    } else if bits > (1u64 << (sz - 1)) {
                        (bits as i64) - (1i64 << sz)
                    } else {
                        bits as i64
                    }
                };
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Some((self.t, self.v))
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total || self.err.is_some() {
            return None;
        }
        let s = self.next_sample();
        if s.is_none() {
            self.err = Some("truncated bit stream");
        }
        s
    }
}

/// Decodes a whole chunk, failing on corruption.
pub fn decode_all(chunk: &[u8]) -> Result<Vec<(i64, f64)>> {
    let mut it = XorIter::new(chunk);
    let out: Vec<_> = it.by_ref().collect();
    match it.err() {
        Some(e) => Err(Error::CorruptChunk(e)),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) {
        let mut a = XorAppender::default();
        for &(t, v) in samples {
            a.append(t, v);
        }
        let got = decode_all(a.bytes()).unwrap();
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(samples) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), w.1.to_bits());
        }
    }

    #[test]
    fn roundtrips_awkward_values() {
        let mut s = vec![];
        let mut t = -1_000_000i64;
        for i in 0..500u64 {
            // Every dod bucket: regular, jittered, large jumps.
            t += match i % 7 {
                0 => 15_000,
                1 => 15_001,
                2 => 14_000,
                3 => 100_000,
                4 => 1 << 19,
                5 => 1 << 40,
                _ => 1,
            };
            let v = match i % 6 {
                0 => i as f64,
                1 => f64::NAN,
                2 => f64::from_bits(crate::STALE_NAN_BITS),
                3 => f64::INFINITY,
                4 => -0.0,
                _ => (i as f64).sqrt() * 1e300,
            };
            s.push((t, v));
        }
        roundtrip(&s);
        roundtrip(&[]);
        roundtrip(&[(i64::MIN / 2, 1.0)]);
        roundtrip(&[(0, 0.0), (i64::MAX / 4, f64::MAX)]);
    }

    #[test]
    fn corrupt_chunks_error() {
        let mut a = XorAppender::default();
        for i in 0..50 {
            a.append(i * 1000, i as f64 * 1.5);
        }
        let b = a.bytes();
        for n in 0..b.len() - 1 {
            assert!(decode_all(&b[..n]).is_err(), "prefix {n}");
        }
    }
}
