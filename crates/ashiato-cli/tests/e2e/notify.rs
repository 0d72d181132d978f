//! Notifications that cannot hurt the server: an alert storm against a
//! webhook that accepts connections and never answers leaves ingest and
//! queries about as fast as on a quiet server with a bounded thread count;
//! a storm becomes one digest; a delivery retrying when the server stops
//! arrives once after the restart; webhook urls never show in full.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{TestServer, http_request};

/// Waits longer than `wait_until`: retries back off by seconds.
fn wait_long<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64)
}

/// `index` in letters: error types that normalisation cannot merge.
fn letters(mut index: usize) -> String {
    let mut out = String::new();
    loop {
        out.push(char::from(b'a' + (index % 26) as u8));
        index /= 26;
        if index == 0 {
            return out;
        }
    }
}

/// One failing root span per error, each its own trace and its own issue.
fn error_batch(first: usize, count: usize, service: &str) -> Vec<u8> {
    let now = now_ns();
    let spans: Vec<Value> = (first..first + count)
        .map(|index| {
            let kind = format!("Storm{}Error", letters(index));
            json!({
                "traceId": format!("{:032x}", 0x5707_0000_0000 + index as u64),
                "spanId": format!("{:016x}", 0x1000 + index as u64),
                "name": "GET /orders",
                "kind": 2,
                "startTimeUnixNano": (now - 2_000_000).to_string(),
                "endTimeUnixNano": now.to_string(),
                "status": {"code": 2, "message": "boom"},
                "events": [{
                    "name": "exception",
                    "timeUnixNano": now.to_string(),
                    "attributes": [
                        {"key": "exception.type", "value": {"stringValue": kind}},
                        {"key": "exception.message", "value": {"stringValue": "order not found"}},
                    ],
                }],
            })
        })
        .collect();
    otlp_body(service, spans)
}

/// A batch of healthy spans in one trace: the "large export" of the test.
fn large_batch(count: usize, round: usize) -> Vec<u8> {
    let now = now_ns();
    let spans: Vec<Value> = (0..count)
        .map(|index| {
            json!({
                "traceId": format!("{:032x}", 0xb16_0000 + round as u64),
                "spanId": format!("{:016x}", 0x1 + index as u64),
                "name": format!("SELECT items {}", index % 40),
                "kind": 3,
                "startTimeUnixNano": (now - 1_000_000).to_string(),
                "endTimeUnixNano": now.to_string(),
                "attributes": [{"key": "db.system", "value": {"stringValue": "postgresql"}}],
            })
        })
        .collect();
    otlp_body("catalog", spans)
}

fn otlp_body(service: &str, spans: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "deployment.environment", "value": {"stringValue": "test"}},
        ]},
        "scopeSpans": [{"scope": {"name": "storm"}, "spans": spans}],
    }]}))
    .expect("serialize spans")
}

