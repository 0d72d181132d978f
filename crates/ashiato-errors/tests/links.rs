//! Deciding from the parent links that batches carry gives the same issues,
//! counts and samples as reading every trace from the store, and reads the
//! store only when a candidate's chain to its root is not in the links.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ashiato_errors::extract::{span_candidates, span_links};
use ashiato_errors::{
    IssueFilter, IssueStore, IssueSummary, Sample, SpanLink, TraceSource, Tracker, TreeNode,
};
use ashiato_model::{
    AttrValue, Event, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

/// Every span ever sent, as the store would answer; counts its reads.
#[derive(Clone, Default)]
struct FullStore {
    spans: Arc<Vec<Span>>,
    reads: Arc<AtomicUsize>,
}

impl TraceSource for FullStore {
    fn trace_tree(&self, trace_id: TraceId) -> Vec<TreeNode> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .map(|span| TreeNode {
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                service: span.service_name().to_owned(),
            })
            .collect()
    }
}

/// splitmix64: deterministic traces without a dependency.
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

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource::new(vec![KeyValue::new(
        "service.name",
        AttrValue::Str(service.to_owned()),
    )]))
}

/// A span of `trace`; `error`: 0 none, 1 or 2 an exception of that type,
/// 3 status ERROR only.
fn span(trace: u64, id: u64, parent: Option<u64>, service: &str, error: u64) -> Span {
    let events = match error {
        1 | 2 => vec![Event {
            time_unix_nano: 15,
            name: "exception".into(),
            attributes: vec![
                KeyValue::new("exception.type", AttrValue::Str(format!("E{error}"))),
                KeyValue::new("exception.message", AttrValue::Str("boom".into())),
            ],
        }],
        _ => Vec::new(),
    };
    Span {
        trace_id: TraceId::from_halves(3, trace),
        span_id: SpanId::from_u64(id).unwrap(),
        parent_span_id: parent.and_then(SpanId::from_u64),
        trace_state: String::new(),
        flags: 0,
        name: format!("op{}", id % 3),
        kind: if id.is_multiple_of(4) {
            SpanKind::Server
        } else {
            SpanKind::Internal
        },
        start_time_unix_nano: 10 + id,
        end_time_unix_nano: 20 + id,
        attributes: Vec::new(),
        events,
        links: Vec::new(),
        status: Status {
            code: if error == 0 {
                StatusCode::Unset
            } else {
                StatusCode::Error
            },
            message: String::new(),
        },
        resource: resource(service),
        scope: Arc::new(Scope::default()),
    }
}

/// Traces of 2..9 spans with random parents, services and errors, each cut
/// into one to three batches at random points.
fn batches(traces: u64) -> Vec<Vec<Span>> {
    let mut rng = Rng(7);
    let services = ["a", "b", "c"];
    let mut out = Vec::new();
    for trace in 1..=traces {
        let count = 2 + rng.below(8);
        let mut spans: Vec<Span> = Vec::new();
        for position in 0..count {
            let id = trace * 100 + position + 1;
            let parent = (position > 0).then(|| trace * 100 + 1 + rng.below(position));
            let service = services[rng.below(3) as usize];
            let error = match rng.below(10) {
                0..=4 => 0,
                5 | 6 => 1,
                7 => 2,
                _ => 3,
            };
            spans.push(span(trace, id, parent, service, error));
        }
        // children may arrive before their parents
        if rng.below(2) == 0 {
            spans.reverse();
        }
        let mut rest = spans.as_slice();
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len() as u64) as usize;
            let (batch, tail) = rest.split_at(if rng.below(3) == 0 { take } else { rest.len() });
            out.push(batch.to_vec());
            rest = tail;
        }
    }
    out
}

/// Everything the issues show, for comparing two trackers.
fn outcome(store: &IssueStore) -> Vec<(IssueSummary, Vec<Sample>)> {
    let filter = IssueFilter {
        limit: 10_000,
        ..IssueFilter::default()
    };
    let mut issues: Vec<_> = store
        .list(&filter)
        .unwrap()
        .into_iter()
        .map(|mut issue| {
            let mut samples = store.get(&issue.id).unwrap().samples;
            samples.sort_by_key(|sample| sample.span_id.map(|id| *id.as_bytes()));
            // times of arrival differ between the two runs
            issue.last_seen = 0;
            issue.first_seen = 0;
            issue.hourly_24h.clear();
            (issue, samples)
        })
        .collect();
    issues.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    issues
}

