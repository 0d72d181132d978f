//! End-to-end tests of the store through its public API: durability,
//! crash recovery, sealing, retention, back-pressure and queries.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ashiato_model::{
    AttrValue, Event, KeyValue, Link, LogRecord, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};
use ashiato_store::{AppendError, LogFilter, SpanFilter, Store, StoreConfig};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource::new(vec![
        KeyValue::new("service.name", AttrValue::Str(service.into())),
        KeyValue::new("deployment.environment", AttrValue::Str("test".into())),
    ]))
}

fn scope() -> Arc<Scope> {
    Arc::new(Scope {
        name: "ashiato-test".into(),
        version: "0.1".into(),
        attributes: vec![KeyValue::new("scope.attr", AttrValue::Bool(true))],
    })
}

fn every_type_attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("user_id", AttrValue::Str("123".into())),
        KeyValue::new("amount", AttrValue::Float(99.99)),
        KeyValue::new("http.status_code", AttrValue::Int(500)),
        KeyValue::new("cached", AttrValue::Bool(false)),
        KeyValue::new("raw", AttrValue::Bytes(vec![1, 2, 3])),
        KeyValue::new("empty", AttrValue::Empty),
        KeyValue::new(
            "tags",
            AttrValue::Array(vec![AttrValue::Str("a".into()), AttrValue::Int(2)]),
        ),
        KeyValue::new(
            "nested",
            AttrValue::Map(vec![KeyValue::new("k", AttrValue::Str("v".into()))]),
        ),
    ]
}

fn trace_id(n: u64) -> TraceId {
    TraceId::from_halves(0xabcd, n)
}

fn span(trace: u64, id: u64, parent: Option<u64>, service: &str, name: &str, start: u64) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: SpanId::from_u64(id).unwrap(),
        parent_span_id: parent.and_then(SpanId::from_u64),
        trace_state: "vendor=1".into(),
        flags: 0x101,
        name: name.into(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 50_000_000,
        attributes: every_type_attributes(),
        events: vec![Event {
            time_unix_nano: start + 1_000,
            name: "在庫レベルが低い".into(),
            attributes: vec![KeyValue::new("level", AttrValue::Int(3))],
        }],
        links: vec![Link {
            trace_id: trace_id(999),
            span_id: SpanId::from_u64(7).unwrap(),
            trace_state: String::new(),
            attributes: vec![KeyValue::new("link.kind", AttrValue::Str("follows".into()))],
            flags: 1,
        }],
        status: Status {
            code: StatusCode::Unset,
            message: String::new(),
        },
        resource: resource(service),
        scope: scope(),
    }
}

/// A three-span order trace; the payment fails.
fn order_trace(trace: u64, start: u64) -> Vec<Span> {
    let base = trace * 10;
    let mut payment = span(
        trace,
        base + 3,
        Some(base + 1),
        "payments",
        "支払い処理",
        start + 2,
    );
    payment.status = Status {
        code: StatusCode::Error,
        message: "残高不足".into(),
    };
    payment.end_time_unix_nano = start + 300_000_000;
    vec![
        span(trace, base + 1, None, "checkout", "注文作成", start),
        span(
            trace,
            base + 2,
            Some(base + 1),
            "users",
            "ユーザー検証",
            start + 1,
        ),
        payment,
    ]
}

fn log(service: &str, time: u64, severity: u8, body: &str, trace: Option<u64>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time + 1,
        severity_number: severity,
        severity_text: if severity >= 17 {
            "ERROR".into()
        } else {
            "INFO".into()
        },
        body: AttrValue::Str(body.into()),
        attributes: every_type_attributes(),
        trace_id: trace.map(trace_id),
        span_id: trace.and_then(SpanId::from_u64),
        flags: 1,
        event_name: String::new(),
        resource: resource(service),
        scope: scope(),
    }
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano, s.span_id));
    spans
}