fn post_spans(server: &TestServer, body: &[u8]) -> Duration {
    let started = Instant::now();
    let response = http_request(
        server.addrs.otlp_http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    started.elapsed()
}

fn get_services(server: &TestServer) -> Duration {
    let started = Instant::now();
    let response = http_request(server.addrs.http, "GET", "/api/v1/services", &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Median latencies of a services query and of a 3,000-span export.
fn latencies(server: &TestServer, round: usize) -> (Duration, Duration) {
    const SAMPLES: usize = 7;
    let mut queries = Vec::new();
    let mut exports = Vec::new();
    for sample in 0..SAMPLES {
        queries.push(get_services(server));
        exports.push(post_spans(
            server,
            &large_batch(3_000, round * SAMPLES + sample),
        ));
    }
    (median(queries), median(exports))
}

fn threads(server: &TestServer) -> usize {
    let pid = server.pid().expect("server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("Threads line")
}

fn notifications(server: &TestServer) -> Vec<Value> {
    server.get_json("/api/v1/notifications")["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A webhook endpoint that accepts every connection and never answers
/// (the sockets are kept open, unread).
struct Silent {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent endpoint");
        let addr = listener.local_addr().expect("silent endpoint address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            let mut open = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        });
        Silent { addr, accepted }
    }
}

/// A webhook endpoint on a given address that records JSON bodies and
/// answers 200.
struct Answering {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Answering {
    fn start(listener: TcpListener) -> Answering {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = recorded.clone();
                thread::spawn(move || serve(stream, &recorded));
            }
        });
        Answering { bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// Answers every request on a (keep-alive) connection with 200.
fn serve(stream: TcpStream, recorded: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(value) = serde_json::from_slice(&body) {
            recorded.lock().expect("lock").push(value);
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn test_storm_against_a_silent_webhook_leaves_ingest_and_queries_fast() {
    let silent = Silent::start();
    let url = format!("http://{}/services/T000/B000/SECRETPATH", silent.addr);
    let server = TestServer::start_with(&["--error-settle", "1s", "--webhook", &url]);

    // a quiet server: a few exports first so caches and pools are warm
    latencies(&server, 0);
    let (quiet_query, quiet_export) = latencies(&server, 1);
    let quiet_threads = threads(&server);

    // the storm: 2,000 distinct new errors
    for first in (0..2_000).step_by(500) {
        post_spans(&server, &error_batch(first, 500, "storm"));
    }
    // the first deliveries hang on the silent endpoint, the rest is held
    wait_long(
        "a delivery hanging on the silent endpoint",
        Duration::from_secs(60),
        || (silent.accepted.load(Ordering::SeqCst) >= 1).then_some(()),
    );
    let individual = wait_long(
        "the storm threshold's individual deliveries",
        Duration::from_secs(60),
        || {
            let list = notifications(&server);
            (list.len() >= 10).then_some(list)
        },
    );
    let (storm_query, storm_export) = latencies(&server, 2);
    let storm_threads = threads(&server);

    eprintln!(
        "quiet: services {quiet_query:?}, export {quiet_export:?}, {quiet_threads} threads; \
         storm: services {storm_query:?}, export {storm_export:?}, {storm_threads} threads"
    );
    let allowed = |quiet: Duration| (quiet * 2).max(quiet + Duration::from_millis(500));
    assert!(
        storm_query <= allowed(quiet_query),
        "GET /api/v1/services: median {storm_query:?} in the storm, {quiet_query:?} quiet"
    );
    assert!(
        storm_export <= allowed(quiet_export),
        "3,000-span export: median {storm_export:?} in the storm, {quiet_export:?} quiet"
    );
    // one sender thread for the webhook and one intake thread, whatever
    // the number of issues (it was 520 threads before)
    assert!(
        storm_threads <= quiet_threads + 8,
        "threads: {storm_threads} in the storm, {quiet_threads} quiet"
    );
    // the default storm threshold: 10 messages, the other 1,990 issues wait
    // for one digest at the end of the 5-minute window
    let list = notifications(&server);
    assert_eq!(list.len(), 10, "{list:#?}");
    assert_eq!(individual.len(), 10);
    for delivery in &list {
        assert_eq!(delivery["event"], "new_issue", "{delivery}");
        assert_ne!(delivery["status"], "delivered", "{delivery}");
        // the url is a secret: scheme and host only
        assert_eq!(
            delivery["url"],
            format!("http://{}/…", silent.addr),
            "{delivery}"
        );
    }
    let logs = server.stderr();
    assert!(!logs.contains("SECRETPATH"), "webhook path in the log");
    assert!(logs.contains("alert storm"), "{logs}");
}

#[test]
fn test_storm_becomes_one_digest() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let receiver = Answering::start(listener);
    let url = format!("http://{addr}/hook");
    let server = TestServer::start_with(&[
        "--error-settle",
        "1s",
        "--webhook",
        &url,
        "--notify-storm-threshold",
        "2",
        "--notify-storm-window",
        "3s",
        "--public-url",
        "https://ashiato.example.com",
    ]);
    post_spans(&server, &error_batch(0, 6, "<!channel>"));
    let bodies = wait_long("two messages and a digest", Duration::from_secs(60), || {
        let bodies = receiver.bodies();
        (bodies.len() >= 3).then_some(bodies)
    });
    let events: Vec<&str> = bodies
        .iter()
        .map(|body| body["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(events, ["new_issue", "new_issue", "digest"], "{bodies:#?}");
    let digest = &bodies[2];
    assert_eq!(digest["summary"], "4 new issues in 3s", "{digest}");
    assert_eq!(digest["new_issues"], 4);
    assert_eq!(digest["url"], "https://ashiato.example.com/issues");
    assert_eq!(digest["top"].as_array().map(Vec::len), Some(4));
    assert_eq!(digest["top"][0]["service"], "<!channel>");
    let list = notifications(&server);
    assert_eq!(list.len(), 3, "{list:#?}");
    assert_eq!(list[0]["event"], "digest");
    assert_eq!(list[0]["issue_id"], Value::Null);
    for delivery in &list {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["url"], format!("http://{addr}/…"));
    }
    // nothing more comes
    thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.bodies().len(), 3);
}

#[test]
fn test_delivery_retrying_at_restart_arrives_once() {
    // a port with nothing listening: connections are refused
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("reserve a port");
    let url = format!("http://{addr}/hook");
    let mut server = TestServer::start_with(&["--error-settle", "1s", "--webhook", &url]);
    post_spans(&server, &error_batch(0, 1, "shop"));
    wait_long(
        "a delivery that failed twice",
        Duration::from_secs(60),
        || {
            notifications(&server)
                .first()
                .filter(|delivery| delivery["attempts"].as_u64() >= Some(2))
                .cloned()
        },
    );
    server.restart();
    let resumed = notifications(&server);
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(resumed[0]["status"], "retrying", "{resumed:#?}");
    assert!(resumed[0]["next_attempt_unix_nano"].is_string());

    // the endpoint comes up
    let listener = TcpListener::bind(addr).expect("bind the webhook port again");
    let receiver = Answering::start(listener);
    let delivered = wait_long("the delivery", Duration::from_secs(60), || {
        notifications(&server)
            .first()
            .filter(|delivery| delivery["status"] == "delivered")
            .cloned()
    });
    assert!(delivered["attempts"].as_u64() >= Some(3), "{delivered:#}");
    assert_eq!(delivered["error"], Value::Null);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["event"], "new_issue");
    assert_eq!(bodies[0]["issue"]["error_type"], "StormaError");
    // and only once, also after another restart
    server.restart();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.bodies().len(), 1);
    assert_eq!(notifications(&server).len(), 1);
}
