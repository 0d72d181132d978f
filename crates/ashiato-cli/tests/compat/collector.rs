//! Compatibility test: the OpenTelemetry Collector in front of ashiato.
//!
//! The collector (core components at one release, built by
//! `peers/collector/setup.sh` from the Go module proxy) receives OTLP from
//! the Python SDK peers and forwards it to ashiato with its own sending
//! queue and retries, over OTLP gRPC in one variant and OTLP HTTP in the
//! other. The collector decodes and re-encodes every batch (and compresses
//! with gzip by default), so each check compares what arrived through it
//! with what the very same peer stores when it sends to ashiato directly:
//! nothing lost, nothing duplicated, every typed attribute, event, link,
//! status, kind and resource as sent, plausible times, logs still tied to
//! their spans, one issue occurrence per failing request. The crash tests
//! kill ashiato (SIGKILL) while the collector holds data in its retry
//! queue, start it again on the same data directory, and check that the
//! retries deliver everything exactly once. A restarted ashiato listens on
//! new ports and `serve` refuses a listener flag given twice (so
//! `TestServer::start_with` cannot pin one): a small relay on a fixed port
//! stands in front of it, as a load balancer would. The same relay drops
//! acknowledgements in the last test, so the collector resends batches
//! ashiato already took.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tempfile::TempDir;

use common::{Peer, artifact, check, free_port};
use support::{PeerPython, TestServer, run_peer};

const CLIENT: &str = "opentelemetry-collector 0.165.0";
/// Failing requests of each run of the errors peer.
const FAILING_REQUESTS: usize = 4;
/// Spans the errors peer makes per failing request (one log record each).
const SPANS_PER_FAILURE: usize = 3;
/// Spans and log records of the shop peer's trace.
const SHOP_SPANS: usize = 3;
const SHOP_LOGS: usize = 2;
/// The collector's own retry backoff plus gRPC's reconnect backoff after
/// ashiato was down can take a while on a loaded machine.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// A clean collector stop drains its sending queue first.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Collector log lines that mean data was lost or refused.
const LOSS_MARKERS: [&str; 3] = ["Dropping data", "Rejecting data", "Partial success"];

/// How the collector forwards to ashiato.
#[derive(Debug, Clone, Copy)]
enum Export {
    /// `otlp_grpc` exporter (gzip by default).
    Grpc,
    /// `otlp_http` exporter: protobuf over HTTP (gzip by default).
    Http,
}

impl Export {
    /// The ashiato listener this exporter talks to.
    fn listener(self, server: &TestServer) -> SocketAddr {
        match self {
            Export::Grpc => server.addrs.otlp_grpc,
            Export::Http => server.addrs.otlp_http,
        }
    }

    /// The exporter's name and its endpoint lines in the collector config.
    fn exporter(self, target: SocketAddr) -> (&'static str, String) {
        match self {
            Export::Grpc => (
                "otlp_grpc",
                format!("    endpoint: {target}\n    tls:\n      insecure: true\n"),
            ),
            Export::Http => ("otlp_http", format!("    endpoint: http://{target}\n")),
        }
    }

    /// The protocol the shop peer uses to reach the collector: the other
    /// one, so each variant crosses both transports.
    fn client_protocol(self) -> &'static str {
        match self {
            Export::Grpc => "http/protobuf",
            Export::Http => "grpc",
        }
    }
}

/// The collector configuration: OTLP in on two free ports, memory limiter
/// and batching, one exporter with its queue and retries switched on and
/// its compression left at the default (gzip). The export timeout is
/// raised from 5 s: on a loaded CI machine a slow acknowledgement would
/// make the collector send the batch again, and ashiato stores a resent
/// batch's log records twice (see docs/compatibility.md); the crash tests
/// cover retries.
fn collector_config(
    receiver_grpc: SocketAddr,
    receiver_http: SocketAddr,
    exporter: (&str, String),
) -> String {
    let (name, endpoint) = exporter;
    let pipeline = format!(
        "      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [{name}]\n"
    );
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {receiver_grpc}
      http:
        endpoint: {receiver_http}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
  batch:
    timeout: 200ms
exporters:
  {name}:
{endpoint}    timeout: 30s
    sending_queue:
      enabled: true
      num_consumers: 2
      queue_size: 1000
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 2s
      max_elapsed_time: 10m
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
{pipeline}    logs:
{pipeline}"
    )
}

