//! The querier's local block cache (store-gateway-like): the byte ranges read from blocks'
//! data files (Parquet footers, column chunks) kept as files in `--blocks-storage.cache-dir`,
//! read back through `memmap2`, least recently used first out past
//! `--blocks-storage.cache-max-bytes`.
//!
//! Only `<tenant>/<ulid>/block.parquet` is cached: a block's data file is written once and
//! never rewritten with other content (`docs/visibility.md`), so a cached range never goes
//! stale. Everything else (the bucket index, `meta.json`, marks) goes to the store.
//!
//! A cache file holds the object's size, the range's start and end (u64 little-endian each)
//! and the bytes; it is written under a temporary name and renamed, so a file that exists is
//! whole. At start the directory's files are taken back in (oldest first out); temporary
//! leftovers are removed.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::block::DATA_FILE;

/// Object size, range start, range end (u64 each), then the key's length (u32) and the key.
const HEADER: usize = 28;

/// Distinguishes the temporary files of concurrent writers of one name.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The cache directory and its index.
pub struct BlockCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    pub hits: Counter,
    pub misses: Counter,
}

struct Index {
    files: lru::LruCache<String, u64>,
    bytes: u64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockCache({})", self.dir.display())
    }
}

/// A cached range: the object's size, the range, and its bytes (mapped).
struct Cached {
    size: u64,
    range: Range<u64>,
    data: Bytes,
}

