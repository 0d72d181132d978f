//! OTLP/HTTP ingest handler behaviour, in process, over a real store in a
//! temporary directory: content types, encodings, size limits, error
//! bodies, partial success, and read-back through the query layer.

#![allow(clippy::unwrap_used)] // tests may unwrap; helpers outside #[test] are not covered by clippy.toml

mod common;

use std::sync::Arc;

use ashiato_model::TraceId;
use ashiato_query::{LogQuery, QueryService};
use ashiato_store::{Store, StoreConfig};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

const LIMIT: usize = 64 * 1024;

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let app = ashiato_server::otlp_http::router(store.clone(), LIMIT);
        Harness {
            _dir: dir,
            store,
            app,
        }
    }

    fn query(&self) -> QueryService {
        QueryService::new(Arc::new(self.store.clone()))
    }

    fn stored_span_names(&self) -> Vec<String> {
        let trace = self
            .query()
            .get_trace(TraceId::from_hex(TRACE_ID).unwrap())
            .unwrap();
        trace
            .unwrap_or_default()
            .into_iter()
            .map(|span| span.name)
            .collect()
    }

    async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder().method("POST").uri(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }
}

const PROTOBUF: Option<&str> = Some("application/x-protobuf");
const JSON: Option<&str> = Some("application/json");

fn json_body(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get("content-type").unwrap().to_str().unwrap()
}

fn rpc_status(bytes: &Bytes) -> tonic_types::pb::Status {
    tonic_types::pb::Status::decode(bytes.as_ref()).unwrap()
}

fn order_spans() -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    vec![span(1, None, "注文作成"), span(4, Some(1), "支払い処理")]
}

#[tokio::test]
async fn test_protobuf_traces_are_stored_and_acknowledged_with_an_empty_body() {
    let harness = Harness::new();
    let body = traces_request("checkout", order_spans(), 0).encode_to_vec();
    let (status, headers, bytes) = harness.post("/v1/traces", PROTOBUF, None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "application/x-protobuf");
    assert!(bytes.is_empty());
    assert_eq!(harness.stored_span_names(), ["注文作成", "支払い処理"]);
}

#[tokio::test]
async fn test_json_traces_with_charset_parameter() {
    let harness = Harness::new();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": TRACE_ID.to_uppercase(), "spanId": "00000000000000aa", "name": "json span",
            "kind": 2, "startTimeUnixNano": START.to_string(), "endTimeUnixNano": START + 5,
        }]}]
    }]});
    let (status, headers, bytes) = harness
        .post(
            "/v1/traces",
            Some("application/json; charset=utf-8"),
            None,
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "application/json");
    assert_eq!(json_body(&bytes), json!({}));
    assert_eq!(harness.stored_span_names(), ["json span"]);
}

#[tokio::test]
async fn test_every_content_encoding() {
    let plain = traces_request("checkout", order_spans(), 0).encode_to_vec();
    let cases: [(&str, Vec<u8>); 5] = [
        ("gzip", gzip(&plain)),
        ("GZIP", gzip(&plain)),
        ("deflate", zlib(&plain)),
        ("zstd", zstd(&plain)),
        ("identity", plain.clone()),
    ];
    for (encoding, body) in cases {
        let harness = Harness::new();
        let (status, _, _) = harness
            .post("/v1/traces", PROTOBUF, Some(encoding), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{encoding}");
        assert_eq!(harness.stored_span_names().len(), 2, "{encoding}");
    }
}

#[tokio::test]
async fn test_invalid_items_are_rejected_one_by_one() {
    let harness = Harness::new();
    let body = traces_request("checkout", order_spans(), 2).encode_to_vec();
    let (status, _, bytes) = harness.post("/v1/traces", PROTOBUF, None, body).await;
    assert_eq!(status, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(bytes.as_ref())
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("trace id"),
        "{}",
        partial.error_message
    );
    assert_eq!(harness.stored_span_names().len(), 2);

    let json_request = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "abcd", "spanId": "00000000000000aa", "name": "short id"},
        {"traceId": TRACE_ID, "name": "missing span id"},
        {"traceId": TRACE_ID, "spanId": "00000000000000bb", "name": "kept"},
    ]}]}]});
    let (status, _, bytes) = harness
        .post(
            "/v1/traces",
            JSON,
            None,
            json_request.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let partial = &json_body(&bytes)["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "2");
    assert!(partial["errorMessage"].is_string());
    assert!(harness.stored_span_names().contains(&"kept".to_owned()));
}

#[tokio::test]
async fn test_logs_are_stored() {
    let harness = Harness::new();
    let body = gzip(&logs_request("payments", "payment failed: 残高不足").encode_to_vec());
    let (status, _, bytes) = harness.post("/v1/logs", PROTOBUF, Some("gzip"), body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.is_empty());
    let logs = harness.query().find_logs(&LogQuery::default()).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].body.to_text(), "payment failed: 残高不足");
    assert_eq!(
        logs[0].trace_id.map(|id| id.to_hex()).as_deref(),
        Some(TRACE_ID)
    );
}

