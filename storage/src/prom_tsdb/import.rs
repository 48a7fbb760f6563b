//! Importing Prometheus blocks (a directory or a Thanos-style bucket) into a tenant's bucket:
//! each Prometheus block becomes Muninn blocks over its time range widened to the 2 h grid (one
//! per day of the grid when it spans more), series in row order with Thanos's external labels
//! added, every chunk decoded, samples inside tombstones dropped; they are uploaded and added
//! to the tenant's bucket index, naming the Prometheus block as their source. A marker
//! `<tenant>/markers/imported-<prometheus ulid>` records each imported block, so a run that
//! was interrupted, or is repeated, skips what is already in (also when the run stopped
//! between the index and the marker: the index names the source). The tenant's results-cache
//! generation is raised at the end, so the query frontend drops results cached before.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use muninn_proto::tenant::TenantId;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::index::Index;
use super::segments::Segments;
use super::tombstones::Tombstones;
use super::{PromMeta, read_meta};
use crate::block::meta::BlockMeta;
use crate::block::writer::{StreamWriter, row_order};
use crate::bucket::Bucket;
use crate::chunk::{ENC_FLOAT_HISTOGRAM, ENC_HISTOGRAM, ENC_XOR};
use crate::histogram::HistSample;
use crate::{Error, Result};

/// What one block's conversion did.
#[derive(Clone, Debug, Default)]
pub struct BlockReport {
    pub source: String,
    pub ulid: String,
    pub series: u64,
    pub samples: u64,
    pub histogram_samples: u64,
    /// Samples dropped because a tombstone covers them.
    pub deleted: u64,
    /// Samples outside the block's own time range, dropped.
    pub outside: u64,
    pub skipped: bool,
    pub cpu_seconds: f64,
}

/// The whole import.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub blocks: Vec<BlockReport>,
}

impl ImportReport {
    pub fn samples(&self) -> u64 {
        self.blocks.iter().map(|b| b.samples).sum()
    }
}

fn marker(tenant: &TenantId, prom_ulid: &str) -> ObjectPath {
    ObjectPath::from(format!("{}/markers/imported-{prom_ulid}", tenant.as_str()))
}

/// Where the Prometheus blocks are.
pub enum Source {
    /// A data directory, a block directory, or a bucket copied to disk.
    Dir(PathBuf),
    /// A Thanos-style bucket: blocks under `prefix`.
    Bucket {
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        prefix: String,
    },
}

/// The lock file an import holds (an exclusive `flock`) while it runs: `muninn-import-<pid>.lock`
/// in its temp dir. A lock that nobody holds marks a dead import, whatever PID namespace it
/// ran in (a bare PID check would take another container's running import for dead).
fn lock_path(tmp_dir: &Path, pid: u32) -> PathBuf {
    tmp_dir.join(format!("muninn-import-{pid}.lock"))
}

/// Takes this import's lock in `tmp_dir`, held until the returned guard is dropped (which
/// also removes the file). None where the temp dir or the filesystem does not allow it:
/// then nothing marks this import as running, and a concurrent import may take its files
/// for leftovers.
pub fn lock_tmp_dir(tmp_dir: &Path) -> Option<TmpDirLock> {
    let path = lock_path(tmp_dir, std::process::id());
    let file = std::fs::File::create(&path).ok()?;
    file.try_lock().ok()?;
    Some(TmpDirLock { path, _file: file })
}

/// A running import's lock on its temp-dir files.
pub struct TmpDirLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for TmpDirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the import of process `pid` is gone: its lock file is missing (every import takes
/// it before writing anything) or nobody holds it.
fn import_is_dead(tmp_dir: &Path, pid: u32) -> bool {
    match std::fs::File::open(lock_path(tmp_dir, pid)) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(f) => f.try_lock().is_ok(),
    }
}

