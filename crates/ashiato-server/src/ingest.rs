//! The part of ingest both OTLP transports share: appending decoded items
//! to the store and classifying why that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ashiato_model::{LogRecord, Span};
use ashiato_store::{AppendError, Store, StoreError};

use crate::errors::{ErrorBatch, ErrorSink};
use crate::future_times;
use crate::intake::BodyBudget;
use crate::metrics::{Metrics, Protocol, Signal};
use crate::resend::{BodyDigest, RecentBodies};

/// Why decoded items were not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AppendFailure {
    /// The store is behind; the client should retry later.
    #[error("server is overloaded, retry after {}s", retry_after_seconds(*retry_after))]
    Overloaded { retry_after: Duration },
    /// The server is shutting down; another attempt (after restart) may work.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The batch is too large for one write-ahead log record; resending it
    /// will not help.
    #[error("batch is too large to store in one piece")]
    TooLarge,
    /// The disk is full: retryable (the condition clears once space is
    /// freed), so clients are told to come back instead of dropping data.
    #[error("disk full on the server, retry after {}s", DISK_FULL_RETRY.as_secs())]
    DiskFull,
    /// The store failed; details are logged.
    #[error("storage failure")]
    Storage,
}

/// The delay asked of clients while the disk is full.
pub const DISK_FULL_RETRY: Duration = Duration::from_secs(10);

/// How long after the last write that failed for a full disk `/readyz`
/// keeps saying not ready, unless a write succeeds first. Held for a while
/// rather than cleared at once because a load balancer that follows
/// `/readyz` stops sending the writes that would show the disk is fine.
const DISK_FULL_HOLD: Duration = Duration::from_secs(10);

/// Whether writes are failing for a full disk, shared by ingest (which
/// records it) and the readiness probe (which reports it).
#[derive(Clone, Default, Debug)]
pub struct DiskHealth(Arc<AtomicU64>);

impl DiskHealth {
    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_millis() as u64)
            .max(1)
    }

    fn record_full(&self) {
        self.0.store(Self::now_ms(), Ordering::Release);
    }

    fn record_ok(&self) {
        if self.0.load(Ordering::Relaxed) != 0 {
            self.0.store(0, Ordering::Release);
        }
    }

    /// True while the last write failed for a full disk less than
    /// `DISK_FULL_HOLD` ago and none succeeded since.
    pub fn is_full(&self) -> bool {
        let failed_at = self.0.load(Ordering::Acquire);
        failed_at != 0
            && Self::now_ms().saturating_sub(failed_at) < DISK_FULL_HOLD.as_millis() as u64
    }
}

/// Whole seconds to put in `Retry-After`: rounded up, at least one.
pub fn retry_after_seconds(delay: Duration) -> u64 {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    seconds.max(1)
}

impl From<AppendError> for AppendFailure {
    fn from(error: AppendError) -> AppendFailure {
        match error {
            AppendError::Overloaded { retry_after } => {
                tracing::warn!(
                    retry_after_ms = retry_after.as_millis() as u64,
                    "store overloaded, asking client to retry"
                );
                AppendFailure::Overloaded { retry_after }
            }
            AppendError::Closed => AppendFailure::ShuttingDown,
            AppendError::Store(StoreError::BatchTooLarge) => AppendFailure::TooLarge,
            AppendError::Store(error) if error.is_disk_full() => {
                tracing::error!(%error, "append refused: disk full, clients asked to retry");
                AppendFailure::DiskFull
            }
            other => {
                tracing::error!(error = %other, "append to store failed");
                AppendFailure::Storage
            }
        }
    }
}

/// Where decoded telemetry goes, shared by every protocol: the store, then
/// error tracking. Cheap to clone; every listener's state holds one.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    errors: Option<ErrorSink>,
    recent: Arc<RecentBodies>,
    disk: DiskHealth,
    /// Shared by every listener's clone: bodies in flight across all of them.
    budget: BodyBudget,
    /// Where the per-protocol item counters go (`/metrics`), and the
    /// protocol this handle counts as (see [`Ingest::for_protocol`]).
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

impl Ingest {
    /// Ingest into `store` without error tracking (handler tests).
    pub fn new(store: Store) -> Ingest {
        Ingest {
            store,
            errors: None,
            recent: Arc::default(),
            disk: DiskHealth::default(),
            budget: BodyBudget::new(crate::config::DEFAULT_MAX_INFLIGHT_BYTES),
            metrics: Arc::default(),
            protocol: Protocol::OtlpHttp,
        }
    }

    /// Holds request bodies across all listeners to `bytes` (`--max-inflight-size`).
    pub(crate) fn with_body_budget(mut self, bytes: usize) -> Ingest {
        self.budget = BodyBudget::new(bytes);
        self
    }

    /// The budget request bodies are charged to.
    pub(crate) fn body_budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// Reports full-disk failures to `disk` (the readiness probe's).
    pub(crate) fn reporting_disk(mut self, disk: DiskHealth) -> Ingest {
        self.disk = disk;
        self
    }

