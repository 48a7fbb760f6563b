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

/// Clients by address.
pub struct ClientPool {
    clients: Mutex<HashMap<String, IngesterClient<Channel>>>,
    connect_timeout: Duration,
}

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
        }
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
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
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
