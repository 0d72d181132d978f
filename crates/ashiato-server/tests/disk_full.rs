//! A full disk under a running server, on a real 4 MiB tmpfs: OTLP/HTTP
//! and Datadog clients get a retryable 503 with `Retry-After`, gRPC clients
//! UNAVAILABLE, `/readyz` says "not ready: disk full"; once space is freed
//! the same request is stored and the server is ready again; a restart on
//! the full disk fails with an error that says "disk full".
//!
//! Mounting needs root (CI runs as root). Without it the test says so on
//! stderr and checks nothing else.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ashiato_server::{Server, ServerConfig};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Tmpfs { _dir: dir, path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the device is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0x5a; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0x5a; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
}

async fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// A trace request of about 200 KiB (more than any space left on a full disk).
fn big_request(name: &str) -> Vec<u8> {
    let spans = (0..100u8)
        .map(|id| {
            let mut span = span(id + 1, None, name);
            span.attributes
                .push(string_attr("filler", &"x".repeat(2000)));
            span
        })
        .collect();
    traces_request("disk-full", spans, 0).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_full_disk_is_retryable_not_ready_and_named_at_start() {
    let Some(tmpfs) = Tmpfs::mount("4m") else {
        eprintln!("disk_full: cannot mount a tmpfs (not root?): nothing checked");
        return;
    };
    let data_dir = tmpfs.path.join("data");
    let filler = tmpfs.path.join("filler");
    let server = Server::start(ServerConfig::ephemeral(&data_dir))
        .await
        .unwrap();
    let addrs = server.addrs();
    let otlp = addrs.otlp_http.unwrap();
    assert_eq!(get(addrs.http, "/readyz").await.0, 200);

    fill(&filler);
    let body = big_request("while-full");
    let (status, reply) = post(otlp, "/v1/traces", "application/x-protobuf", &body).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("retry-after: 10"),
        "{reply}"
    );
    assert!(reply.contains("disk full"), "{reply}");
    let mut grpc = TraceServiceClient::connect(format!("http://{}", addrs.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let request = ExportTraceServiceRequest::decode(&big_request("grpc")[..]).unwrap();
    let status = grpc.export(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let (ready, text) = get(addrs.http, "/readyz").await;
    assert_eq!(ready, 503);
    assert!(text.ends_with("not ready: disk full"), "{text}");

    std::fs::remove_file(&filler).unwrap();
    let (status, reply) = post(otlp, "/v1/traces", "application/x-protobuf", &body).await;
    assert_eq!(status, 200, "{reply}");
    grpc.export(request).await.unwrap();
    assert_eq!(get(addrs.http, "/readyz").await.0, 200);
    server.shutdown().await.unwrap();

    fill(&filler);
    let error = match Server::start(ServerConfig::ephemeral(&data_dir)).await {
        Ok(server) => {
            server.shutdown().await.unwrap();
            panic!("started on a full disk");
        }
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("disk full"), "{error}");
    drop(tmpfs);
}