impl BlockCache {
    /// Opens (creating) `dir`, taking back the files a previous run left.
    pub fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        let mut found: Vec<(std::time::SystemTime, String, u64)> = vec![];
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata()?;
            if name.starts_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            if meta.is_file() {
                found.push((
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    name,
                    meta.len(),
                ));
            }
        }
        found.sort();
        let mut index = Index {
            files: lru::LruCache::unbounded(),
            bytes: 0,
        };
        for (_, name, len) in found {
            index.bytes += len;
            index.files.put(name, len);
        }
        let cache = Arc::new(Self {
            dir,
            max_bytes,
            index: Mutex::new(index),
            hits: Counter::default(),
            misses: Counter::default(),
        });
        cache.evict();
        tracing::info!(dir = %cache.dir.display(), bytes = cache.bytes(), "block cache opened");
        Ok(cache)
    }

    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("muninn_block_cache");
        r.register(
            "hits",
            "Block byte ranges read from the local cache",
            self.hits.clone(),
        );
        r.register(
            "misses",
            "Block byte ranges read from object storage (then cached)",
            self.misses.clone(),
        );
    }

    /// Bytes the cache files hold.
    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes
    }

    /// The logical key of a cached range and its file name.
    fn name(location: &Path, range: &str) -> (String, String) {
        let key = format!("{location}\n{range}");
        let d = fnv128(key.as_bytes());
        (key, format!("{d:032x}"))
    }

    #[allow(unsafe_code)]
    fn read(&self, (key, name): &(String, String)) -> Option<Cached> {
        // Known to the index (and marked recently used), or not cached.
        self.index.lock().files.get(name)?;
        let file = std::fs::File::open(self.dir.join(name)).ok()?;
        // SAFETY: cache files are written whole under a temporary name, then renamed, and
        // never written again; eviction unlinks them, which leaves an existing mapping valid.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        if map.len() < HEADER {
            return None;
        }
        let word =
            |i: usize| u64::from_le_bytes(map[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (size, start, end) = (word(0), word(1), word(2));
        let key_len = u32::from_le_bytes(map[24..28].try_into().unwrap_or([0; 4])) as usize;
        // The file must hold this very key (a name collision is a miss) and the whole range.
        let data_at = HEADER.checked_add(key_len)?;
        if map.get(HEADER..data_at) != Some(key.as_bytes())
            || end < start
            || (end - start) as usize != map.len().checked_sub(data_at)?
        {
            return None;
        }
        let data = Bytes::from_owner(map).slice(data_at..);
        Some(Cached {
            size,
            range: start..end,
            data,
        })
    }

    fn write(&self, (key, name): &(String, String), size: u64, range: &Range<u64>, data: &[u8]) {
        let len = (HEADER + key.len() + data.len()) as u64;
        if len > self.max_bytes {
            return;
        }
        // A temporary name of its own: concurrent writers of one range never share a file.
        let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".tmp-{name}-{}-{seq}", std::process::id()));
        let mut buf = Vec::with_capacity(len as usize);
        buf.extend_from_slice(&size.to_le_bytes());
        buf.extend_from_slice(&range.start.to_le_bytes());
        buf.extend_from_slice(&range.end.to_le_bytes());
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(data);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &buf))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(name)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(dir = %self.dir.display(), error = %e, "block cache write failed");
            return;
        }
        {
            let mut idx = self.index.lock();
            if let Some(old) = idx.files.put(name.clone(), len) {
                idx.bytes = idx.bytes.saturating_sub(old);
            }
            idx.bytes += len;
        }
        self.evict();
    }

    fn evict(&self) {
        let mut idx = self.index.lock();
        while idx.bytes > self.max_bytes {
            let Some((name, len)) = idx.files.pop_lru() else {
                break;
            };
            idx.bytes = idx.bytes.saturating_sub(len);
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

/// A 128-bit FNV-1a hash: names cache files (a collision is only a miss: the file holds its
/// full key, compared on read).
fn fnv128(b: &[u8]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for x in b {
        h ^= u128::from(*x);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// An object store whose block data-file range reads go through a [`BlockCache`].
#[derive(Debug)]
pub struct CachingStore {
    inner: Arc<dyn ObjectStore>,
    cache: Arc<BlockCache>,
}

impl CachingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, cache: Arc<BlockCache>) -> Self {
        Self { inner, cache }
    }
}

impl std::fmt::Display for CachingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

fn is_block_data(location: &Path) -> bool {
    location.filename() == Some(DATA_FILE)
}

fn result(location: &Path, c: Cached) -> GetResult {
    let data = c.data;
    GetResult {
        payload: GetResultPayload::Stream(Box::pin(futures::stream::once(async move { Ok(data) }))),
        meta: ObjectMeta {
            location: location.clone(),
            last_modified: Default::default(),
            size: c.size,
            e_tag: None,
            version: None,
        },
        range: c.range,
        attributes: Default::default(),
        extensions: Default::default(),
    }
}

/// Only plain range reads are cached (no conditions, no head).
fn plain(options: &GetOptions) -> bool {
    !options.head
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
}

#[async_trait]
impl ObjectStore for CachingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let key = match (&options.range, is_block_data(location) && plain(&options)) {
            (Some(GetRange::Bounded(r)), true) => format!("get {}-{}", r.start, r.end),
            (Some(GetRange::Suffix(n)), true) => format!("suffix {n}"),
            _ => return self.inner.get_opts(location, options).await,
        };
        let name = BlockCache::name(location, &key);
        if let Some(c) = self.cache.read(&name) {
            self.cache.hits.inc();
            return Ok(result(location, c));
        }
        self.cache.misses.inc();
        let r = self.inner.get_opts(location, options).await?;
        let (size, range) = (r.meta.size, r.range.clone());
        let data = r.bytes().await?;
        self.cache.write(&name, size, &range, &data);
        Ok(result(location, Cached { size, range, data }))
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if !is_block_data(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        // Keys of their own: these entries do not know the object's size.
        let names: Vec<(String, String)> = ranges
            .iter()
            .map(|r| BlockCache::name(location, &format!("ranges {}-{}", r.start, r.end)))
            .collect();
        let mut out: Vec<Option<Bytes>> = names
            .iter()
            .map(|n| self.cache.read(n).map(|c| c.data))
            .collect();
        let missing: Vec<usize> = (0..ranges.len()).filter(|i| out[*i].is_none()).collect();
        self.cache
            .hits
            .inc_by((ranges.len() - missing.len()) as u64);
        if !missing.is_empty() {
            self.cache.misses.inc_by(missing.len() as u64);
            let want: Vec<Range<u64>> = missing.iter().map(|i| ranges[*i].clone()).collect();
            let got = self.inner.get_ranges(location, &want).await?;
            for (i, b) in missing.iter().zip(got) {
                // The object's size is not known here; no reader of a bounded range needs it.
                self.cache
                    .write(&names[*i], ranges[*i].end, &ranges[*i], &b);
                out[*i] = Some(b);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn block_ranges_are_read_once_then_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let block = Path::from("t/01ABC/block.parquet");
        inner.put(&block, data.clone().into()).await.unwrap();
        let metrics = crate::metered::StoreMetrics::default();
        let counted: Arc<dyn ObjectStore> =
            Arc::new(crate::metered::MeteredStore::new(inner, metrics.clone()));
        let cache = BlockCache::open(dir.path().join("c"), 1 << 20).unwrap();
        let store = CachingStore::new(counted, cache.clone());
        for _ in 0..3 {
            assert_eq!(
                store.get_range(&block, 100..200).await.unwrap(),
                &data[100..200]
            );
            let r = store
                .get_ranges(&block, &[0..10, 9_000..10_000])
                .await
                .unwrap();
            assert_eq!(r[1], &data[9_000..]);
            let suffix = store
                .get_opts(
                    &block,
                    GetOptions {
                        range: Some(GetRange::Suffix(8)),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(suffix.range, 9_992..10_000);
            assert_eq!(suffix.meta.size, 10_000);
            assert_eq!(suffix.bytes().await.unwrap(), &data[9_992..]);
        }
        assert_eq!(metrics.get("get_range").0, 4, "each range fetched once");
        // A new process takes the files back: no fetch at all.
        drop(store);
        let again = BlockCache::open(dir.path().join("c"), 1 << 20).unwrap();
        let store = CachingStore::new(Arc::new(InMemory::new()), again);
        assert_eq!(
            store.get_range(&block, 100..200).await.unwrap(),
            &data[100..200]
        );
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_size_and_ignores_other_objects() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let block = Path::from("t/01ABC/block.parquet");
        inner.put(&block, vec![7u8; 4096].into()).await.unwrap();
        let index = Path::from("t/bucket-index.json");
        inner.put(&index, b"{}".to_vec().into()).await.unwrap();
        let cache = BlockCache::open(dir.path().join("c"), 3 * 1100).unwrap();
        let store = CachingStore::new(inner, cache.clone());
        for i in 0..4u64 {
            store
                .get_range(&block, i * 1000..(i + 1) * 1000)
                .await
                .unwrap();
        }
        assert!(cache.bytes() <= 3 * 1100);
        store.get_range(&index, 0..2).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("c")).unwrap().count(), 3);
    }
}