/// Feeds every batch (with or without its links), then decides everything.
fn run(batches: &[Vec<Span>], with_links: bool) -> (Vec<(IssueSummary, Vec<Sample>)>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.sqlite");
    let source = FullStore {
        spans: Arc::new(batches.iter().flatten().cloned().collect()),
        reads: Arc::default(),
    };
    let reads = source.reads.clone();
    let mut tracker = Tracker::open(&path, Duration::from_secs(60), Box::new(source)).unwrap();
    for batch in batches {
        let mut candidates = Vec::new();
        span_candidates(batch, &mut candidates);
        let mut links: Vec<SpanLink> = Vec::new();
        if with_links {
            span_links(batch, &candidates, &mut links);
        }
        tracker.observe_with_links(candidates, links, Instant::now());
    }
    tracker.settle(Instant::now(), true).unwrap();
    let store = IssueStore::open(&path).unwrap();
    (outcome(&store), reads.load(Ordering::SeqCst))
}

#[test]
fn test_links_decide_like_the_store_and_save_reads() {
    let batches = batches(300);
    let (from_store, store_reads) = run(&batches, false);
    let (from_links, link_reads) = run(&batches, true);
    assert!(!from_store.is_empty());
    assert_eq!(from_links, from_store);
    assert!(
        link_reads * 3 < store_reads,
        "links should spare most reads: {link_reads} vs {store_reads}"
    );
    assert!(link_reads > 0, "split traces still need the store");
}

#[test]
fn test_a_trace_in_one_batch_is_never_read() {
    let batch = vec![
        span(1, 1, None, "a", 0),
        span(1, 2, Some(1), "a", 1),
        span(1, 3, Some(2), "a", 1),
        span(1, 4, Some(1), "b", 3),
    ];
    let (issues, reads) = run(&[batch], true);
    assert_eq!(reads, 0);
    // the nested exceptions are one occurrence; the status-only error of
    // service b under a's root is an entry span of its own
    let counts: Vec<u64> = issues.iter().map(|(issue, _)| issue.count).collect();
    assert_eq!(counts, [1, 1]);
}

#[test]
fn test_a_chain_broken_between_batches_is_read_from_the_store() {
    // the root arrives in a batch without candidates: links stop at span 2
    let batches = vec![
        vec![span(1, 2, Some(1), "a", 1), span(1, 3, Some(2), "a", 1)],
        vec![span(1, 1, None, "a", 0)],
    ];
    let (_, reads) = run(&batches, true);
    assert_eq!(reads, 1);
}

#[test]
fn test_links_follow_each_candidate_to_the_edge_of_its_batch() {
    let batch = vec![
        span(1, 1, None, "a", 0),
        span(1, 2, Some(1), "b", 1),
        span(1, 3, Some(2), "a", 1),
        span(1, 4, Some(1), "a", 0), // not on a candidate's chain
        span(2, 5, Some(9), "a", 1), // its parent is in another batch
        span(3, 6, None, "a", 0),    // a trace without candidates
    ];
    let mut candidates = Vec::new();
    span_candidates(&batch, &mut candidates);
    let mut links = Vec::new();
    span_links(&batch, &candidates, &mut links);
    let mut sent: Vec<(u64, u64, Option<u64>, &str)> = links
        .iter()
        .map(|link| {
            let id = |span: SpanId| u64::from_be_bytes(*span.as_bytes());
            (
                u64::from(link.trace_id.as_bytes()[15]),
                id(link.node.span_id),
                link.node.parent_span_id.map(id),
                link.node.service.as_str(),
            )
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (1, 1, None, "a"),
            (1, 2, Some(1), "b"),
            (1, 3, Some(2), "a"),
            (2, 5, Some(9), "a"),
        ]
    );
}
