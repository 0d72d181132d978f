//! OTLP decoding: protobuf and JSON export requests → ashiato model, bounded
//! decompression, and the OTLP response bodies.
//!
//! This crate knows the OpenTelemetry wire formats but no transport: the
//! server hands it bytes (HTTP and gRPC) and gets model items back, plus
//! what was rejected for the OTLP `partial_success`.
//!
//! Protobuf trace and log bodies are read in one pass straight into model
//! values (`direct`); the prost message tree (`decode_*_tree`) is the
//! reference the one-pass decoder is tested against, and what reports the
//! error of a malformed body.
//!
//! Rules that real clients depend on:
//! - invalid items (wrong-length or zero ids, text that is not Unicode:
//!   non-UTF-8 protobuf strings, JSON lone surrogates) are rejected one by
//!   one and the rest of the batch is kept ([`Decoded::rejected`]);
//! - an undecodable body is a [`DecodeError`], whose text says what failed;
//! - nothing here panics on input, and nested attribute values are capped
//!   at [`MAX_VALUE_DEPTH`] levels (deeper values read as `Empty`).

mod compression;
mod convert;
mod direct;
mod json;
mod response;

use ashiato_model::{LogRecord, Span};
use convert::Report;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

pub use compression::{Compression, DecompressError, decompress};
pub use convert::{MAX_VALUE_DEPTH, logs_from_proto, metric_points_in, traces_from_proto};
pub use response::{Signal, encode_export_response, encode_status};

/// The collector services and their request/response messages, so the
/// server depends on one place for OTLP types.
pub use opentelemetry_proto::tonic::collector::{
    logs::v1 as logs_service, metrics::v1 as metrics_service, trace::v1 as trace_service,
};

