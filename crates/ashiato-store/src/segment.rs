//! Immutable Parquet segments: writing sealed memtables, reading rows back.
//!
//! Span segments are sorted by trace id then start time, so each row group
//! covers a narrow trace-id range (kept in memory from the footer statistics)
//! and a `trace_id` bloom filter is written for later use; a trace lookup
//! opens only row groups whose range holds the id and decodes only rows whose
//! `trace_id` matches (a Parquet row filter). Log segments are sorted by
//! service then time. Nested parts (attributes, events, links, resource,
//! scope) are blobs in ashiato's own codec; repeated resource/scope blobs
//! collapse under Parquet dictionary encoding, the rest under zstd. A span
//! segment's frequent attribute keys get nullable columns of their own
//! (`attr.<n>`, see `promoted`), and the attributes blob keeps a
//! placeholder where each of them was, so attributes read back in order.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{BinaryBuilder, Int64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Int64Array, RecordBatch,
    StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ashiato_model::{
    AttrValue, KeyValue as Attribute, LogRecord, Resource, Scope, Span, SpanId, Status, TraceId,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowFilter, RowSelection, RowSelector,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::page_index::{PageIndexBuilder, PageIndexProvider};
use parquet::file::metadata::{
    FileMetaData, KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataBuilder,
    ParquetMetaDataReader,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use tracing::warn;

use crate::attr_index::{self, AttrIndex};
use crate::codec::{self, Decoder, Encoder};
use crate::error::StoreError;
use crate::promoted::{self, PromotedArray, PromotedKey, PromotedKind, Promotion};
use crate::stats::{Counts, OpStats};
use crate::wal::io_error;

/// Rows per row group: large enough for good compression, small enough that
/// a trace lookup decodes little.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page: what a trace lookup reads of each column.
const PAGE_ROWS: usize = 8 * 1024;
const PAGE_BYTES: usize = 128 * 1024;
/// Columns (of span and log segments) whose values rarely repeat.
const UNIQUE_COLUMNS: &[&str] = &[
    "trace_id",
    "ids",
    "span_id",
    "parent_span_id",
    "start_time",
    "end_offset",
    "attributes",
    "time",
    "observed_time",
];
const ZSTD_LEVEL: i32 = 3;
/// The attribute blobs are most of a segment (about 60 % of its bytes at
/// level 3). zstd's level-5 match finder (lazy instead of double-fast) finds
/// the repeated keys and values of neighbouring rows much better: measured
/// on a sealed 1M-span store, 37.8 → 31 B/span, for about three times the
/// compression CPU of that column (≈ 1 s more per million spans).
/// DELTA_LENGTH_BYTE_ARRAY would save another 0.9 B/span but made the
/// attribute prefilter (a row filter over this column) twice as slow.
const ATTRIBUTES_ZSTD_LEVEL: i32 = 5;
/// Columns that are random (ids) or nearly constant/tiny in practice: stored
/// uncompressed. Parquet builds a zstd context per compressed column chunk,
/// on write and on every read, and creating one costs tens of microseconds
/// on a VM (it runs `cpuid`), which a trace lookup pays for each column.
const UNCOMPRESSED_COLUMNS: &[&str] = &[
    "span_id",
    "service",
    "kind",
    "status_code",
    "status_message",
    "flags",
    "trace_state",
    "links",
    "scope",
    "severity_number",
];
/// Columns nothing reads statistics of (the trace index needs `trace_id`'s,
/// time and names keep theirs): no min/max per page and row group, which
/// also spares comparing every random id and every blob while writing.
const NO_STATISTICS_COLUMNS: &[&str] = &[
    "ids",
    "span_id",
    "parent_span_id",
    "status_message",
    "flags",
    "trace_state",
    "attributes",
    "events",
    "links",
    "resource",
    "scope",
    "body",
];
/// Integer columns with random high bytes and similar low ones: byte stream
/// split lets zstd see each byte plane (about 0.1 B/span less each).
const SPLIT_COLUMNS: &[&str] = &["start_time", "end_offset"];
const READ_BATCH_ROWS: usize = 8192;
/// The `ids` column of span segments: the span id, then the parent span id
/// (zeros for a root; ids are never all-zero). Side by side, zstd finds a
/// parent's id among the span ids of the few rows before it (a trace's rows
/// are contiguous): measured 12.4 → 8.9 B/span against separate `span_id`
/// and `parent_span_id` columns, with nothing read from other rows, so row
/// filters can still decode any row alone. Older segments have the two
/// separate columns and are read as before (see [`SpanIds`]).
const IDS_WIDTH: i32 = 16;

fn joined_ids(span: &Span) -> [u8; 16] {
    let mut ids = [0u8; 16];
    ids[..8].copy_from_slice(&span.span_id.0);
    if let Some(parent) = span.parent_span_id {
        ids[8..].copy_from_slice(&parent.0);
    }
    ids
}

pub fn parquet_error(path: &Path, source: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: source.to_string(),
    }
}

fn span_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("trace_id", DataType::FixedSizeBinary(16), false),
                Field::new("ids", DataType::FixedSizeBinary(IDS_WIDTH), false),
                Field::new("service", DataType::Utf8, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("kind", DataType::UInt8, false),
                Field::new("start_time", DataType::UInt64, false),
                Field::new("end_offset", DataType::Int64, false),
                Field::new("status_code", DataType::UInt8, false),
                Field::new("status_message", DataType::Utf8, false),
                Field::new("flags", DataType::UInt32, false),
                Field::new("trace_state", DataType::Utf8, false),
                Field::new("attributes", DataType::Binary, false),
                Field::new("events", DataType::Binary, false),
                Field::new("links", DataType::Binary, false),
                Field::new("resource", DataType::Binary, false),
                Field::new("scope", DataType::Binary, false),
            ]))
        })
        .clone()
}

/// The span schema plus one nullable column per promoted key.
fn span_schema_with(promotion: &Promotion) -> SchemaRef {
    if promotion.is_empty() {
        return span_schema();
    }
    let mut fields: Vec<Field> = span_schema()
        .fields()
        .iter()
        .map(|field| field.as_ref().clone())
        .collect();
    fields.extend(promotion.keys().iter().map(promoted_field));
    Arc::new(Schema::new(fields))
}

