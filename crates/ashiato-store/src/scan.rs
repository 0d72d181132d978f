//! Filter evaluation for scans, on decoded rows and on cheap Parquet columns.
//!
//! Segment scans first test the plain columns (time, service, name,
//! duration, status) and decode a row's blobs only when those pass.

use std::ops::ControlFlow;

use arrow_array::{Array, BinaryArray, FixedSizeBinaryArray, RecordBatch, UInt64Array};
use ashiato_model::{KeyValue, LogRecord, Resource, Severity, Span, TraceId, attr_get};

use crate::error::StoreError;
use crate::filter::{LogFilter, SpanFilter};
use crate::segment::{
    LogColumns, PromotedColumns, Segment, SharedParts, SpanColumns, parquet_error,
};

fn in_range(value: u64, min: Option<u64>, max: Option<u64>) -> bool {
    min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m)
}

/// The predicates that need no blob decoding.
pub(crate) fn span_columns_match(
    filter: &SpanFilter,
    start: u64,
    service: &str,
    name: &str,
    duration: u64,
    is_error: bool,
) -> bool {
    in_range(start, filter.start_min_ns, filter.start_max_ns)
        && filter.service.as_deref().is_none_or(|s| s == service)
        && filter.name.as_deref().is_none_or(|n| n == name)
        && in_range(duration, filter.min_duration_ns, filter.max_duration_ns)
        && (!filter.error_only || is_error)
}

fn span_attributes_match(filter: &SpanFilter, span: &Span) -> bool {
    attributes_match(filter, &span.attributes, &span.resource)
}

fn attributes_match(filter: &SpanFilter, own: &[KeyValue], resource: &Resource) -> bool {
    filter.attributes.iter().all(|(key, value)| {
        attr_get(own, key)
            .or_else(|| attr_get(resource.attributes(), key))
            .is_some_and(|found| found.matches_text(value))
    })
}

pub fn span_matches(filter: &SpanFilter, span: &Span) -> bool {
    span_columns_match(
        filter,
        span.start_time_unix_nano,
        span.service_name(),
        &span.name,
        span.duration_ns(),
        span.is_error(),
    ) && span_attributes_match(filter, span)
}

