//! Per-item validation: invalid spans and log records are rejected one by
//! one with a reason, the rest of the batch is kept. Every id case runs
//! through both protobuf and JSON.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use ashiato_model::AttrValue;
use ashiato_otlp::{
    Format, MAX_VALUE_DEPTH, count_metric_points, decode_logs, decode_traces, logs_from_proto,
    metric_points_in, traces_from_proto,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric::Data,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Link};
use prost::Message;
use serde_json::json;

const TRACE: [u8; 16] = [0x5b; 16];
const SPAN: [u8; 8] = [0xee; 8];

fn span(name: &str, trace_id: &[u8], span_id: &[u8], parent: &[u8]) -> Span {
    Span {
        name: name.into(),
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.to_vec(),
        ..Default::default()
    }
}

fn traces_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn json_span(span: &Span) -> serde_json::Value {
    json!({
        "name": span.name,
        "traceId": hex(&span.trace_id),
        "spanId": hex(&span.span_id),
        "parentSpanId": hex(&span.parent_span_id),
        "links": span.links.iter().map(|link| json!({
            "traceId": hex(&link.trace_id), "spanId": hex(&link.span_id)
        })).collect::<Vec<_>>(),
    })
}

fn json_traces_body(spans: &[Span]) -> Vec<u8> {
    let spans: Vec<_> = spans.iter().map(json_span).collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
        .to_string()
        .into_bytes()
}

/// Decodes the same spans as protobuf and as JSON; both must agree.
fn decode_both(spans: Vec<Span>) -> ashiato_otlp::Decoded<ashiato_model::Span> {
    let json_body = json_traces_body(&spans);
    let protobuf_body = traces_request(spans).encode_to_vec();
    let from_protobuf = decode_traces(&protobuf_body, Format::Protobuf).unwrap();
    let from_json = decode_traces(&json_body, Format::Json).unwrap();
    assert_eq!(from_protobuf, from_json);
    from_protobuf
}

#[test]
fn test_invalid_span_ids_reject_only_that_span() {
    let zero_trace = [0u8; 16];
    let zero_span = [0u8; 8];
    let cases: Vec<(&str, Span, Option<&str>)> = vec![
        (
            "short trace id",
            span("bad", &[0xab, 0xcd], &SPAN, &[]),
            Some("span 'bad' has an invalid trace id: trace id must be 16 bytes, got 2"),
        ),
        (
            "missing trace id",
            span("bad", &[], &SPAN, &[]),
            Some("span 'bad' has an invalid trace id: trace id must be 16 bytes, got 0"),
        ),
        (
            "zero trace id",
            span("bad", &zero_trace, &SPAN, &[]),
            Some("span 'bad' has an invalid trace id: trace id is all zeros"),
        ),
        (
            "long span id",
            span("bad", &TRACE, &[1; 9], &[]),
            Some("span 'bad' has an invalid span id: span id must be 8 bytes, got 9"),
        ),
        (
            "zero span id",
            span("bad", &TRACE, &zero_span, &[]),
            Some("span 'bad' has an invalid span id: span id is all zeros"),
        ),
        (
            "short parent",
            span("bad", &TRACE, &SPAN, &[1, 2, 3]),
            Some("span 'bad' has an invalid parent span id: span id must be 8 bytes, got 3"),
        ),
        (
            "zero parent is a root",
            span("ok", &TRACE, &SPAN, &zero_span),
            None,
        ),
        (
            "empty parent is a root",
            span("ok", &TRACE, &SPAN, &[]),
            None,
        ),
    ];
    for (name, candidate, reason) in cases {
        let good_before = span("before", &TRACE, &[1; 8], &[]);
        let good_after = span("after", &TRACE, &[2; 8], &[1; 8]);
        let decoded = decode_both(vec![good_before, candidate, good_after]);
        match reason {
            Some(reason) => {
                assert_eq!(decoded.rejected, 1, "{name}");
                assert_eq!(
                    decoded.error_message,
                    Some(format!("1 span rejected: {reason}")),
                    "{name}"
                );
                let names: Vec<_> = decoded
                    .items
                    .iter()
                    .map(|span| span.name.as_str())
                    .collect();
                assert_eq!(names, ["before", "after"], "{name}");
            }
            None => {
                assert_eq!(
                    (decoded.rejected, decoded.error_message),
                    (0, None),
                    "{name}"
                );
                assert_eq!(decoded.items.len(), 3, "{name}");
                assert!(decoded.items[1].is_root(), "{name}");
            }
        }
        assert!(
            decoded.items.last().unwrap().parent_span_id.is_some(),
            "{name}"
        );
    }
}