/// Removes what imports that died (killed, crashed) left in `tmp_dir`: entries named
/// `muninn-import-…-<pid>`, and their `muninn-import-<pid>.lock`, whose import no longer
/// holds its lock. Returns what it removed.
pub fn remove_leftovers(tmp_dir: &Path) -> Vec<PathBuf> {
    let mut removed = vec![];
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return removed;
    };
    let mut dead_locks = vec![];
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("muninn-import-") else {
            continue;
        };
        let (pid, is_lock) = match rest.strip_suffix(".lock") {
            Some(pid) => (pid, true),
            None => (rest.rsplit('-').next().unwrap_or_default(), false),
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || !import_is_dead(tmp_dir, pid) {
            continue;
        }
        let path = e.path();
        if is_lock {
            // Last, so that the entries it guards are judged by it first.
            dead_locks.push(path);
            continue;
        }
        let r = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if r.is_ok() {
            removed.push(path);
        }
    }
    for path in dead_locks {
        let _ = std::fs::remove_file(&path);
    }
    removed
}

/// Imports every block of `source` for `tenant`, reporting progress lines through
/// `progress`. Temporary files (converted blocks, downloaded ones) go to `tmp_dir`.
pub async fn import(
    bucket: &Bucket,
    tenant: &TenantId,
    source: &Source,
    tmp_dir: &Path,
    mut progress: impl FnMut(String),
) -> Result<ImportReport> {
    let items: Vec<String> = match source {
        Source::Dir(dir) => super::find_blocks(dir)?
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        Source::Bucket { store, prefix } => super::remote::list_blocks(store, prefix).await?,
    };
    if items.is_empty() {
        return Err(Error::Block(
            "no Prometheus blocks found (directories with meta.json and index)".into(),
        ));
    }
    // The Prometheus blocks the tenant's blocks were made from (imported blocks name theirs
    // as their source; compaction keeps the lineage).
    let imported: std::collections::HashSet<String> = match bucket.index(tenant).await {
        Ok(ix) => ix
            .blocks
            .iter()
            .flat_map(|b| b.compaction.sources.iter().cloned())
            .collect(),
        Err(_) => Default::default(),
    };
    let _lock = lock_tmp_dir(tmp_dir);
    for gone in remove_leftovers(tmp_dir) {
        progress(format!(
            "removed {}, left by an import that did not finish",
            gone.display()
        ));
    }
    let mut report = ImportReport::default();
    let total = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let n = i + 1;
        // A downloaded block lives in a directory removed once it is imported.
        let (block, downloaded) = match source {
            Source::Dir(_) => (PathBuf::from(&item), None),
            Source::Bucket { store, prefix } => {
                let d = tmp_dir.join(format!("muninn-import-src-{item}-{}", std::process::id()));
                super::remote::download_meta(store, prefix, &item, &d).await?;
                (d.clone(), Some(d))
            }
        };
        let r = async {
            let meta = read_meta(&block)?;
            if meta.resolution() > 0 {
                progress(format!(
                    "[{n}/{total}] {}: a Thanos downsampled block (resolution {} ms), skipped: raw blocks hold every sample",
                    meta.ulid,
                    meta.resolution()
                ));
                return Ok(BlockReport {
                    source: meta.ulid,
                    skipped: true,
                    ..Default::default()
                });
            }
            // Already in: a marker, or (a run interrupted between the index and the marker)
            // a block of the index made from it.
            if imported.contains(&meta.ulid)
                || bucket
                    .store()
                    .head(&marker(tenant, &meta.ulid))
                    .await
                    .is_ok()
            {
                progress(format!(
                    "[{n}/{total}] {}: already imported, skipped",
                    meta.ulid
                ));
                return Ok(BlockReport {
                    source: meta.ulid,
                    skipped: true,
                    ..Default::default()
                });
            }
            if let (Source::Bucket { store, prefix }, Some(d)) = (source, &downloaded) {
                let bytes = super::remote::download_block(store, prefix, &item, d).await?;
                progress(format!("[{n}/{total}] {item}: downloaded {bytes} bytes"));
            }
            import_block(
                bucket,
                tenant,
                &block,
                meta,
                tmp_dir,
                n,
                total,
                &mut progress,
            )
            .await
        }
        .await;
        if let Some(d) = downloaded {
            let _ = std::fs::remove_dir_all(d);
        }
        report.blocks.push(r?);
    }
    if report.blocks.iter().any(|b| !b.skipped) {
        // Results the query frontend cached before the import miss these samples.
        bucket.bump_results_cache_generation(tenant).await?;
    }
    Ok(report)
}

