//! Error tracking wiring: the ingest hook, the tracker thread, the settle
//! loop, and the issue API.
//!
//! The hook lives in `ingest.rs` so every protocol (OTLP, Datadog, …)
//! passes through it: candidates are extracted from a batch before it is
//! appended (cheap; nearly always empty), with the parent links of their
//! traces that the batch holds (so the tracker rarely reads a trace back
//! from the store), and handed over after the store acknowledged it. Hand-over goes through a bounded channel to one
//! tracker thread; when the channel is full the ingest request waits
//! (back-pressure) instead of dropping an error.
//!
//! The hook reaches the tracker through an [`ErrorSink`] that the server
//! puts into its [`crate::ingest::Ingest`] handle, so several servers can
//! run in one process (tests) without sharing a tracker.
//!
//! The thread owns [`Tracker`]: a loop that takes candidates, settles
//! traces whose window passed (in 100 ms ticks), checkpoints the watermark
//! about once a second, and prunes hourly. Beside it, a recovery thread
//! scans the store for what the last run may have left undecided and feeds
//! it through the same channel (counted idempotently). Issue events go to
//! the notifier ([`crate::notify`]), which never blocks this thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use ashiato_errors::extract::{log_candidates, span_candidates, span_links};
use ashiato_errors::{Candidate, IssueStore, SpanLink, TraceSource, Tracker, TreeNode};
use ashiato_model::{LogRecord, Span, TraceId};
use ashiato_store::{LogFilter, SpanFilter, Store};

use crate::notify::{NotificationFigures, Notifier, NotifyConfig};

/// Error tracking settings of `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorsConfig {
    /// Whether errors are tracked at all (`--error-tracking off` measures
    /// what tracking costs; the issue API still answers from the database).
    pub enabled: bool,
    /// How long after a trace's last error candidate it is decided.
    pub settle: Duration,
    pub notify: NotifyConfig,
}

impl Default for ErrorsConfig {
    fn default() -> ErrorsConfig {
        ErrorsConfig {
            enabled: true,
            settle: ashiato_errors::DEFAULT_SETTLE,
            notify: NotifyConfig::default(),
        }
    }
}

/// Batches of candidates waiting for the tracker thread.
const CHANNEL_BATCHES: usize = 1_024;
/// How often the watermark is recorded.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Due traces are decided at most this often (one transaction per tick).
/// A round writes each touched issue, hour and facet value once, so longer
/// ticks mean fewer writes per occurrence (at 100 ms, facet upserts were
/// most of the tracker's SQLite time); half a second is small beside the
/// settling window.
const SETTLE_TICK: Duration = Duration::from_millis(500);
/// How often old occurrence rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

enum Message {
    Candidates(ErrorBatch),
    /// The recovery scan has sent everything it found.
    RecoveryDone,
    Stop,
}

/// Candidates per message from the recovery scan.
const RECOVERY_CHUNK: usize = 1_000;

/// The ingest side of the tracker's channel.
#[derive(Clone)]
pub struct ErrorSink {
    sender: SyncSender<Message>,
}

/// What one ingested batch hands to the tracker: its candidates and, for
/// span batches, the parent links of their traces that the batch holds.
#[derive(Debug, Default)]
pub struct ErrorBatch {
    candidates: Vec<Candidate>,
    links: Vec<SpanLink>,
}

impl ErrorBatch {
    fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}

/// Candidates of a span batch and their parent links (before it is
/// appended, which moves the spans).
pub fn spans_candidates(spans: &[Span]) -> ErrorBatch {
    let mut batch = ErrorBatch::default();
    span_candidates(spans, &mut batch.candidates);
    span_links(spans, &batch.candidates, &mut batch.links);
    batch
}

/// Candidates of a log batch (before it is appended).
pub fn logs_candidates(logs: &[LogRecord]) -> ErrorBatch {
    let mut batch = ErrorBatch::default();
    log_candidates(logs, &mut batch.candidates);
    batch
}

