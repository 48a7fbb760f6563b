//! The gRPC service queriers read the head through. The tenant comes from the
//! `x-scope-orgid` request metadata and is validated like an HTTP one.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use muninn_proto::TENANT_METADATA_KEY;
use muninn_proto::ingester::ingester_server::Ingester as IngesterRpc;
use muninn_proto::ingester::{AllTenantStatsRequest, AllTenantStatsResponse, TenantUsage};
use muninn_proto::ingester::{
    Chunk, HaCheckRequest, HaCheckResponse, LabelNamesRequest, LabelNamesResponse,
    LabelValuesRequest, LabelValuesResponse, MetadataRequest, MetadataResponse, PushRequest,
    PushResponse, Rejection, SelectRequest, SelectResponse, SeriesChunks, TenantStatsRequest,
    TenantStatsResponse,
};
use muninn_proto::ingester::{ExemplarsRequest, ExemplarsResponse, SeriesExemplars};
use muninn_proto::prometheus::{
    Label, LabelMatcher, MetricMetadata, label_matcher, metric_metadata,
};
use muninn_proto::tenant::TenantId;
use muninn_storage::matcher::{MatchOp, Matcher};
use tonic::{Request, Response, Status};

use crate::Ingester;
use crate::distributor::Distributor;
use crate::push::PushError;
use crate::tenant_db::TenantDb;

/// Series per streamed response message.
const SERIES_PER_MESSAGE: usize = 256;

/// The tonic service implementation.
pub struct IngesterGrpc {
    ing: Arc<Ingester>,
    /// This process's router, whose HA tracker answers `HaCheck` as a leader.
    dist: Option<Arc<Distributor>>,
}

impl IngesterGrpc {
    pub fn new(ing: Arc<Ingester>, dist: Option<Arc<Distributor>>) -> Self {
        Self { ing, dist }
    }

    fn tenant_db<T>(&self, req: &Request<T>) -> Result<Option<Arc<TenantDb>>, Status> {
        let tenant = tenant_of(req)?;
        Ok(self.ing.tenants.get(&tenant))
    }
}

/// Refuses internal calls without this cluster's token (tenant authentication on).
#[derive(Clone)]
pub struct ClusterAuth(pub Arc<muninn_tenancy::Authenticator>);

impl tonic::service::Interceptor for ClusterAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let token = req
            .metadata()
            .get(muninn_proto::CLUSTER_TOKEN_METADATA_KEY)
            .map(|v| v.as_bytes());
        match self.0.check_cluster_token(token) {
            Ok(()) => Ok(req),
            Err(e) => {
                tracing::warn!(error = %e, "gRPC call refused");
                Err(Status::unauthenticated(e.to_string()))
            }
        }
    }
}

/// A tenant's head statistics on this ingester.
fn stats_of(db: &TenantDb) -> TenantStatsResponse {
    let (num_series, num_chunks, range) = db.head.read().stats();
    let (min_time_ms, max_time_ms) = range.unwrap_or((0, 0));
    let rate = db.rate.lock();
    TenantStatsResponse {
        num_series,
        num_chunks,
        min_time_ms,
        max_time_ms,
        ingestion_rate: rate.rate(),
        ingested_samples: rate.total,
    }
}

/// The tenant of a request, from its `x-scope-orgid` metadata.
fn tenant_of<T>(req: &Request<T>) -> Result<TenantId, Status> {
    {
        let t = req
            .metadata()
            .get(TENANT_METADATA_KEY)
            .ok_or_else(|| Status::unauthenticated("no tenant in x-scope-orgid metadata"))?
            .to_str()
            .map_err(|_| Status::invalid_argument("tenant id is not ASCII"))?;
        TenantId::new(t).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

/// Converts protobuf matchers, rejecting invalid regexes.
pub fn matchers_from_proto(ms: &[LabelMatcher]) -> Result<Vec<Matcher>, Status> {
    ms.iter()
        .map(|m| {
            let op = match label_matcher::Type::try_from(m.r#type) {
                Ok(label_matcher::Type::Eq) => MatchOp::Equal,
                Ok(label_matcher::Type::Neq) => MatchOp::NotEqual,
                Ok(label_matcher::Type::Re) => MatchOp::Regex,
                Ok(label_matcher::Type::Nre) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "unknown matcher type {}",
                        m.r#type
                    )));
                }
            };
            Matcher::new(op, &m.name, &m.value).map_err(|e| Status::invalid_argument(e.to_string()))
        })
        .collect()
}

