//! The Datadog trace-agent listener (`--datadog`, default 127.0.0.1:8126)
//! and the Datadog logs intake routes.
//!
//! Agent API, as dd-trace libraries use it:
//! - `GET /info`: the capabilities document (`ashiato_datadog::info_document`);
//! - `/v0.3/traces`, `/v0.4/traces`, `/v0.5/traces` with any method (JS
//!   sends PUT, Go and Python POST): decode, append through the shared
//!   ingest path, answer `{"rate_by_service":{}}` (v0.3: `OK`);
//! - `/v0.6/stats` (200) and `/telemetry/proxy/api/v2/apmtelemetry` (202)
//!   are accepted and dropped so tracers log no errors.
//!
//! Logs intake `POST /api/v2/logs` and `/v1/input` (JSON or text, gzip,
//! deflate or zstd) answer 202 `{}`; they are served here and on the HTTP
//! listener ([`logs_router`]). API-key headers are accepted and ignored.
//!
//! Answers when something fails: 400 with a message for bodies that cannot
//! be decoded at all and for payloads none of whose spans is usable (which
//! says why the first one was dropped; Python tracers retry every non-2xx
//! five times, so a payload with some usable spans keeps them and answers
//! 200), 413 over the size limit, 415 for an
//! unknown `Content-Encoding`. When the store is overloaded, a client that
//! sent `Datadog-Send-Real-Http-Status` (libdatadog, so Python) gets the
//! real 429 it asked for, with `Retry-After`, which it retries. Other
//! clients get 503 + `Retry-After`: the real agent would answer 200 and drop
//! the payload, but ashiato never acknowledges what it did not store, and a
//! 5xx at least shows up in the tracer's logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_datadog::{
    BodyFormat, LogDefaults, LogsFormat, RATE_BY_SERVICE_REPLY, TraceIdHighCache, TraceVersion,
    TracerInfo, V03_REPLY, decode_logs, decode_traces, info_document,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::ingest::{AppendFailure, DISK_FULL_RETRY, Ingest, retry_after_seconds};
use crate::intake::{self, IntakeError};
use crate::metrics::Signal;
use crate::resend::{BodyDigest, BodyKind};

/// The header libdatadog sends to get a real 429 instead of a silent 200.
const SEND_REAL_HTTP_STATUS: &str = "datadog-send-real-http-status";

#[derive(Clone)]
struct DatadogState {
    ingest: Ingest,
    max_message_bytes: usize,
    /// Trace-id high halves across payloads (partial flushes), see
    /// `ashiato_datadog::TraceIdHighCache`.
    trace_ids: Arc<Mutex<TraceIdHighCache>>,
}

impl DatadogState {
    fn new(ingest: Ingest, max_message_bytes: usize) -> DatadogState {
        DatadogState {
            ingest,
            max_message_bytes,
            trace_ids: Arc::new(Mutex::new(TraceIdHighCache::default())),
        }
    }
}

/// The agent listener's router and the logs intake routes for the HTTP
/// listener, sharing one trace-id cache so decimal `dd.trace_id`s in logs
/// widen to the 128-bit ids of traces seen on the agent listener.
pub fn routers(ingest: impl Into<Ingest>, max_message_bytes: usize) -> (Router, Router) {
    let state = DatadogState::new(ingest.into(), max_message_bytes);
    (agent_router(state.clone()), logs_routes(state))
}

/// Everything served on the Datadog agent listener.
pub fn router(ingest: impl Into<Ingest>, max_message_bytes: usize) -> Router {
    agent_router(DatadogState::new(ingest.into(), max_message_bytes))
}

fn agent_router(state: DatadogState) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/v0.3/traces", any(traces_v03))
        .route("/v0.4/traces", any(traces_v04))
        .route("/v0.5/traces", any(traces_v05))
        .route("/v0.6/stats", any(stats))
        .route("/telemetry/proxy/api/v2/apmtelemetry", any(telemetry))
        .route("/api/v2/logs", post(logs))
        .route("/v1/input", post(logs))
        .route("/v1/input/{api_key}", post(logs))
        .with_state(state)
        .layer(CatchPanicLayer::new())
}