#[test]
fn test_non_hex_json_ids_reject_only_that_span() {
    let cases = [
        (
            "traceId",
            "zz8efff798038103d269b633813fc60c",
            "trace id: not a hex string",
        ),
        (
            "traceId",
            "5b8efff798038103d269b633813fc60",
            "trace id: odd number of hex digits",
        ),
        ("spanId", "W47/95gDgQPSabYz", "span id: not a hex string"),
        (
            "parentSpanId",
            "0x0f067aa0ba902b",
            "parent span id: not a hex string",
        ),
    ];
    for (field, id, reason) in cases {
        let mut bad = json!({"name": "bad", "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"});
        bad[field] = json!(id);
        let good = json!({"name": "good", "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175"});
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [bad, good]}]}]}).to_string();
        let decoded = decode_traces(body.as_bytes(), Format::Json).unwrap();
        assert_eq!(decoded.rejected, 1, "{field}");
        assert_eq!(
            decoded.error_message,
            Some(format!(
                "1 span rejected: span 'bad' has an invalid {reason}"
            )),
            "{field}"
        );
        assert_eq!(decoded.items.len(), 1);
        assert_eq!(decoded.items[0].name, "good");
    }
}

#[test]
fn test_many_rejections_are_summarised() {
    let mut spans: Vec<Span> = (0..5)
        .map(|index| span(&format!("bad{index}"), &[1], &SPAN, &[]))
        .collect();
    spans.push(span("good", &TRACE, &SPAN, &[]));
    let decoded = decode_both(spans);
    assert_eq!(decoded.rejected, 5);
    assert_eq!(decoded.items.len(), 1);
    assert_eq!(
        decoded.error_message.as_deref(),
        Some(
            "5 spans rejected: span 'bad0' has an invalid trace id: trace id must be 16 bytes, got 1; \
             span 'bad1' has an invalid trace id: trace id must be 16 bytes, got 1; \
             span 'bad2' has an invalid trace id: trace id must be 16 bytes, got 1; and 2 more"
        )
    );
}

#[test]
fn test_long_span_names_are_shortened_in_reasons() {
    let name = "x".repeat(500);
    let decoded = traces_from_proto(traces_request(vec![span(&name, &[], &SPAN, &[])]));
    let message = decoded.error_message.unwrap();
    assert!(message.len() < 200, "{message}");
    assert!(
        message.contains(&format!("'{}…'", "x".repeat(64))),
        "{message}"
    );
}

#[test]
fn test_invalid_links_are_dropped_not_the_span() {
    let mut carrier = span("carrier", &TRACE, &SPAN, &[]);
    carrier.links = vec![
        Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            ..Default::default()
        },
        Link {
            trace_id: vec![7; 3],
            span_id: vec![8; 8],
            ..Default::default()
        },
        Link {
            trace_id: vec![7; 16],
            span_id: vec![0; 8],
            ..Default::default()
        },
    ];
    let decoded = decode_both(vec![carrier]);
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.items.len(), 1);
    assert_eq!(decoded.items[0].links.len(), 1);
    assert_eq!(decoded.items[0].links[0].span_id.as_bytes(), &[8; 8]);
    assert_eq!(
        decoded.error_message.as_deref(),
        Some("dropped 2 links with an invalid id")
    );
}

