//! Trace search over the real store (several segments and a memtable)
//! against the in-memory store's full linear scan: the newest-first early
//! stop and the batched trace assembly must not change any answer.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_model::{
    AttrValue, KeyValue, LogRecord, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};
use ashiato_query::memory::MemoryStore;
use ashiato_query::{
    OperationStats, QueryService, ReadStore, ServiceStats, StoreError, TraceQuery, TraceSummary,
};
use ashiato_store::{LogFilter, SpanFilter, Store, StoreConfig};

const SECOND: u64 = 1_000_000_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// splitmix64: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SERVICES: [&str; 3] = ["checkout", "payments", "users"];
const NAMES: [&str; 2] = ["GET /cart", "SELECT"];

fn span(trace: u64, id: u64, service: &str, start: u64, rng: &mut Rng) -> Span {
    let duration = (1 + rng.below(100)) * 1_000_000;
    Span {
        trace_id: TraceId::from_halves(0x5eed, trace),
        span_id: SpanId::from_u64(id).unwrap(),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 0,
        name: NAMES[rng.below(2) as usize].to_owned(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![
            KeyValue::new("user.id", AttrValue::Int(rng.below(8) as i64)),
            KeyValue::new("cached", AttrValue::Bool(rng.below(2) == 0)),
            KeyValue::new("route", AttrValue::Str(format!("/r/{}", rng.below(3)))),
        ],
        events: Vec::new(),
        links: Vec::new(),
        status: Status {
            code: if rng.below(5) == 0 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            message: String::new(),
        },
        resource: Arc::new(Resource::new(vec![
            KeyValue::new("service.name", AttrValue::Str(service.to_owned())),
            KeyValue::new("host.name", AttrValue::Str(format!("h{}", rng.below(2)))),
        ])),
        scope: Arc::new(Scope::default()),
    }
}

/// Batches in distinct, increasing time ranges (one segment each, the last
/// stays in the memtable); every fifth trace also has a span in the next
/// batch's range (before that batch's own traces), so some traces straddle
/// segments.
fn batches(base: u64) -> Vec<Vec<Span>> {
    let mut rng = Rng(7);
    let mut out: Vec<Vec<Span>> = (0..5).map(|_| Vec::new()).collect();
    let mut next_id = 1;
    for part in 0..5u64 {
        for n in 0..40u64 {
            let trace = part * 1000 + n;
            let start = base + part * 100 * SECOND + n * SECOND;
            for _ in 0..1 + rng.below(3) {
                let service = SERVICES[rng.below(3) as usize];
                let offset = rng.below(SECOND / 2);
                out[part as usize].push(span(trace, next_id, service, start + offset, &mut rng));
                next_id += 1;
            }
            if n % 5 == 0 && part < 4 {
                let later = base + (part + 1) * 100 * SECOND + n;
                let service = SERVICES[rng.below(3) as usize];
                out[part as usize + 1].push(span(trace, next_id, service, later, &mut rng));
                next_id += 1;
            }
        }
    }
    out
}

/// Scans through a store, counting the spans it visits.
struct Counting {
    store: Store,
    visited: AtomicUsize,
}

impl ReadStore for Counting {
    fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        self.store.get_trace(trace_id)
    }

    fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        self.store.get_traces(trace_ids)
    }

    fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.store.scan_spans(filter, &mut |span| {
            self.visited.fetch_add(1, Ordering::Relaxed);
            visit(span)
        })
    }

    fn scan_spans_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.store.scan_spans_newest_first(
            filter,
            &mut |span| {
                self.visited.fetch_add(1, Ordering::Relaxed);
                visit(span)
            },
            older,
        )
    }

    fn scan_span_starts_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(TraceId, u64) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.store.scan_span_starts_newest_first(
            filter,
            &mut |trace_id, start| {
                self.visited.fetch_add(1, Ordering::Relaxed);
                visit(trace_id, start)
            },
            older,
        )
    }

    fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.store.scan_logs(filter, visit)
    }

    fn service_stats(&self) -> Vec<ServiceStats> {
        self.store.service_stats()
    }

    fn operation_stats(&self, service: &str) -> Vec<OperationStats> {
        self.store.operation_stats(service)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Counting>,
    memory: QueryService,
    spans: usize,
    base: u64,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let memory = MemoryStore::new();
    let base = now_ns() - 3600 * SECOND;
    let mut spans = 0;
    let parts = batches(base);
    let last = parts.len() - 1;
    for (index, part) in parts.into_iter().enumerate() {
        spans += part.len();
        memory.add_spans(part.clone());
        store.append_spans(part).await.unwrap();
        if index < last {
            store.seal_now().unwrap();
        }
    }
    assert_eq!(store.storage_stats().span_segments, 4);
    Fixture {
        _dir: dir,
        store: Arc::new(Counting {
            store,
            visited: AtomicUsize::new(0),
        }),
        memory: QueryService::new(Arc::new(memory)),
        spans,
        base,
    }
}

