//! Compatibility test: Datadog Orchestrion (see `docs/compatibility.md`).
//!
//! The peer (`peers/go-orchestrion`) is a net/http + chi service with no
//! tracing code but `//dd:span` directives and one chi middleware naming
//! the root span after the route; `orchestrion go build` weaves dd-trace-go
//! v2 in, which sends msgpack v0.4 to ashiato's Datadog listener. The chi
//! integration of dd-trace-go is not served by the module proxy here, so a
//! request has the net/http span as its root and the `//dd:span` functions
//! below it.
//!
//! A failing request reaches ashiato as two error spans: the net/http root
//! with dd-trace-go's own `500: Internal Server Error` (`*errors.errorString`,
//! no stack), and, for a returned error, the `//dd:span` function's span with
//! the app's error and its `error.handling_stack`. Each failing request must
//! be one occurrence of one issue per kind of failure: the returned error
//! grouped by its Go stack, the recovered panic (chi's Recoverer answers
//! 500; no span carries the panic) by its route.
//!
//! Which service an issue belongs to, run three ways:
//! - without `DD_SERVICE`, dd-trace-go names the net/http spans (and the
//!   children that inherit it) `http.router` and sends the binary's name as
//!   `_dd.base_service`: the issues go to the binary's name (`orders`), the
//!   service a user expects;
//! - with `DD_SERVICE`, every span is that service and no
//!   `_dd.base_service` is sent: the issues go there;
//! - with `DD_SERVICE` and a `DD_SERVICE_MAPPING` renaming it, the spans
//!   carry the mapped name and `DD_SERVICE` as `_dd.base_service`: the
//!   issues stay with `DD_SERVICE`.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Peer, artifact, check, free_port, wait_for_port};
use crate::support::{TestServer, http_request};

const CLIENT: &str = "go orchestrion";
const ENVIRONMENT: &str = "compat";
const VERSION: &str = "1.4.2";
/// How long traces and issues get to arrive (the tracer flushes every 2 s,
/// issues settle 1 s after their trace; CI runs several tests on two
/// cores).
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(90);
/// A W3C parent the propagation request continues.
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// One request the test sends.
struct Request {
    method: &'static str,
    path: &'static str,
    status: u16,
    /// The root span's name: dd-trace-go's resource, `METHOD /route`.
    resource: &'static str,
    /// The `//dd:span` child and the tags it must carry, if any.
    child: Option<(&'static str, Value)>,
    /// Sent with a W3C `traceparent` the trace must continue.
    traceparent: bool,
}

impl Request {
    /// The root and the `//dd:span` child, if any.
    fn span_count(&self) -> usize {
        1 + usize::from(self.child.is_some())
    }
}

fn requests() -> Vec<Request> {
    let user = |path: &'static str, traceparent: bool| Request {
        method: "GET",
        path,
        status: 200,
        resource: "GET /users/{id}",
        child: Some((
            "user.load",
            json!({"function-name": "loadUser", "db.system": "memory",
                   "component": "repository", "user.id": &path[7..]}),
        )),
        traceparent,
    };
    let charge = |path: &'static str| Request {
        method: "POST",
        path,
        status: 500,
        resource: "POST /orders/{id}/charge",
        child: Some((
            "payment.charge",
            json!({"function-name": "charge", "payment.provider": "acme",
                   "error.type": "*main.PaymentDeclined"}),
        )),
        traceparent: false,
    };
    let report = |path: &'static str| Request {
        method: "GET",
        path,
        status: 500,
        resource: "GET /reports/{id}",
        child: None,
        traceparent: false,
    };
    vec![
        user("/users/7", false),
        user("/users/8", true),
        charge("/orders/41/charge"),
        charge("/orders/42/charge"),
        charge("/orders/43/charge"),
        report("/reports/1"),
        report("/reports/2"),
    ]
}

/// One distinct failure and the issue it must make.
struct Failure {
    error_type: &'static str,
    title: &'static str,
    count: u64,
    /// The app's frames, crash site first, or none when no stack is sent.
    frames: &'static [&'static str],
}

