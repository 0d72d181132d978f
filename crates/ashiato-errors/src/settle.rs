//! Deciding a settled trace: "one error, one occurrence".
//!
//! Input: every candidate of one trace (spans and logs, possibly from
//! several batches) and the trace's parent links from the store. Rules:
//! - exception candidates of one service with the same type and message
//!   whose spans are nested (ancestor/descendant) form one occurrence,
//!   attributed to the member with a stack, deepest first; the others are
//!   listed as ancestors;
//! - a log record of an exception joins the group it reports instead of
//!   counting again: a group of a span nested with the log's that has the
//!   same type (or the log names none), else a group of the same service,
//!   type and message anywhere in the trace (a log without a span, or on a
//!   sibling span);
//! - "the same type" compares bare type names
//!   ([`crate::normalize::canonical_type`]): the OpenTelemetry Python SDK
//!   calls one exception `__main__.PaymentDeclined` on the span and
//!   `PaymentDeclined` in the log record;
//! - a status-only error on a span that is, or is an ancestor of, a span
//!   with an exception folds into that exception's occurrence, and so does
//!   one on the span (or an ancestor of the span) of a logged exception
//!   that no span recorded;
//! - other status-only errors count only on service-entry spans (root,
//!   SERVER, CONSUMER, or a parent in another service);
//! - remaining log records of one exception (same span, service, type and
//!   message) are one occurrence: a handler's `logging.exception(...)` and
//!   the framework's "Exception on /pay/3 [GET]" report one failure;
//!   other log candidates are occurrences of their own.
//!
//! Decisions depend only on the candidates and the tree, never on arrival
//! order, so re-deciding a trace after a restart picks the same
//! representative and the same occurrence key (idempotent counting).

use std::collections::HashMap;

use ashiato_model::SpanId;

use crate::normalize::same_type;
use crate::types::{Candidate, CandidateKind, Source, TreeNode};

/// One occurrence decided from a trace (or a lone log record).
#[derive(Debug, Clone)]
pub struct Decided {
    /// Idempotency key: the same occurrence always gets the same key.
    pub key: String,
    /// The representative candidate (its fields name the issue).
    pub candidate: Candidate,
    /// `Source` bits of everything folded in.
    pub sources: i64,
    /// Spans of the same error folded into this occurrence.
    pub ancestors: Vec<SpanId>,
    /// Every span this occurrence covers (representative and folded).
    pub members: Vec<SpanId>,
    /// Extra attributes from folded log records.
    pub extra_attributes: Vec<(String, String)>,
}

/// Parent links and services of one trace, from the store and the
/// candidates themselves (a candidate knows its own parent even when the
/// store lookup raced with ingest).
pub struct Tree {
    parents: HashMap<SpanId, Option<SpanId>>,
    services: HashMap<SpanId, String>,
}

/// Ancestor walks stop here, so a cyclic (malicious) parent chain ends.
const MAX_DEPTH: usize = 1_000;

impl Tree {
    pub fn new(nodes: &[TreeNode], candidates: &[Candidate]) -> Tree {
        let mut parents = HashMap::new();
        let mut services = HashMap::new();
        for node in nodes {
            parents.insert(node.span_id, node.parent_span_id);
            services.insert(node.span_id, node.service.clone());
        }
        for candidate in candidates {
            if candidate.source == Source::Span
                && let Some(span_id) = candidate.span_id
            {
                parents.entry(span_id).or_insert(candidate.parent_span_id);
                services
                    .entry(span_id)
                    .or_insert_with(|| candidate.service.clone());
            }
        }
        Tree { parents, services }
    }

    /// Whether the parent chain of `span` is known up to a root (a span
    /// without parent): then every ancestry question about `span` has the
    /// same answer as with the whole trace.
    pub fn reaches_root(&self, span: SpanId) -> bool {
        let mut current = span;
        for _ in 0..MAX_DEPTH {
            match self.parents.get(&current) {
                None => return false,
                Some(None) => return true,
                Some(Some(parent)) => current = *parent,
            }
        }
        false
    }

    /// Whether `ancestor` is a strict ancestor of `span`.
    pub fn is_ancestor(&self, ancestor: SpanId, span: SpanId) -> bool {
        let mut current = span;
        for _ in 0..MAX_DEPTH {
            match self.parents.get(&current).copied().flatten() {
                Some(parent) if parent == ancestor => return true,
                Some(parent) => current = parent,
                None => return false,
            }
        }
        false
    }

    fn nested(&self, a: SpanId, b: SpanId) -> bool {
        a == b || self.is_ancestor(a, b) || self.is_ancestor(b, a)
    }

    fn depth(&self, span: SpanId) -> usize {
        let mut depth = 0;
        let mut current = span;
        while let Some(Some(parent)) = self.parents.get(&current) {
            depth += 1;
            current = *parent;
            if depth >= MAX_DEPTH {
                break;
            }
        }
        depth
    }

