//! Datadog intake end to end: the real `ddtrace` Python tracer sends to the
//! `ashiato serve` binary's Datadog listener over v0.4 and v0.5, an
//! OpenTelemetry SDK process hands its W3C traceparent to a ddtrace process
//! (one mixed trace), and Datadog-shaped log posts (array and object,
//! plain, gzip and zstd) land as logs and grouped issues.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{PeerPython, TestServer, http_request, run_peer, wait_until};

/// Runs the ddtrace peer; returns (trace id, root span id) it printed.
fn send_dd_shop(
    server: &TestServer,
    api_version: &str,
    traceparent: Option<&str>,
) -> (String, String) {
    send_dd_shop_with(server, api_version, traceparent, &[])
}

fn send_dd_shop_with(
    server: &TestServer,
    api_version: &str,
    traceparent: Option<&str>,
    extra_env: &[(&str, &str)],
) -> (String, String) {
    let agent = server.datadog_base();
    let mut env = vec![
        ("DD_TRACE_AGENT_URL", agent.as_str()),
        ("DD_TRACE_API_VERSION", api_version),
        ("DD_SERVICE", "dd-users"),
        ("DD_ENV", "test"),
        ("DD_VERSION", "1.2.3"),
        ("DD_REMOTE_CONFIGURATION_ENABLED", "false"),
        ("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false"),
        ("DD_TRACE_STARTUP_LOGS", "false"),
    ];
    if let Some(traceparent) = traceparent {
        env.push(("PEER_TRACEPARENT", traceparent));
    }
    env.extend_from_slice(extra_env);
    let output = run_peer(PeerPython::Datadog, "dd_shop.py", &env);
    let printed: Value = output
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("dd peer printed no ids: {output:?}"));
    let field = |key: &str| printed[key].as_str().unwrap_or_default().to_owned();
    (field("trace_id"), field("root_span_id"))
}

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == name))
        .unwrap_or_else(|| panic!("no span named {name:?} in {trace:#}"))
}

/// Everything the ddtrace peer put into its trace, as the API returns it.
fn assert_dd_shop_trace(trace: &Value, trace_id: &str, root_span_id: &str) {
    // 128-bit: the high half came from _dd.p.tid
    assert_eq!(trace_id.len(), 32);
    assert_ne!(
        &trace_id[..16],
        "0000000000000000",
        "64-bit id: _dd.p.tid lost"
    );
    assert_eq!(
        trace["spans"].as_array().map(Vec::len),
        Some(4),
        "{trace:#}"
    );

    let root = span(trace, "GET /users/:id");
    assert_eq!(root["span_id"], root_span_id);
    assert_eq!(root["service"], "dd-users");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["attributes"]["operation.name"], "web.request");
    assert_eq!(root["attributes"]["resource.name"], "GET /users/:id");
    assert_eq!(root["attributes"]["span.type"], "web");
    assert_eq!(root["attributes"]["http.route"], "/users/:id");
    // metrics are typed numbers: integral as ints, fractions as floats
    assert_eq!(root["attributes"]["users.count"], json!(42));
    assert_eq!(root["attributes"]["cache.ratio"], json!(0.25));
    assert_eq!(root["resource"]["deployment.environment.name"], "test");
    assert_eq!(root["resource"]["service.version"], "1.2.3");
    assert_eq!(root["scope"]["name"], "datadog");

    let query = span(trace, "SELECT * FROM users WHERE id = ?");
    assert_eq!(query["service"], "dd-users-db");
    assert_eq!(query["kind"], "client");
    assert_eq!(query["parent_span_id"], root_span_id);
    assert_eq!(query["attributes"]["_dd.base_service"], "dd-users");

    let failed = span(trace, "validate");
    assert_eq!(failed["parent_span_id"], root_span_id);
    assert_eq!(failed["status"]["code"], "error");
    assert_eq!(failed["status"]["message"], "user 42 is not valid");
    assert_eq!(failed["attributes"]["error.type"], "builtins.ValueError");
    let stack = failed["attributes"]["error.stack"]
        .as_str()
        .unwrap_or_default();
    assert!(
        stack.contains("ValueError: user 42 is not valid"),
        "{stack}"
    );

    let linked = span(trace, "linked");
    assert_eq!(
        linked["links"],
        json!([{
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "attributes": {"k": "v"},
        }])
    );
    assert_eq!(linked["events"][0]["name"], "cache-miss");
    assert_eq!(linked["events"][0]["attributes"]["attempt"], json!(1));
}

