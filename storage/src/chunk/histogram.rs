//! Prometheus's native-histogram chunk encodings, byte for byte: `EncHistogram` (integer
//! counts, delta-of-delta buckets) and `EncFloatHistogram` (float counts, XOR'd values).
//!
//! Layout: a big-endian `u16` sample count, a flags byte whose top two bits are the
//! counter-reset header, then a bit stream: the chunk's layout (zero threshold, schema,
//! positive and negative spans, custom bounds) and the samples. Appending follows
//! Prometheus's appender exactly, including when a new chunk is cut (counter reset, schema or
//! zero-threshold change, gauge/counter switch, stale marker) and how a chunk is recoded when
//! a histogram brings new buckets (forward inserts) or lacks empty ones (backward inserts),
//! so that the bytes equal Prometheus's for the same input.

use super::bstream::{BitReader, BitWriter};
use super::varbit::{put_int, put_uint, read_int, read_uint};
use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, Histogram, Span};
use crate::is_stale_nan;

/// Counter-reset header values (top two bits of byte 2).
pub const HEADER_UNKNOWN: u8 = 0b0000_0000;
pub const HEADER_RESET: u8 = 0b1000_0000;
pub const HEADER_NOT_RESET: u8 = 0b0100_0000;
pub const HEADER_GAUGE: u8 = 0b1100_0000;
const HEADER_MASK: u8 = 0b1100_0000;
const HEADER_SIZE: usize = 3;

/// The read-back hint of the `n`-th sample (from 1) of a chunk with `header`.
fn read_hint(header: u8, n: u16) -> CounterResetHint {
    if header == HEADER_GAUGE {
        CounterResetHint::Gauge
    } else if n > 1 {
        CounterResetHint::NotReset
    } else {
        CounterResetHint::Unknown
    }
}

// ----- layout ------------------------------------------------------------------------------

fn put_zero_threshold(w: &mut BitWriter, buf: &mut Vec<u8>, t: f64) {
    if t == 0.0 {
        w.write_byte(buf, 0);
        return;
    }
    let (frac, exp) = frexp(t);
    if frac != 0.5 || !(-242..=11).contains(&exp) {
        w.write_byte(buf, 255);
        w.write_bits(buf, t.to_bits(), 64);
        return;
    }
    w.write_byte(buf, (exp + 243) as u8);
}

fn read_zero_threshold(r: &mut BitReader<'_>) -> Option<f64> {
    match r.read_byte()? {
        0 => Some(0.0),
        255 => Some(f64::from_bits(r.read_bits(64)?)),
        b => Some(crate::histogram::ldexp(0.5, i64::from(b) - 243)),
    }
}

/// `frac × 2^exp = v` with `frac` in [0.5, 1), as Go's `math.Frexp` (finite, non-zero `v`).
fn frexp(v: f64) -> (f64, i32) {
    if v == 0.0 || !v.is_finite() {
        return (v, 0);
    }
    let bits = v.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i32;
    let mut m = v;
    if exp == 0 {
        // Subnormal: normalise first.
        m *= 2f64.powi(54);
        exp = ((m.to_bits() >> 52) & 0x7ff) as i32 - 54;
    }
    let e = exp - 1022;
    let frac = f64::from_bits((m.to_bits() & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (frac, e)
}

fn put_custom_bound(w: &mut BitWriter, buf: &mut Vec<u8>, f: f64) {
    let tf = f * 1000.0;
    let whole = {
        let i = (f * 1000.0).round();
        // Go converts to uint: negative and huge values do not round-trip.
        (0.0..1.8e19).contains(&i) && (i as u64) as f64 / 1000.0 == f
    };
    if !(0.0..=33_554_430.0).contains(&tf) || !whole {
        w.write_bit(buf, false);
        w.write_bits(buf, f.to_bits(), 64);
        return;
    }
    put_uint(w, buf, tf.round() as u64 + 1);
}

fn read_custom_bound(r: &mut BitReader<'_>) -> Option<f64> {
    match read_uint(r)? {
        0 => Some(f64::from_bits(r.read_bits(64)?)),
        b => Some((b - 1) as f64 / 1000.0),
    }
}

fn put_spans(w: &mut BitWriter, buf: &mut Vec<u8>, spans: &[Span]) {
    put_uint(w, buf, spans.len() as u64);
    for s in spans {
        put_uint(w, buf, u64::from(s.length));
        put_int(w, buf, i64::from(s.offset));
    }
}

/// Most spans, buckets per side or custom bounds a chunk may declare: far above what any
/// client sends (client_golang caps buckets at 160 by default), low enough that decoding a
/// corrupt chunk cannot make each sample a large allocation.
const MAX_LAYOUT_ITEMS: u64 = 4096;

/// Most bucket values a whole chunk may decode to (samples × buckets per sample).
const MAX_DECODED_VALUES: usize = 1 << 24;

fn read_spans(r: &mut BitReader<'_>) -> Option<Vec<Span>> {
    let n = read_uint(r)?;
    if n > MAX_LAYOUT_ITEMS {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let length = u32::try_from(read_uint(r)?).ok()?;
        let offset = i32::try_from(read_int(r)?).ok()?;
        out.push(Span { offset, length });
    }
    Some(out)
}

/// The per-chunk layout.
#[derive(Clone, Debug, Default, PartialEq)]
struct Layout {
    schema: i32,
    zero_threshold: f64,
    pos: Vec<Span>,
    neg: Vec<Span>,
    custom: Vec<f64>,
}

fn write_layout(w: &mut BitWriter, buf: &mut Vec<u8>, l: &Layout) {
    put_zero_threshold(w, buf, l.zero_threshold);
    put_int(w, buf, i64::from(l.schema));
    put_spans(w, buf, &l.pos);
    put_spans(w, buf, &l.neg);
    if l.schema == CUSTOM_BUCKETS_SCHEMA {
        put_uint(w, buf, l.custom.len() as u64);
        for &b in &l.custom {
            put_custom_bound(w, buf, b);
        }
    }
}

fn read_layout(r: &mut BitReader<'_>) -> Option<Layout> {
    let zero_threshold = read_zero_threshold(r)?;
    // A NaN or negative threshold never comes from a valid histogram.
    if zero_threshold.is_nan() || zero_threshold < 0.0 {
        return None;
    }
    let schema = i32::try_from(read_int(r)?).ok()?;
    // Prometheus reserves -9..=52 for future schemas and reduces the ones above 8 on read;
    // no writer produces them, so they are refused as corrupt here.
    let known = schema == CUSTOM_BUCKETS_SCHEMA || crate::histogram::is_exponential_schema(schema);
    if !known {
        return None;
    }
    let pos = read_spans(r)?;
    let neg = read_spans(r)?;
    if count_spans(&pos) as u64 > MAX_LAYOUT_ITEMS
        || count_spans(&neg) as u64 > MAX_LAYOUT_ITEMS
        || !indexes_in_range(&pos)
        || !indexes_in_range(&neg)
    {
        return None;
    }
    let mut custom = Vec::new();
    if schema == CUSTOM_BUCKETS_SCHEMA {
        let n = read_uint(r)?;
        if n > MAX_LAYOUT_ITEMS {
            return None;
        }
        for _ in 0..n {
            custom.push(read_custom_bound(r)?);
        }
    }
    Some(Layout {
        schema,
        zero_threshold,
        pos,
        neg,
        custom,
    })
}

fn count_spans(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.length as usize).sum()
}

/// Whether every bucket index of `spans` stays within ±2^24 (schema 8's last finite bucket
/// is 2^18; a corrupt layout must not overflow index arithmetic later).
fn indexes_in_range(spans: &[Span]) -> bool {
    crate::histogram::spans_in_range(spans)
}

// ----- layout changes ----------------------------------------------------------------------

/// Bucket indexes of spans, in order, as Prometheus's `bucketIterator` yields them.
fn bucket_indexes(spans: &[Span]) -> Vec<i64> {
    let mut out = Vec::with_capacity(count_spans(spans));
    let mut idx = -1i64;
    let mut first = true;
    for s in spans {
        if first {
            idx += i64::from(s.offset);
            first = false;
            for _ in 0..s.length {
                idx += 1;
                out.push(idx);
            }
            continue;
        }
        if s.length == 0 {
            idx += i64::from(s.offset);
            continue;
        }
        idx += i64::from(s.offset) + 1;
        out.push(idx);
        for _ in 1..s.length {
            idx += 1;
            out.push(idx);
        }
    }
    out
}

/// `num` buckets to insert before position `pos`, the first at bucket index `bucket_idx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Insert {
    pos: usize,
    num: usize,
    bucket_idx: i64,
}