fn queries(base: u64) -> Vec<TraceQuery> {
    let queries = vec![
        TraceQuery::default(),
        TraceQuery {
            service: Some("payments".into()),
            ..TraceQuery::default()
        },
        TraceQuery {
            service: Some("users".into()),
            operation: Some("SELECT".into()),
            min_duration_ns: Some(30_000_000),
            ..TraceQuery::default()
        },
        TraceQuery {
            error_only: true,
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![("user.id".into(), "3".into())],
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![
                ("cached".into(), "true".into()),
                ("host.name".into(), "h1".into()),
            ],
            ..TraceQuery::default()
        },
        TraceQuery {
            start_ns: Some(base + 120 * SECOND),
            end_ns: Some(base + 330 * SECOND),
            ..TraceQuery::default()
        },
        TraceQuery {
            start_ns: Some(base + 90 * SECOND),
            end_ns: Some(base + 260 * SECOND),
            attributes: vec![("route".into(), "/r/1".into())],
            ..TraceQuery::default()
        },
    ];
    let mut limited = Vec::new();
    for query in &queries {
        for limit in [None, Some(1), Some(2), Some(3), Some(7), Some(1000)] {
            limited.push(TraceQuery {
                limit,
                ..query.clone()
            });
        }
    }
    limited
}

#[tokio::test]
async fn test_search_over_segments_equals_a_full_scan() {
    let fixture = fixture().await;
    let service = QueryService::new(fixture.store.clone());
    for query in queries(fixture.base) {
        let found: Vec<TraceSummary> = service.find_traces(&query).unwrap();
        let expected = fixture.memory.find_traces(&query).unwrap();
        assert!(!expected.is_empty(), "{query:?}");
        assert_eq!(found, expected, "{query:?}");
    }
}

#[tokio::test]
async fn test_newest_search_stops_before_old_segments() {
    let fixture = fixture().await;
    let service = QueryService::new(fixture.store.clone());
    let query = TraceQuery {
        limit: Some(5),
        ..TraceQuery::default()
    };
    let found = service.find_traces(&query).unwrap();
    assert_eq!(found, fixture.memory.find_traces(&query).unwrap());
    let visited = fixture.store.visited.load(Ordering::Relaxed);
    assert!(
        visited < fixture.spans / 2,
        "visited {visited} of {}",
        fixture.spans
    );
}

/// The newest trace also has its earliest span in an older segment: the
/// early stop ranks it too new, and the check against the whole trace must
/// fall back to a full scan.
#[tokio::test]
async fn test_trace_matching_in_an_older_segment_is_ranked_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let memory = MemoryStore::new();
    let base = now_ns() - 600 * SECOND;
    let mut rng = Rng(11);
    let old_part = vec![span(1, 1, "checkout", base, &mut rng)];
    let new_part = vec![
        span(1, 2, "checkout", base + 300 * SECOND, &mut rng),
        span(2, 3, "checkout", base + 200 * SECOND, &mut rng),
    ];
    for part in [old_part, new_part] {
        memory.add_spans(part.clone());
        store.append_spans(part).await.unwrap();
        store.seal_now().unwrap();
    }
    let query = TraceQuery {
        limit: Some(1),
        ..TraceQuery::default()
    };
    let found = QueryService::new(Arc::new(store))
        .find_traces(&query)
        .unwrap();
    assert_eq!(
        found,
        QueryService::new(Arc::new(memory))
            .find_traces(&query)
            .unwrap()
    );
    assert_eq!(found[0].trace_id, TraceId::from_halves(0x5eed, 2));
}
