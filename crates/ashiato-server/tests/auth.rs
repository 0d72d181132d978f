//! Access control on every listener, in process: each refuses a request
//! without a token (401 / `UNAUTHENTICATED`), accepts the right scope and
//! refuses the wrong one (403 / `PERMISSION_DENIED`); allow-lists, the
//! failure limit, issue changes recording their author, and no CORS.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::net::SocketAddr;

use ashiato_server::auth::{Cidr, tokens};
use ashiato_server::{Server, ServerConfig};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

const INGEST: &str = "ashiato_test_ingest_token";
const READ: &str = "ashiato_test_read_token";
const ADMIN: &str = "ashiato_test_admin_token";

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let answer = raw_request(addr, &addr.to_string(), method, path, headers, body).await;
    Answer {
        status: answer.status,
        head: answer.head,
        body: String::from_utf8_lossy(&answer.body).into_owned(),
    }
}

fn token_config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::ephemeral(dir);
    config.access.tokens = [
        ("payments", "ingest", INGEST),
        ("ci", "read", READ),
        ("oncall", "admin", ADMIN),
    ]
    .iter()
    .map(|(name, scope, token)| {
        tokens::record(name, &[(*scope).to_owned()], &tokens::hash_hex(token)).unwrap()
    })
    .collect();
    // these tests fail on purpose many times from one address
    config.access.failure_limit = 1_000;
    config
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// (who, the header, the status expected for an ingest request)
fn ingest_cases() -> Vec<(&'static str, Option<String>, u16)> {
    vec![
        ("no token", None, 401),
        ("unknown token", Some(bearer("ashiato_nope")), 401),
        ("read token", Some(bearer(READ)), 403),
        ("admin token", Some(bearer(ADMIN)), 403),
        ("ingest token", Some(bearer(INGEST)), 200),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_every_http_listener_checks_tokens_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(token_config(dir.path())).await.unwrap();
    let addrs = server.addrs();
    let otlp = traces_request("auth", vec![span(1, None, "op")], 0).encode_to_vec();
    let datadog_logs = br#"[{"message":"hello","service":"auth","status":"info"}]"#;
    let datadog_trace = br#"[[{"trace_id":1,"span_id":2,"parent_id":0,"name":"web.request","resource":"GET /","service":"auth","start":1767323045000000000,"duration":1000}]]"#;
    let targets: Vec<(&str, SocketAddr, &str, &str, &[u8])> = vec![
        (
            "otlp-http traces",
            addrs.otlp_http.unwrap(),
            "/v1/traces",
            "application/x-protobuf",
            &otlp,
        ),
        (
            "datadog v0.3",
            addrs.datadog.unwrap(),
            "/v0.3/traces",
            "application/json",
            datadog_trace,
        ),
        (
            "datadog logs",
            addrs.datadog.unwrap(),
            "/api/v2/logs",
            "application/json",
            datadog_logs,
        ),
        (
            "http logs intake",
            addrs.http,
            "/api/v2/logs",
            "application/json",
            datadog_logs,
        ),
    ];
    for (name, addr, path, content_type, body) in &targets {
        for (who, authorization, expected) in ingest_cases() {
            let mut headers = vec![("content-type", *content_type)];
            if let Some(value) = &authorization {
                headers.push(("authorization", value));
            }
            let answer = request(*addr, "POST", path, &headers, body).await;
            let ok = answer.status / 100 == 2;
            assert!(
                if expected == 200 {
                    ok
                } else {
                    answer.status == expected
                },
                "{name} with {who}: {} {}",
                answer.status,
                answer.body
            );
            if expected == 401 {
                assert_eq!(
                    answer.header("www-authenticate").as_deref(),
                    Some("Bearer realm=\"ashiato\"")
                );
                assert!(
                    answer.body.contains("ashiato token create"),
                    "{}",
                    answer.body
                );
            }
        }
    }
    // the Datadog logs intake also takes the key as Datadog shippers send it
    let answer = request(
        addrs.datadog.unwrap(),
        "POST",
        "/api/v2/logs",
        &[("content-type", "application/json"), ("DD-API-KEY", INGEST)],
        datadog_logs,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);

    // the API: read for GET, admin for changes, probes and UI open
    let api = addrs.http;
    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("GET", "/api/v1/services", None, 401),
        ("GET", "/api/v1/services", Some(INGEST), 403),
        ("GET", "/api/v1/services", Some(READ), 200),
        ("GET", "/api/v1/services", Some(ADMIN), 200),
        // no token, no answer about what exists
        (
            "GET",
            "/api/v1/traces/5b8efff798038103d269b633813fc60c",
            None,
            401,
        ),
        ("GET", "/api/v1/no-such-route", None, 401),
        ("GET", "/api/v1/issues/0123456789ab", None, 401),
        ("PATCH", "/api/v1/issues/0123456789ab", None, 401),
        ("PATCH", "/api/v1/issues/0123456789ab", Some(READ), 403),
        ("PATCH", "/api/v1/issues/0123456789ab", Some(ADMIN), 404),
        ("GET", "/healthz", None, 200),
        ("GET", "/readyz", None, 200),
        ("GET", "/", None, 200),
    ];
    for (method, path, token, expected) in cases {
        let authorization = token.map(bearer);
        let mut headers = vec![("content-type", "application/json")];
        if let Some(value) = &authorization {
            headers.push(("authorization", value));
        }
        let answer = request(api, method, path, &headers, br#"{"status":"resolved"}"#).await;
        assert_eq!(
            answer.status, expected,
            "{method} {path} {token:?}: {}",
            answer.body
        );
        if expected == 401 || expected == 403 {
            let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            assert!(json["error"].is_string(), "{}", answer.body);
        }
    }

    // no CORS allowance, with or without credentials
    let preflight = request(
        api,
        "OPTIONS",
        "/api/v1/services",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    )
    .await;
    assert!(
        preflight.header("access-control-allow-origin").is_none(),
        "{}",
        preflight.head
    );
    let cross = request(
        api,
        "GET",
        "/api/v1/services",
        &[
            ("origin", "https://evil.example"),
            ("authorization", &bearer(READ)),
        ],
        b"",
    )
    .await;
    assert_eq!(cross.status, 200);
    assert!(
        cross.header("access-control-allow-origin").is_none(),
        "{}",
        cross.head
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_grpc_checks_bearer_metadata_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(token_config(dir.path())).await.unwrap();
    let url = format!("http://{}", server.addrs().otlp_grpc.unwrap());
    for (who, authorization, expected) in ingest_cases() {
        let mut client = TraceServiceClient::connect(url.clone()).await.unwrap();
        let mut message = tonic::Request::new(traces_request("auth", vec![span(1, None, "op")], 0));
        if let Some(value) = authorization {
            message
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        let result = client.export(message).await;
        match expected {
            200 => assert!(result.is_ok(), "{who}: {result:?}"),
            401 => assert_eq!(
                result.unwrap_err().code(),
                tonic::Code::Unauthenticated,
                "{who}"
            ),
            _ => assert_eq!(
                result.unwrap_err().code(),
                tonic::Code::PermissionDenied,
                "{who}"
            ),
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_allow_list_and_failure_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::ephemeral(dir.path());
    // loopback (the test's source) is allowed on the Datadog listener only
    config.access.allow.datadog = vec![Cidr::parse("127.0.0.0/8").unwrap()];
    config.access.allow.otlp_http = vec![Cidr::parse("10.0.0.0/8").unwrap()];
    config.access.failure_limit = 3;
    let server = Server::start(config).await.unwrap();
    let addrs = server.addrs();
    let trace = br#"[[{"trace_id":1,"span_id":2,"parent_id":0,"name":"web.request","resource":"GET /","service":"auth","start":1767323045000000000,"duration":1000}]]"#;
    let answer = request(
        addrs.datadog.unwrap(),
        "PUT",
        "/v0.3/traces",
        &[("content-type", "application/json")],
        trace,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let otlp = traces_request("auth", vec![span(1, None, "op")], 0).encode_to_vec();
    let headers = [("content-type", "application/x-protobuf")];
    for _ in 0..3 {
        let answer = request(
            addrs.otlp_http.unwrap(),
            "POST",
            "/v1/traces",
            &headers,
            &otlp,
        )
        .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(
            answer.body.contains("source address is not allowed"),
            "{}",
            answer.body
        );
    }
    let limited = request(
        addrs.otlp_http.unwrap(),
        "POST",
        "/v1/traces",
        &headers,
        &otlp,
    )
    .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // the UI/API listener has no allow-list and there are no tokens: open
    let answer = request(addrs.http, "GET", "/api/v1/services", &[], b"").await;
    assert_eq!(answer.status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_non_loopback_listener_needs_access_control() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::ephemeral(dir.path());
    config.otlp_http = Some("0.0.0.0:0".parse().unwrap());
    let error = Server::start(config.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("refusing to listen on otlp-http 0.0.0.0:0"),
        "{error}"
    );
    assert!(error.contains("ashiato token create"), "{error}");
    config.access.insecure_no_auth = true;
    let server = Server::start(config).await.unwrap();
    server.shutdown().await.unwrap();
}

/// The session cookie's `name=value` from a login answer.
fn session_cookie(answer: &Answer) -> String {
    let set_cookie = answer.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_web_session_login_cookie_access_csrf_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(token_config(dir.path())).await.unwrap();
    let api = server.addrs().http;
    let json = ("content-type", "application/json");
    let csrf = ("x-ashiato-csrf", "1");

    let answer = request(api, "GET", "/api/v1/session", &[], b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.body).unwrap(),
        serde_json::json!({"auth": true, "logged_in": false})
    );

    // (token, csrf header, status): only read and admin tokens log in
    let logins: Vec<(&str, bool, u16)> = vec![
        ("ashiato_nope", true, 401),
        (INGEST, true, 403),
        (READ, false, 403),
        (READ, true, 200),
        (ADMIN, true, 200),
    ];
    let mut cookies = std::collections::HashMap::new();
    for (token, with_csrf, expected) in logins {
        let body = serde_json::json!({ "token": token }).to_string();
        let mut headers = vec![json];
        if with_csrf {
            headers.push(csrf);
        }
        let answer = request(api, "POST", "/api/v1/session", &headers, body.as_bytes()).await;
        assert_eq!(answer.status, expected, "{token}: {}", answer.body);
        if expected == 200 {
            let scope = if token == READ { "read" } else { "admin" };
            assert!(answer.body.contains(scope), "{}", answer.body);
            cookies.insert(scope, session_cookie(&answer));
        } else {
            assert!(answer.header("set-cookie").is_none());
        }
    }
    let read = cookies["read"].as_str();
    let admin = cookies["admin"].as_str();
    let issue = "/api/v1/issues/0123456789ab";
    // (method, path, cookie, csrf header, status)
    let cases: Vec<(&str, &str, Option<&str>, bool, u16)> = vec![
        ("GET", "/api/v1/services", None, false, 401),
        ("GET", "/api/v1/services", Some(read), false, 200),
        ("GET", "/api/v1/services", Some(admin), false, 200),
        (
            "GET",
            "/api/v1/services",
            Some("ashiato_session=ashiato_forged"),
            false,
            401,
        ),
        ("PATCH", issue, Some(read), true, 403),
        // a cross-site form can send the cookie but not the header
        ("PATCH", issue, Some(admin), false, 403),
        ("PATCH", issue, Some(admin), true, 404),
    ];
    for (method, path, cookie, with_csrf, expected) in cases {
        let mut headers = vec![json];
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        if with_csrf {
            headers.push(csrf);
        }
        let answer = request(api, method, path, &headers, b"{\"status\":\"resolved\"}").await;
        assert_eq!(
            answer.status, expected,
            "{method} {path} {cookie:?} csrf={with_csrf}: {}",
            answer.body
        );
    }

    let answer = request(api, "GET", "/api/v1/session", &[("cookie", admin)], b"").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.body).unwrap(),
        serde_json::json!({"auth": true, "logged_in": true, "name": "oncall", "scope": "admin"})
    );
    // logout needs the header too, then the cookie is dead server-side
    let answer = request(api, "DELETE", "/api/v1/session", &[("cookie", admin)], b"").await;
    assert_eq!(answer.status, 403);
    let answer = request(
        api,
        "DELETE",
        "/api/v1/session",
        &[("cookie", admin), csrf],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.header("set-cookie").unwrap().contains("Max-Age=0"),
        "{:?}",
        answer.header("set-cookie")
    );
    let answer = request(api, "GET", "/api/v1/services", &[("cookie", admin)], b"").await;
    assert_eq!(answer.status, 401);
    let answer = request(api, "GET", "/api/v1/services", &[("cookie", read)], b"").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_web_session_without_tokens_reports_auth_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let api = server.addrs().http;
    let answer = request(api, "GET", "/api/v1/session", &[], b"").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.body).unwrap(),
        serde_json::json!({"auth": false, "logged_in": false})
    );
    let answer = request(
        api,
        "POST",
        "/api/v1/session",
        &[
            ("content-type", "application/json"),
            ("x-ashiato-csrf", "1"),
        ],
        br#"{"token":"ashiato_x"}"#,
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
}