/// Imports every block under `dir` (see [`super::find_blocks`]).
pub async fn import_dir(
    bucket: &Bucket,
    tenant: &TenantId,
    dir: &Path,
    tmp_dir: &Path,
    progress: impl FnMut(String),
) -> Result<ImportReport> {
    import(
        bucket,
        tenant,
        &Source::Dir(dir.to_path_buf()),
        tmp_dir,
        progress,
    )
    .await
}

/// Converts, uploads and indexes one block, then writes its import marker.
#[allow(clippy::too_many_arguments)]
async fn import_block(
    bucket: &Bucket,
    tenant: &TenantId,
    block: &Path,
    meta: PromMeta,
    tmp_dir: &Path,
    n: usize,
    total: usize,
    progress: &mut impl FnMut(String),
) -> Result<BlockReport> {
    let tmp = tmp_dir.join(format!(
        "muninn-import-{}-{}",
        meta.ulid,
        std::process::id()
    ));
    let started = Instant::now();
    let (b, t, m) = (block.to_path_buf(), tmp.clone(), meta.clone());
    let converted = tokio::task::spawn_blocking(move || convert(&b, &m, &t))
        .await
        .map_err(|e| Error::Block(format!("conversion task: {e}")))?;
    let (blocks, mut r) = converted?;
    r.cpu_seconds = started.elapsed().as_secs_f64();
    let uploaded = async {
        for c in &blocks {
            bucket.upload_block_file(tenant, &c.file, &c.meta).await?;
            bucket.add_to_index(tenant, &c.meta).await?;
        }
        bucket
            .store()
            .put(
                &marker(tenant, &meta.ulid),
                PutPayload::from(r.ulid.clone().into_bytes()),
            )
            .await
            .map_err(|e| Error::Block(format!("writing the import marker: {e}")))?;
        Ok::<(), Error>(())
    }
    .await;
    for c in &blocks {
        let _ = std::fs::remove_file(&c.file);
    }
    uploaded?;
    let outside = if r.outside > 0 {
        format!(", {} outside the block's range dropped", r.outside)
    } else {
        String::new()
    };
    progress(format!(
        "[{n}/{total}] {} → {}: {} series, {} samples ({} histogram, {} deleted by tombstones{outside}) in {:.2} s, {:.0} samples/s",
        meta.ulid,
        r.ulid,
        r.series,
        r.samples,
        r.histogram_samples,
        r.deleted,
        r.cpu_seconds,
        r.samples as f64 / r.cpu_seconds.max(1e-9),
    ));
    Ok(r)
}

/// The grid Muninn's own blocks are cut on (the ingesters' default `--ingester.block-range`).
pub const BLOCK_GRID_MS: i64 = 2 * 3600 * 1000;

/// A Prometheus block's range widened to the 2 h grid: Prometheus writes `maxTime` as the
/// last sample + 1 ms, so its blocks are not contiguous; on the grid, imported blocks compact
/// like the ingesters' (the compactor merges blocks that exactly fill a larger range).
pub fn aligned_range(min_t: i64, max_t: i64) -> (i64, i64) {
    let lo = min_t.div_euclid(BLOCK_GRID_MS) * BLOCK_GRID_MS;
    let hi = max_t
        .checked_add(BLOCK_GRID_MS - 1)
        .map_or(max_t, |m| m.div_euclid(BLOCK_GRID_MS) * BLOCK_GRID_MS);
    (lo, hi.max(lo + BLOCK_GRID_MS))
}

