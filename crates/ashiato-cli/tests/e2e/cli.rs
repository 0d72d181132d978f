//! The terminal commands against a real server: `ashiato demo` fills it
//! through OTLP/HTTP, then `trace`, `traces` and `logs` read it back.

use std::net::TcpListener;

use serde_json::Value;

use crate::support::{TestServer, run_cli, wait_until};

/// Runs the demo into `server` and returns the failed-payment trace id it
/// suggests looking at.
fn run_demo(server: &TestServer) -> String {
    let endpoint = server.otlp_http_base();
    let api = server.api_base();
    let (ok, stdout, stderr) = run_cli(&[
        "demo",
        "--endpoint",
        &endpoint,
        "--traces",
        "10",
        "--seed",
        "1",
        "--interval",
        "0s",
        "--server",
        &api,
    ]);
    assert!(
        ok,
        "demo failed:\nstdout: {stdout}\nstderr: {stderr}\n{}",
        server.stderr()
    );
    assert!(stdout.contains("sent 10 traces"), "summary: {stdout}");
    let failed_line = stdout
        .lines()
        .find(|line| line.contains("ashiato trace ") && line.contains("残高不足"))
        .unwrap_or_else(|| panic!("no failed-payment example in: {stdout}"));
    assert!(
        failed_line.contains(&format!("--server {api}")),
        "examples must carry --server: {stdout}"
    );
    let trace_id = failed_line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no trace id in {failed_line:?}"))
        .to_owned();
    assert_eq!(trace_id.len(), 32, "{failed_line:?}");
    trace_id
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn test_demo_fills_every_service_and_an_error_trace() {
    let server = TestServer::start();
    let failed = run_demo(&server);

    let services = wait_until("the four demo services", || {
        let services = server.get_json("/api/v1/services");
        let found = names(&services, "services");
        ["checkout", "users", "inventory", "payments"]
            .iter()
            .all(|wanted| found.iter().any(|name| name == wanted))
            .then_some(services)
    });
    let checkout = services["services"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["name"] == "checkout"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(checkout["span_count"], 10, "one root per order: {services}");

    let trace = server.wait_for_trace(&failed, 5);
    let payment = trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == "支払い処理"))
        .unwrap_or_else(|| panic!("no payment span: {trace:#}"));
    assert_eq!(payment["status"]["code"], "error");
    assert_eq!(payment["status"]["message"], "残高不足");
    assert_eq!(payment["service"], "payments");
    assert!(payment["attributes"]["amount"].is_f64());
    let exception = &payment["events"][0];
    assert_eq!(exception["name"], "exception");
    assert_eq!(
        exception["attributes"]["exception.type"],
        "InsufficientFundsError"
    );

    let errors = server.get_json("/api/v1/traces?service=payments&error=true");
    let error_ids: Vec<&str> = errors["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["trace_id"].as_str())
        .collect();
    assert!(error_ids.contains(&failed.as_str()), "{errors}");

    let payment_errors = server.wait_for_logs(
        &format!("service=payments&severity=error&trace_id={failed}"),
        1,
    );
    let body = payment_errors[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains("残高不足"), "{body:?}");
    let batch_errors = server.wait_for_logs("service=batch&severity=error", 1);
    assert!(
        batch_errors[0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout after 30s")
    );
}

#[test]
fn test_trace_traces_and_logs_commands() {
    let server = TestServer::start();
    let failed = run_demo(&server);
    server.wait_for_trace(&failed, 5);
    let api = server.api_base();

    let (ok, tree, stderr) = run_cli(&["trace", &failed, "--server", &api]);
    assert!(ok, "trace failed: {stderr}");
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with("注文作成"), "root first: {tree}");
    assert!(
        lines[0].contains("checkout") && lines[0].contains("http.route=/orders"),
        "{tree}"
    );
    assert!(
        tree.contains("├── ユーザー検証") && tree.contains("user_id="),
        "{tree}"
    );
    assert!(
        tree.contains("├── 在庫確認") && tree.contains("product_id="),
        "{tree}"
    );
    assert!(
        tree.contains("│   └── SELECT stock") || tree.contains("│   ├── SELECT stock"),
        "{tree}"
    );
    assert!(tree.contains("└── 支払い処理"), "{tree}");
    let payment_line = lines
        .iter()
        .find(|line| line.contains("支払い処理"))
        .copied()
        .unwrap_or_default();
    assert!(
        payment_line.contains("amount=") && payment_line.ends_with("ERROR 残高不足"),
        "{payment_line:?}"
    );

    let (ok, json, _) = run_cli(&["trace", &failed, "--json", "--server", &api]);
    assert!(ok);
    let parsed: Value = serde_json::from_str(&json).expect("--json prints JSON");
    assert_eq!(parsed["trace_id"], failed.as_str());

    let (ok, table, stderr) = run_cli(&[
        "traces",
        "--service",
        "payments",
        "--error",
        "--server",
        &api,
    ]);
    assert!(ok, "traces failed: {stderr}");
    assert!(table.starts_with("TRACE ID"), "{table}");
    assert!(table.contains(&failed), "{table}");
    assert!(
        table.lines().skip(1).all(|line| line.contains("注文作成")),
        "{table}"
    );

    let (ok, table, _) = run_cli(&["traces", "--min-duration", "1h", "--server", &api]);
    assert!(ok);
    assert!(table.is_empty(), "nothing lasts an hour: {table}");

    let (ok, logs, stderr) = run_cli(&["logs", "--severity", "error", "--server", &api]);
    assert!(ok, "logs failed: {stderr}");
    assert!(logs.lines().all(|line| line.contains("ERROR")), "{logs}");
    assert!(
        logs.contains("payments") && logs.contains("残高不足"),
        "{logs}"
    );
    assert!(logs.contains(&format!("trace={failed}")), "{logs}");
    assert!(
        logs.contains("batch") && logs.contains("timeout after 30s"),
        "{logs}"
    );
    assert!(
        !logs.contains("注文を作成しました"),
        "INFO must be filtered: {logs}"
    );

    let (ok, logs, _) = run_cli(&[
        "logs",
        "--service",
        "batch",
        "--since",
        "1h",
        "--server",
        &api,
    ]);
    assert!(ok);
    assert!(logs.lines().all(|line| line.contains("batch")), "{logs}");
    assert!(logs.contains("INFO"), "{logs}");
}

#[test]
fn test_server_errors_are_shown() {
    let server = TestServer::start();
    let api = server.api_base();
    let (ok, _, stderr) = run_cli(&[
        "trace",
        "0123456789abcdef0123456789abcdef",
        "--server",
        &api,
    ]);
    assert!(!ok);
    assert!(stderr.contains("server answered 404"), "{stderr}");

    let (ok, _, stderr) = run_cli(&["logs", "--severity", "loud", "--server", &api]);
    assert!(!ok);
    assert!(
        stderr.contains("server answered 400") && stderr.contains("loud"),
        "{stderr}"
    );

    // the demo pointed at the API listener instead of OTLP/HTTP
    let (ok, _, stderr) = run_cli(&["demo", "--endpoint", &api, "--traces", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("server answered 404") && stderr.contains("OTLP/HTTP listener"),
        "{stderr}"
    );
}

#[test]
fn test_unreachable_server_is_a_clear_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let server = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["traces"],
        vec!["logs"],
        vec!["trace", "0123456789abcdef0123456789abcdef"],
    ] {
        let mut args = args;
        args.extend(["--server", server.as_str()]);
        let (ok, stdout, stderr) = run_cli(&args);
        assert!(!ok, "{args:?} must fail");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(&format!(
                "cannot reach ashiato at {server} (connection refused)"
            )) && stderr.contains("is 'ashiato serve' running?"),
            "{args:?}: {stderr}"
        );
    }
    let (ok, _, stderr) = run_cli(&["demo", "--endpoint", &server, "--traces", "1"]);
    assert!(!ok);
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn test_trace_command_on_an_sdk_trace() {
    let server = TestServer::start();
    let trace_id = crate::sdk::send_shop(&server, "http/protobuf", None);
    server.wait_for_trace(&trace_id, 3);
    let api = server.api_base();

    let (ok, tree, stderr) = run_cli(&["trace", &trace_id, "--server", &api]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 4, "{tree}");
    assert!(
        lines[0].starts_with("GET /orders/{id}") && lines[0].contains("peer-shop"),
        "{tree}"
    );
    assert!(lines[0].contains("http.response.status_code=200"), "{tree}");
    assert!(
        !lines[0].contains("ratio="),
        "only key attributes without --attrs: {tree}"
    );
    assert!(lines[1].starts_with("├── SELECT orders"), "{tree}");
    assert_eq!(lines[2], "│   └── event: cache.miss", "{tree}");
    assert!(lines[3].starts_with("└── charge card"), "{tree}");
    assert!(
        lines[3].ends_with("ERROR ValueError: card declined"),
        "{tree}"
    );

    let (ok, tree, _) = run_cli(&["trace", &trace_id, "--attrs", "--server", &api]);
    assert!(ok);
    for expected in [
        "ratio=0.25",
        "cache.hit=true",
        "tags=[a,b]",
        "retry.counts=[1,2,3]",
    ] {
        assert!(tree.contains(expected), "{expected} missing: {tree}");
    }
    assert!(
        tree.contains("event: cache.miss  attempt=2  cache.key=order:42"),
        "{tree}"
    );
    assert!(
        tree.contains("event: exception") && tree.contains("exception.type=ValueError"),
        "{tree}"
    );
}

#[test]
fn test_serve_check_config_validates_without_binding_or_opening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // a port that is taken: --check-config must not try to bind it
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap().to_string();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../packaging/ashiato.toml");
    let data = data_dir.to_str().unwrap();
    let args = [
        "serve",
        "--check-config",
        "--config",
        sample,
        "--data-dir",
        data,
        "--http",
        &http,
    ];
    let (ok, stdout, stderr) = run_cli(&args);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.starts_with("config ok\n"), "{stdout}");
    assert!(stdout.contains(&format!("http {http}\n")), "{stdout}");
    assert!(!data_dir.exists(), "--check-config opened the store");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "retention = \"soon\"\n").unwrap();
    let (ok, _, stderr) = run_cli(&["serve", "--check-config", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("invalid retention in config file"),
        "{stderr}"
    );
}
