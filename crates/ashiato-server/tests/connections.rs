//! Connection limits on the real listeners: a client that stops half-way
//! through its headers (slowloris) is disconnected after the inactivity
//! timeout; beyond a listener's connection cap new connections are closed
//! at once, while the other listeners (health checks) keep answering, and
//! a place freed is usable again.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::SocketAddr;
use std::time::Duration;

use ashiato_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Guards against a hang if a limit does not work; never reached when it does.
const HANG_GUARD: Duration = Duration::from_secs(120);

async fn healthz(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Reads until the server closes the connection; the bytes it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut response = Vec::new();
    let _ = tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut response))
        .await
        .expect("the server never closed the connection");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_slowloris_is_disconnected_after_the_inactivity_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        inactivity_timeout: Duration::from_secs(1),
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let addrs = server.addrs();
    for addr in [addrs.http, addrs.otlp_http.unwrap(), addrs.datadog.unwrap()] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .unwrap();
        until_closed(&mut stream).await;
    }
    // gRPC: a connection that never sends its preface
    let mut grpc = TcpStream::connect(addrs.otlp_grpc.unwrap()).await.unwrap();
    until_closed(&mut grpc).await;
    assert!(healthz(addrs.http).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connections_beyond_the_cap_are_closed_and_health_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        max_connections: 4,
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let addrs = server.addrs();
    let otlp = addrs.otlp_http.unwrap();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(otlp).await.unwrap());
    }
    // the fifth is accepted by the kernel, then closed by the server
    let mut refused = TcpStream::connect(otlp).await.unwrap();
    assert!(until_closed(&mut refused).await.is_empty());
    // another listener is not affected
    assert!(healthz(addrs.http).await.starts_with("HTTP/1.1 200"));
    // a freed place is usable again (once the server has seen the close)
    drop(idle.pop());
    let answered = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let mut stream = TcpStream::connect(otlp).await.unwrap();
            let head = format!(
                "POST /v1/traces HTTP/1.1\r\nHost: {otlp}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let response = until_closed(&mut stream).await;
            if !response.is_empty() {
                return String::from_utf8_lossy(&response).into_owned();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_shutdown_does_not_wait_the_whole_drain_for_a_stalled_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let otlp = server.addrs().otlp_http.unwrap();
    let mut stalled = TcpStream::connect(otlp).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {otlp}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"resourceSpans\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // make sure the request is in flight before shutting down
    assert!(
        healthz(server.addrs().http)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let started = std::time::Instant::now();
    server.shutdown().await.unwrap();
    // the drain waits up to 20 s for requests; a stalled body is cut after
    // about 2 s of inactivity once shutdown began (loose bound, CI is slow)
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
}
