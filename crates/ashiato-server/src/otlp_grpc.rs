//! OTLP/gRPC ingest: the TraceService, LogsService and MetricsService
//! `Export` RPCs.
//!
//! tonic enforces the size limit and decompresses gzip, zstd and deflate.
//! Trace and log requests then reach the handler as the message's bytes
//! ([`RawRequestCodec`]) and are decoded by `ashiato-otlp`'s one-pass
//! decoder straight into model values, as on OTLP/HTTP; metrics messages
//! take the same raw path and only have their points counted. Invalid items are counted in
//! `partial_success`; an undecodable message is INVALID_ARGUMENT with
//! prost's error text (the client's fault, not retryable; tonic's prost
//! codec answered INTERNAL, which clients read as a server fault); an
//! overloaded store answers
//! UNAVAILABLE with a `RetryInfo` both in the standard status details and in
//! the `google.rpc.retryinfo-bin` trailer the Python exporter reads.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::Duration;

use ashiato_model::{LogRecord, Span};
use ashiato_otlp::logs_service::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use ashiato_otlp::metrics_service::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use ashiato_otlp::trace_service::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use ashiato_otlp::{DecodeError, Decoded, Format, count_metric_points, decode_logs, decode_traces};
use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingest::{AppendFailure, DISK_FULL_RETRY, Ingest, METRICS_NOT_STORED};
use crate::intake;
use crate::metrics::Signal;
use crate::resend::{BodyDigest, BodyKind};

/// Every tonic server type has its own `accept_compressed`, so a macro
/// applies the same list to each.
macro_rules! accept_all_compressions {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Deflate)
    };
}

/// The tonic routes for every OTLP service, with compression and the
/// message size limit configured.
pub fn routes(ingest: impl Into<Ingest>, max_message_bytes: usize) -> Routes {
    let ingest = ingest.into();
    let traces = RawExportServer::<TracesRpc>::new(ingest.clone(), max_message_bytes);
    let logs = RawExportServer::<LogsRpc>::new(ingest.clone(), max_message_bytes);
    let metrics = RawExportServer::<MetricsRpc>::new(ingest, max_message_bytes);
    let mut routes = Routes::default();
    routes = routes.add_service(traces);
    routes = routes.add_service(logs);
    routes.add_service(metrics)
}

/// One OTLP `Export` RPC served from the request message's bytes.
trait ExportRpc: Send + Sync + 'static {
    /// The gRPC service name, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`.
    const SERVICE: &'static str;
    /// The full method path.
    const PATH: &'static str;
    type Reply: Message + Send + 'static;

    fn export(ingest: Ingest, message: Bytes) -> BoxFuture<Self::Reply, Status>;
}

struct TracesRpc;

impl ExportRpc for TracesRpc {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Reply = ExportTraceServiceResponse;

    fn export(ingest: Ingest, message: Bytes) -> BoxFuture<Self::Reply, Status> {
        Box::pin(async move {
            let _charge = charge(&ingest, message.len())?;
            let (decoded, digest): (Decoded<Span>, _) = decode(message, BodyKind::Spans, |body| {
                decode_traces(body, Format::Protobuf)
            })
            .await?;
            ingest.count_invalid(Signal::Spans, decoded.rejected);
            ingest
                .append_spans_once(digest, decoded.items)
                .await
                .map_err(append_status)?;
            let partial_success = partial(decoded.rejected, decoded.error_message).map(
                |(rejected_spans, error_message)| ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                },
            );
            Ok(ExportTraceServiceResponse { partial_success })
        })
    }
}

struct LogsRpc;

impl ExportRpc for LogsRpc {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    type Reply = ExportLogsServiceResponse;

    fn export(ingest: Ingest, message: Bytes) -> BoxFuture<Self::Reply, Status> {
        Box::pin(async move {
            let _charge = charge(&ingest, message.len())?;
            let (decoded, digest): (Decoded<LogRecord>, _) =
                decode(message, BodyKind::Logs, |body| {
                    decode_logs(body, Format::Protobuf)
                })
                .await?;
            ingest.count_invalid(Signal::Logs, decoded.rejected);
            ingest
                .append_logs_once(digest, decoded.items)
                .await
                .map_err(append_status)?;
            let partial_success = partial(decoded.rejected, decoded.error_message).map(
                |(rejected_log_records, error_message)| ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                },
            );
            Ok(ExportLogsServiceResponse { partial_success })
        })
    }
}

