//! `meta.json`: what a block holds. Written last, so a block without it does not exist.

use serde::{Deserialize, Serialize};

/// Version of the block format described in `docs/block-format.md`: 1 for blocks of float
/// samples only; 2 adds the `s_hist_<n>` native-histogram columns (only in blocks that hold
/// histograms); 3 stores data cells as packed runs, with or without
/// histogram columns. Every block written today is version 3; readers read all three and
/// refuse a newer version than they know.
pub const FORMAT_VERSION: u32 = 3;

/// Block statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
    /// Bytes of the block's data file (0 in blocks written before this field existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_bytes: u64,
    /// Native-histogram samples (also counted in `num_samples`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_histogram_samples: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Compaction lineage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<String>,
}

/// A block's `meta.json` (Thanos/Prometheus field names where they exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    /// Inclusive lower bound, ms.
    pub min_time: i64,
    /// Exclusive upper bound, ms.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    /// Block format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Width of each `s_data_<n>` time slice, ms.
    #[serde(default)]
    pub slice_ms: i64,
    /// The Parquet files of the block, relative to its directory.
    #[serde(default)]
    pub files: Vec<String>,
}