/// Counter layouts: the inserts making `a`'s buckets cover `b`'s (forward) and `b`'s cover
/// `a`'s empty ones (backward); `None` if a populated bucket of `a` is gone or shrank.
fn expand_counts<T: Copy + PartialOrd + Default>(
    a: &[Span],
    b: &[Span],
    a_counts: &[T],
    b_counts: &[T],
) -> Option<(Vec<Insert>, Vec<Insert>)> {
    let zero = T::default();
    if a_counts.len() != count_spans(a) || b_counts.len() != count_spans(b) {
        return None;
    }
    let ai = bucket_indexes(a);
    let bi = bucket_indexes(b);
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    let (mut a_inter, mut b_inter) = (Insert::default(), Insert::default());
    let add = |ins: &mut Vec<Insert>, x: &mut Insert, other: i64| {
        if x.num == 0 {
            x.bucket_idx = other;
        } else if x.bucket_idx + x.num as i64 != other {
            ins.push(*x);
            x.num = 0;
            x.bucket_idx = other;
        }
        x.num += 1;
    };
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        match (ai.get(i), bi.get(j)) {
            (Some(&av), Some(&bv)) => {
                if av == bv {
                    if a_counts[i] > b_counts[j] {
                        return None;
                    }
                    if a_inter.num > 0 {
                        fwd.push(a_inter);
                        a_inter.num = 0;
                    }
                    i += 1;
                    a_inter.pos += 1;
                    if b_inter.num > 0 {
                        bwd.push(b_inter);
                        b_inter.num = 0;
                    }
                    j += 1;
                    b_inter.pos += 1;
                } else if av < bv {
                    if a_counts[i] != zero {
                        return None;
                    }
                    add(&mut bwd, &mut b_inter, av);
                    if a_inter.num > 0 {
                        fwd.push(a_inter);
                        a_inter.num = 0;
                    }
                    i += 1;
                    a_inter.pos += 1;
                } else {
                    add(&mut fwd, &mut a_inter, bv);
                    if b_inter.num > 0 {
                        bwd.push(b_inter);
                        b_inter.num = 0;
                    }
                    j += 1;
                    b_inter.pos += 1;
                }
            }
            (Some(&av), None) => {
                if a_counts[i] != zero {
                    return None;
                }
                add(&mut bwd, &mut b_inter, av);
                if a_inter.num > 0 {
                    fwd.push(a_inter);
                    a_inter.num = 0;
                }
                i += 1;
                a_inter.pos += 1;
            }
            (None, Some(&bv)) => {
                add(&mut fwd, &mut a_inter, bv);
                if b_inter.num > 0 {
                    bwd.push(b_inter);
                    b_inter.num = 0;
                }
                j += 1;
                b_inter.pos += 1;
            }
            (None, None) => {
                if a_inter.num > 0 {
                    fwd.push(a_inter);
                }
                if b_inter.num > 0 {
                    bwd.push(b_inter);
                }
                return Some((fwd, bwd));
            }
        }
    }
}

/// Spans from ascending bucket indexes, as Prometheus's `addBucket` builds them.
struct SpanBuilder {
    spans: Vec<Span>,
    last: i64,
}

impl SpanBuilder {
    fn new() -> Self {
        SpanBuilder {
            spans: Vec::new(),
            last: 0,
        }
    }

    fn add(&mut self, b: i64) {
        let mut offset = b - self.last - 1;
        if offset == 0 && !self.spans.is_empty() {
            if let Some(s) = self.spans.last_mut() {
                s.length += 1;
            }
        } else {
            if self.spans.is_empty() {
                offset += 1;
            }
            self.spans.push(Span {
                offset: offset as i32,
                length: 1,
            });
        }
        self.last = b;
    }
}

