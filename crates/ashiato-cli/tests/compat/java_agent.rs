//! Compatibility test: the OpenTelemetry Java agent (zero code) on a shop
//! served by the JDK's own `com.sun.net.httpserver`, calling itself over
//! `java.net.http.HttpClient`, configured by `OTEL_*` variables only and
//! exporting over OTLP gRPC and OTLP HTTP/protobuf (see
//! `docs/compatibility.md`).
//!
//! The agent instruments the JDK server (`java-http-server`), the JDK client
//! (`java-http-client`) and `java.util.logging` (its records become OTLP
//! logs with the exception attributes). The shop's `Endpoint` logs a failure
//! at SEVERE and answers 500; `/pay` then rethrows, so the agent's server
//! filter records the exception on the span too, while `/refund` handles its
//! (wrapped) failure like a framework's error page, leaving the span a 500
//! without exception event. Either way one failing request reaches ashiato
//! as a failed span and a log record, which must be one occurrence of one
//! issue named after the exception.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Peer, artifact, check, free_port};
use crate::support::{TestServer, http_request, wait_until};

const CLIENT: &str = "java agent";
const SERVICE: &str = "java-shop";
const ENVIRONMENT: &str = "compat";
const VERSION: &str = "3.1.4";
/// The agent instruments some 200 libraries at startup: on two busy cores
/// that alone has taken well over half a minute.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(240);
/// SIGTERM runs the agent's shutdown hook, which flushes spans and logs.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// After the flush everything is sent: this only covers a busy machine.
const DATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Every request the test sends and the status the shop must answer.
const REQUESTS: &[(&str, u16)] = &[
    ("/ok", 200),
    ("/checkout/widget", 200),
    ("/pay/101", 500),
    ("/pay/102", 500),
    ("/pay/103", 500),
    ("/pay/abc", 500),
    ("/pay/xyz", 500),
    ("/refund/201", 500),
    ("/refund/202", 500),
];

/// One distinct failure of the shop and what its issue must say.
struct Failure {
    /// `exception.type` as the agent writes it: `Class.getName()`.
    error_type: &'static str,
    /// The requests that fail this way (one occurrence each).
    paths: &'static [&'static str],
    /// The title, message templated.
    title: &'static str,
    /// The first of the app's own frames, crash site first.
    culprit: (&'static str, &'static str),
    /// Whether the crash site itself is app code (a JDK parser is not).
    thrown_in_app: bool,
    /// Handled in the route (500 without rethrowing): the agent's span then
    /// has an error status but no exception event; only the log has it.
    handled: bool,
}

const FAILURES: &[Failure] = &[
    Failure {
        error_type: "shop.PaymentDeclinedException",
        paths: &["/pay/101", "/pay/102", "/pay/103"],
        title: "shop.PaymentDeclinedException: card declined for order <num>",
        culprit: ("shop.PaymentGateway", "charge"),
        thrown_in_app: true,
        handled: false,
    },
    Failure {
        error_type: "java.lang.NumberFormatException",
        paths: &["/pay/abc", "/pay/xyz"],
        title: "java.lang.NumberFormatException: For input string: <str>",
        culprit: ("shop.PayEndpoint", "respond"),
        thrown_in_app: false,
        handled: false,
    },
    Failure {
        error_type: "shop.RefundFailedException",
        paths: &["/refund/201", "/refund/202"],
        title: "shop.RefundFailedException: refund of order <num> failed",
        // the JVM prints the cause last; the root cause is where it broke
        culprit: ("shop.Ledger", "reverse"),
        thrown_in_app: true,
        handled: true,
    },
];

#[test]
fn test_java_agent_otlp_grpc() {
    run("grpc");
}

#[test]
fn test_java_agent_otlp_http_protobuf() {
    run("http/protobuf");
}

