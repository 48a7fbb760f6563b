//! Blocks end to end on the local-filesystem bucket: build, upload (meta.json last), index,
//! and select with matchers and time ranges, reading back exactly the samples written.

#![allow(clippy::unwrap_used)]

use muninn_proto::tenant::TenantId;
use muninn_storage::block::{reader, writer};
use muninn_storage::bucket::Bucket;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::{MatchOp, Matcher};

fn data() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut out = vec![];
    for m in ["b_metric", "a_metric", "c_metric"] {
        for i in 0..3000 {
            let labels = Labels::from_pairs([
                ("__name__", m.to_string()),
                ("inst", format!("i{i}")),
                ("job", "x".to_string()),
            ]);
            let samples = (0..480)
                .map(|k| (k * 15_000 + 371, (k * i) as f64))
                .collect();
            out.push((labels, samples));
        }
    }
    out
}

/// A filesystem bucket in `dir` with its requests counted.
fn metered_bucket(dir: &std::path::Path) -> (Bucket, muninn_storage::metered::StoreMetrics) {
    let metrics = muninn_storage::metered::StoreMetrics::default();
    let bucket = Bucket::filesystem(dir).unwrap().metered(metrics.clone());
    (bucket, metrics)
}

#[tokio::test]
async fn a_one_metric_query_reads_a_fraction_of_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let (bucket, metrics) = metered_bucket(dir.path());
    let tenant = TenantId::new("t1").unwrap();
    let mut series = vec![];
    for m in 0..10 {
        for i in 0..2000 {
            let labels = Labels::from_pairs([
                ("__name__", format!("metric_{m}")),
                ("inst", format!("i{i}")),
            ]);
            series.push((
                labels,
                (0..240)
                    .map(|k| (k * 30_000, (k * i % 97) as f64))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    let (bytes, meta) = writer::build(series, 0, 7_200_000, 1, vec![]).unwrap();
    let size = bytes.len() as u64;
    bucket.upload_block(&tenant, bytes, &meta).await.unwrap();
    let (_, before) = metrics.get("get_range");
    let path = Bucket::block_file(&tenant, &meta.ulid, "block.parquet");
    let m = Matcher::new(MatchOp::Equal, "__name__", "metric_3").unwrap();
    let got = reader::select(bucket.store(), path, &meta, &[m], 0, 7_200_000)
        .await
        .unwrap();
    assert_eq!(got.len(), 2000);
    let (reqs, after) = metrics.get("get_range");
    let read = after - before;
    eprintln!("one metric of ten: {read} of {size} bytes in {reqs} range requests");
    assert!(read * 4 < size, "read {read} of {size} bytes");
    assert!(read > 0);
}

#[tokio::test]
async fn pages_of_other_metrics_inside_a_row_group_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let (bucket, metrics) = metered_bucket(dir.path());
    let tenant = TenantId::new("t1").unwrap();
    // 40 metrics of 500 series: a metric is about one 512-row page of a 4096-row group.
    let mut series = vec![];
    for m in 0..40 {
        for i in 0..500 {
            let labels = Labels::from_pairs([
                ("__name__", format!("metric_{m:02}")),
                ("inst", format!("i{i}")),
            ]);
            // Thirds are no short decimals: data pages stay the bulk of the file, as in real
            // blocks, rather than the footer and page index.
            let samples: Vec<(i64, f64)> = (0..240)
                .map(|k| (k * 30_000, ((k * i + m) % 97) as f64 / 3.0))
                .collect();
            series.push((labels, samples));
        }
    }
    let want: Vec<_> = series
        .iter()
        .filter(|(l, _)| l.get("__name__") == Some("metric_13"))
        .cloned()
        .collect();
    let (bytes, meta) = writer::build(series, 0, 7_200_000, 1, vec![]).unwrap();
    let size = bytes.len() as u64;
    bucket.upload_block(&tenant, bytes, &meta).await.unwrap();
    let path = Bucket::block_file(&tenant, &meta.ulid, "block.parquet");
    let (_, before) = metrics.get("get_range");
    let m = Matcher::new(MatchOp::Equal, "__name__", "metric_13").unwrap();
    let got = reader::select(bucket.store(), path.clone(), &meta, &[m], 0, 7_200_000)
        .await
        .unwrap();
    let (reqs, after) = metrics.get("get_range");
    let read = after - before;
    eprintln!("one metric of forty: {read} of {size} bytes in {reqs} range requests");
    assert_eq!(got.len(), 500);
    let mut got_sorted: Vec<_> = got
        .iter()
        .map(|s| {
            let samples: Vec<(i64, f64)> =
                s.chunks.iter().flat_map(|c| c.samples().unwrap()).collect();
            (s.labels.clone(), samples)
        })
        .collect();
    got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want_sorted = want.clone();
    want_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got_sorted, want_sorted,
        "exactly the metric's series and samples"
    );
    // A row group holds about eight metrics: without page pruning a query reads an eighth of
    // the data at least; with it, the metric's own pages (and the page index).
    assert!(read * 16 < size, "read {read} of {size} bytes");

    // Two equalities, the second on an unsorted label: pages of both are intersected.
    let ms = [
        Matcher::new(MatchOp::Equal, "__name__", "metric_21").unwrap(),
        Matcher::new(MatchOp::Equal, "inst", "i7").unwrap(),
    ];
    let one = reader::select(bucket.store(), path.clone(), &meta, &ms, 0, 7_200_000)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].labels.get("inst"), Some("i7"));
    assert_eq!(one[0].labels.get("__name__"), Some("metric_21"));
    // A value no page holds selects nothing; a regex still reads what it must.
    let none = Matcher::new(MatchOp::Equal, "__name__", "metric_13x").unwrap();
    assert!(
        reader::select(bucket.store(), path.clone(), &meta, &[none], 0, 7_200_000)
            .await
            .unwrap()
            .is_empty()
    );
    let re = Matcher::new(MatchOp::Regex, "__name__", "metric_(05|31)").unwrap();
    let two = reader::select(bucket.store(), path, &meta, &[re], 0, 7_200_000)
        .await
        .unwrap();
    assert_eq!(two.len(), 1000);
}