/// Dictionary-encoded string columns are read back as Arrow dictionaries
/// (the Parquet dictionary page becomes the array's values), so a search
/// compares the query with each distinct value once.
fn promoted_field(key: &PromotedKey) -> Field {
    let data_type = match (key.kind, key.dictionary) {
        (PromotedKind::Str, true) => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        (PromotedKind::Str, false) => DataType::Utf8,
        (PromotedKind::Int, _) => DataType::Int64,
    };
    Field::new(key.column.as_str(), data_type, true).with_metadata(HashMap::from([(
        promoted::FIELD_KEY.to_owned(),
        key.key.clone(),
    )]))
}

fn log_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("service", DataType::Utf8, false),
                Field::new("time", DataType::UInt64, false),
                Field::new("observed_time", DataType::UInt64, false),
                Field::new("severity_number", DataType::UInt8, false),
                Field::new("severity_text", DataType::Utf8, false),
                Field::new("body", DataType::Binary, false),
                Field::new("trace_id", DataType::FixedSizeBinary(16), true),
                Field::new("span_id", DataType::FixedSizeBinary(8), true),
                Field::new("flags", DataType::UInt32, false),
                Field::new("event_name", DataType::Utf8, false),
                Field::new("attributes", DataType::Binary, false),
                Field::new("resource", DataType::Binary, false),
                Field::new("scope", DataType::Binary, false),
            ]))
        })
        .clone()
}

/// Writer settings; `trace_bloom_ndv` sizes the `trace_id` bloom filter
/// (span segments only).
fn writer_properties(trace_bloom_ndv: Option<u64>) -> Result<WriterProperties, StoreError> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| parquet_error(Path::new(""), e))?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Small pages let a trace lookup decompress little of each column.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_data_page_size_limit(PAGE_BYTES);
    // Nearly unique per row: a dictionary would not shrink them, and a trace
    // lookup would have to decompress the whole (large) dictionary page of
    // every column it touches. Measured: 38.8 → 33.8 bytes/span and trace
    // lookups 2.5 → 1.2 ms once these went plain.
    for column in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    for column in UNCOMPRESSED_COLUMNS {
        builder =
            builder.set_column_compression(ColumnPath::from(*column), Compression::UNCOMPRESSED);
    }
    for column in NO_STATISTICS_COLUMNS {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    for column in SPLIT_COLUMNS {
        builder =
            builder.set_column_encoding(ColumnPath::from(*column), Encoding::BYTE_STREAM_SPLIT);
    }
    let attributes_level =
        ZstdLevel::try_new(ATTRIBUTES_ZSTD_LEVEL).map_err(|e| parquet_error(Path::new(""), e))?;
    builder = builder.set_column_compression(
        ColumnPath::from("attributes"),
        Compression::ZSTD(attributes_level),
    );
    if let Some(ndv) = trace_bloom_ndv {
        let trace_id = ColumnPath::from("trace_id");
        builder = builder
            .set_column_bloom_filter_enabled(trace_id.clone(), true)
            .set_column_bloom_filter_fpp(trace_id.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(trace_id, ndv.clamp(1, ROW_GROUP_ROWS as u64));
    }
    Ok(builder.build())
}

/// What the catalog and the in-memory segment list need to know about a
/// freshly written segment.
pub struct WrittenSegment {
    pub rows: u64,
    pub bytes: u64,
    pub min_time: u64,
    pub max_time: u64,
    pub services: BTreeSet<String>,
    pub ops: OpStats,
}

/// Blobs of shared values are encoded once per distinct `Arc`. Looked up
/// twice per row (resource and scope), so the map hashes the pointer with
/// foldhash rather than SipHash (8 % of a seal's samples were these
/// lookups), and a row with its predecessor's `Arc` skips the map.
struct BlobCache<T> {
    blobs: HashMap<*const T, Arc<Vec<u8>>, foldhash::fast::FixedState>,
    last: Option<(*const T, Arc<Vec<u8>>)>,
}

impl<T> BlobCache<T> {
    fn new() -> Self {
        BlobCache {
            blobs: HashMap::default(),
            last: None,
        }
    }

    fn get(&mut self, value: &Arc<T>, encode: impl FnOnce(&mut Encoder, &T)) -> Arc<Vec<u8>> {
        let pointer = Arc::as_ptr(value);
        if let Some((last, blob)) = &self.last
            && *last == pointer
        {
            return blob.clone();
        }
        let blob = self
            .blobs
            .entry(pointer)
            .or_insert_with(|| Arc::new(codec::blob(|e| encode(e, value))))
            .clone();
        self.last = Some((pointer, blob.clone()));
        blob
    }
}

/// Writes `batches`, then the key-value metadata `trailer` returns (known
/// only once every batch is written).
fn write_file(
    path: &Path,
    schema: SchemaRef,
    props: WriterProperties,
    batches: impl Iterator<Item = Result<RecordBatch, StoreError>>,
    trailer: impl FnOnce() -> Vec<KeyValue>,
) -> Result<u64, StoreError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| parquet_error(path, e))?;
    for batch in batches {
        writer.write(&batch?).map_err(|e| parquet_error(path, e))?;
    }
    for entry in trailer() {
        writer.append_key_value_metadata(entry);
    }
    let file = writer.into_inner().map_err(|e| parquet_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    let bytes = file.metadata().map_err(|e| io_error(path, e))?.len();
    Ok(bytes)
}

/// Writes spans, sorted by trace id then start time, to a new Parquet file,
/// with columns for the segment's frequent attribute keys (`promoted`).
pub fn write_spans(path: &Path, spans: &[&Span]) -> Result<WrittenSegment, StoreError> {
    write_spans_promoting(path, spans, promoted::MAX_PROMOTED)
}

/// `spans` in segment order: by trace id, then start time. The sort keys
/// are copied out first, because comparing through the references read
/// two scattered spans for every comparison. A trace id as a big-endian
/// integer orders like its bytes.
fn segment_order<'a>(spans: &[&'a Span]) -> Vec<&'a Span> {
    let mut keys: Vec<(u128, u64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(at, span)| {
            let trace = u128::from_be_bytes(span.trace_id.0);
            (trace, span.start_time_unix_nano, at)
        })
        .collect();
    keys.sort_unstable();
    keys.iter().map(|&(_, _, at)| spans[at]).collect()
}

