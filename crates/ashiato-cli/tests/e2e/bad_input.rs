//! Bad input gets its documented answer (400, 413, 415, partial success),
//! valid data in the same batch is kept, and the server keeps serving.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};

use crate::support::{Response, TestServer, http_request};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Small limit so oversize bodies stay cheap to build.
const LIMIT_ARGS: [&str; 2] = ["--max-message-size", "1MiB"];

fn post(server: &TestServer, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    http_request(server.addrs.otlp_http, "POST", path, headers, body)
}

/// A distinct valid trace id per call, so checks never see each other's data.
fn fresh_trace_id() -> [u8; 16] {
    static CALLS: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1);
    let call = u128::from(CALLS.fetch_add(1, Ordering::Relaxed));
    let mut id = (nanos ^ (call << 96) | 1).to_be_bytes();
    id[0] = 0x5a;
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn one_span_request(trace_id: [u8; 16], name: &str, padding: usize) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let attribute = KeyValue {
        key: "padding".to_owned(),
        value: Some(AnyValue {
            value: Some(Any::StringValue("x".repeat(padding))),
        }),
        ..Default::default()
    };
    let service = KeyValue {
        key: "service.name".to_owned(),
        value: Some(AnyValue {
            value: Some(Any::StringValue("bad-input-test".to_owned())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    name: name.to_owned(),
                    kind: 2,
                    start_time_unix_nano: now - 5_000_000,
                    end_time_unix_nano: now,
                    attributes: if padding > 0 { vec![attribute] } else { vec![] },
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// After any bad request: health is fine and a valid export still lands.
fn assert_still_serves(server: &TestServer) {
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "healthz after bad input\n{}", server.stderr());
    let trace_id = fresh_trace_id();
    let body = one_span_request(trace_id, "still alive", 0).encode_to_vec();
    let response = post(server, "/v1/traces", &[("Content-Type", PROTOBUF)], &body);
    assert_eq!(
        response.status,
        200,
        "valid export after bad input: {}",
        response.text()
    );
    server.wait_for_trace(&hex(&trace_id), 1);
}

/// `google.rpc.Status`, the protobuf error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[test]
fn test_garbage_protobuf_is_400_with_status_body() {
    let server = TestServer::start();
    // tag byte 0x0f: field 1 with wire type 7, which does not exist
    let response = post(
        &server,
        "/v1/traces",
        &[("Content-Type", PROTOBUF)],
        b"\x0f\xff\xff\xffnot protobuf",
    );
    assert_eq!(response.status, 400, "{}", response.text());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(PROTOBUF),
        "answer in the request's content type, got {content_type:?}"
    );
    let status = RpcStatus::decode(&response.body[..]).expect("body is a google.rpc.Status");
    assert!(!status.message.is_empty(), "400 must say what is wrong");
    let logs = post(
        &server,
        "/v1/logs",
        &[("Content-Type", PROTOBUF)],
        b"\x0f\xff\xff\xff",
    );
    assert_eq!(logs.status, 400);
    assert_still_serves(&server);
}

#[test]
fn test_json_syntax_error_is_400_with_json_body() {
    let server = TestServer::start();
    let response = post(
        &server,
        "/v1/traces",
        &[("Content-Type", JSON)],
        br#"{"resourceSpans": [ {"#,
    );
    assert_eq!(response.status, 400, "{}", response.text());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(JSON),
        "content type {content_type:?}"
    );
    let body = response.json();
    assert!(
        body.is_object(),
        "400 body must be JSON, got {:?}",
        response.text()
    );
    assert!(!response.text().trim().is_empty());
    assert_still_serves(&server);
}

#[test]
fn test_unknown_content_type_is_415() {
    let server = TestServer::start();
    let response = post(
        &server,
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_eq!(response.status, 415, "{}", response.text());
    assert_still_serves(&server);
}

#[test]
fn test_unknown_content_encoding_is_415() {
    let server = TestServer::start();
    let body = one_span_request(fresh_trace_id(), "encoded", 0).encode_to_vec();
    let headers = [("Content-Type", PROTOBUF), ("Content-Encoding", "snappy")];
    let response = post(&server, "/v1/traces", &headers, &body);
    assert_eq!(response.status, 415, "{}", response.text());
    assert_still_serves(&server);
}

#[test]
fn test_oversize_body_is_413() {
    let server = TestServer::start_with(&LIMIT_ARGS);
    let body = one_span_request(fresh_trace_id(), "too big", 2 * 1024 * 1024).encode_to_vec();
    let response = post(&server, "/v1/traces", &[("Content-Type", PROTOBUF)], &body);
    assert_eq!(response.status, 413, "{}", response.text());
    assert_still_serves(&server);
}

#[test]
fn test_body_under_the_limit_is_accepted() {
    let server = TestServer::start_with(&LIMIT_ARGS);
    let trace_id = fresh_trace_id();
    let body = one_span_request(trace_id, "big but fine", 900 * 1024).encode_to_vec();
    let response = post(&server, "/v1/traces", &[("Content-Type", PROTOBUF)], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let trace = server.wait_for_trace(&hex(&trace_id), 1);
    let padding = trace["spans"][0]["attributes"]["padding"]
        .as_str()
        .map(str::len);
    assert_eq!(padding, Some(900 * 1024));
}

/// 64 MiB of zeros compress to ~64 KiB: small on the wire, far over the
/// 1 MiB limit once inflated. The server must stop inflating at the limit.
fn zeros_compressed(gzip: bool) -> Vec<u8> {
    let zeros = vec![0u8; 1024 * 1024];
    if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        for _ in 0..64 {
            encoder.write_all(&zeros).expect("compress");
        }
        encoder.finish().expect("finish gzip")
    } else {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        for _ in 0..64 {
            encoder.write_all(&zeros).expect("compress");
        }
        encoder.finish().expect("finish zlib")
    }
}

#[test]
fn test_gzip_bomb_is_413() {
    let server = TestServer::start_with(&LIMIT_ARGS);
    let bomb = zeros_compressed(true);
    assert!(
        bomb.len() < 1024 * 1024,
        "the bomb itself must be under the limit"
    );
    let headers = [("Content-Type", PROTOBUF), ("Content-Encoding", "gzip")];
    let response = post(&server, "/v1/traces", &headers, &bomb);
    assert_eq!(response.status, 413, "{}", response.text());
    let headers = [("Content-Type", PROTOBUF), ("Content-Encoding", "deflate")];
    let response = post(&server, "/v1/logs", &headers, &zeros_compressed(false));
    assert_eq!(response.status, 413, "{}", response.text());
    assert_still_serves(&server);
}

#[test]
fn test_invalid_span_in_json_batch_is_rejected_alone() {
    let server = TestServer::start();
    let trace_id = hex(&fresh_trace_id());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let span = |trace: &str, span_id: &str, name: &str| {
        json!({
            "traceId": trace, "spanId": span_id, "name": name, "kind": 2,
            "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string()
        })
    };
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "partial"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [
            span(&trace_id, "1111111111111111", "valid one"),
            span("abcd", "2222222222222222", "wrong-length trace id"),
            span(&trace_id, "3333333333333333", "valid two"),
        ]}]
    }]});
    let response = post(
        &server,
        "/v1/traces",
        &[("Content-Type", JSON)],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    assert_eq!(
        answer["partialSuccess"]["rejectedSpans"], "1",
        "answer {answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !message.is_empty(),
        "partial success must say why: {answer}"
    );

    let trace = server.wait_for_trace(&trace_id, 2);
    let mut names: Vec<&str> = trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["valid one", "valid two"]);
    assert_still_serves(&server);
}

