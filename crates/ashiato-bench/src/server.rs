//! Starts and stops the `ashiato serve` under test: its own process, a
//! given data directory, every listener on a loopback port 0, addresses
//! parsed from the `listening …`/`ready` lines it prints.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a start (including WAL replay of a full store) may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(600);

pub struct ServerProcess {
    child: Child,
    pub otlp_http: String,
    pub otlp_grpc: String,
    pub api: String,
    /// From spawn to the `ready` line.
    pub startup: Duration,
}

impl ServerProcess {
    /// Starts `ashiato serve` with `extra` appended to its arguments
    /// (`--server-arg`).
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        extra: &[String],
    ) -> anyhow::Result<ServerProcess> {
        let began = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .args(["--otlp-grpc", "127.0.0.1:0"])
            .args(["--otlp-http", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0"])
            .args(["--datadog", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (lines, received) = mpsc::channel();
        // Keep draining stdout after `ready` so the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addresses = Addresses::default();
        loop {
            let line = received
                .recv_timeout(STARTUP_TIMEOUT.saturating_sub(began.elapsed()))
                .context("ashiato serve did not print ready")?;
            if line.trim() == "ready" {
                break;
            }
            addresses.take(&line);
        }
        let startup = began.elapsed();
        let (Some(grpc), Some(http), Some(api)) = (addresses.grpc, addresses.http, addresses.api)
        else {
            bail!("ready before every listener was printed");
        };
        Ok(ServerProcess {
            child,
            otlp_grpc: format!("http://{grpc}"),
            otlp_http: format!("http://{http}"),
            api: format!("http://{api}"),
            startup,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for the graceful shutdown (WAL synced).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32)
            .context("server pid is not a valid pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM to ashiato serve")?;
        let status = self.child.wait().context("waiting for ashiato serve")?;
        if status.signal() == Some(rustix::process::Signal::TERM.as_raw()) {
            // `ashiato serve` installs its SIGTERM handler only once its
            // shutdown future is first polled, just after `ready`: a signal
            // in between takes the default action. Everything acknowledged
            // is fsynced already, so the benchmark can go on.
            eprintln!("warning: ashiato serve was killed by SIGTERM before handling it");
            return Ok(());
        }
        if !status.success() {
            bail!("ashiato serve exited with {status}");
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only reached on error paths: never leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Default)]
struct Addresses {
    grpc: Option<String>,
    http: Option<String>,
    api: Option<String>,
}

impl Addresses {
    fn take(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["listening", name, addr] = words.as_slice() {
            let slot = match *name {
                "otlp-grpc" => &mut self.grpc,
                "otlp-http" => &mut self.http,
                "http" => &mut self.api,
                _ => return,
            };
            *slot = Some((*addr).to_owned());
        }
    }
}

/// The `ashiato` binary to benchmark: the given one, else the release build
/// next to this harness, built first with cargo (a no-op when fresh).
pub fn locate_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "-p",
            "ashiato-cli",
            "--bin",
            "ashiato",
        ])
        .status()
        .context("running cargo build for the ashiato binary")?;
    if !status.success() {
        bail!("cargo build --release -p ashiato-cli failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release").join("ashiato"))
}