/// Gauge layouts: inserts both ways and the merged spans.
fn expand_both_ways(a: &[Span], b: &[Span]) -> (Vec<Insert>, Vec<Insert>, Vec<Span>) {
    let ai = bucket_indexes(a);
    let bi = bucket_indexes(b);
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    let (mut f, mut bk) = (Insert::default(), Insert::default());
    let mut merged = SpanBuilder::new();
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        match (ai.get(i), bi.get(j)) {
            (Some(&av), Some(&bv)) => {
                if av == bv {
                    if f.num > 0 {
                        fwd.push(f);
                        f.num = 0;
                    }
                    if bk.num > 0 {
                        bwd.push(bk);
                        bk.num = 0;
                    }
                    merged.add(av);
                    i += 1;
                    j += 1;
                    f.pos += 1;
                    bk.pos += 1;
                } else if av < bv {
                    bk.num += 1;
                    if f.num > 0 {
                        fwd.push(f);
                        f.num = 0;
                    }
                    merged.add(av);
                    f.pos += 1;
                    i += 1;
                } else {
                    f.num += 1;
                    if bk.num > 0 {
                        bwd.push(bk);
                        bk.num = 0;
                    }
                    merged.add(bv);
                    bk.pos += 1;
                    j += 1;
                }
            }
            (Some(&av), None) => {
                bk.num += 1;
                merged.add(av);
                i += 1;
            }
            (None, Some(&bv)) => {
                f.num += 1;
                merged.add(bv);
                j += 1;
            }
            (None, None) => {
                if f.num > 0 {
                    fwd.push(f);
                }
                if bk.num > 0 {
                    bwd.push(bk);
                }
                return (fwd, bwd, merged.spans);
            }
        }
    }
}

/// Buckets with zeros inserted; with `deltas`, values are delta-encoded and kept so.
fn insert<T: Copy + Default + std::ops::Add<Output = T> + std::ops::Neg<Output = T>>(
    inp: &[T],
    out_len: usize,
    inserts: &[Insert],
    deltas: bool,
) -> Vec<T> {
    let mut out = vec![T::default(); out_len];
    let (mut oi, mut ii) = (0usize, 0usize);
    let mut v = T::default();
    for (i, &d) in inp.iter().enumerate() {
        if ii >= inserts.len() || i != inserts[ii].pos {
            out[oi] = d;
            oi += 1;
            v = v + d;
            continue;
        }
        let mut first = true;
        while ii < inserts.len() && i == inserts[ii].pos {
            out[oi] = if deltas && first {
                first = false;
                -v
            } else {
                T::default()
            };
            oi += 1;
            oi += inserts[ii].num - 1;
            ii += 1;
        }
        out[oi] = if deltas { d + v } else { d };
        oi += 1;
        v = v + d;
    }
    while ii < inserts.len() {
        out[oi] = if deltas { -v } else { T::default() };
        oi += 1;
        oi += inserts[ii].num - 1;
        ii += 1;
        v = T::default();
    }
    out
}

/// `spans` with the buckets of `inserts` added.
fn adjust_for_inserts(spans: &[Span], inserts: &[Insert]) -> Vec<Span> {
    if inserts.is_empty() {
        return spans.to_vec();
    }
    let mut merged = SpanBuilder::new();
    let (mut i, mut idx, mut num) = (0usize, inserts[0].bucket_idx, inserts[0].num);
    let consume = |i: &mut usize, idx: &mut i64, num: &mut usize| {
        *num -= 1;
        if *num == 0 {
            *i += 1;
            if *i < inserts.len() {
                *idx = inserts[*i].bucket_idx;
                *num = inserts[*i].num;
            }
        } else {
            *idx += 1;
        }
    };
    for b in bucket_indexes(spans) {
        while i < inserts.len() && idx < b {
            merged.add(idx);
            consume(&mut i, &mut idx, &mut num);
        }
        merged.add(b);
    }
    while i < inserts.len() {
        merged.add(idx);
        consume(&mut i, &mut idx, &mut num);
    }
    merged.spans
}

// ----- XOR'd values ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct XorValue {
    value: f64,
    leading: u8,
    trailing: u8,
}

impl XorValue {
    fn new(value: f64, leading: u8) -> Self {
        XorValue {
            value,
            leading,
            trailing: 0,
        }
    }
}

fn xor_write(w: &mut BitWriter, buf: &mut Vec<u8>, x: &mut XorValue, new: f64) {
    let delta = new.to_bits() ^ x.value.to_bits();
    x.value = new;
    if delta == 0 {
        w.write_bit(buf, false);
        return;
    }
    w.write_bit(buf, true);
    let mut lead = delta.leading_zeros() as u8;
    let trail = delta.trailing_zeros() as u8;
    if lead >= 32 {
        lead = 31;
    }
    if x.leading != 0xff && lead >= x.leading && trail >= x.trailing {
        w.write_bit(buf, false);
        w.write_bits(buf, delta >> x.trailing, 64 - x.leading - x.trailing);
        return;
    }
    x.leading = lead;
    x.trailing = trail;
    w.write_bit(buf, true);
    w.write_bits(buf, u64::from(lead), 5);
    let sig = 64 - lead - trail;
    w.write_bits(buf, u64::from(sig), 6);
    w.write_bits(buf, delta >> trail, sig);
}

fn xor_read(r: &mut BitReader<'_>, x: &mut XorValue) -> Option<()> {
    if !r.read_bit()? {
        return Some(());
    }
    let mbits = if !r.read_bit()? {
        64u8.checked_sub(x.leading)?.checked_sub(x.trailing)?
    } else {
        let lead = r.read_bits(5)? as u8;
        let mut m = r.read_bits(6)? as u8;
        if m == 0 {
            m = 64;
        }
        x.trailing = 64u8.checked_sub(lead)?.checked_sub(m)?;
        x.leading = lead;
        m
    };
    if mbits == 0 {
        return None;
    }
    let bits = r.read_bits(mbits)?;
    x.value = f64::from_bits(x.value.to_bits() ^ (bits << (64 - x.leading - mbits)));
    Some(())
}

// ----- the two appenders -------------------------------------------------------------------

/// What appending did.
#[derive(Debug)]
pub enum Appended<A> {
    /// The sample is in this chunk (possibly recoded in place to a wider layout).
    Here,
    /// The sample starts a new chunk: the old one is complete.
    NewChunk(A),
}

