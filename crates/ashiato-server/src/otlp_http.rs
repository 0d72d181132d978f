//! OTLP/HTTP ingest: `POST /v1/traces`, `/v1/logs` and `/v1/metrics`.
//!
//! Every request goes through the same steps, each with its documented
//! answer when it fails (steps 2 to 4 and the offload are the shared
//! intake path, `intake.rs`):
//! 1. `Content-Type` media type → protobuf or JSON (else 415);
//! 2. `Content-Encoding` → gzip, deflate, zstd or identity (else 415);
//! 3. body read with a hard cap of `max_message_bytes` (else 413);
//! 4. decompression capped at the same limit (413; corrupt data 400);
//! 5. decoding (400 with a `google.rpc.Status` saying what is wrong);
//! 6. append to the store (overloaded 503 + `Retry-After`);
//! 7. 200 with the export response, `partial_success` set when items were
//!    rejected. Replies use the request's content type.

use ashiato_model::{LogRecord, Span};
use ashiato_otlp::{
    DecodeError, Decoded, Format, Signal, count_metric_points, decode_logs, decode_traces,
    encode_export_response, encode_status,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ingest::{
    AppendFailure, DISK_FULL_RETRY, Ingest, METRICS_NOT_STORED, retry_after_seconds,
};
use crate::intake::{self, IntakeError};
use crate::metrics::Signal as Counted;
use crate::resend::{BodyDigest, BodyKind};

/// gRPC status codes used in `google.rpc.Status` bodies.
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_UNAVAILABLE: i32 = 14;
const CODE_INTERNAL: i32 = 13;

#[derive(Clone)]
struct IngestState {
    ingest: Ingest,
    max_message_bytes: usize,
}

/// The OTLP/HTTP router. `max_message_bytes` caps the body both as sent
/// and after decompression.
pub fn router(ingest: impl Into<Ingest>, max_message_bytes: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/logs", post(export_logs))
        .route("/v1/metrics", post(export_metrics))
        .with_state(IngestState {
            ingest: ingest.into(),
            max_message_bytes,
        })
        .layer(CatchPanicLayer::new())
}

/// Why an OTLP/HTTP request was refused; each maps to one status code.
#[derive(Debug, thiserror::Error)]
enum HttpIngestError {
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Append(#[from] AppendFailure),
}

impl HttpIngestError {
    fn status(&self) -> StatusCode {
        match self {
            HttpIngestError::UnsupportedContentType(_)
            | HttpIngestError::Intake(IntakeError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            HttpIngestError::Intake(IntakeError::TooLarge { .. })
            | HttpIngestError::Append(AppendFailure::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpIngestError::Intake(IntakeError::BodyRead(_))
            | HttpIngestError::Intake(IntakeError::CorruptCompression(_))
            | HttpIngestError::Decode(_) => StatusCode::BAD_REQUEST,
            HttpIngestError::Append(AppendFailure::Overloaded { .. })
            | HttpIngestError::Append(AppendFailure::ShuttingDown)
            | HttpIngestError::Append(AppendFailure::DiskFull)
            | HttpIngestError::Intake(IntakeError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            HttpIngestError::Append(AppendFailure::Storage)
            | HttpIngestError::Intake(IntakeError::TaskFailed) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn rpc_code(&self) -> i32 {
        match self.status() {
            StatusCode::PAYLOAD_TOO_LARGE => CODE_RESOURCE_EXHAUSTED,
            StatusCode::SERVICE_UNAVAILABLE => CODE_UNAVAILABLE,
            StatusCode::INTERNAL_SERVER_ERROR => CODE_INTERNAL,
            _ => CODE_INVALID_ARGUMENT,
        }
    }

    /// The failure as an OTLP/HTTP answer: a `google.rpc.Status` body in
    /// `format`, plus `Retry-After` when retrying later will help.
    fn into_response(self, format: Format, signal: Signal) -> Response {
        let status = self.status();
        let message = self.to_string();
        if status.is_server_error() {
            tracing::warn!(?signal, status = status.as_u16(), error = %message, "otlp/http export failed");
        } else {
            tracing::warn!(?signal, status = status.as_u16(), error = %message, "otlp/http export refused");
        }
        let body = encode_status(format, self.rpc_code(), &message);
        let mut response = (status, [(CONTENT_TYPE, format.content_type())], body).into_response();
        let retry_after = match self {
            HttpIngestError::Append(AppendFailure::Overloaded { retry_after }) => {
                Some(retry_after_seconds(retry_after))
            }
            HttpIngestError::Append(AppendFailure::ShuttingDown) => Some(1),
            HttpIngestError::Append(AppendFailure::DiskFull) => Some(DISK_FULL_RETRY.as_secs()),
            HttpIngestError::Intake(IntakeError::Busy) => Some(intake::BUSY_RETRY.as_secs()),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A decoded request body.
enum Batch {
    Spans(Decoded<Span>),
    Logs(Decoded<LogRecord>),
    MetricPoints(u64),
}

async fn export_traces(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(state, Signal::Traces, headers, body).await
}

async fn export_logs(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
    export(state, Signal::Logs, headers, body).await
}

async fn export_metrics(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(state, Signal::Metrics, headers, body).await
}

async fn export(state: IngestState, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let format = match request_format(&headers) {
        Ok(format) => format,
        // the client's format is unknown, so answer in the readable one
        Err(error) => return error.into_response(Format::Json, signal),
    };
    match receive(&state, signal, format, &headers, body).await {
        Ok((rejected, message)) => {
            let body = encode_export_response(signal, format, rejected, message.as_deref());
            (
                StatusCode::OK,
                [(CONTENT_TYPE, format.content_type())],
                body,
            )
                .into_response()
        }
        Err(error) => error.into_response(format, signal),
    }
}

/// Reads, decodes and stores one request; returns what goes into
/// `partial_success` (rejected count and message).
async fn receive(
    state: &IngestState,
    signal: Signal,
    format: Format,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, Option<String>), HttpIngestError> {
    let compression = intake::request_compression(headers)?;
    let limit = state.max_message_bytes;
    let (body, _charge) =
        intake::read_body(headers, body, limit, state.ingest.body_budget()).await?;
    let (batch, digest) = intake::decode_body(body, compression, limit, move |plain| {
        let kind = match signal {
            Signal::Logs => BodyKind::Logs,
            _ => BodyKind::Spans,
        };
        decode(signal, format, plain).map(|batch| (batch, BodyDigest::of(kind, plain)))
    })
    .await?;
    match batch {
        Batch::Spans(decoded) => {
            state.ingest.count_invalid(Counted::Spans, decoded.rejected);
            state
                .ingest
                .append_spans_once(digest, decoded.items)
                .await?;
            Ok((decoded.rejected, decoded.error_message))
        }
        Batch::Logs(decoded) => {
            state.ingest.count_invalid(Counted::Logs, decoded.rejected);
            state.ingest.append_logs_once(digest, decoded.items).await?;
            Ok((decoded.rejected, decoded.error_message))
        }
        Batch::MetricPoints(points) => Ok((points, Some(METRICS_NOT_STORED.to_owned()))),
    }
}

fn request_format(headers: &HeaderMap) -> Result<Format, HttpIngestError> {
    let value = headers
        .get(CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let value = value.unwrap_or_default();
    Format::from_content_type(&value).ok_or(HttpIngestError::UnsupportedContentType(value))
}

/// Decodes a plain (decompressed) body of `signal`.
fn decode(signal: Signal, format: Format, plain: &[u8]) -> Result<Batch, HttpIngestError> {
    Ok(match signal {
        Signal::Traces => Batch::Spans(decode_traces(plain, format)?),
        Signal::Logs => Batch::Logs(decode_logs(plain, format)?),
        Signal::Metrics => Batch::MetricPoints(count_metric_points(plain, format)?),
    })
}
