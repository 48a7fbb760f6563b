//! [`SeriesSource`] over a tenant's blocks in the bucket: finds blocks through the bucket
//! index (falling back to listing), cached for `--blocks-storage.bucket-index.update-interval`,
//! and reads only what a query needs from each.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::block::{DATA_FILE, reader};
use muninn_storage::bucket::Bucket;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::{MatchOp, Matcher};

use crate::store::{FamilyMeta, FloatChunk, Samples, SeriesData, SeriesSource};
use crate::{Error, Result};

/// Blocks of every tenant in one bucket.
pub struct BlockStore {
    bucket: Bucket,
    index_update_interval: std::time::Duration,
    /// The ingesters' ring, whose membership changes make cached indexes stale.
    ring: Option<std::sync::Arc<muninn_ring::RingHandle>>,
    /// The ring membership the cached indexes were read under.
    ring_seen: parking_lot::Mutex<Option<u64>>,
}

impl BlockStore {
    /// Blocks of `bucket`, whose index each query uses for up to `index_update_interval`.
    pub fn new(bucket: Bucket, index_update_interval: std::time::Duration) -> Self {
        Self {
            bucket,
            index_update_interval,
            ring: None,
            ring_seen: parking_lot::Mutex::new(None),
        }
    }

    /// Reads every tenant's index again at the first query that sees an ingester of `ring`
    /// turn LEAVING or leave: what it flushed is now only in blocks, which an index cached
    /// before its flush would not list. Checked against the ring view of the query itself,
    /// so no query that no longer asks the ingester uses an index from before it left.
    pub fn with_ring(mut self, ring: std::sync::Arc<muninn_ring::RingHandle>) -> Self {
        self.ring = Some(ring);
        self
    }

    /// Drops the cached indexes when the ingesters' membership changed since last seen.
    fn check_ring(&self) {
        use std::hash::{Hash, Hasher};
        let Some(ring) = &self.ring else {
            return;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for i in &ring.ring().instances {
            (
                i.id.as_str(),
                i.state == muninn_ring::InstanceState::Leaving,
            )
                .hash(&mut h);
        }
        let fp = h.finish();
        let mut seen = self.ring_seen.lock();
        if seen.is_some_and(|s| s != fp) {
            tracing::info!("ingester membership changed; reading bucket indexes again");
            self.bucket.refresh_cached_indexes();
        }
        *seen = Some(fp);
    }

    /// Series (labels only) matching `matchers`, or every series when there are none.
    async fn matching(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>> {
        let any = [Matcher::new(MatchOp::Regex, "__name__", ".+")
            .map_err(|e| Error::BadData(e.to_string()))?];
        let ms = if matchers.is_empty() {
            &any[..]
        } else {
            matchers
        };
        self.select(tenant, ms, mint, maxt, true).await
    }
}

fn serr(e: muninn_storage::Error) -> Error {
    Error::Storage(e.to_string())
}

impl SeriesSource for BlockStore {
    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        Box::pin(async move {
            self.check_ring();
            let mut metas: Vec<_> = self
                .bucket
                .cached_blocks(tenant, self.index_update_interval)
                .await
                .map_err(serr)?
                .iter()
                .filter(|m| m.min_time <= maxt && m.max_time > mint)
                .cloned()
                .collect();
            metas.sort_by_key(|m| m.min_time);
            // (labels, block index, chunks) from every block.
            type Part = (Labels, usize, Vec<FloatChunk>, Vec<(u8, bytes::Bytes)>);
            let mut all: Vec<Part> = Vec::new();
            for (bi, meta) in metas.iter().enumerate() {
                let path = Bucket::block_file(tenant, &meta.ulid, DATA_FILE);
                for s in reader::select(self.bucket.store(), path, meta, matchers, mint, maxt)
                    .await
                    .map_err(serr)?
                {
                    all.push((s.labels, bi, s.chunks, s.hist_chunks));
                }
            }
            all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut out: Vec<SeriesData> = Vec::new();
            let mut i = 0;
            while i < all.len() {
                let mut j = i + 1;
                while j < all.len() && all[j].0 == all[i].0 {
                    j += 1;
                }
                let parts = &all[i..j];
                // Chunks of non-overlapping blocks concatenate in time order; overlapping
                // blocks (replica copies) are merged and deduplicated.
                let disjoint = parts
                    .windows(2)
                    .all(|w| metas[w[0].1].max_time <= metas[w[1].1].min_time);
                let samples = if labels_only {
                    Samples::Raw(vec![])
                } else if disjoint {
                    Samples::Chunks {
                        chunks: parts.iter().flat_map(|p| p.2.iter().cloned()).collect(),
                        mint,
                        maxt,
                    }
                } else {
                    let mut v = Vec::new();
                    for p in parts {
                        v.extend(
                            Samples::Chunks {
                                chunks: p.2.clone(),
                                mint,
                                maxt,
                            }
                            .to_vec()?,
                        );
                    }
                    v.sort_by_key(|s| s.0);
                    v.dedup_by_key(|s| s.0);
                    Samples::Raw(v)
                };
                let hist: Vec<(u8, bytes::Bytes)> =
                    parts.iter().flat_map(|p| p.3.iter().cloned()).collect();
                let histograms = if labels_only || hist.is_empty() {
                    Vec::new()
                } else {
                    crate::store::decode_hist_chunks(&hist, mint, maxt)?
                };
                out.push(SeriesData {
                    labels: all[i].0.clone(),
                    samples,
                    histograms,
                });
                i = j;
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
            let series = self.matching(tenant, matchers, mint, maxt).await?;
            let names: BTreeSet<String> = series
                .iter()
                .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
                .collect();
            Ok(names.into_iter().collect())
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
            let series = self.matching(tenant, matchers, mint, maxt).await?;
            let values: BTreeSet<String> = series
                .iter()
                .filter_map(|s| s.labels.get(name).map(str::to_owned))
                .collect();
            Ok(values.into_iter().collect())
        })
    }

    fn metadata<'a>(
        &'a self,
        _tenant: &'a TenantId,
        _family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>> {
        // Blocks carry no metric metadata (yet).
        Box::pin(async move { Ok(vec![]) })
    }
}
