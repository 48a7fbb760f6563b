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

/// The block directories under `dir`: `dir` itself when it is a block, else its
/// subdirectories holding a `meta.json` and an `index` (a Prometheus data directory or a
/// Thanos-style bucket copied to disk), those marked for deletion skipped. Sorted by name
/// (ULIDs: by creation).
pub fn find_blocks(dir: &Path) -> Result<Vec<PathBuf>> {
    let is_block = |p: &Path| p.join("meta.json").is_file() && p.join("index").is_file();
    if is_block(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| corrupt(dir, e))?;
    let mut out = vec![];
    for e in entries {
        let p = e.map_err(|e| corrupt(dir, e))?.path();
        if !is_block(&p) {
            continue;
        }
        if p.join("deletion-mark.json").exists() {
            tracing::info!(block = %p.display(), "skipping a block marked for deletion");
            continue;
        }
        out.push(p);
    }
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
    Ok(meta)
}
