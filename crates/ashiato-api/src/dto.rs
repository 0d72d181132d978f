//! The JSON shapes of `/api/v1`, and their construction from the model.
//!
//! Conventions, relied on by the CLI and (later) the web UI:
//! - nanosecond times and durations (`*_unix_nano`, `*_ns`) are decimal
//!   strings, because browsers lose precision above 2^53;
//! - ids are lowercase hex; an absent parent or log id is `null`;
//! - attribute lists become JSON objects whose values keep their types:
//!   string, int, float and bool as themselves, arrays as arrays, key/value
//!   lists as nested objects, bytes as a base64 string, a value-less key as
//!   `null`. A float that JSON cannot carry (NaN, ±infinity) becomes the
//!   string `"NaN"`, `"Infinity"` or `"-Infinity"`, as proto3 JSON does.

use ashiato_model::{AttrValue, Event, KeyValue, Link, LogRecord, Span, TraceId};
use ashiato_query::{OperationStats, ServiceStats, TraceSummary};
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Serialize)]
pub struct ServicesResponse {
    pub services: Vec<CountsDto>,
}

#[derive(Debug, Serialize)]
pub struct OperationsResponse {
    pub operations: Vec<CountsDto>,
}

/// Span and error counts of one service or operation.
#[derive(Debug, Serialize)]
pub struct CountsDto {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

impl From<ServiceStats> for CountsDto {
    fn from(stats: ServiceStats) -> CountsDto {
        CountsDto {
            name: stats.name,
            span_count: stats.span_count,
            error_count: stats.error_count,
        }
    }
}

impl From<OperationStats> for CountsDto {
    fn from(stats: OperationStats) -> CountsDto {
        CountsDto {
            name: stats.name,
            span_count: stats.span_count,
            error_count: stats.error_count,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TracesResponse {
    pub traces: Vec<TraceSummaryDto>,
}

#[derive(Debug, Serialize)]
pub struct TraceSummaryDto {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start_time_unix_nano: String,
    pub duration_ns: String,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
}

impl From<TraceSummary> for TraceSummaryDto {
    fn from(summary: TraceSummary) -> TraceSummaryDto {
        TraceSummaryDto {
            trace_id: summary.trace_id.to_hex(),
            root_service: summary.root_service,
            root_name: summary.root_name,
            start_time_unix_nano: summary.start_time_unix_nano.to_string(),
            duration_ns: summary.duration_ns.to_string(),
            span_count: summary.span_count,
            error_count: summary.error_count,
            services: summary.services,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TraceResponse {
    pub trace_id: String,
    pub spans: Vec<SpanDto>,
}

impl TraceResponse {
    pub fn new(trace_id: TraceId, spans: &[Span]) -> TraceResponse {
        TraceResponse {
            trace_id: trace_id.to_hex(),
            spans: spans.iter().map(SpanDto::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SpanDto {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: &'static str,
    pub start_time_unix_nano: String,
    pub duration_ns: String,
    pub status: StatusDto,
    pub attributes: Map<String, Value>,
    pub resource: Map<String, Value>,
    pub scope: ScopeDto,
    pub events: Vec<EventDto>,
    pub links: Vec<LinkDto>,
}

#[derive(Debug, Serialize)]
pub struct StatusDto {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct ScopeDto {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct EventDto {
    pub name: String,
    pub time_unix_nano: String,
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct LinkDto {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Map<String, Value>,
}

impl From<&Span> for SpanDto {
    fn from(span: &Span) -> SpanDto {
        SpanDto {
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|id| id.to_hex()),
            service: span.service_name().to_owned(),
            name: span.name.clone(),
            kind: span.kind.as_str(),
            start_time_unix_nano: span.start_time_unix_nano.to_string(),
            duration_ns: span.duration_ns().to_string(),
            status: StatusDto {
                code: span.status.code.as_str(),
                message: span.status.message.clone(),
            },
            attributes: attributes_json(&span.attributes),
            resource: attributes_json(span.resource.attributes()),
            scope: ScopeDto {
                name: span.scope.name.clone(),
                version: span.scope.version.clone(),
            },
            events: span.events.iter().map(EventDto::from).collect(),
            links: span.links.iter().map(LinkDto::from).collect(),
        }
    }
}

impl From<&Event> for EventDto {
    fn from(event: &Event) -> EventDto {
        EventDto {
            name: event.name.clone(),
            time_unix_nano: event.time_unix_nano.to_string(),
            attributes: attributes_json(&event.attributes),
        }
    }
}

impl From<&Link> for LinkDto {
    fn from(link: &Link) -> LinkDto {
        LinkDto {
            trace_id: link.trace_id.to_hex(),
            span_id: link.span_id.to_hex(),
            attributes: attributes_json(&link.attributes),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LogsResponse {
    pub logs: Vec<LogDto>,
}

#[derive(Debug, Serialize)]
pub struct LogDto {
    /// The record's time, or its observed time when the producer sent none.
    pub time_unix_nano: String,
    pub severity_text: String,
    /// Derived from the text when the producer sent only text.
    pub severity_number: u8,
    pub body: Value,
    pub service: String,
    pub attributes: Map<String, Value>,
    pub resource: Map<String, Value>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

impl From<&LogRecord> for LogDto {
    fn from(log: &LogRecord) -> LogDto {
        LogDto {
            time_unix_nano: log.effective_time_unix_nano().to_string(),
            severity_text: log.severity_text.clone(),
            severity_number: log.effective_severity_number(),
            body: value_json(&log.body),
            service: log.service_name().to_owned(),
            attributes: attributes_json(&log.attributes),
            resource: attributes_json(log.resource.attributes()),
            trace_id: log.trace_id.map(|id| id.to_hex()),
            span_id: log.span_id.map(|id| id.to_hex()),
        }
    }
}

/// An attribute list as a JSON object. A repeated key keeps its first
/// value, matching `ashiato_model::attr_get`.
pub fn attributes_json(attributes: &[KeyValue]) -> Map<String, Value> {
    let mut object = Map::new();
    for kv in attributes {
        if !object.contains_key(&kv.key) {
            object.insert(kv.key.clone(), value_json(&kv.value));
        }
    }
    object
}

/// One attribute value as JSON, keeping its type (see the module docs).
pub fn value_json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Empty => Value::Null,
        AttrValue::Str(text) => Value::String(text.clone()),
        AttrValue::Bool(flag) => Value::Bool(*flag),
        AttrValue::Int(number) => Value::from(*number),
        AttrValue::Float(number) => float_json(*number),
        // bytes are base64 (standard alphabet, padded), as in OTLP/JSON
        AttrValue::Bytes(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        AttrValue::Array(values) => Value::Array(values.iter().map(value_json).collect()),
        AttrValue::Map(entries) => Value::Object(attributes_json(entries)),
    }
}

fn float_json(number: f64) -> Value {
    match serde_json::Number::from_f64(number) {
        Some(finite) => Value::Number(finite),
        None if number.is_nan() => Value::String("NaN".to_owned()),
        None if number > 0.0 => Value::String("Infinity".to_owned()),
        None => Value::String("-Infinity".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_values_keep_their_types() {
        let attributes = vec![
            KeyValue::new("s", AttrValue::Str("在庫".into())),
            KeyValue::new("i", AttrValue::Int(-9_007_199_254_740_993)),
            KeyValue::new("f", AttrValue::Float(99.99)),
            KeyValue::new("b", AttrValue::Bool(true)),
            KeyValue::new("bytes", AttrValue::Bytes(vec![0, 1, 254, 255])),
            KeyValue::new(
                "arr",
                AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("x".into())]),
            ),
            KeyValue::new(
                "map",
                AttrValue::Map(vec![KeyValue::new("k", AttrValue::Empty)]),
            ),
            KeyValue::new("nan", AttrValue::Float(f64::NAN)),
            KeyValue::new("inf", AttrValue::Float(f64::NEG_INFINITY)),
            KeyValue::new("s", AttrValue::Str("second value is ignored".into())),
        ];
        assert_eq!(
            Value::Object(attributes_json(&attributes)),
            json!({
                "s": "在庫",
                "i": -9_007_199_254_740_993_i64,
                "f": 99.99,
                "b": true,
                "bytes": "AAH+/w==",
                "arr": [1, "x"],
                "map": {"k": null},
                "nan": "NaN",
                "inf": "-Infinity",
            })
        );
    }
}