fn all_spans(store: &Store, filter: &SpanFilter) -> Vec<Span> {
    let mut found = Vec::new();
    store
        .scan_spans(filter, &mut |s| {
            found.push(s.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    sorted(found)
}

fn all_logs(store: &Store, filter: &LogFilter) -> Vec<LogRecord> {
    let mut found = Vec::new();
    store
        .scan_logs(filter, &mut |l| {
            found.push(l.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    found
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn test_append_is_queryable_immediately_with_all_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    let trace = order_trace(1, start);
    store.append_spans(trace.clone()).await.unwrap();
    store
        .append_spans(order_trace(2, start + 10))
        .await
        .unwrap();

    assert_eq!(
        sorted(store.get_trace(trace_id(1)).unwrap()),
        sorted(trace.clone())
    );
    assert!(store.get_trace(trace_id(77)).unwrap().is_empty());

    let errors = all_spans(
        &store,
        &SpanFilter {
            error_only: true,
            ..Default::default()
        },
    );
    assert_eq!(errors.len(), 2);
    let slow = SpanFilter {
        min_duration_ns: Some(100_000_000),
        ..Default::default()
    };
    assert_eq!(all_spans(&store, &slow).len(), 2);
    let by_attr = SpanFilter {
        service: Some("users".into()),
        attributes: vec![
            ("http.status_code".into(), "500".into()),
            ("deployment.environment".into(), "test".into()),
        ],
        ..Default::default()
    };
    assert_eq!(all_spans(&store, &by_attr).len(), 2);

    let services = store.service_stats();
    let names: Vec<(&str, u64, u64)> = services
        .iter()
        .map(|s| (s.name.as_str(), s.span_count, s.error_count))
        .collect();
    assert_eq!(
        names,
        vec![("checkout", 2, 0), ("payments", 2, 2), ("users", 2, 0)]
    );
    let ops = store.operation_stats("payments");
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].name.as_str(), ops[0].span_count, ops[0].error_count),
        ("支払い処理", 2, 2)
    );
}

#[tokio::test]
async fn test_logs_filters_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    store
        .append_logs(vec![
            log("batch", start, 9, "job started", None),
            log("batch", start + 2, 17, "Job FAILED: 残高不足", Some(1)),
        ])
        .await
        .unwrap();
    store
        .append_logs(vec![log("web", start + 1, 13, "slow request", Some(2))])
        .await
        .unwrap();
    let check = |store: &Store| {
        let all = all_logs(store, &LogFilter::default());
        let times: Vec<u64> = all.iter().map(|l| l.time_unix_nano).collect();
        assert_eq!(times, vec![start + 2, start + 1, start]);
        let errors = all_logs(
            store,
            &LogFilter {
                service: Some("batch".into()),
                min_severity_number: Some(17),
                ..Default::default()
            },
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0],
            log("batch", start + 2, 17, "Job FAILED: 残高不足", Some(1))
        );
        let by_trace = LogFilter {
            trace_id: Some(trace_id(2)),
            ..Default::default()
        };
        assert_eq!(all_logs(store, &by_trace).len(), 1);
        let by_text = LogFilter {
            body_contains: Some("job failed".into()),
            ..Default::default()
        };
        assert_eq!(all_logs(store, &by_text).len(), 1);
    };
    check(&store);
    store.seal_now().unwrap();
    assert_eq!(store.storage_stats().log_segments, 1);
    check(&store);
}

#[tokio::test]
async fn test_reopen_after_drop_without_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    let mut expected = Vec::new();
    {
        let store = Store::open(config(dir.path())).unwrap();
        for trace in 1..=20 {
            let spans = order_trace(trace, start + trace);
            expected.extend(spans.clone());
            store.append_spans(spans).await.unwrap();
        }
        store
            .append_logs(vec![log("batch", start, 9, "kept", None)])
            .await
            .unwrap();
        // Dropped without close: nothing beyond the acknowledged WAL is relied on.
    }
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(all_spans(&store, &SpanFilter::default()), sorted(expected));
    assert_eq!(all_logs(&store, &LogFilter::default()).len(), 1);
    assert_eq!(
        store
            .service_stats()
            .iter()
            .map(|s| s.span_count)
            .sum::<u64>(),
        60
    );
}

