//! Decode-only benchmark: protobuf trace requests shaped like the
//! `ashiato-bench` workload (1000 spans, 11 attributes each, spans grouped by
//! service) through prost's message tree + conversion and through the
//! one-pass decoder, alternating, best of several rounds.
//!
//! `cargo run --release -p ashiato-otlp --example decode_bench`

use std::time::Instant;

use ashiato_otlp::{decode_traces_direct, decode_traces_tree};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const SPANS: usize = 1000;
const SERVICES: usize = 20;
const REQUESTS: usize = 50;
const ROUNDS: usize = 5;

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn span(seed: u64, index: usize) -> Span {
    let mix = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64;
    Span {
        trace_id: [(mix as u8) | 1; 16].to_vec(),
        span_id: mix.to_le_bytes().map(|byte| byte | 1).to_vec(),
        parent_span_id: if index.is_multiple_of(10) {
            Vec::new()
        } else {
            [3; 8].to_vec()
        },
        name: format!("GET /api/service-{}/items/{{id}}", index % SERVICES),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + mix % 1_000_000,
        end_time_unix_nano: 1_700_000_000_005_000_000 + mix % 1_000_000,
        attributes: vec![
            text("http.method", "GET".into()),
            text(
                "http.route",
                format!("/api/service-{}/items/{{id}}", index % 7),
            ),
            int("http.status_code", 200),
            text(
                "http.url",
                format!(
                    "https://svc.shop.internal/api/items/{mix}?ref={:x}",
                    mix >> 12
                ),
            ),
            int("user.id", (mix % 100_000) as i64),
            text("session.id", format!("{:016x}", mix)),
            text("db.system", "postgresql".into()),
            text("db.statement", "SELECT * FROM orders WHERE id = $1".into()),
            text("net.peer.name", "payments-3.svc.cluster.local".into()),
            int("net.peer.port", 5432),
            int("thread.id", (mix % 64) as i64),
        ],
        status: Some(Status::default()),
        ..Default::default()
    }
}

fn request(seed: u64) -> Vec<u8> {
    let resource_spans = (0..SERVICES)
        .map(|service| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", format!("service-{service}")),
                    text("service.version", "1.2.0".into()),
                    text("host.name", format!("service-{service}-1")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ashiato-bench".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                spans: (0..SPANS / SERVICES)
                    .map(|index| span(seed, service * 1000 + index))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn main() {
    let bodies: Vec<Vec<u8>> = (0..REQUESTS as u64).map(request).collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let spans = (REQUESTS * SPANS) as f64;
    println!(
        "{REQUESTS} requests of {SPANS} spans, {:.0} bytes/span on the wire",
        bytes as f64 / spans
    );
    let mut best_tree = f64::MAX;
    let mut best_direct = f64::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for body in &bodies {
            let decoded = decode_traces_tree(body).map(|decoded| decoded.items.len());
            assert_eq!(decoded.ok(), Some(SPANS));
        }
        best_tree = best_tree.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        for body in &bodies {
            let decoded = decode_traces_direct(body).map(|decoded| decoded.items.len());
            assert_eq!(decoded, Some(SPANS));
        }
        best_direct = best_direct.min(started.elapsed().as_secs_f64());
    }
    let per_span = |seconds: f64| seconds * 1e9 / spans;
    println!("prost tree + convert: {:.0} ns/span", per_span(best_tree));
    println!("one pass:             {:.0} ns/span", per_span(best_direct));
    println!("ratio:                {:.2}x", best_tree / best_direct);
}
