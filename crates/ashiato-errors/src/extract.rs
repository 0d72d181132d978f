//! Candidate extraction: the inline, per-batch part of error tracking.
//!
//! It runs on the ingest path, so the common case must cost almost
//! nothing: a span with status != ERROR and no `exception` event is
//! rejected after one look at its status and event names, without
//! allocating or reading its attributes. Only the few spans and ERROR logs
//! that carry an error signal are copied into small [`Candidate`]s.

use std::collections::{HashMap, HashSet};

use ashiato_model::{
    AttrValue, KeyValue, LogRecord, Severity, Span, SpanId, SpanKind, StatusCode, TraceId, attr_get,
};

use crate::types::{Candidate, CandidateKind, Source, SpanLink, TreeNode};

/// Attribute values longer than this are not kept for facets and samples.
const MAX_FACET_VALUE: usize = 200;
/// At most this many attributes are kept per candidate.
const MAX_ATTRIBUTES: usize = 40;
/// Longest stack text kept (the parser reads at most 2000 lines anyway).
const MAX_STACK_BYTES: usize = 64 * 1024;

/// Appends the candidates of `spans` to `out`.
pub fn span_candidates(spans: &[Span], out: &mut Vec<Candidate>) {
    for span in spans {
        if has_error_signal(span) {
            out.push(span_candidate(span));
        }
    }
}

/// Ancestor walks stop after this many links (a cyclic parent chain ends).
const MAX_LINK_DEPTH: usize = 1_000;

/// Appends the parent links that deciding `candidates` (taken from
/// `spans`) needs: every candidate span and its ancestors found in the same
/// batch, each once. A chain that leaves the batch stops there; the
/// tracker reads the trace from the store only if no other batch closes it.
/// Only batches with candidates pay for this (an index of the spans of
/// their failing traces).
pub fn span_links(spans: &[Span], candidates: &[Candidate], out: &mut Vec<SpanLink>) {
    let starts: Vec<(TraceId, SpanId)> = candidates
        .iter()
        .filter(|candidate| candidate.source == Source::Span)
        .filter_map(|candidate| Some((candidate.trace_id?, candidate.span_id?)))
        .collect();
    if starts.is_empty() {
        return;
    }
    let traces: HashSet<TraceId> = starts.iter().map(|(trace, _)| *trace).collect();
    let index: HashMap<(TraceId, SpanId), &Span> = spans
        .iter()
        .filter(|span| traces.contains(&span.trace_id))
        .map(|span| ((span.trace_id, span.span_id), span))
        .collect();
    let mut sent = HashSet::new();
    for (trace, start) in starts {
        let mut current = Some(start);
        for _ in 0..MAX_LINK_DEPTH {
            let Some(span) = current.and_then(|id| index.get(&(trace, id))) else {
                break;
            };
            if !sent.insert((trace, span.span_id)) {
                break; // the rest of this chain is sent already
            }
            out.push(SpanLink {
                trace_id: trace,
                node: TreeNode {
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    service: span.service_name().to_owned(),
                },
            });
            current = span.parent_span_id;
        }
    }
}

/// The fast path: most spans fail both checks without touching their
/// attributes (each key is a separate allocation: scanning them would cost
/// a cache miss per attribute on every span). Datadog-style `error.*`
/// attributes therefore count on spans whose status is ERROR, which is how
/// the Datadog intake maps a span's `error` flag; attributes without the
/// flag are not an error in Datadog either.
fn has_error_signal(span: &Span) -> bool {
    span.status.code == StatusCode::Error
        || span.events.iter().any(|event| event.name == "exception")
}

fn text(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| match attr_get(attributes, key) {
        Some(AttrValue::Empty) | None => None,
        Some(value) => Some(value.to_text()).filter(|text| !text.is_empty()),
    })
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Base service: `_dd.base_service` wins, so a Datadog integration that
/// renamed its spans' service does not split the app's errors.
fn base_service(attributes: &[KeyValue], resource_service: &str) -> String {
    text(attributes, &["_dd.base_service"]).unwrap_or_else(|| resource_service.to_owned())
}

