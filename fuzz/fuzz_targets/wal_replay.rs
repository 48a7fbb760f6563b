//! WAL replay: the input becomes one WAL segment, either as raw bytes (torn and corrupt
//! frames) or, when its first byte is odd, as payloads framed with valid checksums (so record
//! decoding and the head's replay see arbitrary records); when its third bit is set, also as
//! a head chunk file. Replay must never fail or panic on
//! such a segment (out-of-order samples in it are inserted in order), and the tenant must take
//! a write afterwards and replay it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_ingester::tenant_db::{SeriesLimits, TenantDb, TimeBounds};
use muninn_ingester::validate::Limits;
use muninn_ingester::wal::FsyncPolicy;

fn framed(data: &[u8]) -> Vec<u8> {
    // [u16 LE length][payload] chunks, each framed as the WAL frames records.
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let payload = &rest[2..2 + n];
        muninn_ingester::wal::encode_frame(payload, &mut out);
        rest = &rest[2 + n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let segment = if mode & 1 == 1 {
        framed(rest)
    } else {
        rest.to_vec()
    };
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    std::fs::write(dir.path().join("00000000"), &segment).expect("write segment");
    if mode & 4 == 4 {
        // The same bytes as a head chunk file: its records are scanned and may be attached.
        let chunks = dir.path().join(muninn_ingester::tenant_db::CHUNKS_DIR);
        std::fs::create_dir(&chunks).expect("chunk dir");
        let mut file = b"MHC1\x01\0\0\0".to_vec();
        file.extend_from_slice(rest);
        std::fs::write(chunks.join("00000001"), &file).expect("write chunk file");
    }
    let (db, _) = TenantDb::open(dir.path(), FsyncPolicy::Never, 2_000_000_600_000).expect("replay of a bad segment");
    let req = muninn_proto::prometheus::WriteRequest {
        timeseries: vec![muninn_proto::prometheus::TimeSeries {
            labels: vec![muninn_proto::prometheus::Label {
                name: "__name__".into(),
                value: "after".into(),
            }],
            samples: vec![muninn_proto::prometheus::Sample {
                value: 1.0,
                timestamp: 2_000_000_000_000,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let body = prost::Message::encode_to_vec(&req);
    let view = muninn_proto::write_view::WriteRequestView::decode(&body).expect("valid request");
    let bounds = TimeBounds {
        now_ms: 2_000_000_000_000,
        grace_ms: 600_000,
        too_old_window_ms: i64::MAX,
        // Half the inputs push with an out-of-order window, so a late write lands among
        // whatever replay built.
        ooo_window_ms: if mode & 2 == 2 { i64::MAX } else { 0 },
    };
    db.push(&view, &Limits::default(), SeriesLimits::default(), &bounds)
        .expect("push after replay");
    drop(db);
    TenantDb::open(dir.path(), FsyncPolicy::Never, 2_000_000_600_000).expect("second replay");
});
