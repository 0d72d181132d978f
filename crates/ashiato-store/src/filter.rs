//! Predicates a reader pushes down to the store: `SpanFilter` for span
//! scans and trace search, `LogFilter` for log scans.
//!
//! The scan and prefilter modules test rows against them; `lib.rs` prunes
//! segments with their time range and service.

use ashiato_model::TraceId;

/// Predicates on single spans that the store may push down (segment pruning
/// by time and service; later column predicates). All set fields must hold.
#[derive(Debug, Clone, Default)]
pub struct SpanFilter {
    /// Span start time range, inclusive, unix nanos.
    pub start_min_ns: Option<u64>,
    pub start_max_ns: Option<u64>,
    /// `service.name` of the span's resource, exact.
    pub service: Option<String>,
    /// Span name, exact.
    pub name: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Only spans with status ERROR.
    pub error_only: bool,
    /// Span or resource attribute `key` whose value matches the text
    /// (`AttrValue::matches_text`); every pair must match.
    pub attributes: Vec<(String, String)>,
}

/// Predicates on log records. All set fields must hold.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub time_min_ns: Option<u64>,
    pub time_max_ns: Option<u64>,
    pub service: Option<String>,
    /// Minimum effective severity number (1..=24).
    pub min_severity_number: Option<u8>,
    pub trace_id: Option<TraceId>,
    /// Case-insensitive substring of the body text.
    pub body_contains: Option<String>,
}
