//! Compatibility: the OpenTelemetry Go SDK with its middleware (see
//! `docs/compatibility.md`).
//!
//! `peers/go-otel` is an order service written the way the Go tracing
//! guides teach: an `otelhttp` front that calls a user service over gRPC
//! (`otelgrpc` stats handlers) and a payment service over HTTP (`otelhttp`
//! transport with an `otelhttptrace` client trace), hand-made
//! `process_order`/`process_payment`/`get_user` spans with typed
//! attributes, events, `RecordError` with a stack and error statuses, and
//! one hop whose W3C context is injected and extracted by hand. It drives
//! itself, prints one JSON line per order and flushes on exit.
//!
//! The tests run it against a real `ashiato serve` over OTLP gRPC and OTLP
//! http/protobuf, and once with a `TraceIDRatioBased` sampler, and check
//! through the public API that each order is one trace across every hop
//! with the spans, kinds, attributes, events, statuses and resource the SDK
//! sent, and that each distinct failure is one issue counted once per
//! failing order, with its Go stack parsed and only the app's frames
//! in-app.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Peer, artifact, check};
use support::TestServer;

const CLIENT: &str = "go (opentelemetry-go sdk + otelhttp/otelgrpc)";
const SERVICE: &str = "order-svc";
const VERSION: &str = "1.4.2";
const ENVIRONMENT: &str = "compat";
/// The SDK version `peers/go-otel/go.mod` pins (it reports it as
/// `telemetry.sdk.version`).
const SDK_VERSION: &str = "1.47.0";
const SCOPE: &str = "ashiato.test/order-svc";
const OTELHTTP: &str = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp";
const OTELGRPC: &str =
    "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc";
/// A cold start, eight orders and the final flush take a few seconds; a
/// loaded CI machine gets plenty of slack.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The service has flushed when it exits: what it sent is acknowledged and
/// queryable within a second, issues after the 1 s settle window; this is
/// slack for a loaded machine.
const STORED_TIMEOUT: Duration = Duration::from_secs(20);

/// A span as the checks name it: (name, kind).
type Shape = (&'static str, &'static str);

const FRONT: Shape = ("POST /orders/{id}", "server");
const PROCESS_ORDER: Shape = ("process_order", "internal");
const GRPC_CLIENT: Shape = ("orders.Users/GetUser", "client");
const GRPC_SERVER: Shape = ("orders.Users/GetUser", "server");
const GET_USER: Shape = ("get_user", "internal");
const PROCESS_PAYMENT: Shape = ("process_payment", "internal");
const HTTP_CLIENT: Shape = ("HTTP POST", "client");
const PAYMENTS: Shape = ("POST /charge", "server");
const PUBLISH: Shape = ("order-confirmations publish", "producer");
const CONSUME: Shape = ("order-confirmations process", "consumer");

/// Spans and their parents that every order's trace has.
const LOOKUP: &[(Shape, Option<Shape>)] = &[
    (FRONT, None),
    (PROCESS_ORDER, Some(FRONT)),
    (GRPC_CLIENT, Some(PROCESS_ORDER)),
    (GRPC_SERVER, Some(GRPC_CLIENT)),
    (GET_USER, Some(GRPC_SERVER)),
];
/// ... an order whose customer is known also pays (the `otelhttptrace`
/// spans hang below the client span; `http.connect` only on a new
/// connection, so it is not listed) ...
const PAYMENT: &[(Shape, Option<Shape>)] = &[
    (PROCESS_PAYMENT, Some(PROCESS_ORDER)),
    (HTTP_CLIENT, Some(PROCESS_PAYMENT)),
    (PAYMENTS, Some(HTTP_CLIENT)),
    (("http.getconn", "client"), Some(HTTP_CLIENT)),
    (("http.send", "client"), Some(HTTP_CLIENT)),
];
/// ... and a paid order is confirmed through the hand-propagated queue.
const CONFIRMATION: &[(Shape, Option<Shape>)] =
    &[(PUBLISH, Some(PROCESS_ORDER)), (CONSUME, Some(PUBLISH))];

/// One distinct failure of the service, as ashiato must group it.
struct Failure {
    /// The `failure` the service prints for an order that failed so.
    key: &'static str,
    /// What the front answers.
    status: u64,
    /// `exception.type` as the Go SDK names it (`reflect` type string).
    error_type: &'static str,
    message_prefix: &'static str,
    /// The span that recorded the error.
    span: Shape,
    /// The in-app function that called `RecordError`: the top in-app frame.
    function: &'static str,
    /// Status message of `process_order` for this failure.
    order_status: &'static str,
}

