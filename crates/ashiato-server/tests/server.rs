//! The whole server in process on free ports: probes, OTLP/gRPC export
//! (compressed, partial success, metrics), read-back through the API,
//! graceful shutdown and restart on the same data directory.

#![allow(clippy::unwrap_used)] // tests may unwrap; helpers outside #[test] are not covered by clippy.toml

mod common;

use std::net::SocketAddr;

use ashiato_server::{Server, ServerConfig};
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::CompressionEncoding;

/// A minimal HTTP/1.1 GET: status code and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http_get(addr, path).await;
    (status, serde_json::from_str(&body).unwrap())
}

fn grpc_url(server: &Server) -> String {
    format!("http://{}", server.addrs().otlp_grpc.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_grpc_ingest_query_shutdown_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let http = server.addrs().http;
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    assert_eq!(http_get(http, "/readyz").await, (200, "ready".to_owned()));

    let mut traces = TraceServiceClient::connect(grpc_url(&server))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let response = traces
        .export(traces_request(
            "checkout",
            vec![span(1, None, "注文作成")],
            0,
        ))
        .await
        .unwrap();
    assert_eq!(response.into_inner().partial_success, None);

    let mut zstd_traces = TraceServiceClient::connect(grpc_url(&server))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Zstd);
    let response = zstd_traces
        .export(traces_request(
            "payments",
            vec![span(4, Some(1), "支払い処理")],
            1,
        ))
        .await
        .unwrap();
    let partial = response.into_inner().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);

    let mut logs = LogsServiceClient::connect(grpc_url(&server)).await.unwrap();
    let response = logs
        .export(logs_request("payments", "残高不足"))
        .await
        .unwrap();
    assert_eq!(response.into_inner().partial_success, None);

    let mut metrics = MetricsServiceClient::connect(grpc_url(&server))
        .await
        .unwrap();
    let partial = metrics
        .export(metrics_request(5))
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_data_points, 5);
    assert!(partial.error_message.contains("not stored"));

    let (status, trace) = get_json(http, &format!("/api/v1/traces/{TRACE_ID}")).await;
    assert_eq!(status, 200);
    let services: Vec<&str> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["checkout", "payments"]);
    let (_, logs_found) = get_json(
        http,
        &format!("/api/v1/logs?trace_id={TRACE_ID}&severity=error"),
    )
    .await;
    assert_eq!(logs_found["logs"][0]["body"], "残高不足");
    let (status, missing) = get_json(http, "/api/v1/nope").await;
    assert_eq!(status, 404);
    assert!(missing["error"].is_string());

    server.shutdown().await.unwrap();

    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let (status, trace) =
        get_json(server.addrs().http, &format!("/api/v1/traces/{TRACE_ID}")).await;
    assert_eq!(status, 200);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_grpc_oversize_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        max_message_bytes: 4096,
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let mut traces = TraceServiceClient::connect(grpc_url(&server))
        .await
        .unwrap();
    let spans = (1..=40)
        .map(|id| span(id, None, &"x".repeat(200)))
        .collect();
    let error = traces
        .export(traces_request("bulk", spans, 0))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::ResourceExhausted);
    // a gzip body that is small on the wire but expands past the limit
    let mut gzip_traces = TraceServiceClient::connect(grpc_url(&server))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let bomb = traces_request("bomb", vec![span(1, None, &"x".repeat(100_000))], 0);
    let error = gzip_traces.export(bomb).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::ResourceExhausted);
    // the server keeps serving after refusing
    let response = traces
        .export(traces_request("small", vec![span(1, None, "ok")], 0))
        .await
        .unwrap();
    assert_eq!(response.into_inner().partial_success, None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_disabled_listeners_and_startup_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        otlp_grpc: None,
        otlp_http: None,
        datadog: None,
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let addrs = server.addrs();
    assert_eq!((addrs.otlp_grpc, addrs.otlp_http), (None, None));
    assert_eq!(
        addrs.lines(),
        [format!("listening http {}", addrs.http), "ready".to_owned()]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_run_returns_ok_when_the_shutdown_future_resolves() {
    let dir = tempfile::tempdir().unwrap();
    ashiato_server::run(ServerConfig::ephemeral(dir.path()), async {})
        .await
        .unwrap();
}

#[tokio::test]
async fn test_grpc_overload_sends_retry_info_in_details_and_trailer() {
    use ashiato_store::{Store, StoreConfig};
    use prost::Message;
    use tonic_types::StatusExt;

    let dir = tempfile::tempdir().unwrap();
    // no memtable room at all and no patience: every append is refused
    let config = StoreConfig {
        max_memory_bytes: 0,
        overload_wait: std::time::Duration::ZERO,
        ..StoreConfig::new(dir.path())
    };
    let store = Store::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = ashiato_server::otlp_grpc::routes(store, 1 << 20);
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let mut traces = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let status = traces
        .export(traces_request("checkout", vec![span(1, None, "x")], 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay);
    assert!(delay.is_some_and(|delay| delay > std::time::Duration::ZERO));
    let trailer = status
        .metadata()
        .get_bin("google.rpc.retryinfo-bin")
        .unwrap()
        .to_bytes()
        .unwrap();
    let retry_info = tonic_types::pb::RetryInfo::decode(trailer.as_ref()).unwrap();
    assert!(retry_info.retry_delay.is_some());
    serving.abort();
}
