//! The ashiato server: wires the store, the OTLP listeners (gRPC and HTTP)
//! and the UI/API listener together, and shuts them down gracefully.
//!
//! Startup order matters for the `ready` contract: the store is opened
//! (replaying its WAL), then every listener is bound, then servers start,
//! and only then is the server marked ready (`/readyz` 200) and the
//! `listening …`/`ready` lines printed. Shutdown reverses it: stop
//! accepting, let in-flight requests finish, then close the store so the
//! WAL is synced.
//!
//! New listeners (Datadog on 8126, later) follow the same pattern: an
//! optional address in [`ServerConfig`], a bound listener in
//! [`Server::start`], a line in [`BoundAddrs::lines`].

mod admin;
pub mod auth;
mod browser;
mod config;
mod conn_limits;
pub mod datadog;
mod errors;
mod future_times;
mod http_app;
mod ingest;
mod intake;
pub mod metrics;
mod notify;
pub mod otlp_grpc;
pub mod otlp_http;
mod resend;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use ashiato_query::QueryService;
use ashiato_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_DATADOG, DEFAULT_HTTP, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_OTLP_GRPC, DEFAULT_OTLP_HTTP,
    DEFAULT_RETENTION, ServerConfig,
};
pub use errors::{ErrorFigures, ErrorsConfig};
pub use http_app::Readiness;
pub use ingest::Ingest;
pub use notify::{
    DEFAULT_STORM_THRESHOLD, DEFAULT_STORM_WINDOW, MAX_WEBHOOKS, NotificationFigures, NotifyConfig,
    WebhookFormat,
};

/// Where the listeners actually bound (port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddrs {
    pub otlp_grpc: Option<SocketAddr>,
    pub otlp_http: Option<SocketAddr>,
    pub http: SocketAddr,
    pub datadog: Option<SocketAddr>,
}

impl BoundAddrs {
    /// The startup lines integration tests parse: one `listening <name>
    /// <addr>` per enabled listener, then `ready`.
    pub fn lines(&self) -> Vec<String> {
        let listeners = [
            ("otlp-grpc", self.otlp_grpc),
            ("otlp-http", self.otlp_http),
            ("http", Some(self.http)),
            ("datadog", self.datadog),
        ];
        let mut lines: Vec<String> = listeners
            .iter()
            .filter_map(|(name, addr)| addr.map(|addr| format!("listening {name} {addr}")))
            .collect();
        lines.push("ready".to_owned());
        lines
    }
}

/// A running server. Dropping it without [`Server::shutdown`] leaves the
/// listener tasks running until the runtime stops.
pub struct Server {
    addrs: BoundAddrs,
    store: Store,
    errors: errors::ErrorTracking,
    readiness: Readiness,
    stop: watch::Sender<bool>,
    /// Shortens the connections' inactivity timeout once shutdown begins.
    draining: conn_limits::Draining,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    failures: mpsc::UnboundedReceiver<anyhow::Error>,
    /// Poll the tokens file and the TLS files; aborted at shutdown.
    watches: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the store, binds every enabled listener and starts serving.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        auth::check_exposure(&config)?;
        let access = auth::Access::load(&config)?;
        let (tls, tls_watch) = match &config.tls {
            Some(tls_config) => {
                let (tls, watch) = tls::Tls::start(tls_config)?;
                (Some(tls), Some(watch))
            }
            None => (None, None),
        };
        let store = open_store(&config).await?;
        let grpc_listener = bind_optional("otlp-grpc", config.otlp_grpc).await?;
        let otlp_http_listener = bind_optional("otlp-http", config.otlp_http).await?;
        let http_listener = bind("http", config.http).await?;
        let datadog_listener = bind_optional("datadog", config.datadog).await?;
        let addrs = BoundAddrs {
            otlp_grpc: local_addr(grpc_listener.as_ref())?,
            otlp_http: local_addr(otlp_http_listener.as_ref())?,
            http: http_listener
                .local_addr()
                .context("reading http listener address")?,
            datadog: local_addr(datadog_listener.as_ref())?,
        };

