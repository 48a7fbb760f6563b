//! A series' native-histogram samples in the head: closed histogram chunks and the open one,
//! in Prometheus's encodings (integer `EncHistogram` or `EncFloatHistogram`), kept beside the
//! series' float chunks.
//!
//! Chunks are cut as Prometheus's appender decides (counter reset, schema or zero-threshold
//! change, gauge/counter switch, staleness marker, integer/float switch) and, like float
//! chunks, at 120 samples and at `CHUNK_RANGE_MS` boundaries. Histograms are appended in
//! order only: the out-of-order window applies to float samples.

use muninn_storage::chunk::histogram::{Appended, FloatHistogramAppender, HistogramAppender};
use muninn_storage::chunk::{ENC_FLOAT_HISTOGRAM, ENC_HISTOGRAM, SAMPLES_PER_CHUNK};
use muninn_storage::histogram::HistSample;

use super::series::{AppendOutcome, CHUNK_RANGE_MS};

/// A closed histogram chunk.
pub struct ClosedHist {
    pub encoding: u8,
    pub min_t: i64,
    pub max_t: i64,
    pub data: Box<[u8]>,
}

/// The open chunk.
pub enum OpenHist {
    Int(HistogramAppender),
    Float(FloatHistogramAppender),
}

impl OpenHist {
    pub fn encoding(&self) -> u8 {
        match self {
            OpenHist::Int(_) => ENC_HISTOGRAM,
            OpenHist::Float(_) => ENC_FLOAT_HISTOGRAM,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            OpenHist::Int(a) => a.bytes(),
            OpenHist::Float(a) => a.bytes(),
        }
    }

    fn num_samples(&self) -> u16 {
        match self {
            OpenHist::Int(a) => a.num_samples(),
            OpenHist::Float(a) => a.num_samples(),
        }
    }

    pub fn last_timestamp(&self) -> i64 {
        match self {
            OpenHist::Int(a) => a.last_timestamp(),
            OpenHist::Float(a) => a.last_timestamp(),
        }
    }
}

/// Decodes a chunk this head wrote (so not corrupt; a decoding error yields nothing).
fn decode_chunk(encoding: u8, data: &[u8]) -> Vec<(i64, HistSample)> {
    muninn_storage::chunk::histogram::decode_chunk(encoding, data).unwrap_or_default()
}

