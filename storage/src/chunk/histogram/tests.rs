//! Round trips and layout changes of the histogram chunk codecs.

use super::*;
use crate::histogram::from_pairs;

fn int_h(count_by_idx: &[(i32, u64)], zero: u64, hint: CounterResetHint) -> Histogram {
    let (spans, abs): (Vec<Span>, Vec<u64>) = from_pairs(count_by_idx.iter().copied());
    let mut prev = 0i64;
    let deltas = abs
        .iter()
        .map(|&c| {
            let d = c as i64 - prev;
            prev = c as i64;
            d
        })
        .collect();
    let count = abs.iter().sum::<u64>() + zero;
    Histogram {
        hint,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: zero,
        count,
        sum: count as f64 * 1.5,
        positive_spans: spans,
        positive_deltas: deltas,
        ..Default::default()
    }
}

fn same(a: &Histogram, b: &Histogram) -> bool {
    let (mut x, mut y) = (a.to_float(), b.to_float());
    x.compact();
    y.compact();
    x.hint = CounterResetHint::Unknown;
    y.hint = CounterResetHint::Unknown;
    x == y
}

/// Appends like a head: follows new chunks; returns the chunks' bytes.
fn encode(samples: &[(i64, Histogram)]) -> Vec<Vec<u8>> {
    let mut chunks: Vec<HistogramAppender> = vec![HistogramAppender::new()];
    for (t, h) in samples {
        let last = chunks.len() - 1;
        if let Appended::NewChunk(c) = chunks[last].append(*t, h, None) {
            chunks.push(c);
        }
    }
    chunks.iter().map(|c| c.bytes().to_vec()).collect()
}

fn decode(chunks: &[Vec<u8>]) -> Vec<(i64, Histogram)> {
    let mut out = vec![];
    for c in chunks {
        let mut it = HistogramIter::new(c);
        while let Some(x) = it.next_int() {
            out.push(x);
        }
        assert_eq!(it.err(), None);
    }
    out
}

#[test]
fn growing_buckets_recode_and_round_trip() {
    use CounterResetHint::Unknown as U;
    let s = vec![
        (1000, int_h(&[(1, 1)], 0, U)),
        (2000, int_h(&[(1, 2), (2, 1)], 1, U)),
        (3000, int_h(&[(0, 1), (1, 2), (2, 1), (5, 3)], 1, U)),
        (4000, int_h(&[(0, 1), (1, 4), (2, 1), (5, 3)], 2, U)),
        // A bucket that was empty in the chunk is missing here: a backward insert.
        (5000, int_h(&[(1, 5), (2, 2), (5, 3), (7, 1)], 2, U)),
    ];
    let mut s = s;
    // Make bucket 0 of sample 4 empty so sample 5 may omit it.
    s[3].1 = int_h(&[(0, 0), (1, 5), (2, 1), (5, 3)], 2, U);
    s[2].1 = int_h(&[(0, 0), (1, 2), (2, 1), (5, 3)], 1, U);
    let chunks = encode(&s);
    assert_eq!(chunks.len(), 1, "layout changes recode, they do not cut");
    let back = decode(&chunks);
    assert_eq!(back.len(), s.len());
    for ((t, a), (u, b)) in s.iter().zip(&back) {
        assert_eq!(t, u);
        assert!(same(a, b), "{a:?} != {b:?}");
    }
    assert_eq!(back[0].1.hint, CounterResetHint::Unknown);
    assert_eq!(back[1].1.hint, CounterResetHint::NotReset);
}