/// [`write_spans`] with at most `max_promoted` attribute columns; 0 writes
/// the layout of segments from before promotion (tests of old segments).
pub(crate) fn write_spans_promoting(
    path: &Path,
    spans: &[&Span],
    max_promoted: usize,
) -> Result<WrittenSegment, StoreError> {
    let order = segment_order(spans);
    let distinct_traces = order
        .windows(2)
        .filter(|w| w[0].trace_id != w[1].trace_id)
        .count()
        + 1;
    let mut summary = WrittenSegment {
        rows: order.len() as u64,
        bytes: 0,
        min_time: u64::MAX,
        max_time: 0,
        services: BTreeSet::new(),
        ops: OpStats::new(),
    };
    // In arrival order: neighbours share their batch's resource and lie
    // close together in memory (in segment order every span is a miss).
    // Counts are summed per (service, operation) in a hash map first: the
    // nested B-trees of `OpStats` compared strings several times per span.
    let mut last_resource = std::ptr::null();
    let mut ops: HashMap<(&str, &str), Counts, foldhash::fast::RandomState> = HashMap::default();
    for span in spans {
        summary.min_time = summary.min_time.min(span.start_time_unix_nano);
        summary.max_time = summary.max_time.max(span.start_time_unix_nano);
        if Arc::as_ptr(&span.resource) != last_resource {
            last_resource = Arc::as_ptr(&span.resource);
            if !summary.services.contains(span.service_name()) {
                summary.services.insert(span.service_name().to_owned());
            }
        }
        let counts = ops
            .entry((span.service_name(), span.name.as_str()))
            .or_default();
        counts.spans += 1;
        counts.errors += u64::from(span.is_error());
    }
    for ((service, name), counts) in ops {
        summary.ops.add(service, name, counts);
    }
    let promotion = promoted::choose(&order, max_promoted);
    let schema = span_schema_with(&promotion);
    let mut props = writer_properties(Some(distinct_traces as u64))?.into_builder();
    for key in promotion.keys() {
        props = promoted_column_properties(props, key)?;
    }
    let props = props.build();
    let complete = RefCell::new(vec![true; promotion.keys().len()]);
    let mut resources = BlobCache::new();
    let mut scopes = BlobCache::new();
    // The attribute index is built beside the Parquet writer: sealing is one
    // thread, and at sustained ingest it is the busiest one while the other
    // core has room (docs/benchmarks.md, "Where ashiato's ingest stops").
    summary.bytes = std::thread::scope(|scope| {
        let index = std::thread::Builder::new()
            .name("ashiato-attr-index".to_owned())
            .spawn_scoped(scope, || crate::attr_index::build(&order))
            .map_err(|e| io_error(path, e))?;
        let batches = order.chunks(ROW_GROUP_ROWS).map(|chunk| {
            span_batch(
                chunk,
                &schema,
                &promotion,
                &mut complete.borrow_mut(),
                &mut resources,
                &mut scopes,
            )
            .map_err(|e| parquet_error(path, e))
        });
        let trailer = || {
            let index = index
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let mut promotion = promotion.clone();
            promotion.set_complete(&complete.borrow());
            let mut entries = vec![index];
            if !promotion.is_empty() {
                entries.push(KeyValue::new(
                    promoted::METADATA_KEY.to_owned(),
                    promotion.encode(),
                ));
            }
            entries
        };
        write_file(path, schema.clone(), props, batches, trailer)
    })?;
    Ok(summary)
}

/// Writer settings of one promoted column: a dictionary, uncompressed,
/// when its values repeat, else plain with zstd (see `promoted`); no
/// statistics (nothing reads them).
fn promoted_column_properties(
    props: WriterPropertiesBuilder,
    key: &PromotedKey,
) -> Result<WriterPropertiesBuilder, StoreError> {
    let column = ColumnPath::from(key.column.as_str());
    let compression = if key.dictionary {
        Compression::UNCOMPRESSED
    } else {
        let level = ZstdLevel::try_new(promoted::PLAIN_ZSTD_LEVEL)
            .map_err(|e| parquet_error(Path::new(""), e))?;
        Compression::ZSTD(level)
    };
    Ok(props
        .set_column_dictionary_enabled(column.clone(), key.dictionary)
        .set_column_compression(column.clone(), compression)
        .set_column_statistics_enabled(column, EnabledStatistics::None))
}

/// One blob per row (each exactly what `codec::blob` would return), encoded
/// back to back into one buffer and copied once into the Arrow array: no
/// allocation per row and no regrowing of the array while it fills.
fn blobs<T>(
    rows: &[&T],
    encode: impl Fn(&mut Encoder, &T),
) -> Result<BinaryArray, arrow_schema::ArrowError> {
    let mut encoder = Encoder::default();
    let mut ends = Vec::with_capacity(rows.len());
    for row in rows {
        encode(&mut encoder, row);
        ends.push(encoder.buf.len());
    }
    binary_array(&encoder, ends)
}

/// The blobs `encoder` holds back to back, ending at `ends`, as one array.
fn binary_array(
    encoder: &Encoder,
    ends: Vec<usize>,
) -> Result<BinaryArray, arrow_schema::ArrowError> {
    if i32::try_from(encoder.buf.len()).is_err() {
        return Err(arrow_schema::ArrowError::ComputeError(format!(
            "{} bytes of blobs in one batch",
            encoder.buf.len()
        )));
    }
    let mut builder = BinaryBuilder::with_capacity(ends.len(), encoder.buf.len());
    let mut start = 0;
    for end in ends {
        builder.append_value(&encoder.buf[start..end]);
        start = end;
    }
    Ok(builder.finish())
}

/// An encoded resource or scope, shared by the rows that carry it.
type Blob = Arc<Vec<u8>>;

/// The encoded resource and scope of each row, one encoding per distinct
/// `Arc` (spans and logs of one batch share them).
fn shared_blobs<T>(
    rows: &[&T],
    parts: impl Fn(&T) -> (&Arc<Resource>, &Arc<Scope>),
    resources: &mut BlobCache<Resource>,
    scopes: &mut BlobCache<Scope>,
) -> (Vec<Blob>, Vec<Blob>) {
    rows.iter()
        .map(|row| {
            let (resource, scope) = parts(row);
            (
                resources.get(resource, |e, r| e.resource(r)),
                scopes.get(scope, |e, s| e.scope(s)),
            )
        })
        .unzip()
}

