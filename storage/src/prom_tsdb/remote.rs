//! Prometheus blocks in a Thanos-style bucket: `<prefix>/<ulid>/meta.json`, `index`,
//! `chunks/NNNNNN`, `tombstones` (absent in Thanos: Thanos applies deletions itself), and
//! `deletion-mark.json` on blocks being deleted. Blocks are downloaded one at a time to a
//! local directory and read from there.

use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Block(format!("source bucket: {what}: {e}"))
}

fn under(prefix: &str, rest: &str) -> ObjectPath {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        ObjectPath::from(rest)
    } else {
        ObjectPath::from(format!("{p}/{rest}"))
    }
}

/// The blocks under `prefix` (ULID-named directories with a `meta.json`), sorted, those with
/// a deletion mark left out.
pub async fn list_blocks(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<String>> {
    let dir = under(prefix, "");
    let list = store
        .list_with_delimiter(Some(&dir))
        .await
        .map_err(|e| err("listing", e))?;
    let mut out = vec![];
    for p in list.common_prefixes {
        let Some(name) = p.filename().map(str::to_string) else {
            continue;
        };
        if !super::is_ulid(&name) {
            continue;
        }
        let has = |f: &str| {
            let path = under(prefix, &format!("{name}/{f}"));
            let store = store.clone();
            async move { store.head(&path).await.is_ok() }
        };
        if !has("meta.json").await {
            continue;
        }
        if has("deletion-mark.json").await {
            tracing::info!(block = %name, "skipping a block marked for deletion");
            continue;
        }
        out.push(name);
    }
    out.sort();
    Ok(out)
}

async fn download(store: &Arc<dyn ObjectStore>, from: &ObjectPath, to: &Path) -> Result<u64> {
    let r = store
        .get(from)
        .await
        .map_err(|e| err(&format!("reading {from}"), e))?;
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| err(&format!("creating {}", parent.display()), e))?;
    }
    let mut f = tokio::fs::File::create(to)
        .await
        .map_err(|e| err(&format!("creating {}", to.display()), e))?;
    let mut stream = r.into_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| err(&format!("reading {from}"), e))?
    {
        n += chunk.len() as u64;
        f.write_all(&chunk)
            .await
            .map_err(|e| err(&format!("writing {}", to.display()), e))?;
    }
    f.flush()
        .await
        .map_err(|e| err(&format!("writing {}", to.display()), e))?;
    Ok(n)
}

/// Downloads block `ulid`'s `meta.json` into `dir`.
pub async fn download_meta(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    ulid: &str,
    dir: &Path,
) -> Result<()> {
    download(
        store,
        &under(prefix, &format!("{ulid}/meta.json")),
        &dir.join("meta.json"),
    )
    .await
    .map(|_| ())
}

/// Downloads the rest of block `ulid` (index, chunk segments, tombstones if any) into
/// `dir`; the bytes downloaded.
pub async fn download_block(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    ulid: &str,
    dir: &Path,
) -> Result<u64> {
    let mut bytes = download(
        store,
        &under(prefix, &format!("{ulid}/index")),
        &dir.join("index"),
    )
    .await?;
    let chunks: Vec<object_store::ObjectMeta> = store
        .list(Some(&under(prefix, &format!("{ulid}/chunks"))))
        .try_collect()
        .await
        .map_err(|e| err("listing chunks", e))?;
    tokio::fs::create_dir_all(dir.join("chunks"))
        .await
        .map_err(|e| err("creating chunks/", e))?;
    for c in chunks {
        let Some(name) = c.location.filename().map(str::to_string) else {
            continue;
        };
        bytes += download(store, &c.location, &dir.join("chunks").join(name)).await?;
    }
    let tomb = under(prefix, &format!("{ulid}/tombstones"));
    if store.head(&tomb).await.is_ok() {
        bytes += download(store, &tomb, &dir.join("tombstones")).await?;
    }
    Ok(bytes)
}

/// A source bucket from `s3://bucket[/prefix]`: credentials from `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` (the environment), path-style addressing; returns the store and
/// the prefix.
pub fn s3_source(
    url: &str,
    endpoint: Option<&str>,
    region: &str,
    allow_http: bool,
) -> Result<(Arc<dyn ObjectStore>, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::Block(format!("{url}: not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Block(format!("{url}: no bucket name")));
    }
    let mut b = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_allow_http(allow_http);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e);
    }
    let store = b.build().map_err(|e| err("opening", e))?;
    Ok((Arc::new(store), prefix.trim_matches('/').to_string()))
}
