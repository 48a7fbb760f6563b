//! [`SeriesSource`] over the ingesters' gRPC service: fans out to the ingesters (a static list,
//! or the ring's instances, tolerating as many failures as replication covers), decodes the
//! XOR chunks, and merges the replica copies of a series, counting identical timestamps once.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::{BoxFuture, try_join_all};
use muninn_proto::CHUNK_ENCODING_XOR;
use muninn_proto::ingester::ingester_client::IngesterClient;
use muninn_proto::ingester::{
    LabelNamesRequest, LabelValuesRequest, MetadataRequest, SelectRequest,
};
use muninn_proto::prometheus::{LabelMatcher, label_matcher, metric_metadata};
use muninn_proto::tenant::TenantId;
use muninn_storage::chunk::{ENC_FLOAT_HISTOGRAM, ENC_HISTOGRAM, FloatChunk};
use muninn_storage::labels::{Label, Labels};
use muninn_storage::matcher::{MatchOp, Matcher};
use std::sync::Arc;

use muninn_ring::clients::ClientPool;
use muninn_ring::{InstanceIdx, InstanceState, RingHandle};
use tonic::transport::Channel;

use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};
use crate::{Error, Result};

/// Which ingesters a query asks.
enum Targets {
    /// `--querier.ingester-addrs`: every one must answer.
    Static(Vec<String>),
    /// The ring: every instance that may hold recent data; as many may fail as leave each
    /// series an answering quorum member (quorum − 1 instances, or zones with zone awareness).
    Ring(Arc<RingHandle>),
}

/// Clients of the ingesters.
#[derive(Clone)]
pub struct IngesterStore {
    targets: Arc<Targets>,
    pool: Arc<ClientPool>,
    /// Shuffle sharding: each tenant's shard size, and how far back a recently registered
    /// instance may have displaced a shard member that still holds data.
    shards: Option<(Arc<muninn_tenancy::Overrides>, i64)>,
}

impl IngesterStore {
    /// Lazily connecting clients (from `pool`) for a fixed list of `addrs` (`host:port` or
    /// URLs).
    pub fn new(addrs: &[String], pool: Arc<ClientPool>) -> Result<Self> {
        for a in addrs {
            pool.get(a)
                .map_err(|e| Error::Config(format!("ingester address {a:?}: {e}")))?;
        }
        Ok(Self {
            targets: Arc::new(Targets::Static(addrs.to_vec())),
            pool,
            shards: None,
        })
    }

    /// Clients of the ring's ingesters, as the ring stands at each query.
    pub fn from_ring(ring: Arc<RingHandle>, pool: Arc<ClientPool>) -> Self {
        Self {
            targets: Arc::new(Targets::Ring(ring)),
            pool,
            shards: None,
        }
    }

    /// Asks only each tenant's shuffle shard (`ingestion_tenant_shard_size`), plus instances
    /// registered within `lookback` that may have displaced a member holding its data.
    pub fn with_shuffle_sharding(
        mut self,
        overrides: Arc<muninn_tenancy::Overrides>,
        lookback: std::time::Duration,
    ) -> Self {
        self.shards = Some((overrides, lookback.as_millis() as i64));
        self
    }

