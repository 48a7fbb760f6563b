//! Running a compaction job: read the sources, merge each series (identical samples once;
//! for conflicting values at one timestamp the source with the smallest ULID wins, a
//! deterministic rule), write and upload the new block, list it, and only then mark the
//! sources for deletion.
//!
//! Memory: a streaming merge (see [`run`]); compacting blocks larger than RAM works.

use muninn_proto::tenant::TenantId;
use muninn_storage::block::{BlockMeta, DATA_FILE, FORMAT_VERSION, reader, writer};
use muninn_storage::bucket::Bucket;
use muninn_storage::chunk::histogram::decode_chunk;
use muninn_storage::histogram::HistSample;

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

/// One source block being read, a batch of rows at a time.
struct Input {
    rows: futures::stream::BoxStream<'static, muninn_storage::Result<Vec<reader::BlockSeries>>>,
    buf: std::collections::VecDeque<reader::BlockSeries>,
    done: bool,
}

/// Runs `job` for `tenant`: a streaming k-way merge of the sources' rows (all in the same row
/// order), so memory is bounded by a batch per source plus a row group of output, whatever
/// the block sizes. The output goes to a temporary file, then a multipart upload.
pub async fn run(bucket: &Bucket, tenant: &TenantId, job: &Job) -> Result<Outcome> {
    use futures::StreamExt;
    let mut sources = job.sources.clone();
    sources.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    let mut inputs = Vec::with_capacity(sources.len());
    let mut names = std::collections::BTreeSet::new();
    if let Some(m) = sources.iter().find(|m| m.version > FORMAT_VERSION) {
        return Err(Error::Storage(format!(
            "block {} has format version {}; this build reads up to {FORMAT_VERSION}",
            m.ulid, m.version
        )));
    }
    // Native histograms carry over into the merged block: a version-2 block always has
    // histogram columns, a version-3 block has them when it holds histograms.
    let histograms = sources
        .iter()
        .any(|m| m.version == 2 || m.stats.num_histogram_samples > 0);
    for meta in &sources {
        let (n, rows) = reader::stream_rows(
            bucket.store(),
            Bucket::block_file(tenant, &meta.ulid, DATA_FILE),
        )
        .await
        .map_err(serr)?;
        names.extend(n);
        inputs.push(Input {
            rows,
            buf: Default::default(),
            done: false,
        });
    }
    let tmp = std::env::temp_dir().join(format!(
        "muninn-compact-{}-{}-{}.parquet",
        tenant.as_str(),
        sources[0].ulid,
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp)
        .map_err(|e| Error::Storage(format!("creating {}: {e}", tmp.display())))?;
    let mut writer =
        writer::StreamWriter::with_histograms(file, names, job.min_time, job.max_time, histograms)
            .map_err(serr)?;
    let mut source_samples = 0u64;
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut hists: Vec<(i64, HistSample)> = Vec::new();
    loop {
        for inp in &mut inputs {
            while inp.buf.is_empty() && !inp.done {
                match inp.rows.next().await {
                    Some(Ok(rows)) => inp.buf.extend(rows),
                    Some(Err(e)) => return Err(serr(e)),
                    None => inp.done = true,
                }
            }
        }
        let Some(key) = inputs
            .iter()
            .filter_map(|i| i.buf.front())
            .map(|s| &s.labels)
            .min_by(|a, b| writer::row_order(a, b))
            .cloned()
        else {
            break;
        };
        samples.clear();
        hists.clear();
        // Sources in ULID order: for conflicting values at one timestamp the first one stays.
        for inp in &mut inputs {
            if inp.buf.front().is_some_and(|s| s.labels == key)
                && let Some(s) = inp.buf.pop_front()
            {
                for (enc, c) in &s.hist_chunks {
                    hists.extend(decode_chunk(*enc, c).map_err(|e| {
                        Error::Storage(format!(
                            "corrupt histogram chunk in a source of {tenant}: {e}"
                        ))
                    })?);
                }
                for c in &s.chunks {
                    c.decode_range(i64::MIN, i64::MAX, &mut samples)
                        .map_err(|err| {
                            Error::Storage(format!("corrupt chunk in a source of {tenant}: {err}"))
                        })?;
                }
            }
        }
        source_samples += (samples.len() + hists.len()) as u64;
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        hists.sort_by_key(|s| s.0);
        hists.dedup_by_key(|s| s.0);
        tokio::task::block_in_place(|| writer.push_with_histograms(key, &samples, &hists))
            .map_err(serr)?;
    }
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
    let mut meta =
        tokio::task::block_in_place(|| writer.finish(job.level, lineage)).map_err(serr)?;
    meta.stats.num_bytes = std::fs::metadata(&tmp).map_or(0, |m| m.len());
    let uploaded = bucket
        .upload_block_file(tenant, &tmp, &meta)
        .await
        .map_err(serr);
    let _ = std::fs::remove_file(&tmp);
    uploaded?;
    // The replacement is uploaded; list it before touching the sources.
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