const FAILURES: &[Failure] = &[
    Failure {
        error_type: "*main.PaymentDeclined",
        title: "*main.PaymentDeclined: payment declined for order <num>",
        count: 3,
        frames: &["charge", "chargeOrder", "routeResource.func1"],
    },
    Failure {
        error_type: "500",
        title: "500 GET /reports/{id}",
        count: 2,
        frames: &[],
    },
];

/// How the service is named: the two ways of running the same binary.
struct Naming {
    /// `DD_SERVICE` and friends.
    env: &'static [(&'static str, &'static str)],
    /// `service` of every span.
    span_service: &'static str,
    /// `_dd.base_service` on the spans, when dd-trace-go sends one.
    base_service: Option<&'static str>,
    /// The issues' service.
    issue_service: &'static str,
    /// The root span's `service.version`: dd-trace-go tags `DD_VERSION`
    /// only on spans that start in the `DD_SERVICE` service (none without
    /// it; with a mapping, the `//dd:span` children, which start in the
    /// mapped service, go without).
    root_version: Option<&'static str>,
}

#[test]
fn test_orchestrion_without_dd_service() {
    run(&Naming {
        env: &[],
        span_service: "http.router",
        base_service: Some("orders"),
        issue_service: "orders",
        root_version: None,
    });
}

#[test]
fn test_orchestrion_with_dd_service() {
    run(&Naming {
        env: &[("DD_SERVICE", "orders-api")],
        span_service: "orders-api",
        base_service: None,
        issue_service: "orders-api",
        root_version: Some(VERSION),
    });
}

/// A service renamed by `DD_SERVICE_MAPPING` keeps `DD_SERVICE` as its
/// `_dd.base_service`: its errors stay the app's.
#[test]
fn test_orchestrion_with_dd_service_mapping() {
    run(&Naming {
        env: &[
            ("DD_SERVICE", "orders-api"),
            ("DD_SERVICE_MAPPING", "orders-api:orders-edge"),
        ],
        span_service: "orders-edge",
        base_service: Some("orders-api"),
        issue_service: "orders-api",
        root_version: Some(VERSION),
    });
}

fn run(naming: &Naming) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let (peer, addr) = start_orders(&server, naming);
    let requests = requests();
    for request in &requests {
        send(&peer, addr, request);
    }
    let traces = wait_for_traces(&server, &requests);
    for (request, trace) in requests.iter().zip(&traces) {
        check_trace(&server, naming, request, trace);
    }
    check_issues(&server, naming, &traces);
}

/// Runs the Orchestrion-built binary pointed at ashiato's Datadog listener,
/// with everything that would talk to a real agent's other endpoints off.
fn start_orders(server: &TestServer, naming: &Naming) -> (Peer, SocketAddr) {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listen = addr.to_string();
    let agent = server.datadog_base();
    let mut env = vec![
        ("ORDERS_ADDR", listen.as_str()),
        ("DD_TRACE_AGENT_URL", agent.as_str()),
        ("DD_ENV", ENVIRONMENT),
        ("DD_VERSION", VERSION),
        ("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false"),
        ("DD_REMOTE_CONFIGURATION_ENABLED", "false"),
        ("DD_TRACE_STARTUP_LOGS", "false"),
        ("DD_TRACE_STATS_COMPUTATION_ENABLED", "false"),
        ("DD_PROFILING_ENABLED", "false"),
        ("DD_RUNTIME_METRICS_ENABLED", "false"),
        ("DD_DATA_STREAMS_ENABLED", "false"),
    ];
    env.extend_from_slice(naming.env);
    let binary = artifact("ASHIATO_COMPAT_GO_ORCHESTRION_BIN");
    let peer = Peer::spawn("orders", Command::new(binary), &env);
    wait_for_port(addr, "the orchestrion orders service");
    (peer, addr)
}

fn send(peer: &Peer, addr: SocketAddr, request: &Request) {
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let headers: &[(&str, &str)] = if request.traceparent {
        &[("traceparent", traceparent.as_str())]
    } else {
        &[]
    };
    let answer = http_request(addr, request.method, request.path, headers, &[]);
    assert_eq!(
        answer.status,
        request.status,
        "{} {} answered {}\n{}",
        request.method,
        request.path,
        answer.text(),
        peer.output()
    );
}

