//! Test helpers: fixture loading and a readable JSON view of decoded items
//! for snapshots and cross-format comparison.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ashiato_model::{AttrValue, KeyValue, LogRecord, Resource, Scope, Span};
use ashiato_otlp::Decoded;
use serde_json::{Value, json};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn fixture(relative: &str) -> Vec<u8> {
    let path = data_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Every captured body: (relative path, bytes).
pub fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut bodies = Vec::new();
    for folder in ["otel_grpc", "otel_httpproto", "otel_json"] {
        let mut entries: Vec<_> = std::fs::read_dir(data_dir().join(folder))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "body"))
            .collect();
        entries.sort();
        for path in entries {
            let name = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            bodies.push((name, std::fs::read(&path).unwrap()));
        }
    }
    bodies
}

/// Attribute values keep their type in the view: `{"int": 5}`, `{"str": "x"}`.
pub fn value_view(value: &AttrValue) -> Value {
    match value {
        AttrValue::Empty => json!("empty"),
        AttrValue::Str(text) => json!({ "str": text }),
        AttrValue::Bool(flag) => json!({ "bool": flag }),
        AttrValue::Int(number) => json!({ "int": number }),
        AttrValue::Float(number) if number.is_finite() => json!({ "float": number }),
        AttrValue::Float(number) => json!({ "float": number.to_string() }),
        AttrValue::Bytes(bytes) => json!({ "bytes": bytes }),
        AttrValue::Array(values) => {
            json!({ "array": values.iter().map(value_view).collect::<Vec<_>>() })
        }
        AttrValue::Map(entries) => json!({ "map": attributes_view(entries) }),
    }
}

/// Attributes as `[[key, value], …]` to keep order and duplicates visible.
pub fn attributes_view(attributes: &[KeyValue]) -> Value {
    Value::Array(
        attributes
            .iter()
            .map(|attribute| json!([attribute.key, value_view(&attribute.value)]))
            .collect(),
    )
}

fn resource_view(resource: &Resource) -> Value {
    json!({ "service": resource.service_name(), "attributes": attributes_view(resource.attributes()) })
}

fn scope_view(scope: &Scope) -> Value {
    json!({ "name": scope.name, "version": scope.version, "attributes": attributes_view(&scope.attributes) })
}

pub fn span_view(span: &Span) -> Value {
    json!({
        "trace_id": span.trace_id.to_hex(),
        "span_id": span.span_id.to_hex(),
        "parent_span_id": span.parent_span_id.map(|id| id.to_hex()),
        "trace_state": span.trace_state,
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind.as_str(),
        "start_time_unix_nano": span.start_time_unix_nano.to_string(),
        "end_time_unix_nano": span.end_time_unix_nano.to_string(),
        "attributes": attributes_view(&span.attributes),
        "events": span.events.iter().map(|event| json!({
            "time_unix_nano": event.time_unix_nano.to_string(),
            "name": event.name,
            "attributes": attributes_view(&event.attributes),
        })).collect::<Vec<_>>(),
        "links": span.links.iter().map(|link| json!({
            "trace_id": link.trace_id.to_hex(),
            "span_id": link.span_id.to_hex(),
            "trace_state": link.trace_state,
            "flags": link.flags,
            "attributes": attributes_view(&link.attributes),
        })).collect::<Vec<_>>(),
        "status": { "code": span.status.code.as_str(), "message": span.status.message },
        "resource": resource_view(&span.resource),
        "scope": scope_view(&span.scope),
    })
}

pub fn log_view(record: &LogRecord) -> Value {
    json!({
        "time_unix_nano": record.time_unix_nano.to_string(),
        "observed_time_unix_nano": record.observed_time_unix_nano.to_string(),
        "severity_number": record.severity_number,
        "severity_text": record.severity_text,
        "body": value_view(&record.body),
        "attributes": attributes_view(&record.attributes),
        "trace_id": record.trace_id.map(|id| id.to_hex()),
        "span_id": record.span_id.map(|id| id.to_hex()),
        "flags": record.flags,
        "event_name": record.event_name,
        "resource": resource_view(&record.resource),
        "scope": scope_view(&record.scope),
    })
}

/// How many distinct resource/scope allocations the items share (checks
/// the `Arc` sharing per ResourceSpans/ScopeSpans).
pub fn distinct_arcs<T, U>(items: &[T], get: impl Fn(&T) -> &Arc<U>) -> usize {
    let mut seen: Vec<*const U> = Vec::new();
    for item in items {
        let pointer = Arc::as_ptr(get(item));
        if !seen.contains(&pointer) {
            seen.push(pointer);
        }
    }
    seen.len()
}

pub fn decoded_view<T>(decoded: &Decoded<T>, view: impl Fn(&T) -> Value) -> Value {
    json!({
        "rejected": decoded.rejected,
        "error_message": decoded.error_message,
        "items": decoded.items.iter().map(view).collect::<Vec<_>>(),
    })
}