        let error_tracking = errors::ErrorTracking::start(
            config.data_dir.clone(),
            &config.errors,
            store.clone(),
            addrs.http,
        )?;
        let readiness = Readiness::default();
        let metrics = Arc::new(metrics::Metrics::default());
        let ingest = match error_tracking.sink() {
            Some(sink) => Ingest::with_error_tracking(store.clone(), sink),
            None => Ingest::new(store.clone()),
        }
        .reporting_disk(readiness.disk())
        .with_body_budget(config.max_inflight_bytes.max(config.max_message_bytes))
        .with_metrics(metrics.clone());
        let timed = |listener| metrics::RequestMetricsLayer::new(metrics.clone(), listener);
        let (stop, stopped) = watch::channel(false);
        let draining = conn_limits::Draining::default();
        let (failure_sender, failures) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let spawner = Spawner {
            stopped,
            failure_sender,
            max_connections: config.max_connections,
            inactivity: config.inactivity_timeout,
            draining: draining.clone(),
            tls,
        };
        if let Some(listener) = grpc_listener {
            let routes = otlp_grpc::routes(
                ingest.for_protocol(metrics::Protocol::OtlpGrpc),
                config.max_message_bytes,
            );
            let timing = timed("otlp-grpc");
            let grpc_gate = access.gate(auth::Listener::OtlpGrpc);
            let stop_signal = spawner.stop_signal();
            let incoming_stop = spawner.stop_signal();
            let listener = spawner.limited("otlp-grpc", listener);
            let tls_acceptor = spawner.tls.as_ref().map(|tls| tls.ingest.clone());
            tasks.push(spawner.spawn("otlp-grpc", async move {
                let server = tonic::transport::Server::builder()
                    .layer(timing)
                    .layer(auth::GrpcGateLayer(grpc_gate))
                    .layer(tower::util::MapResponseLayer::new(
                        otlp_grpc::oversize_as_resource_exhausted,
                    ))
                    .add_routes(routes);
                match tls_acceptor {
                    None => {
                        server
                            .serve_with_incoming_shutdown(
                                conn_limits::incoming(listener, incoming_stop),
                                stop_signal,
                            )
                            .await
                    }
                    Some(acceptor) => {
                        let (connections, _) = tls::accept_loop(listener, acceptor);
                        let incoming = tokio_stream::wrappers::ReceiverStream::new(connections);
                        let incoming =
                            tokio_stream::StreamExt::map(incoming, Ok::<_, std::io::Error>);
                        server
                            .serve_with_incoming_shutdown(incoming, stop_signal)
                            .await
                    }
                }
                .context("otlp-grpc server failed")
            }));
        }
        if let Some(listener) = otlp_http_listener {
            let app = otlp_http::router(
                ingest.for_protocol(metrics::Protocol::OtlpHttp),
                config.max_message_bytes,
            )
            .layer(timed("otlp-http"));
            let app = gated(app, &access, auth::Listener::OtlpHttp);
            tasks.push(spawner.spawn_axum("otlp-http", listener, app, true));
        }
        let query = Arc::new(QueryService::new(Arc::new(store.clone())));
        let (datadog_app, datadog_logs) = datadog::routers(
            ingest.for_protocol(metrics::Protocol::Datadog),
            config.max_message_bytes,
        );
        let app = http_app::router(query, readiness.clone()).merge(datadog_logs);
        let app = app.merge(error_tracking.api_router());
        let figures = error_tracking.figures_source();
        let app = app
            .merge(metrics::router(metrics::Sources {
                metrics: metrics.clone(),
                store: store.clone(),
                errors: figures,
            }))
            .merge(admin::router(store.clone(), config.data_dir.clone()))
            .layer(timed("http"));
        let app = gated(app, &access, auth::Listener::Http);
        let app = browser::guard_http(app, browser::AllowedHosts::new(&config.allowed_hosts));
        let datadog_app = datadog_app.layer(timed("datadog"));
        tasks.push(spawner.spawn_axum("http", http_listener, app, false));
        if let Some(listener) = datadog_listener {
            let datadog_app = gated(datadog_app, &access, auth::Listener::Datadog);
            let datadog_app = browser::guard_ingest(datadog_app);
            tasks.push(spawner.spawn_axum("datadog", listener, datadog_app, true));
        }

        let mut watches = vec![access.watch(config.access.tokens_poll)];
        watches.extend(tls_watch);
        readiness.set(true);
        tracing::info!(
            otlp_grpc = ?addrs.otlp_grpc,
            otlp_http = ?addrs.otlp_http,
            http = %addrs.http,
            datadog = ?addrs.datadog,
            data_dir = %config.data_dir.display(),
            "ashiato is ready"
        );
        Ok(Server {
            addrs,
            store,
            errors: error_tracking,
            readiness,
            stop,
            draining,
            tasks,
            failures,
            watches,
        })
    }

    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// Waits until a listener fails, returning its error.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.failures.recv().await {
            Some(error) => error,
            None => anyhow::anyhow!("every listener stopped"),
        }
    }

    /// Stops accepting, waits for in-flight requests, closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        self.readiness.set(false);
        self.draining.start();
        // receivers live in the tasks; a send error only means they all ended
        let _ = self.stop.send(true);
        for watch in &self.watches {
            watch.abort();
        }
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut first_error = None;
        for (name, task) in self.tasks {
            if let Err(error) = drain_listener(name, task, deadline).await {
                tracing::error!(listener = name, error = %format!("{error:#}"), "listener ended with an error");
                first_error.get_or_insert(error);
            }
        }
        // pending traces are decided while the store can still be read
        self.errors.shutdown().await;
        self.store.close().await.context("closing the store")?;
        tracing::info!("store closed, shutdown complete");
        first_error.map_or(Ok(()), Err)
    }
}