/// Each request's trace, in request order, found by its root's `http.url`
/// once it has all its spans.
fn wait_for_traces(server: &TestServer, requests: &[Request]) -> Vec<Value> {
    let traces = poll(|| {
        let listed = server.get_json("/api/v1/traces?limit=50");
        let traces: Vec<Value> = listed["traces"]
            .as_array()?
            .iter()
            .filter_map(|summary| summary["trace_id"].as_str())
            .map(|id| server.get_json(&format!("/api/v1/traces/{id}")))
            .collect();
        let found: Option<Vec<Value>> = requests
            .iter()
            .map(|request| {
                traces
                    .iter()
                    .find(|trace| {
                        url_path(root(trace)) == request.path
                            && spans(trace).len() >= request.span_count()
                    })
                    .cloned()
            })
            .collect();
        found
    });
    check(
        server,
        CLIENT,
        "every request's trace arrives with all its spans",
        traces.is_some(),
        format!("not within {ARRIVAL_TIMEOUT:?}"),
    );
    let listed = server.get_json("/api/v1/traces?limit=50")["traces"].clone();
    let count = listed.as_array().map_or(0, Vec::len);
    check(
        server,
        CLIENT,
        "one trace per request",
        count == requests.len(),
        format!("{count} traces for {} requests", requests.len()),
    );
    traces.unwrap_or_default()
}

/// Polls `ready` until it gives a value or [`ARRIVAL_TIMEOUT`] is up.
fn poll<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn spans(trace: &Value) -> &[Value] {
    trace["spans"].as_array().map_or(&[], Vec::as_slice)
}

/// The request's root: the span without a parent, or (when the request
/// continued a W3C parent) the span whose parent is outside the trace.
fn root(trace: &Value) -> &Value {
    static NONE: Value = Value::Null;
    let spans = spans(trace);
    spans
        .iter()
        .find(|span| {
            let parent = &span["parent_span_id"];
            parent.is_null() || !spans.iter().any(|other| other["span_id"] == *parent)
        })
        .unwrap_or(&NONE)
}

fn url_path(span: &Value) -> &str {
    let url = span["attributes"]["http.url"].as_str().unwrap_or_default();
    url.strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or_default()
}

/// One request's trace: its root net/http span, the `//dd:span` child
/// below it, one trace id, services, resource and the status code.
fn check_trace(server: &TestServer, naming: &Naming, request: &Request, trace: &Value) {
    let what = |check: &str| format!("{} {}: {check}", request.method, request.path);
    let root = root(trace);
    let spans = spans(trace);
    let trace_id = trace["trace_id"].as_str().unwrap_or_default();
    let mut checks = vec![
        (what("span count"), spans.len() == request.span_count()),
        (
            what("root name is the route"),
            root["name"] == request.resource,
        ),
        (what("root is a server span"), root["kind"] == "server"),
        (
            what("root is the net/http span"),
            root["attributes"]["operation.name"] == "http.request"
                && root["attributes"]["component"] == "net/http",
        ),
        (
            what("status code"),
            root["attributes"]["http.status_code"]
                .as_str()
                .and_then(|code| code.parse().ok())
                == Some(request.status),
        ),
        (
            what("root error iff 5xx"),
            (root["status"]["code"] == "error") == (request.status >= 500),
        ),
    ];
    if request.traceparent {
        checks.push((
            what("continues the W3C parent"),
            trace_id == PARENT_TRACE && root["parent_span_id"] == PARENT_SPAN,
        ));
    } else {
        checks.push((what("root has no parent"), root["parent_span_id"].is_null()));
    }
    let version = &root["resource"]["service.version"];
    checks.push((
        what(&format!("root service.version {:?}", naming.root_version)),
        naming
            .root_version
            .map_or(version.is_null(), |wanted| version == wanted),
    ));
    for span in spans {
        checks.extend(span_naming_checks(naming, span, &what));
    }
    if let Some((name, tags)) = &request.child {
        let child = spans
            .iter()
            .find(|span| span["name"] == *name)
            .unwrap_or(&Value::Null);
        checks.push((
            what(&format!("{name} is the root's child")),
            child["parent_span_id"] == root["span_id"],
        ));
        checks.push((
            what(&format!("{name} is an error iff the request failed")),
            (child["status"]["code"] == "error") == (request.status >= 500),
        ));
        for (key, value) in tags.as_object().into_iter().flatten() {
            checks.push((
                what(&format!("{name} tag {key}={value}")),
                child["attributes"][key] == *value,
            ));
        }
    }
    for (name, ok) in checks {
        check(server, CLIENT, &name, ok, format!("{trace:#}"));
    }
}

