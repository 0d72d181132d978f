//! Connection limits on every listener: a cap on open connections with a
//! logged refusal, and an inactivity timeout.
//!
//! Without them, idle or slow sockets pile up until the process runs out
//! of file descriptors, and then every listener stops accepting silently
//! (health checks included). Here:
//!
//! - each listener holds at most `max_connections` connections
//!   (`--max-connections`); beyond it a new connection is accepted and
//!   closed at once, and a warning says so (at most once a second, with
//!   the count), so the file-descriptor table never fills and the other
//!   listeners (health checks on the HTTP one) keep answering;
//! - a connection on which nothing was read or written for
//!   [`INACTIVITY_TIMEOUT`] is closed: idle keep-alive connections, clients
//!   that stop half-way through their headers or body, and readers that
//!   stop reading. Once shutdown has begun the period is
//!   [`DRAIN_INACTIVITY`], so a stalled body does not hold the drain. A client that trickles a byte within every period is not caught
//!   by this; the per-request body limit still bounds what it can hold.
//!
//! The binary raises the soft file-descriptor limit to the hard one at
//! start (`ashiato-cli`), so the caps, not the limit, decide.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// How long a connection may go without a byte read or written.
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(30);

/// Once shutdown has begun, how long a connection may stay inactive: a
/// stalled body must not hold the drain for its whole timeout.
pub const DRAIN_INACTIVITY: Duration = Duration::from_secs(2);

/// How often a waiting connection checks its inactivity (and whether
/// shutdown has begun).
const TICK: Duration = Duration::from_millis(500);

/// Set when shutdown begins; shared by every connection of a server.
#[derive(Clone, Default, Debug)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A listener that caps its connections and times out inactive ones.
pub struct LimitedListener {
    name: &'static str,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    max_connections: usize,
    inactivity: Duration,
    draining: Draining,
    refused: u64,
    last_warning: Option<Instant>,
}

impl LimitedListener {
    pub fn with_inactivity(
        name: &'static str,
        listener: TcpListener,
        max_connections: usize,
        inactivity: Duration,
        draining: Draining,
    ) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        LimitedListener {
            name,
            listener,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            inactivity,
            draining,
            refused: 0,
            last_warning: None,
        }
    }

    /// The next connection within the cap; connections beyond it are
    /// closed (and counted in a warning), accept errors waited out.
    pub async fn accept_limited(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // out of descriptors or a connection reset before it
                    // was accepted: wait a little rather than spin
                    tracing::warn!(listener = self.name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let guarded =
                        Guarded::new(stream, permit, self.inactivity, self.draining.clone());
                    return (guarded, addr);
                }
                Err(_) => {
                    drop(stream);
                    self.refused += 1;
                    self.warn_refusals();
                }
            }
        }
    }

    fn warn_refusals(&mut self) {
        let due = self
            .last_warning
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1));
        if due {
            tracing::warn!(
                listener = self.name,
                max_connections = self.max_connections,
                refused = self.refused,
                "connection limit reached, closing new connections"
            );
            self.last_warning = Some(Instant::now());
            self.refused = 0;
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        self.accept_limited().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection holding its place under the cap, closed when inactive.
pub struct Guarded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    inactivity: Duration,
    draining: Draining,
    last_progress: tokio::time::Instant,
    tick: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        inactivity: Duration,
        draining: Draining,
    ) -> Guarded {
        Guarded {
            stream,
            _permit: permit,
            inactivity,
            draining,
            last_progress: tokio::time::Instant::now(),
            tick: Box::pin(tokio::time::sleep(TICK)),
        }
    }

    fn progressed(&mut self) {
        self.last_progress = tokio::time::Instant::now();
    }

    /// After the inner IO returned pending: an error once the connection
    /// was inactive too long, else a wake-up at the next tick.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let limit = if self.draining.is_draining() {
                self.inactivity.min(DRAIN_INACTIVITY)
            } else {
                self.inactivity
            };
            let now = tokio::time::Instant::now();
            if now.duration_since(self.last_progress) >= limit {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection inactive for too long",
                ));
            }
            if self.tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.tick.as_mut().reset(now + TICK.min(limit));
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The connections of `listener` as the stream tonic serves, until `stop`
/// resolves (then the listening socket is closed).
pub fn incoming(
    mut listener: LimitedListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tonic::codegen::tokio_stream::wrappers::ReceiverStream<io::Result<Guarded>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                (io, _) = listener.accept_limited() => {
                    if sender.send(Ok(io)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(receiver)
}
