//! Golden tests: payloads captured from real ddtrace 4.16.0 (v0.4 with the
//! Python and the native writer, v0.5) decoded and rendered as text, plus
//! logs intake bodies shaped like real shippers'.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use std::fmt::Write;

use ashiato_datadog::{
    BodyFormat, LogDefaults, LogsFormat, TraceIdHighCache, TraceVersion, TracerInfo, decode_logs,
    decode_traces,
};
use ashiato_model::{AttrValue, KeyValue, LogRecord, Span};

fn render_value(value: &AttrValue) -> String {
    match value {
        AttrValue::Str(text) => format!("{text:?}"),
        AttrValue::Int(value) => format!("int {value}"),
        AttrValue::Float(value) => format!("float {value}"),
        AttrValue::Bool(value) => format!("bool {value}"),
        other => format!("{other:?}"),
    }
}

fn render_attrs(out: &mut String, indent: &str, attributes: &[KeyValue]) {
    for kv in attributes {
        let mut value = render_value(&kv.value);
        if value.len() > 120 {
            value.truncate(120);
            value.push('…');
        }
        writeln!(out, "{indent}{} = {value}", kv.key).unwrap();
    }
}

fn render_spans(spans: &[Span]) -> String {
    let mut out = String::new();
    for span in spans {
        writeln!(out, "span {} / {}", span.trace_id, span.span_id).unwrap();
        writeln!(
            out,
            "  parent: {:?}",
            span.parent_span_id.map(|id| id.to_hex())
        )
        .unwrap();
        writeln!(out, "  name: {:?} kind: {}", span.name, span.kind.as_str()).unwrap();
        writeln!(out, "  duration_ns: {}", span.duration_ns()).unwrap();
        writeln!(
            out,
            "  status: {} {:?}",
            span.status.code.as_str(),
            span.status.message
        )
        .unwrap();
        writeln!(out, "  scope: {} {}", span.scope.name, span.scope.version).unwrap();
        writeln!(out, "  resource:").unwrap();
        render_attrs(&mut out, "    ", span.resource.attributes());
        writeln!(out, "  attributes:").unwrap();
        render_attrs(&mut out, "    ", &span.attributes);
        for event in &span.events {
            writeln!(out, "  event {:?} at {}", event.name, event.time_unix_nano).unwrap();
            render_attrs(&mut out, "    ", &event.attributes);
        }
        for link in &span.links {
            writeln!(
                out,
                "  link {} / {} flags {}",
                link.trace_id, link.span_id, link.flags
            )
            .unwrap();
            render_attrs(&mut out, "    ", &link.attributes);
        }
    }
    out
}

fn decode_fixture(name: &str, version: TraceVersion) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(path).unwrap();
    let tracer = TracerInfo {
        language: "python".to_owned(),
        tracer_version: "4.16.0".to_owned(),
    };
    let mut cache = TraceIdHighCache::default();
    let batch = decode_traces(&body, version, BodyFormat::Msgpack, &tracer, &mut cache).unwrap();
    assert_eq!(batch.rejected, 0);
    format!("chunks: {}\n{}", batch.chunks, render_spans(&batch.spans))
}

#[test]
fn test_golden_v04_python() {
    insta::assert_snapshot!(decode_fixture("v04_python.msgpack", TraceVersion::V04));
}

#[test]
fn test_golden_v04_python_native_writer() {
    insta::assert_snapshot!(decode_fixture(
        "v04_python_native.msgpack",
        TraceVersion::V04
    ));
}

#[test]
fn test_golden_v05_python() {
    insta::assert_snapshot!(decode_fixture("v05_python.msgpack", TraceVersion::V05));
}

fn render_logs(records: &[LogRecord]) -> String {
    let mut out = String::new();
    for record in records {
        writeln!(
            out,
            "log {} severity {} {:?} service {:?}",
            record.time_unix_nano,
            record.severity_number,
            record.severity_text,
            record.service_name()
        )
        .unwrap();
        writeln!(out, "  body: {}", render_value(&record.body)).unwrap();
        writeln!(
            out,
            "  trace: {:?} span: {:?}",
            record.trace_id.map(|id| id.to_hex()),
            record.span_id.map(|id| id.to_hex())
        )
        .unwrap();
        writeln!(out, "  resource:").unwrap();
        render_attrs(&mut out, "    ", record.resource.attributes());
        writeln!(out, "  attributes:").unwrap();
        render_attrs(&mut out, "    ", &record.attributes);
    }
    out
}

#[test]
fn test_golden_logs_agent_array_and_error_fields() {
    let body = br#"[
      {"message":"payment failed","status":"error","timestamp":1700000000123,
       "hostname":"web-1","service":"payments","ddsource":"python",
       "ddtags":"env:prod,version:1.2.3,team","error.kind":"ValueError",
       "error.message":"boom","error.stack":"Traceback (most recent call last):\n  File \"app.py\", line 3, in pay\nValueError: boom\n",
       "dd.trace_id":"6083596102455937902","dd.span_id":"8062852343741495451",
       "logger":{"name":"shop.pay","thread_name":"MainThread"},"attempt":3},
      {"message":"nested error","status":"critical","service":"batch","date":"2023-11-14T22:13:20Z",
       "error":{"kind":"OSError","message":"disk full","stack":"trace","code":28}},
      {"message":"no status at all"},
      {},
      "plain string item"
    ]"#;
    let defaults = LogDefaults {
        ddtags: Some("region:eu".to_owned()),
        ..LogDefaults::default()
    };
    let records = decode_logs(body, LogsFormat::Json, &defaults, 1_000, None).unwrap();
    insta::assert_snapshot!(render_logs(&records));
}

#[test]
fn test_logs_object_empty_and_text_forms() {
    let defaults = LogDefaults::default();
    let one = decode_logs(
        br#"{"message":"hi","status":"warn"}"#,
        LogsFormat::Json,
        &defaults,
        1,
        None,
    )
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].severity_number, 13);
    assert!(
        decode_logs(b"", LogsFormat::Json, &defaults, 1, None)
            .unwrap()
            .is_empty()
    );
    assert!(
        decode_logs(b"{}", LogsFormat::Json, &defaults, 1, None)
            .unwrap()
            .is_empty()
    );
    assert!(
        decode_logs(b"[]", LogsFormat::Json, &defaults, 1, None)
            .unwrap()
            .is_empty()
    );
    let lines = decode_logs(b"one\n\ntwo\n", LogsFormat::Text, &defaults, 1, None).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(decode_logs(b"[{", LogsFormat::Json, &defaults, 1, None).is_err());
    assert!(decode_logs(b"42", LogsFormat::Json, &defaults, 1, None).is_err());
}