/// How long shutdown waits for in-flight requests before it stops waiting
/// and closes the store anyway (a stuck client must not block exit).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits for one listener task to finish its in-flight requests, aborting
/// it at `deadline`.
async fn drain_listener(
    name: &'static str,
    mut task: JoinHandle<anyhow::Result<()>>,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(anyhow::anyhow!(
            "{name} listener task panicked: {join_error}"
        )),
        Err(_) => {
            tracing::warn!(
                listener = name,
                "in-flight requests did not finish in time, dropping them"
            );
            task.abort();
            Ok(())
        }
    }
}

/// Runs a server until `shutdown` resolves (or a listener fails), printing
/// the bound addresses and `ready` to stdout once it serves.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut server = Server::start(config).await?;
    print_startup_lines(&server.addrs()).context("writing startup lines to stdout")?;
    let failure = tokio::select! {
        () = shutdown => None,
        error = server.failed() => Some(error),
    };
    let shutdown_result = server.shutdown().await;
    match failure {
        Some(error) => Err(error),
        None => shutdown_result,
    }
}

fn print_startup_lines(addrs: &BoundAddrs) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for line in addrs.lines() {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()
}

async fn open_store(config: &ServerConfig) -> anyhow::Result<Store> {
    let mut store_config = StoreConfig::new(config.data_dir.clone());
    store_config.retention = config.retention;
    let data_dir = config.data_dir.display().to_string();
    // opening replays the WAL: blocking disk work
    tokio::task::spawn_blocking(move || Store::open(store_config))
        .await
        .context("store open task failed")?
        .with_context(|| format!("opening the store in {data_dir}"))
}

async fn bind(name: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {name} listener to {addr}"))
}

async fn bind_optional(
    name: &str,
    addr: Option<SocketAddr>,
) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => bind(name, addr).await.map(Some),
        None => Ok(None),
    }
}

fn local_addr(listener: Option<&TcpListener>) -> anyhow::Result<Option<SocketAddr>> {
    listener
        .map(|listener| listener.local_addr().context("reading listener address"))
        .transpose()
}

/// `app` behind the access gate of `listener`: outermost, so refusals come
/// before routing and never tell whether a path exists.
fn gated(app: axum::Router, access: &Arc<auth::Access>, listener: auth::Listener) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(
        access.gate(listener),
        auth::http_middleware,
    ))
}

/// Spawns listener tasks that stop on the shared signal and report failures.
struct Spawner {
    stopped: watch::Receiver<bool>,
    failure_sender: mpsc::UnboundedSender<anyhow::Error>,
    max_connections: usize,
    inactivity: std::time::Duration,
    draining: conn_limits::Draining,
    /// TLS acceptors when `--tls-cert` is set.
    tls: Option<tls::Tls>,
}

impl Spawner {
    /// Resolves once shutdown is requested (or the server handle is gone).
    /// `listener` with the connection cap and inactivity timeout.
    fn limited(&self, name: &'static str, listener: TcpListener) -> conn_limits::LimitedListener {
        conn_limits::LimitedListener::with_inactivity(
            name,
            listener,
            self.max_connections,
            self.inactivity,
            self.draining.clone(),
        )
    }

    fn stop_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }

    fn spawn(
        &self,
        name: &'static str,
        serve: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> (&'static str, JoinHandle<anyhow::Result<()>>) {
        let failure_sender = self.failure_sender.clone();
        let task = tokio::spawn(async move {
            let result = serve.await;
            if let Err(error) = &result {
                let _ = failure_sender.send(anyhow::anyhow!("{name} listener failed: {error:#}"));
            }
            result
        });
        (name, task)
    }

    /// Serves `app` on `listener`, over TLS when configured (`ingest`:
    /// client certificates as configured for ingest listeners).
    fn spawn_axum(
        &self,
        name: &'static str,
        listener: TcpListener,
        app: axum::Router,
        ingest: bool,
    ) -> (&'static str, JoinHandle<anyhow::Result<()>>) {
        let stop_signal = self.stop_signal();
        let listener = self.limited(name, listener);
        // the source address feeds the access gate (allow-lists, limits)
        let app = app.into_make_service_with_connect_info::<auth::PeerAddr>();
        let acceptor = self.tls.as_ref().map(|tls| {
            if ingest {
                tls.ingest.clone()
            } else {
                tls.plain.clone()
            }
        });
        self.spawn(name, async move {
            match acceptor {
                None => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop_signal)
                        .await
                }
                Some(acceptor) => {
                    let (connections, local) = tls::accept_loop(listener, acceptor);
                    let listener = tls::TlsListener { connections, local };
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop_signal)
                        .await
                }
            }
            .with_context(|| format!("{name} server failed"))
        })
    }
}
