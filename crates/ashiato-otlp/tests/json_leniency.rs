//! OTLP/JSON leniency: every spelling real or sloppy producers use decodes
//! to the same model. Each case patches one span of an otherwise valid body
//! and checks fields of the decoded span's view.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

mod common;

use ashiato_model::AttrValue;
use ashiato_otlp::{Format, decode_logs, decode_traces};
use common::span_view;
use serde_json::{Value, json};

const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const SPAN_ID: &str = "eee19b7ec3c1b174";

fn body_with_span(span: Value) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": [span]}]
    }]})
    .to_string()
    .into_bytes()
}

fn base_span() -> Value {
    json!({"traceId": TRACE_ID, "spanId": SPAN_ID, "name": "op"})
}

fn patched(patch: Value) -> Value {
    let mut span = base_span();
    for (key, value) in patch.as_object().unwrap() {
        span[key] = value.clone();
    }
    span
}

fn single_attribute(value: Value) -> Value {
    patched(json!({"attributes": [{"key": "k", "value": value}]}))
}

#[test]
fn test_span_field_spellings() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "uppercase hex ids",
            patched(json!({"traceId": TRACE_ID.to_uppercase(), "spanId": SPAN_ID.to_uppercase()})),
            json!({"trace_id": TRACE_ID, "span_id": SPAN_ID}),
        ),
        (
            "times as strings",
            patched(
                json!({"startTimeUnixNano": "1795238896335248046", "endTimeUnixNano": "1795238896335265452"}),
            ),
            json!({"start_time_unix_nano": "1795238896335248046", "end_time_unix_nano": "1795238896335265452"}),
        ),
        (
            "times as numbers",
            patched(
                json!({"startTimeUnixNano": 1795238896335248046_u64, "endTimeUnixNano": 1795238896335265452_u64}),
            ),
            json!({"start_time_unix_nano": "1795238896335248046", "end_time_unix_nano": "1795238896335265452"}),
        ),
        (
            "enum numbers",
            patched(json!({"kind": 2, "status": {"code": 2, "message": "bad"}})),
            json!({"kind": "server", "status": {"code": "error", "message": "bad"}}),
        ),
        (
            "enum names",
            patched(json!({"kind": "SPAN_KIND_CONSUMER", "status": {"code": "STATUS_CODE_OK"}})),
            json!({"kind": "consumer", "status": {"code": "ok", "message": ""}}),
        ),
        (
            "short and unknown enum names",
            patched(json!({"kind": "client", "status": {"code": "STATUS_CODE_WHATEVER"}})),
            json!({"kind": "client", "status": {"code": "unset", "message": ""}}),
        ),
        (
            "flags as string",
            patched(json!({"flags": "256"})),
            json!({"flags": 256}),
        ),
        (
            "empty and zero parent mean root",
            patched(json!({"parentSpanId": ""})),
            json!({"parent_span_id": null}),
        ),
        (
            "all-zero parent means root",
            patched(json!({"parentSpanId": "0000000000000000"})),
            json!({"parent_span_id": null}),
        ),
        (
            "nulls everywhere",
            patched(
                json!({"parentSpanId": null, "traceState": null, "kind": null, "flags": null,
                "attributes": null, "events": null, "links": null, "status": null,
                "startTimeUnixNano": null}),
            ),
            json!({"parent_span_id": null, "trace_state": "", "kind": "unspecified", "flags": 0,
                "attributes": [], "events": [], "links": [], "status": {"code": "unset", "message": ""},
                "start_time_unix_nano": "0"}),
        ),
        (
            "unknown fields are ignored",
            patched(json!({"droppedAttributesCount": 3, "somethingNew": {"deep": [1, 2]}})),
            json!({"name": "op"}),
        ),
        (
            "events with string times",
            patched(json!({"events": [{"timeUnixNano": "5", "name": "e", "attributes": null}]})),
            json!({"events": [{"time_unix_nano": "5", "name": "e", "attributes": []}]}),
        ),
    ];
    for (name, span, expected) in cases {
        let decoded = decode_traces(&body_with_span(span), Format::Json)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.rejected, 0, "{name}: {:?}", decoded.error_message);
        assert_eq!(decoded.items.len(), 1, "{name}");
        let view = span_view(&decoded.items[0]);
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&view[key], value, "{name}: field {key}");
        }
    }
}