fn span_batch(
    spans: &[&Span],
    schema: &SchemaRef,
    promotion: &Promotion,
    complete: &mut [bool],
    resources: &mut BlobCache<Resource>,
    scopes: &mut BlobCache<Scope>,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let (resource_blobs, scope_blobs) =
        shared_blobs(spans, |s| (&s.resource, &s.scope), resources, scopes);
    let (attributes, promoted_columns) = attribute_columns(spans, promotion, complete)?;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(FixedSizeBinaryArray::try_from_iter(
            spans.iter().map(|s| s.trace_id.0),
        )?),
        Arc::new(FixedSizeBinaryArray::try_from_iter(
            spans.iter().map(|s| joined_ids(s)),
        )?),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.service_name()),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.name.as_str()),
        )),
        Arc::new(UInt8Array::from_iter_values(
            spans.iter().map(|s| codec::kind_to_u8(s.kind)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            spans.iter().map(|s| s.start_time_unix_nano),
        )),
        Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| {
            codec::end_offset(s.start_time_unix_nano, s.end_time_unix_nano)
        }))),
        Arc::new(UInt8Array::from_iter_values(
            spans.iter().map(|s| codec::status_to_u8(s.status.code)),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.status.message.as_str()),
        )),
        Arc::new(UInt32Array::from_iter_values(spans.iter().map(|s| s.flags))),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.trace_state.as_str()),
        )),
        Arc::new(attributes),
        Arc::new(blobs(spans, |e, s| e.events(&s.events))?),
        Arc::new(blobs(spans, |e, s| e.links(&s.links))?),
        Arc::new(BinaryArray::from_iter_values(
            resource_blobs.iter().map(|b| b.as_slice()),
        )),
        Arc::new(BinaryArray::from_iter_values(
            scope_blobs.iter().map(|b| b.as_slice()),
        )),
    ];
    columns.extend(promoted_columns);
    RecordBatch::try_new(schema.clone(), columns)
}

/// The `attributes` blobs of `spans` and the promoted columns: the first
/// occurrence of a promoted key whose value has the column's type goes to
/// the column, with a placeholder in its place in the blob; any other
/// occurrence stays in the blob and clears the key's `complete` flag. So a
/// value in the column is always the key's first (the one a lookup sees).
///
/// Rows come sorted by trace id, scattered over the memtable, so every
/// key and value read is a likely cache miss: each block of rows is first
/// warmed (see `attr_index::warm`) and each value goes to its column's
/// builder while its bytes are still in cache, in the same pass that
/// writes the blob.
fn attribute_columns(
    spans: &[&Span],
    promotion: &Promotion,
    complete: &mut [bool],
) -> Result<(BinaryArray, Vec<ArrayRef>), arrow_schema::ArrowError> {
    if promotion.is_empty() {
        return Ok((blobs(spans, |e, s| e.attrs(&s.attributes))?, Vec::new()));
    }
    let keys = promotion.keys();
    let mut columns: Vec<PromotedBuilder> = keys
        .iter()
        .map(|key| PromotedBuilder::new(key, spans.len()))
        .collect();
    let mut slots: Vec<Option<&AttrValue>> = vec![None; keys.len()];
    let mut seen = vec![false; keys.len()];
    // Spans of one source list their keys in the same order: remember the
    // key seen at each position and what it maps to, to skip most lookups.
    let mut hints: Vec<(&str, Option<usize>)> = Vec::new();
    let mut encoder = Encoder::default();
    let mut ends = Vec::with_capacity(spans.len());
    let mut lists: Vec<&[Attribute]> = Vec::with_capacity(attr_index::WARM_LISTS);
    for block in spans.chunks(attr_index::WARM_LISTS) {
        lists.clear();
        lists.extend(block.iter().map(|span| span.attributes.as_slice()));
        attr_index::warm(&lists);
        for span in block {
            slots.fill(None);
            seen.fill(false);
            encoder.u64(span.attributes.len() as u64);
            for (at, kv) in span.attributes.iter().enumerate() {
                let position = match hints.get(at) {
                    Some((key, position)) if *key == kv.key => *position,
                    _ => {
                        let position = promotion.position(&kv.key);
                        if at < hints.len() {
                            hints[at] = (kv.key.as_str(), position);
                        } else {
                            hints.push((kv.key.as_str(), position));
                        }
                        position
                    }
                };
                // Only a key's first occurrence may go to its column (it is
                // the one lookups see), and only when it has the column's
                // type.
                let first = position.filter(|&index| !std::mem::replace(&mut seen[index], true));
                match first {
                    Some(index) if promoted::kind_of(&kv.value) == Some(keys[index].kind) => {
                        encoder.promoted_placeholder(index);
                        slots[index] = Some(&kv.value);
                    }
                    _ => {
                        if let Some(index) = position {
                            complete[index] = false;
                        }
                        encoder.str(&kv.key);
                        encoder.value(&kv.value);
                    }
                }
            }
            ends.push(encoder.buf.len());
            for (column, slot) in columns.iter_mut().zip(&slots) {
                column.append(*slot);
            }
        }
    }
    let blobs = binary_array(&encoder, ends)?;
    let columns = columns.into_iter().map(PromotedBuilder::finish).collect();
    Ok((blobs, columns))
}

/// The Arrow builder of one promoted column of a batch.
enum PromotedBuilder {
    Dictionary(StringDictionaryBuilder<Int32Type>),
    Plain(StringBuilder),
    Int(Int64Builder),
}

/// Bytes reserved per row for a plain string column's values (`http.url`
/// of the benchmark workload is about 60); the builder grows past it.
const PLAIN_BYTES_PER_ROW: usize = 64;

impl PromotedBuilder {
    fn new(key: &PromotedKey, rows: usize) -> PromotedBuilder {
        match (key.kind, key.dictionary) {
            (PromotedKind::Str, true) => {
                PromotedBuilder::Dictionary(StringDictionaryBuilder::with_capacity(rows, 256, 4096))
            }
            (PromotedKind::Str, false) => PromotedBuilder::Plain(StringBuilder::with_capacity(
                rows,
                rows * PLAIN_BYTES_PER_ROW,
            )),
            (PromotedKind::Int, _) => PromotedBuilder::Int(Int64Builder::with_capacity(rows)),
        }
    }

