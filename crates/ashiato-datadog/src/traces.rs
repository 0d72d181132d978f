//! Trace payloads (`/v0.3`, `/v0.4`, `/v0.5/traces`) → [`RawSpan`] chunks.
//!
//! Decoding happens in two steps. The body is parsed into a generic value
//! tree first (MessagePack, or JSON for v0.3): a body that is not
//! well-formed at that level is a [`TraceDecodeError`] (HTTP 400). Then each
//! trace chunk and span is read leniently: nil, `str`/`bin`, any integer
//! width, signed ids, int or float metrics, missing and unknown keys are all
//! fine; a span that still makes no sense (not a map, zero ids) is skipped
//! and counted, so the valid rest of the payload is kept.

use crate::msgpack::{self, MsgpackError, Value};

/// The trace endpoint a payload came to; it fixes the body layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceVersion {
    /// `/v0.3/traces`: like v0.4, msgpack or JSON.
    V03,
    /// `/v0.4/traces`: array of chunks of span maps.
    V04,
    /// `/v0.5/traces`: `[string table, chunks of 12-element span arrays]`.
    V05,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Msgpack,
    Json,
}

impl BodyFormat {
    /// The format a `Content-Type` names. Like the agent, anything that is
    /// not msgpack is read as JSON (on v0.4/v0.5 the caller forces msgpack).
    pub fn from_content_type(value: &str) -> BodyFormat {
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/msgpack")
            || media.eq_ignore_ascii_case("application/x-msgpack")
        {
            BodyFormat::Msgpack
        } else {
            BodyFormat::Json
        }
    }
}

/// A body that cannot be decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum TraceDecodeError {
    #[error("invalid msgpack trace payload: {0}")]
    Msgpack(#[from] MsgpackError),
    #[error("invalid json trace payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("trace payload must be an array of traces, found {0}")]
    NotAnArray(&'static str),
    #[error("v0.5 payload must be [strings, traces]")]
    BadV05Envelope,
}

/// A metric value as it came: ints stay ints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// A span link before ids are validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawLink {
    pub trace_id_high: u64,
    pub trace_id: u64,
    pub span_id: u64,
    pub attributes: Vec<(String, String)>,
    pub tracestate: String,
    pub flags: u32,
}

/// A span event (native `span_events`), attributes already typed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: ashiato_model::Attributes,
}

/// One Datadog span as on the wire, lenient types resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawSpan {
    pub service: String,
    pub name: String,
    pub resource: String,
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_id: u64,
    pub start: i64,
    pub duration: i64,
    pub error: i64,
    pub meta: Vec<(String, String)>,
    pub metrics: Vec<(String, Number)>,
    pub span_type: String,
    pub links: Vec<RawLink>,
    pub events: Vec<RawEvent>,
}

/// The chunks of a payload plus how many span entries were unusable.
#[derive(Debug, Default)]
pub struct RawPayload {
    pub chunks: Vec<Vec<RawSpan>>,
    pub skipped: u64,
    /// Why the first unusable entry was skipped.
    pub first_skip: Option<&'static str>,
}

impl RawPayload {
    fn skip(&mut self, reason: &'static str) {
        self.skipped += 1;
        self.first_skip.get_or_insert(reason);
    }
}

const NOT_A_MAP: &str = "a span entry is not a map";

/// Parses a trace payload body into chunks of raw spans.
pub fn decode_raw(
    body: &[u8],
    version: TraceVersion,
    format: BodyFormat,
) -> Result<RawPayload, TraceDecodeError> {
    let format = match version {
        TraceVersion::V03 => format,
        TraceVersion::V04 | TraceVersion::V05 => BodyFormat::Msgpack,
    };
    // an empty body holds no traces; refusing it would only make Python
    // tracers retry it five times
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RawPayload::default());
    }
    match format {
        BodyFormat::Msgpack => {
            let root = msgpack::parse(body)?;
            match version {
                TraceVersion::V05 => v05_payload(&root),
                TraceVersion::V03 | TraceVersion::V04 => v04_payload(&root),
            }
        }
        BodyFormat::Json => {
            let json: serde_json::Value = serde_json::from_slice(body)?;
            let root = from_json(&json);
            v04_payload(&root)
        }
    }
}

fn kind_name(value: &Value<'_>) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Bool(_) => "a bool",
        Value::Uint(_) | Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext => "an extension",
    }
}

