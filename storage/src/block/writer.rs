//! Building a block: series (decoded samples) → one Parquet file, rows sorted by metric name
//! then labels, one `s_lbl_<name>` column per label name and one `s_data_<n>` column per time
//! slice. Pure: returns the bytes and the meta; uploading is the caller's job.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{
    BlockMeta, BlockStats, Compaction, FORMAT_VERSION, cell, data_column, label_column, slice_width,
};
use crate::labels::{Labels, METRIC_NAME};
use crate::{Error, Result};

/// Rows per row group: small enough that one metric's rows are a small part of the file.
pub const ROW_GROUP_ROWS: usize = 4096;

/// Writes a block of `series` covering `[min_t, max_t)`; samples outside are dropped.
pub fn build(
    mut series: Vec<(Labels, Vec<(i64, f64)>)>,
    min_t: i64,
    max_t: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<(Vec<u8>, BlockMeta)> {
    let ulid = ulid::Ulid::generate().to_string();
    for (_, s) in &mut series {
        s.retain(|(t, _)| *t >= min_t && *t < max_t);
    }
    series.retain(|(_, s)| !s.is_empty());
    series.sort_by(|a, b| {
        a.0.get(METRIC_NAME)
            .cmp(&b.0.get(METRIC_NAME))
            .then_with(|| a.0.cmp(&b.0))
    });
    let names: BTreeSet<&str> = series
        .iter()
        .flat_map(|(l, _)| l.iter().map(|x| x.name.as_str()))
        .collect();
    let width = slice_width(max_t - min_t);
    let slices = ((max_t - min_t + width - 1) / width).max(1) as usize;

    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in &names {
        fields.push(Field::new(label_column(name), DataType::Utf8, true));
        let col: StringArray = series.iter().map(|(l, _)| l.get(name)).collect();
        columns.push(Arc::new(col));
    }
    let mut stats = BlockStats {
        num_series: series.len() as u64,
        ..Default::default()
    };
    for n in 0..slices {
        let (lo, hi) = (
            min_t + n as i64 * width,
            (min_t + (n as i64 + 1) * width).min(max_t),
        );
        let mut cells: Vec<Option<Vec<u8>>> = Vec::with_capacity(series.len());
        for (_, samples) in &series {
            let a = samples.partition_point(|(t, _)| *t < lo);
            let b = samples.partition_point(|(t, _)| *t < hi);
            if a == b {
                cells.push(None);
                continue;
            }
            let mut buf = Vec::new();
            stats.num_chunks += cell::encode(&samples[a..b], &mut buf);
            stats.num_samples += (b - a) as u64;
            cells.push(Some(buf));
        }
        fields.push(Field::new(data_column(n), DataType::Binary, true));
        let col: BinaryArray = cells.iter().map(|c| c.as_deref()).collect();
        columns.push(Arc::new(col));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Block(format!("building record batch: {e}")))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(512)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props))
        .map_err(|e| Error::Block(format!("parquet writer: {e}")))?;
    w.write(&batch)
        .map_err(|e| Error::Block(format!("writing parquet: {e}")))?;
    w.close()
        .map_err(|e| Error::Block(format!("closing parquet: {e}")))?;
    let meta = BlockMeta {
        ulid: ulid.clone(),
        min_time: min_t,
        max_time: max_t,
        stats,
        compaction: Compaction {
            level,
            sources: if sources.is_empty() {
                vec![ulid]
            } else {
                sources
            },
        },
        version: FORMAT_VERSION,
        slice_ms: width,
        files: vec![super::DATA_FILE.to_owned()],
    };
    Ok((out, meta))
}
