//! A block's `tombstones` file: magic 0x0130BA30, version 1, then `uvarint series ref |
//! varint min_t | varint max_t` per deleted interval (inclusive), then a CRC32C of the
//! entries.

use std::collections::HashMap;
use std::path::Path;

use super::{be_u32, corrupt, crc32c, uvarint, varint};
use crate::Result;

const MAGIC: u32 = 0x0130_BA30;

/// Deleted intervals by series reference.
#[derive(Default, Debug)]
pub struct Tombstones(pub HashMap<u64, Vec<(i64, i64)>>);

impl Tombstones {
    /// Reads `path`; a missing file means none.
    pub fn read(path: &Path) -> Result<Self> {
        let b = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(corrupt(path, e)),
        };
        if b.len() < 9 || be_u32(&b, 0) != Some(MAGIC) {
            return Err(corrupt(path, "not a tombstones file"));
        }
        if b[4] != 1 {
            return Err(corrupt(path, format!("tombstones version {}", b[4])));
        }
        let entries = &b[5..b.len() - 4];
        if be_u32(&b, b.len() - 4) != Some(crc32c(entries)) {
            return Err(corrupt(path, "checksum mismatch"));
        }
        let mut out: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();
        let mut pos = 0;
        while pos < entries.len() {
            let parsed = (|| {
                Some((
                    uvarint(entries, &mut pos)?,
                    varint(entries, &mut pos)?,
                    varint(entries, &mut pos)?,
                ))
            })();
            let (r, min_t, max_t) = parsed.ok_or_else(|| corrupt(path, "truncated entry"))?;
            out.entry(r).or_default().push((min_t, max_t));
        }
        Ok(Self(out))
    }

    /// Whether sample time `t` of series `r` is deleted.
    pub fn deleted(&self, r: u64, t: i64) -> bool {
        self.0
            .get(&r)
            .is_some_and(|iv| iv.iter().any(|(a, b)| *a <= t && t <= *b))
    }

    /// The file's bytes for `entries` (for tests and tools).
    pub fn encode(entries: &[(u64, i64, i64)]) -> Vec<u8> {
        let mut body = vec![];
        for &(r, a, b) in entries {
            put_uvarint(&mut body, r);
            put_uvarint(&mut body, ((a << 1) ^ (a >> 63)) as u64);
            put_uvarint(&mut body, ((b << 1) ^ (b >> 63)) as u64);
        }
        let mut out = MAGIC.to_be_bytes().to_vec();
        out.push(1);
        let crc = crc32c(&body);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
