//! [`SeriesSource`] over the ingesters' gRPC service: fans out to every ingester, decodes the
//! XOR chunks, and merges copies of a series, counting identical timestamps once.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::{BoxFuture, try_join_all};
use muninn_proto::ingester::ingester_client::IngesterClient;
use muninn_proto::ingester::{
    LabelNamesRequest, LabelValuesRequest, MetadataRequest, SelectRequest,
};
use muninn_proto::prometheus::{LabelMatcher, label_matcher, metric_metadata};
use muninn_proto::tenant::TenantId;
use muninn_proto::{CHUNK_ENCODING_XOR, TENANT_METADATA_KEY};
use muninn_storage::labels::{Label, Labels};
use muninn_storage::matcher::{MatchOp, Matcher};
use tonic::transport::{Channel, Endpoint};

use crate::store::{FamilyMeta, Samples, SeriesData, SeriesSource};
use crate::{Error, Result};

/// Clients of every ingester.
#[derive(Clone)]
pub struct IngesterStore {
    clients: Vec<(String, IngesterClient<Channel>)>,
}

impl IngesterStore {
    /// Lazily connecting clients for `addrs` (`host:port` or URLs).
    pub fn new(addrs: &[String]) -> Result<Self> {
        let clients = addrs
            .iter()
            .map(|a| {
                let uri = if a.contains("://") {
                    a.clone()
                } else {
                    format!("http://{a}")
                };
                let ep = Endpoint::from_shared(uri.clone())
                    .map_err(|e| Error::Config(format!("ingester address {a:?}: {e}")))?;
                let client =
                    IngesterClient::new(ep.connect_lazy()).max_decoding_message_size(256 << 20);
                Ok((uri, client))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { clients })
    }

    /// Calls every ingester with `req` (tenant attached); fails if any fails.
    async fn fan_out<Req, T, F, Fut>(&self, tenant: &TenantId, req: Req, call: F) -> Result<Vec<T>>
    where
        Req: Clone,
        F: Fn(IngesterClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        try_join_all(self.clients.iter().map(|(addr, c)| {
            let fut = call(c.clone(), Self::request(tenant, req.clone()));
            async move { fut.await.map_err(|s| status_err(addr, s)) }
        }))
        .await
    }

    fn request<T>(tenant: &TenantId, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Ok(v) = tenant.as_str().parse() {
            r.metadata_mut().insert(TENANT_METADATA_KEY, v);
        }
        r
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

fn status_err(addr: &str, s: tonic::Status) -> Error {
    Error::Ingester {
        addr: addr.to_owned(),
        message: s.message().to_owned(),
        code: s.code(),
    }
}

/// Merges sorted sample runs, keeping the first sample of each timestamp.
fn merge_samples(mut samples: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    samples.sort_by_key(|s| s.0);
    samples.dedup_by_key(|s| s.0);
    samples
}

impl SeriesSource for IngesterStore {
    fn select<'a>(
        &'a self,
        tenant: &'a TenantId,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
        labels_only: bool,
    ) -> BoxFuture<'a, Result<Vec<SeriesData>>> {
        Box::pin(async move {
            let req = SelectRequest {
                start_ms: mint,
                end_ms: maxt,
                matchers: to_proto(matchers),
                labels_only,
            };
            let per_ingester = try_join_all(self.clients.iter().map(|(addr, c)| {
                let mut c = c.clone();
                let req = Self::request(tenant, req.clone());
                async move {
                    let mut stream = c
                        .select(req)
                        .await
                        .map_err(|s| status_err(addr, s))?
                        .into_inner();
                    let mut out = vec![];
                    while let Some(msg) = stream.message().await.map_err(|s| status_err(addr, s))? {
                        out.extend(msg.series);
                    }
                    Ok::<_, Error>(out)
                }
            }))
            .await?;
            // Copies of a series (from several ingesters) are merged; a single copy keeps
            // its chunks undecoded until the engine needs them.
            let mut all: Vec<(Labels, Vec<bytes::Bytes>)> = Vec::new();
            for series in per_ingester.into_iter().flatten() {
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
                for c in series.chunks {
                    if c.encoding != CHUNK_ENCODING_XOR {
                        return Err(Error::Corrupt(format!(
                            "unknown chunk encoding {}",
                            c.encoding
                        )));
                    }
                    chunks.push(c.data);
                }
                all.push((labels, chunks));
            }
            all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut merged: Vec<(Labels, Vec<Vec<bytes::Bytes>>)> = Vec::with_capacity(all.len());
            for (labels, chunks) in all {
                match merged.last_mut() {
                    Some((l, copies)) if *l == labels => copies.push(chunks),
                    _ => merged.push((labels, vec![chunks])),
                }
            }
            let mut out = Vec::with_capacity(merged.len());
            for (labels, mut copies) in merged {
                let samples = if copies.len() == 1 {
                    Samples::Chunks {
                        chunks: copies.pop().unwrap_or_default(),
                        mint,
                        maxt,
                    }
                } else {
                    let mut all = Vec::new();
                    for chunks in copies {
                        all.extend(Samples::Chunks { chunks, mint, maxt }.to_vec()?);
                    }
                    Samples::Raw(merge_samples(all))
                };
                out.push(SeriesData { labels, samples });
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
            let req = LabelNamesRequest {
                start_ms: mint,
                end_ms: maxt,
                matchers: to_proto(matchers),
            };
            let all = self
                .fan_out(tenant, req, |mut c, r| async move {
                    c.label_names(r).await.map(|r| r.into_inner().names)
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
                    c.label_values(r).await.map(|r| r.into_inner().values)
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
            let all = try_join_all(self.clients.iter().map(|(addr, c)| {
                let mut c = c.clone();
                let req = Self::request(tenant, req.clone());
                async move {
                    c.metadata(req)
                        .await
                        .map(|r| r.into_inner().metadata)
                        .map_err(|s| status_err(addr, s))
                }
            }))
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