fn environment(attributes: &[KeyValue], resource: &[KeyValue]) -> String {
    text(
        resource,
        &["deployment.environment.name", "deployment.environment"],
    )
    .or_else(|| text(attributes, &["deployment.environment.name", "env"]))
    .unwrap_or_default()
}

fn version(attributes: &[KeyValue], resource: &[KeyValue]) -> String {
    text(resource, &["service.version"])
        .or_else(|| text(attributes, &["version", "service.version"]))
        .unwrap_or_default()
}

fn span_candidate(span: &Span) -> Candidate {
    let resource = span.resource.attributes();
    let event = span
        .events
        .iter()
        .rev()
        .find(|event| event.name == "exception");
    let attributes = &span.attributes;
    let dd_type = text(attributes, &["error.type", "error.kind"]);
    let dd_message = text(attributes, &["error.message", "error.msg"]);
    // dd-trace-go sends `error.stack` only for errors that carry their own
    // (pkg/errors, xerrors); for the others it sends where the error was
    // recorded as `error.handling_stack`, which still names the app's frames
    let dd_stack = text(attributes, &["error.stack", "error.handling_stack"]);
    let status_code = text(
        attributes,
        &[
            "http.response.status_code",
            "http.status_code",
            "rpc.grpc.status_code",
            // the stable RPC conventions (otelgrpc 0.72): the code's name
            "rpc.response.status_code",
        ],
    );
    // a tracer's own "500: Internal Server Error" for an answer it saw is
    // a status, not an exception
    let tracer_status = dd_stack.is_none()
        && dd_message
            .as_deref()
            .zip(status_code.as_deref())
            .is_some_and(|(message, code)| restates_status(message, code));
    let (kind, error_type, message, stack) = match event {
        Some(event) => (
            CandidateKind::Exception,
            text(&event.attributes, &["exception.type"]).or(dd_type),
            text(&event.attributes, &["exception.message"]).or(dd_message),
            text(&event.attributes, &["exception.stacktrace"]).or(dd_stack),
        ),
        None if (dd_message.is_some() || dd_stack.is_some()) && !tracer_status => {
            (CandidateKind::Exception, dd_type, dd_message, dd_stack)
        }
        None => {
            // the tracer's own error type (Go's `*errors.errorString`) would
            // group every failing route of a service together: the code
            // stands in for it
            let status_type = if tracer_status {
                status_code
            } else {
                dd_type.or(status_code)
            };
            let message = Some(span.status.message.clone()).filter(|text| !text.is_empty());
            // without any code the status itself is the type
            let status_type = status_type.or_else(|| Some("error".to_owned()));
            (CandidateKind::StatusOnly, status_type, message, None)
        }
    };
    let operation = text(attributes, &["http.route", "rpc.method"])
        .map(
            |route| match text(attributes, &["http.request.method", "http.method"]) {
                Some(method) if !route.starts_with(&method) => format!("{method} {route}"),
                _ => route,
            },
        )
        .unwrap_or_else(|| span.name.clone());
    Candidate {
        source: Source::Span,
        kind,
        trace_id: Some(span.trace_id),
        span_id: Some(span.span_id),
        parent_span_id: span.parent_span_id,
        entry: span.parent_span_id.is_none()
            || matches!(span.kind, SpanKind::Server | SpanKind::Consumer),
        time_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano),
        service: base_service(attributes, span.service_name()),
        environment: environment(attributes, resource),
        version: version(attributes, resource),
        error_type: error_type.unwrap_or_default(),
        message: message.unwrap_or_default(),
        stack: truncate(stack.unwrap_or_default(), MAX_STACK_BYTES),
        operation,
        fingerprint_override: text(attributes, &["error.fingerprint"]),
        attributes: facet_attributes(attributes, resource),
        log_hash: 0,
    }
}

