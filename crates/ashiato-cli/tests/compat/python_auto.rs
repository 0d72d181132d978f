//! Compatibility: Python zero-code instrumentation, `opentelemetry-instrument`
//! with the Flask, `requests` and logging instrumentations (see
//! `docs/compatibility.md`).
//!
//! `peers/python-auto/app.py` is a Flask shop that never imports
//! OpenTelemetry: it runs as `opentelemetry-instrument python app.py`,
//! configured by `OTEL_*` variables only, and ships spans and log records
//! (the logging bridge) over OTLP gRPC with the instrumentations' default
//! HTTP conventions (`http.method`), or over OTLP http/protobuf with the
//! stable ones (`OTEL_SEMCONV_STABILITY_OPT_IN=http`:
//! `http.request.method`). `/orders/N` calls `/inventory/N` of the same
//! app over `requests`; `/pay/N` logs the exception with
//! `logging.exception(...)` and re-raises it, so Flask logs "Exception on
//! /pay/N [GET]" as well: the span event calls it
//! `__main__.PaymentDeclined`, the two log records `PaymentDeclined` (the
//! reproduction of issue 16's grouping bug).
//!
//! The tests check through the public API that an order is one trace across
//! the `requests` hop (server → client → server) with the HTTP semantic
//! convention attributes and the resource the variables set, that the log
//! records carry their trace and span ids and are found on their trace, and
//! that the failures are one issue counted exactly once per failing request
//! (span event and both log records folded), with `app.py`'s frames in-app
//! and Flask's, Werkzeug's and the standard library's not.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Peer, artifact, check, free_port, wait_for_port};
use support::{TestServer, http_request};

const CLIENT: &str = "python (opentelemetry-instrument: flask, requests, logging)";
const SERVICE: &str = "py-shop";
const VERSION: &str = "2.1.0";
const ENVIRONMENT: &str = "compat";
/// The instrumentations' version, which the distro reports as
/// `telemetry.auto.version` (`peers/python-auto/requirements.txt`).
const AUTO_VERSION: &str = "0.66b1";
/// Orders placed (each one trace of three spans) and payments that fail
/// (each one occurrence, however many records report it).
const ORDERS: u64 = 3;
const FAILURES: u64 = 10;
/// Flask names server spans by method and route.
const ORDER_SPAN: &str = "GET /orders/<int:order>";
const INVENTORY_SPAN: &str = "GET /inventory/<int:order>";
const PAY_SPAN: &str = "GET /pay/<int:order>";
/// The exception as the span event and the log records name it, and the
/// bare name grouping compares.
const SPAN_TYPE: &str = "__main__.PaymentDeclined";
const LOG_TYPE: &str = "PaymentDeclined";
/// SIGTERM makes the app exit normally; the SDK flushes both batch
/// processors from `atexit`. A loaded CI machine gets slack.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Flushed data is queryable within a second and issues settle after 1 s;
/// this is slack for a loaded machine.
const STORED_TIMEOUT: Duration = Duration::from_secs(30);

/// One way of exporting, and the HTTP semantic conventions asked for.
struct Variant {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    protocol: &'static str,
    endpoint: fn(&TestServer) -> String,
    semconv: &'static Semconv,
}

