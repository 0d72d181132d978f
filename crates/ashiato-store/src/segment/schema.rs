//! What a segment file looks like: the Arrow schemas of span and log
//! segments (plus the promoted attribute columns of a span segment, and how
//! a footer names them), and how each column is encoded and compressed.
//!
//! Everything that decides a segment's bytes besides the rows themselves is
//! here; `write` and `read` both build on it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::StoreError;
use crate::promoted::{self, PromotedKey, PromotedKind, Promotion};

use super::parquet_error;

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
/// The `ids` column of span segments: the span id, then the parent span id
/// (zeros for a root; ids are never all-zero). Side by side, zstd finds a
/// parent's id among the span ids of the few rows before it (a trace's rows
/// are contiguous): measured 12.4 → 8.9 B/span against separate `span_id`
/// and `parent_span_id` columns, with nothing read from other rows, so row
/// filters can still decode any row alone. Older segments have the two
/// separate columns and are read as before (see [`SpanIds`]).
const IDS_WIDTH: i32 = 16;

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
pub(super) fn span_schema_with(promotion: &Promotion) -> SchemaRef {
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

pub(super) fn log_schema() -> SchemaRef {
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
pub(super) fn writer_properties(
    trace_bloom_ndv: Option<u64>,
) -> Result<WriterProperties, StoreError> {
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

/// The promoted keys a segment's footer lists; none without the entry.
/// Read from the Arrow schema's metadata (which holds the file's key-value
/// metadata); a file rewritten through an `ArrowWriter` loses that entry but
/// keeps the field metadata of each promoted column, which names its key
/// (then no column is known to be complete).
pub(super) fn promotion_of(schema: &Schema) -> Result<Promotion, promoted::PromotionError> {
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