#[tokio::test]
async fn build_upload_select() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::filesystem(dir.path()).unwrap();
    let tenant = TenantId::new("t1").unwrap();
    let (bytes, meta) = writer::build(data(), 0, 7_200_000, 1, vec![]).unwrap();
    assert_eq!(meta.stats.num_series, 9000);
    assert_eq!(meta.stats.num_samples, 9000 * 480);
    bucket.upload_block(&tenant, bytes, &meta).await.unwrap();
    let index = bucket.write_index(&tenant).await.unwrap();
    assert_eq!(index.blocks, vec![meta.clone()]);
    assert!(
        dir.path()
            .join("t1")
            .join(&meta.ulid)
            .join("meta.json")
            .exists()
    );
    assert!(dir.path().join("t1/bucket-index.json").exists());
    assert!(
        bucket
            .blocks(&TenantId::new("t2").unwrap())
            .await
            .unwrap()
            .is_empty(),
        "tenants are separate"
    );

    let path = Bucket::block_file(&tenant, &meta.ulid, "block.parquet");
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let got = reader::select(
        bucket.store(),
        path.clone(),
        &meta,
        &[
            m(MatchOp::Equal, "__name__", "b_metric"),
            m(MatchOp::Regex, "inst", "i1|i2999"),
        ],
        0,
        7_200_000,
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].labels.to_string(),
        r#"{__name__="b_metric", inst="i1", job="x"}"#
    );
    let samples: Vec<(i64, f64)> = got[0]
        .chunks
        .iter()
        .flat_map(|c| c.samples().unwrap())
        .collect();
    assert_eq!(samples.len(), 480);
    assert_eq!(samples[10], (10 * 15_000 + 371, 10.0));

    // A narrow time range reads only the overlapping slice's chunks.
    let got = reader::select(
        bucket.store(),
        path.clone(),
        &meta,
        &[m(MatchOp::Equal, "__name__", "c_metric")],
        0,
        60_000,
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 3000);
    let n: usize = got[5]
        .chunks
        .iter()
        .map(|c| c.samples().unwrap().len())
        .sum();
    assert!(
        n <= 120,
        "one chunk of the first slice, not the whole series: {n}"
    );

    // No series for a label the block lacks, or outside its time range.
    let none = reader::select(
        bucket.store(),
        path.clone(),
        &meta,
        &[m(MatchOp::Equal, "nope", "x")],
        0,
        7_200_000,
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    let none = reader::select(
        bucket.store(),
        path,
        &meta,
        &[m(MatchOp::Equal, "__name__", "a_metric")],
        8_000_000,
        9_000_000,
    )
    .await
    .unwrap();
    assert!(none.is_empty());
}