    /// Appends a row's value; a value of another type than the column's is
    /// never passed (it stays in the blob), and would append a null.
    fn append(&mut self, value: Option<&AttrValue>) {
        match (self, value) {
            (PromotedBuilder::Dictionary(builder), Some(AttrValue::Str(text))) => {
                builder.append_value(text)
            }
            (PromotedBuilder::Plain(builder), Some(AttrValue::Str(text))) => {
                builder.append_value(text)
            }
            (PromotedBuilder::Int(builder), Some(AttrValue::Int(number))) => {
                builder.append_value(*number)
            }
            (PromotedBuilder::Dictionary(builder), _) => builder.append_null(),
            (PromotedBuilder::Plain(builder), _) => builder.append_null(),
            (PromotedBuilder::Int(builder), _) => builder.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            PromotedBuilder::Dictionary(mut builder) => Arc::new(builder.finish()),
            PromotedBuilder::Plain(mut builder) => Arc::new(builder.finish()),
            PromotedBuilder::Int(mut builder) => Arc::new(builder.finish()),
        }
    }
}

/// Writes log records, sorted by service then time, to a new Parquet file.
pub fn write_logs(path: &Path, logs: &[&LogRecord]) -> Result<WrittenSegment, StoreError> {
    let mut order: Vec<&LogRecord> = logs.to_vec();
    order.sort_by(|a, b| {
        (a.service_name(), a.effective_time_unix_nano())
            .cmp(&(b.service_name(), b.effective_time_unix_nano()))
    });
    let mut summary = WrittenSegment {
        rows: order.len() as u64,
        bytes: 0,
        min_time: u64::MAX,
        max_time: 0,
        services: BTreeSet::new(),
        ops: OpStats::new(),
    };
    for log in &order {
        let time = log.effective_time_unix_nano();
        summary.min_time = summary.min_time.min(time);
        summary.max_time = summary.max_time.max(time);
        if !summary.services.contains(log.service_name()) {
            summary.services.insert(log.service_name().to_owned());
        }
    }
    let mut resources = BlobCache::new();
    let mut scopes = BlobCache::new();
    let batches = order.chunks(ROW_GROUP_ROWS).map(|chunk| {
        log_batch(chunk, &mut resources, &mut scopes).map_err(|e| parquet_error(path, e))
    });
    summary.bytes = write_file(
        path,
        log_schema(),
        writer_properties(None)?,
        batches,
        Vec::new,
    )?;
    Ok(summary)
}

fn log_batch(
    logs: &[&LogRecord],
    resources: &mut BlobCache<Resource>,
    scopes: &mut BlobCache<Scope>,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let (resource_blobs, scope_blobs) =
        shared_blobs(logs, |l| (&l.resource, &l.scope), resources, scopes);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.service_name()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            logs.iter().map(|l| l.time_unix_nano),
        )),
        Arc::new(UInt64Array::from_iter_values(
            logs.iter().map(|l| l.observed_time_unix_nano),
        )),
        Arc::new(UInt8Array::from_iter_values(
            logs.iter().map(|l| l.severity_number),
        )),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.severity_text.as_str()),
        )),
        Arc::new(blobs(logs, |e, l| e.value(&l.body))?),
        Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            logs.iter().map(|l| l.trace_id.map(|t| t.0)),
            16,
        )?),
        Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            logs.iter().map(|l| l.span_id.map(|s| s.0)),
            8,
        )?),
        Arc::new(UInt32Array::from_iter_values(logs.iter().map(|l| l.flags))),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.event_name.as_str()),
        )),
        Arc::new(blobs(logs, |e, l| e.attrs(&l.attributes))?),
        Arc::new(BinaryArray::from_iter_values(
            resource_blobs.iter().map(|b| b.as_slice()),
        )),
        Arc::new(BinaryArray::from_iter_values(
            scope_blobs.iter().map(|b| b.as_slice()),
        )),
    ];
    RecordBatch::try_new(log_schema(), columns)
}

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

/// What a trace lookup needs to know about one row group without reading it.
struct RowGroupTraceIndex {
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
    fn may_hold(&self, id: &[u8; 16]) -> bool {
        self.range.is_none_or(|(min, max)| min <= *id && *id <= max)
            && self.bloom.as_ref().is_none_or(|bloom| bloom.check(&id[..]))
    }

