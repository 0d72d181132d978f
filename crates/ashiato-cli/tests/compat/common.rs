//! What every compatibility test shares: where `scripts/test` put each
//! client's build, running a client program as a child process that dies
//! with the test, and checks that print what ashiato stored when they fail.
//!
//! Each client of the matrix is its own test binary (`compat_<client>` in
//! `crates/ashiato-cli/Cargo.toml`), so one client's module never stops
//! another from building; they all reuse the end-to-end harness
//! (`tests/e2e/support.rs`) for the server itself.

use std::fmt::Display;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::TestServer;

/// How long a client program gets to start listening.
const PEER_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The source folder of one client: `tests/compat/peers/<name>`.
pub fn peer_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat/peers")
        .join(name)
}

/// A path that `scripts/test` exported after building a client (the
/// client's `setup.sh` names it in its `env` file). Missing is a failure,
/// never a skip: a skipped client would hide exactly the breakage the
/// matrix exists for.
pub fn artifact(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from);
    match path {
        Some(path) if path.exists() => path,
        Some(path) => panic!(
            "{variable}={} does not exist: run scripts/test, which builds the compatibility peers",
            path.display()
        ),
        None => panic!(
            "{variable} is not set: run scripts/test, which builds the compatibility peers \
             (or ASHIATO_TEST_SETUP_ONLY=1 scripts/test, then export what it prints)"
        ),
    }
}

/// A free loopback port for a client that cannot report the one it bound.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + PEER_STARTUP_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {PEER_STARTUP_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A client program started by a test. Its stdout and stderr go to files
/// (a full pipe never blocks it); dropping it kills it.
pub struct Peer {
    name: String,
    child: Option<Child>,
    dir: TempDir,
}

impl Peer {
    /// Starts `command` with only the environment the test gives it for
    /// `OTEL_*`/`DD_*` (the developer's shell must not steer a client).
    pub fn spawn(name: &str, mut command: Command, env: &[(&str, &str)]) -> Peer {
        let dir = tempfile::tempdir().expect("peer temp dir");
        for (key, _) in std::env::vars() {
            if key.starts_with("OTEL_") || key.starts_with("DD_") {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let stdout = File::create(dir.path().join("stdout")).expect("peer stdout file");
        let stderr = File::create(dir.path().join("stderr")).expect("peer stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name} ({command:?}): {error}"));
        Peer {
            name: name.to_owned(),
            child: Some(child),
            dir,
        }
    }

    /// Waits for the program to exit by itself and asserts it succeeded.
    pub fn wait_success(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("peer is running");
        loop {
            if let Some(status) = child.try_wait().expect("poll peer") {
                assert!(
                    status.success(),
                    "{} exited with {status}\n{}",
                    self.name,
                    self.output()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {timeout:?}\n{}",
                self.name,
                self.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM (a graceful stop: SDKs flush on it) and waits up to
    /// `timeout`, then kills.
    pub fn terminate(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What the program printed so far, for failure messages.
    pub fn output(&self) -> String {
        let read =
            |file: &str| std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            read("stdout"),
            self.name,
            read("stderr")
        )
    }

    /// Its stdout alone (for programs that print ids).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Everything ashiato stored that a compatibility check looks at:
/// services, the newest traces with their spans, issues and logs.
pub fn stored(server: &TestServer) -> Value {
    let get = |path: &str| server.get(path).1;
    let traces = get("/api/v1/traces?limit=20");
    let full: Vec<Value> = traces["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|summary| summary["trace_id"].as_str())
        .map(|id| get(&format!("/api/v1/traces/{id}")))
        .collect();
    json!({
        "services": get("/api/v1/services"),
        "traces": full,
        "issues": get("/api/v1/issues"),
        "logs": get("/api/v1/logs?limit=50"),
    })
}

/// One named check of a client: on failure it says which check failed and
/// prints what ashiato stored, so a broken client is diagnosed from the
/// test output alone.
pub fn check(server: &TestServer, client: &str, what: &str, ok: bool, detail: impl Display) {
    if !ok {
        let stored = serde_json::to_string_pretty(&stored(server)).unwrap_or_default();
        panic!("{client}: check failed: {what}\n{detail}\n--- what ashiato stored ---\n{stored}");
    }
}

impl Peer {
    /// The process id, for a client that attaches to another process (an
    /// eBPF agent given the PID of the program it instruments).
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("peer is running").id()
    }

    /// Waits until the program printed `text` (stdout or stderr), e.g. an
    /// agent's "instrumented" line; fails early, with its output, if it
    /// exits first.
    pub fn wait_for_output(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(text) {
                return;
            }
            let child = self.child.as_mut().expect("peer is running");
            if let Some(status) = child.try_wait().expect("poll peer") {
                panic!(
                    "{} exited with {status} before printing {text:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {text:?} within {timeout:?}\n{}",
                self.name,
                self.output()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}
