//! Browser-reachable attacks on a loopback server: cross-site simple
//! writes to the intakes and the issue API are refused (403) while SDK-style
//! requests (no `Origin`, no `Sec-Fetch-Site`) and same-origin UI requests
//! pass; the UI/API listener answers only IP literals, localhost and
//! `--allowed-host` names in `Host` (DNS rebinding), except the probes and
//! the logs intake; the UI carries CSP and the framing/sniffing headers.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::net::SocketAddr;

use ashiato_server::{Server, ServerConfig};

struct Reply {
    status: u16,
    head: String,
}

/// One HTTP/1.1 request with the given Host and extra headers.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let answer = common::raw_request(addr, host, method, path, headers, body).await;
    Reply {
        status: answer.status,
        head: answer.head.to_ascii_lowercase(),
    }
}

/// Listener, path, method, headers, expected status.
type Case<'a> = (SocketAddr, &'a str, &'a str, Vec<(&'a str, &'a str)>, u16);

const LOG_LINE: &[u8] = br#"[{"message":"hello","service":"browser-test"}]"#;

async fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        allowed_hosts: vec!["ashiato.internal".to_owned()],
        ..ServerConfig::ephemeral(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cross_site_writes_are_refused_and_sdk_writes_pass() {
    let (_dir, server) = start().await;
    let addrs = server.addrs();
    let http = addrs.http;
    let datadog = addrs.datadog.unwrap();
    let host = http.to_string();
    let same_origin = format!("http://{http}");
    let text_plain = ("Content-Type", "text/plain");
    // (listener, path, method, headers, status)
    let cases: Vec<Case> = vec![
        (
            datadog,
            "/api/v2/logs",
            "POST",
            vec![text_plain, ("Origin", "https://evil.example")],
            403,
        ),
        (
            datadog,
            "/api/v2/logs",
            "POST",
            vec![text_plain, ("Sec-Fetch-Site", "cross-site")],
            403,
        ),
        (
            datadog,
            "/v0.4/traces",
            "PUT",
            vec![("Origin", "null")],
            403,
        ),
        (
            http,
            "/api/v2/logs",
            "POST",
            vec![text_plain, ("Sec-Fetch-Site", "same-site")],
            403,
        ),
        (
            http,
            "/v1/input",
            "POST",
            vec![text_plain, ("Origin", "http://127.0.0.1:1")],
            403,
        ),
        (
            http,
            "/api/v1/issues/x",
            "PATCH",
            vec![("Origin", "https://evil.example")],
            403,
        ),
        // SDKs and shippers send neither header
        (
            datadog,
            "/api/v2/logs",
            "POST",
            vec![("Content-Type", "application/json")],
            202,
        ),
        (
            http,
            "/api/v2/logs",
            "POST",
            vec![("Content-Type", "application/json")],
            202,
        ),
        // the UI's own requests
        (
            http,
            "/api/v2/logs",
            "POST",
            vec![("Sec-Fetch-Site", "same-origin")],
            202,
        ),
        (
            http,
            "/api/v2/logs",
            "POST",
            vec![("Origin", same_origin.as_str())],
            202,
        ),
    ];
    for (addr, path, method, headers, status) in cases {
        let host = addr.to_string();
        let reply = request(addr, method, path, &host, &headers, LOG_LINE).await;
        assert_eq!(
            reply.status, status,
            "{method} {path} {headers:?}: {}",
            reply.head
        );
    }
    // reads are never refused for their Origin, and no CORS is allowed
    let read = request(
        http,
        "GET",
        "/api/v1/services",
        &host,
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(read.status, 200);
    assert!(
        !read.head.contains("access-control-allow-origin"),
        "{}",
        read.head
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_unknown_host_names_are_refused_on_the_api_listener() {
    let (_dir, server) = start().await;
    let http = server.addrs().http;
    let port = http.port();
    let evil = format!("evil.example:{port}");
    let localhost = format!("localhost:{port}");
    let v6 = format!("[::1]:{port}");
    let allowed = format!("ashiato.internal:{port}");
    let literal = http.to_string();
    // (path, Host, status)
    let cases = [
        ("/api/v1/services", evil.as_str(), 403),
        ("/", evil.as_str(), 403),
        ("/api/v1/services", literal.as_str(), 200),
        ("/api/v1/services", localhost.as_str(), 200),
        ("/api/v1/services", v6.as_str(), 200),
        ("/api/v1/services", allowed.as_str(), 200),
        ("/healthz", evil.as_str(), 200),
        ("/readyz", evil.as_str(), 200),
    ];
    for (path, host, status) in cases {
        let reply = request(http, "GET", path, host, &[], b"").await;
        assert_eq!(reply.status, status, "{path} Host: {host}");
    }
    // log shippers may use any name for the intake
    let shipped = request(
        http,
        "POST",
        "/api/v2/logs",
        &evil,
        &[("Content-Type", "application/json")],
        LOG_LINE,
    )
    .await;
    assert_eq!(shipped.status, 202);
    // the agent listener serves tracers whatever Host they send
    let datadog = server.addrs().datadog.unwrap();
    let info = request(datadog, "GET", "/info", "datadog-agent:8126", &[], b"").await;
    assert_eq!(info.status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ui_answers_carry_security_headers() {
    let (_dir, server) = start().await;
    let http = server.addrs().http;
    let host = http.to_string();
    for path in ["/", "/traces", "/api/v1/services"] {
        let reply = request(http, "GET", path, &host, &[], b"").await;
        assert_eq!(reply.status, 200, "{path}");
        for header in [
            "content-security-policy: default-src 'self';",
            "frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
        ] {
            assert!(
                reply.head.contains(header),
                "{path}: {header} in {}",
                reply.head
            );
        }
    }
    server.shutdown().await.unwrap();
}
