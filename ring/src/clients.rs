//! gRPC clients of the ring's ingesters, one lazily connecting channel per address, shared by
//! the write path (routing pushes to owners) and the read path (queriers).

use std::collections::HashMap;
use std::time::Duration;

use muninn_proto::ingester::ingester_client::IngesterClient;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

/// Largest gRPC message either side accepts (a push of `--ingester.max-request-bytes`).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// HTTP/2 flow-control windows of ingester connections (both sides use these).
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;
/// Windows of the queriers' connections ([`ClientPool::for_queries`]).
pub const QUERY_STREAM_WINDOW: u32 = 1 << 20;
pub const QUERY_CONNECTION_WINDOW: u32 = 64 << 20;

/// Clients by address.
pub struct ClientPool {
    clients: Mutex<HashMap<String, IngesterClient<Channel>>>,
    connect_timeout: Duration,
    /// HTTP/2 windows of this pool's connections: (stream, connection).
    windows: (u32, u32),
    /// Where the cluster token internal calls carry comes from (tenant authentication on).
    token: Mutex<Option<TokenSource>>,
}

/// Yields the current cluster token, if any.
pub type TokenSource = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Default for ClientPool {
    fn default() -> Self {
        Self::new(Duration::from_secs(2))
    }
}

impl ClientPool {
    /// Clients that give up connecting after `connect_timeout` (an unreachable owner must
    /// fail fast: it only counts as one failed replica).
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            connect_timeout,
            windows: (STREAM_WINDOW, CONNECTION_WINDOW),
            token: Mutex::new(None),
        }
    }

    /// A pool for queries, apart from the write path's: queriers read ingesters' answers as
    /// streams, at the pace of evaluation, so an answer waiting to be read holds its stream's
    /// window. Small stream windows under a large connection window let 64 such answers wait
    /// on one connection before any other stream on it stalls, and pushes never share it.
    pub fn for_queries() -> Self {
        Self {
            windows: (QUERY_STREAM_WINDOW, QUERY_CONNECTION_WINDOW),
            ..Self::default()
        }
    }

    /// Internal calls carry the token `source` yields (set once at start).
    pub fn set_token_source(&self, source: TokenSource) {
        *self.token.lock() = Some(source);
    }

    /// A request to an ingester: the tenant and, when set, the cluster token in its metadata.
    pub fn request<T>(&self, tenant: &str, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if !tenant.is_empty()
            && let Ok(v) = tenant.parse()
        {
            r.metadata_mut()
                .insert(muninn_proto::TENANT_METADATA_KEY, v);
        }
        let token = self.token.lock().as_ref().and_then(|f| f());
        if let Some(t) = token
            && let Ok(v) = t.parse()
        {
            r.metadata_mut()
                .insert(muninn_proto::CLUSTER_TOKEN_METADATA_KEY, v);
        }
        r
    }

    /// The client of `addr` (`host:port` or a URL).
    pub fn get(&self, addr: &str) -> Result<IngesterClient<Channel>> {
        if let Some(c) = self.clients.lock().get(addr) {
            return Ok(c.clone());
        }
        let uri = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let ep = Endpoint::from_shared(uri)
            .map_err(|e| Error::Address(format!("{addr:?}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // Push bodies are tens to hundreds of KB: HTTP/2's default 64 KiB windows would
            // stall each one on WINDOW_UPDATE round trips.
            .initial_stream_window_size(self.windows.0)
            .initial_connection_window_size(self.windows.1)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let client = IngesterClient::new(ep.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        self.clients
            .lock()
            .entry(addr.to_owned())
            .or_insert(client.clone());
        Ok(client)
    }
}