impl ErrorSink {
    /// Hands candidates of an acknowledged batch to the tracker; waits (off the
    /// async workers) when the tracker is behind.
    pub async fn hand_over(&self, batch: ErrorBatch) {
        if batch.is_empty() {
            return;
        }
        let sender = self.sender.clone();
        match sender.try_send(Message::Candidates(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) => {
                tracing::debug!("error tracker is behind, ingest waits");
                let sent = tokio::task::spawn_blocking(move || sender.send(message)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    tracing::error!("error tracker stopped, candidates left for the recovery scan");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("error tracker stopped, candidates left for the recovery scan");
            }
        }
    }
}

/// The running error tracking: tracker thread, notifier, API handle.
pub struct ErrorTracking {
    /// `None` when tracking is off.
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    issues: Arc<IssueStore>,
    notifier: Notifier,
    /// Traces holding candidates not yet decided, as the tracker thread
    /// last saw it (for `/metrics`).
    pending_traces: Arc<AtomicU64>,
}

impl ErrorTracking {
    /// Opens `<data_dir>/errors.sqlite`, starts the tracker thread and the
    /// notifier; [`ErrorTracking::sink`] is what ingest hands candidates to. Notification links use
    /// `--public-url`, else the UI listener's bound address.
    pub fn start(
        data_dir: PathBuf,
        config: &ErrorsConfig,
        store: Store,
        http: std::net::SocketAddr,
    ) -> anyhow::Result<ErrorTracking> {
        let path = data_dir.join(ashiato_errors::DB_FILE);
        let mut notify = config.notify.clone();
        notify
            .public_url
            .get_or_insert_with(|| format!("http://{http}"));
        let notifier = Notifier::start(notify, &path)
            .with_context(|| format!("starting webhook notifications on {}", path.display()))?;
        if !config.enabled {
            // the watermark stays where it is, so turning tracking on again
            // scans (and counts) what arrived while it was off
            tracing::info!("error tracking is off");
            if let Err(error) = Tracker::forget_clean_stop(&path) {
                tracing::warn!(%error, "resetting the error tracker's clean-stop mark failed");
            }
            let issues = Arc::new(
                IssueStore::open(&path)
                    .with_context(|| format!("opening the errors database {}", path.display()))?,
            );
            return Ok(ErrorTracking {
                sender: None,
                thread: None,
                issues,
                notifier,
                pending_traces: Arc::default(),
            });
        }
        let source = Box::new(StoreSource { store });
        let mut tracker = Tracker::open(&path, config.settle, source.clone_source())
            .with_context(|| format!("opening the errors database {}", path.display()))?;
        let since = tracker
            .recovery_since()
            .with_context(|| format!("reading the errors database {}", path.display()))?;
        let issues = Arc::new(
            IssueStore::open(&path)
                .with_context(|| format!("opening the errors database {}", path.display()))?,
        );
        let (sender, receiver) = sync_channel(CHANNEL_BATCHES);
        let events = notifier.clone();
        let pending_traces = Arc::new(AtomicU64::new(0));
        let backlog = pending_traces.clone();
        let thread = std::thread::Builder::new()
            .name("ashiato-errors".to_owned())
            .spawn(move || run(tracker, receiver, events, &backlog))
            .context("starting the error tracker thread")?;
        // the scan runs beside the tracker (which keeps serving ingest) and
        // feeds it through the same channel; after a clean stop there is
        // nothing to re-derive
        if let Some(since) = since {
            let recovery_sender = sender.clone();
            std::thread::Builder::new()
                .name("ashiato-errors-recovery".to_owned())
                .spawn(move || recover(&source, since, &recovery_sender))
                .context("starting the error recovery thread")?;
        } else {
            tracing::info!("error tracker stopped cleanly last time: no recovery scan");
        }
        Ok(ErrorTracking {
            sender: Some(sender),
            thread: Some(thread),
            issues,
            notifier,
            pending_traces,
        })
    }

