//! The demo's synthetic telemetry: an order flow across four services
//! (checkout → users → inventory → payments) plus a batch job, built as
//! real OTLP protobuf messages.
//!
//! Pure and seeded: the same seed and clock give the same requests, which is
//! what lets the tests (and `--seed`) rely on "at least one payment fails".

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, SpanKind},
    status::StatusCode,
};

const MS: u64 = 1_000_000;

/// Share of payments that fail with 残高不足.
const PAYMENT_FAILURE_RATE: f64 = 0.2;
/// Share of inventory checks that find low stock.
const LOW_STOCK_RATE: f64 = 0.3;

const PAYMENT_STACKTRACE: &str = "Traceback (most recent call last):
  File \"/app/payments/service.py\", line 58, in charge
    account.debit(order.amount)
  File \"/app/payments/account.py\", line 23, in debit
    raise InsufficientFundsError(\"残高不足\")
payments.errors.InsufficientFundsError: 残高不足";

/// A small, fast, seedable generator (SplitMix64): the demo needs
/// reproducibility, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Non-zero random bytes for an id (all-zero ids are invalid in OTLP).
    fn id_bytes<const N: usize>(&mut self) -> Vec<u8> {
        loop {
            let mut bytes = Vec::with_capacity(N);
            while bytes.len() < N {
                bytes.extend_from_slice(&self.next_u64().to_be_bytes());
            }
            bytes.truncate(N);
            if bytes.iter().any(|byte| *byte != 0) {
                return bytes;
            }
        }
    }
}

/// Which orders of a run fail their payment. With five or more orders at
/// least one fails, so every demo has an error to look at.
pub fn payment_failures(rng: &mut Rng, orders: usize) -> Vec<bool> {
    let mut failures: Vec<bool> = (0..orders)
        .map(|_| rng.chance(PAYMENT_FAILURE_RATE))
        .collect();
    if orders >= 5 && !failures.contains(&true) {
        let forced = rng.between(0, orders as u64 - 1) as usize;
        failures[forced] = true;
    }
    failures
}

/// One service's telemetry, before it is grouped into requests.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub spans: Vec<(&'static str, Span)>,
    pub logs: Vec<(&'static str, LogRecord)>,
}

/// One generated order: its telemetry and what the summary prints about it.
#[derive(Debug, Clone)]
pub struct Order {
    pub trace_id_hex: String,
    pub failed: bool,
    pub telemetry: Telemetry,
}