/// Starts ashiato and the agent-instrumented shop, sends every request,
/// stops the shop (flushing it) and checks what ashiato made of it.
fn run(protocol: &str) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let mut shop = start_shop(&server, protocol);
    for (path, status) in REQUESTS {
        let answer = http_request(shop.addr, "GET", path, &[], &[]);
        assert_eq!(
            answer.status,
            *status,
            "GET {path} answered {}\n{}",
            answer.text(),
            shop.peer.output()
        );
    }
    shop.peer.terminate(SHUTDOWN_TIMEOUT);

    let traces = wait_for_traces(&server, &shop.peer);
    check_checkout_trace(&server, &traces);
    check_resource_and_scopes(&server, &traces);
    check_failing_spans(&server, &traces);
    check_logs(&server, &traces);
    for failure in FAILURES {
        check_issue(&server, &traces, failure);
    }
    let issues = server.get_json("/api/v1/issues")["issues"].clone();
    let count = issues.as_array().map_or(0, Vec::len);
    check(
        &server,
        CLIENT,
        "one issue per distinct failure, nothing else",
        count == FAILURES.len(),
        format!("{count} issues: {issues:#}"),
    );
}

struct Shop {
    peer: Peer,
    addr: SocketAddr,
}

/// Runs `java -javaagent:… shop.App PORT` with the agent's `OTEL_*`
/// configuration and waits until it listens.
fn start_shop(server: &TestServer, protocol: &str) -> Shop {
    let agent = artifact("ASHIATO_COMPAT_JAVA_AGENT_JAR");
    let classes = artifact("ASHIATO_COMPAT_JAVA_AGENT_CLASSES");
    let endpoint = match protocol {
        "grpc" => server.otlp_grpc_base(),
        _ => server.otlp_http_base(),
    };
    let port = free_port();
    let mut command = Command::new("java");
    command
        .arg(format!("-javaagent:{}", agent.display()))
        .arg("-cp")
        .arg(classes)
        .arg("shop.App")
        .arg(port.to_string());
    let resource = format!("service.version={VERSION},deployment.environment.name={ENVIRONMENT}");
    let peer = Peer::spawn(
        "java shop",
        command,
        &[
            ("OTEL_SERVICE_NAME", SERVICE),
            ("OTEL_RESOURCE_ATTRIBUTES", &resource),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
        ],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_listening(&peer, addr);
    Shop { peer, addr }
}

/// Like `common::wait_for_port`, with the agent's much longer startup and
/// the JVM's output when it never comes up.
fn wait_for_listening(peer: &Peer, addr: SocketAddr) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the java shop did not listen on {addr} within {STARTUP_TIMEOUT:?}\n{}",
            peer.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Every request is its own trace (the hop to `/inventory` joins its
/// caller's): waits for all of them, keyed by the root span's `url.path`.
fn wait_for_traces(server: &TestServer, shop: &Peer) -> Vec<(String, Value)> {
    let deadline = Instant::now() + DATA_TIMEOUT;
    let traces = loop {
        let traces = stored_traces(server);
        if traces.len() >= REQUESTS.len() || Instant::now() > deadline {
            break traces;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut paths: Vec<&str> = traces.iter().map(|(path, _)| path.as_str()).collect();
    paths.sort_unstable();
    let mut sent: Vec<&str> = REQUESTS.iter().map(|(path, _)| *path).collect();
    sent.sort_unstable();
    check(
        server,
        CLIENT,
        "one trace per request, rooted at its server span",
        paths == sent,
        format!(
            "trace roots {paths:?}, requests {sent:?}\n{}",
            shop.output()
        ),
    );
    traces
}

/// The shop's traces stored so far, each with its root's `url.path`.
fn stored_traces(server: &TestServer) -> Vec<(String, Value)> {
    let found = server.get_json(&format!("/api/v1/traces?service={SERVICE}&limit=50"));
    found["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|trace| trace["trace_id"].as_str())
        .map(|id| server.get_json(&format!("/api/v1/traces/{id}")))
        .map(|trace| {
            let path = root(&trace)["attributes"]["url.path"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (path, trace)
        })
        .collect()
}

fn spans(trace: &Value) -> &[Value] {
    trace["spans"].as_array().map_or(&[], Vec::as_slice)
}

fn root(trace: &Value) -> &Value {
    static NONE: Value = Value::Null;
    spans(trace)
        .iter()
        .find(|span| span["parent_span_id"].as_str().is_none_or(str::is_empty))
        .unwrap_or(&NONE)
}

fn trace_of<'a>(traces: &'a [(String, Value)], path: &str) -> &'a Value {
    traces
        .iter()
        .find(|(root_path, _)| root_path == path)
        .map(|(_, trace)| trace)
        .unwrap_or_else(|| panic!("no trace rooted at {path}"))
}

/// `GET /checkout/widget` → client `GET` → `GET /inventory/widget`: one
/// trace, parent links across the hop, kinds and the agent's semantic
/// conventions with their types.
fn check_checkout_trace(server: &TestServer, traces: &[(String, Value)]) {
    let trace = trace_of(traces, "/checkout/widget");
    let spans = spans(trace);
    let server_span = root(trace);
    let find = |kind: &str, name: &str| {
        spans
            .iter()
            .find(|span| span["kind"] == kind && span["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let client_span = find("client", "GET");
    let downstream = find("server", "GET /inventory");
    let shape = [
        ("checkout: three spans", spans.len() == 3),
        (
            "checkout: root is the server span",
            server_span["kind"] == "server",
        ),
        (
            "checkout: root span name",
            server_span["name"] == "GET /checkout",
        ),
        (
            "checkout: the client span is the server span's child",
            client_span["parent_span_id"] == server_span["span_id"],
        ),
        (
            "checkout: the downstream server span is the client span's child",
            downstream["parent_span_id"] == client_span["span_id"],
        ),
    ];
    for (what, ok) in shape {
        check(server, CLIENT, what, ok, format!("{trace:#}"));
    }
    let port = url_port(&client_span["attributes"]["url.full"]);
    let expected = [
        (
            server_span,
            json!({
                "http.request.method": "GET",
                "url.path": "/checkout/widget",
                "url.scheme": "http",
                "http.route": "/checkout",
                "http.response.status_code": 200,
                "network.protocol.version": "1.1",
                "server.address": "127.0.0.1",
                "server.port": port,
                "client.address": "127.0.0.1",
            }),
        ),
        (
            &client_span,
            json!({
                "http.request.method": "GET",
                "url.full": format!("http://127.0.0.1:{port}/inventory/widget"),
                "http.response.status_code": 200,
                "server.address": "127.0.0.1",
                "server.port": port,
            }),
        ),
        (
            &downstream,
            json!({
                "http.request.method": "GET",
                "url.path": "/inventory/widget",
                "http.route": "/inventory",
                "http.response.status_code": 200,
                "user_agent.original": format!("Java-http-client/{}", java_version(server_span)),
            }),
        ),
    ];
    for (span, attributes) in expected {
        check_attributes(server, span, &attributes);
    }
    for span in spans {
        check(
            server,
            CLIENT,
            "checkout: no span of a successful request is an error",
            span["status"]["code"] != "error",
            format!("{span:#}"),
        );
    }
}

/// The port the agent put in `url.full`, as the JSON number `server.port`
/// must equal.
fn url_port(url: &Value) -> Value {
    let port = url
        .as_str()
        .and_then(|url| url.strip_prefix("http://127.0.0.1:"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse::<u16>().ok());
    port.map_or(Value::Null, Value::from)
}

/// The JVM's version as the agent puts it in the resource, which the JDK
/// client also sends as its user agent.
fn java_version(span: &Value) -> String {
    span["resource"]["process.runtime.version"]
        .as_str()
        .and_then(|version| version.split(['+', '-']).next())
        .unwrap_or_default()
        .to_owned()
}

/// Each expected attribute with its value and JSON type (ints stay
/// numbers, strings stay strings).
fn check_attributes(server: &TestServer, span: &Value, expected: &Value) {
    let name = span["name"].as_str().unwrap_or_default();
    for (key, value) in expected.as_object().into_iter().flatten() {
        let got = &span["attributes"][key];
        check(
            server,
            CLIENT,
            &format!("span {name:?}: attribute {key}"),
            got == value,
            format!("expected {value}, got {got}\n{span:#}"),
        );
    }
}

/// What the agent puts in every resource, on every span of every trace,
/// and the instrumentation scopes it names.
fn check_resource_and_scopes(server: &TestServer, traces: &[(String, Value)]) {
    // setup.sh exports the version it fetched, so an upgrade is one line there
    let agent_version = std::env::var("ASHIATO_COMPAT_JAVA_AGENT_VERSION")
        .expect("ASHIATO_COMPAT_JAVA_AGENT_VERSION is not set: run scripts/test");
    for span in traces.iter().flat_map(|(_, trace)| spans(trace)) {
        let resource = &span["resource"];
        let fixed = [
            ("service.name", json!(SERVICE)),
            ("service.version", json!(VERSION)),
            ("deployment.environment.name", json!(ENVIRONMENT)),
            ("telemetry.sdk.language", json!("java")),
            ("telemetry.sdk.name", json!("opentelemetry")),
            (
                "telemetry.distro.name",
                json!("opentelemetry-java-instrumentation"),
            ),
            ("telemetry.distro.version", json!(agent_version)),
        ];
        for (key, value) in fixed {
            check(
                server,
                CLIENT,
                &format!("resource: {key}"),
                resource[key] == value,
                format!("expected {value}, got {}\n{resource:#}", resource[key]),
            );
        }
        let process = [
            (
                "process.pid",
                resource["process.pid"].as_i64().is_some_and(|pid| pid > 0),
            ),
            (
                "process.executable.path",
                resource["process.executable.path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with("/java")),
            ),
            (
                "process.runtime.name",
                resource["process.runtime.name"]
                    .as_str()
                    .is_some_and(|name| !name.is_empty()),
            ),
            ("process.runtime.version", !java_version(span).is_empty()),
            (
                "process.command_args (a string array)",
                resource["process.command_args"]
                    .as_array()
                    .is_some_and(|args| args.contains(&json!("shop.App"))),
            ),
        ];
        for (key, ok) in process {
            check(
                server,
                CLIENT,
                &format!("resource: {key}"),
                ok,
                format!("{resource:#}"),
            );
        }
        let scope = match span["kind"].as_str() {
            Some("client") => "io.opentelemetry.java-http-client",
            _ => "io.opentelemetry.java-http-server",
        };
        check(
            server,
            CLIENT,
            "scope: the agent's instrumentation and its version",
            span["scope"]["name"] == scope
                && span["scope"]["version"] == format!("{agent_version}-alpha"),
            format!(
                "expected {scope} {agent_version}-alpha, got {}",
                span["scope"]
            ),
        );
    }
}

/// Each failing request: a 500 server span with error status and, when the
/// failure left the handler, the exception event the agent's server filter
/// recorded.
fn check_failing_spans(server: &TestServer, traces: &[(String, Value)]) {
    for failure in FAILURES {
        for path in failure.paths {
            let trace = trace_of(traces, path);
            let span = root(trace);
            let route = path.rsplit_once('/').map_or(*path, |(route, _)| route);
            check_attributes(
                server,
                span,
                &json!({
                    "http.request.method": "GET",
                    "url.path": path,
                    "http.route": route,
                    "http.response.status_code": 500,
                    "error.type": "500",
                }),
            );
            let exception = span["events"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|event| event["name"] == "exception");
            let attributes = exception.map_or(&Value::Null, |event| &event["attributes"]);
            let stack = attributes["exception.stacktrace"]
                .as_str()
                .unwrap_or_default();
            let recorded = if failure.handled {
                exception.is_none()
            } else {
                attributes["exception.type"] == failure.error_type
                    && stack.starts_with(failure.error_type)
                    && stack.contains("\tat shop.")
            };
            let checks = [
                ("failing span: one span", spans(trace).len() == 1),
                (
                    "failing span: status error",
                    span["status"]["code"] == "error",
                ),
                (
                    "failing span: an exception event with the agent's type and JVM stack \
                     exactly when the exception left the handler",
                    recorded,
                ),
            ];
            for (what, ok) in checks {
                check(server, CLIENT, what, ok, format!("{path}: {span:#}"));
            }
        }
    }
}

/// The shop's `java.util.logging` SEVERE records, bridged by the agent:
/// one per failing request, on its trace and server span.
fn check_logs(server: &TestServer, traces: &[(String, Value)]) {
    let failing: usize = FAILURES.iter().map(|failure| failure.paths.len()).sum();
    let logs = server.wait_for_logs(&format!("service={SERVICE}&limit=50"), failing);
    check(
        server,
        CLIENT,
        "logs: one SEVERE record per failing request",
        logs.len() == failing,
        format!("{logs:#?}"),
    );
    for failure in FAILURES {
        for path in failure.paths {
            let trace = trace_of(traces, path);
            let span = root(trace);
            let trace_id = trace["trace_id"].as_str().unwrap_or_default();
            let on_trace = server.get_json(&format!("/api/v1/logs?trace_id={trace_id}"));
            let on_trace = on_trace["logs"].as_array().cloned().unwrap_or_default();
            let log = on_trace.first().unwrap_or(&Value::Null);
            let checks = [
                ("logs: exactly one record on the trace", on_trace.len() == 1),
                (
                    "logs: the record of this request",
                    log["body"] == format!("request failed: {path}"),
                ),
                (
                    "logs: severity SEVERE is ERROR",
                    log["severity_number"] == 17,
                ),
                (
                    "logs: severity text as JUL names it",
                    log["severity_text"] == "SEVERE",
                ),
                (
                    "logs: on the server span",
                    log["span_id"] == span["span_id"],
                ),
                (
                    "logs: exception.type as the agent writes it",
                    log["attributes"]["exception.type"] == failure.error_type,
                ),
                (
                    "logs: resource",
                    log["resource"]["service.version"] == VERSION,
                ),
            ];
            for (what, ok) in checks {
                check(server, CLIENT, what, ok, format!("{path}: {log:#}"));
            }
        }
    }
}

/// One issue per distinct failure with exactly one occurrence per failing
/// request (span and log of a request are one), the JVM stack parsed with
/// the shop's own classes in-app, and samples on the failing spans.
fn check_issue(server: &TestServer, traces: &[(String, Value)], failure: &Failure) {
    let count = failure.paths.len() as u64;
    let what = format!("issue {} with {count} occurrences", failure.error_type);
    let issue = wait_until(&what, || {
        let issues = server.get_json("/api/v1/issues");
        issues["issues"]
            .as_array()?
            .iter()
            .find(|issue| issue["error_type"] == failure.error_type && issue["count"] == count)
            .cloned()
    });
    let id = issue["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    let frames = detail["stack"].as_array().cloned().unwrap_or_default();
    let in_app_is_the_shop = frames.iter().all(|frame| {
        let shop = frame["module"]
            .as_str()
            .is_some_and(|module| module.starts_with("shop."));
        frame["in_app"] == shop
    });
    let top = &frames.first().cloned().unwrap_or(Value::Null);
    let (module, function) = failure.culprit;
    let culprit = frames.iter().find(|frame| frame["in_app"] == true);
    let failing_spans: Vec<&Value> = failure
        .paths
        .iter()
        .map(|path| &root(trace_of(traces, path))["span_id"])
        .collect();
    let samples = detail["samples"].as_array().cloned().unwrap_or_default();
    let checks = [
        ("issue: title", issue["title"] == failure.title),
        ("issue: service", issue["service"] == SERVICE),
        ("issue: environment", issue["environment"] == ENVIRONMENT),
        ("issue: first version", issue["first_version"] == VERSION),
        (
            "issue: seen on span and log",
            issue["sources"] == json!(["span", "log"]),
        ),
        ("issue: stack parsed", frames.len() >= 5),
        (
            "issue: in-app frames are exactly the shop's classes",
            in_app_is_the_shop,
        ),
        (
            "issue: crash site first",
            top["in_app"] == failure.thrown_in_app,
        ),
        (
            "issue: first in-app frame",
            culprit.is_some_and(|frame| frame["module"] == module && frame["function"] == function),
        ),
        (
            "issue: culprit",
            issue["culprit"] == format!("{module} in {function}"),
        ),
        (
            "issue: samples are the failing server spans",
            !samples.is_empty()
                && samples
                    .iter()
                    .all(|sample| failing_spans.contains(&&sample["span_id"])),
        ),
    ];
    for (what, ok) in checks {
        check(server, CLIENT, what, ok, format!("{detail:#}"));
    }
}