    /// Entry span: flagged at extraction, or its parent is in another service.
    fn is_entry(&self, candidate: &Candidate, span: SpanId) -> bool {
        if candidate.entry {
            return true;
        }
        let parent = self.parents.get(&span).copied().flatten();
        match parent.and_then(|parent| self.services.get(&parent)) {
            Some(parent_service) => *parent_service != candidate.service,
            None => false,
        }
    }
}

struct Cluster {
    members: Vec<Candidate>,
    sources: i64,
    extra_attributes: Vec<(String, String)>,
    folded: Vec<SpanId>,
}

/// Decides the candidates of one trace.
pub fn decide_trace(candidates: Vec<Candidate>, tree: &Tree) -> Vec<Decided> {
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut status_only = Vec::new();
    let mut logs = Vec::new();
    for candidate in candidates {
        match (candidate.source, candidate.kind, candidate.span_id) {
            (Source::Span, CandidateKind::Exception, Some(span)) => {
                join_cluster(&mut clusters, candidate, span, tree);
            }
            (Source::Span, CandidateKind::StatusOnly, Some(_)) => status_only.push(candidate),
            _ => logs.push(candidate),
        }
    }
    let unfolded: Vec<Candidate> = logs
        .into_iter()
        .filter(|log| !fold_log(&mut clusters, log, tree))
        .collect();
    let mut decided = merge_logs(unfolded);
    for status in status_only {
        let Some(span) = status.span_id else { continue };
        if fold_status(&mut clusters, span, &status, tree)
            || fold_status_into_logged(&mut decided, span, tree)
        {
            continue;
        }
        if tree.is_entry(&status, span) {
            decided.push(Decided {
                key: span_key(&status, span),
                sources: Source::Span.bit(),
                ancestors: Vec::new(),
                members: vec![span],
                extra_attributes: Vec::new(),
                candidate: status,
            });
        }
    }
    decided.extend(
        clusters
            .into_iter()
            .filter_map(|cluster| finish(cluster, tree)),
    );
    decided
}

fn same_error(a: &Candidate, b: &Candidate) -> bool {
    a.service == b.service && same_type(&a.error_type, &b.error_type) && a.message == b.message
}

fn join_cluster(clusters: &mut Vec<Cluster>, candidate: Candidate, span: SpanId, tree: &Tree) {
    let existing = clusters.iter_mut().find(|cluster| {
        cluster.members.iter().any(|member| {
            same_error(member, &candidate)
                && member.span_id.is_some_and(|other| tree.nested(other, span))
        })
    });
    match existing {
        Some(cluster) => cluster.members.push(candidate),
        None => clusters.push(Cluster {
            members: vec![candidate],
            sources: Source::Span.bit(),
            extra_attributes: Vec::new(),
            folded: Vec::new(),
        }),
    }
}

/// A log record of an exception joins the group it reports: one on its
/// span (or a nested one) naming the same type (or the log names none),
/// else one of the same service, type and message elsewhere in the trace.
fn fold_log(clusters: &mut [Cluster], log: &Candidate, tree: &Tree) -> bool {
    if log.kind != CandidateKind::Exception {
        return false;
    }
    let typed = |member: &Candidate| {
        log.error_type.is_empty() || same_type(&member.error_type, &log.error_type)
    };
    let nested = |member: &Candidate| match (log.span_id, member.span_id) {
        (Some(span), Some(other)) => tree.nested(other, span),
        _ => false,
    };
    let reported = |member: &Candidate| {
        member.service == log.service
            && same_type(&member.error_type, &log.error_type)
            && member.message == log.message
    };
    let index = clusters
        .iter()
        .position(|cluster| cluster.members.iter().any(|m| typed(m) && nested(m)))
        .or_else(|| {
            clusters
                .iter()
                .position(|cluster| cluster.members.iter().any(reported))
        });
    match index.map(|index| &mut clusters[index]) {
        Some(cluster) => {
            cluster.sources |= Source::Log.bit();
            cluster
                .extra_attributes
                .extend(log.attributes.iter().cloned());
            true
        }
        None => false,
    }
}

/// A status-only error folds into an exception on its own span or below it.
fn fold_status(clusters: &mut [Cluster], span: SpanId, status: &Candidate, tree: &Tree) -> bool {
    let below = clusters.iter_mut().find(|cluster| {
        cluster.members.iter().any(|member| {
            member
                .span_id
                .is_some_and(|other| other == span || tree.is_ancestor(span, other))
        })
    });
    if let Some(cluster) = below {
        cluster.folded.push(span);
        return true;
    }
    // the span between them may not be stored yet: an exception of the same
    // service in this trace is the likely cause
    if let Some(cluster) = clusters
        .iter_mut()
        .find(|cluster| cluster.members.iter().any(|m| m.service == status.service))
    {
        cluster.folded.push(span);
        return true;
    }
    false
}