/// Visits the matching spans of one segment; `Break` when the visitor stopped.
pub fn scan_span_segment(
    segment: &Segment,
    filter: &SpanFilter,
    visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, StoreError> {
    let mut flow = ControlFlow::Continue(());
    segment.for_each_span_batch(
        filter,
        &mut |columns: &SpanColumns<'_>, shared: &mut SharedParts| {
            for row in 0..columns.rows {
                if !span_columns_match(
                    filter,
                    columns.start_time(row),
                    columns.service(row),
                    columns.name(row),
                    columns.duration_ns(row),
                    columns.is_error(row),
                ) {
                    continue;
                }
                let span = columns
                    .span(row, shared)
                    .map_err(|e| parquet_error(&segment.path, e))?;
                if span_attributes_match(filter, &span) && visit(&span).is_break() {
                    flow = ControlFlow::Break(());
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    Ok(flow)
}

/// Visits the trace id and start time of each matching span of one
/// segment; `Break` when the visitor stopped. The row filters are exact for
/// every predicate but the attributes, so only what the attribute test
/// needs of the surviving rows is read: the promoted columns of the filter
/// keys, and the blobs when a key may be there.
pub fn scan_span_segment_starts(
    segment: &Segment,
    filter: &SpanFilter,
    visit: &mut dyn FnMut(TraceId, u64) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, StoreError> {
    let promotion = segment.promotion();
    let mut columns: Vec<&str> = vec!["trace_id", "start_time"];
    if !filter.attributes.is_empty() {
        columns.push("resource");
        let mut needs_blob = false;
        for (key, _) in &filter.attributes {
            match promotion.get(key) {
                Some(promoted) => {
                    columns.push(promoted.column.as_str());
                    needs_blob |= !promoted.complete;
                }
                None => needs_blob = true,
            }
        }
        if needs_blob {
            columns.push("attributes");
        }
    }
    let corrupt = |reason: String| parquet_error(&segment.path, reason);
    let mut flow = ControlFlow::Continue(());
    let mut shared = SharedParts::default();
    segment.for_each_span_batch_of(filter, &columns, &mut |batch: &RecordBatch| {
        let trace_ids = column::<FixedSizeBinaryArray>(batch, "trace_id").map_err(corrupt)?;
        let starts = column::<UInt64Array>(batch, "start_time").map_err(corrupt)?;
        let promoted =
            PromotedColumns::new(batch, promotion).map_err(|e| corrupt(e.to_string()))?;
        let blobs = if filter.attributes.is_empty() {
            None
        } else {
            Some((
                batch
                    .column_by_name("attributes")
                    .and_then(|c| c.as_any().downcast_ref::<BinaryArray>()),
                column::<BinaryArray>(batch, "resource").map_err(corrupt)?,
            ))
        };
        for row in 0..batch.num_rows() {
            if let Some((attributes, resource)) = blobs {
                let own = match attributes {
                    Some(blobs) => promoted
                        .attributes(blobs.value(row), row)
                        .map_err(|e| corrupt(e.to_string()))?,
                    None => Vec::new(),
                };
                let resource = shared
                    .resource(resource.value(row))
                    .map_err(|e| corrupt(e.to_string()))?;
                if !row_attributes_match(filter, &promoted, row, &own, &resource) {
                    continue;
                }
            }
            let trace_id: [u8; 16] = trace_ids
                .value(row)
                .try_into()
                .map_err(|_| corrupt("trace_id is not 16 bytes".into()))?;
            if visit(TraceId(trace_id), starts.value(row)).is_break() {
                flow = ControlFlow::Break(());
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    Ok(flow)
}

/// The exact attribute test of one row of a projected batch: a promoted
/// column's value is the key's first occurrence when present; else the
/// row's own blob attributes (`own`, placeholders of projected columns
/// resolved), then the resource.
fn row_attributes_match(
    filter: &SpanFilter,
    promoted: &PromotedColumns<'_>,
    row: usize,
    own: &[KeyValue],
    resource: &Resource,
) -> bool {
    filter.attributes.iter().all(|(key, value)| {
        let in_column = promoted.array(key).and_then(|(_, array)| array.value(row));
        match in_column {
            Some(found) => found.matches_text(value),
            None => attr_get(own, key)
                .or_else(|| attr_get(resource.attributes(), key))
                .is_some_and(|found| found.matches_text(value)),
        }
    })
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("column {name} is missing or has an unexpected type"))
}

fn severity_of(number: u8, text: &str) -> u8 {
    if number != 0 {
        return number;
    }
    Severity::parse(text).map_or(0, |severity| severity.min_number())
}

fn body_contains(log: &LogRecord, needle_lowercase: &str) -> bool {
    log.body.to_text().to_lowercase().contains(needle_lowercase)
}

pub fn log_matches(filter: &LogFilter, log: &LogRecord) -> bool {
    in_range(
        log.effective_time_unix_nano(),
        filter.time_min_ns,
        filter.time_max_ns,
    ) && filter
        .service
        .as_deref()
        .is_none_or(|s| s == log.service_name())
        && filter
            .min_severity_number
            .is_none_or(|min| severity_of(log.severity_number, &log.severity_text) >= min)
        && filter.trace_id.is_none_or(|t| log.trace_id == Some(t))
        && filter
            .body_contains
            .as_deref()
            .is_none_or(|needle| body_contains(log, &needle.to_lowercase()))
}

/// Every matching log of one segment, newest first.
pub fn collect_log_segment(
    segment: &Segment,
    filter: &LogFilter,
) -> Result<Vec<LogRecord>, StoreError> {
    let mut found: Vec<LogRecord> = Vec::new();
    segment.for_each_log_batch(&mut |columns: &LogColumns<'_>, shared: &mut SharedParts| {
        for row in 0..columns.rows {
            let cheap_match = in_range(
                columns.effective_time(row),
                filter.time_min_ns,
                filter.time_max_ns,
            ) && filter
                .service
                .as_deref()
                .is_none_or(|s| s == columns.service(row))
                && filter
                    .trace_id
                    .is_none_or(|t| columns.trace_id(row) == Some(t));
            if !cheap_match {
                continue;
            }
            let log = columns
                .log(row, shared)
                .map_err(|e| parquet_error(&segment.path, e))?;
            if log_matches(filter, &log) {
                found.push(log);
            }
        }
        Ok(true)
    })?;
    found.sort_by_key(|log| std::cmp::Reverse(log.effective_time_unix_nano()));
    Ok(found)
}
