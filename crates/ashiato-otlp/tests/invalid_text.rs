//! Text that is not Unicode (a non-UTF-8 protobuf string, a JSON lone
//! surrogate or raw non-UTF-8 bytes in a JSON string) rejects only the
//! span or log record holding it; the rest of the batch is kept and the
//! rejection is reported for OTLP `partial_success`. Outside items, a
//! protobuf resource or scope string still refuses the body (prost's error)
//! and a JSON one rejects the items of its group.

#![allow(clippy::unwrap_used)] // tests may unwrap

use ashiato_otlp::{Format, decode_logs, decode_traces};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// Stands for a string that is made invalid after encoding.
const MARK: &str = "@@MARK@@";

/// Replaces every MARK in an encoded body by as many non-UTF-8 bytes.
fn poison(mut body: Vec<u8>) -> Vec<u8> {
    let mark = MARK.as_bytes();
    let mut at = 0;
    while let Some(found) = body[at..].windows(mark.len()).position(|w| w == mark) {
        let start = at + found;
        body[start..start + mark.len()].fill(0xff);
        at = start + mark.len();
    }
    body
}

fn attribute(value: &str) -> KeyValue {
    KeyValue {
        key: "k".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(id: u8, name: &str, attribute_value: &str) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        name: name.into(),
        attributes: vec![attribute(attribute_value)],
        ..Default::default()
    }
}

fn traces(resource_value: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute(resource_value)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn test_protobuf_non_utf8_rejects_only_its_item() {
    // (what, body, kept span ids, rejected)
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, u64)> = vec![
        (
            "name",
            traces("ok", vec![span(1, MARK, "ok"), span(2, "fine", "ok")]),
            vec![2],
            1,
        ),
        (
            "attribute value",
            traces(
                "ok",
                vec![span(1, "a", "ok"), span(2, "b", MARK), span(3, "c", "ok")],
            ),
            vec![1, 3],
            1,
        ),
        (
            "every span",
            traces("ok", vec![span(1, MARK, "ok"), span(2, "b", MARK)]),
            vec![],
            2,
        ),
    ];
    for (what, body, kept, rejected) in cases {
        let decoded = decode_traces(&poison(body), Format::Protobuf).unwrap();
        let ids: Vec<u8> = decoded
            .items
            .iter()
            .map(|s| s.span_id.as_bytes()[0])
            .collect();
        assert_eq!((ids, decoded.rejected), (kept, rejected), "{what}");
        let message = decoded.error_message.unwrap();
        assert!(message.contains("not valid unicode"), "{what}: {message}");
    }
    // outside items the body is refused with prost's error
    let error = decode_traces(
        &poison(traces(MARK, vec![span(1, "a", "ok")])),
        Format::Protobuf,
    )
    .unwrap_err();
    assert!(error.to_string().contains("UTF-8"), "{error}");
}

#[test]
fn test_protobuf_non_utf8_log_record_is_rejected_alone() {
    let record = |body: &str| LogRecord {
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..Default::default()
    };
    let body = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record("first"), record(MARK), record("third")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let decoded = decode_logs(&poison(body), Format::Protobuf).unwrap();
    assert_eq!(decoded.items.len(), 2);
    assert_eq!(decoded.rejected, 1);
    assert!(
        decoded
            .error_message
            .unwrap()
            .contains("log record has a string that is not valid unicode")
    );
}

const GOOD_SPAN: &str =
    r#"{"traceId":"07070707070707070707070707070707","spanId":"0202020202020202","name":"fine"}"#;

fn json_traces(resource_value: &str, bad_span: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"{resource_value}"}}}}]}},"scopeSpans":[{{"spans":[{bad_span},{GOOD_SPAN}]}}]}}]}}"#
    )
    .into_bytes()
}

#[test]
fn test_json_lone_surrogates_reject_only_their_item() {
    let bad = |field: &str| {
        format!(
            r#"{{"traceId":"07070707070707070707070707070707","spanId":"0101010101010101",{field}}}"#
        )
    };
    // (what, body, spans kept, rejected)
    let cases: Vec<(&str, Vec<u8>, usize, u64)> = vec![
        (
            "lone high surrogate",
            json_traces("ok", &bad(r#""name":"\ud800""#)),
            1,
            1,
        ),
        (
            "lone low surrogate",
            json_traces("ok", &bad(r#""name":"a\udc00b""#)),
            1,
            1,
        ),
        (
            "in an attribute",
            json_traces(
                "ok",
                &bad(r#""attributes":[{"key":"k","value":{"stringValue":"x\ud800"}}]"#),
            ),
            1,
            1,
        ),
        (
            "in a nested value",
            json_traces(
                "ok",
                &bad(
                    r#""attributes":[{"key":"k","value":{"arrayValue":{"values":[{"stringValue":"\udfff"}]}}}]"#,
                ),
            ),
            1,
            1,
        ),
        (
            "a pair is fine",
            json_traces("ok", &bad(r#""name":"\ud83d\ude00""#)),
            2,
            0,
        ),
        (
            "in the resource",
            json_traces(r"\ud800", &bad(r#""name":"a""#)),
            0,
            2,
        ),
    ];
    for (what, body, kept, rejected) in cases {
        let decoded = decode_traces(&body, Format::Json).unwrap();
        assert_eq!(
            (decoded.items.len(), decoded.rejected),
            (kept, rejected),
            "{what}"
        );
        if rejected > 0 {
            let message = decoded.error_message.unwrap();
            assert!(message.contains("not valid unicode"), "{what}: {message}");
        }
    }
    let paired = decode_traces(
        &json_traces("ok", &bad(r#""name":"\ud83d\ude00""#)),
        Format::Json,
    )
    .unwrap();
    assert_eq!(paired.items[0].name, "\u{1f600}");
    // raw bytes that are not UTF-8 inside a JSON string
    let mut raw = json_traces("ok", &bad(r#""name":"@@""#));
    let at = raw.windows(2).position(|w| w == b"@@").unwrap();
    raw[at] = 0xff;
    let decoded = decode_traces(&raw, Format::Json).unwrap();
    assert_eq!((decoded.items.len(), decoded.rejected), (1, 1));
}

#[test]
fn test_json_lone_surrogate_log_record_is_rejected_alone() {
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ok"}},{"severityText":"\ud800"},{"eventName":"e"}]}]}]}"#;
    let decoded = decode_logs(body, Format::Json).unwrap();
    assert_eq!((decoded.items.len(), decoded.rejected), (2, 1));
    assert!(
        decoded
            .error_message
            .unwrap()
            .contains("log record has a string that is not valid unicode")
    );
}