#[tokio::test]
async fn test_metrics_are_answered_as_not_stored() {
    let harness = Harness::new();
    let body = metrics_request(3).encode_to_vec();
    let (status, _, bytes) = harness.post("/v1/metrics", PROTOBUF, None, body).await;
    assert_eq!(status, StatusCode::OK);
    let response =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(
            bytes.as_ref(),
        )
        .unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 3);
    assert!(partial.error_message.contains("not stored"));

    let (status, _, bytes) = harness
        .post("/v1/metrics", JSON, None, b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        json_body(&bytes)["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not stored")
    );
}

#[tokio::test]
async fn test_empty_requests_succeed() {
    let harness = Harness::new();
    let (status, _, bytes) = harness.post("/v1/traces", PROTOBUF, None, Vec::new()).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 0));
    let (status, _, bytes) = harness
        .post("/v1/logs", JSON, None, b"{\"resourceLogs\":[]}".to_vec())
        .await;
    assert_eq!((status, json_body(&bytes)), (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn test_unsupported_content_type_and_encoding_are_415() {
    let harness = Harness::new();
    for content in [Some("text/plain"), Some("application/grpc"), None] {
        let (status, headers, bytes) = harness
            .post("/v1/traces", content, None, b"{}".to_vec())
            .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content:?}");
        assert_eq!(content_type(&headers), "application/json");
        assert!(
            json_body(&bytes)["message"]
                .as_str()
                .unwrap()
                .contains("unsupported content type")
        );
    }
    let (status, headers, bytes) = harness
        .post("/v1/traces", PROTOBUF, Some("br"), Vec::new())
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(content_type(&headers), "application/x-protobuf");
    assert!(
        rpc_status(&bytes)
            .message
            .contains("unsupported content encoding \"br\"")
    );
}

#[tokio::test]
async fn test_undecodable_bodies_are_400_in_the_request_format() {
    let harness = Harness::new();
    let (status, headers, bytes) = harness
        .post("/v1/traces", PROTOBUF, None, vec![0x0a, 0xff, 0xff])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&headers), "application/x-protobuf");
    let rpc = rpc_status(&bytes);
    assert!(
        rpc.message
            .contains("invalid protobuf ExportTraceServiceRequest"),
        "{}",
        rpc.message
    );

    let (status, headers, bytes) = harness
        .post("/v1/logs", JSON, None, b"{\"resourceLogs\": [tru".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&headers), "application/json");
    let message = json_body(&bytes)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("invalid json ExportLogsServiceRequest"),
        "{message}"
    );

    let (status, _, bytes) = harness
        .post(
            "/v1/traces",
            PROTOBUF,
            Some("gzip"),
            b"not gzip at all".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        rpc_status(&bytes)
            .message
            .contains("invalid compressed body")
    );
    assert!(harness.stored_span_names().is_empty());
}

#[tokio::test]
async fn test_oversize_bodies_are_413_before_and_after_decompression() {
    let harness = Harness::new();
    let (status, _, bytes) = harness
        .post("/v1/traces", PROTOBUF, None, vec![0; LIMIT + 1])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rpc_status(&bytes).message.contains("exceeds the limit"));

    // a small gzip body that expands past the limit
    let bomb = gzip(&vec![b' '; LIMIT * 16]);
    assert!(bomb.len() < LIMIT);
    let (status, headers, bytes) = harness.post("/v1/traces", JSON, Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type(&headers), "application/json");
    assert!(
        json_body(&bytes)["message"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit")
    );
}

