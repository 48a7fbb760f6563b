//! Prometheus's variable-width bit encodings of integers, used by the histogram chunks: a
//! unary prefix of 1s picks one of nine widths (0, 3, 6, 9, 12, 18, 25, 56 or 64 bits).

use super::bstream::{BitReader, BitWriter};

/// Widths after prefixes `0`, `10`, `110`, … `11111110`; `11111111` is followed by 64 bits.
const WIDTHS: [u8; 8] = [0, 3, 6, 9, 12, 18, 25, 56];

#[inline]
fn fits_signed(v: i64, nbits: u8) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= v && v <= 1i64 << (nbits - 1)
}

/// Writes a signed integer.
pub(crate) fn put_int(w: &mut BitWriter, buf: &mut Vec<u8>, v: i64) {
    if v == 0 {
        w.write_bit(buf, false);
        return;
    }
    for (k, &n) in WIDTHS.iter().enumerate().skip(1) {
        if fits_signed(v, n) {
            // Prefix: k ones and a zero.
            w.write_bits(
                buf,
                ((1u64 << (k + 1)) - 2) & ((1 << (k + 1)) - 1),
                (k + 1) as u8,
            );
            w.write_bits(buf, v as u64, n);
            return;
        }
    }
    w.write_bits(buf, 0xff, 8);
    w.write_bits(buf, v as u64, 64);
}

/// Writes an unsigned integer.
pub(crate) fn put_uint(w: &mut BitWriter, buf: &mut Vec<u8>, v: u64) {
    if v == 0 {
        w.write_bit(buf, false);
        return;
    }
    for (k, &n) in WIDTHS.iter().enumerate().skip(1) {
        if v < (1u64 << n) {
            w.write_bits(
                buf,
                ((1u64 << (k + 1)) - 2) & ((1 << (k + 1)) - 1),
                (k + 1) as u8,
            );
            w.write_bits(buf, v, n);
            return;
        }
    }
    w.write_bits(buf, 0xff, 8);
    w.write_bits(buf, v, 64);
}

/// The width selected by the prefix, or `None` for the 64-bit form; `Err` past the end.
fn read_prefix(r: &mut BitReader<'_>) -> Option<Option<u8>> {
    for w in WIDTHS {
        if !r.read_bit()? {
            return Some(Some(w));
        }
    }
    Some(None)
}

/// Reads a signed integer.
pub(crate) fn read_int(r: &mut BitReader<'_>) -> Option<i64> {
    match read_prefix(r)? {
        Some(0) => Some(0),
        Some(n) => {
            let bits = r.read_bits(n)?;
            Some(if bits > (1u64 << (n - 1)) {
                bits as i64 - (1i64 << n)
            } else {
                bits as i64
            })
        }
        None => r.read_bits(64).map(|b| b as i64),
    }
}

/// Reads an unsigned integer.
pub(crate) fn read_uint(r: &mut BitReader<'_>) -> Option<u64> {
    match read_prefix(r)? {
        Some(0) => Some(0),
        Some(n) => r.read_bits(n),
        None => r.read_bits(64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_widths() {
        let vals = [
            0i64,
            1,
            -3,
            4,
            5,
            -31,
            32,
            33,
            256,
            -255,
            2048,
            131072,
            -16777215,
            1 << 40,
            i64::MIN,
            i64::MAX,
        ];
        let mut buf = vec![];
        let mut w = BitWriter::default();
        for v in vals {
            put_int(&mut w, &mut buf, v);
            put_uint(&mut w, &mut buf, v as u64);
        }
        let mut r = BitReader::new(&buf);
        for v in vals {
            assert_eq!(read_int(&mut r), Some(v));
            assert_eq!(read_uint(&mut r), Some(v as u64));
        }
        // 4 fits 3 bits signed: prefix 10 then 100.
        let mut buf = vec![];
        let mut w = BitWriter::default();
        put_int(&mut w, &mut buf, 4);
        assert_eq!(buf, vec![0b1010_0000]);
    }
}
