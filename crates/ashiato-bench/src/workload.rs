//! The deterministic, Jaeger-v2-benchmark-like span workload.
//!
//! Every trace is generated from `(seed, trace index)` alone, so any batch
//! can be regenerated anywhere (the OTLP senders and the ClickHouse loader
//! produce exactly the same spans without sharing memory), whatever the
//! number of connections. Distributions are documented in
//! `docs/benchmarks.md`; keep the two in step.

/// Spans per trace (Jaeger's benchmark: 1M traces × 10 spans).
pub const SPANS_PER_TRACE: usize = 10;
/// Default probability that a span is an error span (with an exception
/// event); `--error-rate` changes it.
pub const DEFAULT_ERROR_RATE: f64 = 0.02;
/// Distinct user ids (uniform).
const USERS: u64 = 100_000;
/// Distinct session ids (uniform).
const SESSIONS: u64 = 1_000_000;

pub const SERVICES: [&str; 20] = [
    "frontend",
    "gateway",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "email",
    "currency",
    "recommendation",
    "ad",
    "catalog",
    "users",
    "auth",
    "inventory",
    "search",
    "review",
    "notification",
    "pricing",
    "fraud",
    "ledger",
];

/// Operation templates, ten per service; `{s}` is the service name.
/// (method, route template, kind, db system)
const OPERATIONS: [(&str, &str, SpanKind, Option<&str>); 10] = [
    ("GET", "/api/{s}/items", SpanKind::Server, None),
    ("GET", "/api/{s}/items/{id}", SpanKind::Server, None),
    ("POST", "/api/{s}/items", SpanKind::Server, None),
    ("PUT", "/api/{s}/items/{id}", SpanKind::Server, None),
    ("DELETE", "/api/{s}/items/{id}", SpanKind::Server, None),
    ("GET", "/api/{s}/search", SpanKind::Server, None),
    ("SELECT", "{s}.items", SpanKind::Client, Some("postgresql")),
    ("INSERT", "{s}.orders", SpanKind::Client, Some("postgresql")),
    ("GET", "{s}:cache", SpanKind::Client, Some("redis")),
    ("PUBLISH", "{s}.events", SpanKind::Producer, None),
];

const DB_STATEMENTS: [&str; 8] = [
    "SELECT id, name, price FROM items WHERE id = $1",
    "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 20",
    "INSERT INTO orders (user_id, total, currency) VALUES ($1, $2, $3)",
    "UPDATE inventory SET quantity = quantity - $1 WHERE sku = $2",
    "SELECT count(*) FROM sessions WHERE user_id = $1 AND expires_at > now()",
    "DELETE FROM carts WHERE updated_at < now() - interval '7 days'",
    "GET session:{id}",
    "SET rate:{id} 1 EX 60",
];

const EXCEPTIONS: [(&str, &str, &str); 4] = [
    (
        "java.net.SocketTimeoutException",
        "connect timed out after 2000 ms",
        "java.net.SocketTimeoutException: connect timed out\n\tat java.base/sun.nio.ch.NioSocketImpl.timedFinishConnect(NioSocketImpl.java:546)\n\tat java.base/java.net.Socket.connect(Socket.java:633)\n\tat okhttp3.internal.connection.RealConnection.connectSocket(RealConnection.kt:295)\n\tat com.shop.client.HttpClient.execute(HttpClient.java:88)",
    ),
    (
        "ValueError",
        "invalid currency code",
        "Traceback (most recent call last):\n  File \"/app/currency/convert.py\", line 42, in convert\n    rate = rates[code]\n  File \"/app/currency/rates.py\", line 17, in __getitem__\n    raise ValueError(\"invalid currency code\")\nValueError: invalid currency code",
    ),
    (
        "*errors.errorString",
        "payment declined: insufficient funds",
        "goroutine 42 [running]:\nmain.(*PaymentService).Charge(0xc000128000, {0x7f3a, 0xc0001a2000})\n\t/src/payment/charge.go:118 +0x1d4\nmain.handler(0xc0001b4000)\n\t/src/payment/http.go:57 +0x9a",
    ),
    (
        "System.InvalidOperationException",
        "sequence contains no elements",
        "System.InvalidOperationException: Sequence contains no elements\n   at System.Linq.ThrowHelper.ThrowNoElementsException()\n   at Shop.Inventory.StockService.Reserve(String sku) in /src/StockService.cs:line 64",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
    Producer,
}

impl SpanKind {
    /// The OTLP `Span.SpanKind` number.
    pub fn otlp(self) -> i32 {
        match self {
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone)]
pub struct Exception {
    pub time_ns: u64,
    pub kind: &'static str,
    pub message: &'static str,
    pub stacktrace: &'static str,
}

/// One generated span, independent of any wire format.
#[derive(Debug, Clone)]
pub struct GenSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub service: usize,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub error: Option<Exception>,
    pub attributes: Vec<(&'static str, Value)>,
}

impl GenSpan {
    pub fn service_name(&self) -> &'static str {
        SERVICES[self.service]
    }
}

/// splitmix64: tiny, fast, and good enough to make realistic-looking data.
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

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Lognormal with the given median and sigma (Box–Muller).
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * normal).exp()
    }
}