const FAILURES: &[Failure] = &[
    Failure {
        key: "payment_declined",
        status: 402,
        error_type: "*main.PaymentDeclinedError",
        message_prefix: "payment declined for order ord-",
        span: PROCESS_PAYMENT,
        function: "(*shop).processPayment",
        order_status: "payment failed",
    },
    Failure {
        key: "user_not_found",
        status: 404,
        error_type: "main.UserNotFoundError",
        message_prefix: "user 999 not found",
        span: GET_USER,
        function: "userRepository.GetUser",
        order_status: "customer lookup failed",
    },
];

/// One line the service printed.
struct Order {
    id: String,
    trace_id: String,
    sampled: bool,
    status: u64,
    failure: Option<&'static Failure>,
}

#[test]
fn test_go_otel_sdk_over_otlp_grpc() {
    run_variant("grpc");
}

#[test]
fn test_go_otel_sdk_over_otlp_http_protobuf() {
    run_variant("http/protobuf");
}

/// `ParentBased(TraceIDRatioBased(0.5))`: exactly the traces the SDK
/// sampled are stored, whole, and issues count only sampled failures.
#[test]
fn test_go_otel_sdk_ratio_sampler_stores_exactly_the_sampled_traces() {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let orders = run_service(
        &server,
        "grpc",
        &[
            ("ORDER_SVC_SAMPLE_RATIO", "0.5"),
            ("ORDER_SVC_ORDERS", "20"),
        ],
    );
    // 2^-19 that a fair sampler keeps all or none of 20 random trace ids
    check(
        &server,
        CLIENT,
        "the 0.5 ratio sampler kept some orders and dropped others",
        orders.iter().any(|order| order.sampled) && orders.iter().any(|order| !order.sampled),
        sampled_list(&orders),
    );
    let kept: Vec<&Order> = orders.iter().filter(|order| order.sampled).collect();
    for order in &kept {
        check_trace(&server, order, &wait_for_order(&server, order));
    }
    for order in orders.iter().filter(|order| !order.sampled) {
        let (status, body) = server.get(&format!("/api/v1/traces/{}", order.trace_id));
        check(
            &server,
            CLIENT,
            &format!("unsampled order {} stored nothing", order.id),
            status == 404,
            format!("GET its trace answered {status}: {body}"),
        );
    }
    let summaries = server.get_json(&format!("/api/v1/traces?service={SERVICE}&limit=100"));
    let stored = summaries["traces"].as_array().map_or(0, Vec::len);
    check(
        &server,
        CLIENT,
        "as many traces stored as orders sampled",
        stored == kept.len(),
        format!("{stored} stored, {}", sampled_list(&orders)),
    );
    check_issues(&server, &kept);
}

/// Runs the service over `protocol` and checks every order's trace and the
/// issues its failures made.
fn run_variant(protocol: &str) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let orders = run_service(&server, protocol, &[]);
    let failed = |key: &str| {
        orders
            .iter()
            .filter(|order| order.failure.is_some_and(|failure| failure.key == key))
            .count()
    };
    // orders 3 and 6 are declined, 7 has an unknown customer (main.go)
    check(
        &server,
        CLIENT,
        "the service placed 8 orders, 2 declined and 1 for an unknown customer",
        orders.len() == 8
            && failed("payment_declined") == 2
            && failed("user_not_found") == 1
            && orders.iter().all(|order| order.sampled),
        sampled_list(&orders),
    );
    for order in &orders {
        check_trace(&server, order, &wait_for_order(&server, order));
    }
    let all: Vec<&Order> = orders.iter().collect();
    check_issues(&server, &all);
}

/// Runs the order service to completion (it exits after the tracer
/// provider's shutdown flushed every span) and parses what it printed.
fn run_service(server: &TestServer, protocol: &str, extra: &[(&str, &str)]) -> Vec<Order> {
    let endpoint = match protocol {
        "grpc" => server.otlp_grpc_base(),
        _ => server.otlp_http_base(),
    };
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ];
    env.extend_from_slice(extra);
    let binary = artifact("ASHIATO_COMPAT_GO_OTEL_BIN");
    let mut service = Peer::spawn("order-svc", Command::new(binary), &env);
    service.wait_success(RUN_TIMEOUT);
    let orders: Vec<Order> = service
        .stdout()
        .lines()
        .map(|line| {
            parse_order(line).unwrap_or_else(|| panic!("bad line {line:?}\n{}", service.output()))
        })
        .collect();
    for order in &orders {
        let want = order.failure.map_or(201, |failure| failure.status);
        check(
            server,
            CLIENT,
            &format!("order {} answered {want}", order.id),
            order.status == want && order.trace_id.len() == 32,
            service.output(),
        );
    }
    orders
}

