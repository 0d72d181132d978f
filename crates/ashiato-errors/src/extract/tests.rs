//! Which spans and log records become candidates, and with what fields:
//! one case per error source, reviewed as a snapshot table.

use std::sync::Arc;

use ashiato_model::{
    AttrValue, Event, KeyValue, LogRecord, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};

use super::*;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue::new(key, AttrValue::Str(value.to_owned()))
}

fn resource() -> Arc<Resource> {
    Arc::new(Resource::new(vec![
        kv("service.name", "shop"),
        kv("service.version", "1.2.3"),
        kv("deployment.environment.name", "prod"),
        kv("host.name", "web-1"),
    ]))
}

fn span(
    kind: SpanKind,
    parent: bool,
    status: StatusCode,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
) -> Span {
    Span {
        trace_id: TraceId::from_halves(1, 2),
        span_id: SpanId::from_u64(3).unwrap(),
        parent_span_id: parent.then(|| SpanId::from_u64(9).unwrap()),
        trace_state: String::new(),
        flags: 0,
        name: "handler".into(),
        kind,
        start_time_unix_nano: 10,
        end_time_unix_nano: 20,
        attributes,
        events,
        links: Vec::new(),
        status: Status {
            code: status,
            message: String::new(),
        },
        resource: resource(),
        scope: Arc::new(Scope::default()),
    }
}

fn log(severity: u8, body: &str, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: 30,
        observed_time_unix_nano: 31,
        severity_number: severity,
        severity_text: String::new(),
        body: AttrValue::Str(body.into()),
        attributes,
        trace_id: None,
        span_id: None,
        flags: 0,
        event_name: String::new(),
        resource: resource(),
        scope: Arc::new(Scope {
            name: "batch.logger".into(),
            ..Scope::default()
        }),
    }
}

fn describe(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|c| {
            format!(
                "{:?}/{:?} entry={} service={} env={} version={} type={:?} message={:?} stack_lines={} operation={:?} override={:?} attributes={:?}",
                c.source,
                c.kind,
                c.entry,
                c.service,
                c.environment,
                c.version,
                c.error_type,
                c.message,
                c.stack.lines().count(),
                c.operation,
                c.fingerprint_override,
                c.attributes
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn test_span_sources() {
    let exception = Event {
        time_unix_nano: 15,
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", "ValueError"),
            kv("exception.message", "bad order 42"),
            kv(
                "exception.stacktrace",
                "Traceback (most recent call last):\n  File \"/app/x.py\", line 1, in f\nValueError: bad order 42",
            ),
        ],
    };
    let cases = vec![
        (
            "ok span",
            span(
                SpanKind::Server,
                false,
                StatusCode::Ok,
                vec![kv("http.route", "/x")],
                vec![],
            ),
        ),
        (
            "error.type alone on an ok client span",
            span(
                SpanKind::Client,
                true,
                StatusCode::Unset,
                vec![kv("error.type", "timeout")],
                vec![],
            ),
        ),
        (
            "exception event",
            span(
                SpanKind::Internal,
                true,
                StatusCode::Error,
                vec![kv("user.id", "u7")],
                vec![exception],
            ),
        ),
        (
            "datadog error attributes with base service",
            span(
                SpanKind::Client,
                true,
                StatusCode::Error,
                vec![
                    kv("error.type", "builtins.ValueError"),
                    kv("error.message", "bad"),
                    kv(
                        "error.stack",
                        "Traceback (most recent call last):\n  File \"/app/y.py\", line 3, in g\nValueError: bad",
                    ),
                    kv("_dd.base_service", "shop-web"),
                    kv("env", "staging"),
                    kv("error.fingerprint", "custom-group"),
                ],
                vec![],
            ),
        ),
        (
            "status-only server span",
            span(
                SpanKind::Server,
                true,
                StatusCode::Error,
                vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/orders/{id}"),
                    KeyValue::new("http.response.status_code", AttrValue::Int(500)),
                ],
                vec![],
            ),
        ),
        (
            "status-only grpc server span, stable rpc conventions",
            span(
                SpanKind::Server,
                true,
                StatusCode::Error,
                vec![
                    kv("rpc.system.name", "grpc"),
                    kv("rpc.method", "shop.Orders/Get"),
                    kv("rpc.response.status_code", "NOT_FOUND"),
                ],
                vec![],
            ),
        ),
    ];
    let table: Vec<String> = cases
        .into_iter()
        .map(|(name, span)| {
            let mut out = Vec::new();
            span_candidates(&[span], &mut out);
            format!("{name}:\n{}", describe(&out))
        })
        .collect();
    insta::assert_snapshot!(table.join("\n\n"));
}

#[test]
fn test_log_sources() {
    let cases = vec![
        ("info", log(9, "processed item 4", vec![])),
        ("warn", log(13, "slow item 4", vec![])),
        (
            "structured batch error",
            log(
                17,
                "export failed",
                vec![
                    kv("error.kind", "TimeoutError"),
                    kv("error.message", "item 8812 timed out"),
                    kv(
                        "error.stack",
                        "Traceback (most recent call last):\n  File \"/srv/jobs/e.py\", line 9, in run\nTimeoutError: item 8812 timed out",
                    ),
                    kv("job.name", "nightly"),
                ],
            ),
        ),
        (
            "python logger.exception",
            log(
                17,
                "request failed",
                vec![
                    kv("exception.type", "KeyError"),
                    kv("exception.message", "'c-1'"),
                ],
            ),
        ),
        (
            "plain error template",
            log(
                17,
                "failed to process item 8812: timeout after 30s",
                vec![kv("code.file.path", "/x.py")],
            ),
        ),
        ("fatal by text only", {
            let mut record = log(0, "disk full", vec![]);
            record.severity_text = "CRITICAL".into();
            record
        }),
    ];
    let table: Vec<String> = cases
        .into_iter()
        .map(|(name, record)| {
            let mut out = Vec::new();
            log_candidates(&[record], &mut out);
            format!("{name}:\n{}", describe(&out))
        })
        .collect();
    insta::assert_snapshot!(table.join("\n\n"));
}

/// dd-trace-go (Orchestrion) marks a request's net/http span as failed with
/// a made-up `*errors.errorString` "500: Internal Server Error", and sends
/// a `//dd:span` function's returned error with `error.handling_stack`.
#[test]
fn test_dd_trace_go_status_error_and_handling_stack() {
    let root = span(
        SpanKind::Server,
        false,
        StatusCode::Error,
        vec![
            kv("error.type", "*errors.errorString"),
            kv("error.message", "500: Internal Server Error"),
            kv("http.status_code", "500"),
        ],
        vec![],
    );
    let child = span(
        SpanKind::Unspecified,
        true,
        StatusCode::Error,
        vec![
            kv("error.type", "*main.PaymentDeclined"),
            kv("error.message", "payment declined for order 41"),
            kv(
                "error.handling_stack",
                "main.charge\n\t/src/orders/main.go:89",
            ),
        ],
        vec![],
    );
    let mut out = Vec::new();
    span_candidates(&[root, child], &mut out);
    let found: Vec<(CandidateKind, &str, usize)> = out
        .iter()
        .map(|c| (c.kind, c.error_type.as_str(), c.stack.lines().count()))
        .collect();
    assert_eq!(
        found,
        [
            (CandidateKind::StatusOnly, "500", 0),
            (CandidateKind::Exception, "*main.PaymentDeclined", 2),
        ]
    );
}
