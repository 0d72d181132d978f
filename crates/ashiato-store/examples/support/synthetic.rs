//! Realistic synthetic spans shared by the store's size measurement test and
//! the ingest benchmark example: five-span traces over five services, ten
//! attributes per span, random trace/span ids, user ids and amounts.

use std::sync::Arc;

use ashiato_model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Realistic synthetic traffic: five-span traces over a few services, ten
/// attributes per span, random user ids and amounts.
pub fn spans(count: usize, start: u64, seed: u64) -> Vec<Span> {
    let mut rng = XorShift(seed | 1);
    let services: Vec<Arc<Resource>> = ["checkout", "users", "inventory", "payments", "shipping"]
        .iter()
        .map(|name| {
            Arc::new(Resource::new(vec![
                KeyValue::new("service.name", AttrValue::Str((*name).into())),
                KeyValue::new("service.version", AttrValue::Str("1.4.2".into())),
                KeyValue::new("host.name", AttrValue::Str(format!("{name}-7f9c6d-x2k4q"))),
                KeyValue::new("telemetry.sdk.language", AttrValue::Str("python".into())),
                KeyValue::new("telemetry.sdk.version", AttrValue::Str("1.27.0".into())),
            ]))
        })
        .collect();
    let operations = [
        "GET /api/orders",
        "validate_user",
        "check_stock",
        "charge_card",
        "SELECT orders",
    ];
    let scope = Arc::new(Scope {
        name: "ashiato-synthetic".into(),
        version: "0.1".into(),
        attributes: Vec::new(),
    });
    let mut spans = Vec::with_capacity(count);
    let mut time = start;
    while spans.len() < count {
        let trace = TraceId::from_halves(rng.next(), rng.next());
        let root = SpanId((rng.next() | 1).to_be_bytes());
        let user = rng.next() % 100_000;
        time += rng.next() % 2_000_000;
        for index in 0..5 {
            let span_id = if index == 0 {
                root
            } else {
                SpanId((rng.next() | 1).to_be_bytes())
            };
            let start_time = time + index as u64 * (rng.next() % 5_000_000);
            let duration = 1_000_000 + rng.next() % 200_000_000;
            let failed = rng.next().is_multiple_of(50);
            spans.push(Span {
                trace_id: trace,
                span_id,
                parent_span_id: (index > 0).then_some(root),
                trace_state: String::new(),
                flags: 1,
                name: operations[index].into(),
                kind: if index == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                start_time_unix_nano: start_time,
                end_time_unix_nano: start_time + duration,
                attributes: vec![
                    KeyValue::new("http.method", AttrValue::Str("POST".into())),
                    KeyValue::new("http.route", AttrValue::Str("/api/orders".into())),
                    KeyValue::new(
                        "http.status_code",
                        AttrValue::Int(if failed { 500 } else { 200 }),
                    ),
                    KeyValue::new("user_id", AttrValue::Str(user.to_string())),
                    KeyValue::new("product_id", AttrValue::Int((rng.next() % 5_000) as i64)),
                    KeyValue::new(
                        "amount",
                        AttrValue::Float((rng.next() % 100_000) as f64 / 100.0),
                    ),
                    KeyValue::new("net.peer.name", AttrValue::Str("db.internal".into())),
                    KeyValue::new("net.peer.port", AttrValue::Int(5432)),
                    KeyValue::new("retry", AttrValue::Bool(false)),
                    KeyValue::new("region", AttrValue::Str("ap-northeast-1".into())),
                ],
                events: Vec::new(),
                links: Vec::new(),
                status: if failed {
                    Status {
                        code: StatusCode::Error,
                        message: "残高不足".into(),
                    }
                } else {
                    Status::default()
                },
                resource: services[index].clone(),
                scope: scope.clone(),
            });
        }
    }
    spans.truncate(count);
    spans
}
