//! `GET /metrics`: figures about ashiato itself in the Prometheus text
//! exposition format (version 0.0.4), on the HTTP listener.
//!
//! Hand-written rather than through a metrics crate: the set is small and
//! fixed (a few counters per protocol and signal, one latency histogram per
//! endpoint, gauges read from the store and the error tracker at scrape
//! time), every label value comes from a closed list or from the routers'
//! own route patterns (so cardinality is bounded by the code, never by
//! clients), and the hot path is plain relaxed atomic additions: counting a
//! batch is two or three `fetch_add`s whatever its size, never a lock per
//! span. A request takes one read lock to find its endpoint's histogram.
//! The histograms reuse the store's [`DurationHistogram`] (the store keeps
//! its WAL and seal timings the same way), so every histogram has the same
//! buckets, [`BUCKET_BOUNDS_SECONDS`].
//!
//! Everything is per [`Metrics`] value (one per server), not global, so
//! several servers in one process (tests) count apart.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use ashiato_store::{BUCKET_BOUNDS_SECONDS, DurationHistogram, HistogramSnapshot, Store};
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;

use crate::errors::ErrorFigures;

/// The intake protocols, a label of the ingest counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OtlpGrpc,
    OtlpHttp,
    Datadog,
}

impl Protocol {
    const ALL: [Protocol; 3] = [Protocol::OtlpGrpc, Protocol::OtlpHttp, Protocol::Datadog];

    fn label(self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp-grpc",
            Protocol::OtlpHttp => "otlp-http",
            Protocol::Datadog => "datadog",
        }
    }
}

/// What was ingested, a label of the ingest counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Spans,
    Logs,
}

impl Signal {
    const ALL: [Signal; 2] = [Signal::Spans, Signal::Logs];

    fn label(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
        }
    }
}

/// Item counters of one protocol and signal.
#[derive(Debug, Default)]
struct ItemCounters {
    /// Items in decoded requests, valid or not.
    received: AtomicU64,
    /// Items stored and acknowledged.
    accepted: AtomicU64,
    /// Items rejected one by one as invalid (OTLP `partial_success`,
    /// unusable Datadog spans).
    invalid: AtomicU64,
    /// Valid items of batches the store refused (overload, shutdown,
    /// storage failure): the client was told to resend them.
    refused: AtomicU64,
}

/// The live counters of one server; cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Indexed by `Protocol as usize * 2 + Signal as usize`.
    items: [ItemCounters; 6],
    /// Batches answered "overloaded, retry later", per protocol.
    overloaded: [AtomicU64; 3],
    /// Request latency per (listener, endpoint).
    requests: RwLock<HashMap<(&'static str, String), Arc<DurationHistogram>>>,
}

impl Metrics {
    fn items(&self, protocol: Protocol, signal: Signal) -> &ItemCounters {
        &self.items[protocol as usize * 2 + signal as usize]
    }

    /// Items of a decoded request rejected one by one as invalid.
    pub fn invalid(&self, protocol: Protocol, signal: Signal, count: u64) {
        if count == 0 {
            return;
        }
        let counters = self.items(protocol, signal);
        counters.received.fetch_add(count, Ordering::Relaxed);
        counters.invalid.fetch_add(count, Ordering::Relaxed);
    }

    /// The valid items of a decoded request and whether the store took them.
    pub fn appended(&self, protocol: Protocol, signal: Signal, count: u64, stored: bool) {
        let counters = self.items(protocol, signal);
        counters.received.fetch_add(count, Ordering::Relaxed);
        let counter = if stored {
            &counters.accepted
        } else {
            &counters.refused
        };
        counter.fetch_add(count, Ordering::Relaxed);
    }

