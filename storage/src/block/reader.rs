//! Selecting series from a block in object storage. Only the row groups whose `__name__` (or
//! other equality-matched label) statistics can match are fetched, within them only the pages
//! whose page statistics can match ([`super::page_prune`]), and only the label columns plus
//! the `s_data_<n>` slices overlapping the query's time range (range GETs via
//! `ParquetObjectReader`).

use std::sync::Arc;

use arrow_array::{Array, BinaryArray, StringArray};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::{ColumnChunkMask, PageIndexPolicy, ParquetMetaDataReader};
// `ParquetObjectReader` is deprecated in parquet 60 in favour of hand-written
// `AsyncFileReader`s; it still does exactly what we need (ranged GETs through object_store).
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::{BlockMeta, cell, label_column};
use crate::chunk::FloatChunk;
use crate::labels::{Label, Labels};
use crate::matcher::{MatchOp, Matcher};
use crate::{Error, Result};

/// A series read from a block: labels, its float chunks (XOR chunks, or packed runs of a
/// format-version-3 block) and its native-histogram chunks (encoding, bytes) overlapping the
/// range.
#[derive(Debug, Clone)]
pub struct BlockSeries {
    pub labels: Labels,
    pub chunks: Vec<FloatChunk>,
    pub hist_chunks: Vec<(u8, Bytes)>,
}

/// Refuses blocks of a newer format than this reader knows.
fn check_version(meta: &BlockMeta) -> Result<()> {
    if meta.version > super::FORMAT_VERSION {
        return Err(Error::Block(format!(
            "block {} has format version {}; this build reads up to {}",
            meta.ulid,
            meta.version,
            super::FORMAT_VERSION
        )));
    }
    Ok(())
}

/// A data column's kind and slice: `(histogram?, n)`.
fn data_slice(name: &str) -> Option<(bool, i64)> {
    if let Some(n) = name.strip_prefix("s_data_") {
        return n.parse().ok().map(|n| (false, n));
    }
    name.strip_prefix("s_hist_")
        .and_then(|n| n.parse().ok())
        .map(|n| (true, n))
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Block(format!("reading parquet: {e}"))
}

/// A panic inside the Parquet/Arrow readers (they assert on some corrupt inputs; found by the
/// `block_reader` fuzz target) as an error: a corrupt block fails its query or compaction job,
/// never the process or the connection.
fn corrupt(payload: Box<dyn std::any::Any + Send>) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "reader panicked".into());
    Error::Block(format!("corrupt block: {msg}"))
}

/// Appends the float chunks of data cell `b` that overlap `[mint, maxt]` to `out`.
fn push_float_chunks(b: &[u8], mint: i64, maxt: i64, out: &mut Vec<FloatChunk>) -> Result<()> {
    match cell::decode(b)? {
        cell::DataCell::Packed(runs) => out.extend(
            runs.into_iter()
                .filter(|r| r.header.min_t <= maxt && r.header.max_t >= mint)
                .map(|r| FloatChunk::Packed(Bytes::copy_from_slice(r.run))),
        ),
        cell::DataCell::Xor(chunks) => out.extend(
            chunks
                .into_iter()
                .filter(|c| c.min_t <= maxt && c.max_t >= mint)
                .map(|c| FloatChunk::Xor(Bytes::copy_from_slice(c.data))),
        ),
    }
    Ok(())
}

/// Series of the block at `path` matching `matchers` with chunks overlapping `[mint, maxt]`.
pub async fn select(
    store: Arc<dyn ObjectStore>,
    path: Path,
    meta: &BlockMeta,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<BlockSeries>> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(select_unguarded(store, path, meta, matchers, mint, maxt))
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(corrupt(p)))
}