/// Whether an error message says no more than the response status, as
/// the ones tracers make up for a 5xx answer do (dd-trace-go:
/// `500: Internal Server Error`).
fn restates_status(message: &str, code: &str) -> bool {
    message
        .strip_prefix(code)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with(' '))
}

/// Attributes worth a facet: span (or log) attributes that are not the
/// error itself, plus a few resource attributes that locate the process.
fn facet_attributes(attributes: &[KeyValue], resource: &[KeyValue]) -> Vec<(String, String)> {
    const RESOURCE_KEYS: &[&str] = &["host.name", "service.version", "k8s.pod.name"];
    let own = attributes.iter().filter(|kv| {
        !(kv.key.starts_with("error.")
            || kv.key.starts_with("exception.")
            || kv.key.starts_with("_dd.")
            // source locations of the logging call say nothing about who is affected
            || kv.key.starts_with("code."))
    });
    let located = resource
        .iter()
        .filter(|kv| RESOURCE_KEYS.contains(&kv.key.as_str()));
    own.chain(located)
        .filter_map(|kv| {
            let value = kv.value.to_text();
            (!value.is_empty() && value.len() <= MAX_FACET_VALUE).then(|| (kv.key.clone(), value))
        })
        .take(MAX_ATTRIBUTES)
        .collect()
}

/// Appends the candidates of `logs` (severity ERROR or above) to `out`.
pub fn log_candidates(logs: &[LogRecord], out: &mut Vec<Candidate>) {
    for log in logs {
        if log.effective_severity_number() >= Severity::Error.min_number() {
            out.push(log_candidate(log));
        }
    }
}

fn log_candidate(log: &LogRecord) -> Candidate {
    let attributes = &log.attributes;
    let resource = log.resource.attributes();
    let error_type = text(attributes, &["error.kind", "error.type", "exception.type"]);
    let message = text(
        attributes,
        &["error.message", "error.msg", "exception.message"],
    );
    let stack = text(attributes, &["error.stack", "exception.stacktrace"]);
    let body = log.body.to_text();
    let structured = error_type.is_some()
        || message.is_some()
        || stack.is_some()
        || log.event_name == "exception";
    let kind = if structured {
        CandidateKind::Exception
    } else {
        CandidateKind::LogMessage
    };
    let message = message.unwrap_or_else(|| body.clone());
    let error_type = error_type.unwrap_or_else(|| {
        if structured {
            String::new()
        } else {
            log_level_type(log)
        }
    });
    let time = log.effective_time_unix_nano();
    Candidate {
        source: Source::Log,
        kind,
        trace_id: log.trace_id,
        span_id: log.span_id,
        parent_span_id: None,
        entry: false,
        time_unix_nano: time,
        service: base_service(attributes, log.service_name()),
        environment: environment(attributes, resource),
        version: version(attributes, resource),
        error_type,
        message: truncate(message, MAX_STACK_BYTES),
        stack: truncate(stack.unwrap_or_default(), MAX_STACK_BYTES),
        operation: log.scope.name.clone(),
        fingerprint_override: text(attributes, &["error.fingerprint"]),
        attributes: facet_attributes(attributes, resource),
        log_hash: log_hash(time, log.service_name(), &body, log),
    }
}

/// Template logs have no type; their severity stands in (`ERROR`, `FATAL`).
fn log_level_type(log: &LogRecord) -> String {
    Severity::from_number(log.effective_severity_number())
        .map_or("ERROR", |severity| severity.as_str())
        .to_owned()
}

/// A stable content hash of a log record: the same record replayed from the
/// WAL hashes the same, so its occurrence key is idempotent.
fn log_hash(time: u64, service: &str, body: &str, log: &LogRecord) -> u64 {
    let mut hash = crate::fingerprint::Fnv::new(0);
    hash.write(&time.to_le_bytes());
    hash.write(service.as_bytes());
    hash.write(body.as_bytes());
    for kv in &log.attributes {
        hash.write(kv.key.as_bytes());
        hash.write(kv.value.to_text().as_bytes());
    }
    hash.finish()
}

#[cfg(test)]
mod tests;