    /// Which rows of the group to read: the pages whose range holds one of
    /// the ids.
    fn selection(&self, ids: &[[u8; 16]]) -> Vec<RowSelector> {
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
        filter: &crate::filter::SpanFilter,
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
        filter: &crate::filter::SpanFilter,
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
        filter: &crate::filter::SpanFilter,
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

/// The promoted keys a segment's footer lists; none without the entry.
/// Read from the Arrow schema's metadata (which holds the file's key-value
/// metadata); a file rewritten through an `ArrowWriter` loses that entry but
/// keeps the field metadata of each promoted column, which names its key
/// (then no column is known to be complete).
fn promotion_of(schema: &Schema) -> Result<Promotion, promoted::PromotionError> {
    if let Some(text) = schema.metadata().get(promoted::METADATA_KEY) {
        return Promotion::decode(text);
    }
    let keys = schema
        .fields()
        .iter()
        .filter_map(|field| {
            let key = field.metadata().get(promoted::FIELD_KEY)?;
            let kind = match field.data_type() {
                DataType::Int64 => PromotedKind::Int,
                _ => PromotedKind::Str,
            };
            Some(PromotedKey {
                key: key.clone(),
                kind,
                column: field.name().clone(),
                complete: false,
                dictionary: false,
            })
        })
        .collect();
    Promotion::from_keys(keys)
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

fn trace_index(
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

/// Decoded resources and scopes shared by rows with identical blobs, so a
/// segment's thousands of rows share a handful of `Arc`s as the model intends.
#[derive(Default)]
pub struct SharedParts {
    resources: HashMap<Vec<u8>, Arc<Resource>>,
    scopes: HashMap<Vec<u8>, Arc<Scope>>,
}

impl SharedParts {
    pub(crate) fn resource(&mut self, blob: &[u8]) -> Result<Arc<Resource>, codec::CodecError> {
        if let Some(resource) = self.resources.get(blob) {
            return Ok(resource.clone());
        }
        let resource = Arc::new(codec::unblob(blob, Decoder::resource)?);
        self.resources.insert(blob.to_vec(), resource.clone());
        Ok(resource)
    }

    fn scope(&mut self, blob: &[u8]) -> Result<Arc<Scope>, codec::CodecError> {
        if let Some(scope) = self.scopes.get(blob) {
            return Ok(scope.clone());
        }
        let scope = Arc::new(codec::unblob(blob, Decoder::scope)?);
        self.scopes.insert(blob.to_vec(), scope.clone());
        Ok(scope)
    }
}

/// Why a Parquet batch does not look like an ashiato segment.
#[derive(Debug, thiserror::Error)]
pub enum ColumnError {
    #[error("column {0} is missing or has an unexpected type")]
    BadColumn(&'static str),
    #[error("undecodable {column}: {source}")]
    Codec {
        column: &'static str,
        source: codec::CodecError,
    },
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a T, ColumnError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or(ColumnError::BadColumn(name))
}

fn decode<'a, T>(
    column: &'static str,
    blob: &'a [u8],
    read: impl FnOnce(&mut Decoder<'a>) -> Result<T, codec::CodecError>,
) -> Result<T, ColumnError> {
    codec::unblob(blob, read).map_err(|source| ColumnError::Codec { column, source })
}

fn fixed<const N: usize>(array: &FixedSizeBinaryArray, row: usize) -> Option<[u8; N]> {
    if array.is_null(row) {
        return None;
    }
    array.value(row).try_into().ok()
}

/// Where a span batch keeps the span and parent ids.
enum SpanIds<'a> {
    /// One `ids` column (span id ‖ parent id or zeros).
    Joined(&'a FixedSizeBinaryArray),
    /// Segments written before the `ids` column.
    Separate {
        span_id: &'a FixedSizeBinaryArray,
        parent_span_id: &'a FixedSizeBinaryArray,
    },
}

impl<'a> SpanIds<'a> {
    fn new(batch: &'a RecordBatch) -> Result<SpanIds<'a>, ColumnError> {
        if batch.column_by_name("ids").is_some() {
            return Ok(SpanIds::Joined(column(batch, "ids")?));
        }
        Ok(SpanIds::Separate {
            span_id: column(batch, "span_id")?,
            parent_span_id: column(batch, "parent_span_id")?,
        })
    }

    fn get(&self, row: usize) -> Result<(SpanId, Option<SpanId>), ColumnError> {
        match self {
            SpanIds::Joined(ids) => {
                let ids = fixed::<16>(ids, row).ok_or(ColumnError::BadColumn("ids"))?;
                let (span, parent) = ids.split_at(8);
                let span: [u8; 8] = span.try_into().map_err(|_| ColumnError::BadColumn("ids"))?;
                let parent: [u8; 8] = parent
                    .try_into()
                    .map_err(|_| ColumnError::BadColumn("ids"))?;
                if span == [0; 8] {
                    return Err(ColumnError::BadColumn("ids"));
                }
                let parent = (parent != [0; 8]).then_some(SpanId(parent));
                Ok((SpanId(span), parent))
            }
            SpanIds::Separate {
                span_id,
                parent_span_id,
            } => {
                let span = fixed::<8>(span_id, row).ok_or(ColumnError::BadColumn("span_id"))?;
                Ok((SpanId(span), fixed::<8>(parent_span_id, row).map(SpanId)))
            }
        }
    }
}

/// Typed views of one span batch's columns; cheap columns can be tested
/// before a row's blobs are decoded.
/// How much of each span a trace read decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanParts {
    /// Everything.
    Full,
    /// Ids, names, times, status, resource and scope; no attributes, events
    /// or links. Enough to summarise a trace in search results, and most of
    /// the bytes a trace read decompresses are in the parts left out.
    Outline,
}

pub struct SpanColumns<'a> {
    pub rows: usize,
    trace_id: &'a FixedSizeBinaryArray,
    ids: SpanIds<'a>,
    service: &'a StringArray,
    name: &'a StringArray,
    kind: &'a UInt8Array,
    start_time: &'a UInt64Array,
    end_offset: &'a Int64Array,
    status_code: &'a UInt8Array,
    status_message: &'a StringArray,
    flags: &'a UInt32Array,
    trace_state: &'a StringArray,
    /// `None` in an outline read (see [`SpanParts`]), with `events` and
    /// `links` likewise.
    attributes: Option<&'a BinaryArray>,
    events: Option<&'a BinaryArray>,
    links: Option<&'a BinaryArray>,
    resource: &'a BinaryArray,
    scope: &'a BinaryArray,
    promoted: PromotedColumns<'a>,
}

/// The promoted columns of a batch, by the index their placeholders name;
/// `None` for a column the batch does not hold.
pub(crate) struct PromotedColumns<'a> {
    promotion: &'a Promotion,
    arrays: Vec<Option<PromotedArray<'a>>>,
}

impl<'a> PromotedColumns<'a> {
    pub(crate) fn new(
        batch: &'a RecordBatch,
        promotion: &'a Promotion,
    ) -> Result<PromotedColumns<'a>, ColumnError> {
        let arrays = promotion
            .keys()
            .iter()
            .map(|key| match batch.column_by_name(&key.column) {
                None => Ok(None),
                Some(array) => PromotedArray::new(array.as_ref())
                    .map(Some)
                    .ok_or(ColumnError::BadColumn("promoted attribute")),
            })
            .collect::<Result<_, _>>()?;
        Ok(PromotedColumns { promotion, arrays })
    }

    pub(crate) fn array(&self, key: &str) -> Option<(&PromotedKey, &PromotedArray<'a>)> {
        let position = self.promotion.position(key)?;
        let array = self.arrays.get(position)?.as_ref()?;
        Some((&self.promotion.keys()[position], array))
    }

    /// Whether every promoted column is in the batch.
    fn all_present(&self) -> bool {
        self.arrays.iter().all(Option::is_some)
    }

    /// Decodes a row's attributes blob, placeholders replaced by the column
    /// values; placeholders of columns the batch does not hold (a
    /// projection) are left out.
    pub(crate) fn attributes(
        &self,
        blob: &[u8],
        row: usize,
    ) -> Result<Vec<Attribute>, codec::CodecError> {
        if self.promotion.is_empty() {
            return codec::unblob(blob, Decoder::attrs);
        }
        codec::unblob(blob, |decoder| {
            decoder.attrs_with(|index| {
                let missing = codec::CodecError::BadIndex {
                    what: "promoted attribute",
                    index,
                };
                let position = usize::try_from(index).map_err(|_| missing.clone())?;
                let (Some(key), Some(array)) = (
                    self.promotion.keys().get(position),
                    self.arrays.get(position),
                ) else {
                    return Err(missing);
                };
                let Some(array) = array else {
                    return Ok(None);
                };
                let value = array.value(row).ok_or(missing)?;
                Ok(Some(Attribute {
                    key: key.key.clone(),
                    value,
                }))
            })
        })
    }
}

impl<'a> SpanColumns<'a> {
    pub fn new(
        batch: &'a RecordBatch,
        promotion: &'a Promotion,
    ) -> Result<SpanColumns<'a>, ColumnError> {
        SpanColumns::of(batch, promotion, SpanParts::Full)
    }

    /// Views of a batch read with `parts`' projection.
    fn of(
        batch: &'a RecordBatch,
        promotion: &'a Promotion,
        parts: SpanParts,
    ) -> Result<SpanColumns<'a>, ColumnError> {
        let promoted = PromotedColumns::new(batch, promotion)?;
        let full = parts == SpanParts::Full;
        if full && !promoted.all_present() {
            return Err(ColumnError::BadColumn("promoted attribute"));
        }
        let blob = |name: &'static str| full.then(|| column(batch, name)).transpose();
        Ok(SpanColumns {
            promoted,
            rows: batch.num_rows(),
            trace_id: column(batch, "trace_id")?,
            ids: SpanIds::new(batch)?,
            service: column(batch, "service")?,
            name: column(batch, "name")?,
            kind: column(batch, "kind")?,
            start_time: column(batch, "start_time")?,
            end_offset: column(batch, "end_offset")?,
            status_code: column(batch, "status_code")?,
            status_message: column(batch, "status_message")?,
            flags: column(batch, "flags")?,
            trace_state: column(batch, "trace_state")?,
            attributes: blob("attributes")?,
            events: blob("events")?,
            links: blob("links")?,
            resource: column(batch, "resource")?,
            scope: column(batch, "scope")?,
        })
    }