/// Issues with this error type (the error tracking API).
fn issues_of_type(server: &TestServer, error_type: &str) -> Vec<Value> {
    server.get_json("/api/v1/issues")["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|issue| issue["error_type"] == error_type)
        .collect()
}

#[test]
fn test_ddtrace_v04_and_v05_traces_assemble_and_errors_become_an_issue() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    for api_version in ["v0.4", "v0.5"] {
        let (trace_id, root_span_id) = send_dd_shop(&server, api_version, None);
        let trace = server.wait_for_trace(&trace_id, 4);
        assert_dd_shop_trace(&trace, &trace_id, &root_span_id);
    }
    // the same raise site in both runs: one issue, two occurrences, grouped
    // under the tracer's service
    let issue = wait_until("a builtins.ValueError issue with 2 occurrences", || {
        issues_of_type(&server, "builtins.ValueError")
            .into_iter()
            .find(|issue| issue["count"] == 2)
    });
    assert_eq!(issue["service"], "dd-users");
    assert_eq!(issues_of_type(&server, "builtins.ValueError").len(), 1);
}

#[test]
fn test_otel_parent_and_ddtrace_child_are_one_trace() {
    let server = TestServer::start();
    let endpoint = server.otlp_grpc_base();
    let traceparent = run_peer(
        PeerPython::Proto,
        "otel_parent.py",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "not a traceparent: {traceparent:?}");
    let (otel_trace_id, otel_span_id) = (fields[1], fields[2]);

    let (dd_trace_id, _) = send_dd_shop(&server, "v0.5", Some(&traceparent));
    assert_eq!(dd_trace_id, otel_trace_id);
    let trace = server.wait_for_trace(otel_trace_id, 5);
    let frontend = span(&trace, "GET /profile");
    assert_eq!(frontend["service"], "otel-frontend");
    assert!(frontend["parent_span_id"].is_null());
    // the Datadog root continues the OTel span: one tree, one root
    let users = span(&trace, "GET /users/:id");
    assert_eq!(users["parent_span_id"], otel_span_id);
    let roots = trace["spans"].as_array().map(|spans| {
        spans
            .iter()
            .filter(|s| s["parent_span_id"].is_null())
            .count()
    });
    assert_eq!(roots, Some(1), "{trace:#}");
}

/// Where to post, the path, headers and body.
type Post<'a> = (
    std::net::SocketAddr,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
);

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// One failing batch item as a Datadog log shipper posts it.
fn failure(item: u32) -> Value {
    json!({
        "message": format!("failed to export item {item}"),
        "status": "error",
        "service": "dd-batch",
        "ddsource": "python",
        "hostname": "worker-1",
        "ddtags": "env:prod,job:nightly",
        "timestamp": 1_700_000_000_000u64 + u64::from(item),
        "error.kind": "ConnectionError",
        "error.message": format!("connection to db-{item} refused"),
        "error.stack": "Traceback (most recent call last):\n  File \"/srv/job.py\", line 12, in export\n    push(item)\n  File \"/srv/job.py\", line 30, in push\n    raise ConnectionError(msg)\nConnectionError: connection refused\n",
    })
}

