//! The Datadog listener in process: agent endpoints with captured ddtrace
//! payloads (PUT and POST), read-back through the API, 400 for undecodable
//! bodies while the server keeps serving, logs intake on both listeners
//! (plain, gzip, zstd), and overload answers (429 when the tracer asks for
//! real statuses, 503 otherwise).

#![allow(clippy::unwrap_used)] // tests may unwrap; helpers outside #[test] are not covered by clippy.toml

mod common;

use std::io::Write;
use std::net::SocketAddr;

use ashiato_server::{Server, ServerConfig};
use serde_json::Value;

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal HTTP/1.1 request with `Connection: close`.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let answer = common::raw_request(addr, &addr.to_string(), method, path, headers, body).await;
    Reply {
        status: answer.status,
        head: answer.head,
        body: answer.body,
    }
}

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const MSGPACK: (&str, &str) = ("Content-Type", "application/msgpack");

/// Where to post, the path, headers and body.
type Post<'a> = (SocketAddr, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_agent_endpoints_store_traces_and_refuse_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let addrs = server.addrs();
    let datadog = addrs.datadog.unwrap();
    assert!(
        addrs
            .lines()
            .contains(&format!("listening datadog {datadog}"))
    );
    assert_eq!(addrs.lines().last().unwrap(), "ready");

    let info = request(datadog, "GET", "/info", &[], b"").await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["client_drop_p0s"], false);
    let endpoints = info["endpoints"].as_array().unwrap();
    assert!(endpoints.contains(&Value::from("/v0.5/traces")));
    assert!(
        !endpoints
            .iter()
            .any(|e| e == "/v0.7/config" || e == "/v1.0/traces")
    );

    // dd-trace-js sends PUT, Python and Go POST
    let put = request(
        datadog,
        "PUT",
        "/v0.4/traces",
        &[MSGPACK],
        &capture("v04_python.msgpack"),
    )
    .await;
    assert_eq!(
        (put.status, put.json()),
        (200, serde_json::json!({"rate_by_service": {}}))
    );
    assert!(
        put.head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let post = request(
        datadog,
        "POST",
        "/v0.5/traces",
        &[MSGPACK],
        &capture("v05_python.msgpack"),
    )
    .await;
    assert_eq!(post.status, 200);

    let v03 = br#"[[{"service":"legacy","name":"op","resource":"r","trace_id":5,"span_id":6,"start":1700000000000000000,"duration":1}]]"#;
    let legacy = request(
        datadog,
        "POST",
        "/v0.3/traces",
        &[("Content-Type", "application/json")],
        v03,
    )
    .await;
    assert_eq!((legacy.status, legacy.text()), (200, "OK\n".to_owned()));

    let garbage = request(
        datadog,
        "POST",
        "/v0.4/traces",
        &[MSGPACK],
        b"\x91\xdd\xff\xff",
    )
    .await;
    assert_eq!(garbage.status, 400);
    assert!(garbage.text().contains("msgpack"), "{}", garbage.text());

    assert_eq!(
        request(datadog, "POST", "/v0.6/stats", &[MSGPACK], b"\x80")
            .await
            .status,
        200
    );
    let telemetry = request(
        datadog,
        "POST",
        "/telemetry/proxy/api/v2/apmtelemetry",
        &[],
        b"{}",
    )
    .await;
    assert_eq!(telemetry.status, 202);

    // still serving after the bad payload; both captures are whole traces
    for (trace_id, spans) in [
        ("6b012bad00000000546d466c43d64b6e", 4),
        ("6b012bc4000000000d7c87a46c655154", 4),
        ("00000000000000000000000000000005", 1),
    ] {
        let trace = request(
            addrs.http,
            "GET",
            &format!("/api/v1/traces/{trace_id}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(trace.status, 200, "{trace_id}");
        assert_eq!(
            trace.json()["spans"].as_array().unwrap().len(),
            spans,
            "{trace_id}"
        );
    }
    server.shutdown().await.unwrap();
}

/// A payload with no usable span is a 400 that says why (200 would tell
/// the tracer its spans were stored); one with some usable spans keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_payload_without_usable_spans_is_400_and_mixed_keeps_the_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let addrs = server.addrs();
    let datadog = addrs.datadog.unwrap();
    // [[{"span_id": 0}]]: no trace id, no span id
    let mut only_bad = vec![0x91, 0x91, 0x81, 0xa7];
    only_bad.extend_from_slice(b"span_id");
    only_bad.push(0x00);
    // (path, content type, body, status, text in the answer)
    let cases: [(&str, &str, Vec<u8>, u16, &str); 3] = [
        ("/v0.4/traces", "application/msgpack", only_bad, 400, "trace_id 0"),
        (
            "/v0.3/traces",
            "application/json",
            br#"[[{"service":"s","name":"op","trace_id":7,"span_id":8,"start":-1,"duration":1}]]"#.to_vec(),
            400,
            "negative start",
        ),
        (
            "/v0.3/traces",
            "application/json",
            br#"[[{"service":"s","name":"op","trace_id":7,"span_id":0,"start":1700000000000000000,"duration":1},{"service":"s","name":"op","trace_id":7,"span_id":9,"start":1700000000000000000,"duration":1}]]"#.to_vec(),
            200,
            "OK",
        ),
    ];
    for (path, content_type, body, status, text) in cases {
        let reply = request(
            datadog,
            "POST",
            path,
            &[("Content-Type", content_type)],
            &body,
        )
        .await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert!(reply.text().contains(text), "{path}: {}", reply.text());
    }
    let trace = request(
        addrs.http,
        "GET",
        "/api/v1/traces/00000000000000000000000000000007",
        &[],
        b"",
    )
    .await;
    assert_eq!(trace.status, 200);
    assert_eq!(trace.json()["spans"].as_array().unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_logs_intake_on_both_listeners_compressed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let addrs = server.addrs();
    let json = ("Content-Type", "application/json");
    let batch = br#"[{"message":"disk full","status":"error","service":"batch","ddsource":"python",
        "ddtags":"env:prod,team:core","error.kind":"OSError","error.message":"disk full",
        "error.stack":"Traceback (most recent call last):\n  File \"job.py\", line 1, in run\nOSError: disk full"},
        {"message":"started","status":"info","service":"batch"}]"#;
    let cases: Vec<Post<'_>> = vec![
        (
            addrs.datadog.unwrap(),
            "/api/v2/logs",
            vec![json],
            batch.to_vec(),
        ),
        (
            addrs.http,
            "/api/v2/logs",
            vec![json, ("Content-Encoding", "gzip")],
            gzip(batch),
        ),
        (
            addrs.datadog.unwrap(),
            "/v1/input?service=batch",
            vec![
                json,
                ("Content-Encoding", "zstd"),
                ("DD-API-KEY", "ignored"),
            ],
            zstd::encode_all(&br#"{"message":"one object","status":"warn"}"#[..], 0).unwrap(),
        ),
    ];
    for (addr, path, headers, body) in cases {
        let reply = request(addr, "POST", path, &headers, &body).await;
        assert_eq!(
            (reply.status, reply.text()),
            (202, "{}".to_owned()),
            "{path}"
        );
    }
    let bad = request(addrs.http, "POST", "/api/v2/logs", &[json], b"[{").await;
    assert_eq!(bad.status, 400);
    let unknown = request(
        addrs.http,
        "POST",
        "/api/v2/logs",
        &[("Content-Encoding", "br")],
        b"x",
    )
    .await;
    assert_eq!(unknown.status, 415);

    let logs = request(
        addrs.http,
        "GET",
        "/api/v1/logs?service=batch&limit=100",
        &[],
        b"",
    )
    .await;
    let logs = logs.json();
    let records = logs["logs"].as_array().unwrap();
    assert_eq!(records.len(), 5, "{logs}");
    let errors = request(
        addrs.http,
        "GET",
        "/api/v1/logs?service=batch&severity=error",
        &[],
        b"",
    )
    .await;
    assert_eq!(errors.json()["logs"].as_array().unwrap().len(), 2);
    server.shutdown().await.unwrap();
}