/// Builds an integer histogram chunk (`EncHistogram`, encoding 2).
#[derive(Clone, Debug)]
pub struct HistogramAppender {
    buf: Vec<u8>,
    w: BitWriter,
    num: u16,
    layout: Layout,
    t: i64,
    cnt: u64,
    zcnt: u64,
    t_delta: i64,
    cnt_delta: i64,
    zcnt_delta: i64,
    pos: Vec<i64>,
    neg: Vec<i64>,
    pos_delta: Vec<i64>,
    neg_delta: Vec<i64>,
    sum: XorValue,
}

impl Default for HistogramAppender {
    fn default() -> Self {
        Self::new()
    }
}

/// The integer appender's view of a histogram: spans and delta-encoded buckets.
struct IntSample {
    count: u64,
    zero_count: u64,
    sum: f64,
    pos: Vec<i64>,
    neg: Vec<i64>,
}

impl HistogramAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        HistogramAppender {
            buf: vec![0; HEADER_SIZE],
            w: BitWriter::default(),
            num: 0,
            layout: Layout::default(),
            t: i64::MIN,
            cnt: 0,
            zcnt: 0,
            t_delta: 0,
            cnt_delta: 0,
            zcnt_delta: 0,
            pos: vec![],
            neg: vec![],
            pos_delta: vec![],
            neg_delta: vec![],
            sum: XorValue::new(0.0, 0xff),
        }
    }

    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// The chunk as Prometheus stores it.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn header(&self) -> u8 {
        self.buf[2] & HEADER_MASK
    }

    fn set_header(&mut self, h: u8) {
        self.buf[2] = (self.buf[2] & !HEADER_MASK) | h;
    }

    /// Timestamp of the last sample.
    pub fn last_timestamp(&self) -> i64 {
        self.t
    }

    fn write(&mut self, t: i64, h: &IntSample) {
        let stale = is_stale_nan(h.sum);
        let empty = IntSample {
            count: 0,
            zero_count: 0,
            sum: h.sum,
            pos: vec![],
            neg: vec![],
        };
        let h = if stale { &empty } else { h };
        let buf = &mut self.buf;
        let (mut t_delta, mut cnt_delta, mut zcnt_delta) = (0i64, 0i64, 0i64);
        if self.num == 0 {
            write_layout(&mut self.w, buf, &self.layout);
            let np = count_spans(&self.layout.pos);
            let nn = count_spans(&self.layout.neg);
            self.pos = vec![0; np];
            self.neg = vec![0; nn];
            self.pos_delta = vec![0; np];
            self.neg_delta = vec![0; nn];
            put_int(&mut self.w, buf, t);
            put_uint(&mut self.w, buf, h.count);
            put_uint(&mut self.w, buf, h.zero_count);
            self.w.write_bits(buf, h.sum.to_bits(), 64);
            for &b in &h.pos {
                put_int(&mut self.w, buf, b);
            }
            for &b in &h.neg {
                put_int(&mut self.w, buf, b);
            }
        } else {
            t_delta = t.wrapping_sub(self.t);
            cnt_delta = (h.count as i64).wrapping_sub(self.cnt as i64);
            zcnt_delta = (h.zero_count as i64).wrapping_sub(self.zcnt as i64);
            let mut cnt_dod = cnt_delta.wrapping_sub(self.cnt_delta);
            let mut zcnt_dod = zcnt_delta.wrapping_sub(self.zcnt_delta);
            if stale {
                cnt_dod = 0;
                zcnt_dod = 0;
            }
            put_int(&mut self.w, buf, t_delta.wrapping_sub(self.t_delta));
            put_int(&mut self.w, buf, cnt_dod);
            put_int(&mut self.w, buf, zcnt_dod);
            xor_write(&mut self.w, buf, &mut self.sum, h.sum);
            for (i, &b) in h.pos.iter().enumerate() {
                let delta = b.wrapping_sub(self.pos[i]);
                put_int(&mut self.w, buf, delta.wrapping_sub(self.pos_delta[i]));
                self.pos_delta[i] = delta;
            }
            for (i, &b) in h.neg.iter().enumerate() {
                let delta = b.wrapping_sub(self.neg[i]);
                put_int(&mut self.w, buf, delta.wrapping_sub(self.neg_delta[i]));
                self.neg_delta[i] = delta;
            }
        }
        self.t = t;
        self.cnt = h.count;
        self.zcnt = h.zero_count;
        self.t_delta = t_delta;
        self.cnt_delta = cnt_delta;
        self.zcnt_delta = zcnt_delta;
        for (d, s) in self.pos.iter_mut().zip(&h.pos) {
            *d = *s;
        }
        for (d, s) in self.neg.iter_mut().zip(&h.neg) {
            *d = *s;
        }
        self.sum.value = h.sum;
        self.num += 1;
        let n = self.num.to_be_bytes();
        self.buf[0] = n[0];
        self.buf[1] = n[1];
    }

    fn first(&mut self, t: i64, h: &Histogram) {
        if is_stale_nan(h.sum) {
            // A marker carries no layout.
            self.layout = Layout::default();
            self.write(t, &int_sample(h));
            return;
        }
        self.layout = Layout {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            pos: h.positive_spans.clone(),
            neg: h.negative_spans.clone(),
            custom: h.custom_values.clone(),
        };
        let s = int_sample(h);
        self.write(t, &s);
    }

    /// Whether `h` can follow in this counter chunk: `(forward pos, forward neg, backward
    /// pos, backward neg, ok, header for a new chunk)`.
    #[allow(clippy::type_complexity)]
    fn appendable(
        &self,
        h: &Histogram,
    ) -> (Vec<Insert>, Vec<Insert>, Vec<Insert>, Vec<Insert>, bool, u8) {
        let none = |hdr| (vec![], vec![], vec![], vec![], false, hdr);
        if self.num > 0 && self.header() == HEADER_GAUGE {
            return none(HEADER_NOT_RESET);
        }
        if h.hint == CounterResetHint::Reset {
            return none(HEADER_RESET);
        }
        if is_stale_nan(h.sum) {
            return (vec![], vec![], vec![], vec![], true, HEADER_NOT_RESET);
        }
        if is_stale_nan(self.sum.value) {
            return none(HEADER_UNKNOWN);
        }
        if h.count < self.cnt {
            return none(HEADER_RESET);
        }
        if h.schema != self.layout.schema || h.zero_threshold != self.layout.zero_threshold {
            return none(HEADER_UNKNOWN);
        }
        if h.schema == CUSTOM_BUCKETS_SCHEMA && h.custom_values != self.layout.custom {
            return none(HEADER_RESET);
        }
        if h.zero_count < self.zcnt {
            return none(HEADER_RESET);
        }
        let abs = |d: &[i64]| -> Vec<i64> {
            let mut c = 0i64;
            d.iter()
                .map(|x| {
                    c = c.wrapping_add(*x);
                    c
                })
                .collect()
        };
        let Some((pf, pb)) = expand_counts(
            &self.layout.pos,
            &h.positive_spans,
            &abs(&self.pos),
            &abs(&h.positive_deltas),
        ) else {
            return none(HEADER_RESET);
        };
        let Some((nf, nb)) = expand_counts(
            &self.layout.neg,
            &h.negative_spans,
            &abs(&self.neg),
            &abs(&h.negative_deltas),
        ) else {
            return none(HEADER_RESET);
        };
        (pf, nf, pb, nb, true, HEADER_NOT_RESET)
    }

    /// The header a new chunk after this one gets for `h` (Prometheus's `prev.appendable`).
    pub fn header_for_next(&self, h: &Histogram) -> u8 {
        self.appendable(h).5
    }

    /// Appends a sample. `prev` is the series' previous chunk when this one is new and empty
    /// (it decides the counter-reset header, as Prometheus's head does).
    pub fn append(
        &mut self,
        t: i64,
        h: &Histogram,
        prev: Option<&HistogramAppender>,
    ) -> Appended<HistogramAppender> {
        if self.num == 0 {
            self.first(t, h);
            let hdr = match h.hint {
                CounterResetHint::Gauge => HEADER_GAUGE,
                CounterResetHint::Reset => HEADER_RESET,
                _ => prev.map_or(HEADER_UNKNOWN, |p| p.header_for_next(h)),
            };
            self.set_header(hdr);
            return Appended::Here;
        }
        let mut h = h.clone();
        if h.hint != CounterResetHint::Gauge {
            let (pf, nf, pb, nb, ok, hdr) = self.appendable(&h);
            if !ok || hdr != HEADER_NOT_RESET {
                let mut c = HistogramAppender::new();
                c.first(t, &h);
                c.set_header(hdr);
                return Appended::NewChunk(c);
            }
            if !pb.is_empty() || !nb.is_empty() {
                if pf.is_empty() && nf.is_empty() {
                    h.positive_spans = self.layout.pos.clone();
                    h.negative_spans = self.layout.neg.clone();
                } else {
                    h.positive_spans = adjust_for_inserts(&h.positive_spans, &pb);
                    h.negative_spans = adjust_for_inserts(&h.negative_spans, &nb);
                }
                recode_int(&mut h, &pb, &nb);
            }
            if !pf.is_empty() || !nf.is_empty() {
                self.recode(&pf, &nf, &h.positive_spans, &h.negative_spans);
            }
            self.write(t, &int_sample(&h));
            return Appended::Here;
        }
        // Gauge histograms.
        let gauge_ok = (self.num == 0 || self.header() == HEADER_GAUGE)
            && (is_stale_nan(h.sum)
                || (!is_stale_nan(self.sum.value)
                    && h.schema == self.layout.schema
                    && h.zero_threshold == self.layout.zero_threshold
                    && (h.schema != CUSTOM_BUCKETS_SCHEMA
                        || h.custom_values == self.layout.custom)));
        if !gauge_ok {
            let mut c = HistogramAppender::new();
            c.first(t, &h);
            c.set_header(HEADER_GAUGE);
            return Appended::NewChunk(c);
        }
        if !is_stale_nan(h.sum) {
            let (pf, pb, pm) = expand_both_ways(&self.layout.pos, &h.positive_spans);
            let (nf, nb, nm) = expand_both_ways(&self.layout.neg, &h.negative_spans);
            if !pb.is_empty() || !nb.is_empty() {
                h.positive_spans = pm;
                h.negative_spans = nm;
                recode_int(&mut h, &pb, &nb);
            }
            if !pf.is_empty() || !nf.is_empty() {
                self.recode(&pf, &nf, &h.positive_spans, &h.negative_spans);
            }
        }
        self.write(t, &int_sample(&h));
        Appended::Here
    }

    /// Rewrites the chunk with `inserts` applied to every sample, under new spans.
    fn recode(&mut self, pi: &[Insert], ni: &[Insert], pos: &[Span], neg: &[Span]) {
        let header = self.header();
        let old = std::mem::take(&mut self.buf);
        let mut it = HistogramIter::new(&old);
        let mut c = HistogramAppender::new();
        let (np, nn) = (count_spans(pos), count_spans(neg));
        let mut first = true;
        while let Some((t, mut h)) = it.next_int() {
            h.positive_spans = pos.to_vec();
            h.negative_spans = neg.to_vec();
            if !pi.is_empty() {
                h.positive_deltas = insert(&h.positive_deltas, np, pi, true);
            }
            if !ni.is_empty() {
                h.negative_deltas = insert(&h.negative_deltas, nn, ni, true);
            }
            if first {
                c.first(t, &h);
                first = false;
            } else {
                c.write(t, &int_sample(&h));
            }
        }
        c.set_header(header);
        *self = c;
    }
}

