//! The texts of PromQL's native-histogram annotations, worded as Prometheus words them.

/// Which histogram operation an annotation is about.
#[derive(Clone, Copy, Debug)]
pub enum HistOp {
    Add,
    Sub,
    Agg,
}

impl HistOp {
    fn word(self) -> &'static str {
        match self {
            HistOp::Add => "addition",
            HistOp::Sub => "subtraction",
            HistOp::Agg => "aggregation",
        }
    }
}

fn for_metric(msg: &str, metric: &str) -> String {
    if metric.is_empty() {
        msg.to_owned()
    } else {
        format!("{msg} for metric name {metric:?}")
    }
}

pub fn mixed_floats_histograms(metric: &str) -> String {
    format!("PromQL warning: encountered a mix of histograms and floats for metric name {metric:?}")
}

pub fn mixed_floats_histograms_agg() -> String {
    "PromQL warning: encountered a mix of histograms and floats for aggregation".into()
}

pub fn mixed_exponential_custom(metric: &str) -> String {
    format!(
        "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
    )
}

pub fn mixed_classic_native(metric: &str) -> String {
    for_metric(
        "PromQL warning: vector contains a mix of classic and native histograms",
        metric,
    )
}

pub fn not_counter(metric: &str) -> String {
    format!("PromQL warning: this native histogram metric is not a counter: {metric:?}")
}

pub fn not_gauge(metric: &str) -> String {
    format!("PromQL warning: this native histogram metric is not a gauge: {metric:?}")
}

pub fn ignored_in_mixed_range(metric: &str) -> String {
    format!(
        "PromQL info: ignored histograms in a range containing both floats and histograms for metric name {metric:?}"
    )
}

pub fn ignored_in_aggregation(agg: &str) -> String {
    format!("PromQL info: ignored histogram in {agg} aggregation")
}

pub fn incompatible_types(op: &str, lhs: &str, rhs: &str) -> String {
    format!(
        "PromQL info: incompatible sample types encountered for binary operator {op:?}: {lhs} {op} {rhs}"
    )
}

pub fn counter_reset_collision(op: HistOp) -> String {
    format!(
        "PromQL warning: conflicting counter resets during histogram {}",
        op.word()
    )
}

pub fn mismatched_custom_buckets(op: HistOp) -> String {
    format!(
        "PromQL info: mismatched custom buckets were reconciled during {}",
        op.word()
    )
}

pub fn quantile_nan_result(metric: &str) -> String {
    for_metric(
        "PromQL info: input to histogram_quantile has NaN observations, result is NaN",
        metric,
    )
}

pub fn quantile_nan_skew(metric: &str) -> String {
    for_metric(
        "PromQL info: input to histogram_quantile has NaN observations, result is skewed higher",
        metric,
    )
}

pub fn fraction_nans(metric: &str) -> String {
    for_metric(
        "PromQL info: input to histogram_fraction has NaN observations, which are excluded from all fractions",
        metric,
    )
}
