//! Shared test payloads: OTLP requests built with the opentelemetry-proto
//! types, and compression helpers.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test binaries; tests may unwrap

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
pub const START: u64 = 1_767_323_045_000_000_000;

pub fn string_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![string_attr("service.name", service)],
        ..Default::default()
    })
}

pub fn trace_id_bytes() -> Vec<u8> {
    (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub fn span(span_id: u8, parent: Option<u8>, name: &str) -> Span {
    Span {
        trace_id: trace_id_bytes(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, span_id],
        parent_span_id: parent
            .map(|parent| vec![0, 0, 0, 0, 0, 0, 0, parent])
            .unwrap_or_default(),
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: START + u64::from(span_id) * 1_000,
        end_time_unix_nano: START + 262_000_000,
        attributes: vec![string_attr("user_id", "123")],
        status: Some(Status {
            code: 2,
            message: "残高不足".to_owned(),
        }),
        ..Default::default()
    }
}

/// One service's spans; `bad_spans` adds spans with a 2-byte trace id.
pub fn traces_request(
    service: &str,
    spans: Vec<Span>,
    bad_spans: usize,
) -> ExportTraceServiceRequest {
    let mut spans = spans;
    for index in 0..bad_spans {
        let mut bad = span(200 + index as u8, None, "bad");
        bad.trace_id = vec![1, 2];
        spans.push(bad);
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn logs_request(service: &str, body: &str) -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: START,
        severity_number: 17,
        severity_text: "ERROR".to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_owned())),
        }),
        trace_id: trace_id_bytes(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, 4],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn metrics_request(points: usize) -> ExportMetricsServiceRequest {
    let gauge = Gauge {
        data_points: vec![NumberDataPoint::default(); points],
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("metered"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".to_owned(),
                    data: Some(metric::Data::Gauge(gauge)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// zlib-wrapped deflate, as Python's exporter produces with `zlib.compress`.
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A raw HTTP/1.1 answer: the head (status line and headers) and the body,
/// de-chunked.
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request with `Connection: close` on a plain socket, with
/// the given `Host` (tests of Host checks name their own) and headers.
pub async fn raw_request(
    addr: std::net::SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    RawAnswer { status, head, body }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}