    /// What `/metrics` reports about error tracking: traces waiting to be
    /// decided, and of the recent webhook deliveries (the ones
    /// `GET /api/v1/notifications` lists) those waiting for a retry and
    /// those that failed for good.
    pub fn figures_source(&self) -> Arc<dyn Fn() -> ErrorFigures + Send + Sync> {
        let notifier = self.notifier.clone();
        let pending_traces = self.pending_traces.clone();
        Arc::new(move || figures(&notifier, &pending_traces))
    }

    /// The handle ingest uses to hand candidates over (`None` when
    /// tracking is off).
    pub fn sink(&self) -> Option<ErrorSink> {
        self.sender.clone().map(|sender| ErrorSink { sender })
    }

    /// The issue and notification routes for the API listener.
    pub fn api_router(&self) -> axum::Router {
        let notifier = self.notifier.clone();
        ashiato_api::issues::router(ashiato_api::issues::IssuesState {
            issues: self.issues.clone(),
            notifications: Arc::new(move || notifier.deliveries()),
        })
    }

    /// Lets the thread decide everything still pending (listeners are
    /// stopped by then, so no more candidates arrive; the store must still
    /// be open).
    /// Then the notifier stores the events of that last round and stops.
    pub async fn shutdown(mut self) {
        let sender = self.sender.take();
        let thread = self.thread.take();
        let notifier = self.notifier.clone();
        // the send may wait for a full channel: off the async workers
        let joined = tokio::task::spawn_blocking(move || {
            let joined = sender.map(|sender| {
                let _ = sender.send(Message::Stop);
                thread.map(JoinHandle::join)
            });
            notifier.shutdown();
            joined
        })
        .await;
        if !matches!(joined, Ok(None | Some(None | Some(Ok(()))))) {
            tracing::error!("error tracker thread ended abnormally");
        }
    }
}

/// The figures behind [`ErrorTracking::figures_source`].
fn figures(notifier: &Notifier, pending_traces: &AtomicU64) -> ErrorFigures {
    ErrorFigures {
        pending_traces: pending_traces.load(Ordering::Relaxed),
        notifications: notifier.figures(),
    }
}

/// Error tracking figures for `/metrics` (see [`ErrorTracking::figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorFigures {
    pub pending_traces: u64,
    pub notifications: NotificationFigures,
}