fn v04_payload(root: &Value<'_>) -> Result<RawPayload, TraceDecodeError> {
    let traces = match root {
        Value::Array(traces) => traces,
        // an empty body in JSON form (`null`) or nil is "no traces"
        Value::Nil => return Ok(RawPayload::default()),
        other => return Err(TraceDecodeError::NotAnArray(kind_name(other))),
    };
    let mut payload = RawPayload::default();
    for trace in traces {
        let mut chunk = Vec::new();
        for span in trace.items() {
            match span {
                // Go writes nil for nil spans
                Value::Nil => {}
                Value::Map(entries) => chunk.push(v04_span(entries)),
                _ => payload.skip(NOT_A_MAP),
            }
        }
        if !chunk.is_empty() {
            payload.chunks.push(chunk);
        }
    }
    Ok(payload)
}

fn v04_span(entries: &[(Value<'_>, Value<'_>)]) -> RawSpan {
    let mut span = RawSpan::default();
    for (key, value) in entries {
        let Value::Str(key) = key else { continue };
        match *key {
            b"service" => span.service = value.text(),
            b"name" => span.name = value.text(),
            b"resource" => span.resource = value.text(),
            b"trace_id" => span.trace_id = value.as_u64_lenient(),
            b"span_id" => span.span_id = value.as_u64_lenient(),
            b"parent_id" => span.parent_id = value.as_u64_lenient(),
            b"start" => span.start = value.as_i64().unwrap_or(-1),
            b"duration" => span.duration = value.as_i64().unwrap_or(0),
            b"error" => span.error = value.as_i64().unwrap_or(1),
            b"meta" => span.meta = string_map(value, |v| v.text()),
            b"metrics" => span.metrics = metric_map(value),
            b"type" => span.span_type = value.text(),
            b"span_links" => span.links = value.items().iter().map(native_link).collect(),
            b"span_events" => span.events = value.items().iter().map(native_event).collect(),
            // meta_struct holds separately encoded blobs (AppSec, stacks)
            // ashiato does not use; unknown keys are skipped like the agent does
            _ => {}
        }
    }
    span
}