    pub fn service(&self, row: usize) -> &str {
        self.service.value(row)
    }

    pub fn name(&self, row: usize) -> &str {
        self.name.value(row)
    }

    pub fn start_time(&self, row: usize) -> u64 {
        self.start_time.value(row)
    }

    pub fn duration_ns(&self, row: usize) -> u64 {
        let start = self.start_time.value(row);
        codec::end_from_offset(start, self.end_offset.value(row)).saturating_sub(start)
    }

    pub fn is_error(&self, row: usize) -> bool {
        codec::status_from_u8(self.status_code.value(row)) == ashiato_model::StatusCode::Error
    }

    /// Decodes one full span.
    pub fn span(&self, row: usize, shared: &mut SharedParts) -> Result<Span, ColumnError> {
        let trace_id = fixed::<16>(self.trace_id, row).ok_or(ColumnError::BadColumn("trace_id"))?;
        let (span_id, parent_span_id) = self.ids.get(row)?;
        let start_time_unix_nano = self.start_time.value(row);
        Ok(Span {
            trace_id: TraceId(trace_id),
            span_id,
            parent_span_id,
            trace_state: self.trace_state.value(row).to_owned(),
            flags: self.flags.value(row),
            name: self.name.value(row).to_owned(),
            kind: codec::kind_from_u8(self.kind.value(row)),
            start_time_unix_nano,
            end_time_unix_nano: codec::end_from_offset(
                start_time_unix_nano,
                self.end_offset.value(row),
            ),
            attributes: match self.attributes {
                Some(blobs) => {
                    self.promoted
                        .attributes(blobs.value(row), row)
                        .map_err(|source| ColumnError::Codec {
                            column: "attributes",
                            source,
                        })?
                }
                None => Vec::new(),
            },
            events: match self.events {
                Some(blobs) => decode("events", blobs.value(row), Decoder::events)?,
                None => Vec::new(),
            },
            links: match self.links {
                Some(blobs) => decode("links", blobs.value(row), Decoder::links)?,
                None => Vec::new(),
            },
            status: Status {
                code: codec::status_from_u8(self.status_code.value(row)),
                message: self.status_message.value(row).to_owned(),
            },
            resource: shared
                .resource(self.resource.value(row))
                .map_err(|source| ColumnError::Codec {
                    column: "resource",
                    source,
                })?,
            scope: shared
                .scope(self.scope.value(row))
                .map_err(|source| ColumnError::Codec {
                    column: "scope",
                    source,
                })?,
        })
    }
}

/// Typed views of one log batch's columns.
pub struct LogColumns<'a> {
    pub rows: usize,
    service: &'a StringArray,
    time: &'a UInt64Array,
    observed_time: &'a UInt64Array,
    severity_number: &'a UInt8Array,
    severity_text: &'a StringArray,
    body: &'a BinaryArray,
    trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    flags: &'a UInt32Array,
    event_name: &'a StringArray,
    attributes: &'a BinaryArray,
    resource: &'a BinaryArray,
    scope: &'a BinaryArray,
}

impl<'a> LogColumns<'a> {
    pub fn new(batch: &'a RecordBatch) -> Result<LogColumns<'a>, ColumnError> {
        Ok(LogColumns {
            rows: batch.num_rows(),
            service: column(batch, "service")?,
            time: column(batch, "time")?,
            observed_time: column(batch, "observed_time")?,
            severity_number: column(batch, "severity_number")?,
            severity_text: column(batch, "severity_text")?,
            body: column(batch, "body")?,
            trace_id: column(batch, "trace_id")?,
            span_id: column(batch, "span_id")?,
            flags: column(batch, "flags")?,
            event_name: column(batch, "event_name")?,
            attributes: column(batch, "attributes")?,
            resource: column(batch, "resource")?,
            scope: column(batch, "scope")?,
        })
    }

    pub fn service(&self, row: usize) -> &str {
        self.service.value(row)
    }

    pub fn effective_time(&self, row: usize) -> u64 {
        match self.time.value(row) {
            0 => self.observed_time.value(row),
            time => time,
        }
    }

    pub fn trace_id(&self, row: usize) -> Option<TraceId> {
        fixed::<16>(self.trace_id, row).map(TraceId)
    }

    /// Decodes one full log record.
    pub fn log(&self, row: usize, shared: &mut SharedParts) -> Result<LogRecord, ColumnError> {
        Ok(LogRecord {
            time_unix_nano: self.time.value(row),
            observed_time_unix_nano: self.observed_time.value(row),
            severity_number: self.severity_number.value(row),
            severity_text: self.severity_text.value(row).to_owned(),
            body: decode("body", self.body.value(row), Decoder::value)?,
            attributes: decode("attributes", self.attributes.value(row), Decoder::attrs)?,
            trace_id: self.trace_id(row),
            span_id: fixed::<8>(self.span_id, row).map(SpanId),
            flags: self.flags.value(row),
            event_name: self.event_name.value(row).to_owned(),
            resource: shared
                .resource(self.resource.value(row))
                .map_err(|source| ColumnError::Codec {
                    column: "resource",
                    source,
                })?,
            scope: shared
                .scope(self.scope.value(row))
                .map_err(|source| ColumnError::Codec {
                    column: "scope",
                    source,
                })?,
        })
    }
}

/// Copies a segment through a plain `ArrowWriter`, as an outside tool
/// would: the rows and the Arrow schema survive, the key-value metadata
/// ashiato wrote (attribute index, promotion) does not.
#[cfg(test)]
pub(crate) fn copy_through_arrow_writer(from: &Path, to: &Path) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(from).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut writer = ArrowWriter::try_new(
        File::create(to).unwrap(),
        arrow_array::RecordBatchReader::schema(&reader),
        None,
    )
    .unwrap();
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.close().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ashiato_model::{AttrValue, KeyValue, SpanKind};