/// A running collector with its config in a temp dir.
struct Collector {
    process: Peer,
    grpc: SocketAddr,
    http: SocketAddr,
    _dir: TempDir,
}

impl Collector {
    fn start(export: Export, target: SocketAddr) -> Collector {
        let dir = tempfile::tempdir().expect("collector temp dir");
        let grpc = loopback(free_port());
        let http = loop {
            let http = loopback(free_port());
            if http != grpc {
                break http;
            }
        };
        let config: PathBuf = dir.path().join("config.yaml");
        let text = collector_config(grpc, http, export.exporter(target));
        std::fs::write(&config, text).expect("write collector config");
        let mut command = Command::new(artifact("ASHIATO_COMPAT_COLLECTOR_BIN"));
        command
            .arg("--config")
            .arg(format!("file:{}", config.display()));
        let collector = Collector {
            process: Peer::spawn("otelcol", command, &[]),
            grpc,
            http,
            _dir: dir,
        };
        for addr in [grpc, http] {
            eventually(
                &format!("the collector listening on {addr}"),
                || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok(),
                || collector.process.output(),
            );
        }
        collector
    }

    /// The OTLP endpoint of the collector's receiver for a client protocol.
    fn endpoint(&self, protocol: &str) -> String {
        match protocol {
            "grpc" => format!("http://{}", self.grpc),
            _ => format!("http://{}", self.http),
        }
    }

    /// SIGTERM: the collector stops receiving and drains its queue before
    /// it exits, so whatever ashiato holds afterwards is final.
    fn drain(&mut self) {
        self.process.terminate(DRAIN_TIMEOUT);
    }

