//! Blocks of every format version this build has written stay readable. A small block written
//! by format version 2 (XOR chunk cells, native-histogram cells) is kept in
//! `tests/fixtures/block-v2/`; it is read back here sample for sample against the generator
//! that made it, and the same data written in today's format reads back identically.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use muninn_storage::block::{BlockMeta, FORMAT_VERSION, reader, writer};
use muninn_storage::chunk::histogram::decode_chunk;
use muninn_storage::histogram::{FloatHistogram, HistSample, Histogram, Span};
use muninn_storage::labels::Labels;
use muninn_storage::matcher::{MatchOp, Matcher};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

const MIN_T: i64 = 1_795_550_400_000;
const MAX_T: i64 = MIN_T + 7_200_000;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The fixture's series: the value shapes a scrape produces (integer and decimal counters
/// with a reset, gauges of arbitrary floats, constants, special values, a staleness marker,
/// jittered and irregular timestamps) and one native-histogram series. Only exact IEEE
/// arithmetic, so every machine generates the same bits.
fn fixture_series() -> Vec<writer::SeriesWithHistograms> {
    let l = |name: &str, inst: &str| {
        Labels::from_pairs([
            ("__name__", name.to_string()),
            ("instance", inst.to_string()),
            ("job", "fixture".to_string()),
        ])
    };
    let every = |step: i64, n: i64, f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..n).map(|k| (MIN_T + 1_234 + k * step, f(k))).collect()
    };
    let mut out: Vec<writer::SeriesWithHistograms> = vec![
        (
            l("int_counter_total", "a"),
            every(15_000, 480, &|k| (k * k / 3 + 7 * k) as f64),
            vec![],
        ),
        (
            l("decimal_counter_seconds_total", "a"),
            every(15_000, 480, &|k| {
                let k = if k > 300 { k - 300 } else { k };
                (k * 37) as f64 / 100.0
            }),
            vec![],
        ),
        (
            l("gauge_ratio", "a"),
            every(15_000, 480, &|k| (k as f64 / 7.0) * 1.1 - 3.0),
            vec![],
        ),
        (l("constant", "a"), every(15_000, 480, &|_| 1.0), vec![]),
        (
            l("special_values", "a"),
            every(60_000, 120, &|k| match k % 6 {
                0 => f64::INFINITY,
                1 => f64::NEG_INFINITY,
                2 => -0.0,
                3 => f64::MAX,
                4 => 1e-300,
                _ => -(k as f64) * 1e15,
            }),
            vec![],
        ),
    ];
    // Jittered scrapes (±3 ms), then a staleness marker and a gap.
    let mut jitter: Vec<(i64, f64)> = (0..200)
        .map(|k| (MIN_T + k * 5_000 + (k * 5 % 7) - 3, (k % 13) as f64 * 0.25))
        .collect();
    let last = jitter.last().unwrap().0;
    jitter.push((last + 5_000, f64::from_bits(STALE_NAN)));
    jitter.extend((0..50).map(|k| (last + 3_600_000 + k * 5_000, k as f64)));
    out.push((l("jittered_gauge", "b"), jitter, vec![]));
    // Irregular timestamps.
    let irregular: Vec<(i64, f64)> = (0..300)
        .map(|k| (MIN_T + k * k * 70 + k, (k * 3) as f64 / 8.0))
        .collect();
    out.push((l("irregular", "b"), irregular, vec![]));
    for i in 0..8 {
        out.push((
            l("many_instances", &format!("i{i}")),
            every(30_000, 240, &|k| (k * (i + 1)) as f64),
            vec![],
        ));
    }
    let h = |c: u64| {
        HistSample::Int(Histogram {
            count: c,
            sum: c as f64 * 0.5,
            zero_threshold: 0.001,
            schema: 0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![c as i64, 0],
            ..Default::default()
        })
    };
    out.push((
        l("native_histogram", "c"),
        vec![],
        (0..150)
            .map(|k| (MIN_T + k * 15_000, h(k as u64 * 2 + 1)))
            .collect(),
    ));
    out
}

/// Float samples as (time, bits), histograms as their float view: what a query computes with.
type Read = (Labels, Vec<(i64, u64)>, Vec<(i64, FloatHistogram)>);