/// Charges the message to the in-flight budget shared with the HTTP
/// listeners (tonic has read it already; the charge bounds what decoding
/// and storing it add). Beyond the budget: RESOURCE_EXHAUSTED with retry
/// info, which OTLP exporters retry after the delay.
fn charge(ingest: &Ingest, bytes: usize) -> Result<intake::Charge, Status> {
    let mut charge = intake::Charge::default();
    match ingest.body_budget().charge(&mut charge, bytes) {
        Ok(()) => Ok(charge),
        Err(error) => Err(with_retry_info(
            Code::ResourceExhausted,
            error.to_string(),
            intake::BUSY_RETRY,
        )),
    }
}

/// Decodes a request message, on the blocking pool when it is big (the
/// shared intake rule, `intake::offload`).
async fn decode<T>(
    message: Bytes,
    kind: BodyKind,
    decoder: fn(&[u8]) -> Result<Decoded<T>, DecodeError>,
) -> Result<(Decoded<T>, BodyDigest), Status>
where
    T: Send + 'static,
{
    intake::offload(message.len(), move || {
        decoder(&message).map(|decoded| (decoded, BodyDigest::of(kind, &message)))
    })
    .await
    .map_err(|error| Status::internal(error.to_string()))?
    .map_err(decode_status)
}

/// An undecodable message is the client's fault: INVALID_ARGUMENT (which
/// OTLP exporters do not retry) with prost's error text.
fn decode_status(error: DecodeError) -> Status {
    match error {
        DecodeError::Protobuf { source, .. } => Status::invalid_argument(source.to_string()),
        other => Status::invalid_argument(other.to_string()),
    }
}

/// The generated-server plumbing for one [`ExportRpc`], with
/// [`RawRequestCodec`] in place of tonic's prost codec.
struct RawExportServer<E> {
    ingest: Ingest,
    max_message_bytes: usize,
    rpc: PhantomData<fn() -> E>,
}

impl<E> RawExportServer<E> {
    fn new(ingest: Ingest, max_message_bytes: usize) -> Self {
        RawExportServer {
            ingest,
            max_message_bytes,
            rpc: PhantomData,
        }
    }
}

impl<E> Clone for RawExportServer<E> {
    fn clone(&self) -> Self {
        RawExportServer::new(self.ingest.clone(), self.max_message_bytes)
    }
}

impl<E: ExportRpc> NamedService for RawExportServer<E> {
    const NAME: &'static str = E::SERVICE;
}

impl<E, B> Service<http::Request<B>> for RawExportServer<E>
where
    E: ExportRpc,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != E::PATH {
            return Box::pin(async { Ok(unimplemented_response()) });
        }
        let call = ExportCall::<E> {
            ingest: self.ingest.clone(),
            rpc: PhantomData,
        };
        let limit = self.max_message_bytes;
        Box::pin(async move {
            let grpc = Grpc::new(RawRequestCodec::<E::Reply>::default());
            let mut grpc = accept_all_compressions!(grpc).max_decoding_message_size(limit);
            Ok(grpc.unary(call, request).await)
        })
    }
}

/// What the generated servers answer for an unknown method.
fn unimplemented_response() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(Status::GRPC_STATUS, (Code::Unimplemented as i32).into());
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

struct ExportCall<E> {
    ingest: Ingest,
    rpc: PhantomData<fn() -> E>,
}

impl<E: ExportRpc> UnaryService<Bytes> for ExportCall<E> {
    type Response = E::Reply;
    type Future = BoxFuture<Response<E::Reply>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let reply = E::export(self.ingest.clone(), request.into_inner());
        Box::pin(async move { reply.await.map(Response::new) })
    }
}

/// A tonic codec whose decoder yields the request message's bytes (after
/// tonic's decompression and size check) and whose encoder writes the
/// prost reply `R`.
struct RawRequestCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for RawRequestCodec<R> {
    fn default() -> Self {
        RawRequestCodec(PhantomData)
    }
}

impl<R: Message + Send + 'static> Codec for RawRequestCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ReplyEncoder<R>;
    type Decoder = MessageBytes;

    fn encoder(&mut self) -> Self::Encoder {
        ReplyEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageBytes
    }
}

struct ReplyEncoder<R>(PhantomData<fn() -> R>);

impl<R: Message> Encoder for ReplyEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|error| Status::internal(error.to_string()))
    }
}

struct MessageBytes;

impl Decoder for MessageBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let length = buf.remaining();
        Ok(Some(buf.copy_to_bytes(length)))
    }
}