#[test]
fn test_datadog_log_posts_become_logs_and_one_grouped_issue() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let datadog = server.addrs.datadog.expect("datadog listener");
    let batch = |items: [u32; 2]| {
        serde_json::to_vec(&json!([
            failure(items[0]),
            failure(items[1]),
            {"message": "batch started", "status": "info", "service": "dd-batch"},
        ]))
        .unwrap()
    };
    let nested = json!({
        "message": "failed to export item 3",
        "status": "critical",
        "service": "dd-batch",
        "ddtags": "env:prod",
        "error": {"kind": "ConnectionError", "message": "connection to db-3 refused",
                  "stack": failure(3)["error.stack"]},
    });
    let json_type = ("Content-Type", "application/json");
    let posts: Vec<Post<'_>> = vec![
        (datadog, "/api/v2/logs", vec![json_type], batch([1, 2])),
        (
            server.addrs.http,
            "/api/v2/logs",
            vec![json_type, ("Content-Encoding", "gzip")],
            gzip(&batch([4, 5])),
        ),
        (
            datadog,
            "/v1/input",
            vec![
                json_type,
                ("Content-Encoding", "zstd"),
                ("DD-API-KEY", "anything"),
            ],
            zstd::encode_all(nested.to_string().as_bytes(), 0).unwrap(),
        ),
    ];
    for (addr, path, headers, body) in posts {
        let response = http_request(addr, "POST", path, &headers, &body);
        assert_eq!(
            (response.status, response.text()),
            (202, "{}".to_owned()),
            "{path}"
        );
    }
    let logs = server.wait_for_logs("service=dd-batch&limit=100", 7);
    assert_eq!(logs.len(), 7);
    let errors = server.wait_for_logs("service=dd-batch&severity=error", 5);
    assert_eq!(errors.len(), 5);
    let first = logs
        .iter()
        .find(|log| log["body"] == "failed to export item 1")
        .unwrap();
    assert_eq!(first["severity_number"], 17);
    assert_eq!(first["attributes"]["env"], "prod");
    assert_eq!(first["attributes"]["job"], "nightly");
    assert_eq!(first["attributes"]["error.kind"], "ConnectionError");
    assert_eq!(first["resource"]["host.name"], "worker-1");
    assert_eq!(first["time_unix_nano"], "1700000000001000000");

    // five failures of one kind from one place, messages varying: one issue
    let issue = wait_until("a ConnectionError issue with 5 occurrences", || {
        issues_of_type(&server, "ConnectionError")
            .into_iter()
            .find(|issue| issue["count"] == 5)
    });
    assert_eq!(issue["service"], "dd-batch");
    assert_eq!(issues_of_type(&server, "ConnectionError").len(), 1);
}

#[test]
fn test_bad_trace_payloads_get_400_and_the_server_keeps_serving() {
    let server = TestServer::start();
    let datadog = server.addrs.datadog.expect("datadog listener");
    let msgpack = ("Content-Type", "application/msgpack");
    for (path, body) in [
        ("/v0.4/traces", &b"\x92\x91"[..]),
        ("/v0.5/traces", &b"\x91\x90"[..]),
        ("/v0.4/traces", &b"not msgpack at all"[..]),
    ] {
        let response = http_request(datadog, "POST", path, &[msgpack], body);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert!(!response.text().is_empty());
    }
    let info = http_request(datadog, "GET", "/info", &[], &[]);
    assert_eq!(info.status, 200);
    let (trace_id, root) = send_dd_shop(&server, "v0.4", None);
    let trace = server.wait_for_trace(&trace_id, 4);
    assert_dd_shop_trace(&trace, &trace_id, &root);
}

#[test]
fn test_partial_flushes_of_one_trace_assemble() {
    let server = TestServer::start();
    // every finished span is flushed on its own, before the root ends:
    // the trace reaches ashiato as several chunks
    let (trace_id, root_span_id) = send_dd_shop_with(
        &server,
        "v0.4",
        None,
        &[
            ("DD_TRACE_PARTIAL_FLUSH_ENABLED", "true"),
            ("DD_TRACE_PARTIAL_FLUSH_MIN_SPANS", "1"),
        ],
    );
    let trace = server.wait_for_trace(&trace_id, 4);
    assert_dd_shop_trace(&trace, &trace_id, &root_span_id);
}

