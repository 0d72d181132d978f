//! The real OpenTelemetry Python SDK sends through every transport ashiato
//! accepts (gRPC, HTTP/protobuf, HTTP/JSON; gzip and deflate), and what
//! comes back through the query API is exactly what the SDK sent.

use serde_json::{Value, json};

use crate::support::{PeerPython, TestServer, run_peer};

/// Runs the shop peer over one transport and returns the trace id it printed.
pub fn send_shop(server: &TestServer, protocol: &str, compression: Option<&str>) -> String {
    let (python, endpoint) = match protocol {
        "grpc" => (PeerPython::Proto, server.otlp_grpc_base()),
        "http/json" => (PeerPython::Json, server.otlp_http_base()),
        _ => (PeerPython::Proto, server.otlp_http_base()),
    };
    let mut env = vec![
        ("PEER_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
    ];
    if let Some(compression) = compression {
        env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", compression));
    }
    let trace_id = run_peer(python, "otel_shop.py", &env);
    assert_eq!(
        trace_id.len(),
        32,
        "peer printed {trace_id:?}, not a trace id"
    );
    trace_id
}

pub fn span_named<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == name))
        .unwrap_or_else(|| panic!("no span named {name:?} in {trace:#}"))
}

fn nanos(value: &Value, what: &str) -> u64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} must be a JSON string, got {value}"));
    text.parse()
        .unwrap_or_else(|_| panic!("{what} is not an integer: {text:?}"))
}

fn is_root(span: &Value) -> bool {
    match &span["parent_span_id"] {
        Value::Null => true,
        Value::String(parent) => parent.is_empty(),
        _ => false,
    }
}

