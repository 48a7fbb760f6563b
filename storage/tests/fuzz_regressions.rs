//! Inputs the fuzz targets (`fuzz/`) found crashing, kept as regression tests: each must now
//! give an error, not a panic.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use futures::StreamExt;
use muninn_storage::block::{BlockMeta, reader};
use muninn_storage::matcher::{MatchOp, Matcher};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Reads `file` as a block both ways (as queriers and as the compactor do); returns whether
/// any read failed.
async fn read_block(file: &str) -> bool {
    let data = std::fs::read(format!(
        "{}/tests/fuzz-inputs/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("t/01ARZ3NDEKTSV4RRFFQ69G5FAV/block.parquet");
    store
        .put(&path, bytes::Bytes::from(data).into())
        .await
        .unwrap();
    let meta: BlockMeta = serde_json::from_str(
        r#"{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","minTime":0,"maxTime":9000000000000,
            "stats":{"numSeries":1,"numSamples":1,"numChunks":1},
            "compaction":{"level":1,"sources":["01ARZ3NDEKTSV4RRFFQ69G5FAV"]},
            "version":1,"sliceMs":1800000}"#,
    )
    .unwrap();
    let m = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let selected = reader::select(store.clone(), path.clone(), &meta, &[m], 0, i64::MAX).await;
    let mut failed = selected.is_err();
    match reader::stream_rows(store, path).await {
        Ok((_, mut rows)) => {
            while let Some(batch) = rows.next().await {
                failed |= batch.is_err();
            }
        }
        Err(_) => failed = true,
    }
    failed
}

#[tokio::test]
async fn a_block_that_makes_arrow_assert_is_an_error() {
    // A real block with four bytes of a page header changed: arrow-buffer's bit reader asserts.
    assert!(read_block("fuzz-block-reader-1.parquet").await);
}
