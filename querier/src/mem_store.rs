//! An in-memory [`SeriesSource`] of one tenant's series: what the PromQL conformance runner
//! loads its test data into. A real store (sorted series, matcher semantics as the head's),
//! not a mock: it answers every query from the data it holds.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::Matcher;

use muninn_storage::histogram::chunking::HintTracker;

use crate::Result;
use crate::promql::value::Hist;
use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};

/// One stored sample: a float or a native histogram.
#[derive(Clone, Debug)]
pub enum MemPoint {
    F(f64),
    H(Hist),
}

/// One stored series.
#[derive(Clone)]
struct MemSeries {
    labels: Labels,
    samples: Vec<(i64, MemPoint)>,
}

/// Series held in memory, sorted by labels; samples sorted by time.
#[derive(Default, Clone)]
pub struct MemStore {
    series: Vec<MemSeries>,
}

impl MemStore {
    /// Adds float samples to a series, creating it if needed.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        self.add_points(
            labels,
            samples.into_iter().map(|(t, v)| (t, MemPoint::F(v))),
        );
    }

    /// Adds float or histogram samples to a series, creating it if needed.
    pub fn add_points(
        &mut self,
        labels: Labels,
        samples: impl IntoIterator<Item = (i64, MemPoint)>,
    ) {
        let i = match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(
                    i,
                    MemSeries {
                        labels,
                        samples: vec![],
                    },
                );
                i
            }
        };
        let s = &mut self.series[i];
        s.samples.extend(samples);
        s.samples.sort_by_key(|x| x.0);
        s.samples.dedup_by(|a, b| {
            // A later load of the same timestamp wins.
            if a.0 == b.0 {
                std::mem::swap(&mut b.1, &mut a.1);
                true
            } else {
                false
            }
        });
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a MemSeries> + 'a {
        self.series.iter().filter(move |s| {
            matchers
                .iter()
                .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
        })
    }
}

fn has_in_range(s: &MemSeries, mint: i64, maxt: i64) -> bool {
    let a = s.samples.partition_point(|x| x.0 < mint);
    s.samples.get(a).is_some_and(|x| x.0 <= maxt)
}

/// The floats and the histograms of `s` in `[mint, maxt]`.
type InRange = (Vec<(i64, f64)>, Vec<(i64, Hist)>);

fn in_range(s: &MemSeries, mint: i64, maxt: i64) -> InRange {
    let (mut f, mut h) = (Vec::new(), Vec::new());
    // Histograms read back with the hints their chunks give them, as from a real head.
    let mut hints = HintTracker::default();
    for (t, p) in &s.samples {
        let keep = *t >= mint && *t <= maxt;
        match p {
            MemPoint::F(v) => {
                hints.float_sample();
                if keep {
                    f.push((*t, *v));
                }
            }
            MemPoint::H(x) => {
                let hint = hints.next(x);
                if keep {
                    let mut x = (**x).clone();
                    x.hint = hint;
                    h.push((*t, Hist::new(x)));
                }
            }
        }
    }
    (f, h)
}

impl SeriesSource for MemStore {
    fn select<'a>(
        &'a self,
        _tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        Box::pin(async move {
            let mut matchers = matchers.to_vec();
            let shard = muninn_storage::shard::Shard::take(&mut matchers)
                .map_err(|e| crate::Error::BadData(e.to_string()))?;
            Ok(self
                .matching(&matchers)
                .filter(|s| shard.is_none_or(|sh| sh.contains_labels(&s.labels)))
                .filter_map(|s| {
                    let (samples, histograms) = in_range(s, mint, maxt);
                    (!samples.is_empty() || !histograms.is_empty()).then(|| SeriesData {
                        labels: s.labels.clone(),
                        samples: Samples::Raw(if labels_only { vec![] } else { samples }),
                        histograms: if labels_only { vec![] } else { histograms },
                    })
                })
                .collect())
        })
    }

    fn label_names<'a>(
        &'a self,
        _t: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut out = BTreeSet::new();
            for s in self
                .matching(matchers)
                .filter(|s| has_in_range(s, mint, maxt))
            {
                out.extend(s.labels.iter().map(|l| l.name.clone()));
            }
            Ok(out.into_iter().collect())
        })
    }

    fn label_values<'a>(
        &'a self,
        _t: &'a TenantId,
        name: &'a str,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut out = BTreeSet::new();
            for s in self
                .matching(matchers)
                .filter(|s| has_in_range(s, mint, maxt))
            {
                if let Some(v) = s.labels.get(name) {
                    out.insert(v.to_owned());
                }
            }
            Ok(out.into_iter().collect())
        })
    }

    fn metadata<'a>(
        &'a self,
        _t: &'a TenantId,
        _family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>> {
        Box::pin(async move { Ok(vec![]) })
    }
}
