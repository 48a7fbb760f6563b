//! Values flowing through step-vectorised evaluation.

use std::sync::Arc;

use muninn_storage::histogram::FloatHistogram;
use muninn_storage::is_stale_nan;
use muninn_storage::labels::{Label, Labels, METRIC_NAME};

use crate::store::Samples;

/// A native histogram sample's value, shared between steps that see the same sample.
pub type Hist = Arc<FloatHistogram>;

/// One instant-vector series: a value (or none) per evaluation step.
///
/// A step holds a float in `vals` or a native histogram in `hists`, never both. `hists` is
/// empty for a series without histograms (most of them), else as long as `vals`.
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
    pub hists: Vec<Option<Hist>>,
    /// `__name__` is to be removed at the end of evaluation (delayed name removal, as
    /// Prometheus 3's engine does), so grouping and matching still see it meanwhile.
    pub drop_name: bool,
}

impl Series {
    /// A series of floats only.
    pub fn floats(labels: Labels, vals: Vec<Option<f64>>, drop_name: bool) -> Series {
        Series {
            labels,
            vals,
            hists: Vec::new(),
            drop_name,
        }
    }

    /// The histogram at step `i`, if that step holds one.
    #[inline]
    pub fn hist(&self, i: usize) -> Option<&Hist> {
        self.hists.get(i).and_then(Option::as_ref)
    }

    /// Whether step `i` holds a float or a histogram.
    #[inline]
    pub fn has(&self, i: usize) -> bool {
        self.vals.get(i).is_some_and(Option::is_some) || self.hist(i).is_some()
    }

    /// Whether any step holds a value.
    pub fn any(&self) -> bool {
        self.vals.iter().any(Option::is_some) || self.hists.iter().any(Option::is_some)
    }

    /// Sets step `i` to a histogram (clearing its float).
    pub fn set_hist(&mut self, i: usize, h: Hist) {
        if self.hists.is_empty() {
            self.hists = vec![None; self.vals.len()];
        }
        self.vals[i] = None;
        self.hists[i] = Some(h);
    }
}

/// Samples of one series for range-vector arguments, decoded on use. Native histogram
/// samples are kept apart, in time order, in `hists`.
#[derive(Clone, Debug)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Samples,
    pub hists: Vec<(i64, Hist)>,
    pub drop_name: bool,
}

impl RangeSeries {
    /// Decodes the samples into `out`, without staleness markers (not samples of a range).
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) -> crate::Result<()> {
        self.samples.decode_into(out)?;
        out.retain(|(_, v)| !is_stale_nan(*v));
        Ok(())
    }
}

/// Whether a histogram sample is a staleness marker (its sum is the stale NaN).
#[inline]
pub fn is_stale_hist(h: &FloatHistogram) -> bool {
    is_stale_nan(h.sum)
}

/// A range vector over all steps: each step looks at `samples` in its window `(lo, hi]`.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub series: Vec<RangeSeries>,
    /// `(lo, hi]` per step, in milliseconds.
    pub windows: Vec<(i64, i64)>,
    /// The range of the selector or subquery, in milliseconds.
    pub range_ms: i64,
}

impl Matrix {
    /// The part of a series' decoded samples in the window of `step`.
    pub fn window<'a>(&self, samples: &'a [(i64, f64)], step: usize) -> &'a [(i64, f64)] {
        let (lo, hi) = self.windows[step];
        let a = samples.partition_point(|(t, _)| *t <= lo);
        let b = samples.partition_point(|(t, _)| *t <= hi);
        &samples[a..b.max(a)]
    }

    /// The histogram samples of a series in the window of `step`.
    pub fn hwindow<'a>(&self, hists: &'a [(i64, Hist)], step: usize) -> &'a [(i64, Hist)] {
        let (lo, hi) = self.windows[step];
        let a = hists.partition_point(|(t, _)| *t <= lo);
        let b = hists.partition_point(|(t, _)| *t <= hi);
        &hists[a..b.max(a)]
    }
}

/// The value of an expression over all steps.
#[derive(Clone, Debug)]
pub enum Value {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<Series>),
    Matrix(Matrix),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
        }
    }
}

/// Labels without `__name__`.
pub fn without_name(l: &Labels) -> Labels {
    Labels(
        l.0.iter()
            .filter(|l| l.name != METRIC_NAME)
            .cloned()
            .collect(),
    )
}

/// Sets (or, with an empty value, removes) a label, keeping the set sorted.
pub fn set_label(l: &mut Labels, name: &str, value: &str) {
    match l.0.binary_search_by(|x| x.name.as_str().cmp(name)) {
        Ok(i) => {
            if value.is_empty() {
                l.0.remove(i);
            } else {
                l.0[i].value = value.to_owned();
            }
        }
        Err(i) => {
            if !value.is_empty() {
                l.0.insert(
                    i,
                    Label {
                        name: name.to_owned(),
                        value: value.to_owned(),
                    },
                );
            }
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` plus Prometheus's spellings of specials.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Neumaier-compensated summation step, as Prometheus's `kahanSumInc`.
#[inline]
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}
