//! Writing a sealed memtable as a segment: rows sorted (spans by trace id
//! then start time, logs by service then time), nested parts encoded as
//! blobs in the store's codec (shared resources and scopes once each),
//! frequent attribute keys moved to their own columns, the attribute index
//! built alongside, then the file fsynced.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use arrow_schema::SchemaRef;
use ashiato_model::{AttrValue, KeyValue as Attribute, LogRecord, Resource, Scope, Span};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::attr_index;
use crate::codec::{self, Encoder};
use crate::error::StoreError;
use crate::promoted::{self, PromotedKey, PromotedKind, Promotion};
use crate::stats::{Counts, OpStats};
use crate::wal::io_error;

use super::schema::{ROW_GROUP_ROWS, log_schema, span_schema_with, writer_properties};
use super::{WrittenSegment, parquet_error};

pub(super) fn joined_ids(span: &Span) -> [u8; 16] {
    let mut ids = [0u8; 16];
    ids[..8].copy_from_slice(&span.span_id.0);
    if let Some(parent) = span.parent_span_id {
        ids[8..].copy_from_slice(&parent.0);
    }
    ids
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
pub(super) fn segment_order<'a>(spans: &[&'a Span]) -> Vec<&'a Span> {
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

/// Copies a segment through a plain `ArrowWriter`, as an outside tool
/// would: the rows and the Arrow schema survive, the key-value metadata
/// ashiato wrote (attribute index, promotion) does not.
#[cfg(test)]
pub(crate) fn copy_through_arrow_writer(from: &Path, to: &Path) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