    /// Lines of the collector's log that report lost or refused data.
    fn losses(&self) -> Vec<String> {
        self.process
            .output()
            .lines()
            .filter(|line| LOSS_MARKERS.iter().any(|marker| line.contains(marker)))
            .map(str::to_owned)
            .collect()
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Polls until `poll` gives a value; on timeout panics with `context()`.
fn eventually<T>(
    what: &str,
    mut poll: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        if let Some(value) = poll() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{CLIENT}: timed out after {DELIVERY_TIMEOUT:?} waiting for {what}\n{}",
            context()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the shop peer (3 spans, 2 log records) and returns its trace id.
fn send_shop(endpoint: &str, protocol: &str) -> String {
    let trace_id = run_peer(
        PeerPython::Proto,
        "otel_shop.py",
        &[
            ("PEER_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ],
    );
    assert_eq!(trace_id.len(), 32, "shop peer printed {trace_id:?}");
    trace_id
}

/// Runs the errors peer over gRPC: `FAILING_REQUESTS` failing requests,
/// one trace id each.
fn send_failures(endpoint: &str) -> Vec<String> {
    let count = FAILING_REQUESTS.to_string();
    let output = run_peer(
        PeerPython::Proto,
        "otel_errors.py",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("PEER_SCENARIO", "requests"),
            ("PEER_COUNT", count.as_str()),
        ],
    );
    let traces: Vec<String> = output.lines().map(str::to_owned).collect();
    assert_eq!(
        traces.len(),
        FAILING_REQUESTS,
        "errors peer printed {output:?}"
    );
    traces
}

/// What one peer run sent: the shop trace and the failing requests.
struct Sent {
    shop: String,
    failures: Vec<String>,
}

impl Sent {
    fn traces(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.shop).chain(&self.failures)
    }

    /// Spans and log records each trace must hold.
    fn expected(&self) -> impl Iterator<Item = (&String, usize, usize)> {
        std::iter::once((&self.shop, SHOP_SPANS, SHOP_LOGS)).chain(
            self.failures
                .iter()
                .map(|trace| (trace, SPANS_PER_FAILURE, 1)),
        )
    }
}

fn send_all(shop_endpoint: &str, protocol: &str, grpc_endpoint: &str) -> Sent {
    Sent {
        shop: send_shop(shop_endpoint, protocol),
        failures: send_failures(grpc_endpoint),
    }
}

fn spans(server: &TestServer, trace_id: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/api/v1/traces/{trace_id}"));
    if status != 200 {
        return Vec::new();
    }
    body["spans"].as_array().cloned().unwrap_or_default()
}

fn logs(server: &TestServer, query: &str) -> Vec<Value> {
    server.get_json(&format!("/api/v1/logs?limit=1000&{query}"))["logs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn issues(server: &TestServer) -> Vec<Value> {
    server.get_json("/api/v1/issues")["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Each issue's service and occurrence count, sorted by service.
fn issue_counts(server: &TestServer) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = issues(server)
        .iter()
        .map(|issue| {
            let service = issue["service"].as_str().unwrap_or_default().to_owned();
            (service, issue["count"].as_u64().unwrap_or(0))
        })
        .collect();
    counts.sort();
    counts
}

/// The issues the runs must make: one occurrence per failing request,
/// of one issue per peer (the shop peer's failing span is one as well).
fn expected_issues(sent: &[&Sent]) -> Vec<(String, u64)> {
    let runs = sent.len() as u64;
    vec![
        ("peer-orders".to_owned(), runs * FAILING_REQUESTS as u64),
        ("peer-shop".to_owned(), runs),
    ]
}

/// Each service's stored span count, sorted by service. Unlike a trace's
/// spans (which the query side deduplicates by span id) it counts every
/// stored copy, so a batch delivered twice shows here.
fn service_span_counts(server: &TestServer) -> Vec<(String, u64)> {
    let services = server.get_json("/api/v1/services");
    let mut counts: Vec<(String, u64)> = services["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|service| {
            let name = service["name"].as_str().unwrap_or_default().to_owned();
            (name, service["span_count"].as_u64().unwrap_or(0))
        })
        .collect();
    counts.sort();
    counts
}

fn expected_service_spans(sent: &[&Sent]) -> Vec<(String, u64)> {
    let runs = sent.len() as u64;
    vec![
        (
            "peer-orders".to_owned(),
            runs * (FAILING_REQUESTS * SPANS_PER_FAILURE) as u64,
        ),
        ("peer-shop".to_owned(), runs * SHOP_SPANS as u64),
    ]
}

/// Waits until every trace and log record of `sent` is stored and every
/// failure was counted.
fn wait_for_delivery(server: &TestServer, sent: &[&Sent], context: impl Fn() -> String) {
    for run in sent {
        for (trace, span_count, log_count) in run.expected() {
            eventually(
                &format!("{span_count} spans and {log_count} logs of trace {trace}"),
                || {
                    (spans(server, trace).len() >= span_count
                        && logs(server, &format!("trace_id={trace}")).len() >= log_count)
                        .then_some(())
                },
                &context,
            );
        }
    }
    let expected = expected_issues(sent);
    eventually(
        &format!("issue occurrences {expected:?}"),
        || {
            let counts = issue_counts(server);
            let reached = counts.len() >= expected.len()
                && expected.iter().all(|wanted| {
                    counts
                        .iter()
                        .any(|got| got.0 == wanted.0 && got.1 >= wanted.1)
                });
            reached.then_some(())
        },
        || {
            let stored = serde_json::to_string_pretty(&common::stored(server)).unwrap_or_default();
            format!("{}\n--- what ashiato stored ---\n{stored}", context())
        },
    );
}

/// Nothing lost, nothing duplicated: every trace holds exactly its spans
/// and log records, nothing else was stored (per-service span counts see
/// every stored copy), and the failing requests are exactly as many
/// occurrences of one issue per peer.
fn assert_exactly_once(server: &TestServer, collector: &Collector, sent: &[&Sent]) {
    assert_traces_whole(server, sent);
    assert_logs_once(server, sent);
    let (stored, expected) = (service_span_counts(server), expected_service_spans(sent));
    check(
        server,
        CLIENT,
        "every span stored once (span counts per service)",
        stored == expected,
        format!("(service, spans) stored {stored:?}, expected {expected:?}"),
    );
    assert_issues_once(server, sent);
    assert_no_losses(server, collector);
}

/// Each trace shows exactly its spans, and no other trace was stored.
fn assert_traces_whole(server: &TestServer, sent: &[&Sent]) {
    for (trace, span_count, _) in sent.iter().flat_map(|run| run.expected()) {
        let stored = spans(server, trace).len();
        check(
            server,
            CLIENT,
            &format!("trace {trace} holds its {span_count} spans"),
            stored == span_count,
            format!("{stored} spans"),
        );
    }
    let traces: usize = sent.iter().map(|run| run.traces().count()).sum();
    let listed = server.get_json("/api/v1/traces?limit=1000")["traces"]
        .as_array()
        .map_or(0, Vec::len);
    check(
        server,
        CLIENT,
        "no trace stored but the ones sent",
        listed == traces,
        format!("{listed} traces listed, {traces} sent"),
    );
}

/// Each trace has exactly its log records, and no other record was stored.
fn assert_logs_once(server: &TestServer, sent: &[&Sent]) {
    for (trace, _, log_count) in sent.iter().flat_map(|run| run.expected()) {
        let stored = logs(server, &format!("trace_id={trace}"));
        check(
            server,
            CLIENT,
            &format!("trace {trace} has its {log_count} log records once"),
            stored.len() == log_count,
            format!("{stored:#?}"),
        );
    }
    let records: usize = sent
        .iter()
        .flat_map(|run| run.expected())
        .map(|(_, _, logs)| logs)
        .sum();
    let all = logs(server, "");
    check(
        server,
        CLIENT,
        "no log record stored but the ones sent",
        all.len() == records,
        format!("{} records stored, {records} sent", all.len()),
    );
}

fn assert_issues_once(server: &TestServer, sent: &[&Sent]) {
    let (counts, expected) = (issue_counts(server), expected_issues(sent));
    check(
        server,
        CLIENT,
        "one issue per peer, one occurrence per failing request",
        counts == expected,
        format!("issues (service, count) {counts:?}, expected {expected:?}"),
    );
}

fn assert_no_losses(server: &TestServer, collector: &Collector) {
    let losses = collector.losses();
    check(
        server,
        CLIENT,
        "the collector reports no lost or refused data",
        losses.is_empty(),
        losses.join("\n"),
    );
}

/// A span without what differs between two runs of the same peer (ids and
/// times); its parent is named instead of identified, so the tree shape
/// is compared as well.
fn span_shape(span: &Value, names: &HashMap<&str, &str>) -> Value {
    let mut shape = span.clone();
    let object = shape.as_object_mut().expect("span is an object");
    for key in ["span_id", "start_time_unix_nano", "duration_ns"] {
        object.remove(key);
    }
    without_instance_id(object);
    let parent = span["parent_span_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(|id| names.get(id).copied().unwrap_or("<parent not in trace>"));
    object.insert("parent_span_id".into(), json!(parent));
    for event in object["events"].as_array_mut().into_iter().flatten() {
        event
            .as_object_mut()
            .map(|event| event.remove("time_unix_nano"));
    }
    shape
}

/// The SDK's `service.instance.id` is new in every process.
fn without_instance_id(object: &mut serde_json::Map<String, Value>) {
    if let Some(resource) = object.get_mut("resource").and_then(Value::as_object_mut) {
        resource.remove("service.instance.id");
    }
}

fn span_names(spans: &[Value]) -> HashMap<&str, &str> {
    spans
        .iter()
        .filter_map(|span| Some((span["span_id"].as_str()?, span["name"].as_str()?)))
        .collect()
}

/// A trace and its log records as comparable shapes, sorted by name/body.
fn trace_shape(server: &TestServer, trace_id: &str) -> Value {
    let spans = spans(server, trace_id);
    let names = span_names(&spans);
    let mut shaped: Vec<Value> = spans.iter().map(|span| span_shape(span, &names)).collect();
    shaped.sort_by_key(|span| span.to_string());
    let mut logs: Vec<Value> = logs(server, &format!("trace_id={trace_id}"))
        .into_iter()
        .map(|mut log| {
            let span = log["span_id"]
                .as_str()
                .map(|id| names.get(id).copied().unwrap_or("<span not in trace>"));
            let object = log.as_object_mut().expect("log is an object");
            object.remove("time_unix_nano");
            object.remove("trace_id");
            without_instance_id(object);
            object.insert("span_id".into(), json!(span));
            log
        })
        .collect();
    logs.sort_by_key(|log| log.to_string());
    json!({"spans": shaped, "logs": logs})
}

/// An issue without its times and hourly counts.
fn issue_shape(issue: &Value) -> Value {
    let mut shape = issue.clone();
    if let Some(object) = shape.as_object_mut() {
        for key in ["id", "first_seen", "last_seen", "hourly_24h"] {
            object.remove(key);
        }
    }
    shape
}

fn issue_shapes(server: &TestServer) -> Vec<Value> {
    issues(server).iter().map(issue_shape).collect()
}

/// What came through the collector equals what the same peer stores
/// when it sends directly: the shop trace and logs, each failing request's
/// trace and log, and the issue they make.
fn assert_as_sent(server: &TestServer, via: &Sent, direct_server: &TestServer, direct: &Sent) {
    let pairs =
        std::iter::once((&via.shop, &direct.shop)).chain(via.failures.iter().zip(&direct.failures));
    for (through, reference) in pairs {
        let got = trace_shape(server, through);
        let wanted = trace_shape(direct_server, reference);
        check(
            server,
            CLIENT,
            &format!(
                "trace {through} and its logs as sent (compared with the same peer sent directly)"
            ),
            got == wanted,
            difference(&got, &wanted),
        );
    }
    let got = issue_shapes(server);
    let wanted = issue_shapes(direct_server);
    check(
        server,
        CLIENT,
        "the issue as when sent directly",
        got == wanted,
        difference(&json!(got), &json!(wanted)),
    );
}

/// Values the shop peer sets, each checked on its own too: comparing with
/// the direct path alone would pass if both lost the same thing.
fn shop_values() -> Vec<(&'static str, &'static str, Value)> {
    let root = "GET /orders/{id}";
    vec![
        (root, "/kind", json!("server")),
        (root, "/attributes/http.request.method", json!("GET")),
        (root, "/attributes/http.response.status_code", json!(200)),
        (root, "/attributes/ratio", json!(0.25)),
        (root, "/attributes/cache.hit", json!(true)),
        (root, "/attributes/tags", json!(["a", "b"])),
        (root, "/attributes/retry.counts", json!([1, 2, 3])),
        (root, "/resource/service.version", json!("2.0.1")),
        (root, "/resource/deployment.environment.name", json!("test")),
        (root, "/scope/version", json!("0.3.0")),
        (root, "/parent_span_id", Value::Null),
        ("SELECT orders", "/kind", json!("client")),
        ("SELECT orders", "/events/0/name", json!("cache.miss")),
        ("SELECT orders", "/events/0/attributes/attempt", json!(2)),
        (
            "SELECT orders",
            "/links/0/trace_id",
            json!("0af7651916cd43dd8448eb211c80319c"),
        ),
        (
            "SELECT orders",
            "/links/0/span_id",
            json!("b7ad6b7169203331"),
        ),
        (
            "SELECT orders",
            "/links/0/attributes/link.kind",
            json!("follows"),
        ),
        ("charge card", "/kind", json!("internal")),
        ("charge card", "/status/code", json!("error")),
        (
            "charge card",
            "/status/message",
            json!("ValueError: card declined"),
        ),
        (
            "charge card",
            "/events/0/attributes/exception.type",
            json!("ValueError"),
        ),
    ]
}

fn assert_shop_values(server: &TestServer, trace_id: &str) {
    let spans = spans(server, trace_id);
    for (name, pointer, wanted) in shop_values() {
        let span = spans.iter().find(|span| span["name"] == name);
        let got = span.and_then(|span| span.pointer(pointer));
        check(
            server,
            CLIENT,
            &format!("span {name:?} {pointer} is {wanted}"),
            got == Some(&wanted),
            format!("got {got:?}"),
        );
    }
}

fn difference(got: &Value, wanted: &Value) -> String {
    format!(
        "--- through the collector ---\n{}\n--- sent directly ---\n{}",
        serde_json::to_string_pretty(got).unwrap_or_default(),
        serde_json::to_string_pretty(wanted).unwrap_or_default()
    )
}

fn nanos(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

fn now_nanos() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("nanoseconds fit u64")
}

/// Times survived re-encoding: every span, event and log record lies
/// within the test's run, and every child span within its parent.
fn assert_times(server: &TestServer, sent: &Sent, window: (u64, u64)) {
    let within = |time: u64| window.0 <= time && time <= window.1;
    for trace in sent.traces() {
        let spans = spans(server, trace);
        let by_id: HashMap<&str, &Value> = spans
            .iter()
            .filter_map(|span| Some((span["span_id"].as_str()?, span)))
            .collect();
        for span in &spans {
            let start = nanos(&span["start_time_unix_nano"]);
            let end = start + nanos(&span["duration_ns"]);
            check(
                server,
                CLIENT,
                "span times within the run",
                within(start) && within(end),
                span,
            );
            let events = span["events"].as_array().into_iter().flatten();
            for event in events {
                let time = nanos(&event["time_unix_nano"]);
                check(
                    server,
                    CLIENT,
                    "event time within its span",
                    start <= time && time <= end,
                    event,
                );
            }
            let parent = span["parent_span_id"].as_str().and_then(|id| by_id.get(id));
            if let Some(parent) = parent {
                let parent_start = nanos(&parent["start_time_unix_nano"]);
                let parent_end = parent_start + nanos(&parent["duration_ns"]);
                check(
                    server,
                    CLIENT,
                    "child span within its parent",
                    parent_start <= start && end <= parent_end,
                    span,
                );
            }
        }
        for log in logs(server, &format!("trace_id={trace}")) {
            check(
                server,
                CLIENT,
                "log time within the run",
                within(nanos(&log["time_unix_nano"])),
                &log,
            );
        }
    }
}

/// One variant: the peers send through a collector exporting with
/// `export`, and the same peers send directly to a second server.
fn through_collector(export: Export) {
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let direct_server = TestServer::start_with(&["--error-settle", "1s"]);
    let mut collector = Collector::start(export, export.listener(&server));
    let started = now_nanos();
    let protocol = export.client_protocol();
    let via = send_all(
        &collector.endpoint(protocol),
        protocol,
        &collector.endpoint("grpc"),
    );
    let direct_grpc = direct_server.otlp_grpc_base();
    let direct = send_all(&direct_grpc, "grpc", &direct_grpc);
    wait_for_delivery(&server, &[&via], || collector.process.output());
    wait_for_delivery(&direct_server, &[&direct], String::new);
    collector.drain();
    let window = (started, now_nanos());

    assert_exactly_once(&server, &collector, &[&via]);
    assert_as_sent(&server, &via, &direct_server, &direct);
    assert_shop_values(&server, &via.shop);
    assert_times(&server, &via, window);
}

#[test]
fn test_otlp_grpc_exporter_delivers_everything_once_as_sent() {
    through_collector(Export::Grpc);
}

#[test]
fn test_otlp_http_exporter_delivers_everything_once_as_sent() {
    through_collector(Export::Http);
}

/// A fixed loopback address in front of ashiato's OTLP listener: the
/// collector's exporter endpoint is fixed in its config, while ashiato,
/// started again after a crash, listens on new ports. New connections go
/// to wherever ashiato listens now; while it is down they are turned away
/// (closed at once, as a refused connection would be).
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    turned_away: Arc<AtomicUsize>,
    /// Connections still to come whose answer is dropped.
    to_drop: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let relay = Relay {
            addr,
            target: Arc::new(Mutex::new(Some(target))),
            turned_away: Arc::new(AtomicUsize::new(0)),
            to_drop: Arc::new(AtomicUsize::new(0)),
            dropped: Arc::new(AtomicUsize::new(0)),
        };
        let target = relay.target.clone();
        let turned_away = relay.turned_away.clone();
        let (to_drop, dropped) = (relay.to_drop.clone(), relay.dropped.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = target
                    .lock()
                    .expect("relay target")
                    .and_then(|addr| TcpStream::connect(addr).ok());
                let Some(upstream) = upstream else {
                    turned_away.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let drop_answer = to_drop
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        left.checked_sub(1)
                    })
                    .is_ok();
                if drop_answer {
                    pipe_dropping_answer(client, upstream, dropped.clone());
                } else {
                    pipe(client, upstream);
                }
            }
        });
        relay
    }