/// Service, `_dd.base_service` and environment of one span.
fn span_naming_checks(
    naming: &Naming,
    span: &Value,
    what: &impl Fn(&str) -> String,
) -> Vec<(String, bool)> {
    let name = span["name"].as_str().unwrap_or_default();
    let resource = &span["resource"];
    let base = &span["attributes"]["_dd.base_service"];
    vec![
        (
            what(&format!("{name}: service {}", naming.span_service)),
            span["service"] == naming.span_service
                && resource["service.name"] == naming.span_service,
        ),
        (
            what(&format!(
                "{name}: _dd.base_service {:?}",
                naming.base_service
            )),
            naming
                .base_service
                .map_or(base.is_null(), |service| base == service),
        ),
        (
            what(&format!("{name}: deployment.environment.name")),
            resource["deployment.environment.name"] == ENVIRONMENT,
        ),
    ]
}

/// Exactly one issue per failure, with its count, service, environment and
/// (when the tracer sent one) the Go stack with the app's frames in-app.
fn check_issues(server: &TestServer, naming: &Naming, traces: &[Value]) {
    let settled = wait_for_issue_counts(server);
    let issues = settled.as_array().map_or(&[][..], Vec::as_slice);
    check(
        server,
        CLIENT,
        "one issue per failing kind, nothing else",
        issues.len() == FAILURES.len(),
        format!("{} issues: {settled:#}", issues.len()),
    );
    for failure in FAILURES {
        let issue = issues
            .iter()
            .find(|issue| issue["error_type"] == failure.error_type)
            .unwrap_or(&Value::Null);
        let id = issue["id"].as_str().unwrap_or_default();
        let detail = server.get_json(&format!("/api/v1/issues/{id}"));
        let what = |check: &str| format!("issue {}: {check}", failure.error_type);
        let checks = [
            (
                what("count = failing requests"),
                issue["count"] == failure.count,
            ),
            (what("title"), issue["title"] == failure.title),
            (
                what(&format!("service {}", naming.issue_service)),
                issue["service"] == naming.issue_service,
            ),
            (what("environment"), issue["environment"] == ENVIRONMENT),
            (
                what("app frames, crash site first"),
                app_frames(&detail) == failure.frames,
            ),
            (
                what("samples are the failing requests' traces"),
                samples_in(&detail, traces),
            ),
        ];
        for (name, ok) in checks {
            check(server, CLIENT, &name, ok, format!("{detail:#}"));
        }
    }
}

/// The issues once every failure's count is reached (or the time is up:
/// the checks then say what is missing). Extra issues or counts made by
/// the same flushes show up by then as well.
fn wait_for_issue_counts(server: &TestServer) -> Value {
    let issues = || server.get_json("/api/v1/issues")["issues"].clone();
    let reached = poll(|| {
        let issues = issues();
        let reached = FAILURES.iter().all(|failure| {
            issues.as_array().into_iter().flatten().any(|issue| {
                issue["error_type"] == failure.error_type
                    && issue["count"].as_u64() >= Some(failure.count)
            })
        });
        reached.then_some(issues)
    });
    reached.unwrap_or_else(issues)
}

/// The in-app frames of an issue's stack as `function`, each of the main
/// package.
fn app_frames(detail: &Value) -> Vec<String> {
    detail["stack"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|frame| frame["in_app"] == true)
        .map(|frame| {
            let function = frame["function"].as_str().unwrap_or_default();
            match frame["module"].as_str() {
                Some("main") => function.to_owned(),
                other => format!("{other:?}.{function}"),
            }
        })
        .collect()
}

/// Every sample points at a stored trace.
fn samples_in(detail: &Value, traces: &[Value]) -> bool {
    let samples = detail["samples"].as_array().map_or(&[][..], Vec::as_slice);
    !samples.is_empty()
        && samples.iter().all(|sample| {
            traces
                .iter()
                .any(|trace| trace["trace_id"] == sample["trace_id"])
        })
}