#[tokio::test]
async fn test_crash_snapshot_of_open_store_recovers_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    store.append_spans(order_trace(1, start)).await.unwrap();
    store.seal_now().unwrap();
    store.append_spans(order_trace(2, start)).await.unwrap();
    // The files as they are right after the acknowledgement, as kill -9 leaves them.
    copy_dir(dir.path(), snapshot.path());
    let recovered = Store::open(config(snapshot.path())).unwrap();
    assert_eq!(recovered.get_trace(trace_id(1)).unwrap().len(), 3);
    assert_eq!(recovered.get_trace(trace_id(2)).unwrap().len(), 3);
    assert_eq!(all_spans(&recovered, &SpanFilter::default()).len(), 6);
}

#[tokio::test]
async fn test_reopen_after_close_keeps_everything_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    {
        let store = Store::open(config(dir.path())).unwrap();
        store.append_spans(order_trace(1, start)).await.unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.append_spans(order_trace(2, start)).await,
            Err(AppendError::Closed)
        ));
        assert_eq!(store.get_trace(trace_id(1)).unwrap().len(), 3);
    }
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(
        sorted(store.get_trace(trace_id(1)).unwrap()),
        sorted(order_trace(1, start))
    );
    assert!(store.get_trace(trace_id(2)).unwrap().is_empty());
}

#[tokio::test]
async fn test_torn_wal_tail_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    {
        let store = Store::open(config(dir.path())).unwrap();
        for trace in 1..=3 {
            store.append_spans(order_trace(trace, start)).await.unwrap();
        }
    }
    let wal = wal_files(dir.path());
    let last = wal
        .iter()
        .rev()
        .find(|p| fs::metadata(p).unwrap().len() > 8)
        .unwrap()
        .clone();
    let length = fs::metadata(&last).unwrap().len();
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    // Cut the third record in half, then add garbage, as a crash mid-write might.
    file.set_len(length - 100).unwrap();
    drop(file);
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .unwrap();
    drop(file);

    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(store.get_trace(trace_id(1)).unwrap().len(), 3);
    assert_eq!(store.get_trace(trace_id(2)).unwrap().len(), 3);
    assert!(store.get_trace(trace_id(3)).unwrap().is_empty());
    // New appends after recovery survive another reopen.
    store.append_spans(order_trace(4, start)).await.unwrap();
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(all_spans(&store, &SpanFilter::default()).len(), 9);
}

#[tokio::test]
async fn test_corrupted_wal_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    {
        let store = Store::open(config(dir.path())).unwrap();
        for trace in 1..=5 {
            store.append_spans(order_trace(trace, start)).await.unwrap();
        }
    }
    let wal = wal_files(dir.path());
    let original = fs::read(&wal[0]).unwrap();
    let mut seed = 0x2545f4914f6cdd1du64;
    for round in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = original.clone();
        let index = (seed as usize) % bytes.len();
        bytes[index] ^= 1 << (round % 8);
        let copy = tempfile::tempdir().unwrap();
        fs::create_dir_all(copy.path().join("wal")).unwrap();
        fs::write(
            copy.path().join("wal").join(wal[0].file_name().unwrap()),
            &bytes,
        )
        .unwrap();
        let store = Store::open(config(copy.path())).unwrap();
        let count = all_spans(&store, &SpanFilter::default()).len();
        assert!(
            count <= 15 && count.is_multiple_of(3),
            "round {round}: {count} spans"
        );
    }
}

#[tokio::test]
async fn test_seal_moves_data_to_parquet_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    let mut expected = Vec::new();
    let store = Store::open(config(dir.path())).unwrap();
    for trace in 1..=50 {
        let spans = order_trace(trace, start + trace);
        expected.extend(spans.clone());
        store.append_spans(spans).await.unwrap();
    }
    store
        .append_logs(vec![log("batch", start, 9, "sealed", Some(1))])
        .await
        .unwrap();
    store.seal_now().unwrap();
    let stats = store.storage_stats();
    assert_eq!((stats.span_segments, stats.log_segments), (1, 1));
    assert_eq!((stats.sealed_spans, stats.memtable_spans), (150, 0));
    assert_eq!(
        all_spans(&store, &SpanFilter::default()),
        sorted(expected.clone())
    );
    assert_eq!(
        sorted(store.get_trace(trace_id(7)).unwrap()),
        sorted(order_trace(7, start + 7))
    );
    let payments = store
        .service_stats()
        .into_iter()
        .find(|s| s.name == "payments")
        .unwrap();
    assert_eq!((payments.span_count, payments.error_count), (50, 50));
    let filtered = SpanFilter {
        service: Some("payments".into()),
        error_only: true,
        min_duration_ns: Some(100_000_000),
        ..Default::default()
    };
    assert_eq!(all_spans(&store, &filtered).len(), 50);
    drop(store);

    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(all_spans(&store, &SpanFilter::default()), sorted(expected));
    assert_eq!(all_logs(&store, &LogFilter::default()).len(), 1);
    assert_eq!(
        store
            .service_stats()
            .iter()
            .map(|s| s.span_count)
            .sum::<u64>(),
        150
    );
    assert_eq!(store.storage_stats().memtable_spans, 0);
}