async fn select_unguarded(
    store: Arc<dyn ObjectStore>,
    path: Path,
    meta: &BlockMeta,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<BlockSeries>> {
    check_version(meta)?;
    if maxt < meta.min_time || mint >= meta.max_time {
        return Ok(vec![]);
    }
    // A query shard is not a label: it keeps the rows whose label-set hash falls in it.
    let mut matchers = matchers.to_vec();
    let shard = crate::shard::Shard::take(&mut matchers)?;
    let matchers = &matchers[..];
    #[allow(deprecated)]
    let mut reader = ParquetObjectReader::new(store, path);
    let base = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .map_err(perr)?;
    let schema = base.schema().clone();
    let pmeta = base.metadata().clone();

    let mut label_cols: Vec<(usize, String)> = Vec::new();
    let mut data_cols: Vec<usize> = Vec::new();
    let width = meta.slice_ms.max(1);
    for (i, f) in schema.fields().iter().enumerate() {
        if let Some(name) = f.name().strip_prefix("s_lbl_") {
            label_cols.push((i, name.to_owned()));
        } else if let Some((_, n)) = data_slice(f.name()) {
            let (lo, hi) = (meta.min_time + n * width, meta.min_time + (n + 1) * width);
            if lo <= maxt && hi > mint {
                data_cols.push(i);
            }
        }
    }
    // Equality matchers on labels the block does not have select nothing.
    for m in matchers {
        if m.op == MatchOp::Equal
            && !m.value.is_empty()
            && !label_cols.iter().any(|(_, n)| *n == m.name)
        {
            return Ok(vec![]);
        }
    }
    // Row groups whose statistics rule out an equality matcher are skipped.
    let mut groups = Vec::new();
    'rg: for (g, rg) in pmeta.row_groups().iter().enumerate() {
        for m in matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal && !m.value.is_empty())
        {
            let col = label_column(&m.name);
            let Some(idx) = schema.fields().iter().position(|f| *f.name() == col) else {
                continue;
            };
            if let Some(st) = rg.column(idx).statistics()
                && let (Some(lo), Some(hi)) = (st.min_bytes_opt(), st.max_bytes_opt())
                && (m.value.as_bytes() < lo || m.value.as_bytes() > hi)
            {
                continue 'rg;
            }
        }
        groups.push(g);
    }
    if groups.is_empty() {
        return Ok(vec![]);
    }
    let leaves: Vec<usize> = label_cols
        .iter()
        .map(|(i, _)| *i)
        .chain(data_cols.iter().copied())
        .collect();
    // Equality matchers prune pages inside the row groups (`page_prune`), once the page
    // index of the chunks to read is loaded (one more range GET, cached like the rest).
    let equalities: Vec<(usize, &[u8])> = matchers
        .iter()
        .filter(|m| m.op == MatchOp::Equal && !m.value.is_empty())
        .filter_map(|m| {
            let col = label_column(&m.name);
            let idx = schema.fields().iter().position(|f| *f.name() == col)?;
            Some((idx, m.value.as_bytes()))
        })
        .collect();
    let has_page_index = groups.iter().any(|&g| {
        equalities
            .iter()
            .any(|&(c, _)| pmeta.row_group(g).column(c).column_index_range().is_some())
    });
    let arrow_meta = if has_page_index {
        let mask = ColumnChunkMask::row_groups_and_columns(groups.clone(), leaves.clone());
        let mut mr = ParquetMetaDataReader::new_with_metadata((*pmeta).clone())
            .with_page_index_policy(PageIndexPolicy::Optional)
            .with_page_index_mask(mask);
        mr.load_page_index(&mut reader).await.map_err(perr)?;
        let with_index = mr.finish().map_err(perr)?;
        ArrowReaderMetadata::try_new(Arc::new(with_index), ArrowReaderOptions::new())
            .map_err(perr)?
    } else {
        base
    };
    let selection = super::page_prune::selection(arrow_meta.metadata(), &groups, &equalities);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, arrow_meta);
    let mask = ProjectionMask::roots(builder.parquet_schema(), leaves);
    let mut builder = builder.with_row_groups(groups).with_projection(mask);
    if let Some(sel) = selection {
        builder = builder.with_row_selection(sel);
    }
    let mut stream = builder.build().map_err(perr)?;
    let mut out = Vec::new();
    while let Some(batch) = stream.try_next().await.map_err(perr)? {
        let bschema = batch.schema();
        let mut lcols: Vec<(&str, &StringArray)> = Vec::new();
        let mut dcols: Vec<(bool, &BinaryArray)> = Vec::new();
        for (i, f) in bschema.fields().iter().enumerate() {
            let col = batch.column(i);
            if let Some(name) = f.name().strip_prefix("s_lbl_") {
                let a = col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| Error::Block(format!("column {} is not utf8", f.name())))?;
                lcols.push((name, a));
            } else {
                let a = col
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .ok_or_else(|| Error::Block(format!("column {} is not binary", f.name())))?;
                dcols.push((data_slice(f.name()).is_some_and(|d| d.0), a));
            }
        }
        'row: for row in 0..batch.num_rows() {
            // Matchers first, on borrowed values; labels are built only for matches.
            for m in matchers {
                let v = lcols
                    .iter()
                    .find(|(n, _)| *n == m.name)
                    .map_or("", |(_, a)| if a.is_null(row) { "" } else { a.value(row) });
                if !m.matches(v) {
                    continue 'row;
                }
            }
            if let Some(s) = shard
                && !s.contains(
                    lcols
                        .iter()
                        .filter(|(_, a)| !a.is_null(row))
                        .map(|(n, a)| (*n, a.value(row))),
                )
            {
                continue;
            }
            let mut chunks = Vec::new();
            let mut hist_chunks = Vec::new();
            for (hist, d) in &dcols {
                if d.is_null(row) {
                    continue;
                }
                if *hist {
                    for c in cell::decode_hist(d.value(row))? {
                        if c.min_t <= maxt && c.max_t >= mint {
                            hist_chunks.push((c.encoding, Bytes::copy_from_slice(c.data)));
                        }
                    }
                    continue;
                }
                push_float_chunks(d.value(row), mint, maxt, &mut chunks)?;
            }
            if chunks.is_empty() && hist_chunks.is_empty() {
                continue;
            }
            let labels = Labels(
                lcols
                    .iter()
                    .filter(|(_, a)| !a.is_null(row))
                    .map(|(n, a)| Label {
                        name: (*n).to_owned(),
                        value: a.value(row).to_owned(),
                    })
                    .collect(),
            );
            out.push(BlockSeries {
                labels,
                chunks,
                hist_chunks,
            });
        }
    }
    // Parquet columns come in schema order, which sorts `s_lbl_<name>` like the names.
    Ok(out)
}

