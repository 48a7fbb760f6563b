//! Values flowing through step-vectorised evaluation.

use muninn_storage::is_stale_nan;
use muninn_storage::labels::{Label, Labels, METRIC_NAME};

use crate::store::Samples;

/// One instant-vector series: a value (or none) per evaluation step.
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
    /// `__name__` is to be removed at the end of evaluation (delayed name removal, as
    /// Prometheus 3's engine does), so grouping and matching still see it meanwhile.
    pub drop_name: bool,
}

/// Samples of one series for range-vector arguments, decoded on use.
#[derive(Clone, Debug)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Samples,
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
