//! What the server needs to run: listener addresses, data directory,
//! retention and the message size limit. Parsing from flags, environment
//! and files is the binary's job; this is the resolved result.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Default OTLP/gRPC listener (loopback only: exposing it is the user's choice).
pub const DEFAULT_OTLP_GRPC: SocketAddr = SocketAddr::new(LOOPBACK, 4317);
/// Default OTLP/HTTP listener.
pub const DEFAULT_OTLP_HTTP: SocketAddr = SocketAddr::new(LOOPBACK, 4318);
/// Default Datadog trace-agent listener (the port tracers use by default).
pub const DEFAULT_DATADOG: SocketAddr = SocketAddr::new(LOOPBACK, 8126);
/// Default UI and query API listener.
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::new(LOOPBACK, 8800);
/// Default largest OTLP message, after decompression.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Default bound on the bytes of request bodies held at once, across listeners.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
/// Default cap on open connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default retention of stored data.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A resolved server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// OTLP/gRPC listener; `None` turns it off.
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listener; `None` turns it off.
    pub otlp_http: Option<SocketAddr>,
    /// UI and query API listener (also `/healthz`, `/readyz`).
    pub http: SocketAddr,
    /// Datadog trace-agent listener (`/info`, `/v0.x/traces`, logs intake);
    /// `None` turns it off.
    pub datadog: Option<SocketAddr>,
    /// Root directory of the embedded store.
    pub data_dir: PathBuf,
    /// Error tracking: settling window and webhooks.
    pub errors: crate::errors::ErrorsConfig,
    /// Whole segments older than this are deleted.
    pub retention: Duration,
    /// Largest OTLP message accepted: the gRPC decoding limit, and the
    /// HTTP body limit both before and after decompression.
    pub max_message_bytes: usize,
    /// Bytes of request bodies held at once across all listeners; more is
    /// refused with 503 / RESOURCE_EXHAUSTED and a retry delay. Never
    /// below `max_message_bytes`, so one largest message always fits.
    pub max_inflight_bytes: usize,
    /// Open connections per listener; more are closed at once, with a warning.
    pub max_connections: usize,
    /// A connection with nothing read or written for this long is closed
    /// (idle keep-alive, stalled headers or bodies; see `conn_limits`).
    pub inactivity_timeout: Duration,
    /// Host names the UI/API listener answers to besides IP literals and
    /// `localhost` (DNS-rebinding defence, see `browser`).
    pub allowed_hosts: Vec<String>,
    /// Tokens, allow-lists and the exposure check (`auth.rs`).
    pub access: crate::auth::AccessConfig,
    /// TLS on every listener (`tls.rs`); `None` serves plain TCP.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl ServerConfig {
    /// The defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            otlp_grpc: Some(DEFAULT_OTLP_GRPC),
            otlp_http: Some(DEFAULT_OTLP_HTTP),
            http: DEFAULT_HTTP,
            datadog: Some(DEFAULT_DATADOG),
            data_dir: data_dir.into(),
            errors: crate::errors::ErrorsConfig::default(),
            retention: DEFAULT_RETENTION,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            inactivity_timeout: crate::conn_limits::INACTIVITY_TIMEOUT,
            allowed_hosts: Vec::new(),
            access: crate::auth::AccessConfig::default(),
            tls: None,
        }
    }

    /// Every listener on 127.0.0.1 port 0 (the OS picks free ports): for tests.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> ServerConfig {
        let any_port = SocketAddr::new(LOOPBACK, 0);
        ServerConfig {
            otlp_grpc: Some(any_port),
            otlp_http: Some(any_port),
            http: any_port,
            datadog: Some(any_port),
            ..ServerConfig::new(data_dir)
        }
    }
}
