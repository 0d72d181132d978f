//! Operating the server: `/metrics` (read directly and scraped by a real
//! Prometheus), 404 for paths that are not the UI's, and backups (a
//! snapshot through `POST /api/v1/admin/snapshot`, and a copy of a stopped
//! server's data dir) that open with the same traces, logs and issues.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ashiato_server::{Server, ServerConfig};
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 request without a body: status, headers and body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, _, body) = http(addr, "GET", path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of one sample line of an exposition, by its full name and labels.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Nanoseconds from [`START`] to now: the shared payloads are dated at
/// `START`, which retention (7 days) would drop when a restored store opens.
fn age() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    now - START - 1_000_000_000
}

/// Sends three valid spans and two invalid ones over OTLP/gRPC, and one
/// ERROR log record, all dated about now.
async fn send_telemetry(server: &Server) {
    let url = format!("http://{}", server.addrs().otlp_grpc.unwrap());
    let mut traces = TraceServiceClient::connect(url.clone()).await.unwrap();
    let age = age();
    let mut spans = vec![
        span(1, None, "checkout"),
        span(2, Some(1), "reserve"),
        span(3, Some(1), "pay"),
    ];
    for span in &mut spans {
        span.start_time_unix_nano += age;
        span.end_time_unix_nano += age;
    }
    let reply = traces
        .export(traces_request("shop", spans, 2))
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().partial_success.unwrap().rejected_spans,
        2
    );
    let mut logs = LogsServiceClient::connect(url).await.unwrap();
    let mut request = logs_request("shop", "payment declined for order 42");
    request.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano += age;
    logs.export(request).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_metrics_count_ingest_per_protocol_and_non_ui_paths_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    send_telemetry(&server).await;
    let http_addr = server.addrs().http;

    let (status, head, text) = http(http_addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let expected = [
        (
            r#"ashiato_ingest_received_total{protocol="otlp-grpc",signal="spans"}"#,
            5.0,
        ),
        (
            r#"ashiato_ingest_accepted_total{protocol="otlp-grpc",signal="spans"}"#,
            3.0,
        ),
        (
            r#"ashiato_ingest_rejected_total{protocol="otlp-grpc",signal="spans",reason="invalid"}"#,
            2.0,
        ),
        (
            r#"ashiato_ingest_rejected_total{protocol="otlp-grpc",signal="spans",reason="refused"}"#,
            0.0,
        ),
        (
            r#"ashiato_ingest_accepted_total{protocol="otlp-grpc",signal="logs"}"#,
            1.0,
        ),
        (
            r#"ashiato_ingest_accepted_total{protocol="otlp-http",signal="spans"}"#,
            0.0,
        ),
        (
            r#"ashiato_ingest_received_total{protocol="datadog",signal="logs"}"#,
            0.0,
        ),
        (
            r#"ashiato_ingest_overloaded_total{protocol="otlp-grpc"}"#,
            0.0,
        ),
        (
            r#"ashiato_http_request_duration_seconds_count{listener="otlp-grpc",endpoint="/opentelemetry.proto.collector.trace.v1.TraceService/Export"}"#,
            1.0,
        ),
        (r#"ashiato_segments{signal="spans"}"#, 0.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    for series in [
        "ashiato_wal_sync_duration_seconds_count",
        "ashiato_memtable_bytes",
    ] {
        assert!(sample(&text, series).unwrap() > 0.0, "{series} in\n{text}");
    }
    for series in [
        "ashiato_seal_duration_seconds_count",
        "ashiato_error_tracker_pending_traces",
        "ashiato_notification_queue_depth",
        "ashiato_notification_held_events",
        "ashiato_notifications_failed_total",
        "ashiato_notification_overflow_total",
        r#"ashiato_segment_bytes{signal="logs"}"#,
    ] {
        assert!(sample(&text, series).is_some(), "{series} in\n{text}");
    }

    // only the UI's own routes answer its page; everything else is a 404
    let cases = [
        ("/metrics/extra", 404),
        ("/favicon.ico", 404),
        ("/robots.txt", 404),
        ("/api/v1/nothing", 404),
        ("/api/nothing", 404),
        ("/v1/traces", 404),
        ("/traces", 200),
        ("/issues/abc", 200),
        ("/", 200),
    ];
    for (path, expected) in cases {
        assert_eq!(http(http_addr, "GET", path).await.0, expected, "{path}");
    }
    // the first scrape was timed too, under its route
    let (_, _, text) = http(http_addr, "GET", "/metrics").await;
    let series =
        r#"ashiato_http_request_duration_seconds_count{listener="http",endpoint="/metrics"}"#;
    assert!(sample(&text, series).unwrap() >= 1.0, "{text}");
    server.shutdown().await.unwrap();
}

/// A Prometheus server (Debian's `prometheus`, installed by scripts/test)
/// scraping one target every second; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: ashiato\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_loopback_addr();
        let binary = std::env::var("ASHIATO_TEST_PROMETHEUS")
            .unwrap_or_else(|_| "/usr/bin/prometheus".to_owned());
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting {binary} failed ({error}): run scripts/test, which installs Debian's prometheus")
            });
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The first value of an instant query, once it has one.
    fn query(&self, query: &str) -> Option<f64> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let mut response = ureq::get(&url).query("query", query).call().ok()?;
        let body: Value = response.body_mut().read_json().ok()?;
        let value = body["data"]["result"].get(0)?["value"][1].as_str()?;
        value.parse().ok()
    }

    /// Polls `query` until it returns `expected` (Prometheus scrapes every
    /// second; the deadline only bounds a broken run).
    fn wait_for(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let value = self.query(query);
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {query} = {value:?}, expected {expected}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_prometheus_scrapes_the_metrics_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    send_telemetry(&server).await;
    let prometheus = Prometheus::start(server.addrs().http);
    let checks = [
        (r#"up{job="ashiato"}"#, 1.0),
        (
            r#"ashiato_ingest_accepted_total{protocol="otlp-grpc",signal="spans"}"#,
            3.0,
        ),
        (
            r#"ashiato_ingest_rejected_total{protocol="otlp-grpc",signal="spans",reason="invalid"}"#,
            2.0,
        ),
        (
            r#"sum(ashiato_http_request_duration_seconds_count{listener="otlp-grpc"})"#,
            2.0,
        ),
    ];
    let prometheus = tokio::task::spawn_blocking(move || {
        for (query, expected) in checks {
            prometheus.wait_for(query, expected);
        }
        // a histogram Prometheus can compute with
        let quantile = prometheus
            .query(r#"histogram_quantile(0.5, sum by (le) (ashiato_wal_sync_duration_seconds_bucket))"#)
            .unwrap();
        assert!(quantile > 0.0, "{quantile}");
        prometheus
    })
    .await
    .unwrap();
    drop(prometheus);
    server.shutdown().await.unwrap();
}

/// What a backup must give back: the trace, the logs and the issues.
async fn contents(addr: SocketAddr) -> (Value, Value, Vec<(String, u64, String)>) {
    let trace = get_json(addr, &format!("/api/v1/traces/{TRACE_ID}")).await;
    let logs = get_json(addr, "/api/v1/logs?service=shop").await;
    let issues = get_json(addr, "/api/v1/issues").await;
    let mut issues: Vec<_> = issues["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| {
            (
                issue["id"].as_str().unwrap().to_owned(),
                issue["count"].as_u64().unwrap(),
                issue["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    issues.sort();
    (trace, logs, issues)
}

fn config_for(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::ephemeral(data_dir);
    config.errors.settle = Duration::from_millis(200);
    config
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_snapshot_and_a_copy_of_a_stopped_server_restore_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(config_for(&data_dir)).await.unwrap();
    send_telemetry(&server).await;
    let addr = server.addrs().http;
    // the error span and the ERROR log are one failure: wait for its issue
    let deadline = Instant::now() + Duration::from_secs(60);
    while contents(addr).await.2.is_empty() {
        assert!(Instant::now() < deadline, "no issue was recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a few settle rounds more, so nothing is still being counted
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let original = contents(addr).await;
    assert_eq!(original.0["spans"].as_array().unwrap().len(), 3);
    assert_eq!(original.1["logs"].as_array().unwrap().len(), 1);

    let (status, _, body) = http(addr, "POST", "/api/v1/admin/snapshot").await;
    assert_eq!(status, 200, "{body}");
    let made: Value = serde_json::from_str(&body).unwrap();
    let snapshot = PathBuf::from(made["path"].as_str().unwrap());
    assert!(
        snapshot.starts_with(data_dir.join("snapshots")),
        "{snapshot:?}"
    );
    assert!(made["segments"].as_u64().unwrap() >= 2, "{made}");
    server.shutdown().await.unwrap();

    let copy = dir.path().join("copy");
    copy_dir(&data_dir, &copy);
    // move the snapshot out, as a backup would, and open both
    let moved = dir.path().join("snapshot");
    std::fs::rename(&snapshot, &moved).unwrap();
    for restored in [moved, copy] {
        let server = Server::start(config_for(&restored)).await.unwrap();
        let found = contents(server.addrs().http).await;
        assert_eq!(found, original, "restored from {}", restored.display());
        server.shutdown().await.unwrap();
    }
}
