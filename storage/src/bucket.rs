//! The bucket: object storage laid out per tenant.
//!
//! `<tenant>/<block-ulid>/block.parquet`, `<tenant>/<block-ulid>/meta.json` (written last: a
//! block without it does not exist for readers) and `<tenant>/bucket-index.json` (the list of
//! block metas, rewritten by whoever changes the set of blocks, always with a conditional
//! write on the version it read, retried on conflict, so no writer's update is lost; see
//! `docs/visibility.md`). Every key is built from a validated [`TenantId`], so no request can
//! address another tenant's objects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use muninn_proto::tenant::TenantId;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::block::{BlockMeta, DATA_FILE};
use crate::{Error, Result};

/// `bucket-index.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketIndex {
    pub version: u32,
    pub updated_at_ms: i64,
    pub blocks: Vec<BlockMeta>,
    /// Blocks marked for deletion (replaced by a compacted block, or expired).
    #[serde(default)]
    pub deletion_marks: Vec<DeletionMark>,
}

/// `<tenant>/<ulid>/deletion-mark.json` (after Thanos's marker): the block's objects go away
/// after the deletion delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionMark {
    pub id: String,
    /// When it was marked, ms.
    pub deletion_time_ms: i64,
    /// `compacted` (a listed block replaces it) or `retention` (expired).
    #[serde(default)]
    pub reason: String,
    pub version: u32,
}

impl BucketIndex {
    /// The blocks a reader should use. A block marked after compaction is dropped only once a
    /// listed block names it as a source, so no reader ever misses its data; an expired block
    /// is dropped at once.
    pub fn live_blocks(&self) -> Vec<BlockMeta> {
        let replaced: std::collections::HashSet<&str> = self
            .blocks
            .iter()
            .flat_map(|b| {
                b.compaction
                    .sources
                    .iter()
                    .filter(move |s| **s != b.ulid)
                    .map(String::as_str)
            })
            .collect();
        let gone = |b: &BlockMeta| {
            self.deletion_marks.iter().any(|m| {
                m.id == b.ulid && (m.reason == "retention" || replaced.contains(b.ulid.as_str()))
            })
        };
        self.blocks.iter().filter(|b| !gone(b)).cloned().collect()
    }
}

/// Retries of a conditional index update: conflicts (another writer updated the index
/// first) and errors are counted apart, with a growing pause between attempts.
#[derive(Default)]
struct Retry {
    conflicts: u32,
    errors: u32,
    pause: Duration,
}

impl Retry {
    const MAX_CONFLICTS: u32 = 100;
    const MAX_ERRORS: u32 = 5;

    async fn pause(&mut self) {
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.pause).await;
    }

    /// After a failed conditional PUT: retries conflicts and transient errors, up to a limit.
    async fn after(
        &mut self,
        tenant: &TenantId,
        path: &Path,
        e: object_store::Error,
    ) -> Result<()> {
        match e {
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. }
                if self.conflicts < Self::MAX_CONFLICTS =>
            {
                self.conflicts += 1;
                tracing::debug!(%tenant, conflicts = self.conflicts, "bucket index changed meanwhile; retrying");
                self.pause().await;
                Ok(())
            }
            e => self.error(tenant, os_err("put", path)(e)).await,
        }
    }

    /// After any other failure: retried a few times, then returned.
    async fn error(&mut self, tenant: &TenantId, e: Error) -> Result<()> {
        self.errors += 1;
        if self.errors >= Self::MAX_ERRORS {
            return Err(e);
        }
        tracing::warn!(%tenant, attempt = self.errors, error = %e, "updating the bucket index failed; retrying");
        self.pause().await;
        Ok(())
    }
}

/// Object storage holding every tenant's blocks.
#[derive(Clone, Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Readers' cache of bucket indexes, shared by every clone and wrapper of this bucket
    /// (so the shipper and compactor of `muninn all` invalidate what its querier reads).
    index_cache: Arc<crate::index_cache::IndexCache>,
}

fn os_err(op: &'static str, path: &Path) -> impl FnOnce(object_store::Error) -> Error + use<> {
    let path = path.to_string();
    move |e| Error::ObjectStore {
        op,
        path,
        source: Box::new(e),
    }
}

use muninn_proto::time::now_ms;