/// What to generate: the seed, the number of traces and the time window
/// they are spread evenly over.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub seed: u64,
    pub traces: u64,
    pub window_start_ns: u64,
    pub window_ns: u64,
    /// Probability that a span is an error span.
    pub error_rate: f64,
}

impl Workload {
    pub fn spans(&self) -> u64 {
        self.traces * SPANS_PER_TRACE as u64
    }

    fn trace_rng(&self, index: u64, salt: u64) -> Rng {
        Rng::new(self.seed ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93) ^ salt)
    }

    /// The id of trace `index`; never all-zero.
    pub fn trace_id(&self, index: u64) -> [u8; 16] {
        let mut rng = self.trace_rng(index, 0x7472_6163);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&(rng.next_u64() | 1).to_be_bytes());
        id
    }

    /// When trace `index` starts: traces are spread evenly over the window.
    pub fn trace_start(&self, index: u64) -> u64 {
        let step = self.window_ns / self.traces.max(1);
        self.window_start_ns + index * step
    }

    /// The (service, operation) of a span, for queries that must match.
    pub fn operation_name(service: usize, operation: usize) -> String {
        let (method, route, _, _) = OPERATIONS[operation % OPERATIONS.len()];
        let route = route.replace("{s}", SERVICES[service % SERVICES.len()]);
        format!("{method} {route}")
    }

    /// The `http.route` value of an operation.
    pub fn route(service: usize, operation: usize) -> String {
        OPERATIONS[operation % OPERATIONS.len()]
            .1
            .replace("{s}", SERVICES[service % SERVICES.len()])
    }

    /// Every span of trace `index`, root first.
    pub fn trace(&self, index: u64) -> Vec<GenSpan> {
        let mut rng = self.trace_rng(index, 0x7370_616e);
        let trace_id = self.trace_id(index);
        let user = 1 + rng.below(USERS) as i64;
        let session = format!("{:016x}", rng.below(SESSIONS).wrapping_mul(0x9e37_79b9));
        let start = self.trace_start(index);
        let mut spans: Vec<GenSpan> = Vec::with_capacity(SPANS_PER_TRACE);
        for position in 0..SPANS_PER_TRACE {
            let mut span_id = rng.next_u64() | 1;
            if position == 0 {
                // The root's id is derived from the trace id so it is
                // distinct from its children with certainty.
                span_id = u64::from_be_bytes([
                    trace_id[8],
                    trace_id[9],
                    trace_id[10],
                    trace_id[11],
                    trace_id[12],
                    trace_id[13],
                    trace_id[14],
                    trace_id[15],
                ]);
            }
            let (parent, span_start, duration) = if position == 0 {
                // Roots last longer: median 40 ms.
                (None, start, rng.lognormal(40e6, 1.0) as u64 + 1000)
            } else {
                let parent = &spans[rng.below(position as u64) as usize];
                let offset = (rng.unit() * parent.duration_ns as f64 * 0.5) as u64;
                let own = rng.lognormal(5e6, 1.2) as u64 + 1000;
                let duration = own.min((parent.duration_ns / 2).max(1000));
                (Some(parent.span_id), parent.start_ns + offset, duration)
            };
            let service = if position == 0 {
                rng.below(2) as usize // frontend or gateway
            } else {
                rng.below(SERVICES.len() as u64) as usize
            };
            let operation = if position == 0 {
                rng.below(6) as usize // an HTTP route
            } else {
                rng.below(OPERATIONS.len() as u64) as usize
            };
            let error = (rng.unit() < self.error_rate).then(|| {
                let (kind, message, stacktrace) =
                    EXCEPTIONS[rng.below(EXCEPTIONS.len() as u64) as usize];
                Exception {
                    time_ns: span_start + duration / 2,
                    kind,
                    message,
                    stacktrace,
                }
            });
            let attributes = attributes(
                &mut rng,
                service,
                operation,
                user,
                &session,
                error.is_some(),
            );
            spans.push(GenSpan {
                trace_id,
                span_id: span_id.to_be_bytes(),
                parent_span_id: parent,
                service,
                name: Workload::operation_name(service, operation),
                kind: OPERATIONS[operation].2,
                start_ns: span_start,
                duration_ns: duration,
                error,
                attributes,
            });
        }
        spans
    }

    /// Spans of traces `first..first + count` (clamped to the workload).
    pub fn batch(&self, first: u64, count: u64) -> Vec<GenSpan> {
        let end = (first + count).min(self.traces);
        (first..end).flat_map(|index| self.trace(index)).collect()
    }
}

