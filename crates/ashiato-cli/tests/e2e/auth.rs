//! Access control end to end: `ashiato token` against a running server
//! (picked up without restart), the real Python SDK sending its token as
//! `OTEL_EXPORTER_OTLP_HEADERS` over gRPC and HTTP, the client commands'
//! `--token`, issue changes recording the token's name, and the refusal to
//! expose a listener without access control.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{
    PeerPython, TestServer, http_request, run_cli, run_peer, try_run_peer, wait_until,
};

fn create_token(tokens_file: &Path, name: &str, scope: &str) -> String {
    let file = tokens_file.to_str().unwrap_or_default();
    let (ok, stdout, stderr) = run_cli(&[
        "token",
        "create",
        "--scope",
        scope,
        "--name",
        name,
        "--tokens-file",
        file,
    ]);
    assert!(ok, "token create failed: {stderr}");
    assert!(stderr.contains("shown only this once"), "{stderr}");
    stdout.trim().to_owned()
}

fn api_status(server: &TestServer, path: &str, token: Option<&str>) -> u16 {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    http_request(server.addrs.http, "GET", path, &headers, b"").status
}

/// Waits for an issue of this type, reading with `token`.
fn wait_for_issue(server: &TestServer, token: &str, error_type: &str) -> Value {
    let authorization = format!("Bearer {token}");
    wait_until(&format!("issue {error_type}"), || {
        let response = http_request(
            server.addrs.http,
            "GET",
            "/api/v1/issues",
            &[("authorization", &authorization)],
            b"",
        );
        response.json()["issues"]
            .as_array()?
            .iter()
            .find(|issue| issue["error_type"] == error_type)
            .cloned()
    })
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as users write it (the SDK percent-decodes).
fn sdk_headers(token: &str) -> String {
    format!("authorization=Bearer%20{token}")
}

#[test]
fn test_tokens_from_the_cli_guard_ingest_and_api_without_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let tokens_file = dir.path().join("tokens");
    let file_arg = tokens_file.to_str().unwrap_or_default().to_owned();
    let server = TestServer::start_with(&["--tokens-file", &file_arg, "--error-settle", "1s"]);
    // named but still empty: everything is refused
    assert_eq!(api_status(&server, "/api/v1/services", None), 401);

    let ingest = create_token(&tokens_file, "payments", "ingest");
    let admin = create_token(&tokens_file, "oncall", "admin");
    assert!(ingest.starts_with("ashiato_") && ingest != admin);
    let stored = std::fs::read_to_string(&tokens_file).unwrap_or_default();
    assert!(
        !stored.contains(&ingest),
        "the secret itself must not be stored"
    );
    let (ok, listed, _) = run_cli(&["token", "list", "--tokens-file", &file_arg]);
    assert!(ok);
    assert_eq!(listed, "payments\tingest\noncall\tadmin\n");
    // the log, not requests with the token: each refused request would count
    // towards the per-source failure limit
    wait_until("the server to pick up the new tokens", || {
        server
            .stderr()
            .contains("tokens reloaded tokens=2")
            .then_some(())
    });
    assert_eq!(api_status(&server, "/api/v1/services", Some(&admin)), 200);
    assert_eq!(api_status(&server, "/api/v1/services", Some(&ingest)), 403);

    // the real SDK, with and without its token, over gRPC and HTTP
    let grpc = server.otlp_grpc_base();
    let http = server.otlp_http_base();
    for (protocol, endpoint) in [("grpc", &grpc), ("http/protobuf", &http)] {
        let base = [
            ("PEER_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ];
        let refused = try_run_peer(PeerPython::Proto, "otel_shop.py", &base);
        assert!(
            refused.is_err(),
            "{protocol}: export without a token succeeded"
        );
        let headers = sdk_headers(&admin);
        let mut env = base.to_vec();
        env.push(("OTEL_EXPORTER_OTLP_HEADERS", &headers));
        assert!(
            try_run_peer(PeerPython::Proto, "otel_shop.py", &env).is_err(),
            "{protocol}: admin is not ingest"
        );
        let headers = sdk_headers(&ingest);
        let mut env = base.to_vec();
        env.push(("OTEL_EXPORTER_OTLP_HEADERS", &headers));
        let trace_id = run_peer(PeerPython::Proto, "otel_shop.py", &env);
        assert_eq!(
            api_status(&server, &format!("/api/v1/traces/{trace_id}"), Some(&admin)),
            200
        );
    }

    // the client commands take --token (or ASHIATO_TOKEN)
    let api = server.api_base();
    let (ok, _, stderr) = run_cli(&["traces", "--server", &api]);
    assert!(!ok && stderr.contains("401"), "{stderr}");
    let (ok, stdout, stderr) = run_cli(&["traces", "--server", &api, "--token", &admin]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("peer-shop"), "{stdout}");

    // an issue change records the token's name
    let headers = sdk_headers(&ingest);
    run_peer(
        PeerPython::Proto,
        "otel_errors.py",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()),
            ("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str()),
            ("PEER_SCENARIO", "requests"),
            ("PEER_COUNT", "1"),
            ("PEER_ERROR", "ValueError"),
            ("PEER_VERSION", "1.0.0"),
        ],
    );
    let issue = wait_for_issue(&server, &admin, "ValueError");
    let id = issue["id"].as_str().unwrap_or_default();
    let (ok, stdout, stderr) =
        run_cli(&["issue", id, "resolve", "--server", &api, "--token", &admin]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("set resolved by oncall"), "{stdout}");
    let detail = http_request(
        server.addrs.http,
        "GET",
        &format!("/api/v1/issues/{id}"),
        &[("authorization", &format!("Bearer {admin}"))],
        b"",
    )
    .json();
    assert_eq!(
        detail["status_history"][0]["changed_by"], "oncall",
        "{detail}"
    );
    assert_eq!(detail["status_history"][0]["status"], "resolved");

    // revoked: refused again, still without restart
    let (ok, _, stderr) = run_cli(&["token", "revoke", "oncall", "--tokens-file", &file_arg]);
    assert!(ok, "{stderr}");
    wait_until("the revocation to take effect", || {
        (api_status(&server, "/api/v1/services", Some(&admin)) == 401).then_some(())
    });
}

/// Starts `ashiato serve` with these flags and returns (exit status if it
/// exited, stderr so far); a server that reached `ready` is killed.
fn serve(data_dir: &Path, flags: &[&str]) -> (Option<i32>, String) {
    let log = data_dir.join("serve.log");
    let stderr = std::fs::File::create(&log).unwrap_or_else(|error| panic!("log file: {error}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ashiato"))
        .arg("serve")
        .args([
            "--otlp-grpc",
            "127.0.0.1:0",
            "--datadog",
            "off",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir.join("data"))
        .args(flags)
        .env_remove("ASHIATO_OTLP_HTTP")
        .env_remove("ASHIATO_INSECURE_NO_AUTH")
        .env_remove("ASHIATO_TOKENS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("spawn: {error}"));
    let stdout = child.stdout.take().map(BufReader::new);
    let ready = stdout
        .into_iter()
        .flat_map(|reader| reader.lines())
        .map_while(Result::ok)
        .any(|line| line == "ready");
    let code = if ready {
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        child.wait().ok().and_then(|status| status.code())
    };
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn test_exposing_a_listener_without_access_control_needs_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let (code, stderr) = serve(dir.path(), &["--otlp-http", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on otlp-http 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ashiato token create --scope ingest --name NAME"),
        "{stderr}"
    );

    let (code, stderr) = serve(
        dir.path(),
        &["--otlp-http", "0.0.0.0:0", "--insecure-no-auth"],
    );
    assert_eq!(code, None, "it must start: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("insecure-no-auth"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("WARN"), "{stderr}");

    // an allow-list is access control too
    let (code, stderr) = serve(
        dir.path(),
        &[
            "--otlp-http",
            "0.0.0.0:0",
            "--allow-otlp-http",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(code, None, "{stderr}");
}
