//! OTLP protobuf messages → ashiato model, with per-item validation.
//!
//! JSON bodies are translated into the opentelemetry-proto messages by
//! `json` and end here, as do gRPC-decoded messages and, as the reference
//! and fallback, prost-decoded protobuf bodies. Protobuf bodies normally go
//! through `direct`, which reuses the id checks and rejection texts below
//! and is tested to give the same result as this path.
//!
//! Invalid items are rejected one by one and counted in a [`Report`]; the
//! rest of the batch is kept. Attribute values nested deeper than
//! [`MAX_VALUE_DEPTH`] are truncated to `Empty` (the item is kept, and the
//! report carries a warning) — no real SDK nests that deep, and keeping the
//! span is worth more than keeping a pathological value.

use std::sync::Arc;

use ashiato_model::{
    AttrValue, Attributes, Event, IdError, KeyValue, Link, LogRecord, Resource, Scope, Span,
    SpanId, SpanKind, Status, StatusCode, TraceId,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;

use crate::Decoded;

/// Deepest nesting of array/kvlist attribute values we keep; deeper values
/// become `AttrValue::Empty`.
pub const MAX_VALUE_DEPTH: usize = 64;

/// How many distinct rejection reasons an error message lists.
const MAX_REASONS: usize = 3;

/// Longest span name quoted in a rejection reason.
const MAX_QUOTED_NAME: usize = 64;

/// What was rejected or altered while decoding one request, turned into the
/// OTLP `partial_success` fields at the end.
#[derive(Debug)]
pub(crate) struct Report {
    singular: &'static str,
    plural: &'static str,
    rejected: u64,
    reasons: Vec<String>,
    dropped_links: u64,
    truncated_values: u64,
    warnings: Vec<String>,
}

impl Report {
    pub(crate) fn for_spans() -> Report {
        Report::new("span", "spans")
    }

    pub(crate) fn for_log_records() -> Report {
        Report::new("log record", "log records")
    }

    fn new(singular: &'static str, plural: &'static str) -> Report {
        Report {
            singular,
            plural,
            rejected: 0,
            reasons: Vec::new(),
            dropped_links: 0,
            truncated_values: 0,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// An item holding text that is not Unicode (non-UTF-8 protobuf
    /// strings, lone surrogates in JSON).
    pub(crate) fn reject_invalid_text(&mut self) {
        self.reject(format!(
            "{} has a string that is not valid unicode (invalid UTF-8 or a lone surrogate)",
            self.singular
        ));
    }

    pub(crate) fn drop_link(&mut self) {
        self.dropped_links += 1;
    }

    /// Links dropped from a kept item (the one-pass decoder counts per item).
    pub(crate) fn add_dropped_links(&mut self, count: u64) {
        self.dropped_links += count;
    }

    /// Values truncated inside a kept item.
    pub(crate) fn add_truncated(&mut self, count: u64) {
        self.truncated_values += count;
    }

    pub(crate) fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    pub(crate) fn finish<T>(self, items: Vec<T>) -> Decoded<T> {
        let error_message = self.message();
        Decoded {
            items,
            rejected: self.rejected,
            error_message,
        }
    }

    fn message(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.rejected > 0 {
            let noun = if self.rejected == 1 {
                self.singular
            } else {
                self.plural
            };
            let mut text = format!(
                "{} {noun} rejected: {}",
                self.rejected,
                self.reasons.join("; ")
            );
            let unexplained = self.rejected.saturating_sub(self.reasons.len() as u64);
            if unexplained > 0 && self.reasons.len() == MAX_REASONS {
                text.push_str(&format!("; and {unexplained} more"));
            }
            parts.push(text);
        }
        if self.dropped_links > 0 {
            let noun = if self.dropped_links == 1 {
                "link"
            } else {
                "links"
            };
            parts.push(format!(
                "dropped {} {noun} with an invalid id",
                self.dropped_links
            ));
        }
        if self.truncated_values > 0 {
            parts.push(format!(
                "truncated {} attribute value(s) nested deeper than {MAX_VALUE_DEPTH} levels",
                self.truncated_values
            ));
        }
        parts.extend(self.warnings.iter().cloned());
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Converts a decoded trace export request (the gRPC path: tonic already
/// decoded the protobuf).
pub fn traces_from_proto(request: ExportTraceServiceRequest) -> Decoded<Span> {
    let mut report = Report::for_spans();
    let spans = convert_traces(request, &mut report);
    report.finish(spans)
}

/// Converts a decoded logs export request.
pub fn logs_from_proto(request: ExportLogsServiceRequest) -> Decoded<LogRecord> {
    let mut report = Report::for_log_records();
    let records = convert_logs(request, &mut report);
    report.finish(records)
}

/// Counts the data points of a metrics export request (metrics are not
/// stored; the count goes into `rejected_data_points`).
pub fn metric_points_in(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|resource_metrics| &resource_metrics.scope_metrics)
        .flat_map(|scope_metrics| &scope_metrics.metrics)
        .map(|metric| match &metric.data {
            Some(Data::Gauge(gauge)) => gauge.data_points.len(),
            Some(Data::Sum(sum)) => sum.data_points.len(),
            Some(Data::Histogram(histogram)) => histogram.data_points.len(),
            Some(Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
            Some(Data::Summary(summary)) => summary.data_points.len(),
            None => 0,
        })
        .map(|count| count as u64)
        .sum()
}

pub(crate) fn convert_traces(request: ExportTraceServiceRequest, report: &mut Report) -> Vec<Span> {
    let span_count = request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len())
        .sum();
    let mut spans = Vec::with_capacity(span_count);
    for resource_spans in request.resource_spans {
        let resource = Arc::new(convert_resource(resource_spans.resource, report));
        for scope_spans in resource_spans.scope_spans {
            let scope = Arc::new(convert_scope(scope_spans.scope, report));
            for span in scope_spans.spans {
                match convert_span(span, &resource, &scope, report) {
                    Ok(span) => spans.push(span),
                    Err(reason) => report.reject(reason),
                }
            }
        }
    }
    spans
}

pub(crate) fn convert_logs(
    request: ExportLogsServiceRequest,
    report: &mut Report,
) -> Vec<LogRecord> {
    let record_count = request
        .resource_logs
        .iter()
        .flat_map(|resource_logs| &resource_logs.scope_logs)
        .map(|scope_logs| scope_logs.log_records.len())
        .sum();
    let mut records = Vec::with_capacity(record_count);
    for resource_logs in request.resource_logs {
        let resource = Arc::new(convert_resource(resource_logs.resource, report));
        for scope_logs in resource_logs.scope_logs {
            let scope = Arc::new(convert_scope(scope_logs.scope, report));
            for record in scope_logs.log_records {
                match convert_log_record(record, &resource, &scope, report) {
                    Ok(record) => records.push(record),
                    Err(reason) => report.reject(reason),
                }
            }
        }
    }
    records
}

fn convert_resource(resource: Option<resource::Resource>, report: &mut Report) -> Resource {
    let attributes = resource
        .map(|resource| resource.attributes)
        .unwrap_or_default();
    Resource::new(convert_attributes(attributes, 0, report))
}

fn convert_scope(scope: Option<common::InstrumentationScope>, report: &mut Report) -> Scope {
    let scope = scope.unwrap_or_default();
    Scope {
        name: scope.name,
        version: scope.version,
        attributes: convert_attributes(scope.attributes, 0, report),
    }
}

/// A span, or the reason it is rejected.
fn convert_span(
    span: trace::Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    report: &mut Report,
) -> Result<Span, String> {
    let trace_id = TraceId::from_bytes(&span.trace_id)
        .map_err(|error| span_problem(&span.name, "trace id", &error))?;
    let span_id = SpanId::from_bytes(&span.span_id)
        .map_err(|error| span_problem(&span.name, "span id", &error))?;
    let parent_span_id = parent_id(&span.parent_span_id)
        .map_err(|error| span_problem(&span.name, "parent span id", &error))?;
    let status = span.status.unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind: SpanKind::from_otlp(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: convert_attributes(span.attributes, 0, report),
        events: span
            .events
            .into_iter()
            .map(|event| convert_event(event, report))
            .collect(),
        links: span
            .links
            .into_iter()
            .filter_map(|link| convert_link(link, report))
            .collect(),
        status: Status {
            code: StatusCode::from_otlp(status.code),
            message: status.message,
        },
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// Empty and all-zero parent ids both mean "root"; any other length is an
/// error, since guessing would silently detach a subtree.
pub(crate) fn parent_id(bytes: &[u8]) -> Result<Option<SpanId>, IdError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match SpanId::from_bytes(bytes) {
        Ok(id) => Ok(Some(id)),
        Err(IdError::Zero { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

pub(crate) fn span_problem(name: &str, field: &str, problem: &dyn std::fmt::Display) -> String {
    format!(
        "span '{}' has an invalid {field}: {problem}",
        quoted_name(name)
    )
}

pub(crate) fn log_problem(field: &str, problem: &dyn std::fmt::Display) -> String {
    format!("log record has an invalid {field}: {problem}")
}

fn quoted_name(name: &str) -> String {
    if name.chars().count() <= MAX_QUOTED_NAME {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(MAX_QUOTED_NAME).collect();
    short.push('…');
    short
}

fn convert_event(event: trace::span::Event, report: &mut Report) -> Event {
    Event {
        time_unix_nano: event.time_unix_nano,
        name: event.name,
        attributes: convert_attributes(event.attributes, 0, report),
    }
}

/// Links with invalid ids are dropped, not the span that carries them: the
/// span itself is fine, and a link to nowhere is useless anyway.
fn convert_link(link: trace::span::Link, report: &mut Report) -> Option<Link> {
    let ids = TraceId::from_bytes(&link.trace_id)
        .and_then(|trace_id| SpanId::from_bytes(&link.span_id).map(|span_id| (trace_id, span_id)));
    let Ok((trace_id, span_id)) = ids else {
        report.drop_link();
        return None;
    };
    Some(Link {
        trace_id,
        span_id,
        trace_state: link.trace_state,
        attributes: convert_attributes(link.attributes, 0, report),
        flags: link.flags,
    })
}

fn convert_log_record(
    record: logs::LogRecord,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    report: &mut Report,
) -> Result<LogRecord, String> {
    let trace_id =
        optional_trace_id(&record.trace_id).map_err(|error| log_problem("trace id", &error))?;
    let span_id =
        optional_span_id(&record.span_id).map_err(|error| log_problem("span id", &error))?;
    Ok(LogRecord {
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        severity_number: severity_number(record.severity_number),
        severity_text: record.severity_text,
        body: convert_value(record.body, 0, report),
        attributes: convert_attributes(record.attributes, 0, report),
        trace_id,
        span_id,
        flags: record.flags,
        event_name: record.event_name,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// Log correlation ids are optional: empty or all-zero means "none".
pub(crate) fn optional_trace_id(bytes: &[u8]) -> Result<Option<TraceId>, IdError> {
    match TraceId::from_bytes(bytes) {
        Ok(id) => Ok(Some(id)),
        Err(IdError::Zero { .. }) => Ok(None),
        Err(_) if bytes.is_empty() => Ok(None),
        Err(error) => Err(error),
    }
}

pub(crate) fn optional_span_id(bytes: &[u8]) -> Result<Option<SpanId>, IdError> {
    match SpanId::from_bytes(bytes) {
        Ok(id) => Ok(Some(id)),
        Err(IdError::Zero { .. }) => Ok(None),
        Err(_) if bytes.is_empty() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Severity numbers outside the defined 0..=24 read as unspecified.
pub(crate) fn severity_number(value: i32) -> u8 {
    u8::try_from(value)
        .ok()
        .filter(|number| *number <= 24)
        .unwrap_or(0)
}

fn convert_attributes(
    attributes: Vec<common::KeyValue>,
    depth: usize,
    report: &mut Report,
) -> Attributes {
    attributes
        .into_iter()
        .map(|attribute| KeyValue {
            key: attribute.key,
            value: convert_value(attribute.value, depth, report),
        })
        .collect()
}

fn convert_value(value: Option<common::AnyValue>, depth: usize, report: &mut Report) -> AttrValue {
    use common::any_value::Value;
    let Some(value) = value.and_then(|any| any.value) else {
        return AttrValue::Empty;
    };
    if depth >= MAX_VALUE_DEPTH {
        report.truncated_values += 1;
        return AttrValue::Empty;
    }
    match value {
        Value::StringValue(text) => AttrValue::Str(text),
        Value::BoolValue(flag) => AttrValue::Bool(flag),
        Value::IntValue(number) => AttrValue::Int(number),
        Value::DoubleValue(number) => AttrValue::Float(number),
        Value::BytesValue(bytes) => AttrValue::Bytes(bytes),
        Value::ArrayValue(array) => AttrValue::Array(
            array
                .values
                .into_iter()
                .map(|element| convert_value(Some(element), depth + 1, report))
                .collect(),
        ),
        Value::KvlistValue(list) => {
            AttrValue::Map(convert_attributes(list.values, depth + 1, report))
        }
        // String-table references only mean something inside profiles.
        Value::StringValueStrindex(_) => AttrValue::Empty,
    }
}