/// Only the logs intake routes, for the HTTP (API) listener.
pub fn logs_router(ingest: impl Into<Ingest>, max_message_bytes: usize) -> Router {
    logs_routes(DatadogState::new(ingest.into(), max_message_bytes))
}

fn logs_routes(state: DatadogState) -> Router {
    Router::new()
        .route("/api/v2/logs", post(logs))
        .route("/v1/input", post(logs))
        .route("/v1/input/{api_key}", post(logs))
        .with_state(state)
        .layer(CatchPanicLayer::new())
}

/// Why a Datadog request was refused; each maps to one status code.
#[derive(Debug, thiserror::Error)]
enum DatadogError {
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Traces(#[from] ashiato_datadog::TraceDecodeError),
    #[error(transparent)]
    Logs(#[from] ashiato_datadog::LogsDecodeError),
    #[error(transparent)]
    Append(#[from] AppendFailure),
    /// Every span entry of a non-empty payload was dropped: answering 200
    /// would tell the tracer its spans were stored.
    #[error("no usable span in the payload ({rejected} dropped): {reason}")]
    NoUsableSpan { rejected: u64, reason: &'static str },
}

impl DatadogError {
    fn status(&self, real_status: bool) -> StatusCode {
        match self {
            DatadogError::Intake(IntakeError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            DatadogError::Intake(IntakeError::TooLarge { .. })
            | DatadogError::Append(AppendFailure::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            DatadogError::Intake(IntakeError::BodyRead(_))
            | DatadogError::Intake(IntakeError::CorruptCompression(_))
            | DatadogError::Traces(_)
            | DatadogError::Logs(_)
            | DatadogError::NoUsableSpan { .. } => StatusCode::BAD_REQUEST,
            DatadogError::Append(AppendFailure::Overloaded { .. }) if real_status => {
                StatusCode::TOO_MANY_REQUESTS
            }
            DatadogError::Append(AppendFailure::Overloaded { .. })
            | DatadogError::Append(AppendFailure::ShuttingDown)
            | DatadogError::Append(AppendFailure::DiskFull)
            | DatadogError::Intake(IntakeError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            DatadogError::Append(AppendFailure::Storage)
            | DatadogError::Intake(IntakeError::TaskFailed) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self, endpoint: &'static str, headers: &HeaderMap) -> Response {
        let status = self.status(headers.contains_key(SEND_REAL_HTTP_STATUS));
        let message = self.to_string();
        tracing::warn!(endpoint, status = status.as_u16(), error = %message, "datadog intake refused a request");
        let retry_after = match self {
            DatadogError::Append(AppendFailure::Overloaded { retry_after }) => {
                Some(retry_after_seconds(retry_after))
            }
            DatadogError::Append(AppendFailure::ShuttingDown) => Some(1),
            DatadogError::Append(AppendFailure::DiskFull) => Some(DISK_FULL_RETRY.as_secs()),
            DatadogError::Intake(IntakeError::Busy) => Some(intake::BUSY_RETRY.as_secs()),
            _ => None,
        };
        let mut response = (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

async fn info() -> Response {
    axum::Json(info_document()).into_response()
}

async fn traces_v03(state: State<DatadogState>, headers: HeaderMap, body: Body) -> Response {
    traces(state, TraceVersion::V03, headers, body).await
}

async fn traces_v04(state: State<DatadogState>, headers: HeaderMap, body: Body) -> Response {
    traces(state, TraceVersion::V04, headers, body).await
}

async fn traces_v05(state: State<DatadogState>, headers: HeaderMap, body: Body) -> Response {
    traces(state, TraceVersion::V05, headers, body).await
}

async fn traces(
    State(state): State<DatadogState>,
    version: TraceVersion,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let endpoint = match version {
        TraceVersion::V03 => "/v0.3/traces",
        TraceVersion::V04 => "/v0.4/traces",
        TraceVersion::V05 => "/v0.5/traces",
    };
    match receive_traces(&state, version, &headers, body).await {
        Ok(()) if version == TraceVersion::V03 => {
            (StatusCode::OK, [(CONTENT_TYPE, "text/plain")], V03_REPLY).into_response()
        }
        Ok(()) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json")],
            RATE_BY_SERVICE_REPLY,
        )
            .into_response(),
        Err(error) => error.into_response(endpoint, &headers),
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
        .unwrap_or_default()
}

async fn receive_traces(
    state: &DatadogState,
    version: TraceVersion,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), DatadogError> {
    let compression = intake::request_compression(headers)?;
    let limit = state.max_message_bytes;
    let (body, _charge) =
        intake::read_body(headers, body, limit, state.ingest.body_budget()).await?;
    let format = BodyFormat::from_content_type(&header_text(headers, "content-type"));
    let tracer = TracerInfo {
        language: header_text(headers, "datadog-meta-lang"),
        tracer_version: header_text(headers, "datadog-meta-tracer-version"),
    };
    let trace_ids = state.trace_ids.clone();
    let (batch, digest) = intake::decode_body(body, compression, limit, move |plain| {
        // a poisoned lock only means another decode panicked mid-update of
        // a best-effort cache; its contents are still usable
        let mut cache = trace_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let batch = decode_traces(plain, version, format, &tracer, &mut cache)?;
        Ok::<_, DatadogError>((batch, BodyDigest::of(BodyKind::Spans, plain)))
    })
    .await?;
    if batch.spans.is_empty() && batch.rejected > 0 {
        return Err(DatadogError::NoUsableSpan {
            rejected: batch.rejected,
            reason: batch.first_rejection.unwrap_or("unusable span"),
        });
    }
    if batch.rejected > 0 {
        tracing::warn!(
            rejected = batch.rejected,
            kept = batch.spans.len(),
            "datadog payload had unusable spans, kept the rest"
        );
    }
    tracing::debug!(
        spans = batch.spans.len(),
        chunks = batch.chunks,
        "datadog traces decoded"
    );
    state.ingest.count_invalid(Signal::Spans, batch.rejected);
    state.ingest.append_spans_once(digest, batch.spans).await?;
    Ok(())
}

/// Client-side stats: accepted and dropped (ashiato computes its own).
async fn stats() -> StatusCode {
    StatusCode::OK
}

/// Instrumentation telemetry: accepted and dropped.
async fn telemetry() -> Response {
    (
        StatusCode::ACCEPTED,
        [(CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

async fn logs(
    State(state): State<DatadogState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive_logs(&state, params, &headers, body).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            [(CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Err(error) => error.into_response("/api/v2/logs", &headers),
    }
}

async fn receive_logs(
    state: &DatadogState,
    mut params: HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), DatadogError> {
    let compression = intake::request_compression(headers)?;
    let limit = state.max_message_bytes;
    let (body, _charge) =
        intake::read_body(headers, body, limit, state.ingest.body_budget()).await?;
    let format = LogsFormat::from_content_type(&header_text(headers, "content-type"));
    let defaults = LogDefaults {
        service: params.remove("service"),
        ddsource: params.remove("ddsource"),
        ddtags: params.remove("ddtags"),
        hostname: params.remove("hostname"),
    };
    let trace_ids = state.trace_ids.clone();
    let records = intake::decode_body(body, compression, limit, move |plain| {
        let cache = trace_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok::<_, DatadogError>(decode_logs(
            plain,
            format,
            &defaults,
            now_unix_nano(),
            Some(&cache),
        )?)
    })
    .await?;
    // not `append_logs_once`: Datadog log lines need not carry a time (the
    // time of receipt stands in), so equal bodies can be distinct events
    state.ingest.append_logs(records).await?;
    Ok(())
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}