    /// Ingest into `store`, handing every acknowledged error candidate to
    /// the tracker behind `errors`.
    pub(crate) fn with_error_tracking(store: Store, errors: ErrorSink) -> Ingest {
        Ingest {
            store,
            errors: Some(errors),
            recent: Arc::default(),
            disk: DiskHealth::default(),
            budget: BodyBudget::new(crate::config::DEFAULT_MAX_INFLIGHT_BYTES),
            metrics: Arc::default(),
            protocol: Protocol::OtlpHttp,
        }
    }

    /// The same ingest, counting into `metrics`.
    pub(crate) fn with_metrics(self, metrics: Arc<Metrics>) -> Ingest {
        Ingest { metrics, ..self }
    }

    /// The handle a listener of `protocol` appends through, so its items
    /// are counted under that protocol.
    pub fn for_protocol(&self, protocol: Protocol) -> Ingest {
        Ingest {
            protocol,
            ..self.clone()
        }
    }

    /// Counts items of a decoded request that were rejected one by one
    /// (the rest goes to `append_*`).
    pub fn count_invalid(&self, signal: Signal, count: u64) {
        self.metrics.invalid(self.protocol, signal, count);
    }

    /// Counts the outcome of appending `count` items of `signal`.
    fn count_append(&self, signal: Signal, count: usize, result: &Result<(), AppendError>) {
        let stored = result.is_ok();
        self.metrics
            .appended(self.protocol, signal, count as u64, stored);
        if let Err(AppendError::Overloaded { .. }) = result {
            self.metrics.overloaded(self.protocol);
        }
    }

    /// Appends spans; an empty batch is acknowledged without touching the store.
    pub async fn append_spans(&self, mut spans: Vec<Span>) -> Result<(), AppendFailure> {
        if spans.is_empty() {
            return Ok(());
        }
        let moved = future_times::clamp_spans(&mut spans, future_times::now_unix_nano());
        if moved > 0 {
            tracing::warn!(moved, "spans dated in the future moved back to now");
        }
        // error tracking sees every acknowledged span: candidates are taken
        // before the batch moves into the store, handed over once it is durable
        let candidates = self
            .errors
            .as_ref()
            .map(|_| crate::errors::spans_candidates(&spans));
        let count = spans.len();
        let appended = self.store.append_spans(spans).await;
        self.count_append(Signal::Spans, count, &appended);
        self.settle(appended)?;
        self.hand_over(candidates).await;
        Ok(())
    }

    /// Appends log records; an empty batch is acknowledged without touching the store.
    pub async fn append_logs(&self, mut logs: Vec<LogRecord>) -> Result<(), AppendFailure> {
        if logs.is_empty() {
            return Ok(());
        }
        let moved = future_times::clamp_logs(&mut logs, future_times::now_unix_nano());
        if moved > 0 {
            tracing::warn!(moved, "log records dated in the future moved back to now");
        }
        let candidates = self
            .errors
            .as_ref()
            .map(|_| crate::errors::logs_candidates(&logs));
        let count = logs.len();
        let appended = self.store.append_logs(logs).await;
        self.count_append(Signal::Logs, count, &appended);
        self.settle(appended)?;
        self.hand_over(candidates).await;
        Ok(())
    }

    /// Appends the spans of a request body unless the same body was
    /// acknowledged moments ago (a resend after a lost acknowledgement,
    /// see `resend.rs`): then it is acknowledged again, not stored again.
    pub async fn append_spans_once(
        &self,
        digest: BodyDigest,
        spans: Vec<Span>,
    ) -> Result<(), AppendFailure> {
        if self.recent.seen(digest) {
            tracing::debug!(
                spans = spans.len(),
                "resent spans acknowledged again, not stored"
            );
            return Ok(());
        }
        self.append_spans(spans).await?;
        self.recent.remember(digest);
        Ok(())
    }

    /// [`Ingest::append_spans_once`] for log records. Only a body whose
    /// every record carries its time identifies its data: two timeless
    /// records with the same text may be two events, so such a body is
    /// always stored.
    pub async fn append_logs_once(
        &self,
        digest: BodyDigest,
        logs: Vec<LogRecord>,
    ) -> Result<(), AppendFailure> {
        if logs.iter().any(|log| log.effective_time_unix_nano() == 0) {
            return self.append_logs(logs).await;
        }
        if self.recent.seen(digest) {
            tracing::debug!(
                logs = logs.len(),
                "resent log records acknowledged again, not stored"
            );
            return Ok(());
        }
        self.append_logs(logs).await?;
        self.recent.remember(digest);
        Ok(())
    }

    /// Classifies an append's outcome and keeps the disk state current.
    fn settle(&self, result: Result<(), AppendError>) -> Result<(), AppendFailure> {
        match result.map_err(AppendFailure::from) {
            Ok(()) => {
                self.disk.record_ok();
                Ok(())
            }
            Err(AppendFailure::DiskFull) => {
                self.disk.record_full();
                Err(AppendFailure::DiskFull)
            }
            Err(failure) => Err(failure),
        }
    }

    async fn hand_over(&self, candidates: Option<ErrorBatch>) {
        if let (Some(errors), Some(candidates)) = (&self.errors, candidates) {
            errors.hand_over(candidates).await;
        }
    }
}

impl From<Store> for Ingest {
    fn from(store: Store) -> Ingest {
        Ingest::new(store)
    }
}

/// The partial-success message for metrics, which ashiato does not store.
pub const METRICS_NOT_STORED: &str = "metrics are not stored by ashiato";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
