//! An in-memory [`SeriesSource`] of one tenant's series: what the PromQL conformance runner
//! loads its test data into. A real store (sorted series, matcher semantics as the head's),
//! not a mock: it answers every query from the data it holds.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::Matcher;

use crate::Result;
use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};

/// One stored series.
#[derive(Clone)]
struct MemSeries {
    labels: Labels,
    samples: Vec<(i64, f64)>,
}

/// Series held in memory, sorted by labels; samples sorted by time.
#[derive(Default, Clone)]
pub struct MemStore {
    series: Vec<MemSeries>,
}

impl MemStore {
    /// Adds samples to a series, creating it if needed.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
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
                b.1 = a.1;
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

fn in_range(s: &MemSeries, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
    let a = s.samples.partition_point(|x| x.0 < mint);
    let b = s.samples.partition_point(|x| x.0 <= maxt);
    s.samples[a..b.max(a)].to_vec()
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
            Ok(self
                .matching(matchers)
                .filter_map(|s| {
                    let samples = in_range(s, mint, maxt);
                    (!samples.is_empty()).then(|| SeriesData {
                        labels: s.labels.clone(),
                        samples: Samples::Raw(if labels_only { vec![] } else { samples }),
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
                .filter(|s| !in_range(s, mint, maxt).is_empty())
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
                .filter(|s| !in_range(s, mint, maxt).is_empty())
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
