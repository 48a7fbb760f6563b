//! [`SeriesSource`] over several sources (ingesters and blocks): series with the same labels
//! are merged, identical timestamps counted once.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::{BoxFuture, try_join_all};
use muninn_proto::tenant::TenantId;
use muninn_storage::matcher::Matcher;

use crate::Result;
use crate::store::{FamilyMeta, SeriesData, SeriesSource};

/// The union of several sources.
pub struct MergedStore {
    pub parts: Vec<Arc<dyn SeriesSource>>,
}

impl SeriesSource for MergedStore {
    fn select_stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<crate::store::SeriesStream<'a>>> {
        Box::pin(async move {
            let streams = try_join_all(
                self.parts
                    .iter()
                    .map(|p| p.select_stream(tenant, matchers, mint, maxt)),
            )
            .await?;
            Ok(crate::series_merge::merge(
                streams,
                crate::series_merge::combine_samples,
            ))
        })
    }

    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        use futures::TryStreamExt;
        Box::pin(async move {
            let results = try_join_all(
                self.parts
                    .iter()
                    .map(|p| p.select(tenant, matchers, mint, maxt, labels_only)),
            )
            .await?;
            let streams = results
                .into_iter()
                .map(|v| {
                    let s: crate::store::SeriesStream<'_> =
                        Box::pin(futures::stream::iter(v.into_iter().map(Ok)));
                    s
                })
                .collect();
            let combine: crate::series_merge::Combine = if labels_only {
                |a, _| Ok(a)
            } else {
                crate::series_merge::combine_samples
            };
            crate::series_merge::merge(streams, combine)
                .try_collect()
                .await
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