fn recode_int(h: &mut Histogram, pb: &[Insert], nb: &[Insert]) {
    if !pb.is_empty() {
        h.positive_deltas = insert(&h.positive_deltas, count_spans(&h.positive_spans), pb, true);
    }
    if !nb.is_empty() {
        h.negative_deltas = insert(&h.negative_deltas, count_spans(&h.negative_spans), nb, true);
    }
}

fn int_sample(h: &Histogram) -> IntSample {
    IntSample {
        count: h.count,
        zero_count: h.zero_count,
        sum: h.sum,
        pos: h.positive_deltas.clone(),
        neg: h.negative_deltas.clone(),
    }
}

/// Builds a float histogram chunk (`EncFloatHistogram`, encoding 3).
#[derive(Clone, Debug)]
pub struct FloatHistogramAppender {
    buf: Vec<u8>,
    w: BitWriter,
    num: u16,
    layout: Layout,
    t: i64,
    t_delta: i64,
    cnt: XorValue,
    zcnt: XorValue,
    sum: XorValue,
    pos: Vec<XorValue>,
    neg: Vec<XorValue>,
}

impl Default for FloatHistogramAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl FloatHistogramAppender {
    pub fn new() -> Self {
        FloatHistogramAppender {
            buf: vec![0; HEADER_SIZE],
            w: BitWriter::default(),
            num: 0,
            layout: Layout::default(),
            t: i64::MIN,
            t_delta: 0,
            cnt: XorValue::new(0.0, 0xff),
            zcnt: XorValue::new(0.0, 0xff),
            sum: XorValue::new(0.0, 0xff),
            pos: vec![],
            neg: vec![],
        }
    }

