//! The compactor reads blocks of older format versions: the version-2 fixture block
//! (`storage/tests/fixtures/block-v2`, XOR cells and histogram cells) compacted together with a
//! replica of its data written in today's format gives one block of today's version holding
//! exactly the fixture's samples and histograms, each once.

#![allow(clippy::unwrap_used)]

use muninn_compactor::executor;
use muninn_compactor::planner::Job;
use muninn_proto::tenant::TenantId;
use muninn_storage::block::{BlockMeta, DATA_FILE, FORMAT_VERSION, reader, writer};
use muninn_storage::bucket::Bucket;
use muninn_storage::chunk::histogram::decode_chunk;
use muninn_storage::histogram::HistSample;
use muninn_storage::matcher::{MatchOp, Matcher};

type Series = (
    muninn_storage::labels::Labels,
    Vec<(i64, u64)>,
    Vec<(i64, HistSample)>,
);

/// Every series of a block in the bucket, decoded: floats as bits, histograms as stored.
async fn read_block(bucket: &Bucket, tenant: &TenantId, meta: &BlockMeta) -> Vec<Series> {
    let all = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let path = Bucket::block_file(tenant, &meta.ulid, DATA_FILE);
    let mut out = vec![];
    for s in reader::select(bucket.store(), path, meta, &[all], i64::MIN, i64::MAX)
        .await
        .unwrap()
    {
        let mut floats = vec![];
        for c in &s.chunks {
            floats.extend(
                c.samples()
                    .unwrap()
                    .into_iter()
                    .map(|(t, v)| (t, v.to_bits())),
            );
        }
        let mut hists = vec![];
        for (enc, c) in &s.hist_chunks {
            hists.extend(decode_chunk(*enc, c).unwrap());
        }
        out.push((s.labels, floats, hists));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_2_block_compacts_with_a_current_one_into_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::filesystem(dir.path()).unwrap();
    let tenant = TenantId::new("t1").unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../storage/tests/fixtures/block-v2");
    let old_meta: BlockMeta =
        serde_json::from_slice(&std::fs::read(fixture.join("meta.json")).unwrap()).unwrap();
    assert_eq!(old_meta.version, 2);
    bucket
        .upload_block(
            &tenant,
            std::fs::read(fixture.join("block.parquet")).unwrap(),
            &old_meta,
        )
        .await
        .unwrap();
    let want = read_block(&bucket, &tenant, &old_meta).await;
    assert!(
        want.iter().any(|s| !s.2.is_empty()),
        "the fixture has histograms"
    );

    // A replica of the same data in today's format (as a second ingester would cut it).
    let replica: Vec<writer::SeriesWithHistograms> = want
        .iter()
        .map(|(l, f, h)| {
            let f = f.iter().map(|(t, b)| (*t, f64::from_bits(*b))).collect();
            (l.clone(), f, h.clone())
        })
        .collect();
    let (bytes, new_meta) =
        writer::build_with_histograms(replica, old_meta.min_time, old_meta.max_time, 1, vec![])
            .unwrap();
    assert_eq!(new_meta.version, FORMAT_VERSION);
    bucket
        .upload_block(&tenant, bytes, &new_meta)
        .await
        .unwrap();

    // The old block alone (its cells are all XOR chunks), then with the replica.
    for sources in [
        vec![old_meta.clone()],
        vec![old_meta.clone(), new_meta.clone()],
    ] {
        let job = Job {
            min_time: old_meta.min_time,
            max_time: old_meta.max_time,
            level: 2,
            vertical: sources.len() > 1,
            sources,
        };
        let out = executor::run(&bucket, &tenant, &job).await.unwrap();
        assert_eq!(out.new_block.version, FORMAT_VERSION);
        assert_eq!(out.new_block.stats.num_samples, old_meta.stats.num_samples);
        assert_eq!(
            out.new_block.stats.num_histogram_samples,
            old_meta.stats.num_histogram_samples
        );
        let got = read_block(&bucket, &tenant, &out.new_block).await;
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1, w.1, "{}", g.0);
            assert_eq!(g.2, w.2, "{}", g.0);
        }
    }
}
