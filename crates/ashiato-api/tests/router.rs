//! In-process tests of the `/api/v1` router over an in-memory store:
//! parameter handling, error shapes and the JSON of a rendered trace.

#![allow(clippy::unwrap_used)] // tests may unwrap; helpers outside #[test] are not covered by clippy.toml

use std::sync::Arc;

use ashiato_model::{
    AttrValue, Event, KeyValue, Link, LogRecord, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};
use ashiato_query::QueryService;
use ashiato_query::memory::MemoryStore;
use axum::body::Body;
use axum::http::{Request, StatusCode as HttpStatus};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const BASE: u64 = 1_767_323_045_000_000_000;

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource::new(vec![
        KeyValue::new("service.name", AttrValue::Str(service.to_owned())),
        KeyValue::new("service.version", AttrValue::Str("1.2.3".to_owned())),
    ]))
}

fn span(
    id: u64,
    parent: Option<u64>,
    service: &str,
    name: &str,
    start_ms: u64,
    end_ms: u64,
) -> Span {
    Span {
        trace_id: TraceId::from_hex(TRACE).unwrap(),
        span_id: SpanId::from_u64(id).unwrap(),
        parent_span_id: parent.and_then(SpanId::from_u64),
        trace_state: String::new(),
        flags: 0x100,
        name: name.to_owned(),
        kind: if parent.is_none() {
            SpanKind::Server
        } else {
            SpanKind::Client
        },
        start_time_unix_nano: BASE + start_ms * 1_000_000,
        end_time_unix_nano: BASE + end_ms * 1_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: Status::default(),
        resource: resource(service),
        scope: Arc::new(Scope {
            name: "shop".into(),
            version: "0.1.0".into(),
            attributes: Vec::new(),
        }),
    }
}

fn order_trace() -> Vec<Span> {
    let mut root = span(1, None, "checkout", "注文作成", 0, 262);
    root.attributes
        .push(KeyValue::new("http.status_code", AttrValue::Int(500)));
    let mut users = span(2, Some(1), "users", "ユーザー検証", 1, 11);
    users
        .attributes
        .push(KeyValue::new("user_id", AttrValue::Int(123)));
    let mut inventory = span(3, Some(1), "inventory", "在庫確認", 11, 61);
    inventory
        .attributes
        .push(KeyValue::new("product_id", AttrValue::Int(456)));
    inventory.attributes.push(KeyValue::new(
        "tags",
        AttrValue::Array(vec![AttrValue::Str("a".into()), AttrValue::Bool(false)]),
    ));
    inventory.events.push(Event {
        time_unix_nano: BASE + 30_000_000,
        name: "在庫レベルが低い".into(),
        attributes: vec![KeyValue::new("stock", AttrValue::Int(2))],
    });
    let mut payments = span(4, Some(1), "payments", "支払い処理", 61, 261);
    payments
        .attributes
        .push(KeyValue::new("amount", AttrValue::Float(99.99)));
    payments.status = Status {
        code: StatusCode::Error,
        message: "残高不足".into(),
    };
    payments.events.push(Event {
        time_unix_nano: BASE + 260_000_000,
        name: "exception".into(),
        attributes: vec![
            KeyValue::new("exception.type", AttrValue::Str("InsufficientFunds".into())),
            KeyValue::new("exception.message", AttrValue::Str("残高不足".into())),
        ],
    });
    payments.links.push(Link {
        trace_id: TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
        trace_state: String::new(),
        attributes: vec![KeyValue::new("reason", AttrValue::Str("retry".into()))],
        flags: 0,
    });
    vec![payments, root, inventory, users]
}

fn error_log() -> LogRecord {
    LogRecord {
        time_unix_nano: BASE + 260_000_000,
        observed_time_unix_nano: BASE + 260_000_001,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: AttrValue::Str("payment failed: 残高不足".into()),
        attributes: vec![KeyValue::new("amount", AttrValue::Float(99.99))],
        trace_id: Some(TraceId::from_hex(TRACE).unwrap()),
        span_id: SpanId::from_u64(4),
        flags: 1,
        event_name: String::new(),
        resource: resource("payments"),
        scope: Arc::new(Scope::default()),
    }
}

fn info_log() -> LogRecord {
    LogRecord {
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AttrValue::Str("order received".into()),
        trace_id: None,
        span_id: None,
        resource: resource("checkout"),
        time_unix_nano: BASE,
        ..error_log()
    }
}

fn app() -> axum::Router {
    let store = MemoryStore::new();
    store.add_spans(order_trace());
    store.add_logs([error_log(), info_log()]);
    ashiato_api::router(Arc::new(QueryService::new(Arc::new(store))))
}