    /// The next `count` connections lose ashiato's first answer.
    fn drop_answers(&self, count: usize) {
        self.to_drop.store(count, Ordering::SeqCst);
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    fn point_to(&self, target: Option<SocketAddr>) {
        *self.target.lock().expect("relay target") = target;
    }

    fn turned_away(&self) -> usize {
        self.turned_away.load(Ordering::SeqCst)
    }
}

/// Copies both ways; when either side ends, both sockets close, so a
/// crashed ashiato looks like a dropped connection to the collector.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    match (client.try_clone(), upstream.try_clone()) {
        (Ok(client_reader), Ok(upstream_reader)) => {
            copy(client_reader, upstream);
            copy(upstream_reader, client);
        }
        _ => {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

/// Forwards what the client sends, but once ashiato answers (so it has
/// taken the batch) closes both sockets instead of passing the answer on:
/// the client never sees the acknowledgement and sends the batch again.
/// Meant for HTTP/1.1, where the first bytes ashiato sends are the answer.
fn pipe_dropping_answer(client: TcpStream, mut upstream: TcpStream, dropped: Arc<AtomicUsize>) {
    let (Ok(mut client_reader), Ok(mut upstream_writer)) =
        (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    thread::spawn(move || {
        let _ = io::copy(&mut client_reader, &mut upstream_writer);
    });
    thread::spawn(move || {
        let mut answer = [0u8; 1];
        if upstream.read(&mut answer).is_ok_and(|read| read > 0) {
            dropped.fetch_add(1, Ordering::SeqCst);
        }
        let _ = upstream.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
    });
}

/// ashiato is killed (SIGKILL) after a first delivery; the collector
/// acknowledges a second run of the peers and holds it in its queue,
/// retrying, until ashiato is started again on the same data directory.
/// Both runs must then be stored exactly once.
fn across_a_crash(export: Export) {
    let mut server = TestServer::start_with(&["--error-settle", "1s"]);
    let relay = Relay::start(export.listener(&server));
    let mut collector = Collector::start(export, relay.addr);
    let endpoint = collector.endpoint("grpc");

    let before = send_all(&endpoint, "grpc", &endpoint);
    wait_for_delivery(&server, &[&before], || collector.process.output());

    server.kill9();
    relay.point_to(None);
    // the collector acknowledged these: from now on only its queue has them
    let during = send_all(&endpoint, "grpc", &endpoint);
    eventually(
        "the collector to retry",
        || {
            (relay.turned_away() > 0 && collector.process.output().contains("Will retry"))
                .then_some(())
        },
        || collector.process.output(),
    );

    server.start_again();
    relay.point_to(Some(export.listener(&server)));
    wait_for_delivery(&server, &[&before, &during], || collector.process.output());
    collector.drain();
    assert_exactly_once(&server, &collector, &[&before, &during]);
    for run in [&before, &during] {
        assert_shop_values(&server, &run.shop);
    }
}

#[test]
fn test_otlp_grpc_exporter_retries_deliver_exactly_once_across_an_ashiato_crash() {
    across_a_crash(Export::Grpc);
}

#[test]
fn test_otlp_http_exporter_retries_deliver_exactly_once_across_an_ashiato_crash() {
    across_a_crash(Export::Http);
}

/// ashiato takes the first batches but their acknowledgements are lost
/// (the connection drops before the collector reads the answer), so the
/// collector sends the same batches again: what an export timeout or a
/// load balancer's reset causes. ashiato acknowledges the resent bodies
/// again without storing them again, so everything is exactly once: spans
/// per trace and per service, log records, issue counts.
#[test]
fn test_otlp_http_exporter_resends_after_a_lost_acknowledgement_count_once() {
    let export = Export::Http;
    let server = TestServer::start_with(&["--error-settle", "1s"]);
    let relay = Relay::start(export.listener(&server));
    // the traces and the logs exporter each open a connection
    relay.drop_answers(2);
    let mut collector = Collector::start(export, relay.addr);
    let endpoint = collector.endpoint("grpc");
    let sent = send_all(&endpoint, "grpc", &endpoint);
    wait_for_delivery(&server, &[&sent], || collector.process.output());
    eventually(
        "two dropped acknowledgements and the collector's resend",
        || {
            (relay.dropped() >= 2 && collector.process.output().contains("Will retry"))
                .then_some(())
        },
        || collector.process.output(),
    );
    collector.drain();
    assert_exactly_once(&server, &collector, &[&sent]);
    assert_shop_values(&server, &sent.shop);
}