impl Bucket {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            index_cache: Default::default(),
        }
    }

    /// The same bucket with its traffic counted in `metrics`.
    pub fn metered(self, metrics: crate::metered::StoreMetrics) -> Self {
        Self {
            store: Arc::new(crate::metered::MeteredStore::new(self.store, metrics)),
            index_cache: self.index_cache,
        }
    }

    /// The bucket with its block data-file range reads going through `cache`.
    pub fn cached(self, cache: Arc<crate::block_cache::BlockCache>) -> Self {
        Self {
            store: Arc::new(crate::block_cache::CachingStore::new(self.store, cache)),
            index_cache: self.index_cache,
        }
    }

    /// A bucket in a local directory (the default backend).
    pub fn filesystem(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Block(format!("creating bucket dir {}: {e}", dir.display())))?;
        let fs = crate::local_store::open(dir)
            .map_err(|e| Error::Block(format!("bucket dir {}: {e}", dir.display())))?;
        Ok(Self::new(fs))
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Key of a file of a block.
    pub fn block_file(tenant: &TenantId, ulid: &str, file: &str) -> Path {
        Path::from(format!("{}/{ulid}/{file}", tenant.as_str()))
    }

    fn index_path(tenant: &TenantId) -> Path {
        Path::from(format!("{}/bucket-index.json", tenant.as_str()))
    }

    fn cache_generation_path(tenant: &TenantId) -> Path {
        Path::from(format!(
            "{}/markers/results-cache-generation",
            tenant.as_str()
        ))
    }

    /// The tenant's results-cache generation: a number the compactor raises whenever data
    /// goes away (retention), which the query frontend puts in its cache keys so that results
    /// computed before are no longer served. 0 when never raised.
    pub async fn results_cache_generation(&self, tenant: &TenantId) -> Result<u64> {
        let path = Self::cache_generation_path(tenant);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(os_err("get", &path))?;
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| Error::Block(format!("{path}: not a generation number")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(0),
            Err(e) => Err(os_err("get", &path)(e)),
        }
    }

    /// Raises the tenant's results-cache generation (the compactor, the tenant's only writer
    /// of it, after data went away); returns the new one.
    pub async fn bump_results_cache_generation(&self, tenant: &TenantId) -> Result<u64> {
        let next = match self.results_cache_generation(tenant).await {
            Ok(g) => g.saturating_add(1),
            // Unreadable: any value other than what readers may hold will do; the time does.
            Err(_) => u64::try_from(now_ms()).unwrap_or(1),
        };
        self.put_retrying(
            &Self::cache_generation_path(tenant),
            Bytes::from(next.to_string()),
        )
        .await?;
        Ok(next)
    }

    async fn put_retrying(&self, path: &Path, data: Bytes) -> Result<()> {
        let mut delay = Duration::from_millis(100);
        for attempt in 1.. {
            match self
                .store
                .put(path, PutPayload::from_bytes(data.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 5 => {
                    tracing::warn!(path = %path, attempt, error = %e, "upload failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(os_err("put", path)(e)),
            }
        }
        Ok(())
    }

    /// Uploads a block: data first, `meta.json` last. Idempotent: a retry overwrites the same
    /// keys with the same content.
    pub async fn upload_block(
        &self,
        tenant: &TenantId,
        data: Vec<u8>,
        meta: &BlockMeta,
    ) -> Result<()> {
        self.put_retrying(
            &Self::block_file(tenant, &meta.ulid, DATA_FILE),
            Bytes::from(data),
        )
        .await?;
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| Error::Block(format!("meta.json: {e}")))?;
        self.put_retrying(
            &Self::block_file(tenant, &meta.ulid, "meta.json"),
            Bytes::from(json),
        )
        .await
    }

    /// Uploads a block whose data was written to a local file, streaming it (multipart) so
    /// memory stays bounded; `meta.json` last, as [`Bucket::upload_block`].
    pub async fn upload_block_file(
        &self,
        tenant: &TenantId,
        file: &std::path::Path,
        meta: &BlockMeta,
    ) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let path = Self::block_file(tenant, &meta.ulid, DATA_FILE);
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(os_err("put_multipart", &path))?;
        let mut w = object_store::WriteMultipart::new(upload);
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::Block(format!("opening {}: {e}", file.display())))?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| Error::Block(format!("reading {}: {e}", file.display())))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]);
        }
        w.finish().await.map_err(os_err("put_multipart", &path))?;
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| Error::Block(format!("meta.json: {e}")))?;
        self.put_retrying(
            &Self::block_file(tenant, &meta.ulid, "meta.json"),
            Bytes::from(json),
        )
        .await
    }

    /// Every object of a tenant (one listing).
    async fn list_tenant(&self, tenant: &TenantId) -> Result<Vec<object_store::ObjectMeta>> {
        let prefix = Path::from(tenant.as_str());
        self.store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(os_err("list", &prefix))
    }

    /// The JSON objects named `file` among `objects`, parsed; unreadable ones are skipped
    /// with a warning.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        objects: &[object_store::ObjectMeta],
        file: &str,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for o in objects
            .iter()
            .filter(|o| o.location.filename() == Some(file))
        {
            let data = self
                .store
                .get(&o.location)
                .await
                .map_err(os_err("get", &o.location))?;
            let bytes = data.bytes().await.map_err(os_err("get", &o.location))?;
            match serde_json::from_slice::<T>(&bytes) {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::warn!(path = %o.location, error = %e, "skipping unreadable {file}")
                }
            }
        }
        Ok(out)
    }

    fn sorted(mut metas: Vec<BlockMeta>) -> Vec<BlockMeta> {
        metas.sort_by(|a, b| (a.min_time, &a.ulid).cmp(&(b.min_time, &b.ulid)));
        metas
    }

    /// Every complete block of a tenant, by listing (blocks without `meta.json` are skipped).
    pub async fn list_blocks(&self, tenant: &TenantId) -> Result<Vec<BlockMeta>> {
        let objects = self.list_tenant(tenant).await?;
        Ok(Self::sorted(self.read_json(&objects, "meta.json").await?))
    }

    /// Blocks and deletion marks from a single listing.
    async fn listed_index(&self, tenant: &TenantId) -> Result<BucketIndex> {
        let objects = self.list_tenant(tenant).await?;
        Ok(BucketIndex {
            version: 1,
            updated_at_ms: now_ms(),
            blocks: Self::sorted(self.read_json(&objects, "meta.json").await?),
            deletion_marks: self.read_json(&objects, "deletion-mark.json").await?,
        })
    }

    /// Deletion marks of a tenant's blocks, by listing.
    pub async fn list_marks(&self, tenant: &TenantId) -> Result<Vec<DeletionMark>> {
        let objects = self.list_tenant(tenant).await?;
        self.read_json(&objects, "deletion-mark.json").await
    }

    /// Marks a block for deletion (create-only: an existing mark is kept).
    pub async fn mark_for_deletion(
        &self,
        tenant: &TenantId,
        ulid: &str,
        reason: &str,
    ) -> Result<()> {
        let path = Self::block_file(tenant, ulid, "deletion-mark.json");
        let mark = DeletionMark {
            id: ulid.to_owned(),
            deletion_time_ms: now_ms(),
            reason: reason.to_owned(),
            version: 1,
        };
        let json =
            serde_json::to_vec(&mark).map_err(|e| Error::Block(format!("deletion mark: {e}")))?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(json), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(os_err("put", &path)(e)),
        }
    }

    /// Deletes a block's objects: `meta.json` first, so readers stop seeing it at once.
    pub async fn delete_block(&self, tenant: &TenantId, ulid: &str) -> Result<()> {
        let meta = Self::block_file(tenant, ulid, "meta.json");
        match self.store.delete(&meta).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(os_err("delete", &meta)(e)),
        }
        let prefix = Path::from(format!("{}/{ulid}", tenant.as_str()));
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(os_err("list", &prefix))?;
        for o in objects {
            match self.store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_err("delete", &o.location)(e)),
            }
        }
        Ok(())
    }

    /// Tenants with objects in the bucket. Listed prefixes may come back percent-encoded
    /// (`*`, `(`, `'` in a tenant id), so they are decoded before validation.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let root = Path::from("");
        let list = self
            .store
            .list_with_delimiter(None)
            .await
            .map_err(os_err("list", &root))?;
        let mut out = Vec::new();
        for p in &list.common_prefixes {
            let raw = p.as_ref();
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            match TenantId::new(&decoded) {
                Ok(t) => out.push(t),
                Err(e) => {
                    tracing::warn!(prefix = raw, error = %e, "skipping bucket prefix that is not a tenant")
                }
            }
        }
        Ok(out)
    }

    /// Rewrites the tenant's bucket index from a listing, with a conditional write on the
    /// version read before listing: if another writer updated it meanwhile, the write fails
    /// and is redone from a new listing (which includes that writer's blocks).
    pub async fn write_index(&self, tenant: &TenantId) -> Result<BucketIndex> {
        let path = Self::index_path(tenant);
        let mut retry = Retry::default();
        loop {
            let mode = match self.store.head(&path).await {
                Ok(m) => object_store::PutMode::Update(object_store::UpdateVersion {
                    e_tag: m.e_tag,
                    version: m.version,
                }),
                Err(object_store::Error::NotFound { .. }) => object_store::PutMode::Create,
                Err(e) => {
                    retry.error(tenant, os_err("head", &path)(e)).await?;
                    continue;
                }
            };
            let index = self.listed_index(tenant).await?;
            match self.put_index(tenant, &path, &index, mode).await {
                Ok(()) => return Ok(index),
                Err(e) => retry.after(tenant, &path, e).await?,
            }
        }
    }

    async fn put_index(
        &self,
        tenant: &TenantId,
        path: &Path,
        index: &BucketIndex,
        mode: object_store::PutMode,
    ) -> std::result::Result<(), object_store::Error> {
        let json = serde_json::to_vec(index).map_err(|e| object_store::Error::Generic {
            store: "bucket",
            source: Box::new(e),
        })?;
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        let put = self
            .store
            .put_opts(path, PutPayload::from(json), opts)
            .await;
        if put.is_ok() {
            self.index_cache.forget(tenant.as_str());
        }
        put.map(|_| ())
    }

    /// Adds a just-uploaded block to the tenant's index: read the index with its version,
    /// insert the block, write it back conditionally on that version, retried on conflict
    /// (no listing: that stays with the compactor, so cuts stay cheap however many blocks a
    /// tenant has). Without an index yet, one is built from a listing. Returns only once an
    /// index that lists the block is written.
    pub async fn add_to_index(&self, tenant: &TenantId, meta: &BlockMeta) -> Result<()> {
        let path = Self::index_path(tenant);
        let mut retry = Retry::default();
        loop {
            let (mut index, mode) = match self.store.get(&path).await {
                Ok(r) => {
                    let version = object_store::UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let bytes = match r.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            retry.error(tenant, os_err("get", &path)(e)).await?;
                            continue;
                        }
                    };
                    match serde_json::from_slice::<BucketIndex>(&bytes) {
                        Ok(i) => (i, object_store::PutMode::Update(version)),
                        Err(e) => {
                            tracing::warn!(%tenant, error = %e, "unreadable bucket index; rebuilding it from a listing");
                            let index = self.write_index(tenant).await?;
                            return Self::listed_or_err(&index, meta);
                        }
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {
                    let index = self.write_index(tenant).await?;
                    return Self::listed_or_err(&index, meta);
                }
                Err(e) => {
                    retry.error(tenant, os_err("get", &path)(e)).await?;
                    continue;
                }
            };
            if index.blocks.iter().any(|b| b.ulid == meta.ulid) {
                return Ok(());
            }
            index.blocks.push(meta.clone());
            index.blocks = Self::sorted(std::mem::take(&mut index.blocks));
            index.updated_at_ms = now_ms();
            match self.put_index(tenant, &path, &index, mode).await {
                Ok(()) => return Ok(()),
                Err(e) => retry.after(tenant, &path, e).await?,
            }
        }
    }

    fn listed_or_err(index: &BucketIndex, meta: &BlockMeta) -> Result<()> {
        if index.blocks.iter().any(|b| b.ulid == meta.ulid) {
            Ok(())
        } else {
            Err(Error::Block(format!(
                "block {} is not in the listing after its upload",
                meta.ulid
            )))
        }
    }

    /// The blocks readers should use: [`BucketIndex::live_blocks`] of the tenant's index.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Vec<BlockMeta>> {
        Ok(self.index(tenant).await?.live_blocks())
    }

    /// [`Bucket::blocks`] as read at most `max_age` ago (through the readers' index cache;
    /// `max_age` zero reads the index every time).
    pub async fn cached_blocks(
        &self,
        tenant: &TenantId,
        max_age: Duration,
    ) -> Result<Arc<Vec<BlockMeta>>> {
        if max_age.is_zero() {
            return Ok(Arc::new(self.blocks(tenant).await?));
        }
        if let Some(b) = self.index_cache.get(tenant.as_str(), max_age) {
            return Ok(b);
        }
        let (epoch, at) = (self.index_cache.epoch(), std::time::Instant::now());
        let blocks = Arc::new(self.blocks(tenant).await?);
        self.index_cache
            .put(tenant.as_str(), epoch, at, blocks.clone());
        Ok(blocks)
    }

    /// Drops every cached index: the next query of each tenant reads its index again.
    pub fn refresh_cached_indexes(&self) {
        self.index_cache.forget_all();
    }

    /// The tenant's bucket index, or one built by listing when there is none.
    pub async fn index(&self, tenant: &TenantId) -> Result<BucketIndex> {
        let path = Self::index_path(tenant);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(os_err("get", &path))?;
                match serde_json::from_slice::<BucketIndex>(&bytes) {
                    Ok(i) => Ok(i),
                    Err(e) => {
                        tracing::warn!(%tenant, error = %e, "unreadable bucket index; listing instead");
                        self.listed_index(tenant).await
                    }
                }
            }
            Err(object_store::Error::NotFound { .. }) => self.listed_index(tenant).await,
            Err(e) => Err(os_err("get", &path)(e)),
        }
    }
}

