//! MSB-first bit streams over bytes, the layout of Prometheus's `bstream`.

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitWriter {
    /// Free bits in the last byte of the buffer (0 means a new byte must be pushed).
    pub(crate) free: u8,
}

impl BitWriter {
    #[inline]
    pub(crate) fn write_bit(&mut self, buf: &mut Vec<u8>, bit: bool) {
        if self.free == 0 {
            buf.push(0);
            self.free = 8;
        }
        if bit {
            let last = buf.len() - 1;
            buf[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `nbits` bits of `v`: whole bytes first, then single bits, as Go's
    /// `bstream.writeBits` does (the byte layout, trailing byte included, must match).
    #[inline]
    pub(crate) fn write_bits(&mut self, buf: &mut Vec<u8>, v: u64, mut nbits: u8) {
        let mut u = if nbits == 0 {
            return;
        } else {
            v << (64 - nbits)
        };
        while nbits >= 8 {
            self.write_byte(buf, (u >> 56) as u8);
            u <<= 8;
            nbits -= 8;
        }
        while nbits > 0 {
            self.write_bit(buf, (u >> 63) == 1);
            u <<= 1;
            nbits -= 1;
        }
    }

    /// Writes a byte. Like Prometheus's `bstream.writeByte`, this always pushes a fresh byte
    /// for the low part, so a byte-aligned write leaves an empty trailing byte behind.
    #[inline]
    pub(crate) fn write_byte(&mut self, buf: &mut Vec<u8>, b: u8) {
        if self.free == 0 {
            buf.push(0);
            self.free = 8;
        }
        let last = buf.len() - 1;
        buf[last] |= b.checked_shr(u32::from(8 - self.free)).unwrap_or(0);
        buf.push(b.checked_shl(u32::from(self.free)).unwrap_or(0));
    }
}

/// Reads bits MSB-first with a 64-bit refill buffer.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Next byte of `buf` to load.
    pos: usize,
    /// Bits not yet consumed, left-aligned.
    acc: u64,
    /// Valid bits in `acc`.
    valid: u8,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            acc: 0,
            valid: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        if self.pos + 8 <= self.buf.len() && self.valid == 0 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
            self.acc = u64::from_be_bytes(b);
            self.pos += 8;
            self.valid = 64;
            return;
        }
        while self.valid <= 56 && self.pos < self.buf.len() {
            self.acc |= u64::from(self.buf[self.pos]) << (56 - self.valid);
            self.pos += 1;
            self.valid += 8;
        }
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        if self.valid == 0 {
            self.refill();
            if self.valid == 0 {
                return None;
            }
        }
        let bit = self.acc >> 63 == 1;
        self.acc <<= 1;
        self.valid -= 1;
        Some(bit)
    }

    /// Reads `nbits` (1..=64) bits as an unsigned number.
    #[inline]
    pub(crate) fn read_bits(&mut self, nbits: u8) -> Option<u64> {
        if nbits == 0 {
            return Some(0);
        }
        if self.valid >= nbits {
            let v = self.acc >> (64 - nbits);
            self.acc = if nbits == 64 { 0 } else { self.acc << nbits };
            self.valid -= nbits;
            return Some(v);
        }
        // Take what is buffered, refill, take the rest.
        let have = self.valid;
        let hi = if have == 0 {
            0
        } else {
            self.acc >> (64 - have)
        };
        self.acc = 0;
        self.valid = 0;
        self.refill();
        let need = nbits - have;
        if self.valid < need {
            return None;
        }
        let lo = self.acc >> (64 - need);
        self.acc = if need == 64 { 0 } else { self.acc << need };
        self.valid -= need;
        Some(if have == 0 { lo } else { (hi << need) | lo })
    }

    #[inline]
    pub(crate) fn read_byte(&mut self) -> Option<u8> {
        self.read_bits(8).map(|b| b as u8)
    }
}
