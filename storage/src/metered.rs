//! An `ObjectStore` wrapper counting requests and bytes per operation, so operators (and
//! tests) can see what a query really reads from object storage.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub operation: String,
}

/// Object-store traffic counters.
#[derive(Clone, Default, Debug)]
pub struct StoreMetrics {
    pub requests: Family<OpLabels, Counter>,
    pub bytes: Family<OpLabels, Counter>,
}

impl StoreMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_bucket");
        r.register(
            "requests",
            "Object-store requests by operation",
            self.requests.clone(),
        );
        r.register(
            "bytes",
            "Bytes transferred by object-store operation",
            self.bytes.clone(),
        );
    }

    fn count(&self, op: &str, bytes: u64) {
        let l = OpLabels {
            operation: op.to_owned(),
        };
        self.requests.get_or_create(&l).inc();
        self.bytes.get_or_create(&l).inc_by(bytes);
    }

    /// Requests and bytes so far for `op`.
    pub fn get(&self, op: &str) -> (u64, u64) {
        let l = OpLabels {
            operation: op.to_owned(),
        };
        (
            self.requests.get_or_create(&l).get(),
            self.bytes.get_or_create(&l).get(),
        )
    }
}

/// A store that counts what passes through it.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }
}

impl std::fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.metrics.count("put", payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.metrics.count("put_multipart", 0);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head {
            "head"
        } else if options.range.is_some() {
            "get_range"
        } else {
            "get"
        };
        let r = self.inner.get_opts(location, options).await?;
        self.metrics.count(
            op,
            if op == "head" {
                0
            } else {
                r.range.end - r.range.start
            },
        );
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await?;
        for b in &r {
            self.metrics.count("get_range", b.len() as u64);
        }
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let m = self.metrics.clone();
        self.inner
            .delete_stream(locations)
            .map(move |r| {
                m.count("delete", 0);
                r
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.metrics.count("list", 0);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.metrics.count("list", 0);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.metrics.count("copy", 0);
        self.inner.copy_opts(from, to, options).await
    }
}
