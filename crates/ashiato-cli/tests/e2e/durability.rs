//! What is acknowledged stays: across a graceful restart and across
//! `kill -9` right after the SDK's export returned.

use crate::sdk::{assert_shop_logs, assert_shop_trace, send_shop};
use crate::support::TestServer;

#[test]
fn test_restart_keeps_traces_and_logs() {
    let mut server = TestServer::start();
    let trace_id = send_shop(&server, "http/protobuf", None);
    let before = server.wait_for_trace(&trace_id, 3);
    server.wait_for_logs(&format!("trace_id={trace_id}"), 2);

    server.restart();

    // Right after `ready` the data must be back; no polling here on purpose.
    let (status, after) = server.get(&format!("/api/v1/traces/{trace_id}"));
    assert_eq!(
        status,
        200,
        "trace lost across restart: {after}\n{}",
        server.stderr()
    );
    assert_shop_trace(&after, &trace_id);
    assert_eq!(
        sorted_spans(&before),
        sorted_spans(&after),
        "trace changed across restart"
    );
    assert_shop_logs(&server, &after, &trace_id);
}

#[test]
fn test_kill9_after_acknowledgement_keeps_data() {
    let mut server = TestServer::start();
    // The peer exits only after both exports were acknowledged; kill at once,
    // before anything could be flushed lazily.
    let trace_id = send_shop(&server, "grpc", None);
    server.kill9();
    server.start_again();

    let trace = server.wait_for_trace(&trace_id, 3);
    assert_shop_trace(&trace, &trace_id);
    assert_shop_logs(&server, &trace, &trace_id);
}

#[test]
fn test_kill9_twice_and_new_data_after_recovery() {
    let mut server = TestServer::start();
    let first = send_shop(&server, "http/protobuf", None);
    server.kill9();
    server.start_again();
    let second = send_shop(&server, "grpc", Some("gzip"));
    server.kill9();
    server.start_again();
    for trace_id in [&first, &second] {
        let trace = server.wait_for_trace(trace_id, 3);
        assert_shop_trace(&trace, trace_id);
    }
    let logs = server.wait_for_logs("service=peer-shop", 4);
    assert_eq!(
        logs.len(),
        4,
        "duplicated or lost log records after recovery: {logs:#?}"
    );
}

fn sorted_spans(trace: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut spans = trace["spans"].as_array().cloned().unwrap_or_default();
    spans.sort_by_key(|span| span["span_id"].as_str().unwrap_or_default().to_owned());
    spans
}