fn run(
    mut tracker: Tracker,
    receiver: Receiver<Message>,
    notifier: Notifier,
    pending_traces: &AtomicU64,
) {
    let mut last_checkpoint = Instant::now();
    let mut last_prune = Instant::now();
    let mut last_settle = Instant::now();
    loop {
        let now = Instant::now();
        // decisions are made in ticks, so one transaction counts the
        // occurrences of many batches (SQLite cost is per statement and per
        // commit, not per byte)
        let wait = tracker
            .next_deadline()
            .map_or(CHECKPOINT_EVERY, |deadline| {
                deadline.saturating_duration_since(now)
            })
            .clamp(SETTLE_TICK, CHECKPOINT_EVERY);
        let stop = match receiver.recv_timeout(wait) {
            Ok(Message::Candidates(batch)) => {
                tracker.observe_with_links(batch.candidates, batch.links, Instant::now());
                // take what else is queued before settling, bounded so a
                // channel that never empties cannot starve settling
                let mut stop = false;
                for _ in 0..CHANNEL_BATCHES {
                    let Ok(message) = receiver.try_recv() else {
                        break;
                    };
                    match message {
                        Message::Candidates(more) => {
                            tracker.observe_with_links(more.candidates, more.links, Instant::now())
                        }
                        Message::RecoveryDone => tracker.set_recovering(false),
                        Message::Stop => stop = true,
                    }
                }
                stop
            }
            Ok(Message::RecoveryDone) => {
                tracker.set_recovering(false);
                false
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        if stop || last_settle.elapsed() >= SETTLE_TICK {
            settle(&mut tracker, &notifier, stop);
            last_settle = Instant::now();
        }
        pending_traces.store(tracker.pending_traces() as u64, Ordering::Relaxed);
        if stop {
            if let Err(error) = tracker.stop_cleanly() {
                tracing::warn!(%error, "recording the error tracker's stop failed");
            }
            tracing::info!("error tracker stopped");
            return;
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&mut tracker);
            last_checkpoint = Instant::now();
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            if let Err(error) = tracker.prune() {
                tracing::warn!(%error, "pruning old occurrences failed");
            }
            last_prune = Instant::now();
        }
    }
}

fn settle(tracker: &mut Tracker, notifier: &Notifier, everything: bool) {
    match tracker.settle(Instant::now(), everything) {
        Ok(events) => {
            for event in events {
                notifier.notify(event);
            }
        }
        // candidates of a failed transaction are re-derived by the next
        // start's recovery scan (the watermark does not pass them)
        Err(error) => tracing::error!(%error, "counting error occurrences failed"),
    }
}

fn checkpoint(tracker: &mut Tracker) {
    if let Err(error) = tracker.checkpoint() {
        tracing::warn!(%error, "recording the error tracker watermark failed");
    }
}

/// The store as the tracker sees it.
struct StoreSource {
    store: Store,
}

impl TraceSource for StoreSource {
    fn trace_tree(&self, trace_id: TraceId) -> Vec<TreeNode> {
        match self.store.get_trace(trace_id) {
            Ok(spans) => spans
                .iter()
                .map(|span| TreeNode {
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    service: span.service_name().to_owned(),
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, trace_id = %trace_id, "reading a trace for error dedupe failed");
                Vec::new()
            }
        }
    }
}

impl StoreSource {
    fn clone_source(&self) -> Box<StoreSource> {
        Box::new(StoreSource {
            store: self.store.clone(),
        })
    }
}

/// The recovery scan: candidates of every span and log stored since
/// `since`, sent in chunks (a full channel slows the scan, not ingest
/// alone), then [`Message::RecoveryDone`] so the watermark may move again.
fn recover(source: &StoreSource, since: u64, sender: &SyncSender<Message>) {
    let started = Instant::now();
    let mut found = 0usize;
    let mut chunk = Vec::new();
    let mut flush = |chunk: &mut Vec<Candidate>| -> bool {
        found += chunk.len();
        chunk.is_empty()
            || sender
                .send(Message::Candidates(ErrorBatch {
                    candidates: std::mem::take(chunk),
                    links: Vec::new(),
                }))
                .is_ok()
    };
    let span_filter = SpanFilter {
        start_min_ns: Some(since),
        ..SpanFilter::default()
    };
    let mut open = true;
    let scanned = source.store.scan_spans(&span_filter, &mut |span| {
        span_candidates(std::slice::from_ref(span), &mut chunk);
        if chunk.len() >= RECOVERY_CHUNK && !flush(&mut chunk) {
            open = false;
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    if let Err(error) = scanned {
        tracing::error!(%error, "error recovery: scanning spans failed");
        return;
    }
    let log_filter = LogFilter {
        time_min_ns: Some(since),
        min_severity_number: Some(ashiato_model::Severity::Error.min_number()),
        ..LogFilter::default()
    };
    let scanned = source.store.scan_logs(&log_filter, &mut |log| {
        log_candidates(std::slice::from_ref(log), &mut chunk);
        if chunk.len() >= RECOVERY_CHUNK && !flush(&mut chunk) {
            open = false;
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    if let Err(error) = scanned {
        tracing::error!(%error, "error recovery: scanning logs failed");
        return;
    }
    if !open || !flush(&mut chunk) || sender.send(Message::RecoveryDone).is_err() {
        // the tracker stopped first; the next start scans again
        return;
    }
    tracing::info!(
        since_unix_nano = since,
        candidates = found,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "error recovery scan done"
    );
}
