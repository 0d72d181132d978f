//! A span dated years ahead would keep its whole segment past retention:
//! it is stored starting now, its duration kept and its original start in
//! `ashiato.original_start_time_unix_nano`; spans dated normally are
//! unchanged.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_server::{Server, ServerConfig};
use common::*;
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_far_future_span_is_stored_at_now_with_its_original_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let addrs = server.addrs();
    let far = 4_102_444_800_000_000_000u64; // 2100-01-01
    let mut future = span(1, None, "from-the-future");
    future.start_time_unix_nano = far;
    future.end_time_unix_nano = far + 5_000;
    let normal = span(2, Some(1), "normal");
    let (normal_start, normal_end) = (normal.start_time_unix_nano, normal.end_time_unix_nano);
    let body = traces_request("clock-skew", vec![future, normal], 0).encode_to_vec();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let (status, reply) = http(addrs.otlp_http.unwrap(), "POST", "/v1/traces", &body).await;
    assert_eq!(status, 200, "{reply}");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;

    let (status, trace) = http(
        addrs.http,
        "GET",
        &format!("/api/v1/traces/{TRACE_ID}"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{trace}");
    let trace: Value = serde_json::from_str(&trace).unwrap();
    let spans = trace["spans"].as_array().unwrap();
    let find = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap().clone();
    let moved = find("from-the-future");
    let start: u64 = moved["start_time_unix_nano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=after).contains(&start), "{moved}");
    assert_eq!(moved["duration_ns"], "5000", "{moved}");
    assert_eq!(
        moved["attributes"]["ashiato.original_start_time_unix_nano"],
        Value::from(far as i64),
        "{moved}"
    );
    let kept = find("normal");
    assert_eq!(kept["start_time_unix_nano"], normal_start.to_string());
    assert!(
        kept["attributes"]
            .get("ashiato.original_start_time_unix_nano")
            .is_none()
    );
    assert_eq!(
        kept["duration_ns"],
        (normal_end - normal_start).to_string(),
        "{kept}"
    );
    server.shutdown().await.unwrap();
}