/// Builds one order trace that ends at `now`: children start after their
/// predecessor and end inside their parent, as a real synchronous flow does.
pub fn order(rng: &mut Rng, now: u64, fails: bool) -> Order {
    let trace_id = rng.id_bytes::<16>();
    let user_id = rng.between(100, 999) as i64;
    let product_id = rng.between(100, 999) as i64;
    let amount = rng.between(500, 49_999) as f64 / 100.0;
    let order_id = format!("ord-{:06}", rng.between(0, 999_999));

    let users_ms = rng.between(4, 20);
    let inventory_ms = rng.between(15, 80);
    let payments_ms = rng.between(60, 300);
    let total_ms = 1 + users_ms + 1 + inventory_ms + 1 + payments_ms + 2;
    let start = now.saturating_sub(total_ms * MS);

    let mut builder = TraceBuilder {
        rng,
        trace_id: trace_id.clone(),
        spans: Vec::new(),
    };
    let root = builder.span(
        "checkout",
        "注文作成",
        None,
        SpanKind::Server,
        start,
        total_ms * MS,
    );
    builder.attrs(
        root,
        vec![
            kv_str("http.request.method", "POST"),
            kv_str("http.route", "/orders"),
            kv_str("url.path", "/orders"),
            kv_int("http.response.status_code", if fails { 402 } else { 201 }),
            kv_str("order_id", &order_id),
        ],
    );
    let users_start = start + MS;
    let users = builder.span(
        "users",
        "ユーザー検証",
        Some(root),
        SpanKind::Server,
        users_start,
        users_ms * MS,
    );
    builder.attrs(users, vec![kv_int("user_id", user_id)]);

    let inventory_start = users_start + (users_ms + 1) * MS;
    let inventory = builder.span(
        "inventory",
        "在庫確認",
        Some(root),
        SpanKind::Server,
        inventory_start,
        inventory_ms * MS,
    );
    builder.attrs(inventory, vec![kv_int("product_id", product_id)]);
    let query_ms = inventory_ms / 2;
    let query = builder.span(
        "inventory",
        "SELECT stock",
        Some(inventory),
        SpanKind::Client,
        inventory_start + MS,
        query_ms * MS,
    );
    builder.attrs(
        query,
        vec![
            kv_str("db.system.name", "postgresql"),
            kv_str("db.operation.name", "SELECT"),
            kv_str("db.collection.name", "stock"),
        ],
    );
    let low_stock = builder.rng.chance(LOW_STOCK_RATE);
    if low_stock {
        let remaining = builder.rng.between(1, 5) as i64;
        let event_time = inventory_start + (query_ms + 2) * MS;
        builder.event(
            inventory,
            event_time,
            "在庫レベルが低い",
            vec![
                kv_int("product_id", product_id),
                kv_int("stock.remaining", remaining),
            ],
        );
    }

    let payments_start = inventory_start + (inventory_ms + 1) * MS;
    let payments = builder.span(
        "payments",
        "支払い処理",
        Some(root),
        SpanKind::Server,
        payments_start,
        payments_ms * MS,
    );
    builder.attrs(
        payments,
        vec![kv_double("amount", amount), kv_str("currency", "JPY")],
    );
    let payments_end = payments_start + payments_ms * MS;
    let mut logs = Vec::new();
    if fails {
        let failed_at = payments_end.saturating_sub(MS);
        builder.fail(payments, failed_at);
        let (trace_id, span_id) = builder.ids(payments);
        logs.push((
            "payments",
            payment_failure_log(failed_at, trace_id, span_id, user_id, amount),
        ));
    } else {
        let (trace_id, span_id) = builder.ids(root);
        logs.push((
            "checkout",
            order_created_log(now, trace_id, span_id, &order_id, amount),
        ));
    }
    Order {
        trace_id_hex: hex(&trace_id),
        failed: fails,
        telemetry: Telemetry {
            spans: builder.spans,
            logs,
        },
    }
}

/// A few lines from the nightly batch job, sometimes with a timeout error.
/// `force_error` makes sure a short demo has one to search for.
pub fn batch_job_logs(
    rng: &mut Rng,
    now: u64,
    force_error: bool,
) -> Vec<(&'static str, LogRecord)> {
    let batch = rng.between(1000, 9999);
    let items = rng.between(50, 500);
    let item = rng.between(1000, 9999);
    let mut logs = vec![
        (
            now.saturating_sub(3 * MS),
            SeverityNumber::Info,
            format!("starting batch {batch}: {items} items"),
        ),
        (
            now.saturating_sub(2 * MS),
            SeverityNumber::Info,
            format!("processed {} items", items / 2),
        ),
    ];
    if force_error || rng.chance(0.5) {
        logs.push((
            now.saturating_sub(MS),
            SeverityNumber::Error,
            format!("failed to process item {item}: timeout after 30s"),
        ));
    } else if rng.chance(0.5) {
        logs.push((
            now.saturating_sub(MS),
            SeverityNumber::Warn,
            format!("item {item} retried 2 times"),
        ));
    }
    logs.push((now, SeverityNumber::Info, format!("batch {batch} finished")));
    logs.into_iter()
        .map(|(time, severity, body)| {
            let record = LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: time,
                severity_number: severity as i32,
                severity_text: severity_text(severity).to_owned(),
                body: Some(any_str(&body)),
                attributes: vec![kv_int("batch.id", batch as i64)],
                ..Default::default()
            };
            ("batch", record)
        })
        .collect()
}

fn payment_failure_log(
    time: u64,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    user_id: i64,
    amount: f64,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: SeverityNumber::Error as i32,
        severity_text: "ERROR".to_owned(),
        body: Some(any_str("支払いに失敗しました: 残高不足")),
        attributes: vec![
            kv_str("exception.type", "InsufficientFundsError"),
            kv_str("exception.message", "残高不足"),
            kv_str("exception.stacktrace", PAYMENT_STACKTRACE),
            kv_int("user_id", user_id),
            kv_double("amount", amount),
        ],
        flags: 1,
        trace_id,
        span_id,
        ..Default::default()
    }
}

