//! OTLP/gRPC trace and log requests reach the server as raw bytes and are
//! decoded by the one-pass decoder: a malformed message is answered
//! INVALID_ARGUMENT with prost's error text, and a well-formed one is stored.

#![allow(clippy::unwrap_used)] // tests may unwrap

use ashiato_server::{Server, ServerConfig};
use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// A client codec that sends and receives message bytes as they are.
#[derive(Default)]
struct Verbatim;

impl Codec for Verbatim {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Verbatim;
    type Decoder = Verbatim;

    fn encoder(&mut self) -> Verbatim {
        Verbatim
    }

    fn decoder(&mut self) -> Verbatim {
        Verbatim
    }
}

impl Encoder for Verbatim {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Verbatim {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

async fn export(
    server: &Server,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let url = format!("http://{}", server.addrs().otlp_grpc.unwrap());
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        Verbatim,
    )
    .await
    .map(tonic::Response::into_inner)
}

const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_malformed_messages_are_invalid_argument_with_prost_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    // (body, path, prost's text for it)
    let underflow = vec![0x0a, 0x05, 0x12];
    let bad_utf8 = vec![0x0a, 0x06, 0x1a, 0x04, 0xff, 0xfe, 0xfd, 0xfc];
    let cases = [
        (
            underflow.clone(),
            TRACES,
            ExportTraceServiceRequest::decode(&underflow[..]).unwrap_err(),
        ),
        (
            bad_utf8.clone(),
            TRACES,
            ExportTraceServiceRequest::decode(&bad_utf8[..]).unwrap_err(),
        ),
        (
            underflow.clone(),
            LOGS,
            ExportLogsServiceRequest::decode(&underflow[..]).unwrap_err(),
        ),
        (
            underflow.clone(),
            METRICS,
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(
                &underflow[..],
            )
            .unwrap_err(),
        ),
    ];
    for (body, path, prost_error) in cases {
        let status = export(&server, path, body).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}");
        assert_eq!(status.message(), prost_error.to_string(), "{path}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_empty_messages_succeed_and_unknown_methods_are_unimplemented() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    for path in [TRACES, LOGS] {
        let reply = export(&server, path, Vec::new()).await.unwrap();
        assert!(
            reply.is_empty(),
            "{path}: a clean success has no partial_success"
        );
    }
    let status = export(
        &server,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    server.shutdown().await.unwrap();
}
