//! Compatibility test: the OpenTelemetry Go auto-instrumentation agent
//! (`go.opentelemetry.io/auto`, zero-code eBPF) attached by PID to an
//! unmodified `net/http` program, exporting over OTLP HTTP/protobuf and
//! OTLP gRPC, configured by `OTEL_*` variables only (see
//! `docs/compatibility.md`).
//!
//! The agent's probes read the program's memory through uprobes; its server
//! spans carry the Go 1.22 mux pattern as `http.route`, and 5xx answers set
//! status ERROR without an exception (so one status-only issue). Writing a
//! `traceparent` header into an outgoing request needs
//! `bpf_probe_write_user`, which a kernel in lockdown refuses (this kind of
//! machine runs in lockdown "integrity"): the agent then still records the
//! client span inside the handler's trace, but the called service starts a
//! trace of its own. The agent learns the lockdown mode from
//! `/sys/kernel/security/lockdown`; where securityfs is not mounted it
//! assumes none, loads the header-writing probe, which the verifier
//! rejects, and attaches nothing. So the test runs it in a private mount
//! namespace with securityfs mounted (`unshare --mount`), as on a host that
//! mounts securityfs (systemd does), and reads the agent's log to know
//! which of the two propagation behaviours to expect.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{Peer, artifact, check, free_port, wait_for_port};
use crate::support::{TestServer, http_request};

const CLIENT: &str = "go auto-instrumentation (eBPF)";
const SERVICE: &str = "go-auto-shop";
const VERSION: &str = "2.0.1";
const ENVIRONMENT: &str = "compat";
/// What the agent logs once every probe is attached.
const READY: &str = r#""msg":"instrumentation loaded""#;
/// What it logs when it stops after flushing its exporter.
const STOPPED: &str = r#""msg":"agent stopped""#;
/// What it prints when the kernel refuses header injection.
const NO_PROPAGATION: &str = "doesn't support context propagation";
/// Loading means reading DWARF offsets and passing the verifier: seconds
/// alone, far longer on two cores shared by four tests.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(240);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long flushed spans and settled issues get to become queryable.
const STORED_TIMEOUT: Duration = Duration::from_secs(30);
/// How far a span's start may be from the test's clock: the whole test,
/// with room for a slow machine, is well within it.
const CLOCK_SLACK: Duration = Duration::from_secs(15 * 60);

/// One request the test sends and what its server span must say.
struct Request {
    path: &'static str,
    status: u16,
    /// The mux pattern the agent reports as `http.route`.
    route: &'static str,
}

const REQUESTS: &[Request] = &[
    Request {
        path: "/users/42",
        status: 200,
        route: "/users/{id}",
    },
    Request {
        path: "/users/7",
        status: 200,
        route: "/users/{id}",
    },
    Request {
        path: "/fail",
        status: 500,
        route: "/fail",
    },
    Request {
        path: "/fail",
        status: 500,
        route: "/fail",
    },
    Request {
        path: "/fail",
        status: 500,
        route: "/fail",
    },
];

/// A request that arrives with a W3C parent: reading the header needs no
/// write, so its server span joins the caller's trace.
const PARENTED_PATH: &str = "/users/99";
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A handler that calls the program's own `/stock/{sku}` over `net/http`.
const CHECKOUT_PATH: &str = "/checkout/widget";
const STOCK_PATH: &str = "/stock/widget";

#[test]
fn test_go_auto_otlp_http_protobuf() {
    run("http/protobuf");
}

#[test]
fn test_go_auto_otlp_grpc() {
    run("grpc");
}

/// Starts ashiato, the program and the agent attached to it, sends every
/// request, stops the agent (which flushes) and checks what ashiato stored.
fn run(protocol: &str) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let (app, addr) = start_app();
    let mut agent = start_agent(&server, protocol, app.id());
    send_requests(addr, &app);
    agent.terminate(SHUTDOWN_TIMEOUT);
    let log = agent.output();
    assert!(
        log.contains(STOPPED),
        "the agent did not stop cleanly\n{log}"
    );
    let propagates = !log.contains(NO_PROPAGATION);

    let spans = wait_for_spans(&server);
    check_requests(&server, &spans);
    check_resource(&server, &spans);
    check_parented(&server, &spans);
    check_checkout(&server, &spans, propagates);
    check_issue(&server);
}

