//! Log search.

use std::ops::ControlFlow;

use ashiato_model::{LogRecord, Severity, TraceId};
use ashiato_store::LogFilter;

use crate::traces::now_unix_nanos;
use crate::{QueryError, ReadStore, effective_limit};

/// A log search; every set predicate must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub service: Option<String>,
    /// Minimum severity: `Warn` keeps WARN, ERROR and FATAL.
    pub min_severity: Option<Severity>,
    pub trace_id: Option<TraceId>,
    /// Case-insensitive substring of the body.
    pub text: Option<String>,
    /// Record time bounds, inclusive, unix nanos.
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// Defaults to [`crate::DEFAULT_LIMIT`], capped at [`crate::MAX_LIMIT`].
    pub limit: Option<usize>,
}

impl LogQuery {
    fn log_filter(&self) -> LogFilter {
        LogFilter {
            time_min_ns: self.start_ns,
            time_max_ns: self.end_ns,
            service: self.service.clone(),
            min_severity_number: self.min_severity.map(|severity| severity.min_number()),
            trace_id: self.trace_id,
            body_contains: self.text.clone(),
        }
    }
}

/// Look-back windows tried, narrowest first, before scanning the whole
/// requested range: "the latest logs" should read recent segments only.
const WIDENING_WINDOWS_NS: [u64; 4] = [
    15 * 60 * 1_000_000_000,
    2 * 3600 * 1_000_000_000,
    24 * 3600 * 1_000_000_000,
    7 * 24 * 3600 * 1_000_000_000,
];

/// The newest `limit` matching records.
///
/// Windows ending at the query's end (or now) are tried
/// from narrow to wide, so "the latest logs" read recent data only. The
/// store's scan order is a hint only, so every match in a window is looked
/// at; the buffer is pruned whenever it reaches twice the limit, which
/// keeps memory at O(limit) however many records match.
pub(crate) fn find_logs(
    store: &dyn ReadStore,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, QueryError> {
    let limit = effective_limit(query.limit);
    let filter = query.log_filter();
    let upper = filter.time_max_ns.unwrap_or_else(now_unix_nanos);
    for window in WIDENING_WINDOWS_NS {
        let lower = upper.saturating_sub(window);
        if filter.time_min_ns.is_some_and(|min| min >= lower) {
            break;
        }
        let narrowed = LogFilter {
            time_min_ns: Some(lower),
            ..filter.clone()
        };
        let found = newest_logs(store, &narrowed, limit)?;
        if found.len() >= limit {
            return Ok(found);
        }
    }
    newest_logs(store, &filter, limit)
}

fn newest_logs(
    store: &dyn ReadStore,
    filter: &LogFilter,
    limit: usize,
) -> Result<Vec<LogRecord>, QueryError> {
    let mut newest: Vec<LogRecord> = Vec::new();
    store.scan_logs(filter, &mut |log| {
        newest.push(log.clone());
        if newest.len() >= limit * 2 {
            keep_newest(&mut newest, limit);
        }
        ControlFlow::Continue(())
    })?;
    keep_newest(&mut newest, limit);
    Ok(newest)
}

fn keep_newest(logs: &mut Vec<LogRecord>, limit: usize) {
    // stable sort: records with equal times keep the store's order
    logs.sort_by_key(|log| std::cmp::Reverse(log.effective_time_unix_nano()));
    logs.truncate(limit);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ashiato_model::{AttrValue, KeyValue, Resource, Scope};

    use super::*;
    use crate::QueryService;
    use crate::memory::MemoryStore;

    fn log(time: u64, service: &str, severity: u8, body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time,
            severity_number: severity,
            severity_text: String::new(),
            body: AttrValue::Str(body.to_owned()),
            attributes: Vec::new(),
            trace_id: (severity >= 17).then(|| TraceId::from_halves(0, 7)),
            span_id: None,
            flags: 0,
            event_name: String::new(),
            resource: Arc::new(Resource::new(vec![KeyValue::new(
                "service.name",
                AttrValue::Str(service.to_owned()),
            )])),
            scope: Arc::new(Scope::default()),
        }
    }

    fn service_with_logs() -> QueryService {
        let store = MemoryStore::new();
        store.add_logs((0..50).map(|i| log(i * 10, "batch", 9, &format!("job {i} done"))));
        store.add_logs([
            log(105, "batch", 17, "Payment failed: 残高不足"),
            log(205, "batch", 13, "slow job"),
            log(305, "web", 21, "out of memory"),
        ]);
        QueryService::new(Arc::new(store))
    }

    #[test]
    fn test_newest_first_with_default_limit() {
        let logs = service_with_logs().find_logs(&LogQuery::default()).unwrap();
        assert_eq!(logs.len(), crate::DEFAULT_LIMIT);
        let times: Vec<u64> = logs.iter().map(|log| log.time_unix_nano).collect();
        assert_eq!(&times[..4], [490, 480, 470, 460]);
        assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
    }

    #[test]
    fn test_recent_logs_found_through_widening_windows() {
        let minute = 60 * 1_000_000_000;
        let now = now_unix_nanos();
        let store = MemoryStore::new();
        store.add_logs(
            [1, 90, 3 * 24 * 60, 30 * 24 * 60]
                .map(|age| log(now - age * minute, "batch", 9, &format!("{age}m ago"))),
        );
        let service = QueryService::new(Arc::new(store));
        let bodies = |limit| {
            let query = LogQuery {
                limit: Some(limit),
                ..LogQuery::default()
            };
            service
                .find_logs(&query)
                .unwrap()
                .iter()
                .map(|log| log.body.to_text())
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(1), ["1m ago"]);
        assert_eq!(bodies(2), ["1m ago", "90m ago"]);
        assert_eq!(bodies(5), ["1m ago", "90m ago", "4320m ago", "43200m ago"]);
    }

    #[test]
    fn test_minimum_severity_and_service() {
        let service = service_with_logs();
        let query = LogQuery {
            service: Some("batch".into()),
            min_severity: Some(Severity::Warn),
            ..LogQuery::default()
        };
        let bodies: Vec<String> = service
            .find_logs(&query)
            .unwrap()
            .iter()
            .map(|log| log.body.to_text())
            .collect();
        assert_eq!(bodies, ["slow job", "Payment failed: 残高不足"]);
    }

    #[test]
    fn test_text_trace_and_time() {
        let service = service_with_logs();
        let query = LogQuery {
            text: Some("PAYMENT".into()),
            ..LogQuery::default()
        };
        assert_eq!(service.find_logs(&query).unwrap().len(), 1);
        let query = LogQuery {
            trace_id: Some(TraceId::from_halves(0, 7)),
            ..LogQuery::default()
        };
        assert_eq!(service.find_logs(&query).unwrap().len(), 2);
        let query = LogQuery {
            start_ns: Some(100),
            end_ns: Some(120),
            limit: Some(1000),
            ..LogQuery::default()
        };
        let times: Vec<u64> = service
            .find_logs(&query)
            .unwrap()
            .iter()
            .map(|log| log.time_unix_nano)
            .collect();
        assert_eq!(times, [120, 110, 105, 100]);
    }
}