fn log(trace_id: &[u8], span_id: &[u8], severity_number: i32) -> LogRecord {
    LogRecord {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        severity_number,
        body: Some(AnyValue {
            value: Some(Value::StringValue("hello".into())),
        }),
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn test_log_record_ids_and_severity() {
    // Ok((has trace id, has span id, severity)) or Err(partial success message)
    type Expected = Result<(bool, bool, u8), &'static str>;
    let cases: Vec<(&str, LogRecord, Expected)> = vec![
        ("no ids", log(&[], &[], 9), Ok((false, false, 9))),
        ("both ids", log(&TRACE, &SPAN, 17), Ok((true, true, 17))),
        (
            "zero ids read as none",
            log(&[0; 16], &[0; 8], 17),
            Ok((false, false, 17)),
        ),
        ("trace only", log(&TRACE, &[], 1), Ok((true, false, 1))),
        (
            "severity too high",
            log(&[], &[], 25),
            Ok((false, false, 0)),
        ),
        (
            "severity negative",
            log(&[], &[], -3),
            Ok((false, false, 0)),
        ),
        (
            "short trace id",
            log(&[1, 2, 3], &SPAN, 9),
            Err(
                "1 log record rejected: log record has an invalid trace id: trace id must be 16 bytes, got 3",
            ),
        ),
        (
            "long span id",
            log(&TRACE, &[1; 10], 9),
            Err(
                "1 log record rejected: log record has an invalid span id: span id must be 8 bytes, got 10",
            ),
        ),
    ];
    for (name, record, expected) in cases {
        let protobuf_body = logs_request(vec![log(&[], &[], 9), record.clone()]).encode_to_vec();
        let json_body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"severityNumber": 9, "body": {"stringValue": "hello"}},
            {"traceId": hex(&record.trace_id), "spanId": hex(&record.span_id),
             "severityNumber": record.severity_number, "body": {"stringValue": "hello"}},
        ]}]}]})
        .to_string();
        let from_protobuf = decode_logs(&protobuf_body, Format::Protobuf).unwrap();
        let from_json = decode_logs(json_body.as_bytes(), Format::Json).unwrap();
        assert_eq!(from_protobuf, from_json, "{name}");
        assert_eq!(
            from_protobuf,
            logs_from_proto(logs_request(vec![log(&[], &[], 9), record])),
            "{name}"
        );
        match expected {
            Ok((has_trace, has_span, severity)) => {
                assert_eq!(
                    (from_protobuf.rejected, from_protobuf.items.len()),
                    (0, 2),
                    "{name}"
                );
                let decoded = &from_protobuf.items[1];
                assert_eq!(decoded.trace_id.is_some(), has_trace, "{name}");
                assert_eq!(decoded.span_id.is_some(), has_span, "{name}");
                assert_eq!(decoded.severity_number, severity, "{name}");
                assert_eq!(decoded.body, AttrValue::Str("hello".into()), "{name}");
            }
            Err(message) => {
                assert_eq!(
                    (from_protobuf.rejected, from_protobuf.items.len()),
                    (1, 1),
                    "{name}"
                );
                assert_eq!(
                    from_protobuf.error_message.as_deref(),
                    Some(message),
                    "{name}"
                );
            }
        }
    }
}

