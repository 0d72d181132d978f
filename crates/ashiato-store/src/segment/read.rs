//! A written segment as the store keeps it open (`Segment`): catalog
//! facts and the Parquet footer cached in memory, slimmed (no attribute
//! index, no page min/max) once the trace index is built from it; reads of
//! whole traces, filtered span scans and log scans.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch};
use ashiato_model::{Span, TraceId};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowFilter, RowSelection,
};
use parquet::file::metadata::page_index::{PageIndexBuilder, PageIndexProvider};
use parquet::file::metadata::{
    FileMetaData, KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataBuilder,
    ParquetMetaDataReader,
};

use tracing::warn;

use crate::attr_index::{self, AttrIndex};
use crate::error::StoreError;
use crate::filter::SpanFilter;
use crate::promoted::Promotion;
use crate::stats::OpStats;
use crate::wal::io_error;

use super::columns::{LogColumns, SharedParts, SpanColumns, SpanParts};
use super::schema::promotion_of;
use super::trace_index::{RowGroupTraceIndex, trace_index};
use super::{WrittenSegment, parquet_error};

const READ_BATCH_ROWS: usize = 8192;

/// A sealed segment as the store keeps it in memory: catalog facts plus the
/// Parquet footer, so lookups never re-read it.
pub struct Segment {
    pub id: i64,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub min_time: u64,
    pub max_time: u64,
    pub services: BTreeSet<String>,
    /// Per (service, operation) counts; spans only.
    pub ops: OpStats,
    metadata: ArrowReaderMetadata,
    /// Trace-id index of each row group (span segments only).
    trace_index: Vec<RowGroupTraceIndex>,
    /// Whether the file carries an attribute index (`attr_index`); it is
    /// read from the footer only when a search filters on attributes.
    has_attr_index: bool,
    /// The attribute keys with columns of their own (empty for log
    /// segments and for span segments written before promotion).
    promotion: Arc<Promotion>,
}

impl Segment {
    /// Opens a written segment and caches its footer (and, for spans, its
    /// trace-id index).
    pub fn open(
        id: i64,
        path: PathBuf,
        written: WrittenSegment,
        is_spans: bool,
    ) -> Result<Segment, StoreError> {
        let file = File::open(&path).map_err(|e| io_error(&path, e))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(&file, options.clone())
            .map_err(|e| parquet_error(&path, e))?;
        let promotion =
            Arc::new(promotion_of(metadata.schema()).map_err(|e| parquet_error(&path, e))?);
        let (metadata, has_attr_index) =
            without_attr_index(metadata, options).map_err(|e| parquet_error(&path, e))?;
        let trace_index = if is_spans {
            trace_index(&metadata, &file).map_err(|e| parquet_error(&path, e))?
        } else {
            Vec::new()
        };
        let metadata = slim_for_memory(metadata).map_err(|e| parquet_error(&path, e))?;
        Ok(Segment {
            id,
            path,
            rows: written.rows,
            bytes: written.bytes,
            min_time: written.min_time,
            max_time: written.max_time,
            services: written.services,
            ops: written.ops,
            metadata,
            trace_index,
            has_attr_index,
            promotion,
        })
    }

    pub(crate) fn promotion(&self) -> &Promotion {
        &self.promotion
    }

    /// Every column for a full read; an outline leaves out the attribute
    /// blob and columns, events and links.
    fn projection_of(&self, parts: SpanParts) -> ProjectionMask {
        let schema = self.metadata.parquet_schema();
        match parts {
            SpanParts::Full => ProjectionMask::all(),
            SpanParts::Outline => {
                let skipped = |name: &str| {
                    matches!(name, "attributes" | "events" | "links")
                        || self.promotion.keys().iter().any(|key| key.column == name)
                };
                let kept = schema
                    .columns()
                    .iter()
                    .enumerate()
                    .filter(|(_, column)| !skipped(column.name()))
                    .map(|(index, _)| index);
                ProjectionMask::leaves(schema, kept)
            }
        }
    }

    pub fn overlaps(&self, min: Option<u64>, max: Option<u64>) -> bool {
        min.is_none_or(|min| self.max_time >= min) && max.is_none_or(|max| self.min_time <= max)
    }

    pub fn may_hold_service(&self, service: Option<&str>) -> bool {
        service.is_none_or(|s| self.services.contains(s))
    }