    pub fn num_samples(&self) -> u16 {
        self.num
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn header(&self) -> u8 {
        self.buf[2] & HEADER_MASK
    }

    fn set_header(&mut self, h: u8) {
        self.buf[2] = (self.buf[2] & !HEADER_MASK) | h;
    }

    pub fn last_timestamp(&self) -> i64 {
        self.t
    }

    fn write(&mut self, t: i64, h: &FloatHistogram) {
        let empty;
        let h = if is_stale_nan(h.sum) {
            empty = FloatHistogram {
                sum: h.sum,
                ..Default::default()
            };
            &empty
        } else {
            h
        };
        let buf = &mut self.buf;
        let mut t_delta = 0i64;
        if self.num == 0 {
            write_layout(&mut self.w, buf, &self.layout);
            self.pos = h
                .positive_buckets
                .iter()
                .map(|&v| XorValue::new(v, 0xff))
                .collect();
            self.neg = h
                .negative_buckets
                .iter()
                .map(|&v| XorValue::new(v, 0xff))
                .collect();
            put_int(&mut self.w, buf, t);
            self.w.write_bits(buf, h.count.to_bits(), 64);
            self.w.write_bits(buf, h.zero_count.to_bits(), 64);
            self.w.write_bits(buf, h.sum.to_bits(), 64);
            self.cnt.value = h.count;
            self.zcnt.value = h.zero_count;
            self.sum.value = h.sum;
            for &b in &h.positive_buckets {
                self.w.write_bits(buf, b.to_bits(), 64);
            }
            for &b in &h.negative_buckets {
                self.w.write_bits(buf, b.to_bits(), 64);
            }
        } else {
            t_delta = t.wrapping_sub(self.t);
            put_int(&mut self.w, buf, t_delta.wrapping_sub(self.t_delta));
            xor_write(&mut self.w, buf, &mut self.cnt, h.count);
            xor_write(&mut self.w, buf, &mut self.zcnt, h.zero_count);
            xor_write(&mut self.w, buf, &mut self.sum, h.sum);
            for (x, &b) in self.pos.iter_mut().zip(&h.positive_buckets) {
                xor_write(&mut self.w, buf, x, b);
            }
            for (x, &b) in self.neg.iter_mut().zip(&h.negative_buckets) {
                xor_write(&mut self.w, buf, x, b);
            }
        }
        self.t = t;
        self.t_delta = t_delta;
        self.num += 1;
        let n = self.num.to_be_bytes();
        self.buf[0] = n[0];
        self.buf[1] = n[1];
    }

    fn first(&mut self, t: i64, h: &FloatHistogram) {
        if is_stale_nan(h.sum) {
            self.layout = Layout::default();
            self.write(t, h);
            return;
        }
        self.layout = Layout {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            pos: h.positive_spans.clone(),
            neg: h.negative_spans.clone(),
            custom: h.custom_values.clone(),
        };
        self.write(t, h);
    }

    /// `(forward pos, forward neg, backward pos, backward neg, ok, counter reset)`.
    #[allow(clippy::type_complexity)]
    fn appendable(
        &self,
        h: &FloatHistogram,
    ) -> (
        Vec<Insert>,
        Vec<Insert>,
        Vec<Insert>,
        Vec<Insert>,
        bool,
        bool,
    ) {
        let none = |reset| (vec![], vec![], vec![], vec![], false, reset);
        if self.num > 0 && self.header() == HEADER_GAUGE {
            return none(false);
        }
        if h.hint == CounterResetHint::Reset {
            return none(true);
        }
        if is_stale_nan(h.sum) {
            return (vec![], vec![], vec![], vec![], true, false);
        }
        if is_stale_nan(self.sum.value) {
            return none(false);
        }
        if h.count < self.cnt.value {
            return none(true);
        }
        if h.schema != self.layout.schema || h.zero_threshold != self.layout.zero_threshold {
            return none(false);
        }
        if h.schema == CUSTOM_BUCKETS_SCHEMA && h.custom_values != self.layout.custom {
            return none(true);
        }
        if h.zero_count < self.zcnt.value {
            return none(true);
        }
        let vals = |x: &[XorValue]| x.iter().map(|v| v.value).collect::<Vec<f64>>();
        let Some((pf, pb)) = expand_counts(
            &self.layout.pos,
            &h.positive_spans,
            &vals(&self.pos),
            &h.positive_buckets,
        ) else {
            return none(true);
        };
        let Some((nf, nb)) = expand_counts(
            &self.layout.neg,
            &h.negative_spans,
            &vals(&self.neg),
            &h.negative_buckets,
        ) else {
            return none(true);
        };
        (pf, nf, pb, nb, true, false)
    }

    /// Appends a sample; `prev` as for [`HistogramAppender::append`].
    pub fn append(
        &mut self,
        t: i64,
        h: &FloatHistogram,
        prev: Option<&FloatHistogramAppender>,
    ) -> Appended<FloatHistogramAppender> {
        if self.num == 0 {
            self.first(t, h);
            let hdr = match h.hint {
                CounterResetHint::Gauge => HEADER_GAUGE,
                CounterResetHint::Reset => HEADER_RESET,
                _ => match prev {
                    Some(p) => {
                        if p.appendable(h).5 {
                            HEADER_RESET
                        } else {
                            HEADER_NOT_RESET
                        }
                    }
                    None => HEADER_UNKNOWN,
                },
            };
            self.set_header(hdr);
            return Appended::Here;
        }
        let mut h = h.clone();
        if h.hint != CounterResetHint::Gauge {
            let (pf, nf, pb, nb, ok, reset) = self.appendable(&h);
            if !ok || reset {
                let mut c = FloatHistogramAppender::new();
                c.first(t, &h);
                if reset {
                    c.set_header(HEADER_RESET);
                }
                return Appended::NewChunk(c);
            }
            if !pb.is_empty() || !nb.is_empty() {
                if pf.is_empty() && nf.is_empty() {
                    h.positive_spans = self.layout.pos.clone();
                    h.negative_spans = self.layout.neg.clone();
                } else {
                    h.positive_spans = adjust_for_inserts(&h.positive_spans, &pb);
                    h.negative_spans = adjust_for_inserts(&h.negative_spans, &nb);
                }
                recode_float(&mut h, &pb, &nb);
            }
            if !pf.is_empty() || !nf.is_empty() {
                self.recode(&pf, &nf, &h.positive_spans, &h.negative_spans);
            }
            self.write(t, &h);
            return Appended::Here;
        }
        let gauge_ok = (self.num == 0 || self.header() == HEADER_GAUGE)
            && (is_stale_nan(h.sum)
                || (!is_stale_nan(self.sum.value)
                    && h.schema == self.layout.schema
                    && h.zero_threshold == self.layout.zero_threshold
                    && (h.schema != CUSTOM_BUCKETS_SCHEMA
                        || h.custom_values == self.layout.custom)));
        if !gauge_ok {
            let mut c = FloatHistogramAppender::new();
            c.first(t, &h);
            c.set_header(HEADER_GAUGE);
            return Appended::NewChunk(c);
        }
        if !is_stale_nan(h.sum) {
            let (pf, pb, pm) = expand_both_ways(&self.layout.pos, &h.positive_spans);
            let (nf, nb, nm) = expand_both_ways(&self.layout.neg, &h.negative_spans);
            if !pb.is_empty() || !nb.is_empty() {
                h.positive_spans = pm;
                h.negative_spans = nm;
                recode_float(&mut h, &pb, &nb);
            }
            if !pf.is_empty() || !nf.is_empty() {
                self.recode(&pf, &nf, &h.positive_spans, &h.negative_spans);
            }
        }
        self.write(t, &h);
        Appended::Here
    }

    fn recode(&mut self, pi: &[Insert], ni: &[Insert], pos: &[Span], neg: &[Span]) {
        let header = self.header();
        let old = std::mem::take(&mut self.buf);
        let mut it = HistogramIter::new(&old);
        let mut c = FloatHistogramAppender::new();
        let (np, nn) = (count_spans(pos), count_spans(neg));
        let mut first = true;
        while let Some((t, mut h)) = it.next_float() {
            h.positive_spans = pos.to_vec();
            h.negative_spans = neg.to_vec();
            if !pi.is_empty() {
                h.positive_buckets = insert(&h.positive_buckets, np, pi, false);
            }
            if !ni.is_empty() {
                h.negative_buckets = insert(&h.negative_buckets, nn, ni, false);
            }
            if first {
                c.first(t, &h);
                first = false;
            } else {
                c.write(t, &h);
            }
        }
        c.set_header(header);
        *self = c;
    }
}

fn recode_float(h: &mut FloatHistogram, pb: &[Insert], nb: &[Insert]) {
    if !pb.is_empty() {
        h.positive_buckets = insert(
            &h.positive_buckets,
            count_spans(&h.positive_spans),
            pb,
            false,
        );
    }
    if !nb.is_empty() {
        h.negative_buckets = insert(
            &h.negative_buckets,
            count_spans(&h.negative_spans),
            nb,
            false,
        );
    }
}

// ----- reading -----------------------------------------------------------------------------

/// Iterates the samples of a histogram chunk of either encoding; `float` says which.
pub struct HistogramIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    header: u8,
    layout: Layout,
    t: i64,
    t_delta: i64,
    // Integer state.
    cnt: u64,
    zcnt: u64,
    cnt_delta: i64,
    zcnt_delta: i64,
    pos: Vec<i64>,
    neg: Vec<i64>,
    pos_delta: Vec<i64>,
    neg_delta: Vec<i64>,
    sum: XorValue,
    // Float state.
    fcnt: XorValue,
    fzcnt: XorValue,
    fpos: Vec<XorValue>,
    fneg: Vec<XorValue>,
    err: Option<&'static str>,
}

