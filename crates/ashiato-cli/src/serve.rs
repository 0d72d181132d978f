//! `ashiato serve`: command-line, environment and config-file settings,
//! merged into a `ServerConfig`, then the server run until SIGINT/SIGTERM.
//!
//! Precedence, highest first: flag, environment variable, config file,
//! built-in default. clap merges flag and environment (both land in the
//! same `Option` field, without clap defaults so an unset option stays
//! `None`); this module then falls back to the file and the default.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ashiato_model::parse_duration_ns;
use ashiato_server::ServerConfig;
use serde::Deserialize;

/// Run the server: OTLP ingest, embedded store, query API.
///
/// Every option can also come from an environment variable or from the
/// TOML file given by --config (keys: otlp_grpc, otlp_http, datadog, http, data_dir,
/// retention, max_message_size, max_inflight_size, max_connections, allowed_hosts,
/// error_settle, error_tracking, webhook, webhook_format, public_url,
/// notify_storm_threshold, notify_storm_window). A flag beats the environment, which beats
/// the file, which beats the default.
#[derive(Debug, Default, clap::Args)]
#[command(
    after_help = "Every option can also be set by its environment variable or in the TOML file \
given by --config (keys: otlp_grpc, otlp_http, datadog, http, data_dir, retention, max_message_size, \
max_inflight_size, max_connections, allowed_hosts, error_settle, error_tracking, webhook, webhook_format, public_url, \
notify_storm_threshold, notify_storm_window, tokens_file, allow_otlp_grpc, allow_otlp_http, allow_http, \
allow_datadog, insecure_no_auth, tls_cert, tls_key, tls_client_ca, [[token]]). \
Precedence: flag, then environment, then config file, then default. Listeners bind 127.0.0.1 \
by default; use 0.0.0.0 to accept remote connections (this needs tokens, see `ashiato token`, or \
--allow-* networks, or --insecure-no-auth) and port 0 to pick a free port. \
Bound addresses are printed to stdout as `listening <name> <addr>` lines, then `ready`."
)]
pub struct ServeArgs {
    /// OTLP/gRPC listen address, or "off" [default: 127.0.0.1:4317]
    #[arg(long, env = "ASHIATO_OTLP_GRPC", value_name = "ADDR", value_parser = parse_listen)]
    otlp_grpc: Option<Listen>,

    /// OTLP/HTTP listen address, or "off" [default: 127.0.0.1:4318]
    #[arg(long, env = "ASHIATO_OTLP_HTTP", value_name = "ADDR", value_parser = parse_listen)]
    otlp_http: Option<Listen>,

    /// Datadog trace-agent listen address (dd-trace libraries, logs intake),
    /// or "off" [default: 127.0.0.1:8126]
    #[arg(long, env = "ASHIATO_DATADOG", value_name = "ADDR", value_parser = parse_listen)]
    datadog: Option<Listen>,

    /// Web UI and query API listen address [default: 127.0.0.1:8800]
    #[arg(long, env = "ASHIATO_HTTP", value_name = "ADDR", value_parser = parse_listen)]
    http: Option<Listen>,

    /// Directory of the embedded store [default: ./ashiato-data]
    #[arg(long, env = "ASHIATO_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// How long data is kept, e.g. 7d, 12h [default: 7d]
    #[arg(long, env = "ASHIATO_RETENTION", value_name = "DUR", value_parser = parse_retention)]
    retention: Option<Duration>,

    /// Largest OTLP message, after decompression: bytes or with a unit
    /// (32MiB, 16MB, 512KiB) [default: 32MiB]
    #[arg(long, env = "ASHIATO_MAX_MESSAGE_SIZE", value_name = "SIZE", value_parser = parse_size)]
    max_message_size: Option<usize>,

    /// Bytes of request bodies held at once across all listeners; beyond
    /// it requests get 503 / RESOURCE_EXHAUSTED with a retry delay (never
    /// below --max-message-size) [default: 256MiB]
    #[arg(long, env = "ASHIATO_MAX_INFLIGHT_SIZE", value_name = "SIZE", value_parser = parse_size)]
    max_inflight_size: Option<usize>,

    /// Open connections per listener; more are closed at once with a
    /// logged warning [default: 4096]
    #[arg(long, env = "ASHIATO_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// A host name the UI/API listener answers to besides IP addresses and
    /// localhost (against DNS rebinding); repeat for more
    #[arg(
        long = "allowed-host",
        env = "ASHIATO_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,