    /// `None` when retention deleted the file after the caller took its
    /// snapshot of the segment list: the segment is simply gone.
    fn reader(&self) -> Result<Option<ParquetRecordBatchReaderBuilder<File>>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&self.path, error)),
        };
        Ok(Some(
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_batch_size(READ_BATCH_ROWS),
        ))
    }

    /// Spans of one trace in this segment.
    pub fn trace(&self, trace_id: TraceId, out: &mut Vec<Span>) -> Result<(), StoreError> {
        self.traces(&[trace_id], out)
    }

    /// Spans of several traces in this segment, with one reader: the pages
    /// read are the union of those that can hold any of the ids.
    pub fn traces(&self, trace_ids: &[TraceId], out: &mut Vec<Span>) -> Result<(), StoreError> {
        self.traces_with(trace_ids, SpanParts::Full, out)
    }

    /// [`Segment::traces`], reading only `parts` of each span.
    pub fn traces_with(
        &self,
        trace_ids: &[TraceId],
        parts: SpanParts,
        out: &mut Vec<Span>,
    ) -> Result<(), StoreError> {
        let mut wanted: Vec<[u8; 16]> = trace_ids.iter().map(|id| id.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut row_groups = Vec::new();
        let mut selectors = Vec::new();
        for (index, group) in self.trace_index.iter().enumerate() {
            let held: Vec<[u8; 16]> = wanted
                .iter()
                .filter(|id| group.may_hold(id))
                .copied()
                .collect();
            if held.is_empty() {
                continue;
            }
            let selection = group.selection(&held);
            if selection.iter().any(|s| !s.skip) {
                row_groups.push(index);
                selectors.extend(selection);
            }
        }
        if row_groups.is_empty() {
            return Ok(());
        }
        // The predicate tests every row of the selected pages: as big-endian
        // integers the ids order like their bytes and compare without a
        // `memcmp` call per probe (which was 13 % of a search's samples).
        let wanted: Vec<u128> = wanted.into_iter().map(u128::from_be_bytes).collect();
        let mask = ProjectionMask::leaves(self.metadata.parquet_schema(), [0]);
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| {
                    arrow_schema::ArrowError::SchemaError("trace_id column type".into())
                })?;
            Ok(BooleanArray::from_iter((0..ids.len()).map(|i| {
                let id = <[u8; 16]>::try_from(ids.value(i)).map(u128::from_be_bytes);
                Some(id.is_ok_and(|id| wanted.binary_search(&id).is_ok()))
            })))
        });
        let Some(reader) = self.reader()? else {
            return Ok(());
        };
        let reader = reader
            .with_row_groups(row_groups)
            .with_row_selection(RowSelection::from(selectors))
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            .with_projection(self.projection_of(parts))
            .build()
            .map_err(|e| parquet_error(&self.path, e))?;
        let mut shared = SharedParts::default();
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&self.path, e))?;
            let columns = SpanColumns::of(&batch, &self.promotion, parts)
                .map_err(|e| parquet_error(&self.path, e))?;
            for row in 0..batch.num_rows() {
                out.push(
                    columns
                        .span(row, &mut shared)
                        .map_err(|e| parquet_error(&self.path, e))?,
                );
            }
        }
        Ok(())
    }

    /// The spans of the segment that may match `filter` (a superset: the
    /// caller still tests each row), batch by batch; `visit` returns false
    /// to stop. Rows ruled out by the cheap columns or the attribute bytes
    /// are never fully decoded (see `prefilter`).
    pub fn for_each_span_batch(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&SpanColumns<'_>, &mut SharedParts) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let Some(reader) = self.filtered_reader(filter, None)? else {
            return Ok(());
        };
        let mut shared = SharedParts::default();
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&self.path, e))?;
            let columns = SpanColumns::new(&batch, &self.promotion)
                .map_err(|e| parquet_error(&self.path, e))?;
            if !visit(&columns, &mut shared)? {
                break;
            }
        }
        Ok(())
    }

    /// Like `for_each_span_batch`, but the batches hold only the named
    /// columns of the rows that may match.
    pub fn for_each_span_batch_of(
        &self,
        filter: &SpanFilter,
        columns: &[&str],
        visit: &mut dyn FnMut(&RecordBatch) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mask = crate::prefilter::leaves(self.metadata.parquet_schema(), columns);
        let Some(reader) = self.filtered_reader(filter, Some(mask))? else {
            return Ok(());
        };
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&self.path, e))?;
            if !visit(&batch)? {
                break;
            }
        }
        Ok(())
    }

    /// A reader of the rows that may match `filter` (attribute index, then
    /// row filters), with every column or `projection`; `None` when no row
    /// can match or the file is gone.
    fn filtered_reader(
        &self,
        filter: &SpanFilter,
        projection: Option<ProjectionMask>,
    ) -> Result<Option<ParquetRecordBatchReader>, StoreError> {
        let selection = self.attribute_selection(&filter.attributes);
        if selection
            .as_ref()
            .is_some_and(|selection| !selection.selects_any())
        {
            return Ok(None);
        }
        let Some(mut reader) = self.reader()? else {
            return Ok(None);
        };
        if let Some(selection) = selection {
            reader = reader.with_row_selection(selection);
        }
        if let Some(mask) = projection {
            reader = reader.with_projection(mask);
        }
        if let Some(row_filter) = crate::prefilter::span_row_filter(
            self.metadata.parquet_schema(),
            filter,
            &self.promotion,
        ) {
            reader = reader.with_row_filter(row_filter);
        }
        reader
            .build()
            .map(Some)
            .map_err(|e| parquet_error(&self.path, e))
    }

    #[cfg(test)]
    pub fn has_attr_index(&self) -> bool {
        self.has_attr_index
    }

    /// The rows the attribute index leaves for `filters`; `None` (read
    /// everything) without filters, without an index (segments written
    /// before it), or when it cannot be read, which is logged.
    pub(crate) fn attribute_selection(&self, filters: &[(String, String)]) -> Option<RowSelection> {
        if filters.is_empty() || !self.has_attr_index {
            return None;
        }
        match self.read_attr_index() {
            Ok(index) => index?.selection(filters),
            Err(reason) => {
                warn!(path = %self.path.display(), %reason, "ignoring unreadable attribute index");
                None
            }
        }
    }

    /// The attribute index from the footer, read again (it is not kept in
    /// memory); `None` when the file is gone.
    fn read_attr_index(&self) -> Result<Option<AttrIndex>, String> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let footer = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Skip)
            .parse_and_finish(&file)
            .map_err(|e| e.to_string())?;
        let stored = footer
            .file_metadata()
            .key_value_metadata()
            .and_then(|entries| entries.iter().find(|kv| kv.key == attr_index::METADATA_KEY))
            .and_then(|kv| kv.value.as_deref())
            .ok_or("attribute index missing from the footer")?;
        AttrIndex::decode(stored, self.rows)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Every log record of the segment, batch by batch; `visit` returns false to stop.
    pub fn for_each_log_batch(
        &self,
        visit: &mut dyn FnMut(&LogColumns<'_>, &mut SharedParts) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let Some(reader) = self.reader()? else {
            return Ok(());
        };
        let reader = reader.build().map_err(|e| parquet_error(&self.path, e))?;
        let mut shared = SharedParts::default();
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&self.path, e))?;
            let columns = LogColumns::new(&batch).map_err(|e| parquet_error(&self.path, e))?;
            if !visit(&columns, &mut shared)? {
                break;
            }
        }
        Ok(())
    }
}

