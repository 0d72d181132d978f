//! Deduplication cases of one trace, decided without a store.

use ashiato_model::TraceId;

use super::*;

fn span(id: u64) -> SpanId {
    SpanId::from_u64(id).unwrap()
}

fn candidate(id: u64, parent: Option<u64>, kind: CandidateKind, stack: &str) -> Candidate {
    Candidate {
        source: Source::Span,
        kind,
        trace_id: Some(TraceId::from_halves(1, 2)),
        span_id: Some(span(id)),
        parent_span_id: parent.map(span),
        entry: parent.is_none(),
        time_unix_nano: 1_000,
        service: "shop".into(),
        environment: String::new(),
        version: String::new(),
        error_type: if kind == CandidateKind::StatusOnly {
            "500".into()
        } else {
            "ValueError".into()
        },
        message: "bad".into(),
        stack: stack.into(),
        operation: "GET /x".into(),
        fingerprint_override: None,
        attributes: Vec::new(),
        log_hash: 0,
    }
}

#[test]
fn test_nested_spans_recording_one_exception_are_one_occurrence_on_the_deepest() {
    let candidates = vec![
        candidate(1, None, CandidateKind::Exception, "outer stack"),
        candidate(2, Some(1), CandidateKind::Exception, "inner stack"),
        candidate(3, Some(2), CandidateKind::Exception, "deepest stack"),
    ];
    let tree = Tree::new(&[], &candidates);
    let decided = decide_trace(candidates, &tree);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].candidate.span_id, Some(span(3)));
    assert_eq!(decided[0].ancestors, vec![span(1), span(2)]);
}

#[test]
fn test_siblings_are_two_occurrences() {
    let candidates = vec![
        candidate(2, Some(1), CandidateKind::Exception, "s"),
        candidate(3, Some(1), CandidateKind::Exception, "s"),
    ];
    let tree = Tree::new(&[], &candidates);
    assert_eq!(decide_trace(candidates, &tree).len(), 2);
}

#[test]
fn test_span_event_and_log_of_the_same_span_are_one() {
    let mut log = candidate(2, None, CandidateKind::Exception, "s");
    log.source = Source::Log;
    log.parent_span_id = None;
    let candidates = vec![candidate(2, Some(1), CandidateKind::Exception, "s"), log];
    let tree = Tree::new(&[], &candidates);
    let decided = decide_trace(candidates, &tree);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].sources, 3);
}

#[test]
fn test_status_only_ancestor_folds_into_the_exception_below() {
    let candidates = vec![
        candidate(1, None, CandidateKind::StatusOnly, ""),
        candidate(3, Some(2), CandidateKind::Exception, "s"),
    ];
    let nodes = [TreeNode {
        span_id: span(2),
        parent_span_id: Some(span(1)),
        service: "shop".into(),
    }];
    let tree = Tree::new(&nodes, &candidates);
    let decided = decide_trace(candidates, &tree);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].ancestors, vec![span(1)]);
}

#[test]
fn test_status_only_counts_on_entry_spans_only() {
    let mut inner = candidate(2, Some(1), CandidateKind::StatusOnly, "");
    inner.entry = false;
    let root = candidate(1, None, CandidateKind::StatusOnly, "");
    let tree = Tree::new(&[], &[root.clone(), inner.clone()]);
    let decided = decide_trace(vec![root, inner], &tree);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].candidate.span_id, Some(span(1)));
}

#[test]
fn test_decision_does_not_depend_on_arrival_order() {
    let a = vec![
        candidate(1, None, CandidateKind::Exception, "x"),
        candidate(2, Some(1), CandidateKind::Exception, "x"),
    ];
    let mut b = a.clone();
    b.reverse();
    let first = decide_trace(a.clone(), &Tree::new(&[], &a));
    let second = decide_trace(b.clone(), &Tree::new(&[], &b));
    assert_eq!(first[0].key, second[0].key);
}

/// A log record of span `span_id` reporting `error_type`.
fn log_of(span_id: Option<u64>, error_type: &str, stack: &str, hash: u64) -> Candidate {
    let mut log = candidate(span_id.unwrap_or(9), None, CandidateKind::Exception, stack);
    log.source = Source::Log;
    log.span_id = span_id.map(span);
    log.entry = false;
    log.error_type = error_type.into();
    log.log_hash = hash;
    log
}

/// The reproduction: Flask under `opentelemetry-instrument`, a
/// handler that calls `logging.exception(...)` and re-raises, so Flask
/// logs "Exception on /pay/N [GET]" too. The span event says
/// `__main__.PaymentDeclined`, both log records `PaymentDeclined`.
#[test]
fn test_span_exception_and_two_log_records_of_one_request_are_one_occurrence() {
    let mut span_event = candidate(2, Some(1), CandidateKind::Exception, "span stack");
    span_event.error_type = "__main__.PaymentDeclined".into();
    let candidates = vec![
        log_of(Some(2), "PaymentDeclined", "handler stack", 7),
        span_event,
        log_of(Some(2), "PaymentDeclined", "flask's longer stack", 8),
    ];
    let tree = Tree::new(&[], &candidates);
    let decided = decide_trace(candidates, &tree);
    assert_eq!(decided.len(), 1, "{decided:#?}");
    assert_eq!(decided[0].sources, Source::Span.bit() | Source::Log.bit());
    assert_eq!(decided[0].candidate.error_type, "__main__.PaymentDeclined");
}