    /// TOML config file with the same settings in snake_case
    #[arg(long, env = "ASHIATO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    errors: crate::error_settings::ErrorArgs,

    /// Validate the configuration (flags, environment and --config file,
    /// merged as serve does), print the settings it gives and exit: 0 when
    /// valid, else the error. Binds nothing and does not open the store.
    #[arg(long)]
    check_config: bool,
    #[command(flatten)]
    access: crate::access_settings::AccessArgs,
}

/// A listener setting: an address, or turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

/// Settings read from `--config`; all optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    otlp_grpc: Option<String>,
    otlp_http: Option<String>,
    http: Option<String>,
    datadog: Option<String>,
    data_dir: Option<PathBuf>,
    retention: Option<String>,
    max_message_size: Option<SizeSetting>,
    max_inflight_size: Option<SizeSetting>,
    max_connections: Option<usize>,
    allowed_hosts: Option<Vec<String>>,
    webhook: Option<Vec<String>>,
    webhook_format: Option<String>,
    public_url: Option<String>,
    error_settle: Option<String>,
    error_tracking: Option<bool>,
    notify_storm_threshold: Option<u64>,
    notify_storm_window: Option<String>,
    tokens_file: Option<PathBuf>,
    token: Option<Vec<crate::access_settings::FileToken>>,
    allow_otlp_grpc: Option<Vec<String>>,
    allow_otlp_http: Option<Vec<String>>,
    allow_http: Option<Vec<String>>,
    allow_datadog: Option<Vec<String>>,
    insecure_no_auth: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
}

/// A size in a config file may be a plain integer or a string with a unit.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum SizeSetting {
    Bytes(u64),
    Text(String),
}

const DEFAULT_DATA_DIR: &str = "./ashiato-data";

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let file = match &args.config {
        Some(path) => Some(read_config_file(path)?),
        None => None,
    };
    let config = resolve(&args, file)?;
    if args.check_config {
        print!("{}", describe(&config));
        return Ok(());
    }
    tracing::info!(?config, "starting ashiato");
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // listeners are registered before the server starts: a SIGTERM sent
        // right after `ready` must stop it gracefully, not kill it
        let shutdown = shutdown_signal()?;
        ashiato_server::run(config, shutdown).await
    })
}

/// Raises the soft open-files limit to the hard one: every connection is a
/// descriptor, and the usual soft default of 1,024 is reached by a few
/// hundred idle clients long before memory or CPU are.
#[cfg(unix)]
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // an unlimited hard limit cannot be the soft one for files (the kernel
    // caps it at nr_open): ask for a large finite number instead
    let target = limit.maximum.unwrap_or(1 << 20);
    let Some(current) = limit.current else {
        return;
    };
    if current >= target {
        return;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = current, to = target, "raised the open files limit"),
        Err(error) => {
            tracing::warn!(limit = current, %error, "could not raise the open files limit")
        }
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() {}

/// Logs go to stderr (stdout carries the startup lines), filtered by
/// `RUST_LOG`, `info` by default.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // colours only for a human at a terminal, never in captured logs
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // a second initialisation (tests) is harmless, so its error is ignored
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .try_init();
}

/// A future resolving on SIGINT (Ctrl-C) or SIGTERM. The signal handlers
/// are installed when this is called, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for sigint")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for sigterm")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received sigint"),
            _ = terminate.recv() => tracing::info!("received sigterm"),
        }
    })
}

/// A future resolving on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("received ctrl-c");
        }
    })
}

