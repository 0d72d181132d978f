//! The part of ingest both OTLP transports share: appending decoded items
//! to the store and classifying why that failed.

use std::sync::Arc;
use std::time::Duration;

use ashiato_model::{LogRecord, Span};
use ashiato_store::{AppendError, Store, StoreError};

use crate::errors::{ErrorBatch, ErrorSink};
use crate::metrics::{Metrics, Protocol, Signal};

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
    /// The store failed; details are logged.
    #[error("storage failure")]
    Storage,
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
            metrics: Arc::default(),
            protocol: Protocol::OtlpHttp,
        }
    }

    /// Ingest into `store`, handing every acknowledged error candidate to
    /// the tracker behind `errors`.
    pub(crate) fn with_error_tracking(store: Store, errors: ErrorSink) -> Ingest {
        Ingest {
            store,
            errors: Some(errors),
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
    fn count_append<T>(
        &self,
        signal: Signal,
        count: usize,
        result: Result<T, AppendError>,
    ) -> Result<T, AppendFailure> {
        let stored = result.is_ok();
        self.metrics
            .appended(self.protocol, signal, count as u64, stored);
        if let Err(AppendError::Overloaded { .. }) = &result {
            self.metrics.overloaded(self.protocol);
        }
        result.map_err(AppendFailure::from)
    }

    /// Appends spans; an empty batch is acknowledged without touching the store.
    pub async fn append_spans(&self, spans: Vec<Span>) -> Result<(), AppendFailure> {
        if spans.is_empty() {
            return Ok(());
        }
        // error tracking sees every acknowledged span: candidates are taken
        // before the batch moves into the store, handed over once it is durable
        let candidates = self
            .errors
            .as_ref()
            .map(|_| crate::errors::spans_candidates(&spans));
        let count = spans.len();
        let appended = self.store.append_spans(spans).await;
        self.count_append(Signal::Spans, count, appended)?;
        self.hand_over(candidates).await;
        Ok(())
    }

    /// Appends log records; an empty batch is acknowledged without touching the store.
    pub async fn append_logs(&self, logs: Vec<LogRecord>) -> Result<(), AppendFailure> {
        if logs.is_empty() {
            return Ok(());
        }
        let candidates = self
            .errors
            .as_ref()
            .map(|_| crate::errors::logs_candidates(&logs));
        let count = logs.len();
        let appended = self.store.append_logs(logs).await;
        self.count_append(Signal::Logs, count, appended)?;
        self.hand_over(candidates).await;
        Ok(())
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
