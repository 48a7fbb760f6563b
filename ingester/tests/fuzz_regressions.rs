//! Inputs the `wal_replay` fuzz target (`fuzz/`) found crashing, kept as regression tests: the
//! segment replays (skipping what is corrupt) and the tenant takes writes afterwards.

#![allow(clippy::unwrap_used)]

use muninn_ingester::tenant_db::TenantDb;
use muninn_ingester::wal::FsyncPolicy;

/// The fuzz target's framing: `[u16 LE length][payload]` chunks, each framed with a valid
/// checksum as the WAL frames records.
fn framed(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let payload = &rest[2..2 + n];
        muninn_ingester::wal::encode_frame(payload, &mut out);
        rest = &rest[2 + n..];
    }
    out
}

#[test]
fn a_series_record_without_labels_does_not_corrupt_the_head() {
    // A checksummed series record with an empty label set, then one reusing its id: the
    // empty set looked like a collected slot and replay underflowed the dead-slot count.
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz-inputs/wal-replay-1"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000"), framed(&input[1..])).unwrap();
    let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, i64::MAX).unwrap();
    let head = db.head.read();
    assert!(head.live_series() <= head.num_series());
}
