//! The gRPC service queriers read the head through. The tenant comes from the
//! `x-scope-orgid` request metadata and is validated like an HTTP one.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use muninn_proto::ingester::ingester_server::Ingester as IngesterRpc;
use muninn_proto::ingester::{
    Chunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse,
    MetadataRequest, MetadataResponse, SelectRequest, SelectResponse, SeriesChunks,
};
use muninn_proto::prometheus::{
    Label, LabelMatcher, MetricMetadata, label_matcher, metric_metadata,
};
use muninn_proto::tenant::TenantId;
use muninn_proto::{CHUNK_ENCODING_XOR, TENANT_METADATA_KEY};
use muninn_storage::matcher::{MatchOp, Matcher};
use tonic::{Request, Response, Status};

use crate::Ingester;
use crate::tenant_db::TenantDb;

/// Series per streamed response message.
const SERIES_PER_MESSAGE: usize = 256;

/// The tonic service implementation.
pub struct IngesterGrpc {
    ing: Arc<Ingester>,
}

impl IngesterGrpc {
    pub fn new(ing: Arc<Ingester>) -> Self {
        Self { ing }
    }

    fn tenant_db<T>(&self, req: &Request<T>) -> Result<Option<Arc<TenantDb>>, Status> {
        let t = req
            .metadata()
            .get(TENANT_METADATA_KEY)
            .ok_or_else(|| Status::unauthenticated("no tenant in x-scope-orgid metadata"))?
            .to_str()
            .map_err(|_| Status::invalid_argument("tenant id is not ASCII"))?;
        let tenant = TenantId::new(t).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(self.ing.tenants.get(&tenant))
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
        let matchers = matchers_from_proto(&r.matchers)?;
        let Some(db) = db else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        let (mint, maxt, labels_only) = (r.start_ms, r.end_ms, r.labels_only);
        // Copy out under the read lock on a blocking thread; stream the copies.
        let series = tokio::task::spawn_blocking(move || {
            let head = db.head.read();
            head.select(&matchers)
                .into_iter()
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
                                encoding: CHUNK_ENCODING_XOR,
                                data: c.data.into(),
                            })
                            .collect()
                    };
                    SeriesChunks { labels, chunks }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let mut messages = Vec::with_capacity(series.len() / SERIES_PER_MESSAGE + 1);
        let mut it = series.into_iter().peekable();
        while it.peek().is_some() {
            messages.push(Ok(SelectResponse {
                series: it.by_ref().take(SERIES_PER_MESSAGE).collect(),
            }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
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
}
