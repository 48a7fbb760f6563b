//! Prometheus TSDB blocks, read for import (`muninn import-blocks`): a block directory holds
//! `meta.json`, `index` (format v2), `chunks/NNNNNN` segment files and `tombstones`.
//!
//! - `index`: the symbol table and the series entries (labels and chunk metas), checked
//!   against their CRC32C;
//! - `segments`: chunk segment files, read chunk by chunk with positional reads;
//! - `tombstones`: deleted intervals per series;
//! - `import`: turns blocks into Muninn blocks in a tenant's bucket;
//! - `remote`: blocks in a Thanos-style bucket, downloaded one at a time.
//!
//! Formats: <https://github.com/prometheus/prometheus/tree/main/tsdb/docs/format>. Every
//! length and offset read from the files is checked: a corrupt block is an error naming the
//! file, never a panic.

pub mod import;
pub mod index;
pub mod remote;
pub mod segments;
pub mod tombstones;

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The parts of a Prometheus `meta.json` the import needs.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromMeta {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    #[serde(default)]
    pub stats: PromStats,
    /// Thanos's section: external labels and downsampling resolution.
    #[serde(default)]
    pub thanos: Option<ThanosMeta>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ThanosMeta {
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: ThanosDownsample,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ThanosDownsample {
    #[serde(default)]
    pub resolution: i64,
}

static NO_LABELS: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

impl PromMeta {
    /// Thanos's external labels (none for a Prometheus block).
    pub fn external_labels(&self) -> &std::collections::BTreeMap<String, String> {
        self.thanos.as_ref().map_or(&NO_LABELS, |t| &t.labels)
    }

    /// Thanos's downsampling resolution (ms; 0: raw).
    pub fn resolution(&self) -> i64 {
        self.thanos.as_ref().map_or(0, |t| t.downsample.resolution)
    }
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromStats {
    #[serde(default)]
    pub num_samples: u64,
    #[serde(default)]
    pub num_series: u64,
}

/// An error about `file` of a Prometheus block.
pub(crate) fn corrupt(file: &Path, what: impl std::fmt::Display) -> Error {
    Error::Block(format!("{}: {what}", file.display()))
}

/// Reads an unsigned varint at `*pos`, advancing it.
pub(crate) fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let (mut x, mut shift) = (0u64, 0u32);
    loop {
        let c = *b.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        x |= u64::from(c & 0x7f) << shift;
        if c < 0x80 {
            return Some(x);
        }
        shift += 7;
    }
}

/// Reads a zig-zag signed varint.
pub(crate) fn varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let u = uvarint(b, pos)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub(crate) fn crc32c(b: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, b) as u32
}

/// Whether `s` looks like a ULID (26 Crockford base-32 characters).
pub fn is_ulid(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(serde::Deserialize, Default)]
struct Parents {
    #[serde(default)]
    compaction: ParentsCompaction,
}

#[derive(serde::Deserialize, Default)]
struct ParentsCompaction {
    #[serde(default)]
    parents: Vec<Parent>,
}

#[derive(serde::Deserialize)]
struct Parent {
    ulid: String,
}

/// The block directories under `dir`: `dir` itself when it is a block, else its
/// ULID-named subdirectories holding a `meta.json` and an `index` (a Prometheus data directory
/// or a Thanos-style bucket copied to disk). Skipped: blocks marked for deletion,
/// Prometheus's `.tmp-for-deletion`/`.tmp-for-creation` directories (not ULIDs), and blocks
/// that another block present names as a compaction parent (left by an interrupted
/// compaction: their data is in the child). Sorted by name (ULIDs: by creation).
pub fn find_blocks(dir: &Path) -> Result<Vec<PathBuf>> {
    let is_block = |p: &Path| p.join("meta.json").is_file() && p.join("index").is_file();
    if is_block(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| corrupt(dir, e))?;
    let mut out = vec![];
    for e in entries {
        let p = e.map_err(|e| corrupt(dir, e))?.path();
        if !is_block(&p) || !p.file_name().and_then(|n| n.to_str()).is_some_and(is_ulid) {
            continue;
        }
        if p.join("deletion-mark.json").exists() {
            tracing::info!(block = %p.display(), "skipping a block marked for deletion");
            continue;
        }
        out.push(p);
    }
    let parents: std::collections::HashSet<String> = out
        .iter()
        .filter_map(|p| std::fs::read(p.join("meta.json")).ok())
        .filter_map(|b| serde_json::from_slice::<Parents>(&b).ok())
        .flat_map(|m| m.compaction.parents.into_iter().map(|p| p.ulid))
        .collect();
    out.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let keep = !parents.contains(name);
        if !keep {
            tracing::info!(block = %p.display(), "skipping a block another block was compacted from");
        }
        keep
    });
    out.sort();
    Ok(out)
}

/// Reads a block's `meta.json`.
pub fn read_meta(block: &Path) -> Result<PromMeta> {
    let path = block.join("meta.json");
    let bytes = std::fs::read(&path).map_err(|e| corrupt(&path, e))?;
    let meta: PromMeta = serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?;
    if meta.max_time <= meta.min_time {
        return Err(corrupt(&path, "maxTime is not after minTime"));
    }
    // Far past anyone's data; the bound keeps the range arithmetic exact.
    const LIMIT: i64 = 1 << 60;
    if meta.min_time.abs() >= LIMIT || meta.max_time.abs() >= LIMIT {
        return Err(corrupt(&path, "time range out of bounds"));
    }
    if !is_ulid(&meta.ulid) {
        return Err(corrupt(&path, format!("{:?} is not a ULID", meta.ulid)));
    }
    Ok(meta)
}
