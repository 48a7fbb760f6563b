//! Blocks: immutable, per-tenant Parquet files of series and their XOR (and native-histogram)
//! chunks, plus
//! `meta.json` (see `docs/block-format.md`).
//!
//! [`writer`] turns decoded series into Parquet bytes (pure, no I/O); [`reader`] selects series
//! from a block in object storage, reading only the row groups and columns a query needs.

pub mod cell;
pub mod meta;
pub mod page_prune;
pub mod reader;
pub mod writer;

pub use meta::{BlockMeta, BlockStats, Compaction, FORMAT_VERSION};

/// Name of a block's Parquet file.
pub const DATA_FILE: &str = "block.parquet";

/// Column of a label: `s_lbl_<name>`.
pub fn label_column(name: &str) -> String {
    format!("s_lbl_{name}")
}

/// Column of time slice `n`: `s_data_<n>`.
pub fn data_column(n: usize) -> String {
    format!("s_data_{n}")
}

/// Native-histogram column of time slice `n` (format version 2): `s_hist_<n>`.
pub fn hist_column(n: usize) -> String {
    format!("s_hist_{n}")
}

/// Width of the time slices of a block spanning `range_ms` (4 slices, at least 1 ms).
pub fn slice_width(range_ms: i64) -> i64 {
    (range_ms / 4).max(1)
}