    /// A batch answered with a retry delay because the store was behind.
    pub fn overloaded(&self, protocol: Protocol) {
        self.overloaded[protocol as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn request_histogram(&self, listener: &'static str, endpoint: &str) -> Arc<DurationHistogram> {
        let key = (listener, endpoint.to_owned());
        if let Some(histogram) = read(&self.requests).get(&key) {
            return histogram.clone();
        }
        let mut requests = self.requests.write().unwrap_or_else(|e| e.into_inner());
        requests.entry(key).or_default().clone()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// What a scrape reads besides the counters.
#[derive(Clone)]
pub struct Sources {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub errors: Arc<dyn Fn() -> ErrorFigures + Send + Sync>,
}

/// The `/metrics` route, to merge into the HTTP listener.
pub fn router(sources: Sources) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(sources)
}

async fn scrape(axum::extract::State(sources): axum::extract::State<Sources>) -> impl IntoResponse {
    let body = render(&sources);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
}

/// The exposition text of every metric.
pub fn render(sources: &Sources) -> String {
    let metrics = &sources.metrics;
    let mut out = Exposition::default();
    type Field = fn(&ItemCounters) -> &AtomicU64;
    let item_metrics: [(&str, &str, Field); 3] = [
        (
            "ashiato_ingest_received_total",
            "Spans or log records in decoded requests, valid or not.",
            |c| &c.received,
        ),
        (
            "ashiato_ingest_accepted_total",
            "Spans or log records stored and acknowledged.",
            |c| &c.accepted,
        ),
        (
            "ashiato_ingest_rejected_total",
            "Spans or log records not stored: invalid items rejected alone (reason=invalid), items of batches the store refused and the client must resend (reason=refused).",
            |c| &c.invalid,
        ),
    ];
    for (name, help, field) in item_metrics {
        out.header(name, help, "counter");
        for protocol in Protocol::ALL {
            for signal in Signal::ALL {
                let counters = metrics.items(protocol, signal);
                let labels = format!(
                    "protocol=\"{}\",signal=\"{}\"",
                    protocol.label(),
                    signal.label()
                );
                if name == "ashiato_ingest_rejected_total" {
                    out.sample(
                        name,
                        &format!("{labels},reason=\"invalid\""),
                        field(counters),
                    );
                    out.sample(
                        name,
                        &format!("{labels},reason=\"refused\""),
                        &counters.refused,
                    );
                } else {
                    out.sample(name, &labels, field(counters));
                }
            }
        }
    }
    out.header(
        "ashiato_ingest_overloaded_total",
        "Ingest requests answered 503/429/UNAVAILABLE with a retry delay because the store was behind.",
        "counter",
    );
    for protocol in Protocol::ALL {
        let labels = format!("protocol=\"{}\"", protocol.label());
        out.sample(
            "ashiato_ingest_overloaded_total",
            &labels,
            &metrics.overloaded[protocol as usize],
        );
    }

    let name = "ashiato_http_request_duration_seconds";
    out.header(
        name,
        "Time to answer a request (until the response head), per listener and route; the query API's routes are the query latencies.",
        "histogram",
    );
    let mut requests: Vec<_> = read(&metrics.requests)
        .iter()
        .map(|(key, histogram)| (key.clone(), histogram.snapshot()))
        .collect();
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    for ((listener, endpoint), snapshot) in requests {
        let labels = format!(
            "listener=\"{listener}\",endpoint=\"{}\"",
            escape_label(&endpoint)
        );
        out.histogram(name, &labels, &snapshot);
    }

    let timings = sources.store.timings();
    let name = "ashiato_wal_sync_duration_seconds";
    out.header(
        name,
        "One write-ahead log group commit: the write and fdatasync of every waiting batch.",
        "histogram",
    );
    out.histogram(name, "", &timings.wal_sync);
    let name = "ashiato_seal_duration_seconds";
    out.header(
        name,
        "Writing one sealed memtable to fsynced Parquet segments.",
        "histogram",
    );
    out.histogram(name, "", &timings.seal);

    let storage = sources.store.storage_stats();
    out.gauge(
        "ashiato_memtable_bytes",
        "Estimated memory of the rows not yet sealed (also in the write-ahead log).",
        storage.memtable_bytes,
    );
    out.header(
        "ashiato_segments",
        "Sealed Parquet segments on disk.",
        "gauge",
    );
    out.value(
        "ashiato_segments",
        "signal=\"spans\"",
        storage.span_segments as u64,
    );
    out.value(
        "ashiato_segments",
        "signal=\"logs\"",
        storage.log_segments as u64,
    );
    out.header(
        "ashiato_segment_bytes",
        "Bytes of sealed Parquet segments on disk.",
        "gauge",
    );
    out.value(
        "ashiato_segment_bytes",
        "signal=\"spans\"",
        storage.span_segment_bytes,
    );
    out.value(
        "ashiato_segment_bytes",
        "signal=\"logs\"",
        storage.log_segment_bytes,
    );

    let errors = (sources.errors)();
    out.gauge(
        "ashiato_error_tracker_pending_traces",
        "Traces with error candidates waiting for their settle window before they are counted.",
        errors.pending_traces,
    );
    let notifications = errors.notifications;
    out.gauge(
        "ashiato_notification_queue_depth",
        "Webhook deliveries pending or waiting for a retry in the outbox.",
        notifications.queued,
    );
    out.gauge(
        "ashiato_notification_held_events",
        "Issue events held in the outbox for the next storm digest.",
        notifications.held,
    );
    out.counter(
        "ashiato_notifications_failed_total",
        "Webhook deliveries that failed for good (backoff exhausted or webhook no longer configured) since the start.",
        notifications.failed,
    );
    out.counter(
        "ashiato_notification_overflow_total",
        "Issue events the notification queue had no room for since the start (held for the storm digest instead).",
        notifications.overflowed,
    );
    out.text
}

/// Label values are route patterns; escape them anyway.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, counter: &AtomicU64) {
        self.value(name, labels, counter.load(Ordering::Relaxed));
    }

    fn value(&mut self, name: &str, labels: &str, value: u64) {
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "gauge");
        self.value(name, "", value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        self.value(name, "", value);
    }

    fn histogram(&mut self, name: &str, labels: &str, snapshot: &HistogramSnapshot) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        let bounds = BUCKET_BOUNDS_SECONDS.iter().map(|bound| bound.to_string());
        for (bound, count) in bounds
            .chain(std::iter::once("+Inf".to_owned()))
            .zip(&snapshot.buckets)
        {
            cumulative += count;
            let _ = writeln!(
                self.text,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(self.text, "{name}_sum{braces} {}", snapshot.sum_seconds);
        let _ = writeln!(self.text, "{name}_count{braces} {cumulative}");
    }
}

/// A tower layer timing every request of a listener into
/// `ashiato_http_request_duration_seconds`. On an axum router
/// (`Router::layer`, which wraps each route) the endpoint is the matched
/// route pattern; on the gRPC listener it is the method path when it is one
/// of the OTLP services'. Anything else counts as `unmatched`, so clients
/// cannot grow the label set.
#[derive(Clone)]
pub struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl RequestMetricsLayer {
    pub fn new(metrics: Arc<Metrics>, listener: &'static str) -> RequestMetricsLayer {
        RequestMetricsLayer { metrics, listener }
    }
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    layer: RequestMetricsLayer,
}

/// The label of a request's endpoint (see [`RequestMetricsLayer`]).
fn endpoint<B>(request: &Request<B>) -> String {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return matched.as_str().to_owned();
    }
    let path = request.uri().path();
    let otlp_rpc = path.starts_with("/opentelemetry.proto.collector.")
        && path.ends_with("/Export")
        && path.len() < 100;
    if otlp_rpc {
        path.to_owned()
    } else {
        "unmatched".to_owned()
    }
}

impl<S, B, R> tower::Service<Request<B>> for RequestMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let histogram = self
            .layer
            .metrics
            .request_histogram(self.layer.listener, &endpoint(&request));
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            histogram.record(started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_histogram_exposition_is_cumulative_and_ends_with_inf() {
        let histogram = DurationHistogram::default();
        histogram.record(std::time::Duration::from_millis(3));
        histogram.record(std::time::Duration::from_secs(100));
        let mut out = Exposition::default();
        out.histogram("h", "listener=\"http\"", &histogram.snapshot());
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(lines.len(), BUCKET_BOUNDS_SECONDS.len() + 3);
        assert_eq!(lines[0], "h_bucket{listener=\"http\",le=\"0.0005\"} 0");
        assert!(lines.contains(&"h_bucket{listener=\"http\",le=\"0.005\"} 1"));
        assert!(lines.contains(&"h_bucket{listener=\"http\",le=\"60\"} 1"));
        assert!(lines.contains(&"h_bucket{listener=\"http\",le=\"+Inf\"} 2"));
        assert!(lines.contains(&"h_count{listener=\"http\"} 2"));
    }

    #[test]
    fn test_item_counters_are_kept_per_protocol_and_signal() {
        let metrics = Metrics::default();
        metrics.invalid(Protocol::Datadog, Signal::Logs, 2);
        metrics.appended(Protocol::Datadog, Signal::Logs, 5, true);
        metrics.appended(Protocol::OtlpGrpc, Signal::Spans, 7, false);
        let logs = metrics.items(Protocol::Datadog, Signal::Logs);
        assert_eq!(logs.received.load(Ordering::Relaxed), 7);
        assert_eq!(logs.invalid.load(Ordering::Relaxed), 2);
        assert_eq!(logs.accepted.load(Ordering::Relaxed), 5);
        let spans = metrics.items(Protocol::OtlpGrpc, Signal::Spans);
        assert_eq!(spans.refused.load(Ordering::Relaxed), 7);
        assert_eq!(spans.received.load(Ordering::Relaxed), 7);
        let other = metrics.items(Protocol::Datadog, Signal::Spans);
        assert_eq!(other.received.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn test_endpoint_labels_never_come_from_arbitrary_paths() {
        let cases = [
            (
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            ("/random/path/123", "unmatched"),
            ("/opentelemetry.proto.collector.x/Other", "unmatched"),
        ];
        for (path, expected) in cases {
            let request = Request::builder().uri(path).body(()).unwrap();
            assert_eq!(endpoint(&request), expected, "{path}");
        }
    }
}