#[test]
fn resets_gauges_and_stale_markers_cut_chunks() {
    use CounterResetHint::*;
    let stale = Histogram {
        sum: f64::from_bits(crate::STALE_NAN_BITS),
        ..Default::default()
    };
    let s = vec![
        (1, int_h(&[(1, 3)], 0, Unknown)),
        (2, int_h(&[(1, 1)], 0, Unknown)), // count went down: reset
        (3, stale.clone()),
        (4, int_h(&[(1, 2)], 0, Unknown)), // after a marker: new chunk
        (5, int_h(&[(1, 1)], 0, Gauge)),
        (6, int_h(&[(1, 0), (3, 1)], 0, Gauge)),
    ];
    let chunks = encode(&s);
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[1][2] & HEADER_MASK, HEADER_RESET);
    assert_eq!(chunks[3][2] & HEADER_MASK, HEADER_GAUGE);
    let back = decode(&chunks);
    assert!(is_stale_nan(back[2].1.sum));
    assert_eq!(back[4].1.hint, Gauge);
    assert!(same(&back[5].1, &s[5].1));
}

#[test]
fn float_chunks_round_trip_with_layout_changes() {
    let mk = |pairs: &[(i32, f64)], hint| {
        let (positive_spans, positive_buckets) = from_pairs(pairs.iter().copied());
        let count = positive_buckets.iter().sum::<f64>();
        FloatHistogram {
            hint,
            schema: 0,
            count,
            sum: count * 0.7,
            positive_spans,
            positive_buckets,
            custom_values: vec![],
            ..Default::default()
        }
    };
    use CounterResetHint::*;
    let s = vec![
        (10, mk(&[(0, 1.5)], Unknown)),
        (20, mk(&[(0, 1.5), (3, 0.25)], Unknown)),
        (30, mk(&[(-2, 4.0), (0, 2.5), (3, 0.25)], Unknown)),
        (40, mk(&[(-2, 1.0)], Unknown)), // reset
        (50, mk(&[(1, 1.0)], Gauge)),
        (60, mk(&[(2, 2.0)], Gauge)),
    ];
    let mut chunks: Vec<FloatHistogramAppender> = vec![FloatHistogramAppender::new()];
    for (t, h) in &s {
        let last = chunks.len() - 1;
        if let Appended::NewChunk(c) = chunks[last].append(*t, h, None) {
            chunks.push(c);
        }
    }
    assert_eq!(chunks.len(), 3);
    let mut back = vec![];
    for c in &chunks {
        let mut it = HistogramIter::new(c.bytes());
        while let Some(x) = it.next_float() {
            back.push(x);
        }
        assert_eq!(it.err(), None);
    }
    assert_eq!(back.len(), s.len());
    for ((t, a), (u, b)) in s.iter().zip(&back) {
        assert_eq!(t, u);
        let (mut x, mut y) = (a.clone(), b.clone());
        x.compact();
        y.compact();
        x.hint = Unknown;
        y.hint = Unknown;
        assert_eq!(x, y);
    }
}

#[test]
fn corrupt_chunks_end_with_an_error() {
    let chunks = encode(&[
        (1, int_h(&[(1, 1)], 0, CounterResetHint::Unknown)),
        (2, int_h(&[(1, 2)], 0, CounterResetHint::Unknown)),
    ]);
    let mut c = chunks[0].clone();
    c.truncate(c.len() - 2);
    let mut it = HistogramIter::new(&c);
    while it.next_int().is_some() {}
    assert!(it.err().is_some());
    assert!(HistogramIter::new(&[1]).err().is_some());
}

#[test]
fn zero_thresholds_and_custom_bounds_round_trip() {
    for zt in [0.0, 0.5, 2f64.powi(-10), 0.001, 1e-300] {
        let mut buf = vec![];
        let mut w = BitWriter::default();
        put_zero_threshold(&mut w, &mut buf, zt);
        let mut r = BitReader::new(&buf);
        assert_eq!(read_zero_threshold(&mut r), Some(zt));
    }
    for b in [0.1, 0.25, 5.0, 1e9, -1.0, 33554.43] {
        let mut buf = vec![];
        let mut w = BitWriter::default();
        put_custom_bound(&mut w, &mut buf, b);
        let mut r = BitReader::new(&buf);
        assert_eq!(read_custom_bound(&mut r), Some(b));
    }
}