/// The widest Muninn block an import writes (the compactor's largest default range): a
/// Prometheus or Thanos block crossing a day of the grid (18 h, 2 d, 14 d...) becomes one
/// block per day, so every imported block fits the compactor's windows.
pub const MAX_BLOCK_MS: i64 = 24 * 3600 * 1000;

/// The Muninn block windows of a block's (widened) range: `[lo, hi)` cut at each day of the
/// grid.
pub fn windows(min_t: i64, max_t: i64) -> Vec<(i64, i64)> {
    let (lo, hi) = aligned_range(min_t, max_t);
    let mut out = vec![];
    let mut start = lo;
    while start < hi {
        let day_end = (start.div_euclid(MAX_BLOCK_MS) + 1) * MAX_BLOCK_MS;
        let end = day_end.min(hi);
        out.push((start, end));
        start = end;
    }
    out
}

/// One converted Muninn block: its meta and the file holding its data.
pub struct Converted {
    pub meta: BlockMeta,
    pub file: PathBuf,
}

/// Converts one block into Muninn block files named after `out` (one per window).
pub fn convert(block: &Path, meta: &PromMeta, out: &Path) -> Result<(Vec<Converted>, BlockReport)> {
    // Without histograms first; a histogram chunk restarts the block with their columns.
    match convert_with(block, meta, out, false)? {
        Some(done) => Ok(done),
        None => convert_with(block, meta, out, true)?
            .ok_or_else(|| Error::Block("histogram columns requested twice".into())),
    }
}