/// Runs the plain `net/http` program on a free port.
fn start_app() -> (Peer, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(artifact("ASHIATO_COMPAT_GO_AUTO_APP"));
    command.arg(addr.to_string());
    let app = Peer::spawn("net/http app", command, &[]);
    wait_for_port(addr, "net/http app");
    (app, addr)
}

/// Attaches the agent to `pid` (securityfs mounted in a mount namespace of
/// its own, see the module comment) and waits until it is instrumenting.
fn start_agent(server: &TestServer, protocol: &str, pid: u32) -> Peer {
    let endpoint = match protocol {
        "grpc" => server.otlp_grpc_base(),
        _ => server.otlp_http_base(),
    };
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t securityfs securityfs /sys/kernel/security && exec "$0" "$@""#)
        .arg(artifact("ASHIATO_COMPAT_GO_AUTO_AGENT"))
        .arg(pid.to_string());
    let resource = format!("service.version={VERSION},deployment.environment.name={ENVIRONMENT}");
    let mut agent = Peer::spawn(
        "go auto agent",
        command,
        &[
            ("OTEL_SERVICE_NAME", SERVICE),
            ("OTEL_RESOURCE_ATTRIBUTES", &resource),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    agent.wait_for_output(READY, ATTACH_TIMEOUT);
    agent
}

fn send_requests(addr: SocketAddr, app: &Peer) {
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let parented = (
        PARENTED_PATH,
        200,
        vec![("traceparent", traceparent.as_str())],
    );
    let checkout = (CHECKOUT_PATH, 200, vec![]);
    let plain = REQUESTS
        .iter()
        .map(|request| (request.path, request.status, vec![]));
    for (path, status, headers) in plain.chain([parented, checkout]) {
        let answer = http_request(addr, "GET", path, &headers, &[]);
        assert_eq!(
            answer.status,
            status,
            "GET {path} answered {}\n{}",
            answer.text(),
            app.output()
        );
    }
}

/// Every stored span of the service, each with its `trace_id`, once the
/// server spans of all requests (plus the stock call's) and the client
/// span are there, or whatever is there after `STORED_TIMEOUT` (the checks
/// then say what is missing).
fn wait_for_spans(server: &TestServer) -> Vec<Value> {
    let servers = REQUESTS.len() + 3;
    poll(|| {
        let spans = all_spans(server);
        let count = |kind: &str| spans.iter().filter(|span| span["kind"] == kind).count();
        (count("server") >= servers && count("client") >= 1, spans)
    })
}

/// Calls `probe` until it says done or `STORED_TIMEOUT` passed, and
/// returns its last answer.
fn poll<T>(mut probe: impl FnMut() -> (bool, T)) -> T {
    let deadline = Instant::now() + STORED_TIMEOUT;
    loop {
        let (done, value) = probe();
        if done || Instant::now() >= deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn all_spans(server: &TestServer) -> Vec<Value> {
    let traces = server.get_json(&format!("/api/v1/traces?service={SERVICE}&limit=100"));
    let ids: Vec<String> = traces["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|summary| summary["trace_id"].as_str().map(str::to_owned))
        .collect();
    let mut spans = Vec::new();
    for id in ids {
        let trace = server.get_json(&format!("/api/v1/traces/{id}"));
        for mut span in trace["spans"].as_array().cloned().unwrap_or_default() {
            span["trace_id"] = json!(id);
            spans.push(span);
        }
    }
    spans
}

/// The spans of `kind` whose `url.path` is `path`.
fn spans_at<'a>(spans: &'a [Value], kind: &str, path: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|span| span["kind"] == kind && span["attributes"]["url.path"] == path)
        .collect()
}

/// The one span of `kind` at `path`.
fn one_span<'a>(server: &TestServer, spans: &'a [Value], kind: &str, path: &str) -> &'a Value {
    let found = spans_at(spans, kind, path);
    check(
        server,
        CLIENT,
        &format!("one {kind} span for {path}"),
        found.len() == 1,
        format!("{} spans: {found:#?}", found.len()),
    );
    found[0]
}

/// Each plain request: one root server span in a trace of its own, with
/// the agent's semconv attributes and ERROR exactly for the 5xx answers.
fn check_requests(server: &TestServer, spans: &[Value]) {
    let mut traces = HashSet::new();
    let paths: HashSet<&str> = REQUESTS.iter().map(|request| request.path).collect();
    for path in paths {
        let expected: Vec<&Request> = REQUESTS.iter().filter(|r| r.path == path).collect();
        let found = spans_at(spans, "server", path);
        check(
            server,
            CLIENT,
            &format!("one server span per request to {path}"),
            found.len() == expected.len(),
            format!(
                "{} requests, {} spans: {found:#?}",
                expected.len(),
                found.len()
            ),
        );
        for span in found {
            check_server_span(server, span, expected[0]);
            traces.insert(span["trace_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    // a trace of its own: no other span of the run is in it
    let in_those = spans
        .iter()
        .filter(|span| {
            span["trace_id"]
                .as_str()
                .is_some_and(|id| traces.contains(id))
        })
        .count();
    check(
        server,
        CLIENT,
        "one trace per request",
        traces.len() == REQUESTS.len() && in_those == REQUESTS.len(),
        format!(
            "{} traces holding {in_those} spans for {} requests: {traces:?}",
            traces.len(),
            REQUESTS.len()
        ),
    );
}

fn check_server_span(server: &TestServer, span: &Value, request: &Request) {
    let attributes = &span["attributes"];
    let error = request.status >= 500;
    let expectations = [
        (
            "name is method and route",
            span["name"] == format!("GET {}", request.route),
        ),
        (
            "service name from OTEL_SERVICE_NAME",
            span["service"] == SERVICE,
        ),
        ("root span", span["parent_span_id"].is_null()),
        (
            "http.request.method",
            attributes["http.request.method"] == "GET",
        ),
        (
            "http.route is the mux pattern",
            attributes["http.route"] == request.route,
        ),
        (
            "http.response.status_code is an int",
            attributes["http.response.status_code"] == json!(request.status),
        ),
        (
            "network.protocol.version",
            attributes["network.protocol.version"] == "1.1",
        ),
        (
            "status ERROR exactly for 5xx",
            span["status"]["code"] == if error { "error" } else { "unset" },
        ),
    ];
    for (what, ok) in expectations {
        check(
            server,
            CLIENT,
            &format!("server span of {}: {what}", request.path),
            ok,
            format!("{span:#}"),
        );
    }
}

/// Every span's resource (`OTEL_RESOURCE_ATTRIBUTES` plus what the agent
/// adds about the instrumented process), scope, and start time: the probes
/// measure boot-relative time, which the agent converts to wall-clock time.
fn check_resource(server: &TestServer, spans: &[Value]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    for span in spans {
        let resource = &span["resource"];
        let start = span["start_time_unix_nano"]
            .as_str()
            .and_then(|text| text.parse::<u128>().ok());
        let expectations = [
            (
                "resource service.version",
                resource["service.version"] == VERSION,
            ),
            (
                "resource deployment.environment.name",
                resource["deployment.environment.name"] == ENVIRONMENT,
            ),
            (
                "resource process.runtime.name",
                resource["process.runtime.name"] == "go",
            ),
            (
                "resource process.runtime.version is the app's Go",
                resource["process.runtime.version"]
                    .as_str()
                    .is_some_and(|version| version.starts_with("go1.")),
            ),
            (
                "resource telemetry.distro.name",
                resource["telemetry.distro.name"] == "opentelemetry-go-instrumentation",
            ),
            (
                "scope is the agent's net/http probe at the distro version",
                span["scope"]["name"] == "go.opentelemetry.io/auto/net/http"
                    && resource["telemetry.distro.version"].is_string()
                    && span["scope"]["version"] == resource["telemetry.distro.version"],
            ),
            (
                "start time is wall-clock time",
                start.is_some_and(|start| start.abs_diff(now) < CLOCK_SLACK.as_nanos()),
            ),
        ];
        for (what, ok) in expectations {
            check(server, CLIENT, what, ok, format!("{span:#}"));
        }
    }
}

/// An incoming `traceparent` is read by the server probe: the span joins
/// the caller's trace under the caller's span.
fn check_parented(server: &TestServer, spans: &[Value]) {
    let span = one_span(server, spans, "server", PARENTED_PATH);
    check(
        server,
        CLIENT,
        "incoming traceparent: server span joins the caller's trace",
        span["trace_id"] == PARENT_TRACE && span["parent_span_id"] == PARENT_SPAN,
        format!("{span:#}"),
    );
}

/// The handler's outgoing call: a client span under the handler's server
/// span, and the called handler's server span joined to it only when the
/// kernel lets the agent write the `traceparent` header.
fn check_checkout(server: &TestServer, spans: &[Value], propagates: bool) {
    let checkout = one_span(server, spans, "server", CHECKOUT_PATH);
    let call = one_span(server, spans, "client", STOCK_PATH);
    let stock = one_span(server, spans, "server", STOCK_PATH);
    let attributes = &call["attributes"];
    let expectations = [
        (
            "client span is in the handler's trace, under its server span",
            call["trace_id"] == checkout["trace_id"]
                && call["parent_span_id"] == checkout["span_id"],
        ),
        ("client span name is the method", call["name"] == "GET"),
        (
            "client http.request.method",
            attributes["http.request.method"] == "GET",
        ),
        (
            "client http.response.status_code",
            attributes["http.response.status_code"] == json!(200),
        ),
        (
            "client url.full",
            attributes["url.full"].as_str().is_some_and(|url| {
                url.starts_with("http://127.0.0.1:") && url.ends_with(STOCK_PATH)
            }),
        ),
        (
            "called route",
            stock["attributes"]["http.route"] == "/stock/{sku}",
        ),
    ];
    for (what, ok) in expectations {
        check(
            server,
            CLIENT,
            &format!("outgoing call: {what}"),
            ok,
            format!("{:#}", json!([checkout, call, stock])),
        );
    }
    // Without header injection the called handler cannot know its caller.
    let (what, ok) = if propagates {
        (
            "propagation on: the called server span is the client span's child",
            stock["trace_id"] == call["trace_id"] && stock["parent_span_id"] == call["span_id"],
        )
    } else {
        (
            "lockdown: no traceparent written, the called server span starts its own trace",
            stock["trace_id"] != call["trace_id"] && stock["parent_span_id"].is_null(),
        )
    };
    check(
        server,
        CLIENT,
        &format!("outgoing call: {what}"),
        ok,
        format!("{:#}", json!([call, stock])),
    );
}

/// The 5xx answers carry no exception: one status-only issue on the
/// failing route, one occurrence per failing request, no stack.
fn check_issue(server: &TestServer) {
    let failing = REQUESTS
        .iter()
        .filter(|request| request.status >= 500)
        .count() as u64;
    let issues = poll(|| {
        let issues = server.get_json("/api/v1/issues")["issues"].clone();
        let total: u64 = issues
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|issue| issue["count"].as_u64())
            .sum();
        (total >= failing, issues)
    });
    let list = issues.as_array().cloned().unwrap_or_default();
    check(
        server,
        CLIENT,
        "one issue for the failing route",
        list.len() == 1,
        format!("{issues:#}"),
    );
    let issue = &list[0];
    let id = issue["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    let expectations = [
        (
            "count is the number of failing requests",
            issue["count"] == failing,
        ),
        ("service", issue["service"] == SERVICE),
        ("environment", issue["environment"] == ENVIRONMENT),
        (
            "error type is the status code",
            issue["error_type"] == "500",
        ),
        (
            "title names the route",
            issue["title"]
                .as_str()
                .is_some_and(|title| title.contains("/fail")),
        ),
        ("from spans only", issue["sources"] == json!(["span"])),
        ("no stack", detail["stack"] == json!([])),
    ];
    for (what, ok) in expectations {
        check(
            server,
            CLIENT,
            &format!("issue: {what}"),
            ok,
            format!("{detail:#}"),
        );
    }
}