    /// Calls the ingesters with `req` (tenant attached) and returns the answers; fails when
    /// more failed than the replication tolerates (with a static list: when any failed).
    async fn fan_out<Req, T, F, Fut>(&self, tenant: &TenantId, req: Req, call: F) -> Result<Vec<T>>
    where
        Req: Clone,
        F: Fn(IngesterClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Error>>,
    {
        match &*self.targets {
            Targets::Static(addrs) => {
                try_join_all(addrs.iter().map(|addr| {
                    let client = self.pool.get(addr);
                    let req = self.pool.request(tenant.as_str(), req.clone());
                    async {
                        let c = client.map_err(|e| Error::Config(e.to_string()))?;
                        call(c, req).await.map_err(|e| match e {
                            Error::Ingester { code, message, .. } => Error::Ingester {
                                addr: addr.clone(),
                                code,
                                message,
                            },
                            other => other,
                        })
                    }
                }))
                .await
            }
            Targets::Ring(ring) => {
                let ring = ring.ring();
                let mut plan = ring.read_plan();
                if let Some((overrides, lookback)) = &self.shards {
                    let size = overrides.get(tenant.as_str()).ingestion_tenant_shard_size;
                    let after = muninn_proto::time::now_ms().saturating_sub(*lookback);
                    if let Some(ids) =
                        muninn_ring::shuffle::shard_ids(&ring, tenant.as_str(), size, Some(after))
                    {
                        plan.instances
                            .retain(|&i| ids.contains(&ring.instances[i as usize].id));
                        // Each acknowledged series reached a quorum of its min(RF, shard)
                        // replicas: up to quorum − 1 of the instances asked may fail (as
                        // Mimir, counted over the whole set read, lookback extras included).
                        let rf = ring.effective_rf().min(size.max(1));
                        plan.max_failures = rf / 2;
                    }
                }
                let mut failed: Vec<(InstanceIdx, String)> = Vec::new();
                let mut calls = Vec::new();
                for &idx in &plan.instances {
                    let inst = &ring.instances[idx as usize];
                    if !inst.healthy {
                        // A LEAVING instance that went silent has flushed (or its data is
                        // on its replicas): it is neither asked nor counted.
                        if inst.state != InstanceState::Leaving {
                            failed.push((idx, "unhealthy".into()));
                        }
                        continue;
                    }
                    match self.pool.get(&inst.addr) {
                        Ok(c) => calls.push((
                            idx,
                            call(c, self.pool.request(tenant.as_str(), req.clone())),
                        )),
                        Err(e) => failed.push((idx, e.to_string())),
                    }
                }
                let results = futures::future::join_all(
                    calls
                        .into_iter()
                        .map(|(idx, f)| async move { (idx, f.await) }),
                )
                .await;
                let mut out = Vec::with_capacity(results.len());
                for (idx, r) in results {
                    match r {
                        Ok(v) => out.push(v),
                        Err(e) => failed.push((idx, e.to_string())),
                    }
                }
                let failed_idx: Vec<InstanceIdx> = failed.iter().map(|f| f.0).collect();
                if !plan.tolerates(&ring, &failed_idx) {
                    let mut msg = format!(
                        "too many ingesters unavailable for a complete answer (replication factor {}, {} may fail{}):",
                        ring.effective_rf(),
                        plan.max_failures,
                        if plan.by_zone { " zones" } else { "" }
                    );
                    for (idx, e) in &failed {
                        let i = &ring.instances[*idx as usize];
                        msg.push_str(&format!(" {} ({}): {};", i.id, i.addr, e));
                    }
                    return Err(Error::IngestersUnavailable(msg));
                }
                for (idx, e) in &failed {
                    tracing::debug!(instance = %ring.instances[*idx as usize].id, error = %e, "ingester failed; answer complete from replicas");
                }
                Ok(out)
            }
        }
    }

    /// Label sets of the tenant's head series matching `matchers`, replicas once.
    pub async fn select_labels(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>> {
        Ok(self
            .select(tenant, matchers, i64::MIN, i64::MAX, true)
            .await?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    /// Exemplars of the series matching `matchers` in `[mint, maxt]`, replicas merged: one
    /// entry per series (sorted by labels), exemplars by time, identical ones once.
    pub async fn exemplars(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<muninn_proto::prometheus::Exemplar>)>> {
        let req = muninn_proto::ingester::ExemplarsRequest {
            start_ms: mint,
            end_ms: maxt,
            matchers: to_proto(matchers),
        };
        let per_ingester = self
            .fan_out(tenant, req, |mut c, r| async move {
                c.query_exemplars(r)
                    .await
                    .map(|r| r.into_inner().series)
                    .map_err(status_err)
            })
            .await?;
        let mut merged: std::collections::BTreeMap<
            Labels,
            Vec<muninn_proto::prometheus::Exemplar>,
        > = std::collections::BTreeMap::new();
        for s in per_ingester.into_iter().flatten() {
            let labels = Labels(
                s.labels
                    .into_iter()
                    .map(|l| Label {
                        name: l.name,
                        value: l.value,
                    })
                    .collect(),
            );
            merged.entry(labels).or_default().extend(s.exemplars);
        }
        Ok(merged
            .into_iter()
            .map(|(l, mut ex)| {
                ex.sort_by(|a, b| {
                    a.timestamp
                        .cmp(&b.timestamp)
                        .then(a.value.total_cmp(&b.value))
                });
                ex.dedup_by(|a, b| {
                    a.timestamp == b.timestamp
                        && a.value.to_bits() == b.value.to_bits()
                        && a.labels == b.labels
                });
                (l, ex)
            })
            .collect())
    }

    /// Every ingester's head statistics for `tenant`, and the replication factor that many
    /// copies of each series exist under (1 for a static list).
    pub async fn tenant_stats(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<muninn_proto::ingester::TenantStatsResponse>, usize)> {
        let stats = self
            .fan_out(
                tenant,
                muninn_proto::ingester::TenantStatsRequest {},
                |mut c, req| async move {
                    Ok::<_, Error>(c.tenant_stats(req).await.map_err(status_err)?.into_inner())
                },
            )
            .await?;
        Ok((stats, self.copies(tenant.as_str())))
    }

    /// `tenant`'s series and samples/s over its ingesters, replicas counted once.
    pub async fn tenant_usage(&self, tenant: &TenantId) -> Result<(u64, f64)> {
        let (stats, copies) = self.tenant_stats(tenant).await?;
        let copies = copies.max(1);
        let series = stats.iter().map(|s| s.num_series).sum::<u64>() / copies as u64;
        let rate = stats.iter().map(|s| s.ingestion_rate).sum::<f64>() / copies as f64;
        Ok((series, rate))
    }

    /// How many ingesters hold each of `tenant`'s series: 1 for a static list, else the
    /// replication factor, or min(RF, shard size) for a shuffle-sharded tenant.
    fn copies(&self, tenant: &str) -> usize {
        match &*self.targets {
            Targets::Static(_) => 1,
            Targets::Ring(r) => {
                let ring = r.ring();
                let mut rf = ring.effective_rf().max(1);
                if let Some((overrides, _)) = &self.shards {
                    let size = overrides.get(tenant).ingestion_tenant_shard_size;
                    if muninn_ring::shuffle::shard_ids(&ring, tenant, size, None).is_some() {
                        rf = rf.min(size).max(1);
                    }
                }
                rf
            }
        }
    }

    /// Every tenant's usage over all ingesters (every healthy ring instance, or the static
    /// list), replicas counted once: (tenant, series, samples/s), sorted by tenant, and the
    /// ingesters that were not asked (unhealthy) or did not answer within `timeout`, with
    /// why. For overviews (the UI): a missing ingester leaves its share out, and is named,
    /// rather than failing the whole answer.
    pub async fn all_tenant_usage(
        &self,
        timeout: std::time::Duration,
    ) -> (Vec<(String, u64, f64)>, Vec<String>) {
        let mut failed = vec![];
        let addrs: Vec<String> = match &*self.targets {
            Targets::Static(a) => a.clone(),
            Targets::Ring(r) => {
                let ring = r.ring();
                for i in ring.instances.iter().filter(|i| !i.healthy) {
                    failed.push(format!("{} ({}): unhealthy, not asked", i.id, i.addr));
                }
                ring.instances
                    .iter()
                    .filter(|i| i.healthy)
                    .map(|i| i.addr.clone())
                    .collect()
            }
        };
        let calls = addrs.iter().map(|addr| async move {
            let mut c = self.pool.get(addr).map_err(|e| format!("{addr}: {e}"))?;
            let req = self
                .pool
                .request("", muninn_proto::ingester::AllTenantStatsRequest {});
            match tokio::time::timeout(timeout, c.all_tenant_stats(req)).await {
                Ok(Ok(r)) => Ok(r.into_inner().tenants),
                Ok(Err(e)) => Err(format!("{addr}: {}", e.message())),
                Err(_) => Err(format!("{addr}: no answer within {timeout:?}")),
            }
        });
        let mut sums: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for r in futures::future::join_all(calls).await {
            match r {
                Ok(tenants) => {
                    for t in tenants {
                        let s = t.stats.unwrap_or_default();
                        let e = sums.entry(t.tenant).or_default();
                        e.0 += s.num_series;
                        e.1 += s.ingestion_rate;
                    }
                }
                Err(e) => failed.push(e),
            }
        }
        let usage = sums
            .into_iter()
            .map(|(t, (series, rate))| {
                let n = self.copies(&t);
                (t, series / n as u64, rate / n as f64)
            })
            .collect();
        (usage, failed)
    }
}

fn to_proto(ms: &[Matcher]) -> Vec<LabelMatcher> {
    ms.iter()
        .map(|m| LabelMatcher {
            r#type: match m.op {
                MatchOp::Equal => label_matcher::Type::Eq,
                MatchOp::NotEqual => label_matcher::Type::Neq,
                MatchOp::Regex => label_matcher::Type::Re,
                MatchOp::NotRegex => label_matcher::Type::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// The sorted, deduplicated union of the ingesters' answers.
fn sorted_union(all: Vec<Vec<String>>) -> Vec<String> {
    all.into_iter()
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn status_err(s: tonic::Status) -> Error {
    Error::Ingester {
        addr: "-".into(),
        message: s.message().to_owned(),
        code: s.code(),
    }
}

/// One ingester's series (labels, chunks) as the engine takes it: float chunks undecoded,
/// histogram chunks decoded.
fn series_data(
    series: muninn_proto::ingester::SeriesChunks,
    mint: i64,
    maxt: i64,
) -> Result<SeriesData> {
    let labels = Labels(
        series
            .labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect(),
    );
    let mut chunks = Vec::with_capacity(series.chunks.len());
    let mut hists = Vec::new();
    for c in series.chunks {
        match c.encoding {
            CHUNK_ENCODING_XOR => chunks.push(FloatChunk::Xor(c.data)),
            e if e == u32::from(ENC_HISTOGRAM) || e == u32::from(ENC_FLOAT_HISTOGRAM) => {
                hists.push((e as u8, c.data))
            }
            e => return Err(Error::Corrupt(format!("unknown chunk encoding {e}"))),
        }
    }
    let histograms = if hists.is_empty() {
        Vec::new()
    } else {
        crate::store::decode_hist_chunks(&hists, mint, maxt)?
    };
    Ok(SeriesData {
        labels,
        samples: Samples::Chunks { chunks, mint, maxt },
        histograms,
    })
}

impl IngesterStore {
    /// The ingesters' answers merged as they arrive: see [`SeriesSource::select_stream`].
    async fn stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> Result<crate::store::SeriesStream<'a>> {
        use futures::{StreamExt, TryStreamExt};
        let req = SelectRequest {
            start_ms: mint,
            end_ms: maxt,
            matchers: to_proto(matchers),
            labels_only,
        };
        // Each ingester answers in label order, a message of series at a time; the
        // answers are merged as they arrive (replica copies combined), so the querier
        // holds one message per ingester rather than every answer. An ingester failing
        // after it started answering fails the query (503), as its replicas' share of the
        // answer may already be past.
        let streams = self
            .fan_out(tenant, req, |mut c, req| async move {
                c.select(req)
                    .await
                    .map(|r| r.into_inner())
                    .map_err(status_err)
            })
            .await?;
        let per: Vec<crate::store::SeriesStream<'a>> = streams
            .into_iter()
            .map(|s| {
                s.map_err(status_err)
                    .map_ok(|msg| futures::stream::iter(msg.series.into_iter().map(Ok)))
                    .try_flatten()
                    .and_then(move |sc| async move { series_data(sc, mint, maxt) })
                    .boxed()
            })
            .collect();
        Ok(crate::series_merge::merge(
            per,
            crate::series_merge::combine_replicas,
        ))
    }
}

impl SeriesSource for IngesterStore {
    fn select_stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> BoxFuture<'a, Result<crate::store::SeriesStream<'a>>> {
        Box::pin(self.stream(tenant, matchers, mint, maxt, false))
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
            self.stream(tenant, matchers, mint, maxt, labels_only)
                .await?
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
            let req = LabelNamesRequest {
                start_ms: mint,
                end_ms: maxt,
                matchers: to_proto(matchers),
            };
            let all = self
                .fan_out(tenant, req, |mut c, r| async move {
                    c.label_names(r)
                        .await
                        .map(|r| r.into_inner().names)
                        .map_err(status_err)
                })
                .await?;
            Ok(sorted_union(all))
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
            let req = LabelValuesRequest {
                name: name.to_owned(),
                start_ms: mint,
                end_ms: maxt,
                matchers: to_proto(matchers),
            };
            let all = self
                .fan_out(tenant, req, |mut c, r| async move {
                    c.label_values(r)
                        .await
                        .map(|r| r.into_inner().values)
                        .map_err(status_err)
                })
                .await?;
            Ok(sorted_union(all))
        })
    }

    fn metadata<'a>(
        &'a self,
        tenant: &'a TenantId,
        family: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<FamilyMeta>>> {
        Box::pin(async move {
            let req = MetadataRequest {
                metric: family.unwrap_or_default().to_owned(),
            };
            let all = self
                .fan_out(tenant, req, |mut c, r| async move {
                    c.metadata(r)
                        .await
                        .map(|r| r.into_inner().metadata)
                        .map_err(status_err)
                })
                .await?;
            let mut out: BTreeMap<(String, String, String, String), ()> = BTreeMap::new();
            for m in all.into_iter().flatten() {
                let t = metric_metadata::MetricType::try_from(m.r#type)
                    .unwrap_or(metric_metadata::MetricType::Unknown)
                    .as_str_name()
                    .to_ascii_lowercase();
                out.insert((m.metric_family_name, t, m.help, m.unit), ());
            }
            Ok(out
                .into_keys()
                .map(|(family, metric_type, help, unit)| FamilyMeta {
                    family,
                    metric_type,
                    help,
                    unit,
                })
                .collect())
        })
    }
}
