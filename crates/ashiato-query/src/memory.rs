//! An in-memory [`ReadStore`] that filters with linear scans.
//!
//! For tests of the query and API layers (they should not depend on the
//! embedded store's files) and for small examples. It applies the filter
//! semantics documented on `SpanFilter` and `LogFilter` literally, so it also
//! serves as an executable statement of them.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::RwLock;

use ashiato_model::{LogRecord, Span, TraceId};
use ashiato_store::{LogFilter, OperationStats, ServiceStats, SpanFilter, StoreError};

use crate::ReadStore;

/// Spans and logs held in vectors, in insertion order.
#[derive(Default)]
pub struct MemoryStore {
    spans: RwLock<Vec<Span>>,
    logs: RwLock<Vec<LogRecord>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn add_spans(&self, spans: impl IntoIterator<Item = Span>) {
        self.spans
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .extend(spans);
    }

    pub fn add_logs(&self, logs: impl IntoIterator<Item = LogRecord>) {
        self.logs
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .extend(logs);
    }

    fn with_spans<T>(&self, read: impl FnOnce(&[Span]) -> T) -> T {
        read(
            &self
                .spans
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }
}

/// Whether one span satisfies every set predicate of `filter`.
pub fn span_matches(filter: &SpanFilter, span: &Span) -> bool {
    let start = span.start_time_unix_nano;
    let duration = span.duration_ns();
    filter.start_min_ns.is_none_or(|min| start >= min)
        && filter.start_max_ns.is_none_or(|max| start <= max)
        && filter
            .service
            .as_deref()
            .is_none_or(|service| span.service_name() == service)
        && filter.name.as_deref().is_none_or(|name| span.name == name)
        && filter.min_duration_ns.is_none_or(|min| duration >= min)
        && filter.max_duration_ns.is_none_or(|max| duration <= max)
        && (!filter.error_only || span.is_error())
        && filter
            .attributes
            .iter()
            .all(|(key, value)| span_has_attribute(span, key, value))
}

fn span_has_attribute(span: &Span, key: &str, value: &str) -> bool {
    span.attributes
        .iter()
        .chain(span.resource.attributes())
        .any(|kv| kv.key == key && kv.value.matches_text(value))
}

/// Whether one log record satisfies every set predicate of `filter`.
pub fn log_matches(filter: &LogFilter, log: &LogRecord) -> bool {
    let time = log.effective_time_unix_nano();
    filter.time_min_ns.is_none_or(|min| time >= min)
        && filter.time_max_ns.is_none_or(|max| time <= max)
        && filter
            .service
            .as_deref()
            .is_none_or(|service| log.service_name() == service)
        && filter
            .min_severity_number
            .is_none_or(|min| log.effective_severity_number() >= min)
        && filter
            .trace_id
            .is_none_or(|trace_id| log.trace_id == Some(trace_id))
        && filter.body_contains.as_deref().is_none_or(|needle| {
            log.body
                .to_text()
                .to_lowercase()
                .contains(&needle.to_lowercase())
        })
}

impl ReadStore for MemoryStore {
    fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        Ok(self.with_spans(|spans| {
            spans
                .iter()
                .filter(|span| span.trace_id == trace_id)
                .cloned()
                .collect()
        }))
    }

    fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.with_spans(|spans| {
            for span in spans.iter().filter(|span| span_matches(filter, span)) {
                if visit(span).is_break() {
                    break;
                }
            }
        });
        Ok(())
    }

    fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let logs = self
            .logs
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        for log in logs.iter().filter(|log| log_matches(filter, log)) {
            if visit(log).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn service_stats(&self) -> Vec<ServiceStats> {
        let counts = self.with_spans(|spans| count_by(spans, |span| Some(span.service_name())));
        counts
            .into_iter()
            .map(|(name, (span_count, error_count))| ServiceStats {
                name,
                span_count,
                error_count,
            })
            .collect()
    }

    fn operation_stats(&self, service: &str) -> Vec<OperationStats> {
        let counts = self.with_spans(|spans| {
            count_by(spans, |span| {
                (span.service_name() == service).then_some(span.name.as_str())
            })
        });
        counts
            .into_iter()
            .map(|(name, (span_count, error_count))| OperationStats {
                name,
                span_count,
                error_count,
            })
            .collect()
    }
}

/// Span and error counts per key, sorted by key; spans whose key is `None` are skipped.
fn count_by<'a>(
    spans: &'a [Span],
    key: impl Fn(&'a Span) -> Option<&'a str>,
) -> BTreeMap<String, (u64, u64)> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for span in spans {
        if let Some(key) = key(span) {
            let entry = counts.entry(key.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(span.is_error());
        }
    }
    counts
}