fn order_created_log(
    time: u64,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    order_id: &str,
    amount: f64,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".to_owned(),
        body: Some(any_str(&format!("注文を作成しました {order_id}"))),
        attributes: vec![kv_str("order_id", order_id), kv_double("amount", amount)],
        flags: 1,
        trace_id,
        span_id,
        ..Default::default()
    }
}

fn severity_text(severity: SeverityNumber) -> &'static str {
    match severity {
        SeverityNumber::Error => "ERROR",
        SeverityNumber::Warn => "WARN",
        _ => "INFO",
    }
}

/// Collects the spans of one trace; spans are addressed by index so
/// attributes and events can be added after creation.
struct TraceBuilder<'a> {
    rng: &'a mut Rng,
    trace_id: Vec<u8>,
    spans: Vec<(&'static str, Span)>,
}

impl TraceBuilder<'_> {
    fn span(
        &mut self,
        service: &'static str,
        name: &str,
        parent: Option<usize>,
        kind: SpanKind,
        start: u64,
        duration: u64,
    ) -> usize {
        let parent_span_id = parent
            .map(|index| self.spans[index].1.span_id.clone())
            .unwrap_or_default();
        let span = Span {
            trace_id: self.trace_id.clone(),
            span_id: self.rng.id_bytes::<8>(),
            parent_span_id,
            name: name.to_owned(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            status: Some(Status::default()),
            ..Default::default()
        };
        self.spans.push((service, span));
        self.spans.len() - 1
    }

    fn attrs(&mut self, index: usize, attributes: Vec<KeyValue>) {
        self.spans[index].1.attributes.extend(attributes);
    }

    fn event(&mut self, index: usize, time: u64, name: &str, attributes: Vec<KeyValue>) {
        let event = Event {
            time_unix_nano: time,
            name: name.to_owned(),
            attributes,
            ..Default::default()
        };
        self.spans[index].1.events.push(event);
    }

    /// Marks the span failed the way SDKs record an exception: an error
    /// status plus an `exception` event.
    fn fail(&mut self, index: usize, time: u64) {
        self.event(
            index,
            time,
            "exception",
            vec![
                kv_str("exception.type", "InsufficientFundsError"),
                kv_str("exception.message", "残高不足"),
                kv_str("exception.stacktrace", PAYMENT_STACKTRACE),
            ],
        );
        self.spans[index].1.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "残高不足".to_owned(),
        });
    }

    fn ids(&self, index: usize) -> (Vec<u8>, Vec<u8>) {
        (self.trace_id.clone(), self.spans[index].1.span_id.clone())
    }
}