    fn span(trace: u8, id: u64, parent: Option<u64>, start: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
            trace_state: String::new(),
            flags: 1,
            name: format!("op{id}"),
            kind: SpanKind::Server,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 5,
            attributes: vec![KeyValue::new("n", AttrValue::Int(id as i64))],
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: Arc::new(Resource::new(vec![KeyValue::new(
                "service.name",
                AttrValue::Str("svc".into()),
            )])),
            scope: Arc::new(Scope::default()),
        }
    }

    fn read_back(path: &Path, written: WrittenSegment, trace: u8) -> Vec<Span> {
        let segment = Segment::open(1, path.to_path_buf(), written, true).unwrap();
        let mut out = Vec::new();
        segment.trace(TraceId([trace; 16]), &mut out).unwrap();
        out
    }

    /// The key-copying sort orders like comparing the spans themselves:
    /// trace id bytes (high bytes first, also above 0x7f), then start time.
    #[test]
    fn segment_order_is_trace_id_then_start() {
        let mut spans = Vec::new();
        for (n, trace) in [0x80u8, 0x01, 0xff, 0x7f, 0x80, 0x00, 0x01]
            .into_iter()
            .enumerate()
        {
            let mut first = span(trace, n as u64, None, 100 - n as u64);
            first.trace_id.0[15] = n as u8 % 2;
            spans.push(first);
            spans.push(span(trace, 10 + n as u64, None, 50 + n as u64));
        }
        let refs: Vec<&Span> = spans.iter().collect();
        let mut expected = refs.clone();
        expected.sort_by(|a, b| {
            (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano))
        });
        let ordered = segment_order(&refs);
        let key = |s: &&Span| (s.trace_id, s.start_time_unix_nano, s.span_id);
        assert_eq!(
            ordered.iter().map(key).collect::<Vec<_>>(),
            expected.iter().map(key).collect::<Vec<_>>()
        );
    }

    /// Each case is a trace as sent; it must come back span for span.
    #[test]
    fn joined_ids_round_trip() {
        let cases: Vec<(&str, Vec<Span>)> = vec![
            ("root only", vec![span(1, 1, None, 10)]),
            (
                "parents in the trace",
                vec![
                    span(2, 1, None, 10),
                    span(2, 2, Some(1), 11),
                    span(2, 3, Some(2), 12),
                    span(2, 4, Some(1), 13),
                ],
            ),
            (
                "parent outside the segment",
                vec![span(3, 7, Some(99), 10), span(3, 8, Some(7), 11)],
            ),
            (
                "duplicate span id",
                vec![span(4, 5, Some(1), 10), span(4, 5, Some(1), 10)],
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<&Span> = cases.iter().flat_map(|(_, spans)| spans).collect();
        let path = dir.path().join("spans.parquet");
        let written = write_spans(&path, &all).unwrap();
        let segment = Segment::open(1, path.clone(), written, true).unwrap();
        for (case, spans) in &cases {
            let mut out = Vec::new();
            segment.trace(spans[0].trace_id, &mut out).unwrap();
            assert_eq!(&out, spans, "{case}");
        }
    }

    /// Segments written before the `ids` column (separate `span_id` and
    /// `parent_span_id`) still read back.
    #[test]
    fn separate_id_columns_still_read() {
        let spans = [span(5, 1, None, 10), span(5, 2, Some(1), 11)];
        let dir = tempfile::tempdir().unwrap();
        let new_path = dir.path().join("new.parquet");
        let refs: Vec<&Span> = spans.iter().collect();
        let written = write_spans(&new_path, &refs).unwrap();
        // Rewrite the file with the old layout: `ids` split in two columns.
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&new_path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let old_path = dir.path().join("old.parquet");
        let mut writer: Option<ArrowWriter<File>> = None;
        for batch in reader {
            let batch = batch.unwrap();
            let mut fields = Vec::new();
            let mut columns: Vec<ArrayRef> = Vec::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if field.name() != "ids" {
                    fields.push(field.as_ref().clone());
                    columns.push(column.clone());
                    continue;
                }
                let ids = column
                    .as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .unwrap();
                let half = |range: std::ops::Range<usize>| {
                    (0..ids.len()).map(move |row| {
                        let bytes = &ids.value(row)[range.clone()];
                        (bytes != [0; 8]).then(|| bytes.to_vec())
                    })
                };
                fields.push(Field::new("span_id", DataType::FixedSizeBinary(8), false));
                columns.push(Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(half(0..8), 8).unwrap(),
                ));
                fields.push(Field::new(
                    "parent_span_id",
                    DataType::FixedSizeBinary(8),
                    true,
                ));
                columns.push(Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(half(8..16), 8).unwrap(),
                ));
            }
            let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
            let writer = writer.get_or_insert_with(|| {
                ArrowWriter::try_new(File::create(&old_path).unwrap(), old.schema(), None).unwrap()
            });
            writer.write(&old).unwrap();
        }
        writer.unwrap().close().unwrap();
        assert_eq!(read_back(&old_path, written, 5), spans);
    }
}
