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

    /// Every stored span of each of the traces, any order. The default asks
    /// [`ReadStore::get_trace`] once per id; a store that can read several
    /// traces in one pass should.
    fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        let mut spans = Vec::new();
        for &trace_id in trace_ids {
            spans.extend(self.get_trace(trace_id)?);
        }
        Ok(spans)
    }

    /// [`ReadStore::get_traces`] where only ids, names, times, status,
    /// resource and scope are needed; a store may leave attributes, events
    /// and links empty. The default reads everything.
    fn get_trace_outlines(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        self.get_traces(trace_ids)
    }

    /// [`ReadStore::scan_spans`], calling `older(t)` whenever every span
    /// visited from then on starts at or before `t`; `Break` from either
    /// callback ends the scan. Lets "the newest matches" stop as soon as
    /// nothing older can outrank what it holds. The default scans in one
    /// part and never calls `older`.
    fn scan_spans_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let _ = older;
        self.scan_spans(filter, visit)
    }

    /// [`ReadStore::scan_spans_newest_first`] for callers that need only
    /// the trace id and start time of each matching span; a store can then
    /// skip decoding the rest. The default decodes whole spans.
    fn scan_span_starts_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(TraceId, u64) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.scan_spans_newest_first(
            filter,
            &mut |span| visit(span.trace_id, span.start_time_unix_nano),
            older,
        )
    }

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

    fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        Store::get_traces(self, trace_ids)
    }

    fn get_trace_outlines(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        Store::get_trace_outlines(self, trace_ids)
    }

    fn scan_spans_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        Store::scan_spans_newest_first(self, filter, visit, older)
    }

    fn scan_span_starts_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(TraceId, u64) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        Store::scan_span_starts_newest_first(self, filter, visit, older)
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
