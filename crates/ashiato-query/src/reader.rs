//! The read side of a store, as the query layer needs it.
//!
//! Queries go through this trait rather than `ashiato_store::Store` itself
//! so that another backend (ClickHouse, later) or an in-memory fake in
//! tests can answer them.

use std::ops::ControlFlow;

use ashiato_model::{LogRecord, Span, TraceId};
use ashiato_store::{
    AggregateQuery, LogFilter, OperationStats, ServiceAggregate, ServiceStats, SpanFilter, Store,
    StoreError,
};

/// Blocking reads of stored spans and logs.
pub trait ReadStore: Send + Sync {
    /// Every stored span of one trace, any order; empty when unknown.
    fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError>;

    /// Calls `visit` for every span matching `filter` until it breaks.
    fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Calls `visit` for every log record matching `filter` until it breaks.
    fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    fn service_stats(&self) -> Vec<ServiceStats>;

    fn operation_stats(&self, service: &str) -> Vec<OperationStats>;

    /// Per-minute ingest aggregates over a range; a backend without them
    /// answers none.
    fn aggregates(&self, _query: &AggregateQuery) -> Vec<ServiceAggregate> {
        Vec::new()
    }
}

impl ReadStore for Store {
    fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        Store::get_trace(self, trace_id)
    }

    fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        Store::scan_spans(self, filter, visit)
    }

    fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        Store::scan_logs(self, filter, visit)
    }

    fn service_stats(&self) -> Vec<ServiceStats> {
        Store::service_stats(self)
    }

    fn operation_stats(&self, service: &str) -> Vec<OperationStats> {
        Store::operation_stats(self, service)
    }

    fn aggregates(&self, query: &AggregateQuery) -> Vec<ServiceAggregate> {
        Store::aggregates(self, query)
    }
}