#[tokio::test]
async fn test_trace_spread_over_segments_and_memtable_is_assembled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    let parts = order_trace(5, start);
    for (index, part) in parts.iter().enumerate() {
        // Unrelated traces around it so row-group pruning has work to do.
        let mut batch = order_trace(100 + index as u64, start);
        batch.push(part.clone());
        store.append_spans(batch).await.unwrap();
        if index < 2 {
            store.seal_now().unwrap();
        }
    }
    assert_eq!(store.storage_stats().span_segments, 2);
    assert_eq!(
        sorted(store.get_trace(trace_id(5)).unwrap()),
        sorted(parts.clone())
    );
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(sorted(store.get_trace(trace_id(5)).unwrap()), sorted(parts));
}

/// Outlines are the full spans minus attributes, events and links of
/// sealed spans; memtable spans come whole.
#[tokio::test]
async fn test_trace_outlines_leave_out_attributes_events_and_links_of_sealed_spans() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    let sealed = order_trace(7, start);
    let mut batch = order_trace(70, start);
    batch.extend(sealed.clone());
    store.append_spans(batch).await.unwrap();
    store.seal_now().unwrap();
    let recent = order_trace(8, start);
    store.append_spans(recent.clone()).await.unwrap();

    let outlines = sorted(
        store
            .get_trace_outlines(&[trace_id(7), trace_id(8)])
            .unwrap(),
    );
    let mut expected: Vec<Span> = sealed
        .into_iter()
        .map(|mut span| {
            span.attributes.clear();
            span.events.clear();
            span.links.clear();
            span
        })
        .collect();
    expected.extend(recent);
    assert_eq!(outlines, sorted(expected));
    assert_eq!(
        sorted(store.get_traces(&[trace_id(7)]).unwrap()),
        sorted(order_trace(7, start))
    );
}

#[tokio::test]
async fn test_crash_between_catalog_commit_and_wal_delete_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns();
    let saved_wal: Vec<(PathBuf, Vec<u8>)>;
    {
        let store = Store::open(config(dir.path())).unwrap();
        store.append_spans(order_trace(1, start)).await.unwrap();
        saved_wal = wal_files(dir.path())
            .into_iter()
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        store.seal_now().unwrap();
    }
    // Put back the WAL files the seal deleted, plus a half-written segment.
    for (path, bytes) in saved_wal {
        fs::write(path, bytes).unwrap();
    }
    let orphan = dir
        .path()
        .join("segments")
        .join("spans-99999999.parquet.tmp");
    fs::write(&orphan, b"partial").unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(store.get_trace(trace_id(1)).unwrap().len(), 3);
    assert_eq!(all_spans(&store, &SpanFilter::default()).len(), 3);
    assert!(!orphan.exists());
}

