//! Filter evaluation for scans, on decoded rows and on cheap Parquet columns.
//!
//! Segment scans first test the plain columns (time, service, name,
//! duration, status) and decode a row's blobs only when those pass.

use std::ops::ControlFlow;

use ashiato_model::{LogRecord, Severity, Span, attr_get};

use crate::segment::{LogColumns, Segment, SharedParts, SpanColumns, parquet_error};
use crate::{LogFilter, SpanFilter, StoreError};

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
    filter.attributes.iter().all(|(key, value)| {
        attr_get(&span.attributes, key)
            .or_else(|| attr_get(span.resource.attributes(), key))
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
