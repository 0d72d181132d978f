//! Per-minute aggregates through the store's public API: exact counts,
//! percentiles from the histograms, per-step series, and figures that are
//! identical after a reopen whether the data was sealed or only in the WAL.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};
use ashiato_store::{AggregateQuery, MINUTE_NS, ServiceAggregate, Store, StoreConfig};

/// A minute-aligned base time ten minutes ago: within retention, which
/// drops older minutes at every seal.
static BASE: LazyLock<u64> = LazyLock::new(|| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (now / MINUTE_NS - 10) * MINUTE_NS
});

fn span(n: u64, service: &str, name: &str, kind: SpanKind, minute: u64, ms: u64) -> Span {
    let start = *BASE + minute * MINUTE_NS + n;
    Span {
        trace_id: TraceId::from_halves(7, n + 1),
        span_id: SpanId::from_u64(n + 1).unwrap(),
        parent_span_id: (kind != SpanKind::Server).then(|| SpanId::from_u64(999_999).unwrap()),
        trace_state: String::new(),
        flags: 1,
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: Status {
            code: if n.is_multiple_of(10) {
                StatusCode::Error
            } else {
                StatusCode::Ok
            },
            message: String::new(),
        },
        resource: Arc::new(Resource::new(vec![KeyValue::new(
            "service.name",
            AttrValue::Str(service.into()),
        )])),
        scope: Arc::new(Scope::default()),
    }
}

/// 100 server spans of 1..=100 ms over two minutes (every tenth an error),
/// and 30 client spans of 5 ms in the second minute.
fn workload() -> Vec<Span> {
    let mut spans = Vec::new();
    for n in 0..100 {
        spans.push(span(
            n,
            "注文サービス",
            "GET /注文",
            SpanKind::Server,
            n % 2,
            n + 1,
        ));
    }
    for n in 100..130 {
        spans.push(span(n, "注文サービス", "SELECT", SpanKind::Client, 1, 5));
    }
    spans
}

fn whole_range() -> AggregateQuery {
    AggregateQuery {
        start_ns: *BASE,
        end_ns: *BASE + 2 * MINUTE_NS,
        step_ns: MINUTE_NS,
    }
}

fn within(actual: u64, expected: u64) -> bool {
    let error = (actual as f64 - expected as f64).abs() / expected as f64;
    error <= 0.03
}

fn check(figures: &[ServiceAggregate]) {
    assert_eq!(figures.len(), 1);
    let service = &figures[0];
    assert_eq!(service.name, "注文サービス");
    // service level counts entry (server) spans only
    assert_eq!(service.total.count, 100);
    assert_eq!(service.total.errors, 10);
    assert_eq!(service.total.sum_ns, (1..=100).sum::<u64>() * 1_000_000);
    assert!(
        within(service.total.p50_ns, 50_000_000),
        "{:?}",
        service.total
    );
    assert!(
        within(service.total.p95_ns, 95_000_000),
        "{:?}",
        service.total
    );
    assert!(
        within(service.total.p99_ns, 99_000_000),
        "{:?}",
        service.total
    );
    assert_eq!(service.series.len(), 2);
    assert_eq!(service.series[0].count, 50);
    assert_eq!(service.series[1].count, 50);
    let names: Vec<_> = service.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["GET /注文", "SELECT"]);
    let select = &service.operations[1];
    assert_eq!(select.total.count, 30);
    assert_eq!(select.total.errors, 3);
    assert_eq!(select.series[0].count, 0);
    assert_eq!(select.series[1].count, 30);
    assert!(within(select.total.p99_ns, 5_000_000));
}

#[tokio::test]
async fn test_aggregates_count_exactly_and_give_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    store.append_spans(workload()).await.unwrap();
    check(&store.aggregates(&whole_range()));

    // a range of only the second minute, in one step
    let second = store.aggregates(&AggregateQuery {
        start_ns: *BASE + MINUTE_NS,
        end_ns: *BASE + 2 * MINUTE_NS,
        step_ns: 10 * MINUTE_NS,
    });
    assert_eq!(second[0].total.count, 50);
    assert_eq!(second[0].series.len(), 1);
    // nothing outside the data
    let empty = store.aggregates(&AggregateQuery {
        start_ns: *BASE + 5 * MINUTE_NS,
        end_ns: *BASE + 6 * MINUTE_NS,
        step_ns: MINUTE_NS,
    });
    assert!(empty.is_empty());
}

#[tokio::test]
async fn test_aggregates_survive_reopen_from_wal_and_from_sealed_generations() {
    let dir = tempfile::tempdir().unwrap();
    let spans = workload();
    let (sealed, unsealed) = spans.split_at(60);
    {
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        store.append_spans(sealed.to_vec()).await.unwrap();
        store.seal_now().unwrap();
        store.append_spans(unsealed.to_vec()).await.unwrap();
        check(&store.aggregates(&whole_range()));
    }
    // the first half comes from the persisted generation, the rest from the WAL
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    check(&store.aggregates(&whole_range()));
    // sealing what was replayed and reopening again still counts each span once
    store.seal_now().unwrap();
    drop(store);
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    check(&store.aggregates(&whole_range()));
}

#[tokio::test]
async fn test_uncovered_aggregate_files_are_recounted_from_the_wal_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        store.append_spans(workload()).await.unwrap();
    }
    // a crash after the aggregates file was written but before the catalog
    // covered its WAL looks like this: a file with a newer sequence number
    let agg_dir = dir.path().join("aggregates");
    std::fs::write(agg_dir.join("99999999.agg"), b"ASHAGG1\nnot really").unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    check(&store.aggregates(&whole_range()));
    assert!(!agg_dir.join("99999999.agg").exists());
}

#[tokio::test]
async fn test_minutes_past_retention_are_dropped_at_seal() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.retention = std::time::Duration::from_secs(5 * 60);
    let store = Store::open(config).unwrap();
    // minutes 0 and 1 of the workload are ten and nine minutes old
    store.append_spans(workload()).await.unwrap();
    assert_eq!(store.aggregates(&whole_range())[0].total.count, 100);
    store.seal_now().unwrap();
    assert!(store.aggregates(&whole_range()).is_empty());
}
