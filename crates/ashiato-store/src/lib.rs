//! ashiato's embedded store.
//!
//! CONTRACT (the public API below is what `ashiato-query` and
//! `ashiato-server` build against; the bodies are placeholders until the
//! store lands).
//!
//! - `append_*` returns only after the batch is in the write-ahead log and
//!   fsynced (group commit); the data is queryable when it returns.
//! - `append_*` never buffers without bound: when the writer is behind it
//!   fails fast with `AppendError::Overloaded`, which the server turns into
//!   429/503 + Retry-After or gRPC UNAVAILABLE.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use ashiato_model::{LogRecord, Span, TraceId};

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root of everything the store writes (`wal/`, `segments/`, `catalog.sqlite`).
    pub data_dir: PathBuf,
    /// Whole segments whose newest data is older than this are deleted.
    pub retention: Duration,
}

/// Failures of the store itself (disk, corruption that cannot be skipped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("io error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("store is closed")]
    Closed,
}

/// Why an append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The writer is behind; the client should retry after the given delay.
    #[error("store is overloaded, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Predicates on single spans that the store may push down (segment pruning
/// by time and service; later column predicates). All set fields must hold.
#[derive(Debug, Clone, Default)]
pub struct SpanFilter {
    /// Span start time range, inclusive, unix nanos.
    pub start_min_ns: Option<u64>,
    pub start_max_ns: Option<u64>,
    /// `service.name` of the span's resource, exact.
    pub service: Option<String>,
    /// Span name, exact.
    pub name: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Only spans with status ERROR.
    pub error_only: bool,
    /// Span or resource attribute `key` whose value matches the text
    /// (`AttrValue::matches_text`); every pair must match.
    pub attributes: Vec<(String, String)>,
}

/// Predicates on log records. All set fields must hold.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub time_min_ns: Option<u64>,
    pub time_max_ns: Option<u64>,
    pub service: Option<String>,
    /// Minimum effective severity number (1..=24).
    pub min_severity_number: Option<u8>,
    pub trace_id: Option<TraceId>,
    /// Case-insensitive substring of the body text.
    pub body_contains: Option<String>,
}

/// Per-service counters over all stored spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

/// Per-operation (span name) counters of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationStats {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

/// A handle to the open store; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Store {}

impl Store {
    /// Opens (or creates) the store under `config.data_dir`, replaying the
    /// write-ahead log. A torn WAL tail is skipped with a warning.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let _ = config;
        unimplemented!("store placeholder")
    }

    /// Durably appends spans; returns once they are in the fsynced WAL.
    pub async fn append_spans(&self, spans: Vec<Span>) -> Result<(), AppendError> {
        let _ = spans;
        unimplemented!("store placeholder")
    }

    /// Durably appends log records; returns once they are in the fsynced WAL.
    pub async fn append_logs(&self, logs: Vec<LogRecord>) -> Result<(), AppendError> {
        let _ = logs;
        unimplemented!("store placeholder")
    }

    /// Every stored span of one trace (any order); empty when unknown.
    pub fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let _ = trace_id;
        unimplemented!("store placeholder")
    }

    /// Calls `visit` for every stored span matching `filter` until it breaks.
    /// Blocking; run it off the async runtime.
    pub fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let _ = (filter, visit);
        unimplemented!("store placeholder")
    }

    /// Calls `visit` for every stored log record matching `filter`, newest
    /// first where the store can, until it breaks. Blocking.
    pub fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let _ = (filter, visit);
        unimplemented!("store placeholder")
    }

    /// Span and error counts per service, by name.
    pub fn service_stats(&self) -> Vec<ServiceStats> {
        unimplemented!("store placeholder")
    }

    /// Span and error counts per operation of one service, by name.
    pub fn operation_stats(&self, service: &str) -> Vec<OperationStats> {
        let _ = service;
        unimplemented!("store placeholder")
    }

    /// Stops accepting appends, waits for in-flight ones, syncs the WAL.
    pub async fn close(&self) -> Result<(), StoreError> {
        unimplemented!("store placeholder")
    }
}
