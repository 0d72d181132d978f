//! Request bodies held at once are capped across listeners
//! (`max_inflight_bytes`): with a 1 MiB budget, five senders that each
//! declare a 400 kB body and hold it back leave room for two; the other
//! three are refused at once with 503 + `Retry-After`, and the two admitted
//! ones are stored once their bodies arrive. A gRPC export beyond the
//! budget is RESOURCE_EXHAUSTED with retry info.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use ashiato_server::{Server, ServerConfig};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BODY_BYTES: usize = 400_000;
/// Guards against a hang if admission went wrong; never reached when it works.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A valid traces request of exactly `BODY_BYTES`: one span, padded with
/// an unknown top-level field (which decoders skip).
fn padded_request(span_id: u8) -> Vec<u8> {
    let mut body = traces_request("inflight", vec![span(span_id, None, "held")], 0).encode_to_vec();
    let pad = BODY_BYTES - body.len() - 1 - 3;
    body.push((15 << 3) | 2);
    prost::encoding::encode_varint(pad as u64, &mut body);
    body.resize(BODY_BYTES, 0);
    assert_eq!(body.len(), BODY_BYTES);
    body
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bodies_beyond_the_inflight_budget_are_refused_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        max_inflight_bytes: 1024 * 1024,
        max_message_bytes: 512 * 1024,
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let addrs = server.addrs();
    let otlp = addrs.otlp_http.unwrap();

    let (replies, mut received) = mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for index in 0..5u8 {
        let stream = tokio::net::TcpStream::connect(otlp).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {otlp}\r\nConnection: close\r\nContent-Type: application/x-protobuf\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
        );
        write.write_all(head.as_bytes()).await.unwrap();
        writers.push(Some(write));
        let replies = replies.clone();
        tokio::spawn(async move {
            let mut response = Vec::new();
            let _ = read.read_to_end(&mut response).await;
            let _ = replies.send((index, String::from_utf8_lossy(&response).into_owned()));
        });
    }
    // three do not fit: their answers come without any body sent
    for _ in 0..3 {
        let (index, reply) = tokio::time::timeout(HANG_GUARD, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(
            reply.to_ascii_lowercase().contains("retry-after: 1"),
            "{reply}"
        );
        writers[usize::from(index)] = None;
    }
    // the two admitted ones send their bodies and are stored
    // (the write halves stay open until the answers are read: a half-closed
    // connection is closed by the server before it answers)
    let mut admitted = Vec::new();
    for (index, writer) in writers.iter_mut().enumerate() {
        if let Some(writer) = writer.as_mut() {
            let span_id = index as u8 + 1;
            writer.write_all(&padded_request(span_id)).await.unwrap();
            admitted.push(span_id);
        }
    }
    assert_eq!(admitted.len(), 2);
    for _ in 0..2 {
        let (_, reply) = tokio::time::timeout(HANG_GUARD, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let trace = get(addrs.http, &format!("/api/v1/traces/{TRACE_ID}")).await;
    let trace: serde_json::Value = serde_json::from_str(&trace).unwrap();
    let mut stored_ids: Vec<String> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| span["span_id"].as_str().unwrap().to_owned())
        .collect();
    stored_ids.sort_unstable();
    let admitted: Vec<String> = admitted.iter().map(|id| format!("{id:016x}")).collect();
    assert_eq!(stored_ids, admitted);

    // gRPC: a message larger than what is left
    let filler = "y".repeat(300 * 1024);
    let mut big = span(9, None, "grpc");
    big.attributes.push(string_attr("filler", &filler));
    let mut grpc = TraceServiceClient::connect(format!("http://{}", addrs.otlp_grpc.unwrap()))
        .await
        .unwrap();
    // hold 800 kB through two HTTP senders again, then export over gRPC
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(otlp).await.unwrap();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {otlp}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    let request = traces_request("inflight", vec![big], 0);
    let status = loop {
        // the held requests are admitted once the server reads their
        // headers; until then the export may still fit and succeed
        match grpc.export(request.clone()).await {
            Err(status) => break status,
            Ok(_) => tokio::task::yield_now().await,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .metadata()
            .get_bin("google.rpc.retryinfo-bin")
            .is_some(),
        "{status:?}"
    );
    drop(held);
    server.shutdown().await.unwrap();
}
