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