/// The 11 attributes every span carries.
fn attributes(
    rng: &mut Rng,
    service: usize,
    operation: usize,
    user: i64,
    session: &str,
    error: bool,
) -> Vec<(&'static str, Value)> {
    let (method, _, _, db_system) = OPERATIONS[operation];
    let route = Workload::route(service, operation);
    let item = rng.below(1_000_000);
    let status = if error {
        500
    } else {
        match rng.below(100) {
            0..=2 => 404,
            3..=5 => 201,
            _ => 200,
        }
    };
    let statement = DB_STATEMENTS[rng.below(DB_STATEMENTS.len() as u64) as usize];
    let (peer_port, db) = match db_system {
        Some("redis") => (6379, "redis"),
        Some(system) => (5432, system),
        None => (8080, "none"),
    };
    let service_name = SERVICES[service];
    // Database and queue operations get a URL of their own kind of path.
    let path = if route.starts_with('/') {
        route.replace("{id}", &item.to_string())
    } else {
        format!("/{route}/{item}")
    };
    vec![
        ("http.method", Value::Str(method.to_owned())),
        ("http.route", Value::Str(route.clone())),
        ("http.status_code", Value::Int(status)),
        (
            "http.url",
            Value::Str(format!(
                "https://{service_name}.shop.internal{path}?ref={:x}",
                rng.below(1 << 20)
            )),
        ),
        ("user.id", Value::Int(user)),
        ("session.id", Value::Str(session.to_owned())),
        ("db.system", Value::Str(db.to_owned())),
        ("db.statement", Value::Str(statement.to_owned())),
        (
            "net.peer.name",
            Value::Str(format!(
                "{}-{}.svc.cluster.local",
                SERVICES[rng.below(SERVICES.len() as u64) as usize],
                rng.below(8)
            )),
        ),
        ("net.peer.port", Value::Int(peer_port)),
        ("thread.id", Value::Int(1 + rng.below(64) as i64)),
    ]
}

/// Resource attributes of a service's spans: `service.name`,
/// `service.version`, `host.name` (one host per service and batch slot).
pub fn resource(service: usize, host: u64) -> Vec<(&'static str, String)> {
    let name = SERVICES[service % SERVICES.len()];
    vec![
        ("service.name", name.to_owned()),
        ("service.version", format!("1.{}.0", service % 5)),
        ("host.name", format!("{name}-{}", host % 4)),
    ]
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 15) as usize] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            seed: 42,
            traces: 1000,
            window_start_ns: 1_700_000_000_000_000_000,
            window_ns: 3_600_000_000_000,
            error_rate: DEFAULT_ERROR_RATE,
        }
    }

    #[test]
    fn same_seed_same_trace() {
        let a = workload().trace(17);
        let b = workload().trace(17);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.len(), SPANS_PER_TRACE);
        assert!(a.iter().all(|span| span.attributes.len() == 11));
    }

    #[test]
    fn children_point_at_spans_of_the_trace() {
        for index in 0..200 {
            let spans = workload().trace(index);
            assert!(spans[0].parent_span_id.is_none());
            for span in &spans[1..] {
                let parent = span.parent_span_id.unwrap();
                assert!(spans.iter().any(|other| other.span_id == parent));
            }
        }
    }

    #[test]
    fn first_trace_snapshot() {
        let spans = workload().trace(0);
        let summary: Vec<String> = spans
            .iter()
            .map(|span| {
                format!(
                    "{} {} {} +{}ns {}ns err={} {:?}",
                    hex(&span.span_id),
                    span.service_name(),
                    span.name,
                    span.start_ns - spans[0].start_ns,
                    span.duration_ns,
                    span.error.is_some(),
                    span.attributes
                )
            })
            .collect();
        insta::assert_snapshot!(summary.join("\n"));
    }

    #[test]
    fn error_rate_is_about_two_percent() {
        let spans = workload().batch(0, 1000);
        let errors = spans.iter().filter(|span| span.error.is_some()).count();
        assert!(
            (100..=300).contains(&errors),
            "{errors} errors in 10k spans"
        );
    }

    #[test]
    fn error_rate_follows_the_setting_and_stays_deterministic() {
        let five = Workload {
            error_rate: 0.05,
            ..workload()
        };
        let spans = five.batch(0, 1000);
        let errors = spans.iter().filter(|span| span.error.is_some()).count();
        assert!(
            (400..=600).contains(&errors),
            "{errors} errors in 10k spans"
        );
        assert_eq!(
            format!("{:?}", five.trace(3)),
            format!("{:?}", five.trace(3))
        );
        let none = Workload {
            error_rate: 0.0,
            ..workload()
        };
        assert!(none.batch(0, 100).iter().all(|span| span.error.is_none()));
    }
}