/// A secret given on the command line or in the config file; never printed.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Flags choosing the bucket (the `--storage.*` flags).
#[derive(clap::Args, Clone, Debug)]
pub struct StorageArgs {
    /// How long queriers use a tenant's bucket index before reading it again (0s: on every
    /// query). Ingesters must keep shipped data longer (`--ingester.retain-after-ship`).
    #[arg(
        long = "blocks-storage.bucket-index.update-interval",
        default_value = "1m"
    )]
    pub bucket_index_update_interval: muninn_proto::duration::FlagDuration,
    /// Cache the byte ranges queriers read from blocks (footers, column chunks) on local
    /// disk, so repeated queries over old data do not read object storage again.
    #[arg(long = "blocks-storage.cache-enabled", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub block_cache_enabled: bool,
    /// Directory of the block cache (default: `<data-dir>/block-cache`). Files a previous run
    /// left are used again.
    #[arg(long = "blocks-storage.cache-dir")]
    pub block_cache_dir: Option<std::path::PathBuf>,
    /// Bytes the block cache may hold on disk; least recently used ranges go first.
    #[arg(long = "blocks-storage.cache-max-bytes", default_value_t = 1 << 30)]
    pub block_cache_max_bytes: u64,
    /// Object storage backend: `filesystem` (default) or `s3`.
    #[arg(long = "storage.backend", default_value = "filesystem")]
    pub backend: String,
    /// Directory of the filesystem bucket (default: `<data-dir>/bucket`).
    #[arg(long = "storage.filesystem.dir")]
    pub filesystem_dir: Option<std::path::PathBuf>,
    /// S3 endpoint URL, for S3-compatible servers (e.g. `http://127.0.0.1:8333`).
    #[arg(long = "storage.s3.endpoint")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket name.
    #[arg(long = "storage.s3.bucket")]
    pub s3_bucket: Option<String>,
    /// S3 region.
    #[arg(long = "storage.s3.region", default_value = "us-east-1")]
    pub s3_region: String,
    /// Allow plain-HTTP endpoints.
    #[arg(long = "storage.s3.allow-http", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: bool,
    /// Access key id (default: `AWS_ACCESS_KEY_ID`). Better set in the config file or the
    /// environment than on the command line.
    #[arg(long = "storage.s3.access-key-id")]
    pub s3_access_key_id: Option<Secret>,
    /// Secret access key (default: `AWS_SECRET_ACCESS_KEY`).
    #[arg(long = "storage.s3.secret-access-key")]
    pub s3_secret_access_key: Option<Secret>,
}

impl StorageArgs {
    /// Opens the configured bucket.
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Bucket> {
        match self.backend.as_str() {
            "filesystem" => {
                let dir = self
                    .filesystem_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("bucket"));
                Bucket::filesystem(&dir)
            }
            "s3" => {
                let bucket = self
                    .s3_bucket
                    .clone()
                    .ok_or_else(|| Error::Block("--storage.s3.bucket is required".into()))?;
                // Path-style addressing (the builder's default) for S3-compatible servers.
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&self.s3_region)
                    .with_allow_http(self.s3_allow_http);
                if let Some(e) = &self.s3_endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(k) = &self.s3_access_key_id {
                    b = b.with_access_key_id(&k.0);
                }
                if let Some(k) = &self.s3_secret_access_key {
                    b = b.with_secret_access_key(&k.0);
                }
                let store = b
                    .build()
                    .map_err(|e| Error::Block(format!("s3 bucket: {e}")))?;
                Ok(Bucket::new(Arc::new(store)))
            }
            other => Err(Error::Block(format!(
                "unknown storage backend {other:?} (filesystem or s3)"
            ))),
        }
    }
}
