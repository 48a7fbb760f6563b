//! Validation of incoming series with Prometheus/Mimir semantics.
//!
//! Empty label values are dropped (Prometheus treats `foo=""` as no `foo`); everything else
//! that is wrong rejects the series with a [`Reason`] that names the rule.

use muninn_proto::write_view::LabelRef;

pub use muninn_tenancy::Limits;

/// Why samples were rejected; the `as_str` form is the `reason` label of the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    MissingMetricName,
    InvalidMetricName,
    InvalidLabelName,
    InvalidLabelValue,
    DuplicateLabelNames,
    LabelsNotSorted,
    LabelNameTooLong,
    LabelValueTooLong,
    TooManyLabels,
    OutOfOrder,
    DuplicateTimestamp,
    TooOld,
    TooFarInFuture,
    TimestampOutOfRange,
    NativeHistogram,
    PerUserSeriesLimit,
    PerMetricSeriesLimit,
    MetadataTooLong,
    RateLimited,
}

impl Reason {
    pub const ALL: [Reason; 19] = [
        Reason::MissingMetricName,
        Reason::InvalidMetricName,
        Reason::InvalidLabelName,
        Reason::InvalidLabelValue,
        Reason::DuplicateLabelNames,
        Reason::LabelsNotSorted,
        Reason::LabelNameTooLong,
        Reason::LabelValueTooLong,
        Reason::TooManyLabels,
        Reason::OutOfOrder,
        Reason::DuplicateTimestamp,
        Reason::TooOld,
        Reason::TooFarInFuture,
        Reason::TimestampOutOfRange,
        Reason::NativeHistogram,
        Reason::PerUserSeriesLimit,
        Reason::PerMetricSeriesLimit,
        Reason::MetadataTooLong,
        Reason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingMetricName => "missing_metric_name",
            Reason::InvalidMetricName => "metric_name_invalid",
            Reason::InvalidLabelName => "label_name_invalid",
            Reason::InvalidLabelValue => "label_value_invalid",
            Reason::DuplicateLabelNames => "duplicate_label_names",
            Reason::LabelsNotSorted => "labels_not_sorted",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::TooManyLabels => "max_label_names_per_series",
            Reason::OutOfOrder => "sample_out_of_order",
            Reason::DuplicateTimestamp => "sample_duplicate_timestamp",
            Reason::TooOld => "sample_too_old",
            Reason::TooFarInFuture => "too_far_in_future",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::NativeHistogram => "invalid_native_histogram",
            Reason::PerUserSeriesLimit => "per_user_series_limit",
            Reason::PerMetricSeriesLimit => "per_metric_series_limit",
            Reason::MetadataTooLong => "metadata_too_long",
            Reason::RateLimited => "rate_limited",
        }
    }

    /// A sentence for the error message returned to the client.
    pub fn message(self) -> &'static str {
        match self {
            Reason::MissingMetricName => "series has no metric name (__name__)",
            Reason::InvalidMetricName => "metric name is not valid (want [a-zA-Z_:][a-zA-Z0-9_:]*)",
            Reason::InvalidLabelName => "label name is not valid (want [a-zA-Z_][a-zA-Z0-9_]*)",
            Reason::InvalidLabelValue => "label value is not valid UTF-8",
            Reason::DuplicateLabelNames => "duplicate label names",
            Reason::LabelsNotSorted => "labels are not sorted by name",
            Reason::LabelNameTooLong => "label name is longer than the limit",
            Reason::LabelValueTooLong => "label value is longer than the limit",
            Reason::TooManyLabels => "series has more labels than the limit",
            Reason::OutOfOrder => {
                "out-of-order sample (older than the newest sample of the series, outside out_of_order_time_window)"
            }
            Reason::DuplicateTimestamp => "duplicate sample for timestamp with a different value",
            Reason::TooOld => {
                "sample is older than the head accepts (the tenant's newest sample minus half the block range, or minus out_of_order_time_window if larger)"
            }
            Reason::TooFarInFuture => {
                "sample is newer than now plus the creation grace period (creation_grace_period)"
            }
            Reason::TimestampOutOfRange => "sample timestamp is before 1970-01-01 (negative)",
            Reason::NativeHistogram => "invalid native histogram",
            Reason::PerUserSeriesLimit => {
                "the tenant's series limit is reached (max_global_series_per_user); new series are refused"
            }
            Reason::PerMetricSeriesLimit => {
                "the metric's series limit is reached (max_global_series_per_metric); new series are refused"
            }
            Reason::MetadataTooLong => {
                "metadata entry longer than the limit (max_metadata_length); entry dropped"
            }
            Reason::RateLimited => "ingestion rate limit exceeded (ingestion_rate)",
        }
    }
}

