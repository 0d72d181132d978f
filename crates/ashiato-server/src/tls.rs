//! TLS on every listener (`--tls-cert`, `--tls-key`, optional
//! `--tls-client-ca` for the ingest listeners), with rustls and the `ring`
//! provider.
//!
//! The certificate and key are re-read when either file changes (polled
//! like the tokens file): a renewed certificate is served to new
//! connections without a restart, and a broken pair keeps the previous one.
//! Handshakes run in their own tasks with a deadline, so a client that
//! connects and never speaks TLS holds no accept loop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::conn_limits::{Guarded, LimitedListener};
use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Where the certificate, key and client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates: when set, the ingest listeners require a client
    /// certificate signed by one of them.
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub poll: Duration,
}

impl TlsConfig {
    pub fn new(cert: PathBuf, key: PathBuf) -> TlsConfig {
        TlsConfig {
            cert,
            key,
            client_ca: None,
            poll: Duration::from_secs(2),
        }
    }
}

/// The served certificate, swapped when the files change.
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone(),
        )
    }
}

fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading tls certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing tls certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading tls key {}", key.display()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .with_context(|| format!("unsupported tls key in {}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .with_context(|| format!("{} does not match {}", key.display(), cert.display()))?;
    Ok(certified)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The acceptors of a server: `plain` for the UI/API listener, `ingest`
/// (client certificates required when configured) for the others.
#[derive(Clone)]
pub struct Tls {
    pub plain: TlsAcceptor,
    pub ingest: TlsAcceptor,
}

impl Tls {
    /// Loads the files and starts watching them; the task ends with the
    /// runtime or when aborted.
    pub fn start(config: &TlsConfig) -> anyhow::Result<(Tls, tokio::task::JoinHandle<()>)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(load_certified_key(&config.cert, &config.key)?)),
        });
        let builder = || {
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .context("tls protocol versions")
        };
        let mut plain = builder()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        plain.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut ingest = match &config.client_ca {
            None => plain.clone(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading tls client ca {}", path.display()))?
                {
                    let cert =
                        cert.with_context(|| format!("parsing tls client ca {}", path.display()))?;
                    roots
                        .add(cert)
                        .with_context(|| format!("using tls client ca {}", path.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .context("building the client certificate verifier")?;
                builder()?
                    .with_client_cert_verifier(verifier)
                    .with_cert_resolver(resolver.clone())
            }
        };
        ingest.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let watch = watch_files(config.clone(), resolver);
        Ok((
            Tls {
                plain: TlsAcceptor::from(Arc::new(plain)),
                ingest: TlsAcceptor::from(Arc::new(ingest)),
            },
            watch,
        ))
    }
}

fn watch_files(config: TlsConfig, resolver: Arc<ReloadingCert>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = (stamp(&config.cert), stamp(&config.key));
        let mut ticker = tokio::time::interval(config.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = (stamp(&config.cert), stamp(&config.key));
            if now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (config.cert.clone(), config.key.clone());
            let loaded = tokio::task::spawn_blocking(move || load_certified_key(&cert, &key)).await;
            match loaded {
                Ok(Ok(certified)) => {
                    *resolver
                        .current
                        .write()
                        .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(certified);
                    tracing::info!(cert = %config.cert.display(), "tls certificate reloaded");
                }
                Ok(Err(error)) => tracing::warn!(
                    error = %format!("{error:#}"),
                    "tls certificate or key unusable, keeping the previous one"
                ),
                Err(error) => tracing::warn!(error = %error, "tls reload task failed"),
            }
        }
    })
}

/// One accepted TLS connection and the peer's address.
pub struct TlsConnection {
    stream: TlsStream<Guarded>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Accepts TCP connections and hands over those whose handshake finished.
/// Connections come from the listener's cap and inactivity guard
/// (`conn_limits`), so a handshake counts against the cap like any
/// connection and a stalled one is closed like any other.
pub fn accept_loop(
    mut listener: LimitedListener,
    acceptor: TlsAcceptor,
) -> (mpsc::Receiver<TlsConnection>, SocketAddr) {
    let local = axum::serve::Listener::local_addr(&listener)
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = listener.accept_limited().await;
            if sender.is_closed() {
                return;
            }
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender
                            .send(TlsConnection {
                                stream,
                                local,
                                remote,
                            })
                            .await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(peer = %remote, error = %error, "tls handshake failed");
                    }
                    Err(_) => tracing::debug!(peer = %remote, "tls handshake timed out"),
                }
            });
        }
    });
    (receiver, local)
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The peer address tonic's gate reads, as for plain TCP.
impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: Some(self.local),
            remote_addr: Some(self.remote),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for crate::auth::PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> crate::auth::PeerAddr {
        crate::auth::PeerAddr(*stream.remote_addr())
    }
}

/// An axum listener over [`accept_loop`].
pub struct TlsListener {
    pub connections: mpsc::Receiver<TlsConnection>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConnection, SocketAddr) {
        loop {
            if let Some(connection) = self.connections.recv().await {
                let remote = connection.remote;
                return (connection, remote);
            }
            // the accept loop ended (cannot happen while the listener lives):
            // wait for shutdown instead of spinning
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
