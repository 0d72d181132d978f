//! The tracker end to end without a server: candidates in, issues,
//! lifecycle events and exact counts out (also across a reopen).

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use std::time::{Duration, Instant};

use ashiato_errors::{
    Candidate, CandidateKind, IssueEventKind, IssueFilter, IssueStatus, IssueStore, Source,
    TraceSource, Tracker, TreeNode,
};
use ashiato_model::{SpanId, TraceId};

struct NoStore;

impl TraceSource for NoStore {
    fn trace_tree(&self, _trace_id: TraceId) -> Vec<TreeNode> {
        Vec::new()
    }
}

fn exception(trace: u64, span: u64, message: &str, version: &str) -> Candidate {
    Candidate {
        source: Source::Span,
        kind: CandidateKind::Exception,
        trace_id: Some(TraceId::from_halves(7, trace)),
        span_id: SpanId::from_u64(span),
        parent_span_id: None,
        entry: true,
        time_unix_nano: ashiato_errors::now_unix_nano(),
        service: "shop".into(),
        environment: "test".into(),
        version: version.into(),
        error_type: "ValueError".into(),
        message: message.into(),
        stack: String::new(),
        operation: "POST /orders".into(),
        fingerprint_override: None,
        attributes: vec![("customer".into(), format!("c{}", trace % 2))],
        log_hash: 0,
    }
}

fn run(tracker: &mut Tracker, candidates: Vec<Candidate>) -> Vec<IssueEventKind> {
    tracker.observe(candidates, Instant::now());
    tracker
        .settle(Instant::now(), true)
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect()
}

#[test]
fn test_lifecycle_and_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let mut tracker = Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();
    let store = IssueStore::open(&path).unwrap();

    assert_eq!(
        run(&mut tracker, vec![exception(1, 1, "order 1 failed", "1.0")]),
        [IssueEventKind::NewIssue]
    );
    // varying ids, same issue, no new event
    assert!(run(&mut tracker, vec![exception(2, 1, "order 2 failed", "1.0")]).is_empty());
    // a replay of the same occurrence is not counted
    assert!(run(&mut tracker, vec![exception(2, 1, "order 2 failed", "1.0")]).is_empty());
    let issues = store
        .list(&IssueFilter {
            limit: 10,
            ..IssueFilter::default()
        })
        .unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].count, 2);
    assert_eq!(issues[0].title, "ValueError: order <num> failed");
    let id = issues[0].id.clone();

    // resolved in 2.0: an occurrence from 1.0 does not regress it, 2.0 does
    store
        .set_status(&id, IssueStatus::Resolved, Some("2.0"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    assert!(run(&mut tracker, vec![exception(3, 1, "order 3 failed", "1.0")]).is_empty());
    assert_eq!(
        store.get(&id).unwrap().summary.status,
        IssueStatus::Resolved
    );
    assert_eq!(
        run(&mut tracker, vec![exception(4, 1, "order 4 failed", "2.0")]),
        [IssueEventKind::Regression]
    );
    let detail = store.get(&id).unwrap();
    assert_eq!(detail.summary.status, IssueStatus::Open);
    assert!(detail.summary.regressed);
    assert_eq!(detail.summary.count, 4);
    assert_eq!(detail.hourly_14d.len(), 336);
    assert_eq!(detail.hourly_14d.iter().sum::<u64>(), 4);
    assert_eq!(detail.facets[0].key, "customer");

    // ignored: keeps counting, never notifies
    store.set_status(&id, IssueStatus::Ignored, None).unwrap();
    assert!(run(&mut tracker, vec![exception(5, 1, "order 5 failed", "2.0")]).is_empty());
    assert_eq!(store.get(&id).unwrap().summary.count, 5);

    // reopen the database: counts survive, replays still ignored
    drop(tracker);
    let mut tracker = Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();
    assert!(run(&mut tracker, vec![exception(5, 1, "order 5 failed", "2.0")]).is_empty());
    assert_eq!(store.get(&id).unwrap().summary.count, 5);
}

/// Counts trace reads, to check which decisions need the rest of a trace.
struct CountingStore(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl TraceSource for CountingStore {
    fn trace_tree(&self, _trace_id: TraceId) -> Vec<TreeNode> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Vec::new()
    }
}

#[test]
fn test_a_lone_candidate_is_decided_without_reading_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = Box::new(CountingStore(reads.clone()));
    let mut tracker = Tracker::open(
        &dir.path().join("errors.sqlite"),
        Duration::from_secs(1),
        source,
    )
    .unwrap();
    let read_count = || reads.load(std::sync::atomic::Ordering::SeqCst);

    run(&mut tracker, vec![exception(1, 1, "order 1 failed", "1.0")]);
    assert_eq!(read_count(), 0, "one exception decides alone");

    let mut nested = exception(2, 2, "order 2 failed", "1.0");
    nested.parent_span_id = SpanId::from_u64(1);
    run(
        &mut tracker,
        vec![exception(2, 1, "order 2 failed", "1.0"), nested],
    );
    assert_eq!(
        read_count(),
        0,
        "two candidates whose chains reach the root decide alone"
    );

    let mut parent = exception(6, 1, "order 6 failed", "1.0");
    parent.parent_span_id = SpanId::from_u64(8);
    let mut child = exception(6, 2, "order 6 failed", "1.0");
    child.parent_span_id = SpanId::from_u64(7);
    run(&mut tracker, vec![parent, child]);
    assert_eq!(
        read_count(),
        1,
        "two candidates may nest through spans that are not candidates"
    );

    let mut status = exception(3, 5, "", "1.0");
    status.kind = CandidateKind::StatusOnly;
    status.entry = false;
    status.parent_span_id = SpanId::from_u64(4);
    run(&mut tracker, vec![status]);
    assert_eq!(
        read_count(),
        2,
        "whether a status-only span is an entry needs its parent"
    );

    // a late candidate of a trace already counted is checked against it
    run(&mut tracker, vec![exception(1, 9, "order 1 failed", "1.0")]);
    assert_eq!(read_count(), 3);
}

