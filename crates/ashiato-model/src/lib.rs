//! The domain model every other ashiato crate speaks: traces, spans, logs and
//! their ids.
//!
//! This crate does no IO and knows no wire format or storage layout. Protocol
//! decoders (`ashiato-otlp`, later Datadog) produce these types; the store
//! persists them; the query layer reads them back. Keeping it free of serde,
//! tokio and HTTP means a change of JSON shape or on-disk encoding never
//! ripples through the model.

mod attr;
mod ids;
mod log;
mod span;
mod time;

pub use attr::{AttrValue, Attributes, KeyValue, attr_get, attr_str};
pub use ids::{IdError, SpanId, TraceId};
pub use log::{LogRecord, Severity};
pub use span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
pub use time::{DurationParseError, format_duration_ns, parse_duration_ns};

/// Service name used when a resource carries no `service.name`, as the
/// OpenTelemetry SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
