//! `load_with_nhcb`: classic histogram series (`_bucket{le}`, `_count`, `_sum`) also loaded
//! as native histograms with custom buckets, one per timestamp, named without the suffix.

use std::collections::BTreeMap;

use muninn_storage::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};
use muninn_storage::labels::{Labels, METRIC_NAME};

use crate::promql::value::set_label;

/// The classic parts seen at one timestamp.
#[derive(Default, Clone)]
struct Temp {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: Option<String>,
}

impl Temp {
    fn set_bucket(&mut self, le: f64, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!(
                "bucket count must be non-negative: le={le}, count={count}"
            ));
            return;
        }
        let i = self.buckets.partition_point(|b| b.0 < le);
        if self.buckets.get(i).is_some_and(|b| b.0 == le) {
            return;
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.err = Some(format!(
                "count is not cumulative: {count} < {}",
                self.buckets[i - 1].1
            ));
            return;
        }
        if let Some(b) = self.buckets.get(i)
            && count > b.1
        {
            self.err = Some(format!("count is not cumulative: {count} > {}", b.1));
            return;
        }
        self.buckets.insert(i, (le, count));
    }

    fn convert(mut self) -> Result<FloatHistogram, String> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let count = match self.count {
            Some(c) => c,
            None => self.buckets.last().map_or(0.0, |b| b.1),
        };
        if self.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            self.buckets.push((f64::INFINITY, count));
        }
        let last = self.buckets[self.buckets.len() - 1].1;
        if count != last {
            return Err(format!(
                "count mismatch: count={count} != le=+Inf count={last}"
            ));
        }
        let integer = self.buckets.iter().all(|b| b.1 == b.1.round()) && count == count.round();
        let mut prev = 0.0;
        let mut counts = Vec::with_capacity(self.buckets.len());
        for b in &self.buckets {
            counts.push(b.1 - prev);
            prev = b.1;
        }
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span {
                offset: 0,
                length: counts.len() as u32,
            }],
            positive_buckets: counts,
            custom_values: self.buckets[..self.buckets.len() - 1]
                .iter()
                .map(|b| b.0)
                .collect(),
            ..Default::default()
        };
        // Integer histograms are compacted keeping runs of up to 2 empty buckets, float ones
        // dropping all, as Prometheus's conversion does.
        h.compact_with(if integer { 2 } else { 0 });
        Ok(h)
    }
}

/// A series of native histograms, in time order.
pub type HistSeries = (Labels, Vec<(i64, FloatHistogram)>);

/// Native histograms built from the classic series of one load, per base series.
pub fn convert(series: &[(Labels, Vec<(i64, f64)>)]) -> Result<Vec<HistSeries>, String> {
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for (labels, samples) in series {
        let Some(name) = labels.get(METRIC_NAME) else {
            continue;
        };
        let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
            (0, b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (1, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (2, b)
        } else {
            continue;
        };
        let le = if kind == 0 {
            let Some(le) = labels.get("le") else {
                return Err(format!("expected bucket label in metric {labels}"));
            };
            match crate::promql::histogram::parse_le_value(le) {
                Some(v) if !v.is_nan() => Some(v),
                _ => continue,
            }
        } else {
            None
        };
        let mut key = labels.clone();
        set_label(&mut key, METRIC_NAME, base);
        set_label(&mut key, "le", "");
        let by_ts = groups.entry(key).or_default();
        for &(t, v) in samples {
            if muninn_storage::is_stale_nan(v) {
                continue;
            }
            let tmp = by_ts.entry(t).or_default();
            match (kind, le) {
                (0, Some(le)) => tmp.set_bucket(le, v),
                (1, _) => tmp.sum = v,
                _ => {
                    if v < 0.0 {
                        tmp.err = Some(format!("count must be non-negative: count={v}"));
                    }
                    tmp.count = Some(v);
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(l, by_ts)| {
            let hs = by_ts
                .into_iter()
                .map(|(t, tmp)| tmp.convert().map(|h| (t, h)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok((l, hs))
        })
        .collect()
}