/// Just enough MessagePack to write a payload the way dd-trace-go does.
enum Mp {
    Str(String),
    Uint(u64),
    Int(i64),
    Float(f64),
    Array(Vec<Mp>),
    Map(Vec<(&'static str, Mp)>),
}

fn encode_mp(value: &Mp, out: &mut Vec<u8>) {
    match value {
        Mp::Str(text) => {
            out.push(0xdb);
            out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        Mp::Uint(value) => {
            out.push(0xcf);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Mp::Int(value) => {
            out.push(0xd3);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Mp::Float(value) => {
            out.push(0xcb);
            out.extend_from_slice(&value.to_bits().to_be_bytes());
        }
        Mp::Array(items) => {
            out.push(0xdd);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            items.iter().for_each(|item| encode_mp(item, out));
        }
        Mp::Map(entries) => {
            out.push(0xdf);
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (key, value) in entries {
                encode_mp(&Mp::Str((*key).to_owned()), out);
                encode_mp(value, out);
            }
        }
    }
}

/// One Orchestrion request: net/http's server span and the router's
/// server span below it, both marked with the same handler error.
fn orchestrion_request(trace_id: u64, start: i64) -> Mp {
    let text = |value: &str| Mp::Str(value.to_owned());
    let stack = "goroutine 42 [running]:\nmain.(*Users).Get(0xc000010000, {0x7f0, 0xc0000a8000})\n\t/app/users.go:31 +0x65\nnet/http.HandlerFunc.ServeHTTP(0xc000122000, {0x7f0, 0xc0000a8000})\n\t/usr/local/go/src/net/http/server.go:2220 +0x29\n";
    let span = |span_id: u64, parent_id: u64, component: &str| {
        Mp::Map(vec![
            ("name", text("http.request")),
            ("service", text("orders")),
            ("resource", text("GET /users/{id}")),
            ("type", text("web")),
            ("start", Mp::Int(start)),
            ("duration", Mp::Int(2_000_000)),
            (
                "meta",
                Mp::Map(vec![
                    ("component", text(component)),
                    ("span.kind", text("server")),
                    ("env", text("prod")),
                    ("error.type", text("*errors.errorString")),
                    ("error.message", text("user 7 not found")),
                    ("error.stack", text(stack)),
                ]),
            ),
            ("meta_struct", Mp::Map(vec![])),
            (
                "metrics",
                Mp::Map(vec![("_sampling_priority_v1", Mp::Float(1.0))]),
            ),
            ("span_id", Mp::Uint(span_id)),
            ("trace_id", Mp::Uint(trace_id)),
            ("parent_id", Mp::Uint(parent_id)),
            ("error", Mp::Int(1)),
        ])
    };
    Mp::Array(vec![
        span(trace_id + 1, 0, "net/http"),
        span(trace_id + 2, trace_id + 1, "go-chi/chi.v5"),
    ])
}

#[test]
fn test_orchestrion_double_server_spans_are_one_occurrence() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let datadog = server.addrs.datadog.expect("datadog listener");
    let now = 1_795_000_000_000_000_000i64;
    let traces: Vec<Mp> = (0..3u64)
        .map(|n| orchestrion_request(1000 * (n + 1), now + n as i64 * 1_000_000))
        .collect();
    let mut body = Vec::new();
    encode_mp(&Mp::Array(traces), &mut body);
    let headers = [
        ("Content-Type", "application/msgpack"),
        ("Datadog-Meta-Lang", "go"),
        ("Datadog-Meta-Tracer-Version", "v2.3.0"),
    ];
    let response = http_request(datadog, "POST", "/v0.4/traces", &headers, &body);
    assert_eq!(response.status, 200, "{}", response.text());
    for n in 1..=3u64 {
        server.wait_for_trace(&format!("{:032x}", 1000 * n), 2);
    }
    // three failed requests, six error spans: three occurrences of one issue
    let issue = wait_until("an issue with 3 occurrences", || {
        issues_of_type(&server, "*errors.errorString")
            .into_iter()
            .find(|issue| issue["count"] == 3)
    });
    assert_eq!(issue["service"], "orders");
    assert_eq!(issues_of_type(&server, "*errors.errorString").len(), 1);
}