#[test]
fn test_attribute_value_spellings() {
    let cases: Vec<(&str, Value, AttrValue)> = vec![
        (
            "string",
            json!({"stringValue": "x"}),
            AttrValue::Str("x".into()),
        ),
        ("bool", json!({"boolValue": true}), AttrValue::Bool(true)),
        (
            "bool as string",
            json!({"boolValue": "false"}),
            AttrValue::Bool(false),
        ),
        (
            "int as string",
            json!({"intValue": "200"}),
            AttrValue::Int(200),
        ),
        (
            "int as number",
            json!({"intValue": 200}),
            AttrValue::Int(200),
        ),
        (
            "negative int as string",
            json!({"intValue": "-9223372036854775808"}),
            AttrValue::Int(i64::MIN),
        ),
        (
            "int as integral float",
            json!({"intValue": 3.0}),
            AttrValue::Int(3),
        ),
        (
            "double",
            json!({"doubleValue": 99.99}),
            AttrValue::Float(99.99),
        ),
        (
            "double as int",
            json!({"doubleValue": 2}),
            AttrValue::Float(2.0),
        ),
        (
            "double as string",
            json!({"doubleValue": "1.5"}),
            AttrValue::Float(1.5),
        ),
        (
            "infinity",
            json!({"doubleValue": "Infinity"}),
            AttrValue::Float(f64::INFINITY),
        ),
        (
            "minus infinity",
            json!({"doubleValue": "-Infinity"}),
            AttrValue::Float(f64::NEG_INFINITY),
        ),
        (
            "bytes",
            json!({"bytesValue": "AQID"}),
            AttrValue::Bytes(vec![1, 2, 3]),
        ),
        (
            "bytes url-safe unpadded",
            json!({"bytesValue": "-_8"}),
            AttrValue::Bytes(vec![0xfb, 0xff]),
        ),
        ("empty object", json!({}), AttrValue::Empty),
        ("null", Value::Null, AttrValue::Empty),
        (
            "null string",
            json!({"stringValue": null}),
            AttrValue::Empty,
        ),
        (
            "empty array",
            json!({"arrayValue": {}}),
            AttrValue::Array(vec![]),
        ),
        (
            "null array values",
            json!({"arrayValue": {"values": null}}),
            AttrValue::Array(vec![]),
        ),
        (
            "empty kvlist",
            json!({"kvlistValue": {}}),
            AttrValue::Map(vec![]),
        ),
        (
            "array",
            json!({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {}]}}),
            AttrValue::Array(vec![
                AttrValue::Str("a".into()),
                AttrValue::Int(1),
                AttrValue::Empty,
            ]),
        ),
        (
            "kvlist",
            json!({"kvlistValue": {"values": [{"key": "n", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}]}}),
            AttrValue::Map(vec![ashiato_model::KeyValue::new(
                "n",
                AttrValue::Array(vec![AttrValue::Bool(true)]),
            )]),
        ),
        (
            "snake_case variant",
            json!({"int_value": "7"}),
            AttrValue::Int(7),
        ),
        (
            "unknown variant",
            json!({"futureValue": 1}),
            AttrValue::Empty,
        ),
    ];
    for (name, value, expected) in cases {
        let decoded = decode_traces(&body_with_span(single_attribute(value)), Format::Json)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.items[0].attributes[0].value, expected, "{name}");
    }

    let decoded = decode_traces(
        &body_with_span(single_attribute(json!({"doubleValue": "NaN"}))),
        Format::Json,
    )
    .unwrap();
    assert!(
        matches!(decoded.items[0].attributes[0].value, AttrValue::Float(value) if value.is_nan())
    );

    let missing_value = patched(json!({"attributes": [{"key": "k"}]}));
    let decoded = decode_traces(&body_with_span(missing_value), Format::Json).unwrap();
    assert_eq!(decoded.items[0].attributes[0].value, AttrValue::Empty);
}

#[test]
fn test_snake_case_body_decodes_like_camel_case() {
    let snake = json!({"resource_spans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "svc"}}]},
        "scope_spans": [{"scope": {"name": "lib"}, "spans": [{
            "trace_id": TRACE_ID, "span_id": SPAN_ID, "parent_span_id": "00f067aa0ba902b7",
            "name": "op", "kind": 3, "start_time_unix_nano": "10", "end_time_unix_nano": "20",
            "events": [{"time_unix_nano": "15", "name": "e"}],
            "links": [{"trace_id": TRACE_ID, "span_id": "00f067aa0ba902b7"}]
        }]}]
    }]});
    let camel = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": [{
            "traceId": TRACE_ID, "spanId": SPAN_ID, "parentSpanId": "00f067aa0ba902b7",
            "name": "op", "kind": 3, "startTimeUnixNano": "10", "endTimeUnixNano": "20",
            "events": [{"timeUnixNano": "15", "name": "e"}],
            "links": [{"traceId": TRACE_ID, "spanId": "00f067aa0ba902b7"}]
        }]}]
    }]});
    let snake = decode_traces(snake.to_string().as_bytes(), Format::Json).unwrap();
    let camel = decode_traces(camel.to_string().as_bytes(), Format::Json).unwrap();
    assert_eq!(snake.items.len(), 1);
    assert_eq!(snake, camel);
    assert_eq!(snake.items[0].service_name(), "svc");
    assert_eq!(snake.items[0].duration_ns(), 10);
}