/// A status-only error folds into an exception logged on its own span or
/// below it: a handler that catches an exception, logs it and answers 500
/// itself (the Java agent's span then has the 500 but no exception event)
/// reports one failure, named after the logged exception.
fn fold_status_into_logged(decided: &mut [Decided], span: SpanId, tree: &Tree) -> bool {
    let logged = decided.iter_mut().find(|occurrence| {
        occurrence.candidate.kind == CandidateKind::Exception
            && occurrence
                .candidate
                .span_id
                .is_some_and(|other| other == span || tree.is_ancestor(span, other))
    });
    let Some(occurrence) = logged else {
        return false;
    };
    occurrence.sources |= Source::Span.bit();
    if !occurrence.members.contains(&span) {
        occurrence.ancestors.push(span);
        occurrence.members.push(span);
        // several folded ancestors: their order must not depend on arrival
        occurrence
            .ancestors
            .sort_by_key(|id| (tree.depth(*id), *id.as_bytes()));
    }
    true
}

/// The representative: a member with a stack, deepest first, then the
/// smallest span id (deterministic).
fn finish(cluster: Cluster, tree: &Tree) -> Option<Decided> {
    let Cluster {
        members,
        sources,
        extra_attributes,
        folded,
    } = cluster;
    let (index, span) = members
        .iter()
        .enumerate()
        .filter_map(|(index, member)| member.span_id.map(|span| (index, member, span)))
        .max_by_key(|(_, member, span)| {
            (
                !member.stack.is_empty(),
                tree.depth(*span),
                std::cmp::Reverse(*span.as_bytes()),
            )
        })
        .map(|(index, _, span)| (index, span))?;
    let mut ancestors: Vec<SpanId> = members
        .iter()
        .filter_map(|member| member.span_id)
        .filter(|other| *other != span)
        .chain(folded)
        .collect();
    // moved, not cloned: candidates carry stacks and attributes
    let candidate = members.into_iter().nth(index)?;
    ancestors.sort_by_key(|id| tree.depth(*id));
    ancestors.dedup();
    let mut all = ancestors.clone();
    all.push(span);
    Some(Decided {
        key: span_key(&candidate, span),
        candidate,
        sources,
        ancestors,
        members: all,
        extra_attributes,
    })
}

/// Log records that no span group took: records of one exception (same
/// span, service, type and message) are one occurrence, represented by the
/// record with the longest stack (the framework's, which saw the exception
/// propagate furthest), then the smallest content hash (deterministic).
fn merge_logs(logs: Vec<Candidate>) -> Vec<Decided> {
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    for log in logs {
        let group = groups
            .iter_mut()
            .find(|group| group.first().is_some_and(|first| same_logged(first, &log)));
        match group {
            Some(group) => group.push(log),
            None => groups.push(vec![log]),
        }
    }
    groups.into_iter().filter_map(decide_logged).collect()
}

fn same_logged(a: &Candidate, b: &Candidate) -> bool {
    a.kind == CandidateKind::Exception
        && b.kind == CandidateKind::Exception
        && a.span_id == b.span_id
        && a.service == b.service
        && same_type(&a.error_type, &b.error_type)
        && a.message == b.message
}

fn decide_logged(mut group: Vec<Candidate>) -> Option<Decided> {
    let index = group
        .iter()
        .enumerate()
        .max_by_key(|(_, log)| (log.stack.len(), std::cmp::Reverse(log.log_hash)))
        .map(|(index, _)| index)?;
    let representative = group.swap_remove(index);
    let mut decided = decide_lone(representative);
    for other in group {
        decided.extra_attributes.extend(other.attributes);
    }
    Some(decided)
}

fn span_key(candidate: &Candidate, span: SpanId) -> String {
    let trace = candidate
        .trace_id
        .map_or_else(String::new, |trace| trace.to_hex());
    format!("s:{trace}:{}", span.to_hex())
}

/// A log record on its own: its key is its content hash (plus its trace
/// and span), stable across WAL replay.
pub fn decide_lone(log: Candidate) -> Decided {
    let trace = log
        .trace_id
        .map_or_else(String::new, |trace| trace.to_hex());
    let span = log.span_id.map_or_else(String::new, |span| span.to_hex());
    Decided {
        key: format!("l:{trace}:{span}:{:016x}", log.log_hash),
        sources: Source::Log.bit(),
        ancestors: Vec::new(),
        members: log.span_id.into_iter().collect(),
        extra_attributes: Vec::new(),
        candidate: log,
    }
}

#[cfg(test)]
mod tests;
