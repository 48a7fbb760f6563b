//! Building a block: series (decoded samples) → one Parquet file, rows sorted by metric name
//! then labels, one `s_lbl_<name>` column per label name and one `s_data_<n>` column per time
//! slice. [`StreamWriter`] takes series one at a time in that order and writes a row group
//! every [`ROW_GROUP_ROWS`] rows, so memory stays bounded by a row group whatever the block
//! size; [`build`] is the in-memory convenience used by the ingester.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{
    BlockMeta, BlockStats, Compaction, FORMAT_VERSION, cell, data_column, hist_column,
    label_column, slice_width,
};
use crate::histogram::HistSample;
use crate::labels::{Labels, METRIC_NAME};
use crate::{Error, Result};

/// Rows per row group: small enough that one metric's rows are a small part of the file.
pub const ROW_GROUP_ROWS: usize = 4096;

/// The order of rows: metric name, then the whole label set.
pub fn row_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    a.get(METRIC_NAME)
        .cmp(&b.get(METRIC_NAME))
        .then_with(|| a.cmp(b))
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Block(format!("writing parquet: {e}"))
}

/// Writes a block's Parquet file incrementally. Series must come in [`row_order`].
pub struct StreamWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    names: Vec<String>,
    min_t: i64,
    max_t: i64,
    width: i64,
    slices: usize,
    /// Whether the block has `s_hist_<n>` columns (format version 2).
    histograms: bool,
    /// Per row: labels, then `slices` data cells and, with histograms, `slices` more.
    rows: Vec<(Labels, Vec<Option<Vec<u8>>>)>,
    stats: BlockStats,
    ulid: String,
}

impl<W: Write + Send> StreamWriter<W> {
    /// A writer for a block covering `[min_t, max_t)` whose series use `label_names`.
    pub fn new(out: W, label_names: BTreeSet<String>, min_t: i64, max_t: i64) -> Result<Self> {
        Self::with_histograms(out, label_names, min_t, max_t, false)
    }

    /// As [`Self::new`]; with `histograms`, the block gets native-histogram columns.
    pub fn with_histograms(
        out: W,
        label_names: BTreeSet<String>,
        min_t: i64,
        max_t: i64,
        histograms: bool,
    ) -> Result<Self> {
        let width = slice_width(max_t - min_t);
        let slices = ((max_t - min_t + width - 1) / width).max(1) as usize;
        let mut fields: Vec<Field> = label_names
            .iter()
            .map(|n| Field::new(label_column(n), DataType::Utf8, true))
            .collect();
        fields.extend((0..slices).map(|n| Field::new(data_column(n), DataType::Binary, true)));
        if histograms {
            fields.extend((0..slices).map(|n| Field::new(hist_column(n), DataType::Binary, true)));
        }
        let schema = Arc::new(Schema::new(fields));
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(512)
            .set_statistics_enabled(EnabledStatistics::Page);
        // Chunk cells are nearly all distinct: a dictionary would hold the whole column chunk
        // in its dictionary page, which every page read needs, defeating page pruning
        // (`block/page_prune.rs`). Label columns keep their dictionaries.
        for n in 0..slices {
            let cols = [Some(data_column(n)), histograms.then(|| hist_column(n))];
            for c in cols.into_iter().flatten() {
                props = props
                    .set_column_dictionary_enabled(ColumnPath::from(c.as_str()), false)
                    .set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
            }
        }
        let props = props.build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(perr)?;
        Ok(Self {
            writer,
            schema,
            names: label_names.into_iter().collect(),
            min_t,
            max_t,
            width,
            slices,
            histograms,
            rows: Vec::with_capacity(ROW_GROUP_ROWS),
            stats: BlockStats::default(),
            ulid: ulid::Ulid::generate().to_string(),
        })
    }

    /// Adds a series (samples time-ordered; those outside the block are dropped).
    pub fn push(&mut self, labels: Labels, samples: &[(i64, f64)]) -> Result<()> {
        self.push_with_histograms(labels, samples, &[])
    }