fn parse_order(line: &str) -> Option<Order> {
    let value: Value = serde_json::from_str(line).ok()?;
    let failure = match value["failure"].as_str()? {
        "" => None,
        key => Some(FAILURES.iter().find(|failure| failure.key == key)?),
    };
    Some(Order {
        id: value["order_id"].as_str()?.to_owned(),
        trace_id: value["trace_id"].as_str()?.to_owned(),
        sampled: value["sampled"].as_bool()?,
        status: value["status"].as_u64()?,
        failure,
    })
}

fn sampled_list(orders: &[Order]) -> String {
    let list: Vec<String> = orders
        .iter()
        .map(|order| {
            let failure = order.failure.map_or("ok", |failure| failure.key);
            format!(
                "{} {} sampled={} {failure}",
                order.id, order.trace_id, order.sampled
            )
        })
        .collect();
    format!("orders: {list:#?}")
}

/// The spans (with their parents) an order's trace must have.
fn expected_spans(order: &Order) -> Vec<(Shape, Option<Shape>)> {
    let mut spans = LOOKUP.to_vec();
    let failure = order.failure.map(|failure| failure.key);
    if failure != Some("user_not_found") {
        spans.extend_from_slice(PAYMENT);
    }
    if failure.is_none() {
        spans.extend_from_slice(CONFIRMATION);
    }
    spans
}

fn spans(trace: &Value) -> &[Value] {
    trace["spans"].as_array().map_or(&[], Vec::as_slice)
}

fn find(trace: &Value, (name, kind): Shape) -> Option<&Value> {
    spans(trace)
        .iter()
        .find(|span| span["name"] == name && span["kind"] == kind)
}

/// The span of `shape` (Null if missing: the tree check names it first).
fn span(trace: &Value, shape: Shape) -> &Value {
    find(trace, shape).unwrap_or(&Value::Null)
}

/// Waits until the order's trace holds every span it must have. The
/// service has flushed already, so what is missing then never comes.
fn wait_for_order(server: &TestServer, order: &Order) -> Value {
    let expected = expected_spans(order);
    let path = format!("/api/v1/traces/{}", order.trace_id);
    let what = format!("trace of order {} with {} spans", order.id, expected.len());
    poll(server, &what, || {
        let (status, trace) = server.get(&path);
        let whole = status == 200
            && expected
                .iter()
                .all(|(shape, _)| find(&trace, *shape).is_some());
        whole.then_some(trace)
    })
}

