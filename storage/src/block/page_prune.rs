//! Page-level pruning inside row groups. Blocks are written with page statistics (the Parquet
//! column and offset indexes, pages of at most 512 rows) and rows sorted by metric name, so
//! an equality matcher on `__name__` (or another label) rules out most pages of a row group:
//! the reader then fetches and decodes only the pages of the rows that can match, in every
//! projected column.

use std::ops::Range;

use parquet::arrow::arrow_reader::RowSelection;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// Rows of row group `g` that may hold `value` in column `col`, as sorted ranges; the whole
/// group when the file has no page index for that column chunk.
fn rows_matching(meta: &ParquetMetaData, g: usize, col: usize, value: &[u8]) -> Vec<Range<usize>> {
    let rows = usize::try_from(meta.row_group(g).num_rows()).unwrap_or(0);
    #[allow(clippy::single_range_in_vec_init)]
    let all = vec![0..rows];
    let pi = meta.page_index_for_row_group(g);
    let (Some(ColumnIndexMetaData::BYTE_ARRAY(ci)), Some(oi)) =
        (pi.column_index(col), pi.offset_index(col))
    else {
        return all;
    };
    let locs = oi.page_locations();
    if ci.num_pages() as usize != locs.len() {
        return all;
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    for (p, loc) in locs.iter().enumerate() {
        let start = usize::try_from(loc.first_row_index).unwrap_or(0);
        let end = locs
            .get(p + 1)
            .map_or(rows, |n| usize::try_from(n.first_row_index).unwrap_or(rows));
        if ci.is_null_page(p) {
            // Only absent labels: no non-empty value here.
            continue;
        }
        let may = match (ci.min_value(p), ci.max_value(p)) {
            (Some(lo), Some(hi)) => lo <= value && value <= hi,
            _ => true,
        };
        if !may || start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
    }
    out
}

/// The intersection of two sorted lists of disjoint ranges.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if s < e {
            out.push(s..e);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The rows of `groups` (in order, as the reader concatenates them) that may match every
/// `(column, value)` equality, or `None` when no page can be skipped.
pub fn selection(
    meta: &ParquetMetaData,
    groups: &[usize],
    equalities: &[(usize, &[u8])],
) -> Option<RowSelection> {
    if equalities.is_empty() || meta.page_index().is_none() {
        return None;
    }
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let (mut offset, mut skipped) = (0usize, false);
    for &g in groups {
        let rows = usize::try_from(meta.row_group(g).num_rows()).unwrap_or(0);
        #[allow(clippy::single_range_in_vec_init)]
        let mut keep = vec![0..rows];
        for &(col, value) in equalities {
            keep = intersect(&keep, &rows_matching(meta, g, col, value));
        }
        skipped |= keep.iter().map(|r| r.len()).sum::<usize>() < rows;
        ranges.extend(keep.into_iter().map(|r| r.start + offset..r.end + offset));
        offset += rows;
    }
    skipped.then(|| RowSelection::from_consecutive_ranges(ranges.into_iter(), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn ranges_intersect() {
        assert_eq!(
            intersect(&[0..10, 20..30], &[5..25, 28..40]),
            vec![5..10, 20..25, 28..30]
        );
        assert!(intersect(&[0..10], &[]).is_empty());
        assert!(intersect(&[0..10], &[10..20]).is_empty());
    }
}