fn convert_with(
    block: &Path,
    meta: &PromMeta,
    out: &Path,
    histograms: bool,
) -> Result<Option<(Vec<Converted>, BlockReport)>> {
    let index = Index::open(&block.join("index"))?;
    let segments = Segments::open(&block.join("chunks"))?;
    let tombstones = Tombstones::read(&block.join("tombstones"))?;
    let mut series = index.series()?;
    // Thanos's external labels (a block's `thanos.labels`) belong to every series.
    if !meta.external_labels().is_empty() {
        for s in &mut series {
            let mut pairs: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .filter(|(n, _)| !meta.external_labels().contains_key(n))
                .collect();
            pairs.extend(meta.external_labels().clone());
            s.labels = crate::labels::Labels::from_pairs(pairs);
        }
    }
    series.sort_by(|a, b| row_order(&a.labels, &b.labels));
    let names: BTreeSet<String> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
        .collect();
    let mut writers = vec![];
    for (k, (lo, hi)) in windows(meta.min_time, meta.max_time)
        .into_iter()
        .enumerate()
    {
        let path = out.with_extension(format!("{k}.parquet"));
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::Block(format!("creating {}: {e}", path.display())))?;
        let w = StreamWriter::with_histograms(file, names.clone(), lo, hi, histograms)?;
        writers.push((lo, hi, path, w, 0u64));
    }
    let mut report = BlockReport {
        source: meta.ulid.clone(),
        ..Default::default()
    };
    let (mut buf, mut floats, mut hists) =
        (Vec::new(), Vec::new(), Vec::<(i64, HistSample)>::new());
    for s in series {
        floats.clear();
        hists.clear();
        for c in &s.chunks {
            let encoding = segments.chunk(c.reference, &mut buf)?;
            match encoding {
                ENC_XOR => floats.extend(crate::chunk::xor::decode_all(&buf).map_err(|e| {
                    Error::Block(format!("{}: chunk of {}: {e}", block.display(), s.labels))
                })?),
                ENC_HISTOGRAM | ENC_FLOAT_HISTOGRAM => {
                    if !histograms {
                        return Ok(None);
                    }
                    hists.extend(
                        crate::chunk::histogram::decode_chunk(encoding, &buf).map_err(|e| {
                            Error::Block(format!("{}: chunk of {}: {e}", block.display(), s.labels))
                        })?,
                    )
                }
                other => {
                    return Err(Error::Block(format!(
                        "{}: chunk of {} has unknown encoding {other}",
                        block.display(),
                        s.labels
                    )));
                }
            }
        }
        let before = floats.len() + hists.len();
        if tombstones.0.contains_key(&s.reference) {
            floats.retain(|(t, _)| !tombstones.deleted(s.reference, *t));
            hists.retain(|(t, _)| !tombstones.deleted(s.reference, *t));
        }
        report.deleted += (before - floats.len() - hists.len()) as u64;
        floats.sort_by_key(|x| x.0);
        floats.dedup_by_key(|x| x.0);
        hists.sort_by_key(|x| x.0);
        hists.dedup_by_key(|x| x.0);
        // Samples outside the block's own range (a corrupt or hand-made block) are dropped,
        // and counted apart.
        let kept = floats.len() + hists.len();
        floats.retain(|(t, _)| *t >= meta.min_time && *t < meta.max_time);
        hists.retain(|(t, _)| *t >= meta.min_time && *t < meta.max_time);
        report.outside += (kept - floats.len() - hists.len()) as u64;
        if floats.is_empty() && hists.is_empty() {
            continue;
        }
        report.series += 1;
        report.samples += (floats.len() + hists.len()) as u64;
        report.histogram_samples += hists.len() as u64;
        for (lo, hi, _, w, n) in &mut writers {
            let f = window_of(&floats, *lo, *hi);
            let h = window_of(&hists, *lo, *hi);
            if f.is_empty() && h.is_empty() {
                continue;
            }
            *n += 1;
            w.push_with_histograms(s.labels.clone(), f, h)?;
        }
    }
    let mut converted = vec![];
    for (_, _, path, w, n) in writers {
        let mut m = w.finish(1, vec![meta.ulid.clone()])?;
        if n == 0 {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        m.stats.num_bytes = std::fs::metadata(&path).map_or(0, |x| x.len());
        converted.push(Converted {
            meta: m,
            file: path,
        });
    }
    report.ulid = converted
        .iter()
        .map(|c| c.meta.ulid.as_str())
        .collect::<Vec<_>>()
        .join(",");
    Ok(Some((converted, report)))
}

/// The part of time-sorted `v` inside `[lo, hi)`.
fn window_of<T>(v: &[(i64, T)], lo: i64, hi: i64) -> &[(i64, T)] {
    let a = v.partition_point(|(t, _)| *t < lo);
    let b = v.partition_point(|(t, _)| *t < hi);
    &v[a..b.max(a)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_widen_to_the_block_grid() {
        let h2 = BLOCK_GRID_MS;
        assert_eq!(aligned_range(10 * h2, 11 * h2 - 14_999), (10 * h2, 11 * h2));
        assert_eq!(aligned_range(10 * h2, 11 * h2), (10 * h2, 11 * h2));
        assert_eq!(aligned_range(10 * h2 + 5, 19 * h2 + 1), (10 * h2, 20 * h2));
        assert_eq!(aligned_range(-h2 + 1, 0), (-h2, 0));
    }

    #[test]
    fn large_blocks_split_on_the_day_grid() {
        let (h, d) = (3600 * 1000, MAX_BLOCK_MS);
        assert_eq!(
            windows(10 * d, 10 * d + 2 * h - 1),
            vec![(10 * d, 10 * d + 2 * h)]
        );
        assert_eq!(
            windows(10 * d + 18 * h, 11 * d + 12 * h + 1),
            vec![(10 * d + 18 * h, 11 * d), (11 * d, 11 * d + 14 * h)]
        );
        assert_eq!(windows(10 * d, 12 * d).len(), 2);
        assert_eq!(window_of(&[(1, ()), (5, ()), (9, ())], 2, 9).len(), 1);
    }
}
