//! The in-memory trace-id index of a span segment: for every row group
//! its trace-id range and bloom filter, and the trace-id range of each data
//! page, so a trace lookup reads only the row groups and pages that can
//! hold the trace (and segments without it cost no IO).

use std::fs::File;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelector};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// What a trace lookup needs to know about one row group without reading it.
pub(super) struct RowGroupTraceIndex {
    rows: usize,
    /// Min and max trace id (from the footer statistics).
    range: Option<([u8; 16], [u8; 16])>,
    /// The row group's `trace_id` bloom filter, kept in memory (about ten
    /// bits per distinct trace) so segments without the trace cost no IO.
    bloom: Option<Sbbf>,
    /// First row and trace-id range of each data page (from the page index),
    /// so only the pages that can hold the trace are read.
    pages: Vec<PageTraceRange>,
}

struct PageTraceRange {
    first_row: usize,
    min: [u8; 16],
    max: [u8; 16],
}

impl RowGroupTraceIndex {
    pub(super) fn may_hold(&self, id: &[u8; 16]) -> bool {
        self.range.is_none_or(|(min, max)| min <= *id && *id <= max)
            && self.bloom.as_ref().is_none_or(|bloom| bloom.check(&id[..]))
    }

    /// Which rows of the group to read: the pages whose range holds one of
    /// the ids.
    pub(super) fn selection(&self, ids: &[[u8; 16]]) -> Vec<RowSelector> {
        if self.pages.is_empty() {
            return vec![RowSelector::select(self.rows)];
        }
        let mut selectors = Vec::with_capacity(self.pages.len());
        for (index, page) in self.pages.iter().enumerate() {
            let end = self
                .pages
                .get(index + 1)
                .map_or(self.rows, |next| next.first_row);
            let rows = end.saturating_sub(page.first_row);
            if ids.iter().any(|id| page.min <= *id && *id <= page.max) {
                selectors.push(RowSelector::select(rows));
            } else {
                selectors.push(RowSelector::skip(rows));
            }
        }
        selectors
    }
}

pub(super) fn trace_index(
    metadata: &ArrowReaderMetadata,
    file: &File,
) -> Result<Vec<RowGroupTraceIndex>, parquet::errors::ParquetError> {
    let file_metadata = metadata.metadata();
    let mut groups = Vec::with_capacity(file_metadata.num_row_groups());
    for (index, group) in file_metadata.row_groups().iter().enumerate() {
        let Some(column) = group.columns().first() else {
            groups.push(RowGroupTraceIndex {
                rows: 0,
                range: None,
                bloom: None,
                pages: Vec::new(),
            });
            continue;
        };
        let range = column.statistics().and_then(|stats| {
            let min: [u8; 16] = stats.min_bytes_opt()?.try_into().ok()?;
            let max: [u8; 16] = stats.max_bytes_opt()?.try_into().ok()?;
            Some((min, max))
        });
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        groups.push(RowGroupTraceIndex {
            rows,
            range,
            bloom: Sbbf::read_from_column_chunk(column, file)?,
            pages: page_ranges(file_metadata, index, rows),
        });
    }
    Ok(groups)
}

/// Page ranges of the `trace_id` column of one row group; empty (read the
/// whole group) when the page index is missing or inconsistent.
fn page_ranges(metadata: &ParquetMetaData, row_group: usize, rows: usize) -> Vec<PageTraceRange> {
    let page_index = metadata.page_index_for_row_group(row_group);
    let (Some(ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(column_index)), Some(offsets)) =
        (page_index.column_index(0), page_index.offset_index(0))
    else {
        return Vec::new();
    };
    let locations = offsets.page_locations();
    if column_index.num_pages() != locations.len() as u64 {
        return Vec::new();
    }
    let mut pages: Vec<PageTraceRange> = Vec::with_capacity(locations.len());
    for (page, location) in locations.iter().enumerate() {
        let bounds = (column_index.min_value(page), column_index.max_value(page));
        let (Some(min), Some(max)) = bounds else {
            return Vec::new();
        };
        let (Ok(min), Ok(max), Ok(first_row)) = (
            <[u8; 16]>::try_from(min),
            <[u8; 16]>::try_from(max),
            usize::try_from(location.first_row_index),
        ) else {
            return Vec::new();
        };
        let follows_previous = match pages.last() {
            Some(previous) => first_row > previous.first_row,
            None => first_row == 0,
        };
        if !follows_previous || first_row >= rows {
            return Vec::new();
        }
        pages.push(PageTraceRange {
            first_row,
            min,
            max,
        });
    }
    pages
}