#[test]
fn test_log_records_of_one_exception_without_a_span_event_are_one_occurrence() {
    let candidates = vec![
        log_of(Some(2), "PaymentDeclined", "short", 7),
        log_of(
            Some(2),
            "app.errors.PaymentDeclined",
            "the longest stack",
            8,
        ),
        log_of(Some(2), "PaymentDeclined", "shorter", 3),
    ];
    let tree = Tree::new(&[], &candidates);
    let decided = decide_trace(candidates.clone(), &tree);
    assert_eq!(decided.len(), 1, "{decided:#?}");
    assert_eq!(decided[0].candidate.stack, "the longest stack");
    let mut reversed = candidates;
    reversed.reverse();
    let again = decide_trace(reversed, &tree);
    assert_eq!(
        again[0].key, decided[0].key,
        "arrival order must not matter"
    );
}

#[test]
fn test_log_records_of_other_errors_still_count_apart() {
    let mut other_message = log_of(Some(2), "PaymentDeclined", "s", 8);
    other_message.message = "other".into();
    let candidates = vec![
        log_of(Some(2), "PaymentDeclined", "s", 7),
        log_of(Some(2), "CardExpired", "s", 9),
        other_message,
        log_of(Some(3), "PaymentDeclined", "s", 10),
    ];
    let tree = Tree::new(&[], &candidates);
    assert_eq!(decide_trace(candidates, &tree).len(), 4);
}

/// Java, Go and Datadog spell types with their package; log appenders may not.
#[test]
fn test_log_joins_the_span_exception_whatever_the_qualifier() {
    for (span_type, log_type) in [
        ("com.shop.PaymentDeclined", "PaymentDeclined"),
        ("*main.PaymentDeclined", "main.PaymentDeclined"),
        ("builtins.ValueError", "ValueError"),
        ("Error", "Error"),
    ] {
        let mut span_event = candidate(2, Some(1), CandidateKind::Exception, "s");
        span_event.error_type = span_type.into();
        let candidates = vec![span_event, log_of(Some(2), log_type, "s", 7)];
        let tree = Tree::new(&[], &candidates);
        let decided = decide_trace(candidates, &tree);
        assert_eq!(decided.len(), 1, "{span_type} vs {log_type}: {decided:#?}");
    }
}

#[test]
fn test_log_without_span_or_on_a_sibling_joins_the_same_exception_of_its_trace() {
    for log_span in [None, Some(3)] {
        let candidates = vec![
            candidate(2, Some(1), CandidateKind::Exception, "s"),
            log_of(log_span, "ValueError", "s", 7),
        ];
        let tree = Tree::new(&[], &candidates);
        assert_eq!(decide_trace(candidates, &tree).len(), 1, "{log_span:?}");
    }
    // a different exception elsewhere in the trace is its own occurrence
    let candidates = vec![
        candidate(2, Some(1), CandidateKind::Exception, "s"),
        log_of(Some(3), "KeyError", "s", 7),
    ];
    let tree = Tree::new(&[], &candidates);
    assert_eq!(decide_trace(candidates, &tree).len(), 2);
}

#[test]
fn test_nested_spans_with_differently_qualified_types_are_one_occurrence() {
    let mut outer = candidate(1, None, CandidateKind::Exception, "s");
    outer.error_type = "builtins.ValueError".into();
    let candidates = vec![outer, candidate(2, Some(1), CandidateKind::Exception, "s")];
    let tree = Tree::new(&[], &candidates);
    assert_eq!(decide_trace(candidates, &tree).len(), 1);
}

/// The Java agent on a handler that catches its exception, logs it with
/// `java.util.logging` and answers 500 itself: the server span has the 500
/// but no exception event, the log record on it has the exception. One
/// failure, one occurrence, named after the exception.
#[test]
fn test_status_only_span_folds_into_the_exception_logged_on_it_or_below() {
    for log_span in [1, 2] {
        let logged = log_of(Some(log_span), "shop.RefundFailedException", "s", 7);
        let candidates = vec![
            candidate(1, None, CandidateKind::StatusOnly, ""),
            logged.clone(),
        ];
        let nodes = [TreeNode {
            span_id: span(2),
            parent_span_id: Some(span(1)),
            service: "shop".into(),
        }];
        let tree = Tree::new(&nodes, &candidates);
        let decided = decide_trace(candidates, &tree);
        assert_eq!(decided.len(), 1, "log on span {log_span}: {decided:#?}");
        let occurrence = &decided[0];
        assert_eq!(
            occurrence.candidate.error_type,
            "shop.RefundFailedException"
        );
        assert_eq!(occurrence.sources, Source::Span.bit() | Source::Log.bit());
        assert_eq!(occurrence.key, decide_lone(logged).key);
        let folded: Vec<SpanId> = if log_span == 1 { vec![] } else { vec![span(1)] };
        assert_eq!(occurrence.ancestors, folded);
    }
    // an exception logged outside the failing span's subtree is another failure
    let candidates = vec![
        candidate(1, None, CandidateKind::StatusOnly, ""),
        log_of(Some(3), "shop.RefundFailedException", "s", 7),
    ];
    let nodes = [TreeNode {
        span_id: span(3),
        parent_span_id: Some(span(2)),
        service: "shop".into(),
    }];
    let tree = Tree::new(&nodes, &candidates);
    assert_eq!(decide_trace(candidates, &tree).len(), 2);
}