fn read_config_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// Merges flags/environment (`args`) over the config file over defaults.
fn resolve(args: &ServeArgs, file: Option<FileConfig>) -> anyhow::Result<ServerConfig> {
    let file = file.unwrap_or_default();
    let errors = crate::error_settings::resolve(
        &args.errors,
        crate::error_settings::FileErrors {
            error_tracking: &file.error_tracking,
            webhook: &file.webhook,
            webhook_format: &file.webhook_format,
            public_url: &file.public_url,
            error_settle: &file.error_settle,
            notify_storm_threshold: &file.notify_storm_threshold,
            notify_storm_window: &file.notify_storm_window,
        },
    )?;
    let access = crate::access_settings::resolve(
        &args.access,
        crate::access_settings::FileAccess {
            tokens_file: &file.tokens_file,
            token: &file.token,
            allow_otlp_grpc: &file.allow_otlp_grpc,
            allow_otlp_http: &file.allow_otlp_http,
            allow_http: &file.allow_http,
            allow_datadog: &file.allow_datadog,
            insecure_no_auth: &file.insecure_no_auth,
        },
    )?;
    let tls = crate::access_settings::resolve_tls(
        &args.access,
        &file.tls_cert,
        &file.tls_key,
        &file.tls_client_ca,
    )?;
    let defaults = ServerConfig::new(DEFAULT_DATA_DIR);
    let from_file = |key: &str, value: &Option<String>| -> anyhow::Result<Option<Listen>> {
        value
            .as_deref()
            .map(|text| parse_listen(text).map_err(|reason| config_error(key, reason)))
            .transpose()
    };
    let otlp_grpc = args
        .otlp_grpc
        .or(from_file("otlp_grpc", &file.otlp_grpc)?)
        .map_or(defaults.otlp_grpc, Listen::address);
    let otlp_http = args
        .otlp_http
        .or(from_file("otlp_http", &file.otlp_http)?)
        .map_or(defaults.otlp_http, Listen::address);
    let datadog = args
        .datadog
        .or(from_file("datadog", &file.datadog)?)
        .map_or(defaults.datadog, Listen::address);
    let http = match args.http.or(from_file("http", &file.http)?) {
        None => defaults.http,
        Some(Listen::At(addr)) => addr,
        Some(Listen::Off) => bail!("the http listener (ui and api) cannot be turned off"),
    };
    let retention = match (args.retention, &file.retention) {
        (Some(retention), _) => retention,
        (None, Some(text)) => {
            parse_retention(text).map_err(|reason| config_error("retention", reason))?
        }
        (None, None) => defaults.retention,
    };
    let max_message_bytes = size_setting(
        "max_message_size",
        args.max_message_size,
        &file.max_message_size,
        defaults.max_message_bytes,
    )?;
    let max_inflight_bytes = size_setting(
        "max_inflight_size",
        args.max_inflight_size,
        &file.max_inflight_size,
        defaults.max_inflight_bytes,
    )?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or(defaults.data_dir);
    Ok(ServerConfig {
        otlp_grpc,
        otlp_http,
        http,
        datadog,
        data_dir,
        retention,
        max_message_bytes,
        max_inflight_bytes,
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
        inactivity_timeout: defaults.inactivity_timeout,
        errors,
        allowed_hosts: if args.allowed_hosts.is_empty() {
            file.allowed_hosts.unwrap_or_default()
        } else {
            args.allowed_hosts.clone()
        },
        access,
        tls,
    })
}

/// A size from the flag (or environment), else the file, else the default.
fn size_setting(
    key: &str,
    flag: Option<usize>,
    file: &Option<SizeSetting>,
    default: usize,
) -> anyhow::Result<usize> {
    Ok(match (flag, file) {
        (Some(size), _) => size,
        (None, Some(SizeSetting::Bytes(bytes))) => usize::try_from(*bytes)
            .ok()
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| config_error(key, format!("{bytes} is not a usable size")))?,
        (None, Some(SizeSetting::Text(text))) => {
            parse_size(text).map_err(|reason| config_error(key, reason))?
        }
        (None, None) => default,
    })
}

/// What `--check-config` prints for a valid configuration: the effective
/// settings, one per line (webhook URLs are secrets: only their number).
fn describe(config: &ServerConfig) -> String {
    let listen = |addr: Option<SocketAddr>| addr.map_or("off".to_owned(), |addr| addr.to_string());
    let errors = &config.errors;
    let tracking = if errors.enabled { "on" } else { "off" };
    format!(
        "config ok\n\
         otlp_grpc {}\n\
         otlp_http {}\n\
         http {}\n\
         datadog {}\n\
         data_dir {}\n\
         retention {}s\n\
         max_message_size {} bytes\n\
         error_tracking {tracking}\n\
         error_settle {}ms\n\
         webhooks {}\n",
        listen(config.otlp_grpc),
        listen(config.otlp_http),
        config.http,
        listen(config.datadog),
        config.data_dir.display(),
        config.retention.as_secs(),
        config.max_message_bytes,
        errors.settle.as_millis(),
        errors.notify.webhooks.len(),
    )
}

fn config_error(key: &str, reason: String) -> anyhow::Error {
    anyhow::anyhow!("invalid {key} in config file: {reason}")
}