fn nested_array(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

fn depth_of(value: &AttrValue) -> usize {
    match value {
        AttrValue::Array(values) => 1 + values.first().map_or(0, depth_of),
        _ => 0,
    }
}

#[test]
fn test_deeply_nested_values_are_truncated_not_fatal() {
    let mut deep = span("deep", &TRACE, &SPAN, &[]);
    deep.attributes = vec![
        KeyValue {
            key: "ok".into(),
            value: Some(nested_array(MAX_VALUE_DEPTH - 1)),
            ..Default::default()
        },
        KeyValue {
            key: "deep".into(),
            value: Some(nested_array(MAX_VALUE_DEPTH + 10)),
            ..Default::default()
        },
    ];
    let decoded = traces_from_proto(traces_request(vec![deep]));
    assert_eq!(decoded.rejected, 0);
    let attributes = &decoded.items[0].attributes;
    assert_eq!(depth_of(&attributes[0].value), MAX_VALUE_DEPTH - 1);
    assert_eq!(depth_of(&attributes[1].value), MAX_VALUE_DEPTH);
    assert_eq!(
        decoded.error_message.as_deref(),
        Some("truncated 1 attribute value(s) nested deeper than 64 levels")
    );
}

#[test]
fn test_undecodable_bodies_are_errors_with_a_reason() {
    let cases: Vec<(&str, &[u8], Format, &str)> = vec![
        ("json syntax", b"{\"resourceSpans\": [", Format::Json, "invalid json ExportTraceServiceRequest: EOF while parsing a list at line 1 column 19"),
        ("json array", b"[]", Format::Json, "invalid json ExportTraceServiceRequest: invalid type: sequence, expected an OTLP request object with \"resourceSpans\" at line 1 column 2"),
        ("json string", b"\"x\"", Format::Json, "invalid json ExportTraceServiceRequest: invalid type: string \"x\", expected an OTLP request object with \"resourceSpans\" at line 1 column 3"),
        ("json wrong list type", br#"{"resourceSpans": 5}"#, Format::Json, "invalid json ExportTraceServiceRequest: invalid type: integer `5`, expected a sequence at line 1 column 19"),
        ("json bad int", br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#, Format::Json, "expected an integer, got \"soon\" at line 1 column 74"),
        ("json bad base64", br#"{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"bytesValue": "!!"}}]}}]}"#, Format::Json, "bytesValue is not valid base64"),
        ("protobuf garbage", b"\xff\xff\xff\xff", Format::Protobuf, "invalid protobuf ExportTraceServiceRequest: failed to decode Protobuf message"),
        ("protobuf truncated", b"\x0a\x10\x0a", Format::Protobuf, "invalid protobuf ExportTraceServiceRequest"),
    ];
    for (name, body, format, expected) in cases {
        let error = decode_traces(body, format).expect_err(name).to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
    let error = decode_logs(b"nope", Format::Json).unwrap_err().to_string();
    assert_eq!(
        error,
        "invalid json ExportLogsServiceRequest: expected ident at line 1 column 2"
    );
}

#[test]
fn test_json_nesting_beyond_the_parser_limit_is_an_error() {
    let depth = 5_000;
    let value = format!(
        "{}{{}}{}",
        r#"{"arrayValue": {"values": ["#.repeat(depth),
        "]}}".repeat(depth)
    );
    let body = format!(
        r#"{{"resourceSpans": [{{"resource": {{"attributes": [{{"key": "k", "value": {value}}}]}}}}]}}"#
    );
    let error = decode_traces(body.as_bytes(), Format::Json).unwrap_err();
    assert!(
        error.to_string().contains("recursion limit exceeded"),
        "{error}"
    );
}

#[test]
fn test_empty_requests_succeed() {
    for format in [Format::Protobuf, Format::Json] {
        let traces = decode_traces(b"", format).unwrap();
        assert_eq!(
            (traces.items.len(), traces.rejected, traces.error_message),
            (0, 0, None)
        );
        let logs = decode_logs(b"", format).unwrap();
        assert_eq!(
            (logs.items.len(), logs.rejected, logs.error_message),
            (0, 0, None)
        );
        assert_eq!(count_metric_points(b"", format).unwrap(), 0);
    }
}

#[test]
fn test_metric_points_are_counted() {
    let number_points = |count| Vec::from_iter((0..count).map(|_| NumberDataPoint::default()));
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        data: Some(Data::Gauge(Gauge {
                            data_points: number_points(2),
                        })),
                        ..Default::default()
                    },
                    Metric {
                        data: Some(Data::Sum(Sum {
                            data_points: number_points(3),
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    Metric {
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default()],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    Metric::default(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(metric_points_in(&request), 6);
    assert_eq!(
        count_metric_points(&request.encode_to_vec(), Format::Protobuf).unwrap(),
        6
    );

    let json_body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": [{"asDouble": 1.0}, {"asInt": "2"}]}},
        {"name": "s", "sum": {"data_points": [{}, {}, {}], "isMonotonic": true}},
        {"name": "h", "histogram": {"dataPoints": [{"count": "3"}]}},
        {"name": "e", "exponentialHistogram": {"dataPoints": null}},
        {"name": "q", "summary": null}
    ]}]}]});
    assert_eq!(
        count_metric_points(json_body.to_string().as_bytes(), Format::Json).unwrap(),
        6
    );
    assert!(count_metric_points(b"[1]", Format::Json).is_err());
    assert!(count_metric_points(b"\xff\xff", Format::Protobuf).is_err());
}
