//! OTLP response bodies: export responses (with `partial_success`) and the
//! `google.rpc.Status` body of 4xx/5xx answers, in protobuf or JSON.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::Format;

/// The OTLP signal a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    /// The JSON name of the `rejected_*` counter of this signal's partial success.
    fn rejected_field(self) -> &'static str {
        match self {
            Signal::Traces => "rejectedSpans",
            Signal::Logs => "rejectedLogRecords",
            Signal::Metrics => "rejectedDataPoints",
        }
    }
}

/// `google.rpc.Status` without details, the body of OTLP/HTTP failures.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Encodes an `Export*ServiceResponse`. Full success (nothing rejected, no
/// message) is an empty protobuf body or `{}`; otherwise `partial_success`
/// is set. In JSON the int64 counter is a decimal string, as OTLP/JSON
/// wants, and zero counters are omitted like any proto3 default.
pub fn encode_export_response(
    signal: Signal,
    format: Format,
    rejected: u64,
    error_message: Option<&str>,
) -> Vec<u8> {
    let message = error_message.unwrap_or_default();
    let is_partial = rejected > 0 || !message.is_empty();
    match format {
        Format::Protobuf if !is_partial => Vec::new(),
        Format::Protobuf => encode_partial_protobuf(signal, rejected, message),
        Format::Json if !is_partial => b"{}".to_vec(),
        Format::Json => {
            let mut partial = Map::new();
            if rejected > 0 {
                partial.insert(
                    signal.rejected_field().to_owned(),
                    Value::String(rejected.to_string()),
                );
            }
            if !message.is_empty() {
                partial.insert("errorMessage".to_owned(), Value::String(message.to_owned()));
            }
            json!({ "partialSuccess": partial })
                .to_string()
                .into_bytes()
        }
    }
}

fn encode_partial_protobuf(signal: Signal, rejected: u64, message: &str) -> Vec<u8> {
    let rejected = i64::try_from(rejected).unwrap_or(i64::MAX);
    let error_message = message.to_owned();
    match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
    }
}

/// Encodes a `google.rpc.Status` (`code` is a gRPC status code, e.g. 3 for
/// INVALID_ARGUMENT) for the body of a 4xx/5xx OTLP/HTTP answer.
pub fn encode_status(format: Format, code: i32, message: &str) -> Vec<u8> {
    match format {
        Format::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Format::Json => json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_full_success_bodies() {
        for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
            assert!(encode_export_response(signal, Format::Protobuf, 0, None).is_empty());
            assert_eq!(encode_export_response(signal, Format::Json, 0, None), b"{}");
            assert_eq!(
                encode_export_response(signal, Format::Json, 0, Some("")),
                b"{}"
            );
        }
    }

    #[test]
    fn test_partial_success_json() {
        let cases = [
            (
                Signal::Traces,
                3,
                Some("bad"),
                r#"{"partialSuccess":{"errorMessage":"bad","rejectedSpans":"3"}}"#,
            ),
            (
                Signal::Logs,
                1,
                None,
                r#"{"partialSuccess":{"rejectedLogRecords":"1"}}"#,
            ),
            (
                Signal::Metrics,
                0,
                Some("metrics are not stored"),
                r#"{"partialSuccess":{"errorMessage":"metrics are not stored"}}"#,
            ),
        ];
        for (signal, rejected, message, expected) in cases {
            let body = encode_export_response(signal, Format::Json, rejected, message);
            let value: Value = serde_json::from_slice(&body).unwrap();
            let expected: Value = serde_json::from_str(expected).unwrap();
            assert_eq!(value, expected);
        }
    }

    #[test]
    fn test_partial_success_protobuf_round_trip() {
        let body = encode_export_response(Signal::Traces, Format::Protobuf, 2, Some("two bad"));
        let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
        let partial = response.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 2);
        assert_eq!(partial.error_message, "two bad");

        let body = encode_export_response(Signal::Metrics, Format::Protobuf, 7, None);
        let response = ExportMetricsServiceResponse::decode(body.as_slice()).unwrap();
        assert_eq!(response.partial_success.unwrap().rejected_data_points, 7);
    }

    #[test]
    fn test_status_bodies() {
        let body = encode_status(Format::Json, 3, "invalid \"json\"");
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value, json!({"code": 3, "message": "invalid \"json\""}));

        let body = encode_status(Format::Protobuf, 3, "bad");
        let status = RpcStatus::decode(body.as_slice()).unwrap();
        assert_eq!(
            status,
            RpcStatus {
                code: 3,
                message: "bad".into()
            }
        );
    }
}
