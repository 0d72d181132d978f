//! Two frozen memtables sealed at once: both become segments, the catalog's
//! "WAL covered up to" mark only advances in seq order, and readers see each
//! row exactly once before, during and after the commits, also across a
//! shutdown with the later memtable written but not committed.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};
use ashiato_store::{SpanFilter, Store, StoreConfig};

/// Rows per memtable: every appended trace freezes one.
const TRACE_SPANS: u64 = 3;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn trace(n: u64, start: u64) -> Vec<Span> {
    let resource = Arc::new(Resource::new(vec![KeyValue::new(
        "service.name",
        AttrValue::Str("checkout".into()),
    )]));
    let scope = Arc::new(Scope {
        name: "ashiato-test".into(),
        version: "0.1".into(),
        attributes: Vec::new(),
    });
    (1..=TRACE_SPANS)
        .map(|i| Span {
            trace_id: TraceId::from_halves(0x5ea1, n),
            span_id: SpanId::from_u64(n * 10 + i).unwrap(),
            parent_span_id: (i > 1).then(|| SpanId::from_u64(n * 10 + 1).unwrap()),
            trace_state: String::new(),
            flags: 1,
            name: format!("step {i}"),
            kind: SpanKind::Internal,
            start_time_unix_nano: start + i,
            end_time_unix_nano: start + i + 1_000,
            attributes: vec![KeyValue::new("order.id", AttrValue::Int(n as i64))],
            events: Vec::new(),
            links: Vec::new(),
            status: Status {
                code: StatusCode::Unset,
                message: String::new(),
            },
            resource: resource.clone(),
            scope: scope.clone(),
        })
        .collect()
}

/// Seals after every trace, with two writers.
fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        seal_max_rows: TRACE_SPANS,
        seal_workers: 2,
        ..StoreConfig::new(dir)
    }
}

fn span_keys(store: &Store) -> Vec<(TraceId, SpanId)> {
    let mut keys = Vec::new();
    store
        .scan_spans(&SpanFilter::default(), &mut |s| {
            keys.push((s.trace_id, s.span_id));
            ControlFlow::Continue(())
        })
        .unwrap();
    keys.sort();
    keys
}

fn keys_of(spans: &[Span]) -> Vec<(TraceId, SpanId)> {
    let mut keys: Vec<_> = spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
    keys.sort();
    keys
}

fn covered(dir: &Path) -> Option<i64> {
    let catalog = rusqlite::Connection::open(dir.join("catalog.sqlite")).unwrap();
    catalog
        .query_row(
            "SELECT value FROM meta WHERE key = 'wal_covered'",
            [],
            |row| row.get(0),
        )
        .ok()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Appends two traces, each frozen into its own memtable, with the first
/// one's write held back until the second one's write has finished.
async fn two_seals_later_written_first(
    store: &Store,
    start: u64,
) -> (Vec<Span>, ashiato_store::SealHold) {
    let hold = store.hold_next_seal();
    let mut expected = Vec::new();
    for n in 1..=2 {
        let spans = trace(n, start);
        expected.extend(spans.clone());
        store.append_spans(spans).await.unwrap();
    }
    hold.wait_writes(1);
    (expected, hold)
}

#[tokio::test]
async fn test_later_memtable_written_first_commits_after_the_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let (expected, hold) = two_seals_later_written_first(&store, now_ns()).await;

    // the second memtable's segment is on disk, but nothing is committed
    assert_eq!(segment_files(dir.path()), vec!["spans-00000002.parquet"]);
    assert_eq!(covered(dir.path()), None);
    let stats = store.storage_stats();
    assert_eq!((stats.span_segments, stats.memtable_spans), (0, 6));
    assert_eq!(span_keys(&store), keys_of(&expected));

    // readers keep seeing every row once while both commits swap in
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let store = store.clone();
        let stop = stop.clone();
        let want = keys_of(&expected);
        move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                assert_eq!(span_keys(&store), want);
                reads += 1;
            }
        }
    });
    drop(hold);
    store.seal_now().unwrap();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    assert_eq!(covered(dir.path()), Some(2));
    let stats = store.storage_stats();
    assert_eq!(
        (
            stats.span_segments,
            stats.sealed_spans,
            stats.memtable_spans
        ),
        (2, 6, 0)
    );
    assert_eq!(span_keys(&store), keys_of(&expected));
    drop(store);

    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(span_keys(&store), keys_of(&expected));
    assert_eq!(store.storage_stats().memtable_spans, 0);
}

#[tokio::test]
async fn test_shutdown_before_the_earlier_write_keeps_the_later_one_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let (expected, hold) = two_seals_later_written_first(&store, now_ns()).await;
    // shutdown abandons the held seal; the written one must not commit alone
    drop(store);
    drop(hold);
    assert_eq!(covered(dir.path()), None);

    let store = Store::open(config(dir.path())).unwrap();
    // the uncommitted segment file was an orphan; the WAL had both memtables
    assert!(segment_files(dir.path()).is_empty());
    let stats = store.storage_stats();
    assert_eq!((stats.span_segments, stats.memtable_spans), (0, 6));
    assert_eq!(span_keys(&store), keys_of(&expected));
    store.seal_now().unwrap();
    assert_eq!(store.storage_stats().sealed_spans, 6);
    assert_eq!(span_keys(&store), keys_of(&expected));
}

#[tokio::test]
async fn test_one_seal_worker_still_seals_every_memtable_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        seal_workers: 1,
        ..config(dir.path())
    };
    let store = Store::open(config).unwrap();
    let start = now_ns();
    let mut expected = Vec::new();
    for n in 1..=5 {
        let spans = trace(n, start);
        expected.extend(spans.clone());
        store.append_spans(spans).await.unwrap();
    }
    store.seal_now().unwrap();
    assert_eq!(covered(dir.path()), Some(5));
    let stats = store.storage_stats();
    assert_eq!((stats.span_segments, stats.sealed_spans), (5, 15));
    assert_eq!(span_keys(&store), keys_of(&expected));
}
