//! Chunk codecs: pure functions over byte slices.
//!
//! Prometheus's XOR encoding ([`xor`], encoding 1) and its native-histogram encodings
//! ([`histogram`], encodings 2 and 3), byte-compatible with Prometheus's chunks.

mod bstream;
pub mod histogram;
mod varbit;
pub mod xor;

pub use xor::{XorAppender, XorIter, decode_all};

/// Prometheus's chunk encoding numbers.
pub const ENC_XOR: u8 = 1;
pub const ENC_HISTOGRAM: u8 = 2;
pub const ENC_FLOAT_HISTOGRAM: u8 = 3;

/// Samples per chunk at which the head cuts a new chunk, as Prometheus does.
pub const SAMPLES_PER_CHUNK: u16 = 120;