/// Every row of a block in file order ([`super::writer::row_order`]), a batch at a time, with
/// all its chunks: the input of a streaming merge. Also returns the block's label names.
/// A corrupt block gives an error (opening it, or as the stream's last item).
pub async fn stream_rows(
    store: Arc<dyn ObjectStore>,
    path: Path,
) -> Result<(
    Vec<String>,
    futures::stream::BoxStream<'static, Result<Vec<BlockSeries>>>,
)> {
    use futures::{FutureExt, StreamExt};
    let (names, rows) = std::panic::AssertUnwindSafe(stream_rows_unguarded(store, path))
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(corrupt(p)))?;
    let rows = std::panic::AssertUnwindSafe(rows)
        .catch_unwind()
        .map(|r| r.unwrap_or_else(|p| Err(corrupt(p))));
    Ok((names, rows.boxed()))
}

async fn stream_rows_unguarded(
    store: Arc<dyn ObjectStore>,
    path: Path,
) -> Result<(
    Vec<String>,
    futures::stream::BoxStream<'static, Result<Vec<BlockSeries>>>,
)> {
    use futures::StreamExt;
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(store, path);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(perr)?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .filter_map(|f| f.name().strip_prefix("s_lbl_").map(str::to_owned))
        .collect();
    let stream = builder.with_batch_size(1024).build().map_err(perr)?;
    let rows = stream.map(|batch| {
        let batch = batch.map_err(perr)?;
        let bschema = batch.schema();
        let mut lcols: Vec<(&str, &StringArray)> = Vec::new();
        let mut dcols: Vec<(bool, &BinaryArray)> = Vec::new();
        for (i, f) in bschema.fields().iter().enumerate() {
            let col = batch.column(i);
            if let Some(name) = f.name().strip_prefix("s_lbl_") {
                lcols.push((
                    name,
                    col.as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| Error::Block("label column is not utf8".into()))?,
                ));
            } else {
                dcols.push((
                    data_slice(f.name()).is_some_and(|d| d.0),
                    col.as_any()
                        .downcast_ref::<BinaryArray>()
                        .ok_or_else(|| Error::Block("data column is not binary".into()))?,
                ));
            }
        }
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let labels = Labels(
                lcols
                    .iter()
                    .filter(|(_, a)| !a.is_null(row))
                    .map(|(n, a)| Label {
                        name: (*n).to_owned(),
                        value: a.value(row).to_owned(),
                    })
                    .collect(),
            );
            let mut chunks = Vec::new();
            let mut hist_chunks = Vec::new();
            for (hist, d) in &dcols {
                if d.is_null(row) {
                    continue;
                }
                if *hist {
                    for c in cell::decode_hist(d.value(row))? {
                        hist_chunks.push((c.encoding, Bytes::copy_from_slice(c.data)));
                    }
                } else {
                    push_float_chunks(d.value(row), i64::MIN, i64::MAX, &mut chunks)?;
                }
            }
            out.push(BlockSeries {
                labels,
                chunks,
                hist_chunks,
            });
        }
        Ok(out)
    });
    Ok((names, rows.boxed()))
}
