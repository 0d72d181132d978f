//! Compatibility: Node.js zero-code instrumentation (see `docs/compatibility.md`).
//!
//! An unmodified express 5 app (`peers/node/app.js`) runs under
//! `node --require @opentelemetry/auto-instrumentations-node/register`,
//! configured by `OTEL_*` variables only, and exports to a real `ashiato
//! serve` over OTLP http/protobuf in one test and OTLP gRPC in the other.
//! The tests drive its routes over loopback, stop it with SIGTERM (the
//! loader's shutdown hook is what flushes) and check through the public API
//! that every request is one trace joined across its own http hop, with
//! the spans, kinds, attributes and resource the pinned SDK sends, and that
//! each distinct failure is one issue counted once per failing request
//! with its Node stack parsed and the app's frames marked in-app.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{Peer, artifact, check, free_port, wait_for_port};
use support::{TestServer, http_request, wait_until};

const CLIENT: &str = "node (auto-instrumentations-node/register)";
const SERVICE: &str = "shop-node";
const VERSION: &str = "2.4.1";
const ENVIRONMENT: &str = "compat";
/// A graceful stop exports everything and exits in well under this.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

const HTTP_SCOPE: &str = "@opentelemetry/instrumentation-http";
const EXPRESS_SCOPE: &str = "@opentelemetry/instrumentation-express";

/// One kind of request the tests send and the trace it must become.
struct Route {
    /// The express route, also `http.route` on its server span.
    route: &'static str,
    /// Requests sent to it (ids 1..=requests).
    requests: usize,
    /// What the app answers.
    status: u16,
    /// Every span of the trace as its path from the root (see `label`),
    /// sorted.
    tree: &'static [&'static str],
    /// The issue its failures must make, if it fails.
    failure: Option<Failure>,
}

/// One distinct failure of the app, as ashiato must group it.
struct Failure {
    /// `exception.type` as the SDK reports it: the error's `name`, which a
    /// subclass of `Error` inherits unless it sets its own.
    error_type: &'static str,
    /// The in-app function that threw, the top frame of the issue's stack.
    function: &'static str,
    /// True when the stack runs through express's router (in node_modules).
    through_router: bool,
    /// Attributes the app set on the failing span, as JSON text: typed as
    /// sent (a double stays a number, a bool a bool).
    attributes: &'static [(&'static str, &'static str)],
}

/// What instrumentation-express 0.71 makes of express 5: a `middleware`
/// span for express.json() on every request, a `router` span where the
/// `payments` router is mounted and a `request handler` span per route
/// handler, all children of the server span (the error handler gets none).
const ROUTES: &[Route] = &[
    Route {
        route: "/checkout/:id",
        requests: 2,
        status: 200,
        tree: &[
            "server GET /checkout/:id",
            "server GET /checkout/:id > express middleware",
            "server GET /checkout/:id > express request_handler",
            "server GET /checkout/:id > express request_handler > client GET",
            "server GET /checkout/:id > express request_handler > client GET \
             > server GET /inventory/:id",
            "server GET /checkout/:id > express request_handler > client GET \
             > server GET /inventory/:id > express middleware",
            "server GET /checkout/:id > express request_handler > client GET \
             > server GET /inventory/:id > express request_handler",
        ],
        failure: None,
    },
    Route {
        route: "/payments/pay/:id",
        requests: 3,
        status: 500,
        tree: &[
            "server GET /payments/pay/:id",
            "server GET /payments/pay/:id > express middleware",
            "server GET /payments/pay/:id > express request_handler",
            "server GET /payments/pay/:id > express router",
        ],
        // `class PaymentDeclined extends Error {}`: Node names it `Error`
        failure: Some(Failure {
            error_type: "Error",
            function: "chargeCard",
            through_router: false,
            attributes: &[],
        }),
    },
    Route {
        route: "/payments/refund/:id",
        requests: 2,
        status: 502,
        tree: &[
            "server GET /payments/refund/:id",
            "server GET /payments/refund/:id > express middleware",
            "server GET /payments/refund/:id > express request_handler",
            "server GET /payments/refund/:id > express router",
        ],
        failure: Some(Failure {
            error_type: "RefundRejected",
            function: "refund",
            through_router: true,
            attributes: &[("refund.amount", "42.5"), ("refund.retryable", "false")],
        }),
    },
];