fn valid_metric_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_' || *first == b':')
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        }
        None => false,
    }
}

fn valid_label_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
        None => false,
    }
}

/// Validates a series' labels, writing the kept `(name, value)` pairs to `out`.
pub fn validate_labels<'a>(
    labels: &[LabelRef<'a>],
    limits: &Limits,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), Reason> {
    out.clear();
    let mut prev: &[u8] = &[];
    let mut has_name = false;
    for (i, l) in labels.iter().enumerate() {
        if l.name.len() > limits.max_label_name_length {
            return Err(Reason::LabelNameTooLong);
        }
        if l.value.len() > limits.max_label_value_length {
            return Err(Reason::LabelValueTooLong);
        }
        if l.name == b"__name__" {
            if l.value.is_empty() {
                return Err(Reason::MissingMetricName);
            }
            if !valid_metric_name(l.value) {
                return Err(Reason::InvalidMetricName);
            }
            has_name = true;
        } else if !valid_label_name(l.name) {
            return Err(Reason::InvalidLabelName);
        }
        if i > 0 {
            match prev.cmp(l.name) {
                std::cmp::Ordering::Equal => return Err(Reason::DuplicateLabelNames),
                std::cmp::Ordering::Greater => return Err(Reason::LabelsNotSorted),
                std::cmp::Ordering::Less => {}
            }
        }
        prev = l.name;
        if l.value.is_empty() {
            continue;
        }
        // Names were checked to be ASCII above.
        let name = std::str::from_utf8(l.name).map_err(|_| Reason::InvalidLabelName)?;
        let value = std::str::from_utf8(l.value).map_err(|_| Reason::InvalidLabelValue)?;
        out.push((name, value));
    }
    if !has_name {
        return Err(Reason::MissingMetricName);
    }
    if out.len() > limits.max_label_names_per_series {
        return Err(Reason::TooManyLabels);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, Reason> {
        let labels: Vec<LabelRef> = pairs
            .iter()
            .map(|(n, v)| LabelRef {
                name: n.as_bytes(),
                value: v.as_bytes(),
            })
            .collect();
        let mut out = vec![];
        validate_labels(&labels, &Limits::default(), &mut out)?;
        Ok(out
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect())
    }

    #[test]
    fn rules() {
        assert!(check(&[("__name__", "up"), ("job", "x")]).is_ok());
        assert_eq!(check(&[("job", "x")]), Err(Reason::MissingMetricName));
        assert_eq!(check(&[("__name__", "")]), Err(Reason::MissingMetricName));
        assert_eq!(
            check(&[("__name__", "1up")]),
            Err(Reason::InvalidMetricName)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a-b", "x")]),
            Err(Reason::InvalidLabelName)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a", "1"), ("a", "2")]),
            Err(Reason::DuplicateLabelNames)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("b", "1"), ("a", "2")]),
            Err(Reason::LabelsNotSorted)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a", &"x".repeat(2049))]),
            Err(Reason::LabelValueTooLong)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a", ""), ("b", "1")]).unwrap(),
            vec![("__name__".into(), "up".into()), ("b".into(), "1".into())],
            "empty values dropped"
        );
        let labels = [
            LabelRef {
                name: b"__name__",
                value: b"up",
            },
            LabelRef {
                name: b"a",
                value: &[0xff, 0xfe],
            },
        ];
        assert_eq!(
            validate_labels(&labels, &Limits::default(), &mut vec![]),
            Err(Reason::InvalidLabelValue)
        );
    }
}