impl<'a> HistogramIter<'a> {
    pub fn new(chunk: &'a [u8]) -> Self {
        let ok = chunk.len() >= HEADER_SIZE;
        let (total, header, body) = if ok {
            (
                u16::from_be_bytes([chunk[0], chunk[1]]),
                chunk[2] & HEADER_MASK,
                &chunk[HEADER_SIZE..],
            )
        } else {
            (0, 0, &[][..])
        };
        HistogramIter {
            r: BitReader::new(body),
            total,
            read: 0,
            header,
            layout: Layout::default(),
            t: i64::MIN,
            t_delta: 0,
            cnt: 0,
            zcnt: 0,
            cnt_delta: 0,
            zcnt_delta: 0,
            pos: vec![],
            neg: vec![],
            pos_delta: vec![],
            neg_delta: vec![],
            sum: XorValue::new(0.0, 0),
            fcnt: XorValue::new(0.0, 0),
            fzcnt: XorValue::new(0.0, 0),
            fpos: vec![],
            fneg: vec![],
            err: (!ok).then_some("histogram chunk shorter than its header"),
        }
    }

    /// Samples the chunk announces.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    /// The counter-reset header.
    pub fn header(&self) -> u8 {
        self.header
    }

    /// The corruption that ended iteration early, if any.
    pub fn err(&self) -> Option<&'static str> {
        self.err
    }

    fn fail<T>(&mut self) -> Option<T> {
        self.err = Some("corrupt histogram chunk");
        None
    }

    fn int_inner(&mut self) -> Option<(i64, Histogram)> {
        if self.read == 0 {
            self.layout = read_layout(&mut self.r)?;
            let (np, nn) = (count_spans(&self.layout.pos), count_spans(&self.layout.neg));
            if usize::from(self.total).saturating_mul(np + nn + 1) > MAX_DECODED_VALUES {
                return None;
            }
            self.t = read_int(&mut self.r)?;
            self.cnt = read_uint(&mut self.r)?;
            self.zcnt = read_uint(&mut self.r)?;
            self.sum.value = f64::from_bits(self.r.read_bits(64)?);
            self.pos = (0..np)
                .map(|_| read_int(&mut self.r))
                .collect::<Option<_>>()?;
            self.neg = (0..nn)
                .map(|_| read_int(&mut self.r))
                .collect::<Option<_>>()?;
            self.pos_delta = vec![0; np];
            self.neg_delta = vec![0; nn];
        } else {
            self.t_delta = self.t_delta.wrapping_add(read_int(&mut self.r)?);
            self.t = self.t.wrapping_add(self.t_delta);
            self.cnt_delta = self.cnt_delta.wrapping_add(read_int(&mut self.r)?);
            self.cnt = (self.cnt as i64).wrapping_add(self.cnt_delta) as u64;
            self.zcnt_delta = self.zcnt_delta.wrapping_add(read_int(&mut self.r)?);
            self.zcnt = (self.zcnt as i64).wrapping_add(self.zcnt_delta) as u64;
            xor_read(&mut self.r, &mut self.sum)?;
            if !is_stale_nan(self.sum.value) {
                for i in 0..self.pos.len() {
                    let dod = read_int(&mut self.r)?;
                    self.pos_delta[i] = self.pos_delta[i].wrapping_add(dod);
                    self.pos[i] = self.pos[i].wrapping_add(self.pos_delta[i]);
                }
                for i in 0..self.neg.len() {
                    let dod = read_int(&mut self.r)?;
                    self.neg_delta[i] = self.neg_delta[i].wrapping_add(dod);
                    self.neg[i] = self.neg[i].wrapping_add(self.neg_delta[i]);
                }
            }
        }
        self.read += 1;
        if is_stale_nan(self.sum.value) {
            return Some((
                self.t,
                Histogram {
                    sum: self.sum.value,
                    hint: read_hint(self.header, self.read),
                    ..Default::default()
                },
            ));
        }
        Some((
            self.t,
            Histogram {
                hint: read_hint(self.header, self.read),
                schema: self.layout.schema,
                zero_threshold: self.layout.zero_threshold,
                zero_count: self.zcnt,
                count: self.cnt,
                sum: self.sum.value,
                positive_spans: self.layout.pos.clone(),
                negative_spans: self.layout.neg.clone(),
                positive_deltas: self.pos.clone(),
                negative_deltas: self.neg.clone(),
                custom_values: self.layout.custom.clone(),
            },
        ))
    }

    /// The next sample of an integer chunk.
    pub fn next_int(&mut self) -> Option<(i64, Histogram)> {
        if self.err.is_some() || self.read >= self.total {
            return None;
        }
        match self.int_inner() {
            Some(x) => Some(x),
            None => self.fail(),
        }
    }

    fn float_inner(&mut self) -> Option<(i64, FloatHistogram)> {
        if self.read == 0 {
            self.layout = read_layout(&mut self.r)?;
            let (np, nn) = (count_spans(&self.layout.pos), count_spans(&self.layout.neg));
            if usize::from(self.total).saturating_mul(np + nn + 1) > MAX_DECODED_VALUES {
                return None;
            }
            self.t = read_int(&mut self.r)?;
            self.fcnt.value = f64::from_bits(self.r.read_bits(64)?);
            self.fzcnt.value = f64::from_bits(self.r.read_bits(64)?);
            self.sum.value = f64::from_bits(self.r.read_bits(64)?);
            self.fpos = (0..np)
                .map(|_| {
                    self.r
                        .read_bits(64)
                        .map(|b| XorValue::new(f64::from_bits(b), 0))
                })
                .collect::<Option<_>>()?;
            self.fneg = (0..nn)
                .map(|_| {
                    self.r
                        .read_bits(64)
                        .map(|b| XorValue::new(f64::from_bits(b), 0))
                })
                .collect::<Option<_>>()?;
        } else {
            self.t_delta = self.t_delta.wrapping_add(read_int(&mut self.r)?);
            self.t = self.t.wrapping_add(self.t_delta);
            xor_read(&mut self.r, &mut self.fcnt)?;
            xor_read(&mut self.r, &mut self.fzcnt)?;
            xor_read(&mut self.r, &mut self.sum)?;
            if !is_stale_nan(self.sum.value) {
                for i in 0..self.fpos.len() {
                    let mut x = self.fpos[i];
                    xor_read(&mut self.r, &mut x)?;
                    self.fpos[i] = x;
                }
                for i in 0..self.fneg.len() {
                    let mut x = self.fneg[i];
                    xor_read(&mut self.r, &mut x)?;
                    self.fneg[i] = x;
                }
            }
        }
        self.read += 1;
        if is_stale_nan(self.sum.value) {
            return Some((
                self.t,
                FloatHistogram {
                    sum: self.sum.value,
                    hint: read_hint(self.header, self.read),
                    ..Default::default()
                },
            ));
        }
        Some((
            self.t,
            FloatHistogram {
                hint: read_hint(self.header, self.read),
                schema: self.layout.schema,
                zero_threshold: self.layout.zero_threshold,
                zero_count: self.fzcnt.value,
                count: self.fcnt.value,
                sum: self.sum.value,
                positive_spans: self.layout.pos.clone(),
                negative_spans: self.layout.neg.clone(),
                positive_buckets: self.fpos.iter().map(|x| x.value).collect(),
                negative_buckets: self.fneg.iter().map(|x| x.value).collect(),
                custom_values: self.layout.custom.clone(),
            },
        ))
    }

    /// The next sample of a float chunk.
    pub fn next_float(&mut self) -> Option<(i64, FloatHistogram)> {
        if self.err.is_some() || self.read >= self.total {
            return None;
        }
        match self.float_inner() {
            Some(x) => Some(x),
            None => self.fail(),
        }
    }
}

/// Decodes a whole histogram chunk of either encoding (`ENC_HISTOGRAM` or
/// `ENC_FLOAT_HISTOGRAM`); a corrupt or unknown chunk is an error.
pub fn decode_chunk(
    encoding: u8,
    data: &[u8],
) -> crate::Result<Vec<(i64, crate::histogram::HistSample)>> {
    use crate::histogram::HistSample;
    let mut it = HistogramIter::new(data);
    let mut out = Vec::with_capacity(usize::from(it.num_samples()).min(data.len()));
    match encoding {
        super::ENC_HISTOGRAM => {
            while let Some((t, h)) = it.next_int() {
                out.push((t, HistSample::Int(h)));
            }
        }
        super::ENC_FLOAT_HISTOGRAM => {
            while let Some((t, h)) = it.next_float() {
                out.push((t, HistSample::Float(h)));
            }
        }
        _ => return Err(crate::Error::CorruptChunk("not a histogram chunk encoding")),
    }
    match it.err() {
        Some(e) => Err(crate::Error::CorruptChunk(e)),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests;