/// Metrics are acknowledged as a partial success that rejects every
/// point, so SDKs with metrics on neither retry nor fail loudly; an
/// undecodable message is INVALID_ARGUMENT like the other signals.
struct MetricsRpc;

impl ExportRpc for MetricsRpc {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    type Reply = ExportMetricsServiceResponse;

    fn export(ingest: Ingest, message: Bytes) -> BoxFuture<Self::Reply, Status> {
        Box::pin(async move {
            let _charge = charge(&ingest, message.len())?;
            let points = intake::offload(message.len(), move || {
                count_metric_points(&message, Format::Protobuf)
            })
            .await
            .map_err(|error| Status::internal(error.to_string()))?
            .map_err(decode_status)?;
            Ok(ExportMetricsServiceResponse {
                partial_success: Some(ExportMetricsPartialSuccess {
                    rejected_data_points: i64::try_from(points).unwrap_or(i64::MAX),
                    error_message: METRICS_NOT_STORED.to_owned(),
                }),
            })
        })
    }
}

/// `partial_success` fields, or `None` for a clean success (OTLP wants it unset then).
fn partial(rejected: u64, message: Option<String>) -> Option<(i64, String)> {
    let message = message.unwrap_or_default();
    (rejected > 0 || !message.is_empty())
        .then(|| (i64::try_from(rejected).unwrap_or(i64::MAX), message))
}

/// The gRPC status for a failed append.
fn append_status(failure: AppendFailure) -> Status {
    match failure {
        AppendFailure::Overloaded { retry_after } => retry_later(failure.to_string(), retry_after),
        AppendFailure::ShuttingDown => retry_later(failure.to_string(), Duration::from_secs(1)),
        AppendFailure::DiskFull => retry_later(failure.to_string(), DISK_FULL_RETRY),
        AppendFailure::TooLarge => Status::resource_exhausted(failure.to_string()),
        AppendFailure::Storage => Status::internal(failure.to_string()),
    }
}

/// UNAVAILABLE carrying the delay twice: as `google.rpc.RetryInfo` in the
/// status details (Go, Java, .NET) and as the `google.rpc.retryinfo-bin`
/// trailer (Python).
fn retry_later(message: String, delay: Duration) -> Status {
    with_retry_info(Code::Unavailable, message, delay)
}

/// `code` with the retry delay in both places `retry_later` puts it.
fn with_retry_info(code: Code, message: String, delay: Duration) -> Status {
    let retry_info = tonic_types::pb::RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
        }),
    };
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(
        "google.rpc.retryinfo-bin",
        MetadataValue::from_bytes(&retry_info.encode_to_vec()),
    );
    Status::with_error_details_and_metadata(
        code,
        message,
        ErrorDetails::with_retry_info(Some(delay)),
        metadata,
    )
}

/// tonic answers a message over `max_decoding_message_size` with
/// OUT_OF_RANGE, which the OTLP spec lists as retryable: clients would
/// resend the same oversize batch. The spec wants RESOURCE_EXHAUSTED
/// (not retryable without RetryInfo), so the code is rewritten on the way
/// out. Nothing in ashiato returns OUT_OF_RANGE itself.
pub fn oversize_as_resource_exhausted<B>(
    mut response: axum::http::Response<B>,
) -> axum::http::Response<B> {
    let out_of_range = (Code::OutOfRange as i32).to_string();
    let is_out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|value| value.as_bytes() == out_of_range.as_bytes());
    if is_out_of_range {
        tracing::warn!("otlp/grpc message over the size limit refused");
        let exhausted = axum::http::HeaderValue::from((Code::ResourceExhausted as i32) as u16);
        response.headers_mut().insert("grpc-status", exhausted);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_retry_later_carries_retry_info_twice() {
        let status = retry_later("server is overloaded".into(), Duration::from_millis(1500));
        assert_eq!(status.code(), Code::Unavailable);
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|info| info.retry_delay),
            Some(Duration::from_millis(1500))
        );
        let trailer = status
            .metadata()
            .get_bin("google.rpc.retryinfo-bin")
            .unwrap()
            .to_bytes()
            .unwrap();
        let decoded = tonic_types::pb::RetryInfo::decode(trailer.as_ref()).unwrap();
        assert_eq!(
            decoded.retry_delay,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn test_partial_is_unset_on_clean_success() {
        assert_eq!(partial(0, None), None);
        assert_eq!(partial(0, Some(String::new())), None);
        assert_eq!(partial(2, None), Some((2, String::new())));
        assert_eq!(
            partial(0, Some("warning".into())),
            Some((0, "warning".into()))
        );
    }
}
