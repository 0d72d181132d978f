//! Spans and what they carry: resource, scope, events, links and status.

use std::sync::Arc;

use crate::{Attributes, KeyValue, SpanId, TraceId, UNKNOWN_SERVICE, attr_str};

/// The entity that produced telemetry (a service instance). Shared by every
/// span of one export batch through an `Arc`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    attributes: Attributes,
    service_name: String,
}

impl Resource {
    /// Builds a resource; `service.name` is looked up once here because every
    /// query filters on it.
    pub fn new(attributes: Attributes) -> Resource {
        let service_name = attr_str(&attributes, "service.name")
            .filter(|name| !name.is_empty())
            .unwrap_or(UNKNOWN_SERVICE)
            .to_owned();
        Resource {
            attributes,
            service_name,
        }
    }

    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    pub fn service_name(&self) -> &str {
        &self.service_name
    }
}

/// The instrumentation library that recorded the telemetry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number; unknown numbers read as unspecified.
    pub fn from_otlp(value: i32) -> SpanKind {
        match value {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    pub fn parse(text: &str) -> Option<SpanKind> {
        Some(match text.to_ascii_lowercase().as_str() {
            "unspecified" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// From the OTLP enum number; unknown numbers read as unset.
    pub fn from_otlp(value: i32) -> StatusCode {
        match value {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

/// A timestamped annotation on a span (`exception` events among them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Attributes,
}

/// A reference from a span to a span of another (or the same) trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Attributes,
    pub flags: u32,
}

/// One span, with its resource and scope attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    /// OTLP span flags (low 8 bits: W3C trace flags; bits 8-9: remote parent).
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub status: Status,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// End minus start; zero when a client sent an end before the start.
    pub fn duration_ns(&self) -> u64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano)
    }

    pub fn is_error(&self) -> bool {
        self.status.code == StatusCode::Error
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
}