async fn call(method: &str, uri: &str) -> (HttpStatus, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(content_type.unwrap(), "application/json", "{uri}");
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn get(uri: &str) -> (HttpStatus, Value) {
    call("GET", uri).await
}

#[tokio::test]
async fn test_services_and_operations() {
    let (status, body) = get("/api/v1/services").await;
    assert_eq!(status, HttpStatus::OK);
    assert_eq!(body["services"].as_array().unwrap().len(), 4);
    assert_eq!(
        body["services"][2],
        json!({"name": "payments", "span_count": 1, "error_count": 1})
    );

    let (status, body) = get("/api/v1/services/payments/operations").await;
    assert_eq!(status, HttpStatus::OK);
    assert_eq!(
        body,
        json!({"operations": [{"name": "支払い処理", "span_count": 1, "error_count": 1}]})
    );

    let (_, body) = get("/api/v1/services/nobody/operations").await;
    assert_eq!(body, json!({"operations": []}));
}

#[tokio::test]
async fn test_trace_search_with_filters() {
    let (status, body) =
        get("/api/v1/traces?service=payments&error=true&min_duration=100ms&attr=amount:99.99")
            .await;
    assert_eq!(status, HttpStatus::OK);
    assert_eq!(
        body,
        json!({"traces": [{
            "trace_id": TRACE,
            "root_service": "checkout",
            "root_name": "注文作成",
            "start_time_unix_nano": BASE.to_string(),
            "duration_ns": "262000000",
            "span_count": 4,
            "error_count": 1,
            "services": ["checkout", "users", "inventory", "payments"],
        }]})
    );

    for no_match in [
        "/api/v1/traces?service=payments&max_duration=1.5ms",
        "/api/v1/traces?attr=amount:100",
        "/api/v1/traces?attr=user_id:123&attr=product_id:456",
        "/api/v1/traces?end=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = get(no_match).await;
        assert_eq!(status, HttpStatus::OK);
        assert_eq!(body, json!({"traces": []}), "{no_match}");
    }
    let (_, body) = get("/api/v1/traces?operation=%E5%9C%A8%E5%BA%AB%E7%A2%BA%E8%AA%8D&start=2026-01-02T03:04:05Z&limit=1").await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn test_bad_parameters_are_400_naming_the_parameter() {
    for (uri, param) in [
        ("/api/v1/traces?min_duration=soon", "min_duration"),
        ("/api/v1/traces?max_duration=5", "max_duration"),
        ("/api/v1/traces?start=tomorrow", "start"),
        ("/api/v1/traces?end=2026-02-30T00:00:00Z", "end"),
        ("/api/v1/traces?limit=-3", "limit"),
        ("/api/v1/traces?error=perhaps", "error"),
        ("/api/v1/traces?attr=nocolon", "attr"),
        ("/api/v1/logs?severity=chatty", "severity"),
        ("/api/v1/logs?trace_id=123", "trace_id"),
        ("/api/v1/traces/not-a-trace-id", "trace_id"),
        (
            "/api/v1/traces/00000000000000000000000000000000",
            "trace_id",
        ),
    ] {
        let (status, body) = get(uri).await;
        assert_eq!(status, HttpStatus::BAD_REQUEST, "{uri}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("invalid {param}: ")),
            "{uri}: {message}"
        );
    }
}

#[tokio::test]
async fn test_unknown_trace_path_and_method() {
    let (status, body) = get("/api/v1/traces/0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!(status, HttpStatus::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "trace 0af7651916cd43dd8448eb211c80319c not found"})
    );

    let (status, body) = get("/api/v1/nothing/here").await;
    assert_eq!(status, HttpStatus::NOT_FOUND);
    assert!(body["error"].is_string());

    let (status, body) = call("POST", "/api/v1/traces").await;
    assert_eq!(status, HttpStatus::METHOD_NOT_ALLOWED);
    assert_eq!(body, json!({"error": "method not allowed"}));
}

#[tokio::test]
async fn test_short_trace_id_is_zero_extended() {
    let (status, _) = get("/api/v1/traces/d269b633813fc60c").await;
    // the stored id has non-zero high bits, so the 64-bit form does not find it
    assert_eq!(status, HttpStatus::NOT_FOUND);
    let (status, body) = get("/api/v1/traces/5B8EFFF798038103D269B633813FC60C").await;
    assert_eq!(status, HttpStatus::OK);
    assert_eq!(body["trace_id"], TRACE);
}

#[tokio::test]
async fn test_rendered_trace() {
    let (status, body) = get(&format!("/api/v1/traces/{TRACE}")).await;
    assert_eq!(status, HttpStatus::OK);
    insta::assert_json_snapshot!("rendered_trace", body);
}

#[tokio::test]
async fn test_log_search() {
    let (status, body) = get("/api/v1/logs").await;
    assert_eq!(status, HttpStatus::OK);
    let bodies: Vec<&str> = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["payment failed: 残高不足", "order received"]);

    let (_, body) = get(&format!(
        "/api/v1/logs?severity=warn&trace_id={TRACE}&q=%E6%AE%8B%E9%AB%98"
    ))
    .await;
    assert_eq!(
        body,
        json!({"logs": [{
            "time_unix_nano": (BASE + 260_000_000).to_string(),
            "severity_text": "ERROR",
            "severity_number": 17,
            "body": "payment failed: 残高不足",
            "service": "payments",
            "attributes": {"amount": 99.99},
            "resource": {"service.name": "payments", "service.version": "1.2.3"},
            "trace_id": TRACE,
            "span_id": "0000000000000004",
        }]})
    );
    let (_, body) = get("/api/v1/logs?service=checkout&severity=error").await;
    assert_eq!(body, json!({"logs": []}));
}