#[test]
fn test_node_zero_code_over_otlp_http_protobuf() {
    run_variant("http/protobuf");
}

#[test]
fn test_node_zero_code_over_otlp_grpc() {
    run_variant("grpc");
}

/// Starts ashiato and the app exporting with `protocol`, drives every
/// route, stops the app and checks what ashiato stored.
fn run_variant(protocol: &str) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let endpoint = match protocol {
        "grpc" => server.otlp_grpc_base(),
        _ => server.otlp_http_base(),
    };
    let (mut app, addr) = start_app(&endpoint, protocol);
    for route in ROUTES {
        drive(&server, &app, addr, route);
    }
    // the batch processor's delay is far longer than the test: only the
    // loader's SIGTERM shutdown can have exported the spans
    app.terminate(STOP_TIMEOUT);
    let traces = wait_for_traces(&server);
    for route in ROUTES {
        let of_route: Vec<&Value> = traces
            .iter()
            .filter(|trace| root(trace)["attributes"]["http.route"] == route.route)
            .collect();
        check(
            &server,
            CLIENT,
            &format!("one trace per request to {}", route.route),
            of_route.len() == route.requests,
            format!("{} traces, {} requests", of_route.len(), route.requests),
        );
        for trace in of_route {
            check_trace(&server, route, trace);
        }
    }
    check_issues(&server);
}

/// Runs app.js under the zero-code loader, configured the way a user
/// would: `OTEL_*` variables only.
fn start_app(endpoint: &str, protocol: &str) -> (Peer, SocketAddr) {
    let dir = artifact("ASHIATO_COMPAT_NODE_APP");
    let port = free_port();
    let mut command = Command::new("node");
    command
        .args([
            "--require",
            "@opentelemetry/auto-instrumentations-node/register",
            "app.js",
        ])
        .current_dir(&dir);
    let port_text = port.to_string();
    let resource = format!("service.version={VERSION},deployment.environment.name={ENVIRONMENT}");
    let env = [
        ("PORT", port_text.as_str()),
        ("OTEL_SERVICE_NAME", SERVICE),
        ("OTEL_RESOURCE_ATTRIBUTES", resource.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_NODE_ENABLED_INSTRUMENTATIONS", "http,express"),
        // the default `all` adds cloud detectors that probe metadata
        // addresses off this machine; these are the ones that stay local
        ("OTEL_NODE_RESOURCE_DETECTORS", "env,host,os,process"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_LOG_LEVEL", "info"),
    ];
    let app = Peer::spawn("node app", command, &env);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(addr, "node app");
    (app, addr)
}

/// Sends the route's requests and checks the app's answers.
fn drive(server: &TestServer, app: &Peer, addr: SocketAddr, route: &Route) {
    for id in 1..=route.requests {
        let path = route.route.replace(":id", &id.to_string());
        let response = http_request(addr, "GET", &path, &[], &[]);
        check(
            server,
            CLIENT,
            &format!("the app answers GET {path}"),
            response.status == route.status,
            format!(
                "status {} (want {}): {}\n{}",
                response.status,
                route.status,
                response.text(),
                app.output()
            ),
        );
    }
}

/// Every request's trace with all its spans, once all have arrived.
fn wait_for_traces(server: &TestServer) -> Vec<Value> {
    let traces = ROUTES.iter().map(|route| route.requests).sum::<usize>();
    let spans = ROUTES
        .iter()
        .map(|route| route.requests * route.tree.len())
        .sum::<usize>();
    let query = format!("/api/v1/traces?service={SERVICE}&limit=100");
    let summaries = wait_until(&format!("{traces} traces with {spans} spans"), || {
        let (_, body) = server.get(&query);
        let list = body["traces"].as_array().cloned().unwrap_or_default();
        let stored: u64 = list
            .iter()
            .filter_map(|trace| trace["span_count"].as_u64())
            .sum();
        (list.len() >= traces && stored >= spans as u64).then_some(list)
    });
    summaries
        .iter()
        .filter_map(|summary| summary["trace_id"].as_str())
        .map(|id| server.get_json(&format!("/api/v1/traces/{id}")))
        .collect()
}

fn spans(trace: &Value) -> &[Value] {
    trace["spans"].as_array().map_or(&[], Vec::as_slice)
}

/// The span without a parent (Null if there is none, which a check catches).
fn root(trace: &Value) -> &Value {
    spans(trace)
        .iter()
        .find(|span| span["parent_span_id"].is_null())
        .unwrap_or(&Value::Null)
}

/// The span's parent in the trace (Null for the root or a dangling link).
fn parent<'a>(trace: &'a Value, span: &Value) -> &'a Value {
    spans(trace)
        .iter()
        .find(|candidate| candidate["span_id"] == span["parent_span_id"])
        .unwrap_or(&Value::Null)
}

