//! The block reader: the input is a tenant's `block.parquet` in an in-memory bucket, read the
//! way queriers (`select`, with a matcher and a time range) and the compactor (`stream_rows`)
//! read blocks. A corrupt block must give an error, never a panic. The same bytes are also
//! decoded as one data cell and as one packed run (format version 3).
#![no_main]

use std::sync::Arc;

use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use muninn_storage::block::{BlockMeta, reader};
use muninn_storage::matcher::{MatchOp, Matcher};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

fuzz_target!(|data: &[u8]| {
    if let Ok(muninn_storage::block::cell::DataCell::Packed(runs)) =
        muninn_storage::block::cell::decode(data)
    {
        for r in runs {
            let _ = muninn_storage::chunk::packed::decode_range(r.run, 0, i64::MAX, &mut Vec::new());
        }
    }
    let _ = muninn_storage::chunk::packed::decode_range(data, i64::MIN, i64::MAX, &mut Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("t/01ARZ3NDEKTSV4RRFFQ69G5FAV/block.parquet");
        store
            .put(&path, bytes::Bytes::copy_from_slice(data).into())
            .await
            .expect("put");
        let meta: BlockMeta = serde_json::from_str(
            r#"{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","minTime":0,"maxTime":7200000,
                "stats":{"numSeries":1,"numSamples":1,"numChunks":1},
                "compaction":{"level":1,"sources":["01ARZ3NDEKTSV4RRFFQ69G5FAV"]},
                "version":1,"sliceMs":1800000}"#,
        )
        .expect("meta");
        let m = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
        // The reader's own boundary contains panics of the Parquet/Arrow readers.
        let selected = muninn_fuzz::contained(|| {
            futures::executor::block_on(reader::select(
                store.clone(),
                path.clone(),
                &meta,
                &[m],
                0,
                7_200_000,
            ))
        });
        if let Ok(series) = selected {
            for s in series {
                for c in s.chunks {
                    let _ = c.samples();
                }
            }
        }
        muninn_fuzz::contained(|| {
            futures::executor::block_on(async {
                if let Ok((_, mut rows)) = reader::stream_rows(store, path).await {
                    while let Some(batch) = rows.next().await {
                        if batch.is_err() {
                            break;
                        }
                    }
                }
            })
        });
    });
});