#[test]
fn test_null_objects_and_empty_requests() {
    let cases: Vec<(&str, &str, usize)> = vec![
        ("empty object", "{}", 0),
        ("null body", "null", 0),
        ("empty body", "", 0),
        ("whitespace body", " \n", 0),
        ("byte order mark", "\u{feff}{}", 0),
        ("empty list", r#"{"resourceSpans": []}"#, 0),
        ("null list", r#"{"resourceSpans": null}"#, 0),
        (
            "null resource spans entry parts",
            r#"{"resourceSpans": [{"resource": null, "scopeSpans": null}]}"#,
            0,
        ),
        (
            "null resource and scope",
            r#"{"resourceSpans": [{"resource": null, "scopeSpans": [{"scope": null, "spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}]}"#,
            1,
        ),
    ];
    for (name, body, expected) in cases {
        let decoded = decode_traces(body.as_bytes(), Format::Json)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.items.len(), expected, "{name}");
        assert_eq!(decoded.error_message, None, "{name}");
    }
    let decoded = decode_traces(
        br#"{"resourceSpans": [{"resource": null, "scopeSpans": [{"scope": null, "spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}]}"#,
        Format::Json,
    )
    .unwrap();
    assert_eq!(
        decoded.items[0].service_name(),
        ashiato_model::UNKNOWN_SERVICE
    );
}

#[test]
fn test_unknown_top_level_keys_give_a_warning() {
    let decoded = decode_traces(
        br#"{"spans": [{"name": "x"}], "resourceSpanz": []}"#,
        Format::Json,
    )
    .unwrap();
    assert!(decoded.items.is_empty());
    assert_eq!(decoded.rejected, 0);
    assert_eq!(
        decoded.error_message.as_deref(),
        Some(r#"request has no "resourceSpans" (unknown top-level keys: spans, resourceSpanz)"#)
    );

    let decoded = decode_logs(br#"{"resourceSpans": []}"#, Format::Json).unwrap();
    assert_eq!(
        decoded.error_message.as_deref(),
        Some(r#"request has no "resourceLogs" (unknown top-level keys: resourceSpans)"#)
    );

    let decoded = decode_traces(br#"{"resourceSpans": [], "extra": 1}"#, Format::Json).unwrap();
    assert_eq!(
        decoded.error_message, None,
        "known key present, so nothing was lost"
    );
}

#[test]
fn test_log_record_spellings() {
    let body = |record: Value| {
        json!({"resource_logs": [{"scope_logs": [{"log_records": [record]}]}]})
            .to_string()
            .into_bytes()
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "severity name",
            json!({"severityNumber": "SEVERITY_NUMBER_ERROR", "severityText": "ERROR"}),
            json!({"severity_number": 17, "severity_text": "ERROR"}),
        ),
        (
            "severity short name",
            json!({"severity_number": "warn3"}),
            json!({"severity_number": 15}),
        ),
        (
            "severity out of range",
            json!({"severityNumber": 99}),
            json!({"severity_number": 0}),
        ),
        (
            "severity negative",
            json!({"severityNumber": -1}),
            json!({"severity_number": 0}),
        ),
        (
            "ids empty",
            json!({"traceId": "", "spanId": ""}),
            json!({"trace_id": null, "span_id": null}),
        ),
        (
            "ids all zero",
            json!({"traceId": "00000000000000000000000000000000", "spanId": "0000000000000000"}),
            json!({"trace_id": null, "span_id": null}),
        ),
        (
            "ids uppercase",
            json!({"traceId": TRACE_ID.to_uppercase(), "spanId": SPAN_ID.to_uppercase()}),
            json!({"trace_id": TRACE_ID, "span_id": SPAN_ID}),
        ),
        (
            "body kvlist and times as numbers",
            json!({"timeUnixNano": 5, "observedTimeUnixNano": "6",
                "body": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": 1}}]}}}),
            json!({"time_unix_nano": "5", "observed_time_unix_nano": "6",
                "body": {"map": [["a", {"int": 1}]]}}),
        ),
        ("body null", json!({"body": null}), json!({"body": "empty"})),
        (
            "event name",
            json!({"eventName": "browser.click"}),
            json!({"event_name": "browser.click"}),
        ),
    ];
    for (name, record, expected) in cases {
        let decoded = decode_logs(&body(record), Format::Json)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.rejected, 0, "{name}: {:?}", decoded.error_message);
        let view = common::log_view(&decoded.items[0]);
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&view[key], value, "{name}: field {key}");
        }
    }
}