#[tokio::test]
async fn test_retention_drops_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.retention = Duration::from_secs(3600);
    let store = Store::open(config.clone()).unwrap();
    let old = now_ns() - 2 * 3600 * 1_000_000_000;
    store.append_spans(order_trace(1, old)).await.unwrap();
    store.seal_now().unwrap();
    store.append_spans(order_trace(2, now_ns())).await.unwrap();
    store.seal_now().unwrap();
    assert_eq!(store.storage_stats().span_segments, 2);

    assert_eq!(store.enforce_retention_now().unwrap(), 1);
    assert_eq!(store.storage_stats().span_segments, 1);
    assert!(store.get_trace(trace_id(1)).unwrap().is_empty());
    assert_eq!(store.get_trace(trace_id(2)).unwrap().len(), 3);
    assert_eq!(
        store
            .service_stats()
            .iter()
            .map(|s| s.span_count)
            .sum::<u64>(),
        3
    );
    drop(store);
    let store = Store::open(config).unwrap();
    assert!(store.get_trace(trace_id(1)).unwrap().is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("segments")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn test_retention_runs_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(config(dir.path())).unwrap();
        store
            .append_spans(order_trace(1, now_ns() - 3600 * 1_000_000_000))
            .await
            .unwrap();
        store.seal_now().unwrap();
    }
    let mut config = config(dir.path());
    config.retention = Duration::from_secs(60);
    let store = Store::open(config).unwrap();
    assert_eq!(store.storage_stats().span_segments, 0);
    assert!(store.service_stats().is_empty());
}

#[tokio::test]
async fn test_stalled_writer_makes_appends_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_pending_bytes = 64;
    config.overload_wait = Duration::from_millis(20);
    let store = Store::open(config).unwrap();
    let start = now_ns();
    let stall = store.stall_writer();
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.append_spans(order_trace(1, start)).await }
    });
    while store.pending_bytes() == 0 {
        tokio::task::yield_now().await;
    }
    let second = store.append_spans(order_trace(2, start)).await;
    assert!(
        matches!(second, Err(AppendError::Overloaded { .. })),
        "{second:?}"
    );
    drop(stall);
    first.await.unwrap().unwrap();
    store.append_spans(order_trace(2, start)).await.unwrap();
    assert_eq!(store.get_trace(trace_id(1)).unwrap().len(), 3);
    assert_eq!(store.pending_bytes(), 0);
}

#[tokio::test]
async fn test_memtable_memory_limit_makes_appends_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_memory_bytes = 1;
    config.overload_wait = Duration::from_millis(20);
    let store = Store::open(config).unwrap();
    store.append_spans(order_trace(1, now_ns())).await.unwrap();
    let refused = store.append_spans(order_trace(2, now_ns())).await;
    assert!(
        matches!(refused, Err(AppendError::Overloaded { .. })),
        "{refused:?}"
    );
    store.seal_now().unwrap();
    store.append_spans(order_trace(2, now_ns())).await.unwrap();
}

#[tokio::test]
async fn test_row_threshold_seals_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.seal_max_rows = 5;
    let store = Store::open(config).unwrap();
    let start = now_ns();
    for trace in 1..=4 {
        store.append_spans(order_trace(trace, start)).await.unwrap();
    }
    // seal_now also waits for seals already started by the threshold.
    store.seal_now().unwrap();
    let stats = store.storage_stats();
    assert!(stats.span_segments >= 2, "{stats:?}");
    assert_eq!(stats.sealed_spans, 12);
    assert_eq!(all_spans(&store, &SpanFilter::default()).len(), 12);
}

#[path = "../examples/support/synthetic.rs"]
mod synthetic;

/// Not an assertion on size: prints bytes/span on disk after sealing 100k
/// realistic spans (`cargo test -p ashiato-store -- --nocapture bytes_per_span`).
#[tokio::test]
async fn test_measure_bytes_per_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let spans = synthetic::spans(100_000, now_ns(), 0x1234_5678_9abc_def1);
    let probe = spans[12_345].clone();
    for batch in spans.chunks(1_000) {
        store.append_spans(batch.to_vec()).await.unwrap();
    }
    let in_memory = store.storage_stats();
    println!(
        "estimated memtable bytes/span: {:.0}",
        in_memory.memtable_bytes as f64 / in_memory.memtable_spans as f64
    );
    store.seal_now().unwrap();
    let stats = store.storage_stats();
    assert_eq!(stats.sealed_spans, 100_000);
    assert_eq!(stats.memtable_bytes, 0);
    let bytes_per_span = stats.span_segment_bytes as f64 / stats.sealed_spans as f64;
    println!(
        "bytes/span after sealing 100k spans: {bytes_per_span:.1} ({} bytes)",
        stats.span_segment_bytes
    );
    let found = store.get_trace(probe.trace_id).unwrap();
    assert_eq!(found.len(), 5);
    assert!(found.contains(&probe));

    // Lookups through row-group ranges, bloom filters and page selection
    // find every span of every probed trace.
    let mut timings = Vec::new();
    for index in (0..spans.len()).step_by(997) {
        let trace = spans[index].trace_id;
        let began = std::time::Instant::now();
        let found = store.get_trace(trace).unwrap();
        timings.push(began.elapsed());
        let expected: Vec<Span> = spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .cloned()
            .collect();
        assert_eq!(sorted(found), sorted(expected));
    }
    timings.sort();
    println!(
        "trace lookup p50 over {} lookups (this build): {:?}",
        timings.len(),
        timings[timings.len() / 2]
    );
}