fn metric_type_from_name(s: &str) -> i32 {
    use metric_metadata::MetricType as T;
    (match s {
        "counter" => T::Counter,
        "gauge" => T::Gauge,
        "histogram" => T::Histogram,
        "gaugehistogram" => T::Gaugehistogram,
        "summary" => T::Summary,
        "info" => T::Info,
        "stateset" => T::Stateset,
        _ => T::Unknown,
    }) as i32
}

type SelectStream = Pin<Box<dyn Stream<Item = Result<SelectResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngesterRpc for IngesterGrpc {
    type SelectStream = SelectStream;

    async fn select(&self, req: Request<SelectRequest>) -> Result<Response<SelectStream>, Status> {
        let db = self.tenant_db(&req)?;
        let r = req.into_inner();
        let mut matchers = matchers_from_proto(&r.matchers)?;
        // A query shard (`__query_shard__`) is not a label: it keeps the series whose label
        // set hashes into it.
        let shard = muninn_storage::shard::Shard::take(&mut matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let Some(db) = db else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        let (mint, maxt, labels_only) = (r.start_ms, r.end_ms, r.labels_only);
        // The matching ids in label order (the querier merges ingesters' answers as streams),
        // found under the read lock on a blocking thread; the series are then copied and sent
        // a message at a time, each batch under a short read lock of its own, so neither the
        // whole answer nor the lock is held while the querier consumes it. A series collected
        // between batches has no samples left and is skipped; each id travels with its slot's
        // generation, so a slot recycled for another series meanwhile is skipped too.
        let ids = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || {
                let head = db.head.read();
                // The query shard is applied first (on borrowed labels): a shard sorts and
                // sends only its own series.
                let mut ids: Vec<u32> = head
                    .select(&matchers)
                    .into_iter()
                    .filter(|&id| head.overlaps(id, mint, maxt))
                    .filter(|&id| shard.is_none_or(|s| s.contains(head.label_pairs(id))))
                    .collect();
                ids.sort_unstable_by(|&a, &b| head.cmp_labels(a, b));
                ids.into_iter()
                    .map(|id| (id, head.generation(id)))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
        };
        let batches: Vec<Vec<(u32, Option<u32>)>> =
            ids.chunks(SERIES_PER_MESSAGE).map(<[_]>::to_vec).collect();
        let stream = futures::stream::iter(batches).filter_map(move |batch| {
            let db = db.clone();
            async move {
                let head = db.head.read();
                let series: Vec<SeriesChunks> = batch
                    .into_iter()
                    .filter(|&(id, generation)| head.generation(id) == generation)
                    .map(|(id, _)| id)
                    .filter(|&id| head.overlaps(id, mint, maxt))
                    .map(|id| {
                        let labels = head
                            .labels(id)
                            .0
                            .into_iter()
                            .map(|l| Label {
                                name: l.name,
                                value: l.value,
                            })
                            .collect();
                        let chunks = if labels_only {
                            vec![]
                        } else {
                            head.chunks(id, mint, maxt)
                                .into_iter()
                                .map(|c| Chunk {
                                    min_time_ms: c.min_t,
                                    max_time_ms: c.max_t,
                                    encoding: u32::from(c.encoding),
                                    data: c.data.into(),
                                })
                                .collect()
                        };
                        SeriesChunks { labels, chunks }
                    })
                    .collect();
                (!series.is_empty()).then_some(Ok(SelectResponse { series }))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn label_names(
        &self,
        req: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let db = self.tenant_db(&req)?;
        let r = req.into_inner();
        let matchers = matchers_from_proto(&r.matchers)?;
        let names = match db {
            Some(db) => db
                .head
                .read()
                .label_names(&matchers, r.start_ms, r.end_ms)
                .into_iter()
                .collect(),
            None => vec![],
        };
        Ok(Response::new(LabelNamesResponse { names }))
    }

    async fn label_values(
        &self,
        req: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let db = self.tenant_db(&req)?;
        let r = req.into_inner();
        let matchers = matchers_from_proto(&r.matchers)?;
        let values = match db {
            Some(db) => db
                .head
                .read()
                .label_values(&r.name, &matchers, r.start_ms, r.end_ms)
                .into_iter()
                .collect(),
            None => vec![],
        };
        Ok(Response::new(LabelValuesResponse { values }))
    }

    async fn metadata(
        &self,
        req: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let db = self.tenant_db(&req)?;
        let r = req.into_inner();
        let family = (!r.metric.is_empty()).then_some(r.metric.as_str());
        let metadata = match db {
            Some(db) => db
                .head
                .read()
                .metadata(family)
                .into_iter()
                .map(|(name, m)| MetricMetadata {
                    r#type: metric_type_from_name(&m.metric_type),
                    metric_family_name: name,
                    help: m.help,
                    unit: m.unit,
                })
                .collect(),
            None => vec![],
        };
        Ok(Response::new(MetadataResponse { metadata }))
    }

    async fn push(&self, req: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let tenant = tenant_of(&req)?;
        let body = req.into_inner().write_request;
        // As the HTTP path: the worker thread turns blocking for the appends and WAL write.
        let reply =
            tokio::task::block_in_place(|| self.ing.push_routed(&tenant, &body)).map_err(|e| {
                match e {
                    PushError::ShuttingDown => Status::unavailable(e.to_string()),
                    PushError::Protobuf(_) => Status::invalid_argument(e.to_string()),
                    PushError::Auth(_) => Status::unauthenticated(e.to_string()),
                    other => Status::internal(other.to_string()),
                }
            })?;
        Ok(Response::new(PushResponse {
            ingested_samples: reply.ingested_samples,
            rejected_samples: reply.rejected_samples,
            rejected_series: reply.rejected_series,
            by_reason: Vec::<Rejection>::new(),
            first_errors: reply.first_errors,
        }))
    }

    async fn query_exemplars(
        &self,
        req: Request<ExemplarsRequest>,
    ) -> Result<Response<ExemplarsResponse>, Status> {
        let db = self.tenant_db(&req)?;
        let r = req.into_inner();
        let matchers = matchers_from_proto(&r.matchers)?;
        let Some(db) = db else {
            return Ok(Response::new(ExemplarsResponse::default()));
        };
        let head = db.head.read();
        let ids: std::collections::HashSet<u32> = head.select(&matchers).into_iter().collect();
        let store = db.exemplars.lock();
        let mut by_series: std::collections::BTreeMap<
            u32,
            Vec<muninn_proto::prometheus::Exemplar>,
        > = std::collections::BTreeMap::new();
        for (id, e) in store.query(&ids, r.start_ms, r.end_ms) {
            by_series
                .entry(id)
                .or_default()
                .push(muninn_proto::prometheus::Exemplar {
                    labels: e
                        .labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    value: e.value,
                    timestamp: e.timestamp_ms,
                });
        }
        let series = by_series
            .into_iter()
            .map(|(id, exemplars)| SeriesExemplars {
                labels: head
                    .labels(id)
                    .0
                    .into_iter()
                    .map(|l| Label {
                        name: l.name,
                        value: l.value,
                    })
                    .collect(),
                exemplars,
            })
            .collect();
        Ok(Response::new(ExemplarsResponse { series }))
    }

    async fn tenant_stats(
        &self,
        req: Request<TenantStatsRequest>,
    ) -> Result<Response<TenantStatsResponse>, Status> {
        let Some(db) = self.tenant_db(&req)? else {
            return Ok(Response::new(TenantStatsResponse::default()));
        };
        Ok(Response::new(stats_of(&db)))
    }

    async fn all_tenant_stats(
        &self,
        _req: Request<AllTenantStatsRequest>,
    ) -> Result<Response<AllTenantStatsResponse>, Status> {
        let mut all = self.ing.tenants.all();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let tenants = all
            .into_iter()
            .map(|(t, db)| {
                // Counters only (no walk over the series, unlike TenantStats): this answers
                // an overview page polled every few seconds and must not hold up writers.
                let num_series = db.head.read().live_series() as u64;
                let rate = db.rate.lock();
                TenantUsage {
                    tenant: t.as_str().to_string(),
                    stats: Some(TenantStatsResponse {
                        num_series,
                        ingestion_rate: rate.rate(),
                        ingested_samples: rate.total,
                        ..Default::default()
                    }),
                }
            })
            .collect();
        Ok(Response::new(AllTenantStatsResponse { tenants }))
    }

    async fn ha_check(
        &self,
        req: Request<HaCheckRequest>,
    ) -> Result<Response<HaCheckResponse>, Status> {
        let tenant = tenant_of(&req)?;
        let r = req.into_inner();
        let Some(ha) = self.dist.as_ref().and_then(|d| d.ha.as_ref()) else {
            return Err(Status::failed_precondition(
                "the HA tracker is not enabled on this ingester (--distributor.ha-tracker.enable)",
            ));
        };
        let d = ha.decide(tenant.as_str(), &r.cluster, &r.replica).await;
        Ok(Response::new(HaCheckResponse {
            accept: d.accept,
            elected: d.elected,
        }))
    }
}
