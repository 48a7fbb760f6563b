//! Results-cache backends: an in-process LRU bounded by bytes (the default) and memcached.
//!
//! Keys are the SHA-256 of the logical key (tenant, query, step, interval: see
//! [`crate::extents::cache_key`]), so they fit memcached's 250-byte limit and carry no tenant
//! data in clear; the logical key is stored inside the value and checked on read, so a
//! collision can never serve another tenant's or query's result.

use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::{Error, Result};

/// Where cached extents live.
pub trait ResultsCache: Send + Sync {
    /// The value stored under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    /// Stores `value` under `key` (best effort: a full cache may drop it).
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<()>>;
    /// A name for logs and metrics.
    fn name(&self) -> &'static str;
}

/// The cache key of a logical key: `muninn-rc-<sha256 hex>`.
pub fn hashed_key(logical: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, logical.as_bytes());
    let mut s = String::with_capacity(10 + 64);
    s.push_str("muninn-rc-");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The in-process cache: least recently used entries go once the values exceed `max_bytes`.
pub struct LruResultsCache {
    inner: Mutex<LruInner>,
    max_bytes: usize,
}

struct LruInner {
    map: lru::LruCache<String, Arc<Vec<u8>>>,
    bytes: usize,
}

impl LruResultsCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(LruInner {
                map: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// Bytes the values hold now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

impl ResultsCache for LruResultsCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        let v = self.inner.lock().map.get(key).map(|v| v.as_ref().clone());
        Box::pin(async move { Ok(v) })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        let size = value.len() + key.len();
        let mut g = self.inner.lock();
        if size <= self.max_bytes {
            if let Some(old) = g.map.put(key.to_string(), Arc::new(value)) {
                g.bytes = g.bytes.saturating_sub(old.len() + key.len());
            }
            g.bytes += size;
            while g.bytes > self.max_bytes {
                match g.map.pop_lru() {
                    Some((k, v)) => g.bytes = g.bytes.saturating_sub(v.len() + k.len()),
                    None => break,
                }
            }
        } else if let Some(old) = g.map.pop(key) {
            // Too large to keep: drop the stale value it would have replaced.
            g.bytes = g.bytes.saturating_sub(old.len() + key.len());
        }
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "inmemory"
    }
}

/// memcached servers; a key goes to one of them by hash. Connections are pooled per server
/// and dropped on any error (the next call connects again).
pub struct Memcached {
    servers: Vec<Server>,
}

struct Server {
    dsn: String,
    idle: Mutex<Vec<async_memcached::Client>>,
}

/// Items larger than memcached's default item size (1 MiB) are not stored.
const MAX_ITEM_BYTES: usize = 1 << 20;

/// How long memcached keeps an item: a week (results of old data do not change).
const TTL_SECONDS: i64 = 7 * 86_400;

impl Memcached {
    pub fn new(addresses: &[String]) -> Result<Self> {
        let servers: Vec<Server> = addresses
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| Server {
                dsn: if a.contains("://") {
                    a.to_string()
                } else {
                    format!("tcp://{a}")
                },
                idle: Mutex::new(Vec::new()),
            })
            .collect();
        if servers.is_empty() {
            return Err(Error::Config(
                "--query-frontend.results-cache.memcached-addresses names no server".into(),
            ));
        }
        Ok(Self { servers })
    }

    fn server(&self, key: &str) -> &Server {
        // The key is a hex digest already: its first bytes spread keys evenly.
        let h = key
            .bytes()
            .rev()
            .take(8)
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        &self.servers[(h % self.servers.len() as u64) as usize]
    }
}

impl Server {
    async fn client(&self) -> Result<async_memcached::Client> {
        if let Some(c) = self.idle.lock().pop() {
            return Ok(c);
        }
        async_memcached::Client::new(&self.dsn)
            .await
            .map_err(|e| Error::Cache(format!("connecting to memcached {}: {e:?}", self.dsn)))
    }

    fn put_back(&self, c: async_memcached::Client) {
        let mut idle = self.idle.lock();
        if idle.len() < 16 {
            idle.push(c);
        }
    }
}

impl ResultsCache for Memcached {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            use async_memcached::AsciiProtocol;
            let s = self.server(key);
            let mut c = s.client().await?;
            let r = c
                .get(key)
                .await
                .map_err(|e| Error::Cache(format!("memcached get from {}: {e:?}", s.dsn)))?;
            s.put_back(c);
            Ok(r.and_then(|v| v.data))
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            use async_memcached::AsciiProtocol;
            if value.len() > MAX_ITEM_BYTES {
                return Ok(());
            }
            let s = self.server(key);
            let mut c = s.client().await?;
            c.set(key, value.as_slice(), Some(TTL_SECONDS), None)
                .await
                .map_err(|e| Error::Cache(format!("memcached set on {}: {e:?}", s.dsn)))?;
            s.put_back(c);
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "memcached"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lru_evicts_the_least_recently_used_past_its_size() {
        let c = LruResultsCache::new(100);
        c.set("a", vec![0; 40]).await.unwrap();
        c.set("b", vec![0; 40]).await.unwrap();
        assert!(c.get("a").await.unwrap().is_some()); // a is now the most recent
        c.set("c", vec![0; 40]).await.unwrap();
        assert!(
            c.get("b").await.unwrap().is_none(),
            "b was least recently used"
        );
        assert!(c.get("a").await.unwrap().is_some());
        assert!(c.get("c").await.unwrap().is_some());
        assert!(c.bytes() <= 100);
        // A value larger than the whole cache is not kept, and drops what it replaces.
        c.set("a", vec![0; 500]).await.unwrap();
        assert!(c.get("a").await.unwrap().is_none());
    }

    #[test]
    fn hashed_keys_fit_memcached() {
        let k = hashed_key(&"x".repeat(10_000));
        assert!(k.len() <= 250 && !k.contains(' '));
        assert_ne!(k, hashed_key("y"));
    }
}