/// Every series of the block matching `matchers`, decoded to `[mint, maxt]` the way the
/// querier decodes them; series left without samples in the range are dropped.
async fn read(
    store: Arc<dyn ObjectStore>,
    path: Path,
    meta: &BlockMeta,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Vec<Read> {
    let mut out = vec![];
    for s in reader::select(store, path, meta, matchers, mint, maxt)
        .await
        .unwrap()
    {
        let mut floats = vec![];
        for c in &s.chunks {
            c.decode_range(mint, maxt, &mut floats).unwrap();
        }
        let mut hists = vec![];
        for (enc, c) in &s.hist_chunks {
            hists.extend(
                decode_chunk(*enc, c)
                    .unwrap()
                    .into_iter()
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .map(|(t, h)| (t, h.to_float())),
            );
        }
        if floats.is_empty() && hists.is_empty() {
            continue;
        }
        let floats = floats.into_iter().map(|(t, v)| (t, v.to_bits())).collect();
        out.push((s.labels, floats, hists));
    }
    out
}

/// The version-2 fixture: its store and meta.
fn fixture() -> (Arc<dyn ObjectStore>, Path, BlockMeta) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let meta: BlockMeta =
        serde_json::from_slice(&std::fs::read(dir.join("block-v2/meta.json")).unwrap()).unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    (store, Path::from("block-v2/block.parquet"), meta)
}

fn all() -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]
}

#[tokio::test]
async fn a_version_2_block_reads_back_every_sample_it_was_written_with() {
    let (store, path, meta) = fixture();
    assert_eq!(meta.version, 2);
    let got = read(store, path, &meta, &all(), MIN_T, MAX_T).await;
    let mut want = fixture_series();
    // The writer keeps what lies in the block: `[MIN_T, MAX_T)`.
    for (_, f, h) in &mut want {
        f.retain(|(t, _)| (MIN_T..MAX_T).contains(t));
        h.retain(|(t, _)| (MIN_T..MAX_T).contains(t));
    }
    want.sort_by(|a, b| writer::row_order(&a.0, &b.0));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        let floats: Vec<(i64, u64)> = w.1.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(g.1, floats, "{}", g.0);
        // The counter-reset hint is what the chunk says on reading back, not an input.
        let hists: Vec<(i64, FloatHistogram)> =
            w.2.iter()
                .zip(&g.2)
                .map(|((t, h), (_, read))| {
                    let mut h = h.to_float();
                    h.hint = read.hint;
                    (*t, h)
                })
                .collect();
        assert_eq!(g.2, hists, "{}", g.0);
    }
    // The staleness marker kept its exact bits.
    assert!(got.iter().any(|s| s.1.iter().any(|(_, b)| *b == STALE_NAN)));
}

#[tokio::test]
async fn the_current_format_answers_exactly_as_version_2_on_the_same_data() {
    let (old_store, old_path, old_meta) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (bytes, meta) =
        writer::build_with_histograms(fixture_series(), MIN_T, MAX_T, 1, vec![]).unwrap();
    assert_eq!(meta.version, FORMAT_VERSION);
    assert_eq!(meta.stats.num_samples, old_meta.stats.num_samples);
    assert_eq!(
        meta.stats.num_histogram_samples,
        old_meta.stats.num_histogram_samples
    );
    std::fs::write(dir.path().join("block.parquet"), &bytes).unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let path = Path::from("block.parquet");
    let some = vec![
        Matcher::new(MatchOp::Equal, "__name__", "many_instances").unwrap(),
        Matcher::new(MatchOp::Regex, "instance", "i[2-5]").unwrap(),
    ];
    let ranges = [
        (MIN_T, MAX_T),
        (i64::MIN, i64::MAX),
        (MIN_T + 1_000_000, MIN_T + 2_500_000),
        // Inside one slice, across a slice boundary, one instant, and between samples.
        (MIN_T + 1_800_000 - 60_000, MIN_T + 1_800_000 + 60_000),
        (MIN_T + 1_801_234, MIN_T + 1_801_234),
        (MIN_T + 1_801_235, MIN_T + 1_816_233),
        (MAX_T, MAX_T + 1_000_000),
    ];
    let mut compared = 0;
    for matchers in [all(), some] {
        for (mint, maxt) in ranges {
            let old = read(
                old_store.clone(),
                old_path.clone(),
                &old_meta,
                &matchers,
                mint,
                maxt,
            )
            .await;
            let new = read(store.clone(), path.clone(), &meta, &matchers, mint, maxt).await;
            assert_eq!(new, old, "[{mint}, {maxt}] {matchers:?}");
            compared += new.iter().map(|s| s.1.len() + s.2.len()).sum::<usize>();
        }
    }
    assert!(compared > 2 * 4_660, "{compared} samples compared");
    eprintln!(
        "fixture: {} bytes in format version 2, {} in version {FORMAT_VERSION}",
        std::fs::metadata(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/block-v2/block.parquet")
        )
        .unwrap()
        .len(),
        bytes.len()
    );
}
