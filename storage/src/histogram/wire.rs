//! Remote write's histogram message as a model histogram: integer or float, validated.

use muninn_proto::histogram_wire::{Count, WireHistogram};

use super::{CounterResetHint, FloatHistogram, Histogram, HistogramError, Span};

/// A histogram sample as it arrived: integer or float counts.
#[derive(Clone, Debug, PartialEq)]
pub enum HistSample {
    Int(Histogram),
    Float(FloatHistogram),
}

impl HistSample {
    /// The float view (what queries compute with).
    pub fn to_float(&self) -> FloatHistogram {
        match self {
            HistSample::Int(h) => h.to_float(),
            HistSample::Float(h) => h.clone(),
        }
    }

    pub fn sum(&self) -> f64 {
        match self {
            HistSample::Int(h) => h.sum,
            HistSample::Float(h) => h.sum,
        }
    }
}

fn spans(s: &[(i32, u32)]) -> Vec<Span> {
    s.iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}

/// Converts and validates; the error names why the histogram is refused.
pub fn from_wire(w: &WireHistogram) -> Result<HistSample, HistogramError> {
    let hint =
        u8::try_from(w.reset_hint).map_or(CounterResetHint::Unknown, CounterResetHint::from_u8);
    let sample = match (w.count, w.zero_count) {
        (Count::Int(count), zc) => {
            // A zero count of the other kind reads as 0, as protobuf's getters give it.
            let zero_count = match zc {
                Count::Int(z) => z,
                Count::Float(_) => 0,
            };
            HistSample::Int(Histogram {
                hint,
                schema: w.schema,
                zero_threshold: w.zero_threshold,
                zero_count,
                count,
                sum: w.sum,
                positive_spans: spans(&w.positive_spans),
                negative_spans: spans(&w.negative_spans),
                positive_deltas: w.positive_deltas.clone(),
                negative_deltas: w.negative_deltas.clone(),
                custom_values: w.custom_values.clone(),
            })
        }
        (Count::Float(count), zc) => {
            let zero_count = match zc {
                Count::Int(_) => 0.0,
                Count::Float(z) => z,
            };
            HistSample::Float(FloatHistogram {
                hint,
                schema: w.schema,
                zero_threshold: w.zero_threshold,
                zero_count,
                count,
                sum: w.sum,
                positive_spans: spans(&w.positive_spans),
                negative_spans: spans(&w.negative_spans),
                positive_buckets: w.positive_counts.clone(),
                negative_buckets: w.negative_counts.clone(),
                custom_values: w.custom_values.clone(),
            })
        }
    };
    if crate::is_stale_nan(sample.sum()) {
        // A staleness marker carries nothing else worth checking.
        return Ok(sample);
    }
    match &sample {
        HistSample::Int(h) => h.validate()?,
        HistSample::Float(h) => h.validate()?,
    }
    Ok(sample)
}
