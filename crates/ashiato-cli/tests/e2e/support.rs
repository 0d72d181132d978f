//! Test harness: runs the real `ashiato serve` binary on free ports with a
//! temporary data directory, talks to it over HTTP, and runs the Python
//! OpenTelemetry SDK peers against it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tempfile::TempDir;

/// Startup includes opening the store; on a loaded 2-core CI box with four
/// test processes at once that can take a while, so be generous.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// "Queryable within 1 s" is the product promise; polls allow 10x slack.
const QUERYABLE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound addresses `ashiato serve` printed.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
    /// The Datadog trace-agent listener (on by default).
    pub datadog: Option<SocketAddr>,
}

/// One running server with its own data directory. Dropping it kills the
/// process; the directory lives as long as the value, across restarts.
pub struct TestServer {
    child: Option<Child>,
    pub addrs: Addresses,
    /// Holds `data/` (the store) and `server-N.log` (stderr of each start).
    root: TempDir,
    extra_args: Vec<String>,
    starts: usize,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts with extra `serve` flags, e.g. `["--max-message-size", "1MiB"]`.
    pub fn start_with(extra_args: &[&str]) -> TestServer {
        let root = tempfile::tempdir().expect("create temp dir");
        let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        let (child, addrs) = spawn_server(root.path(), &extra_args, 0);
        TestServer {
            child: Some(child),
            addrs,
            root,
            extra_args,
            starts: 1,
        }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.addrs.http)
    }

    pub fn otlp_http_base(&self) -> String {
        format!("http://{}", self.addrs.otlp_http)
    }

    /// `DD_TRACE_AGENT_URL` for ddtrace peers.
    pub fn datadog_base(&self) -> String {
        format!(
            "http://{}",
            self.addrs.datadog.expect("datadog listener is on")
        )
    }

    pub fn otlp_grpc_base(&self) -> String {
        format!("http://{}", self.addrs.otlp_grpc)
    }

    /// GET on the API listener: status and body parsed as JSON (Null if the
    /// body is not JSON, which the tests then assert against).
    pub fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = http_request(self.addrs.http, "GET", path_and_query, &[], &[]);
        (response.status, response.json())
    }

    /// GET that must succeed with 200.
    pub fn get_json(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query);
        assert_eq!(
            status, 200,
            "GET {path_and_query} answered {status}: {body}"
        );
        body
    }

    /// Polls `GET /api/v1/traces/{id}` until it holds `spans` spans.
    pub fn wait_for_trace(&self, trace_id: &str, spans: usize) -> Value {
        wait_until(&format!("trace {trace_id} with {spans} spans"), || {
            let (status, body) = self.get(&format!("/api/v1/traces/{trace_id}"));
            let count = body["spans"].as_array().map_or(0, Vec::len);
            (status == 200 && count >= spans).then_some(body)
        })
    }

    /// Polls `GET /api/v1/logs?{query}` until it returns at least `count` records.
    pub fn wait_for_logs(&self, query: &str, count: usize) -> Vec<Value> {
        wait_until(&format!("{count} log records for {query:?}"), || {
            let (status, body) = self.get(&format!("/api/v1/logs?{query}"));
            let logs = body["logs"].as_array().cloned().unwrap_or_default();
            (status == 200 && logs.len() >= count).then_some(logs)
        })
    }

    /// SIGTERM, expect a clean exit 0, start again on the same data dir.
    pub fn restart(&mut self) {
        let mut child = self.child.take().expect("server is running");
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(Pid::from_raw)
            .expect("valid pid");
        kill_process(pid, Signal::TERM).expect("send SIGTERM");
        let exit = wait_with_timeout(&mut child, SHUTDOWN_TIMEOUT).unwrap_or_else(|| {
            panic!("server did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM")
        });
        assert_eq!(
            exit.code(),
            Some(0),
            "server exit after SIGTERM: {exit}\n{}",
            self.stderr()
        );
        self.start_again();
    }

    /// SIGKILL: no chance to flush anything that is not already durable.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("send SIGKILL");
            child.wait().expect("reap killed server");
        }
    }

    /// Starts a stopped server (after `kill9`) on the same data dir.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        let (child, addrs) = spawn_server(self.root.path(), &self.extra_args, self.starts);
        self.child = Some(child);
        self.addrs = addrs;
        self.starts += 1;
    }

    /// The server process id while it runs (for `/proc/<pid>/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server logged so far (all runs), for failure messages.
    pub fn stderr(&self) -> String {
        read_logs(self.root.path())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Server stderr goes to a file beside the store: a full pipe can never
/// block the server, and a failing test can show what it logged.
fn log_path(root: &Path, start: usize) -> PathBuf {
    root.join(format!("server-{start}.log"))
}

fn read_logs(root: &Path) -> String {
    (0..10)
        .map(|start| log_path(root, start))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect::<Vec<_>>()
        .join("\n--- restart ---\n")
}

fn spawn_server(root: &Path, extra_args: &[String], start: usize) -> (Child, Addresses) {
    let stderr = File::create(log_path(root, start)).expect("create server log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ashiato"))
        .arg("serve")
        .args([
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--datadog",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(root.join("data"))
        .args(extra_args)
        .env_remove("ASHIATO_OTLP_GRPC")
        .env_remove("ASHIATO_OTLP_HTTP")
        .env_remove("ASHIATO_HTTP")
        .env_remove("ASHIATO_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn ashiato serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = stdout_lines(stdout);
    match read_addresses(&lines) {
        Ok(addrs) => (child, addrs),
        Err(problem) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ashiato serve did not become ready: {problem}\n--- server stderr ---\n{}",
                read_logs(root)
            );
        }
    }
}

/// Forwards stdout lines to a channel from a thread that keeps draining
/// after `ready`, so the server never blocks on a full stdout pipe.
fn stdout_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    receiver
}

