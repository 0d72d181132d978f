//! The part of ingest both OTLP transports share: appending decoded items
//! to the store and classifying why that failed.

use std::sync::Arc;
use std::time::Duration;

use ashiato_model::{LogRecord, Span};
use ashiato_store::{AppendError, Store, StoreError};

use crate::errors::{ErrorBatch, ErrorSink};
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
    recent: Arc<RecentBodies>,
}

impl Ingest {
    /// Ingest into `store` without error tracking (handler tests).
    pub fn new(store: Store) -> Ingest {
        Ingest {
            store,
            errors: None,
            recent: Arc::default(),
        }
    }

    /// Ingest into `store`, handing every acknowledged error candidate to
    /// the tracker behind `errors`.
    pub(crate) fn with_error_tracking(store: Store, errors: ErrorSink) -> Ingest {
        Ingest {
            store,
            errors: Some(errors),
            recent: Arc::default(),
        }
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
        self.store
            .append_spans(spans)
            .await
            .map_err(AppendFailure::from)?;
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
        self.store
            .append_logs(logs)
            .await
            .map_err(AppendFailure::from)?;
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