/// Occurrences of one issue with their own times, versions and messages.
fn burst(first_trace: u64, count: u64, base: u64) -> Vec<Candidate> {
    (0..count)
        .map(|index| {
            let trace = first_trace + index;
            // versions and times out of order, as replays and late spans come
            let version = ["1.0", "2.1", "", "1.5"][(index % 4) as usize];
            let mut candidate = exception(trace, 1, &format!("order {trace} failed"), version);
            // after the resolution below, in an order of its own
            candidate.time_unix_nano = base - (index * 7_919 % 101) * 1_000_000;
            candidate
        })
        .collect()
}

/// Feeds `rounds` (each decided in one settle round) into a fresh tracker
/// whose issue was resolved in 2.0 after a first occurrence; returns the
/// events and the issue as the API shows it.
fn resolved_then(
    rounds: &[Vec<Candidate>],
    base: u64,
) -> (Vec<IssueEventKind>, ashiato_errors::IssueDetail) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let mut tracker = Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();
    let store = IssueStore::open(&path).unwrap();
    let mut first = exception(1, 1, "order 1 failed", "1.0");
    first.time_unix_nano = base - 1_000_000_000;
    run(&mut tracker, vec![first]);
    let id = store
        .list(&IssueFilter {
            limit: 1,
            ..IssueFilter::default()
        })
        .unwrap()[0]
        .id
        .clone();
    store
        .set_status(&id, IssueStatus::Resolved, Some("2.0"))
        .unwrap();
    let mut events = Vec::new();
    for round in rounds {
        events.extend(run(&mut tracker, round.clone()));
    }
    let mut detail = store.get(&id).unwrap();
    detail.summary.hourly_24h.clear();
    detail.hourly_14d.clear();
    (events, detail)
}

#[test]
fn test_a_round_counts_like_one_occurrence_at_a_time() {
    // an hour ahead: after the resolution, whenever the test runs
    let base = ashiato_errors::now_unix_nano() + 3_600_000_000_000;
    let candidates = burst(100, 60, base);
    // one round per occurrence, in the order a round decides them
    let mut sorted = candidates.clone();
    sorted.sort_by_key(|candidate| candidate.trace_id);
    let one_by_one: Vec<Vec<Candidate>> = sorted.into_iter().map(|c| vec![c]).collect();
    let (events_one, detail_one) = resolved_then(&one_by_one, base);
    let (events_round, detail_round) = resolved_then(&[candidates], base);
    assert_eq!(events_one, [IssueEventKind::Regression]);
    assert_eq!(events_round, events_one);
    assert_eq!(detail_round.summary.count, 61);
    assert_eq!(detail_round.summary.status, IssueStatus::Open);
    assert!(detail_round.summary.regressed);
    // the same issue, the same 21 samples (first + latest 20), fewer written
    assert_eq!(detail_round.samples.len(), 21);
    assert_eq!(detail_round, detail_one);

    // a later round of older occurrences changes counts, not the samples
    let older: Vec<Candidate> = burst(500, 30, base)
        .into_iter()
        .map(|mut candidate| {
            candidate.time_unix_nano -= 500_000_000;
            candidate
        })
        .collect();
    let (_, later) = resolved_then(&[burst(100, 60, base), older], base);
    assert_eq!(later.summary.count, 91);
    assert_eq!(later.samples, detail_one.samples);
}