/// Groups spans by service into one request, one resource per service, as
/// a collector forwarding several apps would send them.
pub fn trace_request(spans: Vec<(&'static str, Span)>) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    for (service, span) in spans {
        let position = resource_spans
            .iter()
            .position(|group| service_of(group.resource.as_ref()) == Some(service));
        let group = match position {
            Some(position) => &mut resource_spans[position],
            None => {
                resource_spans.push(ResourceSpans {
                    resource: Some(resource(service)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                let last = resource_spans.len() - 1;
                &mut resource_spans[last]
            }
        };
        if let Some(scope_spans) = group.scope_spans.first_mut() {
            scope_spans.spans.push(span);
        }
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Groups log records by service into one request.
pub fn logs_request(logs: Vec<(&'static str, LogRecord)>) -> ExportLogsServiceRequest {
    let mut resource_logs: Vec<ResourceLogs> = Vec::new();
    for (service, record) in logs {
        let position = resource_logs
            .iter()
            .position(|group| service_of(group.resource.as_ref()) == Some(service));
        let group = match position {
            Some(position) => &mut resource_logs[position],
            None => {
                resource_logs.push(ResourceLogs {
                    resource: Some(resource(service)),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                let last = resource_logs.len() - 1;
                &mut resource_logs[last]
            }
        };
        if let Some(scope_logs) = group.scope_logs.first_mut() {
            scope_logs.log_records.push(record);
        }
    }
    ExportLogsServiceRequest { resource_logs }
}

fn service_of(resource: Option<&Resource>) -> Option<&str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(name)),
            }) => Some(name.as_str()),
            _ => None,
        })
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv_str("service.name", service),
            kv_str("service.version", "1.4.2"),
            kv_str("deployment.environment.name", "demo"),
            kv_str("telemetry.sdk.name", "ashiato-demo"),
            kv_str("telemetry.sdk.language", "rust"),
            kv_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "ashiato.demo".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

fn any_str(text: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(text.to_owned())),
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(any_str(value)),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn kv_double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_238_896_000_000_000;

    #[test]
    fn test_at_least_one_failure_from_five_orders_for_any_seed() {
        for seed in 0..500 {
            let failures = payment_failures(&mut Rng::new(seed), 5);
            assert!(failures.contains(&true), "seed {seed}");
        }
        assert_eq!(
            payment_failures(&mut Rng::new(1), 10),
            payment_failures(&mut Rng::new(1), 10)
        );
    }

    #[test]
    fn test_same_seed_same_order() {
        let first = order(&mut Rng::new(7), NOW, true);
        let second = order(&mut Rng::new(7), NOW, true);
        assert_eq!(first.trace_id_hex, second.trace_id_hex);
        assert_eq!(
            trace_request(first.telemetry.spans),
            trace_request(second.telemetry.spans)
        );
    }

    #[test]
    fn test_order_shape_timing_and_ids() {
        let order = order(&mut Rng::new(3), NOW, true);
        let spans = &order.telemetry.spans;
        let names: Vec<&str> = spans.iter().map(|(_, span)| span.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "注文作成",
                "ユーザー検証",
                "在庫確認",
                "SELECT stock",
                "支払い処理"
            ]
        );
        let root = &spans[0].1;
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.end_time_unix_nano, NOW);
        for (_, span) in spans {
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(span.span_id.len(), 8);
            assert_eq!(hex(&span.trace_id), order.trace_id_hex);
            if let Some((_, parent)) = spans.iter().find(|(_, p)| p.span_id == span.parent_span_id)
            {
                assert!(parent.start_time_unix_nano <= span.start_time_unix_nano);
                assert!(span.end_time_unix_nano <= parent.end_time_unix_nano);
            }
        }
        let payment = &spans[4].1;
        let status = payment.status.clone().unwrap_or_default();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "残高不足");
        assert_eq!(payment.events[0].name, "exception");
        let (service, log) = &order.telemetry.logs[0];
        assert_eq!(*service, "payments");
        assert_eq!(log.span_id, payment.span_id);
        assert_eq!(log.severity_number, SeverityNumber::Error as i32);
    }

    #[test]
    fn test_successful_order_logs_info_on_root() {
        let order = order(&mut Rng::new(3), NOW, false);
        let (service, log) = &order.telemetry.logs[0];
        assert_eq!(*service, "checkout");
        assert_eq!(log.severity_number, SeverityNumber::Info as i32);
        assert_eq!(log.span_id, order.telemetry.spans[0].1.span_id);
        let payment = &order.telemetry.spans[4].1;
        assert!(payment.events.is_empty());
    }

    #[test]
    fn test_requests_group_by_service() {
        let order = order(&mut Rng::new(11), NOW, false);
        let request = trace_request(order.telemetry.spans);
        let services: Vec<&str> = request
            .resource_spans
            .iter()
            .filter_map(|group| service_of(group.resource.as_ref()))
            .collect();
        assert_eq!(services, ["checkout", "users", "inventory", "payments"]);
        let inventory_spans = &request.resource_spans[2].scope_spans[0].spans;
        assert_eq!(inventory_spans.len(), 2);
        let logs = logs_request(batch_job_logs(&mut Rng::new(1), NOW, true));
        let records = &logs.resource_logs[0].scope_logs[0].log_records;
        assert!(
            records
                .iter()
                .any(|record| record.severity_number == SeverityNumber::Error as i32)
        );
        assert_eq!(
            service_of(logs.resource_logs[0].resource.as_ref()),
            Some("batch")
        );
    }
}
