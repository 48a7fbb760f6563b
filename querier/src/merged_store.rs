//! [`SeriesSource`] over several sources (ingesters and blocks): series with the same labels
//! are merged, identical timestamps counted once.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::{BoxFuture, try_join_all};
use muninn_proto::tenant::TenantId;
use muninn_storage::matcher::Matcher;

use crate::Result;
use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};

/// The union of several sources.
pub struct MergedStore {
    pub parts: Vec<Arc<dyn SeriesSource>>,
}

impl SeriesSource for MergedStore {
    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        Box::pin(async move {
            let results = try_join_all(
                self.parts
                    .iter()
                    .map(|p| p.select(tenant, matchers, mint, maxt, labels_only)),
            )
            .await?;
            let mut all: Vec<SeriesData> = results.into_iter().flatten().collect();
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            let mut out: Vec<SeriesData> = Vec::with_capacity(all.len());
            for s in all {
                match out.last_mut() {
                    Some(last) if last.labels == s.labels => {
                        if !labels_only {
                            let mut v = last.samples.to_vec()?;
                            v.extend(s.samples.to_vec()?);
                            v.sort_by_key(|x| x.0);
                            v.dedup_by_key(|x| x.0);
                            last.samples = Samples::Raw(v);
                            if !s.histograms.is_empty() {
                                last.histograms.extend(s.histograms);
                                last.histograms.sort_by_key(|x| x.0);
                                last.histograms.dedup_by_key(|x| x.0);
                            }
                        }
                    }
                    _ => out.push(s),
                }
            }
            Ok(out)
        })
    }

    fn label_names<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let r = try_join_all(
                self.parts
                    .iter()
                    .map(|p| p.label_names(tenant, matchers, mint, maxt)),
            )
            .await?;
            Ok(r.into_iter()
                .flatten()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect())
        })
    }

    fn label_values<'a>(
        &'a self,
        tenant: &'a TenantId,
        name: &'a str,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let r = try_join_all(
                self.parts
                    .iter()
                    .map(|p| p.label_values(tenant, name, matchers, mint, maxt)),
            )
            .await?;
            Ok(r.into_iter()
                .flatten()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect())
        })
    }

    fn metadata<'a>(
        &'a self,
        tenant: &'a TenantId,
        family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>> {
        Box::pin(async move {
            let r = try_join_all(self.parts.iter().map(|p| p.metadata(tenant, family))).await?;
            let mut all: Vec<FamilyMeta> = r.into_iter().flatten().collect();
            all.sort_by(|a, b| {
                (&a.family, &a.metric_type, &a.help, &a.unit).cmp(&(
                    &b.family,
                    &b.metric_type,
                    &b.help,
                    &b.unit,
                ))
            });
            all.dedup();
            Ok(all)
        })
    }
}