/// `server GET /checkout/:id`, `client GET`, or for express's internal
/// spans `express <express.type>` (their names are checked on their own).
fn label(span: &Value) -> String {
    let kind = span["kind"].as_str().unwrap_or_default();
    match span["attributes"]["express.type"].as_str() {
        Some(express) if kind == "internal" => format!("express {express}"),
        _ => format!("{kind} {}", span["name"].as_str().unwrap_or_default()),
    }
}

/// The labels from the root down to `span`; a broken parent link ends the
/// path with `?`.
fn path(trace: &Value, span: &Value) -> String {
    let mut labels = vec![label(span)];
    let mut current = span;
    while !current["parent_span_id"].is_null() && labels.len() <= spans(trace).len() {
        current = parent(trace, current);
        if current.is_null() {
            labels.push("?".to_owned());
            break;
        }
        labels.push(label(current));
    }
    labels.reverse();
    labels.join(" > ")
}

/// The shape, attributes and resource of one request's trace.
fn check_trace(server: &TestServer, route: &Route, trace: &Value) {
    let mut tree: Vec<String> = spans(trace).iter().map(|span| path(trace, span)).collect();
    tree.sort();
    let mut expected: Vec<String> = route.tree.iter().map(|path| (*path).to_owned()).collect();
    expected.sort();
    check(
        server,
        CLIENT,
        &format!(
            "{}: one trace, every parent link as the client made it",
            route.route
        ),
        tree == expected,
        format!("tree {tree:#?}\nexpected {expected:#?}"),
    );
    let is_root = |span: &Value| span["parent_span_id"].is_null();
    for span in spans(trace) {
        check_resource(server, span);
        match span["kind"].as_str().unwrap_or_default() {
            "server" => {
                // the request's own answer at the root; the inner hop succeeds
                let status = if is_root(span) { route.status } else { 200 };
                check_server_span(server, span, status);
            }
            "client" => check_client_span(server, span),
            _ => check_express_span(server, span, parent(trace, span)),
        }
    }
    check_exception(server, route, trace);
}

/// `service.name` from OTEL_SERVICE_NAME, the rest from
/// OTEL_RESOURCE_ATTRIBUTES, and the SDK's own telemetry.sdk.* keys.
fn check_resource(server: &TestServer, span: &Value) {
    let resource = &span["resource"];
    let expected = [
        ("service.name", SERVICE),
        ("service.version", VERSION),
        ("deployment.environment.name", ENVIRONMENT),
        ("telemetry.sdk.language", "nodejs"),
        ("telemetry.sdk.name", "opentelemetry"),
    ];
    for (key, value) in expected {
        check(
            server,
            CLIENT,
            &format!("resource {key} on span {}", span["name"]),
            resource[key] == value && span["service"] == SERVICE,
            format!("resource {resource}, service {}", span["service"]),
        );
    }
}