    /// Adds a series with native histograms too (both time-ordered). Histograms need a
    /// writer made [`Self::with_histograms`].
    pub fn push_with_histograms(
        &mut self,
        labels: Labels,
        samples: &[(i64, f64)],
        hists: &[(i64, HistSample)],
    ) -> Result<()> {
        if !hists.is_empty() && !self.histograms {
            return Err(Error::Block(
                "histograms pushed to a block writer without histogram columns".into(),
            ));
        }
        let mut cells = Vec::with_capacity(self.slices * (1 + usize::from(self.histograms)));
        let mut any = false;
        for n in 0..self.slices {
            let (lo, hi) = (
                self.min_t + n as i64 * self.width,
                (self.min_t + (n as i64 + 1) * self.width).min(self.max_t),
            );
            let a = samples.partition_point(|(t, _)| *t < lo);
            let b = samples.partition_point(|(t, _)| *t < hi);
            if a == b {
                cells.push(None);
                continue;
            }
            let mut buf = Vec::new();
            self.stats.num_chunks += cell::encode(&samples[a..b], &mut buf);
            self.stats.num_samples += (b - a) as u64;
            cells.push(Some(buf));
            any = true;
        }
        if self.histograms {
            for n in 0..self.slices {
                let (lo, hi) = (
                    self.min_t + n as i64 * self.width,
                    (self.min_t + (n as i64 + 1) * self.width).min(self.max_t),
                );
                let a = hists.partition_point(|(t, _)| *t < lo);
                let b = hists.partition_point(|(t, _)| *t < hi);
                if a == b {
                    cells.push(None);
                    continue;
                }
                let mut buf = Vec::new();
                self.stats.num_chunks += cell::encode_hist(&hists[a..b], &mut buf);
                self.stats.num_samples += (b - a) as u64;
                self.stats.num_histogram_samples += (b - a) as u64;
                cells.push(Some(buf));
                any = true;
            }
        }
        if any {
            self.stats.num_series += 1;
            self.rows.push((labels, cells));
        }
        if self.rows.len() >= ROW_GROUP_ROWS {
            self.flush_rows()?;
        }
        Ok(())
    }

    fn flush_rows(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.names.len() + self.slices);
        for name in &self.names {
            let col: StringArray = self.rows.iter().map(|(l, _)| l.get(name)).collect();
            columns.push(Arc::new(col));
        }
        let cells = self.slices * (1 + usize::from(self.histograms));
        for n in 0..cells {
            let col: BinaryArray = self.rows.iter().map(|(_, c)| c[n].as_deref()).collect();
            columns.push(Arc::new(col));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(perr)?;
        self.writer.write(&batch).map_err(perr)?;
        self.rows.clear();
        Ok(())
    }

    /// Finishes the file; returns the block's meta (its `sources` default to itself).
    pub fn finish(mut self, level: u32, sources: Vec<String>) -> Result<BlockMeta> {
        self.flush_rows()?;
        self.writer.close().map_err(perr)?;
        let ulid = self.ulid;
        Ok(BlockMeta {
            ulid: ulid.clone(),
            min_time: self.min_t,
            max_time: self.max_t,
            stats: self.stats,
            compaction: Compaction {
                level,
                sources: if sources.is_empty() {
                    vec![ulid]
                } else {
                    sources
                },
            },
            version: FORMAT_VERSION,
            slice_ms: self.width,
            files: vec![super::DATA_FILE.to_owned()],
        })
    }
}

/// Writes a block of `series` covering `[min_t, max_t)` in memory; samples outside are dropped.
pub fn build(
    series: Vec<(Labels, Vec<(i64, f64)>)>,
    min_t: i64,
    max_t: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<(Vec<u8>, BlockMeta)> {
    build_with_histograms(
        series.into_iter().map(|(l, s)| (l, s, vec![])).collect(),
        min_t,
        max_t,
        level,
        sources,
    )
}

/// A series for [`build_with_histograms`]: labels, float samples, histogram samples.
pub type SeriesWithHistograms = (Labels, Vec<(i64, f64)>, Vec<(i64, HistSample)>);

/// As [`build`], series carrying native histograms too (the block is then version 2).
pub fn build_with_histograms(
    mut series: Vec<SeriesWithHistograms>,
    min_t: i64,
    max_t: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<(Vec<u8>, BlockMeta)> {
    for (_, s, h) in &mut series {
        s.retain(|(t, _)| *t >= min_t && *t < max_t);
        h.retain(|(t, _)| *t >= min_t && *t < max_t);
    }
    series.retain(|(_, s, h)| !s.is_empty() || !h.is_empty());
    series.sort_by(|a, b| row_order(&a.0, &b.0));
    let names: BTreeSet<String> = series
        .iter()
        .flat_map(|(l, _, _)| l.iter().map(|x| x.name.clone()))
        .collect();
    let histograms = series.iter().any(|(_, _, h)| !h.is_empty());
    let mut out = Vec::new();
    let mut w = StreamWriter::with_histograms(&mut out, names, min_t, max_t, histograms)?;
    for (l, s, h) in series {
        w.push_with_histograms(l, &s, &h)?;
    }
    let meta = w.finish(level, sources)?;
    Ok((out, meta))
}