#[test]
fn test_invalid_log_in_json_batch_is_rejected_alone() {
    let server = TestServer::start();
    let trace_id = hex(&fresh_trace_id());
    let record = |trace: &str, body: &str| {
        json!({"timeUnixNano": "1795238896000000000", "severityNumber": 9,
               "body": {"stringValue": body}, "traceId": trace, "spanId": "1111111111111111"})
    };
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "partial-logs"}}]},
        "scopeLogs": [{"logRecords": [record(&trace_id, "kept"), record("abcd", "refused")]}]
    }]});
    let response = post(
        &server,
        "/v1/logs",
        &[("Content-Type", JSON)],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "answer {answer}"
    );
    let logs = server.wait_for_logs("service=partial-logs", 1);
    let bodies: Vec<&Value> = logs.iter().map(|log| &log["body"]).collect();
    assert_eq!(bodies, [&json!("kept")]);
    assert_still_serves(&server);
}

#[test]
fn test_metrics_are_answered_without_error() {
    let server = TestServer::start();
    let response = post(&server, "/v1/metrics", &[("Content-Type", PROTOBUF)], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    let response = post(&server, "/v1/metrics", &[("Content-Type", JSON)], b"{}");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.json().is_object(),
        "JSON answer expected: {}",
        response.text()
    );
    assert_still_serves(&server);
}

#[test]
fn test_query_api_errors_are_json() {
    let server = TestServer::start();
    let (status, body) = server.get("/api/v1/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, body) = server.get("/api/v1/traces/not-a-trace-id");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = server.get("/api/v1/traces?min_duration=soon");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, _) = server.get("/readyz");
    assert_eq!(status, 200);
}
