//! Golden tests: every captured OTLP payload decodes to a reviewed snapshot,
//! and the gRPC, HTTP/protobuf and HTTP/JSON captures of the same peer
//! program decode to the same structure.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

mod common;

use ashiato_model::{LogRecord, Span};
use ashiato_otlp::{Decoded, Format, decode_logs, decode_traces};
use common::{all_fixtures, decoded_view, distinct_arcs, fixture, log_view, span_view};
use serde_json::{Value, json};

fn format_of(path: &str) -> Format {
    if path.starts_with("otel_json/") {
        Format::Json
    } else {
        Format::Protobuf
    }
}

fn traces(path: &str) -> Decoded<Span> {
    decode_traces(&fixture(path), format_of(path)).unwrap()
}

fn logs(path: &str) -> Decoded<LogRecord> {
    decode_logs(&fixture(path), format_of(path)).unwrap()
}

/// `001` captures are trace exports, `002` log exports.
#[test]
fn test_golden_fixtures() {
    for (path, body) in all_fixtures() {
        let format = format_of(&path);
        let view = if path.ends_with("001.body") {
            decoded_view(&decode_traces(&body, format).unwrap(), span_view)
        } else {
            decoded_view(&decode_logs(&body, format).unwrap(), log_view)
        };
        let name = path.trim_end_matches(".body").replace('/', "__");
        insta::assert_json_snapshot!(name, view);
    }
}

#[test]
fn test_fixtures_decode_cleanly() {
    for (path, body) in all_fixtures() {
        let format = format_of(&path);
        let (count, rejected, message) = if path.ends_with("001.body") {
            let decoded = decode_traces(&body, format).unwrap();
            (decoded.items.len(), decoded.rejected, decoded.error_message)
        } else {
            let decoded = decode_logs(&body, format).unwrap();
            (decoded.items.len(), decoded.rejected, decoded.error_message)
        };
        assert!(count > 0, "{path} decoded to nothing");
        assert_eq!((rejected, message), (0, None), "{path}");
    }
}

#[test]
fn test_resource_and_scope_are_shared() {
    for path in [
        "otel_grpc/001.body",
        "otel_httpproto/001.body",
        "otel_json/001.body",
    ] {
        let decoded = traces(path);
        assert!(decoded.items.len() > 1, "{path}");
        assert_eq!(
            distinct_arcs(&decoded.items, |span| &span.resource),
            1,
            "{path}"
        );
        assert_eq!(
            distinct_arcs(&decoded.items, |span| &span.scope),
            1,
            "{path}"
        );
    }
}

/// Removes what legitimately differs between captures (ids, times, the
/// per-process instance id) and names parents instead of pointing at ids.
fn span_shape(spans: &[Span]) -> Vec<Value> {
    let mut shapes: Vec<Value> = spans
        .iter()
        .map(|span| {
            let parent = span.parent_span_id.map(|parent| {
                spans
                    .iter()
                    .find(|other| other.span_id == parent)
                    .map_or_else(|| "<outside batch>".to_owned(), |other| other.name.clone())
            });
            let mut view = span_view(span);
            let object = view.as_object_mut().unwrap();
            for key in [
                "trace_id",
                "span_id",
                "start_time_unix_nano",
                "end_time_unix_nano",
            ] {
                object.remove(key);
            }
            object.insert("parent_span_id".into(), json!(parent));
            for event in object["events"].as_array_mut().unwrap() {
                event.as_object_mut().unwrap().remove("time_unix_nano");
            }
            strip_instance_id(&mut object["resource"]);
            view
        })
        .collect();
    shapes.sort_by_key(|shape| shape["name"].to_string());
    shapes.iter().map(without_venv_name).collect()
}

/// The JSON peer ran from a second virtualenv (its exporter pins conflicting
/// versions), which shows in the exception stack traces.
fn without_venv_name(shape: &Value) -> Value {
    serde_json::from_str(&shape.to_string().replace("/venv-json/", "/venv/")).unwrap()
}

fn log_shape(records: &[LogRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|record| {
            let mut view = log_view(record);
            let object = view.as_object_mut().unwrap();
            for key in ["time_unix_nano", "observed_time_unix_nano"] {
                object.remove(key);
            }
            object.insert("trace_id".into(), json!(record.trace_id.is_some()));
            object.insert("span_id".into(), json!(record.span_id.is_some()));
            strip_instance_id(&mut object["resource"]);
            view
        })
        .collect()
}

fn strip_instance_id(resource: &mut Value) {
    resource["attributes"]
        .as_array_mut()
        .unwrap()
        .retain(|pair| pair[0] != "service.instance.id");
}

#[test]
fn test_all_transports_decode_to_the_same_traces() {
    let grpc = span_shape(&traces("otel_grpc/001.body").items);
    let http = span_shape(&traces("otel_httpproto/001.body").items);
    let json = span_shape(&traces("otel_json/001.body").items);
    assert_eq!(grpc, http);
    assert_eq!(grpc, json);
}

#[test]
fn test_all_transports_decode_to_the_same_logs() {
    let grpc = log_shape(&logs("otel_grpc/002.body").items);
    let http = log_shape(&logs("otel_httpproto/002.body").items);
    let json = log_shape(&logs("otel_json/002.body").items);
    assert_eq!(grpc, http);
    assert_eq!(grpc, json);
}

#[test]
fn test_log_records_point_at_spans_of_the_same_capture() {
    for folder in ["otel_grpc", "otel_httpproto", "otel_json"] {
        let spans = traces(&format!("{folder}/001.body")).items;
        let records = logs(&format!("{folder}/002.body")).items;
        let correlated: Vec<_> = records
            .iter()
            .filter(|record| record.span_id.is_some())
            .collect();
        assert!(!correlated.is_empty(), "{folder}");
        for record in correlated {
            assert!(
                spans.iter().any(|span| Some(span.span_id) == record.span_id
                    && Some(span.trace_id) == record.trace_id),
                "{folder}: log record points at a span that is not in the trace capture"
            );
        }
    }
}
