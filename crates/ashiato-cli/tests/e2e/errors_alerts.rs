//! Issue lifecycle and webhooks against a local HTTP receiver: one
//! delivery for a new issue, none for repeats, one for a regression, none
//! while ignored; a failing receiver is retried and ingest goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;

use crate::errors::{issues, send_requests, wait_for_issue};
use crate::support::{TestServer, run_cli, wait_until};

/// A webhook receiver on a free port: records every JSON body and answers
/// with `status`.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(body) = read_request(&stream) {
                    recorded.lock().expect("lock").push(body);
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { addr, bodies }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn events(&self) -> Vec<(String, String)> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .map(|body| {
                (
                    body["event"].as_str().unwrap_or_default().to_owned(),
                    body["issue"]["error_type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn wait_for(&self, count: usize) -> Vec<(String, String)> {
        wait_until(&format!("{count} webhook deliveries"), || {
            let events = self.events();
            (events.len() >= count).then_some(events)
        })
    }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn pair(event: &str, error_type: &str) -> (String, String) {
    (event.to_owned(), error_type.to_owned())
}

#[test]
fn test_notifies_new_and_regressed_issues_only() {
    let receiver = Receiver::start(200);
    let url = receiver.url();
    let server = TestServer::start_with(&[
        "--error-settle",
        "1s",
        "--webhook",
        &url,
        "--public-url",
        "https://ashiato.example.com/",
    ]);
    let api = server.api_base();

    send_requests(&server, 1, "ValueError", "1.0.0");
    let issue = wait_for_issue(&server, "ValueError", 1);
    let id = issue["id"].as_str().unwrap_or_default().to_owned();
    let first = receiver.wait_for(1);
    assert_eq!(first, [pair("new_issue", "ValueError")]);
    let body = receiver.bodies.lock().expect("lock")[0].clone();
    assert_eq!(
        body["url"],
        format!("https://ashiato.example.com/issues/{id}")
    );
    assert_eq!(body["top_frame"]["function"], "load_order");

    // repeats notify nothing: the next delivery is the next new issue
    send_requests(&server, 2, "ValueError", "1.0.0");
    wait_for_issue(&server, "ValueError", 3);
    send_requests(&server, 1, "KeyError", "1.0.0");
    let events = receiver.wait_for(2);
    assert_eq!(
        events,
        [
            pair("new_issue", "ValueError"),
            pair("new_issue", "KeyError")
        ]
    );

    // resolved in 2.0.0: an occurrence from 1.0.0 does not regress it
    let (ok, stdout, stderr) = run_cli(&[
        "issue",
        &id,
        "resolve",
        "--in-version",
        "2.0.0",
        "--server",
        &api,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("status resolved"), "{stdout}");
    send_requests(&server, 1, "ValueError", "1.0.0");
    let resolved = wait_for_issue(&server, "ValueError", 4);
    assert_eq!(resolved["status"], "resolved");
    // a newer version does: one regression delivery
    send_requests(&server, 1, "ValueError", "2.0.0");
    let regressed = wait_for_issue(&server, "ValueError", 5);
    assert_eq!(regressed["status"], "open");
    assert_eq!(regressed["regressed"], true);
    assert_eq!(regressed["last_version"], "2.0.0");
    let events = receiver.wait_for(3);
    assert_eq!(events[2], pair("regression", "ValueError"));

    // ignored: counts, never notifies (the next delivery is the next new issue)
    let (ok, _, stderr) = run_cli(&["issue", &id, "ignore", "--server", &api]);
    assert!(ok, "{stderr}");
    send_requests(&server, 1, "ValueError", "3.0.0");
    let ignored = wait_for_issue(&server, "ValueError", 6);
    assert_eq!(ignored["status"], "ignored");
    let (ok, _, stderr) = run_cli(&["issue", &id, "reopen", "--server", &api]);
    assert!(ok, "{stderr}");
    assert_eq!(issues(&server, "status=open").len(), 2);

    let notifications = server.get_json("/api/v1/notifications");
    let list = notifications["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 3, "{notifications:#}");
    for delivery in &list {
        assert_eq!(delivery["status"], "delivered", "{delivery:#}");
        // the path of a webhook url is a secret: scheme and host only
        assert_eq!(delivery["url"], format!("http://{}/…", receiver.addr));
    }
    assert_eq!(receiver.events().len(), 3);
}

#[test]
fn test_failing_webhook_is_retried_and_ingest_goes_on() {
    let receiver = Receiver::start(500);
    let url = receiver.url();
    let server = TestServer::start_with(&[
        "--error-settle",
        "1s",
        "--webhook",
        &url,
        "--webhook-format",
        "slack",
    ]);
    send_requests(&server, 1, "ValueError", "1.0.0");
    wait_for_issue(&server, "ValueError", 1);
    // the receiver sees the same delivery again (retries with backoff)
    receiver.wait_for(2);
    let body = receiver.bodies.lock().expect("lock")[0].clone();
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.contains("New issue"), "{body}");
    let delivery = wait_until("a delivery with two attempts", || {
        let notifications = server.get_json("/api/v1/notifications");
        notifications["notifications"]
            .as_array()
            .and_then(|list| list.first().cloned())
            .filter(|delivery| delivery["attempts"].as_u64() >= Some(2))
    });
    assert_ne!(delivery["status"], "delivered", "{delivery:#}");
    assert!(
        delivery["error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{delivery:#}"
    );
    // ingest is unaffected while deliveries fail
    let traces = send_requests(&server, 2, "ValueError", "1.0.0");
    for trace in &traces {
        server.wait_for_trace(trace, 3);
    }
    wait_for_issue(&server, "ValueError", 3);
}