impl Listen {
    fn address(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(addr) => Some(addr),
        }
    }
}

/// `off`, `IP:PORT` or `HOST:PORT` (resolved once, first address).
fn parse_listen(text: &str) -> Result<Listen, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Listen::At(addr));
    }
    let resolved = text
        .to_socket_addrs()
        .map_err(|error| format!("{text:?} is not \"off\" or a host:port address ({error})"))?
        .next();
    resolved
        .map(Listen::At)
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn parse_retention(text: &str) -> Result<Duration, String> {
    let nanos = parse_duration_ns(text).map_err(|error| error.to_string())?;
    if nanos == 0 {
        return Err("retention must be longer than zero".to_owned());
    }
    Ok(Duration::from_nanos(nanos))
}

/// Bytes, optionally with a unit: decimal KB/MB/GB, binary KiB/MiB/GiB
/// (K/M/G alone are binary too), case-insensitive, e.g. `32MiB`, `1.5MB`.
fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || {
        format!("invalid size {text:?}: expected bytes or a number with a unit, e.g. 32MiB or 16MB")
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(invalid()),
    };
    let bytes = (value * multiplier).round();
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!("invalid size {text:?}: must be at least one byte"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["ashiato"];
        argv.extend_from_slice(flags);
        TestCli::try_parse_from(argv).unwrap().serve
    }

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    /// The sample config shipped in `packaging/` parses and resolves.
    #[test]
    fn test_packaged_sample_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/ashiato.toml");
        let file = read_config_file(&path).unwrap();
        let config = resolve(&ServeArgs::default(), Some(file)).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/ashiato"));
        assert_eq!(config.http, local(8800));
        assert_eq!(config.retention, Duration::from_secs(14 * 86_400));
        let summary = describe(&config);
        assert!(summary.starts_with("config ok\n"), "{summary}");
        assert!(summary.contains("data_dir /var/lib/ashiato\n"), "{summary}");
    }

    #[test]
    fn test_check_config_reports_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("retention = \"soon\"\n", "invalid retention in config file"),
            (
                "otlp_grpc = \"nowhere\"\n",
                "invalid otlp_grpc in config file",
            ),
            ("colour = \"blue\"\n", "unknown field `colour`"),
            ("http = \"off\"\n", "cannot be turned off"),
        ];
        for (text, expected) in cases {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, text).unwrap();
            let error = read_config_file(&path)
                .and_then(|file| resolve(&ServeArgs::default(), Some(file)))
                .unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains(expected), "{text}: {message}");
        }
        let missing = read_config_file(&dir.path().join("missing.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("reading config file"));
    }

    #[test]
    fn test_defaults_without_flags_or_file() {
        let config = resolve(&ServeArgs::default(), None).unwrap();
        assert_eq!(config, ServerConfig::new("./ashiato-data"));
        assert_eq!(config.otlp_grpc, Some(local(4317)));
        assert_eq!(config.otlp_http, Some(local(4318)));
        assert_eq!(config.http, local(8800));
        assert_eq!(config.datadog, Some(local(8126)));
        assert_eq!(config.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.max_message_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn test_file_overrides_defaults() {
        let file = file(
            r#"
            otlp_grpc = "off"
            otlp_http = "0.0.0.0:14318"
            http = "127.0.0.1:0"
            data_dir = "/var/lib/ashiato"
            retention = "12h"
            max_message_size = 1048576
            "#,
        );
        let config = resolve(&ServeArgs::default(), Some(file)).unwrap();
        assert_eq!(config.otlp_grpc, None);
        assert_eq!(
            config.otlp_http,
            Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 14318)))
        );
        assert_eq!(config.http, local(0));
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/ashiato"));
        assert_eq!(config.retention, Duration::from_secs(12 * 3600));
        assert_eq!(config.max_message_bytes, 1_048_576);
    }

    #[test]
    fn test_flags_override_file() {
        let file = file(
            r#"
            otlp_grpc = "off"
            http = "127.0.0.1:9000"
            data_dir = "/from/file"
            retention = "12h"
            max_message_size = "1MiB"
            "#,
        );
        let flags = args(&[
            "--otlp-grpc",
            "127.0.0.1:5317",
            "--otlp-http",
            "off",
            "--data-dir",
            "/from/flag",
            "--retention",
            "30d",
            "--max-message-size",
            "16MB",
        ]);
        let config = resolve(&flags, Some(file)).unwrap();
        assert_eq!(config.otlp_grpc, Some(local(5317)));
        assert_eq!(config.otlp_http, None);
        // not given as a flag: the file wins over the default
        assert_eq!(config.http, local(9000));
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.max_message_bytes, 16_000_000);
    }

    #[test]
    fn test_every_option_has_its_environment_variable() {
        let command = TestCli::command();
        let expected = [
            ("otlp_grpc", "ASHIATO_OTLP_GRPC"),
            ("otlp_http", "ASHIATO_OTLP_HTTP"),
            ("datadog", "ASHIATO_DATADOG"),
            ("http", "ASHIATO_HTTP"),
            ("data_dir", "ASHIATO_DATA_DIR"),
            ("retention", "ASHIATO_RETENTION"),
            ("max_message_size", "ASHIATO_MAX_MESSAGE_SIZE"),
            ("max_inflight_size", "ASHIATO_MAX_INFLIGHT_SIZE"),
            ("max_connections", "ASHIATO_MAX_CONNECTIONS"),
            ("allowed_hosts", "ASHIATO_ALLOWED_HOSTS"),
            ("config", "ASHIATO_CONFIG"),
        ];
        for (id, variable) in expected {
            let argument = command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .unwrap();
            assert_eq!(
                argument.get_env().and_then(|env| env.to_str()),
                Some(variable),
                "{id}"
            );
            assert!(argument.get_help().is_some(), "{id} has no help text");
            assert!(
                argument.get_default_values().is_empty(),
                "{id} must not have a clap default"
            );
        }
    }

    #[test]
    fn test_bad_values_are_refused_with_the_key() {
        let error =
            resolve(&ServeArgs::default(), Some(file("retention = \"forever\""))).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid retention in config file"),
            "{error}"
        );
        let error = resolve(&ServeArgs::default(), Some(file("http = \"off\""))).unwrap_err();
        assert!(
            error.to_string().contains("cannot be turned off"),
            "{error}"
        );
        let error = resolve(&ServeArgs::default(), Some(file("max_message_size = 0"))).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid max_message_size"),
            "{error}"
        );
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
        assert!(TestCli::try_parse_from(["ashiato", "--otlp-grpc", "nowhere"]).is_err());
        assert!(TestCli::try_parse_from(["ashiato", "--retention", "0"]).is_err());
    }

    #[test]
    fn test_error_tracking_keys_in_the_file() {
        let file = file(
            r#"
            error_settle = "2s"
            webhook = ["http://hooks.example.com/a", "https://hooks.example.com/b"]
            webhook_format = "slack"
            public_url = "https://ashiato.example.com"
            error_tracking = false
            "#,
        );
        let config = resolve(&ServeArgs::default(), Some(file)).unwrap();
        assert!(!config.errors.enabled);
        assert_eq!(config.errors.settle, Duration::from_secs(2));
        assert_eq!(config.errors.notify.webhooks.len(), 2);
        assert_eq!(
            config.errors.notify.format,
            ashiato_server::WebhookFormat::Slack
        );
        assert_eq!(
            config.errors.notify.public_url.as_deref(),
            Some("https://ashiato.example.com")
        );
    }

    #[test]
    fn test_sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 * 1024 * 1024));
        assert_eq!(parse_size("16MB"), Ok(16_000_000));
        assert_eq!(parse_size("512kib"), Ok(512 * 1024));
        assert_eq!(parse_size("1.5M"), Ok(1_572_864));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn test_listen_values() {
        assert_eq!(parse_listen("OFF"), Ok(Listen::Off));
        assert_eq!(parse_listen("127.0.0.1:0"), Ok(Listen::At(local(0))));
        assert_eq!(
            parse_listen("localhost:4317").map(|listen| listen.address().is_some()),
            Ok(true)
        );
        assert!(parse_listen("4317").is_err());
    }

    #[test]
    fn test_datadog_listener_from_file_flag_or_off() {
        let from_file = resolve(&ServeArgs::default(), Some(file(r#"datadog = "off""#))).unwrap();
        assert_eq!(from_file.datadog, None);
        let flagged = resolve(
            &args(&["--datadog", "127.0.0.1:18126"]),
            Some(file(r#"datadog = "off""#)),
        )
        .unwrap();
        assert_eq!(flagged.datadog, Some(local(18126)));
    }
}