#[tokio::test]
async fn test_second_open_of_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let second = Store::open(config(dir.path()));
    assert!(
        matches!(second, Err(ashiato_store::StoreError::Locked { .. })),
        "{:?}",
        second.err()
    );
    drop(store);
    Store::open(config(dir.path())).unwrap();
}

#[test]
fn test_store_handle_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Store>();
}

#[tokio::test]
async fn test_age_threshold_seals_a_quiet_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.seal_idle_max_age = Duration::ZERO;
    let store = Store::open(config).unwrap();
    store.append_spans(order_trace(1, now_ns())).await.unwrap();
    // The writer seals on its own; wait for it without calling seal_now.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.storage_stats().span_segments == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "memtable was never sealed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.storage_stats().memtable_spans, 0);
    assert_eq!(store.get_trace(trace_id(1)).unwrap().len(), 3);
}

#[tokio::test]
async fn test_scans_stop_when_the_visitor_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let start = now_ns();
    for trace in 1..=3 {
        store.append_spans(order_trace(trace, start)).await.unwrap();
        store
            .append_logs(vec![log("batch", start + trace, 9, "line", None)])
            .await
            .unwrap();
    }
    store.seal_now().unwrap();
    store.append_spans(order_trace(4, start)).await.unwrap();
    for limit in [1, 3, 4, 10] {
        let mut seen = 0;
        store
            .scan_spans(&SpanFilter::default(), &mut |_| {
                seen += 1;
                if seen == limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(seen, limit.min(12));
    }
    let mut seen = 0;
    store
        .scan_logs(&LogFilter::default(), &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(seen, 1);
}

const CRASH_CHILD_ENV: &str = "ASHIATO_STORE_CRASH_CHILD";

/// In the child process: append traces forever (bounded), announcing each
/// acknowledgement, sealing now and then so the kill can land anywhere.
async fn crash_child(dir: &Path) {
    let store = Store::open(config(dir)).unwrap();
    let start = now_ns();
    for trace in 1..=100_000u64 {
        store.append_spans(order_trace(trace, start)).await.unwrap();
        println!("acked {trace}");
        std::io::stdout().flush().unwrap();
        if trace.is_multiple_of(15) {
            store.seal_now().unwrap();
        }
    }
}

/// Makes sure a failing test never leaves the child appending.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn test_kill_9_after_acknowledgement_loses_nothing() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&dir)).await;
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "test_kill_9_after_acknowledgement_loses_nothing",
            "--nocapture",
        ])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let mut acknowledged = 0u64;
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(number) = line.unwrap().strip_prefix("acked ") {
            acknowledged = number.parse().unwrap();
            if acknowledged >= 40 {
                break;
            }
        }
    }
    child.0.kill().unwrap(); // SIGKILL on unix
    child.0.wait().unwrap();
    assert!(acknowledged >= 40);

    let store = Store::open(config(dir.path())).unwrap();
    for trace in 1..=acknowledged {
        assert_eq!(
            store.get_trace(trace_id(trace)).unwrap().len(),
            3,
            "trace {trace}"
        );
    }
    let stored = all_spans(&store, &SpanFilter::default()).len() as u64;
    assert!(
        stored >= acknowledged * 3 && stored.is_multiple_of(3),
        "{stored} spans"
    );
}