/// Polls until `ready` gives a value; a timeout fails as a named check
/// (which prints what ashiato stored).
fn poll<T>(server: &TestServer, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STORED_TIMEOUT;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        if Instant::now() > deadline {
            check(
                server,
                CLIENT,
                what,
                false,
                format!("not so after {STORED_TIMEOUT:?}"),
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One order's trace: tree, resource, attributes, events and statuses.
fn check_trace(server: &TestServer, order: &Order, trace: &Value) {
    check_tree(server, order, trace);
    for span in spans(trace) {
        check_resource(server, span);
    }
    check_order_spans(server, order, trace);
    check_http_spans(server, order, trace);
    check_grpc_spans(server, order, trace);
    if let Some(failure) = order.failure {
        check_exception(server, order, failure, trace);
    } else {
        check_confirmation(server, order, trace);
    }
}

/// One trace id across both hops and the queue: a single root, every
/// parent present, and each expected span under the expected parent.
fn check_tree(server: &TestServer, order: &Order, trace: &Value) {
    let roots: Vec<&str> = spans(trace)
        .iter()
        .filter(|span| span["parent_span_id"].is_null())
        .filter_map(|span| span["name"].as_str())
        .collect();
    check(
        server,
        CLIENT,
        &format!("order {}: one root, the front's server span", order.id),
        roots == [FRONT.0] && trace["trace_id"] == order.trace_id.as_str(),
        format!("roots {roots:?}"),
    );
    let orphans: Vec<&Value> = spans(trace)
        .iter()
        .filter(|span| {
            !span["parent_span_id"].is_null()
                && !spans(trace)
                    .iter()
                    .any(|parent| parent["span_id"] == span["parent_span_id"])
        })
        .collect();
    check(
        server,
        CLIENT,
        &format!("order {}: every parent is in the trace", order.id),
        orphans.is_empty(),
        format!("orphans {orphans:#?}"),
    );
    for (shape, parent) in expected_spans(order) {
        let parent_id = parent.map_or(Value::Null, |parent| span(trace, parent)["span_id"].clone());
        check(
            server,
            CLIENT,
            &format!("order {}: {shape:?} is a child of {parent:?}", order.id),
            find(trace, shape).is_some_and(|span| span["parent_span_id"] == parent_id),
            format!("{:#}", span(trace, shape)),
        );
    }
}

/// `resource.NewWithAttributes` merged over the SDK's default resource.
fn check_resource(server: &TestServer, span: &Value) {
    let resource = &span["resource"];
    let ok = span["service"] == SERVICE
        && resource["service.name"] == SERVICE
        && resource["service.version"] == VERSION
        && resource["deployment.environment.name"] == ENVIRONMENT
        && resource["telemetry.sdk.language"] == "go"
        && resource["telemetry.sdk.name"] == "opentelemetry"
        && resource["telemetry.sdk.version"] == SDK_VERSION;
    check(
        server,
        CLIENT,
        &format!("span {} carries the service's resource", span["name"]),
        ok,
        format!("{resource:#}"),
    );
}

/// The hand-made spans: typed attributes, events, status and scope.
fn check_order_spans(server: &TestServer, order: &Order, trace: &Value) {
    let process = span(trace, PROCESS_ORDER);
    let attributes = &process["attributes"];
    let known_customer = order
        .failure
        .is_none_or(|failure| failure.key != "user_not_found");
    check(
        server,
        CLIENT,
        &format!("order {}: process_order attributes typed as sent", order.id),
        attributes["order.id"] == order.id.as_str()
            && attributes["order.amount"].is_f64()
            && attributes["customer.id"].is_i64()
            && (attributes["customer.id"] == 999) != known_customer
            && process["scope"]["name"] == SCOPE,
        format!("{process:#}"),
    );
    let events: Vec<&str> = process["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["name"].as_str())
        .collect();
    let want: &[&str] = if known_customer {
        &["validating_order", "order_validated"]
    } else {
        &["validating_order"]
    };
    let validated = &process["events"][1]["attributes"];
    check(
        server,
        CLIENT,
        &format!(
            "order {}: process_order events in order, attributes typed",
            order.id
        ),
        events == want
            && process["events"][0]["attributes"]["order.items"].is_i64()
            && (!known_customer
                || (validated["customer.tier"].is_string()
                    && validated["order.priority"].is_boolean())),
        format!("{:#}", process["events"]),
    );
    let (code, message) = match order.failure {
        Some(failure) => ("error", failure.order_status),
        None => ("ok", ""),
    };
    check(
        server,
        CLIENT,
        &format!(
            "order {}: process_order status {code} {message:?}",
            order.id
        ),
        process["status"]["code"] == code && process["status"]["message"] == message,
        format!("{:#}", process["status"]),
    );
    let user = span(trace, GET_USER);
    check(
        server,
        CLIENT,
        &format!("order {}: get_user attributes typed as sent", order.id),
        user["attributes"]["db.type"] == "postgresql"
            && user["attributes"]["db.user_id"].is_i64()
            && user["attributes"]["db.user_id"] == attributes["customer.id"],
        format!("{user:#}"),
    );
    if known_customer {
        let payment = span(trace, PROCESS_PAYMENT);
        check(
            server,
            CLIENT,
            &format!(
                "order {}: process_payment attributes typed as sent",
                order.id
            ),
            payment["attributes"]["payment.provider"] == "acme-pay"
                && payment["attributes"]["payment.amount"].is_f64()
                && payment["attributes"]["payment.amount"] == attributes["order.amount"],
            format!("{payment:#}"),
        );
    }
}

/// otelhttp's stable HTTP semantic conventions on both ends of both HTTP
/// hops; a 4xx fails the client span and leaves the server span unset.
fn check_http_spans(server: &TestServer, order: &Order, trace: &Value) {
    let front = span(trace, FRONT);
    let attributes = &front["attributes"];
    check(
        server,
        CLIENT,
        &format!(
            "order {}: front server span has otelhttp's attributes",
            order.id
        ),
        attributes["http.request.method"] == "POST"
            && attributes["http.response.status_code"] == order.status
            && attributes["url.path"] == format!("/orders/{}", order.id).as_str()
            && attributes["url.scheme"] == "http"
            && attributes["server.port"].is_i64()
            && attributes["network.protocol.version"] == "1.1"
            && front["status"]["code"] == "unset"
            && front["scope"]["name"] == OTELHTTP,
        format!("{front:#}"),
    );
    if order
        .failure
        .is_some_and(|failure| failure.key == "user_not_found")
    {
        return;
    }
    let declined = order.failure.is_some();
    let (status, client_status) = if declined {
        (402, "error")
    } else {
        (200, "unset")
    };
    let client = span(trace, HTTP_CLIENT);
    let attributes = &client["attributes"];
    check(
        server,
        CLIENT,
        &format!(
            "order {}: payment client span has otelhttp's attributes",
            order.id
        ),
        attributes["http.request.method"] == "POST"
            && attributes["url.full"]
                .as_str()
                .is_some_and(|url| url.ends_with("/charge"))
            && attributes["http.response.status_code"] == status
            && attributes["server.port"].is_i64()
            && (attributes["error.type"] == "402") == declined
            && client["status"]["code"] == client_status
            && client["scope"]["name"] == OTELHTTP,
        format!("{client:#}"),
    );
    let payments = span(trace, PAYMENTS);
    check(
        server,
        CLIENT,
        &format!(
            "order {}: payment server span has otelhttp's attributes",
            order.id
        ),
        payments["attributes"]["http.request.method"] == "POST"
            && payments["attributes"]["url.path"] == "/charge"
            && payments["attributes"]["http.response.status_code"] == status
            && payments["status"]["code"] == "unset",
        format!("{payments:#}"),
    );
    // otelhttptrace's connection span: typed booleans
    let getconn = span(trace, ("http.getconn", "client"));
    check(
        server,
        CLIENT,
        &format!("order {}: otelhttptrace's getconn span", order.id),
        getconn["attributes"]["http.conn.reused"].is_boolean(),
        format!("{getconn:#}"),
    );
}

/// otelgrpc's RPC conventions on both ends of the gRPC hop.
fn check_grpc_spans(server: &TestServer, order: &Order, trace: &Value) {
    let unknown = order
        .failure
        .is_some_and(|failure| failure.key == "user_not_found");
    let code = if unknown { "NOT_FOUND" } else { "OK" };
    for (shape, status) in [
        (GRPC_CLIENT, if unknown { "error" } else { "unset" }),
        (GRPC_SERVER, "unset"),
    ] {
        let rpc = span(trace, shape);
        let attributes = &rpc["attributes"];
        check(
            server,
            CLIENT,
            &format!("order {}: {shape:?} has otelgrpc's attributes", order.id),
            attributes["rpc.system.name"] == "grpc"
                && attributes["rpc.method"] == "orders.Users/GetUser"
                && attributes["rpc.response.status_code"] == code
                && attributes["server.port"].is_i64()
                && rpc["status"]["code"] == status
                && rpc["scope"]["name"] == OTELGRPC,
            format!("{rpc:#}"),
        );
    }
}

/// The error's span: `RecordError`'s exception event with a goroutine
/// stack, and `SetStatus(codes.Error, err.Error())`.
fn check_exception(server: &TestServer, order: &Order, failure: &Failure, trace: &Value) {
    let failing = span(trace, failure.span);
    let exception = failing["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["name"] == "exception");
    let attributes = exception.map_or(&Value::Null, |event| &event["attributes"]);
    let message = attributes["exception.message"].as_str().unwrap_or_default();
    let stack = attributes["exception.stacktrace"]
        .as_str()
        .unwrap_or_default();
    check(
        server,
        CLIENT,
        &format!(
            "order {}: {} recorded the error with a stack",
            order.id, failure.span.0
        ),
        attributes["exception.type"] == failure.error_type
            && message.starts_with(failure.message_prefix)
            && stack.starts_with("goroutine ")
            && failing["status"]["code"] == "error"
            && failing["status"]["message"] == message,
        format!("{failing:#}"),
    );
}

/// The queue hop: the consumer's parent is the producer, through headers
/// injected and extracted by hand.
fn check_confirmation(server: &TestServer, order: &Order, trace: &Value) {
    let consumer = span(trace, CONSUME);
    let publish = span(trace, PUBLISH);
    check(
        server,
        CLIENT,
        &format!(
            "order {}: the confirmation carries its attributes",
            order.id
        ),
        consumer["attributes"]["order.id"] == order.id.as_str()
            && consumer["attributes"]["messaging.destination.name"] == "order-confirmations"
            && publish["attributes"]["messaging.operation.type"] == "send",
        format!("{consumer:#}\n{publish:#}"),
    );
}

/// One issue per distinct failure, counted once per failing order, with
/// the Go stack parsed: the app's `main` frames in-app, the SDK's,
/// otelhttp's, gRPC's, net/http's and the runtime's not.
fn check_issues(server: &TestServer, orders: &[&Order]) {
    let mut expected = 0;
    for failure in FAILURES {
        let failed: Vec<&&Order> = orders
            .iter()
            .filter(|order| order.failure.is_some_and(|of| of.key == failure.key))
            .collect();
        if failed.is_empty() {
            continue;
        }
        expected += 1;
        let issue = wait_for_issue(server, failure, failed.len());
        check_issue_detail(server, failure, &issue, &failed);
    }
    let issues = server.get_json("/api/v1/issues")["issues"].clone();
    check(
        server,
        CLIENT,
        &format!("exactly {expected} issues, one per distinct failure"),
        issues.as_array().map_or(0, Vec::len) == expected,
        format!("{issues:#}"),
    );
}

fn wait_for_issue(server: &TestServer, failure: &Failure, count: usize) -> Value {
    let what = format!("an issue of {} with count {count}", failure.error_type);
    poll(server, &what, || {
        let issues = server.get_json("/api/v1/issues")["issues"].clone();
        issues
            .as_array()
            .into_iter()
            .flatten()
            .find(|issue| {
                issue["error_type"] == failure.error_type && issue["count"] == count as u64
            })
            .cloned()
    })
}

fn check_issue_detail(server: &TestServer, failure: &Failure, issue: &Value, failed: &[&&Order]) {
    let what = |check: &str| format!("issue {}: {check}", failure.error_type);
    check(
        server,
        CLIENT,
        &what("service, environment, version, culprit and source"),
        issue["service"] == SERVICE
            && issue["environment"] == ENVIRONMENT
            && issue["first_version"] == VERSION
            && issue["culprit"] == format!("main in {}", failure.function).as_str()
            && issue["sources"] == serde_json::json!(["span"])
            && issue["message"]
                .as_str()
                .is_some_and(|message| message.starts_with(failure.message_prefix)),
        format!("{issue:#}"),
    );
    let id = issue["id"].as_str().unwrap_or_default();
    let detail = server.get_json(&format!("/api/v1/issues/{id}"));
    let frames = detail["stack"].as_array().cloned().unwrap_or_default();
    let top = frames.iter().find(|frame| frame["in_app"] == true);
    check(
        server,
        CLIENT,
        &what("the top in-app frame is the function that recorded it"),
        top.is_some_and(|frame| frame["function"] == failure.function && frame["module"] == "main"),
        format!("{frames:#?}"),
    );
    let misjudged: Vec<&Value> = frames
        .iter()
        .filter(|frame| (frame["in_app"] == true) != (frame["module"] == "main"))
        .collect();
    check(
        server,
        CLIENT,
        &what("exactly the app's main frames are in-app"),
        misjudged.is_empty() && frames.len() >= 4,
        format!("misjudged {misjudged:#?} of {frames:#?}"),
    );
    let components = detail["fingerprint"]["components"].to_string();
    check(
        server,
        CLIENT,
        &what("grouped by the app's frames"),
        components.contains(&format!("frame=main:{}", failure.function)),
        components,
    );
    let sample = &detail["samples"][0];
    let trace_id = sample["trace_id"].as_str().unwrap_or_default();
    let sampled = failed.iter().find(|order| order.trace_id == trace_id);
    let failing_span = sampled.map(|_| {
        let trace = server.get_json(&format!("/api/v1/traces/{trace_id}"));
        span(&trace, failure.span)["span_id"].clone()
    });
    check(
        server,
        CLIENT,
        &what("its sample is the span that recorded the error in a failing order"),
        failing_span.is_some_and(|span_id| sample["span_id"] == span_id),
        format!("{sample:#}"),
    );
}