/// Everything the shop peer put into its trace, checked field by field.
pub fn assert_shop_trace(trace: &Value, trace_id: &str) {
    assert_eq!(trace["trace_id"], trace_id);
    assert_eq!(
        trace["spans"].as_array().map(Vec::len),
        Some(3),
        "{trace:#}"
    );
    let root = span_named(trace, "GET /orders/{id}");
    let child = span_named(trace, "SELECT orders");
    let failing = span_named(trace, "charge card");

    // tree and kinds
    assert!(is_root(root), "root has a parent: {root}");
    assert_eq!(child["parent_span_id"], root["span_id"]);
    assert_eq!(failing["parent_span_id"], root["span_id"]);
    assert_eq!(root["kind"], "server");
    assert_eq!(child["kind"], "client");
    assert_eq!(failing["kind"], "internal");
    for span in [root, child, failing] {
        assert_eq!(span["service"], "peer-shop");
        let id = span["span_id"].as_str().unwrap_or_default();
        assert!(
            id.len() == 16
                && id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    // times are strings; the child (which sleeps 30 ms) lies inside the root
    let root_start = nanos(&root["start_time_unix_nano"], "start_time_unix_nano");
    let root_duration = nanos(&root["duration_ns"], "duration_ns");
    let child_start = nanos(&child["start_time_unix_nano"], "start_time_unix_nano");
    let child_duration = nanos(&child["duration_ns"], "duration_ns");
    assert!(
        child_duration >= 30_000_000,
        "child lasted {child_duration} ns"
    );
    assert!(root_start <= child_start);
    assert!(child_start + child_duration <= root_start + root_duration);

    // attribute types survive
    let attributes = &root["attributes"];
    assert_eq!(attributes["http.request.method"], "GET");
    assert!(
        attributes["http.response.status_code"].is_i64(),
        "int must be a JSON number: {attributes}"
    );
    assert_eq!(attributes["http.response.status_code"], 200);
    assert!(
        attributes["ratio"].is_f64(),
        "float must be a JSON number: {attributes}"
    );
    assert_eq!(attributes["ratio"], 0.25);
    assert_eq!(attributes["cache.hit"], true);
    assert_eq!(attributes["tags"], json!(["a", "b"]));
    assert_eq!(attributes["retry.counts"], json!([1, 2, 3]));

    // events and links
    let event = &child["events"][0];
    assert_eq!(event["name"], "cache.miss");
    assert_eq!(event["attributes"]["cache.key"], "order:42");
    assert_eq!(event["attributes"]["attempt"], 2);
    let event_time = nanos(&event["time_unix_nano"], "event time_unix_nano");
    assert!(event_time >= child_start && event_time <= child_start + child_duration);
    let link = &child["links"][0];
    assert_eq!(link["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(link["span_id"], "b7ad6b7169203331");
    assert_eq!(link["attributes"]["link.kind"], "follows");

    // error status and the recorded exception
    assert_eq!(failing["status"]["code"], "error");
    let message = failing["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("card declined"),
        "status message {message:?}"
    );
    let exception = failing["events"]
        .as_array()
        .and_then(|events| events.iter().find(|event| event["name"] == "exception"))
        .unwrap_or_else(|| panic!("no exception event: {failing}"));
    assert_eq!(exception["attributes"]["exception.type"], "ValueError");
    assert_eq!(
        exception["attributes"]["exception.message"],
        "card declined"
    );
    let stacktrace = exception["attributes"]["exception.stacktrace"]
        .as_str()
        .unwrap_or_default();
    assert!(
        stacktrace.contains("Traceback"),
        "stacktrace {stacktrace:?}"
    );
    assert_ne!(root["status"]["code"], "error");

    // resource and scope
    assert_eq!(root["resource"]["service.name"], "peer-shop");
    assert_eq!(root["resource"]["service.version"], "2.0.1");
    assert_eq!(root["resource"]["deployment.environment.name"], "test");
    assert_eq!(root["resource"]["telemetry.sdk.language"], "python");
    assert_eq!(root["scope"]["name"], "peer.scope");
    assert_eq!(root["scope"]["version"], "0.3.0");
}

/// The two log records of the shop peer: correlated with the trace, typed
/// attributes, severity filter.
pub fn assert_shop_logs(server: &TestServer, trace: &Value, trace_id: &str) {
    let root_span_id = span_named(trace, "GET /orders/{id}")["span_id"].clone();
    let logs = server.wait_for_logs(&format!("trace_id={trace_id}"), 2);
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let error = logs
        .iter()
        .find(|log| log["body"] == "payment failed")
        .unwrap_or_else(|| panic!("no 'payment failed' record: {logs:#?}"));
    assert_eq!(error["severity_text"], "ERROR");
    assert_eq!(error["severity_number"], 17);
    assert_eq!(error["service"], "peer-shop");
    assert_eq!(error["trace_id"], trace_id);
    assert_eq!(error["span_id"], root_span_id);
    assert_eq!(error["attributes"]["exception.type"], "ValueError");
    assert_eq!(error["attributes"]["exception.message"], "card declined");
    assert_eq!(error["resource"]["deployment.environment.name"], "test");
    nanos(&error["time_unix_nano"], "log time_unix_nano");

    let info = logs
        .iter()
        .find(|log| log["body"] == "order shipped")
        .unwrap_or_else(|| panic!("no 'order shipped' record: {logs:#?}"));
    assert_eq!(info["severity_number"], 9);
    assert_eq!(info["attributes"]["order.id"], 42);
    assert_eq!(info["attributes"]["warehouse"], "tokyo");
    assert_eq!(info["trace_id"], trace_id);

    let errors = server.get_json("/api/v1/logs?service=peer-shop&severity=error");
    let bodies: Vec<&Value> = errors["logs"]
        .as_array()
        .map(|logs| logs.iter().map(|log| &log["body"]).collect())
        .unwrap_or_default();
    assert_eq!(
        bodies,
        [&json!("payment failed")],
        "severity=error is a minimum, INFO must not match"
    );
    let warn_and_up = server.get_json("/api/v1/logs?severity=warn");
    assert_eq!(warn_and_up["logs"].as_array().map(Vec::len), Some(1));
    let everything = server.get_json("/api/v1/logs?severity=info&q=shipped");
    assert_eq!(
        everything["logs"].as_array().map(Vec::len),
        Some(1),
        "q= is a substring filter"
    );
}

fn round_trip(protocol: &str, compression: Option<&str>) {
    let server = TestServer::start();
    let trace_id = send_shop(&server, protocol, compression);
    let trace = server.wait_for_trace(&trace_id, 3);
    assert_shop_trace(&trace, &trace_id);
    assert_shop_logs(&server, &trace, &trace_id);
}

#[test]
fn test_grpc_round_trip() {
    round_trip("grpc", None);
}

#[test]
fn test_grpc_gzip_round_trip() {
    round_trip("grpc", Some("gzip"));
}

#[test]
fn test_http_protobuf_round_trip() {
    round_trip("http/protobuf", None);
}

#[test]
fn test_http_protobuf_gzip_round_trip() {
    round_trip("http/protobuf", Some("gzip"));
}

#[test]
fn test_http_protobuf_deflate_round_trip() {
    round_trip("http/protobuf", Some("deflate"));
}

#[test]
fn test_http_json_round_trip() {
    round_trip("http/json", None);
}

fn trace_ids(server: &TestServer, query: &str) -> Vec<String> {
    let found = server.get_json(&format!("/api/v1/traces?{query}"));
    found["traces"]
        .as_array()
        .map(|traces| {
            traces
                .iter()
                .filter_map(|t| t["trace_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn test_services_operations_and_trace_search() {
    let server = TestServer::start();
    let trace_id = send_shop(&server, "http/protobuf", None);
    server.wait_for_trace(&trace_id, 3);

    let services = server.get_json("/api/v1/services");
    let shop = services["services"]
        .as_array()
        .and_then(|list| list.iter().find(|service| service["name"] == "peer-shop"))
        .unwrap_or_else(|| panic!("peer-shop missing: {services}"));
    assert_eq!(shop["span_count"], 3);
    assert_eq!(shop["error_count"], 1);

    let operations = server.get_json("/api/v1/services/peer-shop/operations");
    let mut names: Vec<(String, i64, i64)> = operations["operations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|op| {
                    let name = op["name"].as_str().unwrap_or_default().to_owned();
                    (
                        name,
                        op["span_count"].as_i64().unwrap_or(-1),
                        op["error_count"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(
        names,
        [
            ("GET /orders/{id}".to_owned(), 1, 0),
            ("SELECT orders".to_owned(), 1, 0),
            ("charge card".to_owned(), 1, 1)
        ]
    );

    let summary = server.get_json("/api/v1/traces?service=peer-shop");
    let first = &summary["traces"][0];
    assert_eq!(first["trace_id"], trace_id.as_str());
    assert_eq!(first["root_service"], "peer-shop");
    assert_eq!(first["root_name"], "GET /orders/{id}");
    assert_eq!(first["span_count"], 3);
    assert_eq!(first["error_count"], 1);
    assert_eq!(first["services"], json!(["peer-shop"]));
    nanos(&first["start_time_unix_nano"], "start_time_unix_nano");
    assert!(nanos(&first["duration_ns"], "duration_ns") >= 30_000_000);

    let hit = vec![trace_id.clone()];
    let none: Vec<String> = Vec::new();
    assert_eq!(trace_ids(&server, "service=peer-shop&error=true"), hit);
    assert_eq!(trace_ids(&server, "service=nobody"), none);
    assert_eq!(
        trace_ids(&server, "service=peer-shop&operation=charge%20card"),
        hit
    );
    assert_eq!(trace_ids(&server, "min_duration=10ms"), hit);
    assert_eq!(trace_ids(&server, "min_duration=1h"), none);
    // Duration bounds hold for one matching span (not the whole trace), so
    // pair them with an operation whose duration the peer controls.
    assert_eq!(
        trace_ids(&server, "operation=SELECT%20orders&min_duration=20ms"),
        hit
    );
    assert_eq!(
        trace_ids(&server, "operation=SELECT%20orders&max_duration=1ms"),
        none
    );
    assert_eq!(trace_ids(&server, "attr=http.request.method:GET"), hit);
    assert_eq!(
        trace_ids(&server, "attr=http.response.status_code:200"),
        hit
    );
    assert_eq!(trace_ids(&server, "attr=http.request.method:POST"), none);
    assert_eq!(
        trace_ids(&server, "attr=http.request.method:GET&attr=cache.hit:false"),
        none
    );
    assert_eq!(trace_ids(&server, "limit=1"), hit);
}