/// Body encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// Reads a `Content-Type` header: the media type decides, parameters
    /// (`; charset=utf-8`) are ignored. `None` = unsupported (HTTP 415).
    pub fn from_content_type(value: &str) -> Option<Format> {
        let media_type = value.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/x-protobuf")
            || media_type.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Format::Protobuf)
        } else if media_type.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` to answer with (OTLP replies in the request's type).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Decoded items plus what was rejected inside an otherwise valid batch,
/// which the server reports as OTLP `partial_success`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub items: Vec<T>,
    /// Items dropped for being invalid (`rejected_spans`/`rejected_log_records`).
    pub rejected: u64,
    /// Why items were rejected, or a warning when nothing was (e.g. links
    /// dropped, unknown top-level JSON keys). `None` = clean success.
    pub error_message: Option<String>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded {
            items: Vec::new(),
            rejected: 0,
            error_message: None,
        }
    }
}

/// A body that could not be decoded at all (HTTP 400, gRPC INVALID_ARGUMENT).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid protobuf {message}: {source}")]
    Protobuf {
        /// The message type that failed (`ExportTraceServiceRequest`).
        message: &'static str,
        source: prost::DecodeError,
    },
    #[error("invalid json {message}: {source}")]
    Json {
        /// The message type that failed (`ExportTraceServiceRequest`).
        message: &'static str,
        source: serde_json::Error,
    },
}

const TRACES_REQUEST: &str = "ExportTraceServiceRequest";
const LOGS_REQUEST: &str = "ExportLogsServiceRequest";
const METRICS_REQUEST: &str = "ExportMetricsServiceRequest";

/// Decodes an OTLP/HTTP traces body (already decompressed).
pub fn decode_traces(body: &[u8], format: Format) -> Result<Decoded<Span>, DecodeError> {
    match format {
        Format::Protobuf => match decode_traces_direct(body) {
            Some(decoded) => Ok(decoded),
            None => decode_traces_tree(body).or_else(|error| {
                decode_lenient::<direct::Traces>(body, Report::for_spans()).ok_or(error)
            }),
        },
        Format::Json => {
            let request: json::TracesRequest = decode_json(body, TRACES_REQUEST)?;
            let mut report = convert::Report::for_spans();
            let request = json::traces_to_proto(request, &mut report);
            let spans = convert::convert_traces(request, &mut report);
            Ok(report.finish(spans))
        }
    }
}

/// Decodes an OTLP/HTTP logs body (already decompressed).
pub fn decode_logs(body: &[u8], format: Format) -> Result<Decoded<LogRecord>, DecodeError> {
    match format {
        Format::Protobuf => match decode_logs_direct(body) {
            Some(decoded) => Ok(decoded),
            None => decode_logs_tree(body).or_else(|error| {
                decode_lenient::<direct::Logs>(body, Report::for_log_records()).ok_or(error)
            }),
        },
        Format::Json => {
            let request: json::LogsRequest = decode_json(body, LOGS_REQUEST)?;
            let mut report = convert::Report::for_log_records();
            let request = json::logs_to_proto(request, &mut report);
            let records = convert::convert_logs(request, &mut report);
            Ok(report.finish(records))
        }
    }
}

/// The one-pass protobuf decoder of trace requests alone: `None` exactly
/// where prost refuses the body. Public for the differential tests and
/// fuzz target; servers call [`decode_traces`].
pub fn decode_traces_direct(body: &[u8]) -> Option<Decoded<Span>> {
    let mut report = convert::Report::for_spans();
    let spans = direct::request::<direct::Traces>(body, &mut report, false).ok()?;
    Some(report.finish(spans))
}

/// The one-pass decoder in its lenient mode: spans holding non-UTF-8
/// strings are rejected and the rest kept (what [`decode_traces`] falls
/// back to when prost refuses a body). Public for the tests.
pub fn decode_traces_lenient(body: &[u8]) -> Option<Decoded<Span>> {
    decode_lenient::<direct::Traces>(body, Report::for_spans())
}

/// The lenient one-pass decoder of logs requests (see [`decode_traces_lenient`]).
pub fn decode_logs_lenient(body: &[u8]) -> Option<Decoded<LogRecord>> {
    decode_lenient::<direct::Logs>(body, Report::for_log_records())
}

fn decode_lenient<S: direct::Signal>(body: &[u8], mut report: Report) -> Option<Decoded<S::Item>> {
    let items = direct::request::<S>(body, &mut report, true).ok()?;
    Some(report.finish(items))
}

/// The reference protobuf path for trace requests: prost's message tree,
/// then [`traces_from_proto`].
pub fn decode_traces_tree(body: &[u8]) -> Result<Decoded<Span>, DecodeError> {
    decode_protobuf::<ExportTraceServiceRequest>(body, TRACES_REQUEST).map(traces_from_proto)
}

/// The one-pass protobuf decoder of logs requests alone (see
/// [`decode_traces_direct`]).
pub fn decode_logs_direct(body: &[u8]) -> Option<Decoded<LogRecord>> {
    let mut report = convert::Report::for_log_records();
    let records = direct::request::<direct::Logs>(body, &mut report, false).ok()?;
    Some(report.finish(records))
}

/// The reference protobuf path for logs requests.
pub fn decode_logs_tree(body: &[u8]) -> Result<Decoded<LogRecord>, DecodeError> {
    decode_protobuf::<ExportLogsServiceRequest>(body, LOGS_REQUEST).map(logs_from_proto)
}

/// Counts the data points in an OTLP/HTTP metrics body. Metrics are not
/// stored; the count is reported back as `rejected_data_points`.
pub fn count_metric_points(body: &[u8], format: Format) -> Result<u64, DecodeError> {
    match format {
        Format::Protobuf => decode_protobuf::<ExportMetricsServiceRequest>(body, METRICS_REQUEST)
            .map(|request| metric_points_in(&request)),
        Format::Json => {
            let request: json::MetricsRequest = decode_json(body, METRICS_REQUEST)?;
            Ok(request.data_points())
        }
    }
}

fn decode_protobuf<M: Message + Default>(
    body: &[u8],
    message: &'static str,
) -> Result<M, DecodeError> {
    M::decode(body).map_err(|source| DecodeError::Protobuf { message, source })
}

/// An empty (or all-whitespace) JSON body is read as an empty request,
/// like a zero-length protobuf body; OTLP says empty requests succeed. A
/// leading UTF-8 byte order mark (some Windows producers write one) is skipped.
fn decode_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    message: &'static str,
) -> Result<T, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<T>(body).map_err(|source| DecodeError::Json { message, source })
}
