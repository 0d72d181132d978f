//! Trace search and trace assembly.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_model::{Span, TraceId};
use ashiato_store::SpanFilter;

use crate::{QueryError, ReadStore, effective_limit};

/// A trace search. A trace matches when one of its spans satisfies every
/// set predicate at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// `service.name` of the matching span, exact.
    pub service: Option<String>,
    /// Name of the matching span, exact.
    pub operation: Option<String>,
    /// Only spans with status ERROR.
    pub error_only: bool,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Span or resource attributes, each `(key, value as text)`; all must match.
    pub attributes: Vec<(String, String)>,
    /// Span start time bounds, inclusive, unix nanos.
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// Defaults to [`crate::DEFAULT_LIMIT`], capped at [`crate::MAX_LIMIT`].
    pub limit: Option<usize>,
}

impl TraceQuery {
    fn span_filter(&self) -> SpanFilter {
        SpanFilter {
            start_min_ns: self.start_ns,
            start_max_ns: self.end_ns,
            service: self.service.clone(),
            name: self.operation.clone(),
            min_duration_ns: self.min_duration_ns,
            max_duration_ns: self.max_duration_ns,
            error_only: self.error_only,
            attributes: self.attributes.clone(),
        }
    }
}

/// One line of a trace search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_name: String,
    /// Earliest span start.
    pub start_time_unix_nano: u64,
    /// Latest span end minus earliest span start.
    pub duration_ns: u64,
    pub span_count: usize,
    pub error_count: usize,
    /// Distinct services in order of their first span's start.
    pub services: Vec<String>,
}