fn string_map(value: &Value<'_>, text: impl Fn(&Value<'_>) -> String) -> Vec<(String, String)> {
    value
        .entries()
        .iter()
        .map(|(key, value)| (text(key), text(value)))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

fn metric_map(value: &Value<'_>) -> Vec<(String, Number)> {
    value
        .entries()
        .iter()
        .filter_map(|(key, value)| {
            let number = match *value {
                Value::Uint(value) => match i64::try_from(value) {
                    Ok(value) => Number::Int(value),
                    Err(_) => Number::Float(value as f64),
                },
                Value::Int(value) => Number::Int(value),
                Value::Float(value) => Number::Float(value),
                _ => return None,
            };
            Some((key.text(), number))
        })
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

fn native_link(value: &Value<'_>) -> RawLink {
    let mut link = RawLink::default();
    for (key, value) in value.entries() {
        let Value::Str(key) = key else { continue };
        match *key {
            b"trace_id" => link.trace_id = value.as_u64_lenient(),
            b"trace_id_high" => link.trace_id_high = value.as_u64_lenient(),
            b"span_id" => link.span_id = value.as_u64_lenient(),
            b"attributes" => link.attributes = string_map(value, |v| v.text()),
            b"tracestate" => link.tracestate = value.text(),
            // bit 31 only says "flags were set"
            b"flags" => link.flags = (value.as_u64_lenient() as u32) & 0x7fff_ffff,
            _ => {}
        }
    }
    link
}

fn native_event(value: &Value<'_>) -> RawEvent {
    let mut event = RawEvent::default();
    for (key, value) in value.entries() {
        let Value::Str(key) = key else { continue };
        match *key {
            b"name" => event.name = value.text(),
            b"time_unix_nano" => event.time_unix_nano = value.as_u64_lenient(),
            b"attributes" => {
                event.attributes = value
                    .entries()
                    .iter()
                    .map(|(key, value)| {
                        ashiato_model::KeyValue::new(key.text(), native_any_value(value))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    event
}

/// `AttributeAnyValue`: `{type, string_value | bool_value | int_value |
/// double_value | array_value{values}}`.
fn native_any_value(value: &Value<'_>) -> ashiato_model::AttrValue {
    use ashiato_model::AttrValue;
    let field = |name: &[u8]| {
        value
            .entries()
            .iter()
            .find(|(key, _)| matches!(key, Value::Str(k) if *k == name))
            .map(|(_, value)| value)
    };
    let kind = field(b"type").map_or(0, Value::as_u64_lenient);
    match kind {
        1 => AttrValue::Bool(matches!(field(b"bool_value"), Some(Value::Bool(true)))),
        2 => AttrValue::Int(field(b"int_value").and_then(Value::as_i64).unwrap_or(0)),
        3 => AttrValue::Float(
            field(b"double_value")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        ),
        4 => {
            let values = field(b"array_value")
                .and_then(|array| {
                    array
                        .entries()
                        .iter()
                        .find(|(key, _)| matches!(key, Value::Str(b"values")))
                })
                .map(|(_, values)| values.items().iter().map(native_any_value).collect())
                .unwrap_or_default();
            AttrValue::Array(values)
        }
        _ => AttrValue::Str(field(b"string_value").map(Value::text).unwrap_or_default()),
    }
}

fn v05_payload(root: &Value<'_>) -> Result<RawPayload, TraceDecodeError> {
    let [strings, traces] = root.items() else {
        return Err(TraceDecodeError::BadV05Envelope);
    };
    let Value::Array(strings) = strings else {
        return Err(TraceDecodeError::BadV05Envelope);
    };
    let table: Vec<Value<'_>> = strings
        .iter()
        .map(|value| match value {
            Value::Str(_) => value.clone(),
            _ => Value::Str(b""),
        })
        .collect();
    let traces = match traces {
        Value::Array(traces) => traces,
        Value::Nil => return Ok(RawPayload::default()),
        _ => return Err(TraceDecodeError::BadV05Envelope),
    };
    let mut payload = RawPayload::default();
    for trace in traces {
        let mut chunk = Vec::new();
        for span in trace.items() {
            match span {
                Value::Nil => {}
                Value::Array(fields) => match v05_span(fields, &table) {
                    Some(span) => chunk.push(span),
                    None => payload.skip("a v0.5 span has a bad field count or string index"),
                },
                _ => payload.skip("a v0.5 span entry is not an array"),
            }
        }
        if !chunk.is_empty() {
            payload.chunks.push(chunk);
        }
    }
    Ok(payload)
}

/// A 12-element v0.5 span; `None` when its shape or a string index is wrong.
fn v05_span(fields: &[Value<'_>], table: &[Value<'_>]) -> Option<RawSpan> {
    let [
        service,
        name,
        resource,
        trace_id,
        span_id,
        parent_id,
        start,
        duration,
        error,
        meta,
        metrics,
        span_type,
    ] = fields
    else {
        return None;
    };
    let lookup = |value: &Value<'_>| -> Option<String> {
        let index = usize::try_from(value.as_u64_lenient()).ok()?;
        table.get(index).map(Value::text)
    };
    // an out-of-range index makes the span unusable (the agent rejects it)
    let mut meta_pairs = Vec::new();
    for (key, value) in meta.entries() {
        meta_pairs.push((lookup(key)?, lookup(value)?));
    }
    let mut metric_pairs = Vec::new();
    for (key, value) in metrics.entries() {
        let key = lookup(key)?;
        let number = match value {
            Value::Uint(value) => Number::Int(i64::try_from(*value).unwrap_or(i64::MAX)),
            Value::Int(value) => Number::Int(*value),
            Value::Float(value) => Number::Float(*value),
            _ => continue,
        };
        metric_pairs.push((key, number));
    }
    Some(RawSpan {
        service: lookup(service)?,
        name: lookup(name)?,
        resource: lookup(resource)?,
        trace_id: trace_id.as_u64_lenient(),
        span_id: span_id.as_u64_lenient(),
        parent_id: parent_id.as_u64_lenient(),
        start: start.as_i64().unwrap_or(-1),
        duration: duration.as_i64().unwrap_or(0),
        error: error.as_i64().unwrap_or(1),
        meta: meta_pairs
            .into_iter()
            .filter(|(k, _)| !k.is_empty())
            .collect(),
        metrics: metric_pairs,
        span_type: lookup(span_type)?,
        links: Vec::new(),
        events: Vec::new(),
    })
}

/// A JSON document as a value tree borrowing its strings.
fn from_json(json: &serde_json::Value) -> Value<'_> {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(value) => Value::Bool(*value),
        serde_json::Value::Number(number) => {
            if let Some(value) = number.as_u64() {
                Value::Uint(value)
            } else if let Some(value) = number.as_i64() {
                Value::Int(value)
            } else {
                Value::Float(number.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(text) => Value::Str(text.as_bytes()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(key, value)| (Value::Str(key.as_bytes()), from_json(value)))
                .collect(),
        ),
    }
}