/// The HTTP attribute names of one generation of the semantic conventions.
struct Semconv {
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`, when not the instrumentations' default.
    opt_in: Option<&'static str>,
    method: &'static str,
    status_code: &'static str,
    /// The server span's request path.
    path: &'static str,
    /// The client span's URL.
    url: &'static str,
}

/// The instrumentations' default: the conventions before HTTP went stable.
const OLD_HTTP: Semconv = Semconv {
    opt_in: None,
    method: "http.method",
    status_code: "http.status_code",
    path: "http.target",
    url: "http.url",
};
const STABLE_HTTP: Semconv = Semconv {
    opt_in: Some("http"),
    method: "http.request.method",
    status_code: "http.response.status_code",
    path: "url.path",
    url: "url.full",
};

#[test]
fn test_flask_under_opentelemetry_instrument_over_otlp_grpc() {
    run(&Variant {
        protocol: "grpc",
        endpoint: TestServer::otlp_grpc_base,
        semconv: &OLD_HTTP,
    });
}

#[test]
fn test_flask_under_opentelemetry_instrument_over_otlp_http_protobuf_stable_http_semconv() {
    run(&Variant {
        protocol: "http/protobuf",
        endpoint: TestServer::otlp_http_base,
        semconv: &STABLE_HTTP,
    });
}

fn run(variant: &Variant) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let port = free_port();
    let mut app = start_app(&server, variant, port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(addr, "the flask app");
    drive(addr, &app);
    app.terminate(STOP_TIMEOUT);
    let probe = Probe {
        server: &server,
        variant,
        app: app.output(),
    };
    for trace_id in probe.traces_rooted_at(ORDER_SPAN, ORDERS) {
        probe.check_order(&trace_id);
    }
    let payments = probe.traces_rooted_at(PAY_SPAN, FAILURES);
    for trace_id in &payments {
        probe.check_payment(trace_id);
    }
    probe.check_one_issue(&payments);
}

/// `opentelemetry-instrument python app.py`, configured by `OTEL_*` only.
/// The script runs through the venv's interpreter rather than its shebang:
/// `scripts/test` builds the venv in a scratch folder and moves it, which
/// leaves console scripts pointing at the old path.
fn start_app(server: &TestServer, variant: &Variant, port: u16) -> Peer {
    let python = artifact("ASHIATO_COMPAT_PYTHON_AUTO_PYTHON");
    let mut command = Command::new(&python);
    command
        .arg(artifact("ASHIATO_COMPAT_PYTHON_AUTO_INSTRUMENT"))
        .arg(&python)
        .arg(artifact("ASHIATO_COMPAT_PYTHON_AUTO_APP"));
    let endpoint = (variant.endpoint)(server);
    let resource = format!("service.version={VERSION},deployment.environment.name={ENVIRONMENT}");
    let port = port.to_string();
    let mut env = vec![
        ("PORT", port.as_str()),
        ("OTEL_SERVICE_NAME", SERVICE),
        ("OTEL_RESOURCE_ATTRIBUTES", resource.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", variant.protocol),
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "true"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
        // the venv's interpreter must not see the caller's user site
        ("PYTHONNOUSERSITE", "1"),
    ];
    if let Some(opt_in) = variant.semconv.opt_in {
        env.push(("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in));
    }
    Peer::spawn("opentelemetry-instrument python app.py", command, &env)
}

/// Places the orders, then the failing payments, one request at a time.
fn drive(addr: SocketAddr, app: &Peer) {
    let requests = (1..=ORDERS)
        .map(|order| (format!("/orders/{order}"), 200))
        .chain((1..=FAILURES).map(|order| (format!("/pay/{order}"), 500)));
    for (path, status) in requests {
        let response = http_request(addr, "GET", &path, &[], &[]);
        assert_eq!(
            response.status,
            status,
            "GET {path} answered {}: {}\n{}",
            response.status,
            response.text(),
            app.output()
        );
    }
}

/// What the checks of one run share: the server, the variant and what the
/// app printed (shown with every failure).
struct Probe<'a> {
    server: &'a TestServer,
    variant: &'a Variant,
    app: String,
}

impl Probe<'_> {
    /// Fails the named check, printing what ashiato stored and the app's output.
    fn check(&self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        let what = format!(
            "{} ({}): {what}",
            self.variant.protocol, self.variant.semconv.method
        );
        check(
            self.server,
            CLIENT,
            &what,
            ok,
            format_args!("{detail}\n{}", self.app),
        );
    }

    /// Polls `probe` until it answers, or fails the check `what`.
    fn poll<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + STORED_TIMEOUT;
        loop {
            if let Some(value) = probe() {
                return value;
            }
            if Instant::now() >= deadline {
                self.check(
                    what,
                    false,
                    format_args!("not seen within {STORED_TIMEOUT:?}"),
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ids of the `count` traces whose root span is `root_name`.
    fn traces_rooted_at(&self, root_name: &str, count: u64) -> Vec<String> {
        let path = format!("/api/v1/traces?service={SERVICE}&limit=100");
        self.poll(&format!("{count} traces rooted at {root_name:?}"), || {
            let listed = self.server.get_json(&path);
            let ids: Vec<String> = listed["traces"]
                .as_array()?
                .iter()
                .filter(|summary| summary["root_name"] == root_name)
                .filter_map(|summary| summary["trace_id"].as_str().map(str::to_owned))
                .collect();
            (ids.len() as u64 == count).then_some(ids)
        })
    }

    fn trace(&self, trace_id: &str, spans: usize) -> Vec<Value> {
        self.poll(&format!("trace {trace_id} with {spans} spans"), || {
            let (status, trace) = self.server.get(&format!("/api/v1/traces/{trace_id}"));
            let stored = trace["spans"].as_array().cloned().unwrap_or_default();
            (status == 200 && stored.len() >= spans).then_some(stored)
        })
    }

    fn logs(&self, trace_id: &str, count: usize) -> Vec<Value> {
        self.poll(&format!("{count} log records on trace {trace_id}"), || {
            let (status, body) = self
                .server
                .get(&format!("/api/v1/logs?trace_id={trace_id}"));
            let logs = body["logs"].as_array().cloned().unwrap_or_default();
            (status == 200 && logs.len() >= count).then_some(logs)
        })
    }

    /// The one span named `name` of kind `kind`.
    fn span<'s>(&self, spans: &'s [Value], name: &str, kind: &str) -> &'s Value {
        let found = spans
            .iter()
            .find(|span| span["name"] == name && span["kind"] == kind);
        match found {
            Some(span) => span,
            None => {
                self.check(&format!("a {kind} span {name:?}"), false, pretty(spans));
                unreachable!("check panics")
            }
        }
    }

    /// server `/orders` → `requests` client span → server `/inventory`:
    /// one trace with the resource from `OTEL_*`, the HTTP attributes of the
    /// variant's conventions, and the inventory's log record on its span.
    fn check_order(&self, trace_id: &str) {
        let spans = self.trace(trace_id, 3);
        let front = self.span(&spans, ORDER_SPAN, "server");
        let client = self.span(&spans, "GET", "client");
        let inventory = self.span(&spans, INVENTORY_SPAN, "server");
        let child_of = |child: &Value, parent: &Value| child["parent_span_id"] == parent["span_id"];
        self.check(
            "the requests hop joins one trace (server → client → server)",
            spans.len() == 3
                && front["parent_span_id"].is_null()
                && child_of(client, front)
                && child_of(inventory, client),
            pretty(&spans),
        );
        for span in &spans {
            self.check_resource(span);
        }
        let order = front["attributes"][self.variant.semconv.path]
            .as_str()
            .and_then(|path| path.strip_prefix("/orders/"))
            .unwrap_or_default()
            .to_owned();
        let semconv = self.variant.semconv;
        let expected = [
            (front, semconv.method, json!("GET")),
            (front, semconv.status_code, json!(200)),
            (front, "http.route", json!("/orders/<int:order>")),
            (inventory, semconv.method, json!("GET")),
            (inventory, semconv.status_code, json!(200)),
            (
                inventory,
                semconv.path,
                json!(format!("/inventory/{order}")),
            ),
            (client, semconv.method, json!("GET")),
            (client, semconv.status_code, json!(200)),
        ];
        for (span, key, value) in expected {
            self.check(
                &format!("{} attribute {key} = {value}", span["name"]),
                span["attributes"][key] == value,
                pretty(span),
            );
        }
        let url = client["attributes"][semconv.url]
            .as_str()
            .unwrap_or_default();
        self.check(
            &format!("client attribute {} is the inventory URL", semconv.url),
            url.starts_with("http://127.0.0.1:") && url.ends_with(&format!("/inventory/{order}")),
            pretty(client),
        );
        let logs = self.logs(trace_id, 1);
        let logged = logs.iter().any(|log| {
            log["body"] == format!("inventory checked for order {order}")
                && log["severity_text"] == "WARN"
                && log["span_id"] == inventory["span_id"]
                && log["resource"]["service.name"] == SERVICE
        });
        self.check(
            "the inventory's log record carries the inventory span's ids",
            logged,
            pretty(&logs),
        );
    }

    fn check_resource(&self, item: &Value) {
        let resource = &item["resource"];
        self.check(
            "resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES",
            resource["service.name"] == SERVICE
                && resource["service.version"] == VERSION
                && resource["deployment.environment.name"] == ENVIRONMENT
                && resource["telemetry.sdk.language"] == "python"
                && resource["telemetry.auto.version"] == AUTO_VERSION,
            pretty(resource),
        );
    }

    /// A failed payment: an ERROR server span with the exception event,
    /// and two ERROR log records on that span (the handler's
    /// `logging.exception` and Flask's "Exception on /pay/N [GET]").
    fn check_payment(&self, trace_id: &str) {
        let spans = self.trace(trace_id, 1);
        let pay = self.span(&spans, PAY_SPAN, "server");
        let event = pay["events"]
            .as_array()
            .and_then(|events| events.iter().find(|event| event["name"] == "exception"));
        self.check(
            "the failed payment's span has status error and the exception event",
            pay["status"]["code"] == "error"
                && pay["attributes"][self.variant.semconv.status_code] == json!(500)
                && event.is_some_and(|event| event["attributes"]["exception.type"] == SPAN_TYPE),
            pretty(pay),
        );
        self.check_resource(pay);
        let logs = self.logs(trace_id, 2);
        let errors: Vec<&Value> = logs
            .iter()
            .filter(|log| log["severity_text"] == "ERROR")
            .collect();
        let bodies: BTreeSet<&str> = errors
            .iter()
            .filter_map(|log| log["body"].as_str())
            .collect();
        let flask_line = bodies
            .iter()
            .any(|body| body.starts_with("Exception on /pay/"));
        let app_line = bodies
            .iter()
            .any(|body| body.starts_with("payment failed for order "));
        self.check(
            "both error log records of the payment carry its span's ids and the exception",
            errors.len() == 2
                && flask_line
                && app_line
                && errors.iter().all(|log| {
                    log["span_id"] == pay["span_id"]
                        && log["attributes"]["exception.type"] == LOG_TYPE
                        && log["attributes"]["exception.stacktrace"].is_string()
                }),
            pretty(&logs),
        );
    }

    /// Ten failing requests, each reported by a span event and two log
    /// records: exactly one issue, counted ten times, with `app.py`'s
    /// frames in-app and nothing from site-packages or the standard library.
    fn check_one_issue(&self, payments: &[String]) {
        let path = format!("/api/v1/issues?service={SERVICE}");
        let issues = self.poll(&format!("issues counting {FAILURES} failures"), || {
            let issues = self.server.get_json(&path)["issues"].as_array()?.clone();
            let counted: u64 = issues
                .iter()
                .filter_map(|issue| issue["count"].as_u64())
                .sum();
            (counted >= FAILURES).then_some(issues)
        });
        let [issue] = issues.as_slice() else {
            return self.check("one issue for one kind of failure", false, pretty(&issues));
        };
        self.check(
            "one occurrence per failing request, from the span and its logs",
            issue["count"] == FAILURES && issue["sources"] == json!(["span", "log"]),
            pretty(issue),
        );
        let title = issue["title"].as_str().unwrap_or_default();
        self.check(
            "the issue names the exception and its masked message",
            [SPAN_TYPE, LOG_TYPE]
                .iter()
                .any(|name| title == format!("{name}: card declined for order <num>")),
            pretty(issue),
        );
        let id = issue["id"].as_str().unwrap_or_default();
        let detail = self.server.get_json(&format!("/api/v1/issues/{id}"));
        self.check(
            "the fingerprint compares the bare type name",
            detail["fingerprint"]["components"]
                .as_array()
                .is_some_and(|components| components.contains(&json!("type=PaymentDeclined"))),
            pretty(&detail["fingerprint"]),
        );
        self.check_stack(&detail["stack"]);
        let sampled: BTreeSet<&str> = detail["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|sample| sample["trace_id"].as_str())
            .collect();
        let failed: BTreeSet<&str> = payments.iter().map(String::as_str).collect();
        self.check(
            "the samples are the failing requests' traces",
            sampled == failed,
            pretty(&detail["samples"]),
        );
    }

    /// Python frames: `charge` (raise) then `pay` in-app, from `app.py`;
    /// Flask, Werkzeug and OpenTelemetry frames (site-packages) not.
    fn check_stack(&self, stack: &Value) {
        let frames = stack.as_array().cloned().unwrap_or_default();
        let in_app: Vec<&str> = frames
            .iter()
            .filter(|frame| frame["in_app"] == true)
            .filter_map(|frame| frame["function"].as_str())
            .collect();
        let app_files = frames.iter().all(|frame| {
            let file = frame["file"].as_str().unwrap_or_default();
            let ours = file.ends_with("/app.py") && !file.contains("site-packages");
            frame["in_app"] == ours
        });
        let dependencies = frames
            .iter()
            .any(|frame| frame["module"] == "flask.app" && frame["in_app"] == false);
        self.check(
            "in-app frames are app.py's (charge, pay), flask's are not",
            in_app == ["charge", "pay"] && app_files && dependencies,
            pretty(stack),
        );
    }
}

fn pretty(value: &(impl serde::Serialize + ?Sized)) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
