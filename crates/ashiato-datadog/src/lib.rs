//! Datadog intake: what dd-trace libraries (Python, Go/Orchestrion, JS…)
//! and Datadog log shippers send, decoded into ashiato's model.
//!
//! - [`decode_traces`]: trace-agent payloads `/v0.3/traces` (msgpack or
//!   JSON), `/v0.4/traces` (msgpack), `/v0.5/traces` (msgpack with a string
//!   table) → [`ashiato_model::Span`]s.
//! - [`decode_logs`]: logs intake JSON (object or array) or text →
//!   [`ashiato_model::LogRecord`]s (mapping in the `logs` module docs).
//! - [`info_document`] and [`RATE_BY_SERVICE_REPLY`]: what the agent API
//!   answers.
//!
//! Like `ashiato-otlp`, this crate maps bytes to model values and knows no
//! HTTP server. Decoders never panic; each has a fuzz target in `fuzz/`.
//!
//! # Leniency
//!
//! A body that is not well-formed MessagePack/JSON, or not an array of
//! traces, is an error (HTTP 400); an empty body is simply no traces. Inside a well-formed body everything
//! real tracers produce is accepted: nil anywhere (nil spans are skipped),
//! `str` or `bin` strings (invalid UTF-8 repaired), any integer width,
//! negative ids reinterpreted as u64, int or float metrics, absent and
//! unknown keys. A span that is still unusable (not a map, zero span id,
//! negative start, bad v0.5 string index) is dropped and counted in
//! [`TraceBatch::rejected`]; the rest of the payload is kept.
//!
//! # Mapping (one model for OTLP and Datadog data)
//!
//! - **Trace id**: the 128-bit id is `_dd.p.tid` (16 hex, the high half, on
//!   the first span of a chunk) ‖ the 64-bit `trace_id`, applied to every
//!   span of the chunk. Chunks without `_dd.p.tid` take the high half last
//!   seen for the same low half from a bounded [`TraceIdHighCache`], so a
//!   partially flushed trace split over payloads assembles into one trace;
//!   otherwise the high half is zero. Because tracers continuing a W3C
//!   `traceparent` put its high half in `_dd.p.tid`, an OTel → Datadog call
//!   chain shares one trace id.
//! - **Name**: span name = the Datadog *resource* (`GET /users/:id`, the
//!   SQL text) when set, else the operation name: that is what reads like
//!   an OpenTelemetry span name. The operation name is kept as attribute
//!   `operation.name` and the resource as `resource.name`; the span type as
//!   `span.type`.
//! - **Service**: each span gets a resource with `service.name` = the span's
//!   service, `deployment.environment.name` = meta `env`, `service.version`
//!   = meta `version`, `telemetry.sdk.name` = `datadog` and
//!   `telemetry.sdk.language` = `Datadog-Meta-Lang`; resources are shared
//!   per distinct (service, env, version) within a payload. The scope is
//!   `datadog` with the tracer version. `_dd.base_service` (the tracer's own
//!   service when an integration overrides it) stays a span attribute:
//!   error tracking groups by it.
//! - **Kind**: meta `span.kind` (server/client/producer/consumer/internal);
//!   otherwise type `web` → server, `http`/`grpc`/`db`/`sql`/`cache` and the
//!   datastore types → client, anything else unspecified.
//! - **Attributes**: meta entries are string attributes, metrics are numbers:
//!   ints on the wire and integral floats (below 2^53) become ints, other
//!   floats stay floats (Datadog sends `set_metric(…, 42)` as 42.0). Meta
//!   folded elsewhere is not repeated: `_dd.p.tid`, `env`, `version`,
//!   `span.kind`, `_dd.span_links`, `events`.
//! - **Errors**: `error` ≠ 0 → status ERROR with message `error.message`,
//!   else `error.msg` (spans converted from OTLP), else `error.type`.
//!   `error.type`/`error.message`/`error.msg`/`error.stack` stay attributes
//!   verbatim for error tracking.
//! - **Links and events**: native `span_links` (decimal ids plus
//!   `trace_id_high`) and `span_events` (typed values), and their JSON forms
//!   in meta `_dd.span_links` (hex-string or decimal ids) and `events`.

mod info;
mod logs;
mod mapping;
mod msgpack;
mod time;
mod traces;

use ashiato_model::Span;

pub use info::{ENDPOINTS, RATE_BY_SERVICE_REPLY, V03_REPLY, info_document};
pub use logs::{LogDefaults, LogsDecodeError, LogsFormat, decode_logs};
pub use mapping::{META_TRACE_ID_HIGH, TraceIdHighCache, TracerInfo};
pub use msgpack::MsgpackError;
pub use traces::{BodyFormat, TraceDecodeError, TraceVersion};

/// Spans decoded from one trace payload.
#[derive(Debug, Default)]
pub struct TraceBatch {
    pub spans: Vec<Span>,
    /// Span entries dropped as unusable.
    pub rejected: u64,
    /// Why the first dropped entry was unusable (for the answer when
    /// nothing was usable).
    pub first_rejection: Option<&'static str>,
    /// Trace chunks in the payload (non-empty ones).
    pub chunks: u64,
}

/// Decodes one trace payload. `cache` carries trace-id high halves between
/// payloads (see the crate docs); pass the same one for a whole listener.
pub fn decode_traces(
    body: &[u8],
    version: TraceVersion,
    format: BodyFormat,
    tracer: &TracerInfo,
    cache: &mut TraceIdHighCache,
) -> Result<TraceBatch, TraceDecodeError> {
    let raw = traces::decode_raw(body, version, format)?;
    let mut batch = TraceBatch {
        rejected: raw.skipped,
        first_rejection: raw.first_skip,
        chunks: raw.chunks.len() as u64,
        ..TraceBatch::default()
    };
    let mut mapper = mapping::SpanMapper::new(tracer, cache);
    for chunk in raw.chunks {
        let (spans, rejected, reason) = mapper.chunk(chunk);
        batch.spans.extend(spans);
        batch.rejected += rejected;
        if let Some(reason) = reason {
            batch.first_rejection.get_or_insert(reason);
        }
    }
    Ok(batch)
}