/// The metadata without the attribute index entry (kept out of memory;
/// see `attr_index`), and whether there was one.
fn without_attr_index(
    metadata: ArrowReaderMetadata,
    options: ArrowReaderOptions,
) -> Result<(ArrowReaderMetadata, bool), parquet::errors::ParquetError> {
    let parquet = metadata.metadata();
    let file = parquet.file_metadata();
    let Some(entries) = file.key_value_metadata() else {
        return Ok((metadata, false));
    };
    if !entries.iter().any(|kv| kv.key == attr_index::METADATA_KEY) {
        return Ok((metadata, false));
    }
    let kept: Vec<KeyValue> = entries
        .iter()
        .filter(|kv| kv.key != attr_index::METADATA_KEY)
        .cloned()
        .collect();
    let file_metadata = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(kept),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut builder = ParquetMetaData::clone(parquet).into_builder();
    let stripped = ParquetMetaDataBuilder::new(file_metadata)
        .set_row_groups(builder.take_row_groups())
        .set_page_index(builder.take_page_index())
        .build();
    Ok((
        ArrowReaderMetadata::try_new(Arc::new(stripped), options)?,
        true,
    ))
}

/// The metadata a segment keeps in memory once its trace index is built:
/// only the offset half of the page index. Page min/max values are read
/// once, for the `trace_id` ranges of the trace index; no read prunes pages
/// by them, while the page locations let a trace read skip the pages of
/// every column it does not need. Kept for every segment, the column
/// indexes were about 2.3 MiB of idle memory at 10M spans.
fn slim_for_memory(
    metadata: ArrowReaderMetadata,
) -> Result<ArrowReaderMetadata, parquet::errors::ParquetError> {
    let parquet = metadata.metadata();
    let Some(index) = parquet.page_index() else {
        return Ok(metadata);
    };
    let offsets = offsets_only(index.as_ref(), parquet);
    let mut builder = ParquetMetaData::clone(parquet).into_builder();
    builder.take_page_index();
    let slim = builder.set_page_index(Some(offsets)).build();
    ArrowReaderMetadata::try_new(Arc::new(slim), ArrowReaderOptions::new())
}

fn offsets_only(
    index: &dyn PageIndexProvider,
    parquet: &ParquetMetaData,
) -> Arc<dyn PageIndexProvider> {
    let row_groups = parquet.num_row_groups();
    let columns = parquet.file_metadata().schema_descr().num_columns();
    let mut offsets = PageIndexBuilder::default();
    offsets.allocate_offset_indexes(row_groups, columns);
    for row_group in 0..row_groups {
        for column in 0..columns {
            if let Some(offset_index) = index.offset_index(row_group, column) {
                offsets.put_offset_index(offset_index.clone(), row_group, column);
            }
        }
    }
    Arc::new(offsets.build())
}
