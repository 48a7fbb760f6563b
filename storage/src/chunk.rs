//! Chunk codecs: pure functions over byte slices.
//!
//! Only Prometheus's XOR encoding exists so far ([`xor`]); new encodings get new numbers.

mod bstream;
pub mod xor;

pub use xor::{XorAppender, XorIter, decode_all};

/// Samples per chunk at which the head cuts a new chunk, as Prometheus does.
pub const SAMPLES_PER_CHUNK: u16 = 120;
