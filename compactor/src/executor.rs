//! Running a compaction job: read the sources, merge each series (identical samples once;
//! for conflicting values at one timestamp the source with the smallest ULID wins, a
//! deterministic rule), write and upload the new block, list it, and only then mark the
//! sources for deletion.
//!
//! Memory: the job's series are merged in memory (one job at a time). Streaming the merge row
//! group by row group is the planned next step for blocks larger than RAM.

use std::collections::BTreeMap;

use muninn_proto::tenant::TenantId;
use muninn_storage::block::{BlockMeta, DATA_FILE, reader, writer};
use muninn_storage::bucket::Bucket;
use muninn_storage::chunk::XorIter;
use muninn_storage::labels::Labels;
use muninn_storage::matcher::{MatchOp, Matcher};

use crate::planner::Job;
use crate::{Error, Result};

fn serr(e: muninn_storage::Error) -> Error {
    Error::Storage(e.to_string())
}

/// What a job produced.
#[derive(Debug)]
pub struct Outcome {
    pub new_block: BlockMeta,
    pub source_samples: u64,
}

/// Runs `job` for `tenant`.
pub async fn run(bucket: &Bucket, tenant: &TenantId, job: &Job) -> Result<Outcome> {
    let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").map_err(serr)?];
    let mut sources = job.sources.clone();
    sources.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut source_samples = 0;
    for meta in &sources {
        let path = Bucket::block_file(tenant, &meta.ulid, DATA_FILE);
        let series = reader::select(
            bucket.store(),
            path,
            meta,
            &all,
            meta.min_time,
            meta.max_time - 1,
        )
        .await
        .map_err(serr)?;
        for s in series {
            let e = merged.entry(s.labels).or_default();
            for c in &s.chunks {
                let mut it = XorIter::new(c);
                let before = e.len();
                e.extend(it.by_ref());
                source_samples += (e.len() - before) as u64;
                if let Some(err) = it.err() {
                    return Err(Error::Storage(format!(
                        "block {}: corrupt chunk: {err}",
                        meta.ulid
                    )));
                }
            }
        }
    }
    let series: Vec<(Labels, Vec<(i64, f64)>)> = merged
        .into_iter()
        .map(|(l, mut v)| {
            // Stable: for equal timestamps the earlier source (smaller ULID) stays first.
            v.sort_by_key(|s| s.0);
            v.dedup_by_key(|s| s.0);
            (l, v)
        })
        .collect();
    let lineage: Vec<String> = {
        let mut v: Vec<String> = sources
            .iter()
            .flat_map(|b| b.compaction.sources.iter().cloned())
            .collect();
        v.extend(sources.iter().map(|b| b.ulid.clone()));
        v.sort();
        v.dedup();
        v
    };
    let (min, max, level) = (job.min_time, job.max_time, job.level);
    let (bytes, meta) =
        tokio::task::spawn_blocking(move || writer::build(series, min, max, level, lineage))
            .await
            .map_err(|e| Error::Storage(e.to_string()))?
            .map_err(serr)?;
    // Upload and list the replacement before touching the sources.
    bucket
        .upload_block(tenant, bytes, &meta)
        .await
        .map_err(serr)?;
    crate::crash_point("after-upload");
    bucket.write_index(tenant).await.map_err(serr)?;
    for s in &sources {
        bucket
            .mark_for_deletion(tenant, &s.ulid, "compacted")
            .await
            .map_err(serr)?;
        crate::crash_point("mid-mark");
    }
    crate::crash_point("after-mark");
    bucket.write_index(tenant).await.map_err(serr)?;
    Ok(Outcome {
        new_block: meta,
        source_samples,
    })
}
