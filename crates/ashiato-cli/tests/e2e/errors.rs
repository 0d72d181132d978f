//! Error tracking end to end: the real Python OpenTelemetry SDK sends
//! failing requests and batch-job logs; the issues API must show one
//! occurrence per failed request, group varying messages, split different
//! types, and keep exact counts across restarts and crashes.

use serde_json::Value;

use crate::support::{PeerPython, TestServer, run_cli, run_peer, wait_until};

/// Runs the errors peer and returns the trace ids it printed.
pub fn send_requests(server: &TestServer, count: usize, error: &str, version: &str) -> Vec<String> {
    let endpoint = server.otlp_grpc_base();
    let count = count.to_string();
    let output = run_peer(
        PeerPython::Proto,
        "otel_errors.py",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("PEER_SCENARIO", "requests"),
            ("PEER_COUNT", count.as_str()),
            ("PEER_ERROR", error),
            ("PEER_VERSION", version),
        ],
    );
    output.lines().map(str::to_owned).collect()
}

pub fn issues(server: &TestServer, query: &str) -> Vec<Value> {
    server.get_json(&format!("/api/v1/issues?{query}"))["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the issue with this error type has `count` occurrences.
pub fn wait_for_issue(server: &TestServer, error_type: &str, count: u64) -> Value {
    wait_until(&format!("issue {error_type} with count {count}"), || {
        issues(server, "")
            .into_iter()
            .find(|issue| issue["error_type"] == error_type && issue["count"] == count)
    })
}

#[test]
fn test_nested_spans_and_log_of_one_request_are_one_occurrence() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let traces = send_requests(&server, 3, "ValueError", "1.0.0");
    assert_eq!(traces.len(), 3);
    for trace in &traces {
        // every request's three spans are stored
        server.wait_for_trace(trace, 3);
    }
    let issue = wait_for_issue(&server, "ValueError", 3);
    // varying ids in the messages: still one issue
    assert_eq!(issues(&server, "").len(), 1, "{:#?}", issues(&server, ""));
    assert_eq!(issue["service"], "peer-orders");
    assert_eq!(issue["environment"], "test");
    assert_eq!(issue["status"], "open");
    assert_eq!(issue["regressed"], false);
    assert_eq!(issue["sources"], serde_json::json!(["span", "log"]));
    assert_eq!(issue["first_version"], "1.0.0");
    assert_eq!(issue["hourly_24h"].as_array().map(Vec::len), Some(24));
    let title = issue["title"].as_str().unwrap_or_default();
    assert!(
        title.starts_with("ValueError: order <num> not found"),
        "{title}"
    );

    let id = issue["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    assert_eq!(detail["hourly_14d"].as_array().map(Vec::len), Some(336));
    assert_eq!(detail["fingerprint"]["algorithm_version"], 3);
    let components = detail["fingerprint"]["components"].to_string();
    assert!(
        components.contains("frame=peers.otel_errors:load_order"),
        "{components}"
    );
    let top = &detail["stack"][0];
    assert_eq!(top["function"], "load_order");
    assert_eq!(top["in_app"], true);
    assert_eq!(detail["culprit"], "peers.otel_errors in load_order");
    // attributed to the deepest span (handler), the two others listed
    let samples = detail["samples"].as_array().cloned().unwrap_or_default();
    assert!(samples.len() >= 3, "{samples:#?}");
    let sample = &samples[0];
    assert_eq!(
        sample["ancestors"].as_array().map(Vec::len),
        Some(2),
        "{sample:#}"
    );
    let trace_id = sample["trace_id"].as_str().unwrap_or_default();
    let trace = server.get_json(&format!("/api/v1/traces/{trace_id}"));
    let handler = crate::sdk::span_named(&trace, "handler");
    assert_eq!(sample["span_id"], handler["span_id"]);
    // the log's attribute became a facet
    let facets = detail["facets"].to_string();
    assert!(facets.contains("customer.id"), "{facets}");

    // different exception types are different issues
    send_requests(&server, 1, "KeyError", "1.0.0");
    wait_for_issue(&server, "KeyError", 1);
    assert_eq!(issues(&server, "").len(), 2);
    assert_eq!(issues(&server, "q=keyerror").len(), 1);
    assert_eq!(issues(&server, "source=log&service=peer-orders").len(), 2);
    assert_eq!(issues(&server, "status=resolved").len(), 0);
    let (status, body) = server.get("/api/v1/issues?sort=sideways");
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.get("/api/v1/issues/0123456789ab");
    assert_eq!(status, 404);
}

#[test]
fn test_batch_job_logs_become_issues_with_exact_counts() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let endpoint = server.otlp_grpc_base();
    run_peer(
        PeerPython::Proto,
        "otel_errors.py",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("PEER_SCENARIO", "batch"),
        ],
    );
    server.wait_for_logs("service=peer-batch", 14);
    let timeout = wait_for_issue(&server, "TimeoutError", 4);
    wait_for_issue(&server, "IntegrityError", 2);
    let template = wait_until("template issue", || {
        issues(&server, "q=failed%20to%20process")
            .into_iter()
            .find(|issue| issue["count"] == 3)
    });
    assert_eq!(
        template["title"],
        "ERROR: failed to process item <num>: timeout after <dur>"
    );
    // INFO records make no issue: exactly the three above
    let all = issues(&server, "service=peer-batch");
    assert_eq!(all.len(), 3, "{all:#?}");
    for issue in &all {
        assert_eq!(issue["sources"], serde_json::json!(["log"]));
    }
    assert_eq!(issues(&server, "source=span").len(), 0);

    let id = timeout["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    assert_eq!(detail["stack"][0]["function"], "push");
    let facets = detail["facets"].to_string();
    assert!(facets.contains("nightly-export"), "{facets}");

    // the CLI shows the same
    let api = server.api_base();
    let (ok, stdout, stderr) = run_cli(&["issues", "--server", &api, "--service", "peer-batch"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("TimeoutError: item <num> timed out"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run_cli(&["issue", id, "--server", &api]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("* push in jobs.client"), "{stdout}");
    assert!(stdout.contains("job.step: push (4)"), "{stdout}");
}

#[test]
fn test_counts_survive_restart_and_crash_exactly() {
    let mut server = TestServer::start_with(&["--error-settle", "1s"]);
    send_requests(&server, 3, "ValueError", "1.0.0");
    wait_for_issue(&server, "ValueError", 3);
    server.restart();
    wait_for_issue(&server, "ValueError", 3);
    assert!(
        server.stderr().contains("no recovery scan"),
        "a clean restart should not rescan the store: {}",
        server.stderr()
    );

    // acknowledged but not yet decided when killed: the recovery scan
    // finds them, the replayed ones are not counted again
    let traces = send_requests(&server, 2, "ValueError", "1.0.0");
    for trace in &traces {
        server.wait_for_trace(trace, 3);
    }
    server.kill9();
    server.start_again();
    wait_for_issue(&server, "ValueError", 5);
    server.restart();
    let issue = wait_for_issue(&server, "ValueError", 5);
    assert_eq!(issues(&server, "").len(), 1);
    assert_eq!(issue["sources"], serde_json::json!(["span", "log"]));
}

#[test]
fn test_patch_changes_status_and_refuses_bad_bodies() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    send_requests(&server, 1, "ValueError", "1.0.0");
    let issue = wait_for_issue(&server, "ValueError", 1);
    let id = issue["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/issues/{id}");
    let json = [("content-type", "application/json")];
    let patch = |path: &str, body: &str| {
        crate::support::http_request(server.addrs.http, "PATCH", path, &json, body.as_bytes())
    };

    for bad in ["{", r#"{"status":"closed"}"#, r#"{"state":"open"}"#] {
        let response = patch(&path, bad);
        assert_eq!(response.status, 400, "{bad}: {}", response.text());
        assert!(response.json()["error"].is_string());
    }
    let response = patch("/api/v1/issues/0123456789ab", r#"{"status":"ignored"}"#);
    assert_eq!(response.status, 404, "{}", response.text());

    let response = patch(
        &path,
        r#"{"status":"resolved","resolved_in_version":"1.2.0"}"#,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let updated = response.json();
    assert_eq!(updated["status"], "resolved");
    assert_eq!(updated["resolved_in_version"], "1.2.0");
    assert_eq!(issues(&server, "status=resolved").len(), 1);
    let response = patch(&path, r#"{"status":"open"}"#);
    assert_eq!(response.json()["status"], "open");
    assert_eq!(response.json()["resolved_in_version"], Value::Null);
}

#[test]
fn test_status_only_errors_count_on_entry_spans_and_fold_into_exceptions() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let endpoint = server.otlp_grpc_base();
    let traces = run_peer(
        PeerPython::Proto,
        "otel_errors.py",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("PEER_SCENARIO", "status"),
        ],
    );
    assert_eq!(traces.lines().count(), 3);
    // two 503s: one issue on the SERVER span (the INTERNAL child's status
    // error is not an entry span), grouped by type and operation
    let unavailable = wait_for_issue(&server, "503", 2);
    assert_eq!(unavailable["title"], "503 GET /health");
    assert_eq!(unavailable["culprit"], "GET /health");
    // the 500 folds into the exception below it
    let exception = wait_for_issue(&server, "RuntimeError", 1);
    let id = exception["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    assert_eq!(
        detail["samples"][0]["ancestors"].as_array().map(Vec::len),
        Some(1),
        "{detail:#}"
    );
    let all = issues(&server, "");
    assert_eq!(all.len(), 2, "{all:#?}");
}
