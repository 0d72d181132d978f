//! Reading rows back: typed access to the columns of a record batch read
//! from a segment (`SpanColumns`, `LogColumns`, `PromotedColumns`), and the
//! rebuilding of spans and log records from them, sharing decoded resources
//! and scopes between rows (`SharedParts`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    Array, BinaryArray, FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use ashiato_model::{
    KeyValue as Attribute, LogRecord, Resource, Scope, Span, SpanId, Status, TraceId,
};

use crate::codec::{self, Decoder};
use crate::promoted::{PromotedArray, PromotedKey, Promotion};

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

/// The error for a blob of `column` that did not decode.
fn codec_error(column: &'static str) -> impl FnOnce(codec::CodecError) -> ColumnError {
    move |source| ColumnError::Codec { column, source }
}

fn decode<'a, T>(
    column: &'static str,
    blob: &'a [u8],
    read: impl FnOnce(&mut Decoder<'a>) -> Result<T, codec::CodecError>,
) -> Result<T, ColumnError> {
    codec::unblob(blob, read).map_err(codec_error(column))
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
    pub(super) fn of(
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
                Some(blobs) => self
                    .promoted
                    .attributes(blobs.value(row), row)
                    .map_err(codec_error("attributes"))?,
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
                .map_err(codec_error("resource"))?,
            scope: shared
                .scope(self.scope.value(row))
                .map_err(codec_error("scope"))?,
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
                .map_err(codec_error("resource"))?,
            scope: shared
                .scope(self.scope.value(row))
                .map_err(codec_error("scope"))?,
        })
    }
}
