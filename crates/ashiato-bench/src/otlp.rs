//! OTLP side of the load generator: generated spans → protobuf export
//! requests, sent over OTLP/HTTP (ureq, one keep-alive connection per
//! sender) or OTLP/gRPC (tonic, one HTTP/2 connection per sender).
//!
//! Requests are encoded before they are sent (see `payloads`), so the gRPC
//! client sends raw bytes through a pass-through codec rather than tonic's
//! prost codec.
//!
//! Overload answers (HTTP 429/503, gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED`)
//! are retried after a short pause and counted: the server pushing back is
//! part of "sustained", not an error.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

use crate::workload::{self, GenSpan, Value};

/// How long to wait before resending a batch the server refused as overloaded.
const OVERLOAD_PAUSE: Duration = Duration::from_millis(20);

fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn attribute(key: &str, value: &Value) -> KeyValue {
    match value {
        Value::Str(text) => key_value(key, any_value::Value::StringValue(text.clone())),
        Value::Int(number) => key_value(key, any_value::Value::IntValue(*number)),
    }
}

fn otlp_span(generated: &GenSpan) -> Span {
    let events = generated
        .error
        .iter()
        .map(|exception| span::Event {
            time_unix_nano: exception.time_ns,
            name: "exception".to_owned(),
            attributes: vec![
                key_value(
                    "exception.type",
                    any_value::Value::StringValue(exception.kind.to_owned()),
                ),
                key_value(
                    "exception.message",
                    any_value::Value::StringValue(exception.message.to_owned()),
                ),
                key_value(
                    "exception.stacktrace",
                    any_value::Value::StringValue(exception.stacktrace.to_owned()),
                ),
            ],
            dropped_attributes_count: 0,
        })
        .collect();
    Span {
        trace_id: generated.trace_id.to_vec(),
        span_id: generated.span_id.to_vec(),
        parent_span_id: generated
            .parent_span_id
            .map(|id| id.to_vec())
            .unwrap_or_default(),
        name: generated.name.clone(),
        kind: generated.kind.otlp(),
        start_time_unix_nano: generated.start_ns,
        end_time_unix_nano: generated.start_ns + generated.duration_ns,
        attributes: generated
            .attributes
            .iter()
            .map(|(key, value)| attribute(key, value))
            .collect(),
        events,
        status: Some(match &generated.error {
            Some(exception) => Status {
                message: exception.message.to_owned(),
                code: 2,
            },
            None => Status::default(),
        }),
        ..Default::default()
    }
}

/// One export request for a batch: a `ResourceSpans` per service, as an
/// SDK-per-service fleet behind a collector would send.
pub fn export_request(spans: &[GenSpan], host: u64) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); workload::SERVICES.len()];
    for generated in spans {
        by_service[generated.service].push(otlp_span(generated));
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: workload::resource(service, host)
                    .into_iter()
                    .map(|(key, value)| key_value(key, any_value::Value::StringValue(value)))
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ashiato-bench".to_owned(),
                    version: "1.0.0".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Encodes a request as the body both transports send.
pub fn encode(request: &ExportTraceServiceRequest) -> Bytes {
    Bytes::from(request.encode_to_vec())
}

/// The gRPC method every OTLP trace export calls.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A connection to the server that exports whole requests and returns once
/// they are acknowledged.
pub enum Sender {
    Http {
        agent: ureq::Agent,
        url: String,
    },
    Grpc {
        runtime: tokio::runtime::Runtime,
        client: tonic::client::Grpc<tonic::transport::Channel>,
    },
}

impl Sender {
    pub fn http(base: &str) -> Sender {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Sender::Http {
            agent,
            url: format!("{base}/v1/traces"),
        }
    }

    pub fn grpc(base: &str) -> anyhow::Result<Sender> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a grpc client runtime")?;
        let endpoint = tonic::transport::Endpoint::from_shared(base.to_owned())
            .with_context(|| format!("grpc address {base}"))?;
        let channel = runtime
            .block_on(endpoint.connect())
            .with_context(|| format!("connecting to {base}"))?;
        let client = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
        Ok(Sender::Grpc { runtime, client })
    }

    pub fn protocol(&self) -> &'static str {
        match self {
            Sender::Http { .. } => "http/protobuf",
            Sender::Grpc { .. } => "grpc",
        }
    }

    /// Sends an encoded request until acknowledged; returns how many
    /// overload answers it took.
    pub fn export(&mut self, body: &Bytes) -> anyhow::Result<u64> {
        let mut overloaded = 0;
        loop {
            let accepted = match self {
                Sender::Http { agent, url } => http_export(agent, url, body)?,
                Sender::Grpc { runtime, client } => {
                    runtime.block_on(grpc_export(client, body.clone()))?
                }
            };
            if accepted {
                return Ok(overloaded);
            }
            overloaded += 1;
            std::thread::sleep(OVERLOAD_PAUSE);
        }
    }
}

/// `Ok(false)` when the server asked to retry later.
fn http_export(agent: &ureq::Agent, url: &str, body: &[u8]) -> anyhow::Result<bool> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .send(body)
        .with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    // Read the (small) answer so the connection can be reused.
    let _ = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec();
    match status {
        200..=299 => Ok(true),
        429 | 503 => Ok(false),
        other => bail!("{url} answered {other}"),
    }
}

async fn grpc_export(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    body: Bytes,
) -> anyhow::Result<bool> {
    client
        .ready()
        .await
        .map_err(|error| anyhow::anyhow!("grpc channel not ready: {error}"))?;
    let path = PathAndQuery::from_static(GRPC_EXPORT_PATH);
    match client
        .unary(tonic::Request::new(body), path, PreEncoded)
        .await
    {
        Ok(_) => Ok(true),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
            ) =>
        {
            Ok(false)
        }
        Err(status) => bail!("grpc export failed: {status}"),
    }
}

/// A gRPC codec that sends bodies already encoded (so the timed phase does
/// no protobuf work) and ignores the answer's body: an export's response
/// is empty unless partially rejected, which the harness does not provoke.
#[derive(Clone, Copy)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;

    fn encoder(&mut self) -> PreEncoded {
        PreEncoded
    }

    fn decoder(&mut self) -> PreEncoded {
        PreEncoded
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PreEncoded {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