#[test]
fn test_only_a_clean_stop_spares_the_next_recovery_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let open = || Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();

    // first start: everything stored is scanned
    let mut tracker = open();
    assert_eq!(tracker.recovery_since().unwrap(), Some(0));
    tracker.set_recovering(false);
    run(&mut tracker, vec![exception(1, 1, "boom", "1.0.0")]);
    tracker.stop_cleanly().unwrap();
    drop(tracker);

    // after a clean stop: nothing to re-derive, and the mark is used up,
    // so a crash of this run falls back to the watermark
    let mut tracker = open();
    assert_eq!(tracker.recovery_since().unwrap(), None);
    tracker.observe(vec![exception(2, 1, "boom", "1.0.0")], Instant::now());
    drop(tracker); // killed with a pending trace
    let mut tracker = open();
    assert!(
        tracker
            .recovery_since()
            .unwrap()
            .is_some_and(|since| since > 0)
    );

    // a stop with something still undecided (recovery unfinished) is not clean
    tracker.stop_cleanly().unwrap();
    drop(tracker);
    let mut tracker = open();
    assert!(tracker.recovery_since().unwrap().is_some());
    tracker.set_recovering(false);
    tracker.stop_cleanly().unwrap();
    drop(tracker);

    // tracking turned off in between forgets the clean stop
    Tracker::forget_clean_stop(&path).unwrap();
    let mut tracker = open();
    assert!(tracker.recovery_since().unwrap().is_some());
}

/// Issue 16's reproduction through the tracker: `opentelemetry-instrument`
/// reports each failing Flask request as a span event typed
/// `__main__.PaymentDeclined` and two ERROR log records typed
/// `PaymentDeclined` (the handler's `logging.exception` and Flask's
/// "Exception on /pay/N [GET]"), in one batch or spread over several.
/// One failure is one occurrence of one issue.
#[test]
fn test_one_failure_reported_by_span_and_logs_is_one_occurrence_of_one_issue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let mut tracker = Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();
    let store = IssueStore::open(&path).unwrap();
    let stack = "Traceback (most recent call last):\n  File \"/srv/app.py\", line 52, in pay\n    charge(order)\n  File \"/srv/app.py\", line 33, in charge\n    raise PaymentDeclined(m)\nPaymentDeclined: card declined\n";
    let failure = |trace: u64| {
        let mut span = exception(trace, 1, "card declined", "1.0");
        span.error_type = "__main__.PaymentDeclined".into();
        span.stack = stack.into();
        let log = |hash: u64| {
            let mut log = exception(trace, 1, "card declined", "1.0");
            log.source = Source::Log;
            log.entry = false;
            log.error_type = "PaymentDeclined".into();
            log.stack = stack.into();
            log.log_hash = hash;
            log
        };
        (span, [log(trace * 10), log(trace * 10 + 1)])
    };
    // one batch per request
    for trace in 1..=4 {
        let (span, logs) = failure(trace);
        let mut batch = vec![span];
        batch.extend(logs);
        run(&mut tracker, batch);
    }
    // spans decided first, their logs arrive in a later round
    let (span, logs) = failure(5);
    run(&mut tracker, vec![span]);
    run(&mut tracker, logs.to_vec());
    // logs decided first, the span arrives later
    let (span, logs) = failure(6);
    run(&mut tracker, logs.to_vec());
    run(&mut tracker, vec![span]);
    let issues = store
        .list(&IssueFilter {
            limit: 10,
            ..IssueFilter::default()
        })
        .unwrap();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].count, 6);
    assert_eq!(issues[0].sources, [Source::Span, Source::Log]);
}

/// A Python log record written where the exception was caught holds fewer
/// frames than the span that middleware ended further up. When a
/// collector's retry delivers the logs of some requests and the spans of
/// others apart, each settles alone: they are still one issue. An error of
/// the same type raised on another path is another issue.
#[test]
fn test_one_error_seen_from_two_depths_is_one_issue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let mut tracker = Tracker::open(&path, Duration::from_secs(1), Box::new(NoStore)).unwrap();
    let store = IssueStore::open(&path).unwrap();
    let frame = |function: &str, line: u32| {
        format!("  File \"/srv/shop/orders.py\", line {line}, in {function}\n    x()\n")
    };
    let traceback = |frames: &[(&str, u32)]| {
        let body: String = frames.iter().map(|(f, l)| frame(f, *l)).collect();
        format!("Traceback (most recent call last):\n{body}ValueError: order 7 not found\n")
    };
    // outermost first, as Python prints them
    let caught_in_handle = traceback(&[("handle", 20), ("load_order", 10)]);
    let seen_by_middleware = traceback(&[("requests", 30), ("handle", 20), ("load_order", 10)]);
    let other_path = traceback(&[("refund", 40), ("load_order", 10)]);
    let log = |trace: u64, stack: &str| {
        let mut log = exception(trace, 1, "order 7 not found", "1.0");
        log.source = Source::Log;
        log.entry = false;
        log.stack = stack.into();
        log.log_hash = trace;
        log
    };
    let span = |trace: u64, stack: &str| {
        let mut span = exception(trace, 1, "order 7 not found", "1.0");
        span.stack = stack.into();
        span
    };
    run(&mut tracker, vec![log(1, &caught_in_handle)]);
    run(&mut tracker, vec![span(2, &seen_by_middleware)]);
    run(&mut tracker, vec![log(3, &caught_in_handle)]);
    run(&mut tracker, vec![span(4, &other_path)]);
    let issues = store
        .list(&IssueFilter {
            limit: 10,
            ..IssueFilter::default()
        })
        .unwrap();
    let mut counts: Vec<u64> = issues.iter().map(|issue| issue.count).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 3], "{issues:#?}");
}