/// instrumentation-http 0.223 sends the stable HTTP conventions only
/// (`http.request.method`, `url.path`, ...; no `http.method`), typed.
fn check_server_span(server: &TestServer, span: &Value, status: u16) {
    let attributes = &span["attributes"];
    let route = span["name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("GET ");
    let ok = span["scope"]["name"] == HTTP_SCOPE
        && attributes["http.route"] == route
        && attributes["http.request.method"] == "GET"
        && attributes["http.response.status_code"] == status
        && attributes["url.scheme"] == "http"
        && attributes["url.path"]
            .as_str()
            .is_some_and(|path| path.starts_with(route.trim_end_matches(":id")))
        && attributes["server.port"].is_u64()
        && attributes.get("http.method").is_none()
        && attributes.get("http.status_code").is_none();
    check(
        server,
        CLIENT,
        &format!("server span attributes of {route}"),
        ok,
        format!("span {span}"),
    );
    let status_code = if status >= 500 { "error" } else { "unset" };
    check(
        server,
        CLIENT,
        &format!("server span status of {route}"),
        span["status"]["code"] == status_code,
        format!("status {}", span["status"]),
    );
}

/// The outgoing call to /inventory: `url.full` and a typed status code.
fn check_client_span(server: &TestServer, span: &Value) {
    let attributes = &span["attributes"];
    let ok = span["scope"]["name"] == HTTP_SCOPE
        && attributes["http.request.method"] == "GET"
        && attributes["http.response.status_code"] == 200
        && attributes["url.full"]
            .as_str()
            .is_some_and(|url| url.contains("/inventory/"))
        && attributes.get("http.url").is_none();
    check(
        server,
        CLIENT,
        "client span attributes of the http hop",
        ok,
        format!("span {span}"),
    );
}

/// express's own spans, by `express.type`: names and attributes as
/// instrumentation-express sets them. The router span is named after the
/// router's first route (`router - /pay/:id` on every payments request):
/// that is the instrumentation's choice, so only its prefix is checked.
fn check_express_span(server: &TestServer, span: &Value, parent: &Value) {
    let attributes = &span["attributes"];
    let name = span["name"].as_str().unwrap_or_default();
    let ok = match attributes["express.type"].as_str().unwrap_or_default() {
        "middleware" => {
            name == "middleware - jsonParser" && attributes["express.name"] == "jsonParser"
        }
        "router" => name.starts_with("router - ") && attributes["express.name"].is_string(),
        "request_handler" => {
            let route = &parent["attributes"]["http.route"];
            name == "request handler"
                && attributes["express.name"] == *route
                && attributes["http.route"] == *route
        }
        _ => false,
    };
    check(
        server,
        CLIENT,
        &format!("express span {name:?} under {}", parent["name"]),
        ok && span["scope"]["name"] == EXPRESS_SCOPE,
        format!("span {span}"),
    );
}

/// A failing request has exactly one exception event, on its request
/// handler span (error status, the app's attributes); others have none.
fn check_exception(server: &TestServer, route: &Route, trace: &Value) {
    let with_events: Vec<&Value> = spans(trace)
        .iter()
        .filter(|span| {
            span["events"]
                .as_array()
                .is_some_and(|events| !events.is_empty())
        })
        .collect();
    let Some(failure) = &route.failure else {
        check(
            server,
            CLIENT,
            &format!("no span events on {}", route.route),
            with_events.is_empty(),
            format!("{with_events:#?}"),
        );
        return;
    };
    let span = with_events.first().copied().unwrap_or(&Value::Null);
    let events = span["events"].as_array().map_or(&[][..], Vec::as_slice);
    let event = &events.first().unwrap_or(&Value::Null)["attributes"];
    let ok = with_events.len() == 1
        && events.len() == 1
        && span["name"] == "request handler"
        && span["status"]["code"] == "error"
        && events[0]["name"] == "exception"
        && event["exception.type"] == failure.error_type
        && event["exception.stacktrace"]
            .as_str()
            .is_some_and(|stack| stack.contains("app.js:"));
    check(
        server,
        CLIENT,
        &format!(
            "one exception event, on the handler span of {}",
            route.route
        ),
        ok,
        format!("{with_events:#?}"),
    );
    let attributes = &span["attributes"];
    for (key, value) in failure.attributes {
        check(
            server,
            CLIENT,
            &format!(
                "the app's attribute {key} on the handler span of {}",
                route.route
            ),
            serde_json::from_str::<Value>(value).is_ok_and(|want| attributes[key] == want),
            format!("attributes {attributes}"),
        );
    }
}

fn issues(server: &TestServer) -> Vec<Value> {
    server.get_json("/api/v1/issues")["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// One issue per failing route, counted once per failing request (the
/// handler span's exception and the 5xx server span above it are one
/// occurrence), with the Node stack parsed.
fn check_issues(server: &TestServer) {
    let failing: Vec<(&Route, &Failure)> = ROUTES
        .iter()
        .filter_map(|route| Some((route, route.failure.as_ref()?)))
        .collect();
    let counted = || {
        let all = issues(server);
        let settled = failing.iter().all(|(route, failure)| {
            all.iter().any(|issue| {
                issue["error_type"] == failure.error_type && issue["count"] == route.requests
            })
        });
        settled.then_some(all)
    };
    let all = wait_until("an issue per failing route with its count", counted);
    check(
        server,
        CLIENT,
        "exactly one issue per distinct failure",
        all.len() == failing.len(),
        format!("{} issues for {} failures", all.len(), failing.len()),
    );
    for (route, failure) in failing {
        let issue = all
            .iter()
            .find(|issue| issue["error_type"] == failure.error_type)
            .expect("waited for it");
        check_issue(server, route, failure, issue);
    }
}

fn check_issue(server: &TestServer, route: &Route, failure: &Failure, issue: &Value) {
    let operation = format!("GET {}", route.route);
    check(
        server,
        CLIENT,
        &format!("issue of {operation}: service, environment, version"),
        issue["service"] == SERVICE
            && issue["environment"] == ENVIRONMENT
            && issue["first_version"] == VERSION
            && issue["sources"] == serde_json::json!(["span"]),
        format!("issue {issue}"),
    );
    let id = issue["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    let stack = detail["stack"].as_array().map_or(&[][..], Vec::as_slice);
    let top = stack.first().unwrap_or(&Value::Null);
    check(
        server,
        CLIENT,
        &format!(
            "issue of {operation}: the top frame is the app's {}",
            failure.function
        ),
        top["function"] == failure.function
            && top["in_app"] == true
            && top["file"]
                .as_str()
                .is_some_and(|file| file.ends_with("/app.js"))
            && top["line"].is_u64(),
        format!("stack {}", detail["stack"]),
    );
    // V8 prints an async frame of an anonymous function as
    // `at async /dir/app.js:66:3`: its file must not keep the marker
    for frame in stack {
        let file = frame["file"].as_str().unwrap_or_default();
        let app_file = file.starts_with('/') && file.ends_with("/app.js");
        check(
            server,
            CLIENT,
            &format!("issue of {operation}: in_app is set on app.js frames only"),
            frame["in_app"] == app_file,
            format!("frame {frame}"),
        );
    }
    let through_router = stack.iter().any(|frame| {
        frame["file"]
            .as_str()
            .is_some_and(|file| file.contains("node_modules/router/"))
    });
    check(
        server,
        CLIENT,
        &format!("issue of {operation}: express's router frames are kept, not in-app"),
        through_router == failure.through_router,
        format!("stack {}", detail["stack"]),
    );
}