async fn overloaded_reply(real_status: bool) -> (u16, Option<String>) {
    use ashiato_store::{Store, StoreConfig};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    // no memtable room at all and no patience: every append is refused
    let config = StoreConfig {
        max_memory_bytes: 0,
        overload_wait: std::time::Duration::ZERO,
        ..StoreConfig::new(dir.path())
    };
    let store = Store::open(config).unwrap();
    let app = ashiato_server::datadog::router(store, 1 << 20);
    let mut builder = axum::http::Request::builder()
        .method("POST")
        .uri("/v0.4/traces")
        .header("content-type", "application/msgpack");
    if real_status {
        builder = builder.header("datadog-send-real-http-status", "1");
    }
    let request = builder
        .body(axum::body::Body::from(capture("v04_python.msgpack")))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn test_overload_is_429_for_libdatadog_and_503_otherwise() {
    let (status, retry_after) = overloaded_reply(true).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    let (status, retry_after) = overloaded_reply(false).await;
    assert_eq!(status, 503);
    assert!(retry_after.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_decimal_trace_id_in_logs_joins_the_128_bit_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let addrs = server.addrs();
    let traces = request(
        addrs.datadog.unwrap(),
        "POST",
        "/v0.4/traces",
        &[MSGPACK],
        &capture("v04_python.msgpack"),
    )
    .await;
    assert_eq!(traces.status, 200);
    // what ddtrace's log injection writes without 128-bit logging: the low
    // 64 bits in decimal; posted to the http listener's intake
    let log = br#"{"message":"handled","service":"peer-svc","dd.trace_id":"6083596102455937902","dd.span_id":"8062852343741495451"}"#;
    let reply = request(
        addrs.http,
        "POST",
        "/api/v2/logs",
        &[("Content-Type", "application/json")],
        log,
    )
    .await;
    assert_eq!(reply.status, 202);
    let logs = request(
        addrs.http,
        "GET",
        "/api/v1/logs?trace_id=6b012bad00000000546d466c43d64b6e",
        &[],
        b"",
    )
    .await
    .json();
    assert_eq!(logs["logs"].as_array().map(Vec::len), Some(1), "{logs}");
    assert_eq!(logs["logs"][0]["span_id"], "6fe5017ce123389b");
    server.shutdown().await.unwrap();
}