/// Data equality as Prometheus's `Equals`: values compared bit for bit (a retried staleness
/// marker is a duplicate), the counter-reset hint ignored.
fn same_data(a: &HistSample, b: &HistSample) -> bool {
    match (a, b) {
        (HistSample::Float(x), HistSample::Float(y)) => x.equals(y),
        (HistSample::Int(x), HistSample::Int(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.hint = Default::default();
            y.hint = Default::default();
            x.sum.to_bits() == y.sum.to_bits() && {
                x.sum = 0.0;
                y.sum = 0.0;
                x == y
            }
        }
        _ => false,
    }
}

/// One series' histograms.
#[derive(Default)]
pub struct HistChunks {
    pub closed: Vec<ClosedHist>,
    pub head: Option<(i64, OpenHist)>,
    /// The newest sample, to tell a retried duplicate from a conflicting one.
    last: Option<(i64, HistSample)>,
}

impl HistChunks {
    /// Timestamp of the newest histogram.
    pub fn last_t(&self) -> Option<i64> {
        self.last.as_ref().map(|(t, _)| *t)
    }

    /// Oldest and newest timestamps held.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let max = self.head.as_ref().map(|(_, a)| a.last_timestamp())?;
        let min = self
            .closed
            .first()
            .map(|c| c.min_t)
            .or(self.head.as_ref().map(|h| h.0))?;
        Some((min, max))
    }

    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.head.is_none()
    }

    fn close_head(&mut self) {
        if let Some((min_t, a)) = self.head.take() {
            self.closed.push(ClosedHist {
                encoding: a.encoding(),
                min_t,
                max_t: a.last_timestamp(),
                data: a.bytes().to_vec().into_boxed_slice(),
            });
        }
    }

    /// Appends a histogram newer than every sample of the series (`newest` is the series'
    /// newest timestamp of either kind).
    pub fn append(&mut self, t: i64, h: &HistSample, newest: Option<i64>) -> AppendOutcome {
        if let Some(lt) = newest {
            if t < lt {
                return AppendOutcome::OutOfOrder;
            }
            if t == lt {
                return match &self.last {
                    Some((ht, prev)) if *ht == t && same_data(prev, h) => AppendOutcome::Duplicate,
                    _ => AppendOutcome::ConflictingDuplicate,
                };
            }
        }
        let kind_changes = matches!(
            (&self.head, h),
            (Some((_, OpenHist::Int(_))), HistSample::Float(_))
                | (Some((_, OpenHist::Float(_))), HistSample::Int(_))
        );
        let cut = match &self.head {
            None => true,
            Some((min_t, a)) => {
                kind_changes
                    || a.num_samples() >= SAMPLES_PER_CHUNK
                    || t.div_euclid(CHUNK_RANGE_MS) != min_t.div_euclid(CHUNK_RANGE_MS)
            }
        };
        if cut {
            // A chunk cut by size or time continues the previous one: Prometheus gives its
            // header from the previous appender.
            let prev = self.head.take();
            let mut open = match h {
                HistSample::Int(_) => OpenHist::Int(HistogramAppender::new()),
                HistSample::Float(_) => OpenHist::Float(FloatHistogramAppender::new()),
            };
            match (&mut open, h, prev.as_ref().map(|p| &p.1)) {
                (OpenHist::Int(a), HistSample::Int(x), Some(OpenHist::Int(p))) => {
                    a.append(t, x, Some(p));
                }
                (OpenHist::Int(a), HistSample::Int(x), _) => {
                    a.append(t, x, None);
                }
                (OpenHist::Float(a), HistSample::Float(x), Some(OpenHist::Float(p))) => {
                    a.append(t, x, Some(p));
                }
                (OpenHist::Float(a), HistSample::Float(x), _) => {
                    a.append(t, x, None);
                }
                _ => {}
            }
            self.head = prev;
            self.close_head();
            self.head = Some((t, open));
        } else if let Some((_, open)) = &mut self.head {
            let next = match (open, h) {
                (OpenHist::Int(a), HistSample::Int(x)) => match a.append(t, x, None) {
                    Appended::Here => None,
                    Appended::NewChunk(c) => Some(OpenHist::Int(c)),
                },
                (OpenHist::Float(a), HistSample::Float(x)) => match a.append(t, x, None) {
                    Appended::Here => None,
                    Appended::NewChunk(c) => Some(OpenHist::Float(c)),
                },
                _ => None,
            };
            if let Some(c) = next {
                self.close_head();
                self.head = Some((t, c));
            }
        }
        self.last = Some((t, h.clone()));
        AppendOutcome::Appended
    }

    /// Every chunk, oldest first, as `(encoding, min_t, max_t, bytes)`.
    pub fn chunks(&self) -> impl Iterator<Item = (u8, i64, i64, &[u8])> + '_ {
        self.closed
            .iter()
            .map(|c| (c.encoding, c.min_t, c.max_t, &*c.data))
            .chain(
                self.head
                    .as_ref()
                    .map(|(min, a)| (a.encoding(), *min, a.last_timestamp(), a.bytes())),
            )
    }

    /// Histograms in `[min_t, max_t)` newer than `after`.
    pub fn samples_in(&self, min_t: i64, max_t: i64, after: i64) -> Vec<(i64, HistSample)> {
        let lo = min_t.max(after.saturating_add(1));
        let mut out = Vec::new();
        for (enc, cmin, cmax, data) in self.chunks() {
            if cmax < lo || cmin >= max_t {
                continue;
            }
            out.extend(
                decode_chunk(enc, data)
                    .into_iter()
                    .filter(|(t, _)| *t >= lo && *t < max_t),
            );
        }
        out
    }

    /// Every histogram held, oldest first.
    pub fn all(&self) -> Vec<(i64, HistSample)> {
        self.chunks()
            .flat_map(|(enc, _, _, data)| decode_chunk(enc, data))
            .collect()
    }

    /// The oldest histogram newer than `after`.
    pub fn first_after(&self, after: i64) -> Option<i64> {
        for (enc, _, cmax, data) in self.chunks() {
            if cmax > after {
                return decode_chunk(enc, data)
                    .into_iter()
                    .map(|(t, _)| t)
                    .find(|t| *t > after);
            }
        }
        None
    }

    /// Drops every histogram at or before `t`; a straddling chunk is re-encoded.
    pub fn drop_through(&mut self, t: i64) {
        let keep: Vec<(i64, HistSample)> = {
            let straddles = self
                .chunks()
                .find(|(_, cmin, cmax, _)| *cmin <= t && *cmax > t)
                .map(|(enc, _, _, data)| decode_chunk(enc, data));
            straddles
                .unwrap_or_default()
                .into_iter()
                .filter(|(st, _)| *st > t)
                .collect()
        };
        let head_max = self.head.as_ref().map(|(_, a)| a.last_timestamp());
        let head_min = self.head.as_ref().map(|(m, _)| *m);
        self.closed.retain(|c| c.min_t > t);
        let head_straddles = head_min.is_some_and(|m| m <= t);
        if head_straddles {
            self.head = None;
        }
        if keep.is_empty() {
            if self.is_empty() {
                self.last = None;
            }
            return;
        }
        // Re-encode what the straddling chunk keeps, in front of what follows.
        let mut fresh = HistChunks::default();
        for (st, h) in &keep {
            fresh.append(*st, h, fresh.last_t());
        }
        fresh.close_head();
        let mut closed = fresh.closed;
        closed.append(&mut self.closed);
        self.closed = closed;
        if head_straddles && head_max.is_some_and(|m| m > t) {
            // The open chunk itself straddled: reopen its remainder as the head.
            if let Some(c) = self.closed.pop() {
                let samples = decode_chunk(c.encoding, &c.data);
                let mut reopened = HistChunks::default();
                for (st, h) in &samples {
                    reopened.append(*st, h, reopened.last_t());
                }
                self.closed.append(&mut reopened.closed);
                self.head = reopened.head;
            }
        }
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.closed.iter().map(|c| c.data.len() + 32).sum::<usize>()
            + self.head.as_ref().map_or(0, |(_, a)| a.bytes().len())
            + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_storage::histogram::{CounterResetHint, Histogram, Span};

    fn h(count: u64) -> HistSample {
        HistSample::Int(Histogram {
            count,
            sum: count as f64,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_deltas: vec![count as i64],
            ..Default::default()
        })
    }

    #[test]
    fn appends_cuts_and_drops() {
        let mut c = HistChunks::default();
        for k in 0..300u64 {
            assert_eq!(
                c.append(k as i64 * 1000, &h(k), c.last_t()),
                AppendOutcome::Appended
            );
        }
        assert_eq!(c.append(5000, &h(1), c.last_t()), AppendOutcome::OutOfOrder);
        assert_eq!(
            c.append(299_000, &h(299), c.last_t()),
            AppendOutcome::Duplicate
        );
        assert_eq!(
            c.append(299_000, &h(7), c.last_t()),
            AppendOutcome::ConflictingDuplicate
        );
        assert_eq!(c.closed.len(), 2, "cut at 120 samples");
        let all = c.all();
        assert_eq!(all.len(), 300);
        assert_eq!(all[150].0, 150_000);
        // A reset starts a new chunk.
        c.append(300_000, &h(1), c.last_t());
        assert_eq!(c.closed.len(), 3);
        let back = c.samples_in(290_000, 400_000, i64::MIN);
        assert_eq!(back.len(), 11);
        let HistSample::Int(last) = &back[10].1 else {
            panic!()
        };
        assert_eq!(last.hint, CounterResetHint::Unknown);
        c.drop_through(150_000);
        assert_eq!(c.all().first().map(|x| x.0), Some(151_000));
        assert_eq!(c.all().len(), 150);
        c.drop_through(300_000);
        assert!(c.is_empty());
    }
}
