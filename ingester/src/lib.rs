//! The ingester: receives Prometheus remote write, validates it, and keeps each tenant's
//! recent data in an in-memory head backed by a WAL; serves it to queriers over gRPC.
//!
//! Guarantees: a write is acknowledged only after its WAL write, so a crash (SIGKILL) loses no
//! acknowledged sample; tenants never share a head, a WAL directory or a lookup path.
//!
//! Write path: [`push`] (HTTP, decoding) → [`validate`] → [`tenant_db`] (head + WAL) →
//! [`head`] / [`wal`]. Read path: [`grpc`] → [`head`].

pub mod config;
pub mod grpc;
pub mod head;
pub mod metrics;
pub mod push;
pub mod shipper;
pub mod tenant_db;
pub mod tenants;
pub mod validate;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::IngesterConfig;
use metrics::IngesterMetrics;
use tenants::Tenants;

/// Errors of the ingester.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ingestion task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A running ingester.
pub struct Ingester {
    pub config: IngesterConfig,
    pub tenants: Tenants,
    pub metrics: IngesterMetrics,
    /// Where blocks are shipped; `None` keeps everything in the head.
    pub bucket: Option<muninn_storage::bucket::Bucket>,
    /// `false` once shutdown began: pushes get 503. Each push holds a read guard while it
    /// runs, so [`Ingester::stop_accepting`] returns once no push is in flight.
    accepting: tokio::sync::RwLock<bool>,
}

impl Ingester {
    /// Opens the data directory, replaying every tenant's WAL (progress in the log).
    pub fn open(
        config: IngesterConfig,
        bucket: Option<muninn_storage::bucket::Bucket>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Arc<Self>> {
        let metrics = IngesterMetrics::default();
        metrics.register(registry);
        let tenants = Tenants::open(&config.data_dir.join("wal"), config.wal_fsync, &metrics)?;
        Ok(Arc::new(Self {
            config,
            tenants,
            metrics,
            bucket,
            accepting: tokio::sync::RwLock::new(true),
        }))
    }

    /// Stops accepting pushes (they get 503 from now on) and waits, up to `wait`, for the
    /// pushes in flight to finish, so that a shutdown flush sees every acknowledged write.
    pub async fn stop_accepting(&self, wait: std::time::Duration) {
        match tokio::time::timeout(wait, self.accepting.write()).await {
            Ok(mut a) => *a = false,
            Err(_) => tracing::warn!(
                "pushes still in flight after {wait:?}; flushing anyway (the WAL keeps them)"
            ),
        }
    }

    /// HTTP routes of the ingester (`/api/v1/push`).
    pub fn http_router(self: &Arc<Self>) -> axum::Router {
        push::router(self.clone())
    }

    /// The gRPC service queriers read from.
    pub fn grpc_service(
        self: &Arc<Self>,
    ) -> muninn_proto::ingester::ingester_server::IngesterServer<grpc::IngesterGrpc> {
        muninn_proto::ingester::ingester_server::IngesterServer::new(grpc::IngesterGrpc::new(
            self.clone(),
        ))
        .max_encoding_message_size(256 << 20)
    }
}
