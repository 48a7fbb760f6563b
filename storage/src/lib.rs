//! Storage formats shared by the roles, with no role logic and no I/O.
//!
//! - [`chunk`]: Prometheus's XOR (Gorilla) chunk codec, byte-compatible with the chunks in
//!   Prometheus TSDB blocks, so Muninn's data can be checked against Prometheus itself.
//! - [`histogram`]: native histograms (model, validation, arithmetic), as Prometheus defines them.
//! - [`labels`]: label sets as the query side sees them (sorted by name).
//! - [`matcher`]: label matchers with Prometheus's semantics (anchored RE2-style regexes).
//! - [`block`]: the Parquet block format; [`bucket`]: per-tenant object-storage layout.

pub mod block;
pub mod block_cache;
pub mod bucket;
pub mod chunk;
pub mod histogram;
pub mod index_cache;
pub mod labels;
pub mod local_store;
pub mod matcher;
pub mod metered;
pub mod prom_tsdb;
pub mod shard;

/// Errors of the storage formats.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("corrupt chunk: {0}")]
    CorruptChunk(&'static str),
    #[error("block: {0}")]
    Block(String),
    #[error("object store {op} {path}: {source}")]
    ObjectStore {
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{0}")]
    BadShard(String),
    #[error("invalid regex {pattern:?}: {source}")]
    BadRegex {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The bit pattern Prometheus writes as a staleness marker (`value.StaleNaN`). Only this exact
/// NaN marks a series stale; other NaNs are ordinary values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker.
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