impl TraceSummary {
    /// Summarises a non-empty trace whose spans are sorted by start time.
    fn from_sorted_spans(trace_id: TraceId, spans: &[Span]) -> Option<TraceSummary> {
        let first = spans.first()?;
        // the earliest parentless span is the root; a trace whose root has not
        // arrived (or was never sent) is represented by its earliest span
        let root = spans.iter().find(|span| span.is_root()).unwrap_or(first);
        let start = spans
            .iter()
            .map(|span| span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end = spans
            .iter()
            .map(|span| span.end_time_unix_nano)
            .max()
            .unwrap_or(start);
        let mut services: Vec<String> = Vec::new();
        for span in spans {
            if !services.iter().any(|known| known == span.service_name()) {
                services.push(span.service_name().to_owned());
            }
        }
        Some(TraceSummary {
            trace_id,
            root_service: root.service_name().to_owned(),
            root_name: root.name.clone(),
            start_time_unix_nano: start,
            duration_ns: end.saturating_sub(start),
            span_count: spans.len(),
            error_count: spans.iter().filter(|span| span.is_error()).count(),
            services,
        })
    }
}

pub(crate) fn get_trace(
    store: &dyn ReadStore,
    trace_id: TraceId,
) -> Result<Option<Vec<Span>>, QueryError> {
    let mut spans = store.get_trace(trace_id)?;
    if spans.is_empty() {
        return Ok(None);
    }
    sort_spans(&mut spans);
    drop_duplicate_spans(&mut spans);
    Ok(Some(spans))
}

/// Keeps the first copy of each span id. OTLP clients resend a batch when
/// an acknowledgement is lost (timeout, dropped connection), so the store
/// may hold the same span twice; a trace view should not show it twice.
fn drop_duplicate_spans(spans: &mut Vec<Span>) {
    let mut seen = HashSet::with_capacity(spans.len());
    spans.retain(|span| seen.insert(span.span_id));
}

/// Start time, then span id, so the order is stable across reads.
fn sort_spans(spans: &mut [Span]) {
    spans.sort_by(|a, b| {
        a.start_time_unix_nano
            .cmp(&b.start_time_unix_nano)
            .then_with(|| a.span_id.cmp(&b.span_id))
    });
}

pub(crate) fn find_traces(
    store: &dyn ReadStore,
    query: &TraceQuery,
) -> Result<Vec<TraceSummary>, QueryError> {
    let limit = effective_limit(query.limit);
    let filter = query.span_filter();
    let mut found = newest_matching_traces(store, &filter, limit)?;
    let mut traces = assemble(store, &filter, &found.ranked)?;
    if found.stopped_early && !ranks_hold(&filter, &found.ranked, &traces) {
        // A chosen trace also matches in data the scan stopped before, so
        // its rank is older than it looked: answer from a full scan.
        found = Candidates {
            ranked: newest(earliest_matches(store, &filter)?, limit),
            stopped_early: false,
        };
        traces = assemble(store, &filter, &found.ranked)?;
    }
    let mut summaries: Vec<TraceSummary> = found
        .ranked
        .iter()
        .filter_map(|(trace_id, _)| {
            let spans = traces.get(trace_id)?;
            TraceSummary::from_sorted_spans(*trace_id, spans)
        })
        .collect();
    summaries.sort_by(|a, b| {
        b.start_time_unix_nano
            .cmp(&a.start_time_unix_nano)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    Ok(summaries)
}

/// The spans of each ranked trace, sorted and without duplicates, read in
/// one batch.
fn assemble(
    store: &dyn ReadStore,
    filter: &SpanFilter,
    ranked: &[(TraceId, u64)],
) -> Result<HashMap<TraceId, Vec<Span>>, QueryError> {
    let ids: Vec<TraceId> = ranked.iter().map(|(trace_id, _)| *trace_id).collect();
    let mut traces: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(ids.len());
    // Summaries need no attributes, events or links; `ranks_hold` needs the
    // attributes only when the filter tests them.
    let spans = if filter.attributes.is_empty() {
        store.get_trace_outlines(&ids)?
    } else {
        store.get_traces(&ids)?
    };
    for span in spans {
        traces.entry(span.trace_id).or_default().push(span);
    }
    for spans in traces.values_mut() {
        sort_spans(spans);
        drop_duplicate_spans(spans);
    }
    Ok(traces)
}

/// Whether every ranked trace's whole span list confirms the rank the
/// early-stopped scan gave it (its earliest matching span start).
fn ranks_hold(
    filter: &SpanFilter,
    ranked: &[(TraceId, u64)],
    traces: &HashMap<TraceId, Vec<Span>>,
) -> bool {
    ranked.iter().all(|(trace_id, rank)| {
        let earliest = traces.get(trace_id).and_then(|spans| {
            spans
                .iter()
                .filter(|span| crate::memory::span_matches(filter, span))
                .map(|span| span.start_time_unix_nano)
                .min()
        });
        earliest == Some(*rank)
    })
}

/// The newest matching traces, each with its rank (the start of its
/// earliest matching span), newest first.
struct Candidates {
    ranked: Vec<(TraceId, u64)>,
    /// The scan stopped before the oldest data (see `newest_matching_traces`).
    stopped_early: bool,
}

/// The `limit` traces whose earliest matching span started last.
///
/// The store is scanned newest data first. Once `limit` traces have a rank
/// newer than anything the rest of the scan can visit, no unseen trace can
/// outrank them and the scan stops, so the common query reads only the
/// newest segment or two. A trace seen so far can still have an earlier
/// matching span in the unread data (a trace spanning a segment boundary);
/// the caller checks the chosen traces against their whole span lists
/// (`ranks_hold`) and falls back to a full scan if one moved. Ranking by the
/// earliest matching span rather than the trace's start avoids loading
/// every candidate trace; the two are equal whenever the root matches
/// (every unfiltered search) and close otherwise. The final list is
/// re-sorted by the real trace start.
fn newest_matching_traces(
    store: &dyn ReadStore,
    filter: &SpanFilter,
    limit: usize,
) -> Result<Candidates, QueryError> {
    let earliest_match: RefCell<HashMap<TraceId, u64>> = RefCell::new(HashMap::new());
    let mut stopped_early = false;
    store.scan_span_starts_newest_first(
        filter,
        &mut |trace_id, start| {
            note_match(&mut earliest_match.borrow_mut(), trace_id, start);
            ControlFlow::Continue(())
        },
        &mut |bound| {
            let newer = earliest_match
                .borrow()
                .values()
                .filter(|&&rank| rank > bound)
                .count();
            if newer >= limit {
                stopped_early = true;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    Ok(Candidates {
        ranked: newest(earliest_match.into_inner(), limit),
        stopped_early,
    })
}

fn note_match(earliest_match: &mut HashMap<TraceId, u64>, trace_id: TraceId, start: u64) {
    let earliest = earliest_match.entry(trace_id).or_insert(start);
    *earliest = (*earliest).min(start);
}

/// Each matching trace with the start of its earliest matching span, from
/// a scan of everything.
fn earliest_matches(
    store: &dyn ReadStore,
    filter: &SpanFilter,
) -> Result<HashMap<TraceId, u64>, QueryError> {
    let mut earliest_match: HashMap<TraceId, u64> = HashMap::new();
    store.scan_spans(filter, &mut |span| {
        note_match(
            &mut earliest_match,
            span.trace_id,
            span.start_time_unix_nano,
        );
        ControlFlow::Continue(())
    })?;
    Ok(earliest_match)
}

fn newest(matches: HashMap<TraceId, u64>, limit: usize) -> Vec<(TraceId, u64)> {
    let mut ranked: Vec<(TraceId, u64)> = matches.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
}

pub(crate) fn now_unix_nanos() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ashiato_model::{
        AttrValue, KeyValue, Resource, Scope, SpanId, SpanKind, Status, StatusCode,
    };

    use super::*;
    use crate::QueryService;
    use crate::memory::MemoryStore;

    fn span(
        trace: u64,
        id: u64,
        parent: Option<u64>,
        service: &str,
        name: &str,
        start: u64,
        end: u64,
    ) -> Span {
        Span {
            trace_id: TraceId::from_halves(0, trace),
            span_id: SpanId::from_u64(id).unwrap(),
            parent_span_id: parent.and_then(SpanId::from_u64),
            trace_state: String::new(),
            flags: 0,
            name: name.to_owned(),
            kind: SpanKind::Internal,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: vec![KeyValue::new("user_id", AttrValue::Int(123))],
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: Arc::new(Resource::new(vec![KeyValue::new(
                "service.name",
                AttrValue::Str(service.to_owned()),
            )])),
            scope: Arc::new(Scope::default()),
        }
    }

    fn failed(mut span: Span) -> Span {
        span.status = Status {
            code: StatusCode::Error,
            message: "残高不足".to_owned(),
        };
        span
    }

    fn service_with(spans: Vec<Span>) -> QueryService {
        let store = MemoryStore::new();
        store.add_spans(spans);
        QueryService::new(Arc::new(store))
    }

    fn order_flow() -> Vec<Span> {
        vec![
            // trace 1: checkout → payments (error), started at 1000
            span(1, 11, None, "checkout", "注文作成", 1_000, 263_000),
            failed(span(
                1,
                12,
                Some(11),
                "payments",
                "支払い処理",
                60_000,
                260_000,
            )),
            span(1, 13, Some(11), "users", "ユーザー検証", 2_000, 12_000),
            // trace 2: started later, no errors
            span(2, 21, None, "checkout", "注文作成", 5_000, 50_000),
            span(2, 22, Some(21), "inventory", "在庫確認", 6_000, 56_000),
            // trace 3: root never arrived
            span(3, 32, Some(31), "payments", "支払い処理", 9_000, 9_500),
        ]
    }

    #[test]
    fn test_get_trace_sorts_by_start_and_none_when_unknown() {
        let service = service_with(order_flow());
        let spans = service
            .get_trace(TraceId::from_halves(0, 1))
            .unwrap()
            .unwrap();
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
        assert_eq!(names, ["注文作成", "ユーザー検証", "支払い処理"]);
        assert!(
            service
                .get_trace(TraceId::from_halves(0, 99))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn test_recent_traces_found_through_widening_windows() {
        let minute = 60 * 1_000_000_000;
        let now = now_unix_nanos();
        let mut spans = Vec::new();
        for (trace, age_minutes) in [(1, 1), (2, 3), (3, 60), (4, 3 * 24 * 60), (5, 30 * 24 * 60)] {
            let start = now - age_minutes * minute;
            spans.push(span(
                trace,
                trace * 10,
                None,
                "checkout",
                "注文作成",
                start,
                start + 1_000,
            ));
        }
        let service = service_with(spans);
        let newest_ids = |limit| {
            let query = TraceQuery {
                limit: Some(limit),
                ..TraceQuery::default()
            };
            service
                .find_traces(&query)
                .unwrap()
                .iter()
                .map(|s| s.trace_id.low_u64())
                .collect::<Vec<_>>()
        };
        assert_eq!(newest_ids(2), [1, 2]);
        assert_eq!(newest_ids(3), [1, 2, 3]);
        assert_eq!(newest_ids(4), [1, 2, 3, 4]);
        assert_eq!(newest_ids(10), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn test_resent_spans_appear_once() {
        let mut spans = order_flow();
        spans.extend(order_flow());
        let service = service_with(spans);
        let trace = service
            .get_trace(TraceId::from_halves(0, 1))
            .unwrap()
            .unwrap();
        assert_eq!(trace.len(), 3);
        let summaries = service.find_traces(&TraceQuery::default()).unwrap();
        assert_eq!(
            summaries.iter().map(|s| s.span_count).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn test_summary_of_a_complete_trace() {
        let service = service_with(order_flow());
        let summaries = service.find_traces(&TraceQuery::default()).unwrap();
        let first_trace = summaries
            .iter()
            .find(|s| s.trace_id == TraceId::from_halves(0, 1))
            .unwrap();
        assert_eq!(
            *first_trace,
            TraceSummary {
                trace_id: TraceId::from_halves(0, 1),
                root_service: "checkout".into(),
                root_name: "注文作成".into(),
                start_time_unix_nano: 1_000,
                duration_ns: 262_000,
                span_count: 3,
                error_count: 1,
                services: vec!["checkout".into(), "users".into(), "payments".into()],
            }
        );
    }

    #[test]
    fn test_newest_first_and_rootless_trace_uses_earliest_span() {
        let service = service_with(order_flow());
        let summaries = service.find_traces(&TraceQuery::default()).unwrap();
        let order: Vec<u64> = summaries.iter().map(|s| s.trace_id.low_u64()).collect();
        assert_eq!(order, [3, 2, 1]);
        assert_eq!(summaries[0].root_name, "支払い処理");
        assert_eq!(summaries[0].root_service, "payments");
    }

    #[test]
    fn test_predicates_apply_to_one_span_and_return_whole_trace() {
        let service = service_with(order_flow());
        let query = TraceQuery {
            service: Some("payments".into()),
            error_only: true,
            min_duration_ns: Some(100_000),
            ..TraceQuery::default()
        };
        let summaries = service.find_traces(&query).unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].span_count, 3);

        // the error span is in payments, the long span is too, but the
        // checkout span is not an error: nothing matches both at once
        let query = TraceQuery {
            service: Some("checkout".into()),
            error_only: true,
            ..TraceQuery::default()
        };
        assert!(service.find_traces(&query).unwrap().is_empty());
    }

    #[test]
    fn test_attribute_time_and_limit() {
        let service = service_with(order_flow());
        let by_attribute = TraceQuery {
            attributes: vec![
                ("user_id".into(), "123".into()),
                ("service.name".into(), "inventory".into()),
            ],
            ..TraceQuery::default()
        };
        let found = service.find_traces(&by_attribute).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|s| s.trace_id.low_u64())
                .collect::<Vec<_>>(),
            [2]
        );

        let by_time = TraceQuery {
            start_ns: Some(4_000),
            end_ns: Some(6_000),
            ..TraceQuery::default()
        };
        let found = service.find_traces(&by_time).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|s| s.trace_id.low_u64())
                .collect::<Vec<_>>(),
            [2]
        );

        let limited = TraceQuery {
            limit: Some(2),
            ..TraceQuery::default()
        };
        let found = service.find_traces(&limited).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|s| s.trace_id.low_u64())
                .collect::<Vec<_>>(),
            [3, 2]
        );
    }

    #[test]
    fn test_service_and_operation_stats() {
        let service = service_with(order_flow());
        let services = service.services();
        let payments = services.iter().find(|s| s.name == "payments").unwrap();
        assert_eq!((payments.span_count, payments.error_count), (2, 1));
        let operations = service.operations("checkout");
        assert_eq!(operations.len(), 1);
        assert_eq!(operations[0].name, "注文作成");
        assert_eq!(operations[0].span_count, 2);
    }
}
