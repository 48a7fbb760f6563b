//! The filesystem bucket: `object_store`'s `LocalFileSystem` with fsync on (files and the
//! directories that gained entries are synced before a write returns, as an S3 PUT is durable
//! when it returns), plus the one thing it lacks: conditional updates (`PutMode::Update`),
//! which the bucket index relies on. An update takes an exclusive `flock` on
//! `<root>/.muninn-update.lock` (so ingesters, compactors and importers in several processes
//! on one directory agree), compares the object's current ETag with the expected one, and
//! writes only if they match; otherwise it fails with `Precondition`, as S3 does.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A durable local-filesystem store with conditional updates.
#[derive(Debug)]
pub struct LocalStore {
    inner: LocalFileSystem,
    lock_file: std::path::PathBuf,
    /// Serializes updates inside this process (the file lock serializes processes).
    local: tokio::sync::Mutex<()>,
}

impl LocalStore {
    /// A store rooted at `dir`, which must exist.
    pub fn new(dir: &std::path::Path) -> Result<Self> {
        Ok(Self {
            inner: LocalFileSystem::new_with_prefix(dir)?.with_fsync(true),
            lock_file: dir.join(".muninn-update.lock"),
            local: tokio::sync::Mutex::new(()),
        })
    }

    async fn update(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
        expected: Option<String>,
    ) -> Result<PutResult> {
        let _local = self.local.lock().await;
        let path = self.lock_file.clone();
        let lock = tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            f.lock()?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(|e| generic(e.to_string()))?
        .map_err(|e| generic(format!("locking {}: {e}", self.lock_file.display())))?;
        let current = match self.inner.head(location).await {
            Ok(m) => m.e_tag,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(object_store::Error::Precondition {
                    path: location.to_string(),
                    source: "object to update does not exist".into(),
                });
            }
            Err(e) => return Err(e),
        };
        if current != expected {
            return Err(object_store::Error::Precondition {
                path: location.to_string(),
                source: format!("etag is {current:?}, expected {expected:?}").into(),
            });
        }
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        let r = self.inner.put_opts(location, payload, opts).await;
        drop(lock);
        r
    }
}

fn generic(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalStore",
        source: msg.into(),
    }
}

impl std::fmt::Display for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Durable({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match &opts.mode {
            PutMode::Update(v) => {
                let expected = v.e_tag.clone();
                self.update(location, payload, opts, expected).await
            }
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// For [`crate::bucket::Bucket::filesystem`].
pub fn open(dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(LocalStore::new(dir)?))
}