#[tokio::test]
async fn test_large_bodies_are_decoded_off_the_runtime() {
    let harness = Harness::new();
    let spans = (1..=250)
        .map(|id| span(id, None, &"x".repeat(300)))
        .collect();
    let body = traces_request("bulk", spans, 0).encode_to_vec();
    assert!(body.len() > 64 * 1024 && body.len() < LIMIT * 2);
    let harness = Harness {
        app: ashiato_server::otlp_http::router(harness.store.clone(), LIMIT * 2),
        ..harness
    };
    let (status, _, _) = harness.post("/v1/traces", PROTOBUF, None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.stored_span_names().len(), 250);
}

#[tokio::test]
async fn test_only_post_is_routed() {
    let harness = Harness::new();
    let request = Request::builder()
        .method("GET")
        .uri("/v1/traces")
        .body(Body::empty())
        .unwrap();
    let response = harness.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn test_overloaded_store_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // no memtable room at all and no patience: every append is refused
    let config = StoreConfig {
        max_memory_bytes: 0,
        overload_wait: std::time::Duration::ZERO,
        ..StoreConfig::new(dir.path())
    };
    let store = Store::open(config).unwrap();
    let harness = Harness {
        app: ashiato_server::otlp_http::router(store.clone(), LIMIT),
        store,
        _dir: dir,
    };
    let body = traces_request("checkout", order_spans(), 0).encode_to_vec();
    let (status, headers, bytes) = harness.post("/v1/traces", PROTOBUF, None, body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let rpc = rpc_status(&bytes);
    assert_eq!(rpc.code, 14);
    assert!(rpc.message.contains("overloaded"), "{}", rpc.message);
}

/// An exporter that never got the acknowledgement sends the same batch
/// again, maybe compressed differently: it is acknowledged again but
/// stored once, so logs are not listed twice and span counts stay exact.
/// A batch that differs in any byte is stored.
#[tokio::test]
async fn test_a_resent_batch_is_acknowledged_and_stored_once() {
    let harness = Harness::new();
    let logs = logs_request("payments", "payment failed").encode_to_vec();
    let spans = traces_request("checkout", order_spans(), 0).encode_to_vec();
    for (encoding, body) in [(None, logs.clone()), (Some("gzip"), gzip(&logs))] {
        let (status, _, _) = harness.post("/v1/logs", PROTOBUF, encoding, body).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..2 {
        let (status, _, _) = harness
            .post("/v1/traces", PROTOBUF, None, spans.clone())
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let found = harness.query().find_logs(&LogQuery::default()).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let counted: Vec<(String, u64)> = harness
        .query()
        .services()
        .into_iter()
        .map(|service| (service.name, service.span_count))
        .collect();
    assert_eq!(counted, [("checkout".to_owned(), 2)]);

    let other = logs_request("payments", "payment failed again").encode_to_vec();
    let (status, _, _) = harness.post("/v1/logs", PROTOBUF, None, other).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        harness
            .query()
            .find_logs(&LogQuery::default())
            .unwrap()
            .len(),
        2
    );
}

/// A record without any time is not identified by its bytes (the same
/// line twice may be two events): such a body is stored every time.
#[tokio::test]
async fn test_timeless_log_records_are_stored_every_time() {
    let harness = Harness::new();
    let mut request = logs_request("batch", "retrying");
    for record in request
        .resource_logs
        .iter_mut()
        .flat_map(|resource| &mut resource.scope_logs)
        .flat_map(|scope| &mut scope.log_records)
    {
        record.time_unix_nano = 0;
        record.observed_time_unix_nano = 0;
    }
    let body = request.encode_to_vec();
    for _ in 0..2 {
        let (status, _, _) = harness.post("/v1/logs", PROTOBUF, None, body.clone()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let query = LogQuery {
        start_ns: Some(0),
        ..LogQuery::default()
    };
    assert_eq!(harness.query().find_logs(&query).unwrap().len(), 2);
}
