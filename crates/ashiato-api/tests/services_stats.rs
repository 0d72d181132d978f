//! `GET /api/v1/services/stats` over a real store: the JSON shape, exact
//! counts and rates, percentiles from the ingest-time histograms and the
//! per-step series, as an insta snapshot.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ashiato_model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};
use ashiato_query::QueryService;
use ashiato_store::{Store, StoreConfig};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z, minute aligned.
const BASE: u64 = 1_767_225_600 * 1_000_000_000;
const MINUTE: u64 = 60_000_000_000;

fn span(
    n: u64,
    service: &str,
    name: &str,
    kind: SpanKind,
    minute: u64,
    ms: u64,
    error: bool,
) -> Span {
    let start = BASE + minute * MINUTE + n * 1_000;
    Span {
        trace_id: TraceId::from_halves(1, n + 1),
        span_id: SpanId::from_u64(n + 1).unwrap(),
        parent_span_id: (kind == SpanKind::Client).then(|| SpanId::from_u64(10_000).unwrap()),
        trace_state: String::new(),
        flags: 1,
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: Status {
            code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            message: String::new(),
        },
        resource: Arc::new(Resource::new(vec![KeyValue::new(
            "service.name",
            AttrValue::Str(service.into()),
        )])),
        scope: Arc::new(Scope::default()),
    }
}

async fn get(app: &axum::Router, uri: &str) -> (u16, Value) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn test_service_stats_from_ingest_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let mut spans = Vec::new();
    // checkout: 20 requests of 10..=200 ms over minutes 0 and 2, two errors;
    // each makes one client call to the database
    for n in 0..20 {
        let minute = if n < 10 { 0 } else { 2 };
        spans.push(span(
            n,
            "checkout",
            "POST /注文",
            SpanKind::Server,
            minute,
            (n + 1) * 10,
            n % 10 == 3,
        ));
        spans.push(span(
            100 + n,
            "checkout",
            "SELECT",
            SpanKind::Client,
            minute,
            2,
            false,
        ));
    }
    // a worker with only internal spans: its service figures use all of them
    for n in 0..4 {
        spans.push(span(
            200 + n,
            "ワーカー",
            "夜間バッチ",
            SpanKind::Internal,
            1,
            1_000,
            false,
        ));
    }
    store.append_spans(spans).await.unwrap();
    let app = ashiato_api::router(Arc::new(QueryService::new(Arc::new(store))));

    let uri = format!(
        "/api/v1/services/stats?start={BASE}&end={}&step=1m",
        BASE + 4 * MINUTE
    );
    let (status, body) = get(&app, &uri).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("services_stats_four_minutes", body);

    let (status, body) = get(&app, "/api/v1/services/stats?step=often").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("step"), "{body}");
}
