//! Trace and log queries over the store: trace search, trace assembly,
//! service and operation statistics, log search.
//!
//! Everything here blocks (store scans read segments from disk), so async
//! callers run these methods on `tokio::task::spawn_blocking`. The query
//! layer speaks the domain model only; JSON shapes belong to `ashiato-api`.

mod logs;
pub mod memory;
mod reader;
mod time;
mod traces;

use std::sync::Arc;

use ashiato_model::{LogRecord, Span, TraceId};

pub use ashiato_store::{
    AggregateQuery, LatencySummary, MINUTE_NS, OperationAggregate, OperationStats,
    ServiceAggregate, ServiceStats, StoreError,
};
pub use logs::LogQuery;
pub use reader::ReadStore;
pub use time::parse_time;
pub use traces::{TraceQuery, TraceSummary};

/// Results returned when a query sets no limit.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest number of results one query returns.
pub const MAX_LIMIT: usize = 1000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "invalid time {input:?}: expected rfc 3339 (e.g. 2026-01-02T03:04:05Z) or unix nanoseconds"
    )]
    InvalidTime { input: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The effective result count for an optional requested limit.
fn effective_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Answers trace and log queries from a [`ReadStore`]. Cheap to share
/// behind an `Arc`.
pub struct QueryService {
    store: Arc<dyn ReadStore>,
}

impl QueryService {
    pub fn new(store: Arc<dyn ReadStore>) -> QueryService {
        QueryService { store }
    }

    /// Traces with at least one span matching every predicate of `query`,
    /// newest trace start first.
    pub fn find_traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>, QueryError> {
        traces::find_traces(self.store.as_ref(), query)
    }

    /// Every span of one trace sorted by start time; `None` when no span of
    /// it is stored.
    pub fn get_trace(&self, trace_id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        traces::get_trace(self.store.as_ref(), trace_id)
    }

    /// Span and error counts per service, by name.
    pub fn services(&self) -> Vec<ServiceStats> {
        self.store.service_stats()
    }

    /// Span and error counts per operation (span name) of one service, by name.
    pub fn operations(&self, service: &str) -> Vec<OperationStats> {
        self.store.operation_stats(service)
    }

    /// Per service and operation rates, errors and latency percentiles over
    /// a range, from the aggregates kept at ingest (no span scan).
    pub fn service_aggregates(&self, query: &AggregateQuery) -> Vec<ServiceAggregate> {
        self.store.aggregates(query)
    }

    /// Log records matching every predicate of `query`, newest first.
    pub fn find_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, QueryError> {
        logs::find_logs(self.store.as_ref(), query)
    }
}
