//! OTLP/gRPC ingest: the TraceService, LogsService and MetricsService
//! `Export` RPCs.
//!
//! Requests arrive already prost-decoded (tonic enforces the size limit and
//! decompresses gzip, zstd and deflate). Invalid items are counted in
//! `partial_success`; an overloaded store answers UNAVAILABLE with a
//! `RetryInfo` both in the standard status details and in the
//! `google.rpc.retryinfo-bin` trailer the Python exporter reads.

use std::time::Duration;

use ashiato_model::{LogRecord, Span};
use ashiato_otlp::logs_service::logs_service_server::{LogsService, LogsServiceServer};
use ashiato_otlp::logs_service::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use ashiato_otlp::metrics_service::metrics_service_server::{MetricsService, MetricsServiceServer};
use ashiato_otlp::metrics_service::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use ashiato_otlp::trace_service::trace_service_server::{TraceService, TraceServiceServer};
use ashiato_otlp::trace_service::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use ashiato_otlp::{Decoded, logs_from_proto, metric_points_in, traces_from_proto};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingest::{AppendFailure, Ingest, METRICS_NOT_STORED};

/// Requests with more items than this are converted on the blocking pool.
const INLINE_CONVERT_ITEMS: usize = 2_000;

/// The three OTLP collector services, sharing one store handle.
#[derive(Clone)]
pub struct OtlpGrpc {
    ingest: Ingest,
}

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
    let service = OtlpGrpc {
        ingest: ingest.into(),
    };
    let traces =
        TraceServiceServer::new(service.clone()).max_decoding_message_size(max_message_bytes);
    let logs = LogsServiceServer::new(service.clone()).max_decoding_message_size(max_message_bytes);
    let metrics = MetricsServiceServer::new(service).max_decoding_message_size(max_message_bytes);
    let mut routes = Routes::default();
    routes = routes.add_service(accept_all_compressions!(traces));
    routes = routes.add_service(accept_all_compressions!(logs));
    routes.add_service(accept_all_compressions!(metrics))
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        let decoded: Decoded<Span> =
            convert(span_count(&request), request, traces_from_proto).await?;
        self.ingest
            .append_spans(decoded.items)
            .await
            .map_err(append_status)?;
        let partial_success = partial(decoded.rejected, decoded.error_message).map(
            |(rejected_spans, error_message)| ExportTracePartialSuccess {
                rejected_spans,
                error_message,
            },
        );
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let request = request.into_inner();
        let decoded: Decoded<LogRecord> =
            convert(log_count(&request), request, logs_from_proto).await?;
        self.ingest
            .append_logs(decoded.items)
            .await
            .map_err(append_status)?;
        let partial_success = partial(decoded.rejected, decoded.error_message).map(
            |(rejected_log_records, error_message)| ExportLogsPartialSuccess {
                rejected_log_records,
                error_message,
            },
        );
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    /// Metrics are acknowledged as a partial success that rejects every
    /// point, so SDKs with metrics on neither retry nor fail loudly.
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let rejected_data_points =
            i64::try_from(metric_points_in(request.get_ref())).unwrap_or(i64::MAX);
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points,
                error_message: METRICS_NOT_STORED.to_owned(),
            }),
        }))
    }
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn log_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// Runs a proto → model conversion, on the blocking pool for big requests.
async fn convert<R, T>(
    items: usize,
    request: R,
    conversion: fn(R) -> Decoded<T>,
) -> Result<Decoded<T>, Status>
where
    R: Send + 'static,
    T: Send + 'static,
{
    if items <= INLINE_CONVERT_ITEMS {
        return Ok(conversion(request));
    }
    tokio::task::spawn_blocking(move || conversion(request))
        .await
        .map_err(|_| Status::internal("conversion task failed"))
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
        AppendFailure::TooLarge => Status::resource_exhausted(failure.to_string()),
        AppendFailure::Storage => Status::internal(failure.to_string()),
    }
}

/// UNAVAILABLE carrying the delay twice: as `google.rpc.RetryInfo` in the
/// status details (Go, Java, .NET) and as the `google.rpc.retryinfo-bin`
/// trailer (Python).
fn retry_later(message: String, delay: Duration) -> Status {
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
        Code::Unavailable,
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