fn read_addresses(lines: &mpsc::Receiver<String>) -> Result<Addresses, String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let (mut grpc, mut otlp_http, mut http) = (None, None, None);
    let mut datadog = None;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no `ready` within {STARTUP_TIMEOUT:?}; stdout: {seen:?}"
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "stdout closed before `ready` (exited?); stdout: {seen:?}"
                ));
            }
        };
        seen.push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ready"] => break,
            ["listening", name, addr] => {
                let addr: SocketAddr = addr
                    .parse()
                    .map_err(|error| format!("bad address in {line:?}: {error}"))?;
                match *name {
                    "otlp-grpc" => grpc = Some(addr),
                    "otlp-http" => otlp_http = Some(addr),
                    "http" => http = Some(addr),
                    "datadog" => datadog = Some(addr),
                    _ => {} // later issues add listeners
                }
            }
            _ => {}
        }
    }
    match (grpc, otlp_http, http) {
        (Some(otlp_grpc), Some(otlp_http), Some(http)) => Ok(Addresses {
            otlp_grpc,
            otlp_http,
            http,
            datadog,
        }),
        _ => Err(format!(
            "`ready` before all three listeners were printed; stdout: {seen:?}"
        )),
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Polls `check` until it returns `Some`, for "eventually queryable" state.
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + QUERYABLE_TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {QUERYABLE_TIMEOUT:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 client on a plain socket. The body is written from a
/// separate thread while the answer is read: a server may answer 413 before
/// it has read a big body and close, and a client that insists on finishing
/// its write first would see a reset instead of the 413.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|error| panic!("connect {addr}: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = stream.try_clone().expect("clone socket");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let write = thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut raw = Vec::new();
    // A reset after the answer arrived still leaves the answer in `raw`.
    let _ = stream.read_to_end(&mut raw);
    let _ = write.join();
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "no parsable HTTP answer to {method} {path}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The workspace root, where `scripts/test` puts its virtualenvs.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Which Python interpreter (virtualenv) runs a peer.
#[derive(Debug, Clone, Copy)]
pub enum PeerPython {
    /// SDK with the gRPC and HTTP/protobuf exporters.
    Proto,
    /// SDK with the HTTP/JSON exporter (a separate venv: conflicting pins).
    Json,
    /// The Datadog tracer `ddtrace` (its own venv).
    Datadog,
}

impl PeerPython {
    /// The interpreter from `scripts/test`'s environment variable, else its
    /// default venv. Missing is a failure, never a skip: a skipped SDK test
    /// would hide exactly the breakage these tests exist for.
    pub fn path(self) -> PathBuf {
        let (variable, venv) = match self {
            PeerPython::Proto => ("ASHIATO_TEST_PYTHON", ".venv-test"),
            PeerPython::Json => ("ASHIATO_TEST_PYTHON_JSON", ".venv-test-json"),
            PeerPython::Datadog => ("ASHIATO_TEST_PYTHON_DD", ".venv-test-dd"),
        };
        let path = std::env::var_os(variable)
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(venv).join("bin/python"));
        assert!(
            path.exists(),
            "python with the OpenTelemetry SDK not found at {} ({variable} unset or wrong): \
             run scripts/test, which creates the test virtualenvs",
            path.display()
        );
        path
    }
}

/// Runs `tests/peers/<script>` with the given environment and returns its
/// stdout, trimmed. Panics with the peer's stderr if it fails.
pub fn run_peer(python: PeerPython, script: &str, env: &[(&str, &str)]) -> String {
    try_run_peer(python, script, env)
        .unwrap_or_else(|stderr| panic!("peer {script} {env:?} failed:\n{stderr}"))
}

/// Runs a peer that may fail: its stdout, or its exit status and stderr.
pub fn try_run_peer(
    python: PeerPython,
    script: &str,
    env: &[(&str, &str)],
) -> Result<String, String> {
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let mut command = Command::new(python.path());
    command.arg(&script_path);
    // Only what the test sets may steer the SDK.
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") || key.starts_with("DD_") {
            command.env_remove(key);
        }
    }
    command
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "20")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run python peer");
    if !output.status.success() {
        return Err(format!(
            "{}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs the `ashiato` binary (a client command) and returns (exit ok, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ashiato"))
        .args(args)
        .env_remove("ASHIATO_SERVER")
        .output()
        .expect("run ashiato");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
