//! Raw Datadog spans → `ashiato_model::Span`: the mapping documented in the
//! crate docs (names, 128-bit ids, kinds, typed attributes, errors, links
//! and events).

use std::collections::HashMap;
use std::sync::Arc;

use ashiato_model::{
    AttrValue, Attributes, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};

use crate::traces::{Number, RawLink, RawSpan};

/// Where the high 64 bits of a chunk's trace id live.
pub const META_TRACE_ID_HIGH: &str = "_dd.p.tid";
/// Span links as JSON (v0.5 and dd-trace-js).
const META_SPAN_LINKS: &str = "_dd.span_links";
/// Span events as JSON (when native `span_events` are not used).
const META_EVENTS: &str = "events";

/// Floats with magnitude below this that have no fraction are stored as
/// ints: every integer up to 2^53 is exact in an f64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// What the request headers say about the tracer that sent a payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracerInfo {
    /// `Datadog-Meta-Lang` (`python`, `go`, `nodejs`…).
    pub language: String,
    /// `Datadog-Meta-Tracer-Version`.
    pub tracer_version: String,
}

/// Remembers the high 64 bits of recent trace ids by their low 64 bits.
///
/// Only the first span of each chunk carries `_dd.p.tid`; a tracer flushing
/// one trace in several payloads repeats it on every chunk root, but older
/// or other tracers may not. When a chunk has no `_dd.p.tid`, the cache
/// supplies the high bits seen earlier for the same low 64 bits, so a
/// partially flushed trace still assembles into one. Bounded: it is cleared
/// when full, and a miss only leaves the high half zero. Two live traces
/// sharing their low 64 bits would be confused; random ids make that
/// negligible.
#[derive(Debug)]
pub struct TraceIdHighCache {
    high_by_low: HashMap<u64, u64>,
    capacity: usize,
}

impl Default for TraceIdHighCache {
    fn default() -> TraceIdHighCache {
        TraceIdHighCache::with_capacity(65_536)
    }
}

impl TraceIdHighCache {
    pub fn with_capacity(capacity: usize) -> TraceIdHighCache {
        TraceIdHighCache {
            high_by_low: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn remember(&mut self, low: u64, high: u64) {
        if self.high_by_low.len() >= self.capacity && !self.high_by_low.contains_key(&low) {
            self.high_by_low.clear();
        }
        self.high_by_low.insert(low, high);
    }

    pub(crate) fn lookup(&self, low: u64) -> u64 {
        self.high_by_low.get(&low).copied().unwrap_or(0)
    }
}

/// Builds model spans from decoded chunks; shares resources per payload.
pub struct SpanMapper<'c> {
    scope: Arc<Scope>,
    language: String,
    resources: HashMap<(String, String, String), Arc<Resource>>,
    cache: &'c mut TraceIdHighCache,
}

impl<'c> SpanMapper<'c> {
    pub fn new(tracer: &TracerInfo, cache: &'c mut TraceIdHighCache) -> SpanMapper<'c> {
        SpanMapper {
            scope: Arc::new(Scope {
                name: "datadog".to_owned(),
                version: tracer.tracer_version.clone(),
                attributes: Vec::new(),
            }),
            language: tracer.language.clone(),
            resources: HashMap::new(),
            cache,
        }
    }

    /// Maps one chunk; spans with unusable ids or times are dropped and
    /// counted in the second value, the first one's reason in the third.
    pub fn chunk(&mut self, chunk: Vec<RawSpan>) -> (Vec<Span>, u64, Option<&'static str>) {
        let high = self.chunk_high_bits(&chunk);
        let mut spans = Vec::with_capacity(chunk.len());
        let mut rejected = 0;
        let mut first_reason = None;
        for raw in chunk {
            match self.span(raw, high) {
                Ok(span) => spans.push(span),
                Err(reason) => {
                    rejected += 1;
                    first_reason.get_or_insert(reason);
                }
            }
        }
        (spans, rejected, first_reason)
    }

    /// `_dd.p.tid` from any span of the chunk (the agent promotes it from
    /// wherever it is), else what the cache remembers for this trace.
    fn chunk_high_bits(&mut self, chunk: &[RawSpan]) -> u64 {
        let low = chunk.first().map_or(0, |span| span.trace_id);
        let tagged = chunk.iter().find_map(|span| {
            meta_value(&span.meta, META_TRACE_ID_HIGH)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        });
        match tagged {
            Some(high) => {
                self.cache.remember(low, high);
                high
            }
            None => self.cache.lookup(low),
        }
    }

    fn span(&mut self, raw: RawSpan, high: u64) -> Result<Span, &'static str> {
        if raw.trace_id == 0 && high == 0 {
            return Err("a span has trace_id 0");
        }
        let trace_id = TraceId::from_halves(high, raw.trace_id);
        let span_id = SpanId::from_u64(raw.span_id).ok_or("a span has span_id 0")?;
        let start = u64::try_from(raw.start).map_err(|_| "a span has a negative start")?;
        let end = start.saturating_add(u64::try_from(raw.duration).unwrap_or(0));
        let env = meta_value(&raw.meta, "env").unwrap_or_default().to_owned();
        let version = meta_value(&raw.meta, "version")
            .unwrap_or_default()
            .to_owned();
        let resource = self.resource(&raw.service, env, version);
        let kind = span_kind(&raw);
        let status = status(&raw);
        let links = links(&raw);
        let events = events(&raw);
        let name = if raw.resource.is_empty() {
            raw.name.clone()
        } else {
            raw.resource.clone()
        };
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id: SpanId::from_u64(raw.parent_id),
            trace_state: String::new(),
            flags: 0,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attributes(raw),
            events,
            links,
            status,
            resource,
            scope: self.scope.clone(),
        })
    }

    fn resource(&mut self, service: &str, env: String, version: String) -> Arc<Resource> {
        let key = (service.to_owned(), env, version);
        if let Some(resource) = self.resources.get(&key) {
            return resource.clone();
        }
        let mut attributes = vec![KeyValue::new("service.name", text(service))];
        if !key.1.is_empty() {
            attributes.push(KeyValue::new("deployment.environment.name", text(&key.1)));
        }
        if !key.2.is_empty() {
            attributes.push(KeyValue::new("service.version", text(&key.2)));
        }
        attributes.push(KeyValue::new("telemetry.sdk.name", text("datadog")));
        if !self.language.is_empty() {
            attributes.push(KeyValue::new(
                "telemetry.sdk.language",
                text(&self.language),
            ));
        }
        let resource = Arc::new(Resource::new(attributes));
        self.resources.insert(key, resource.clone());
        resource
    }
}

fn text(value: &str) -> AttrValue {
    AttrValue::Str(value.to_owned())
}

fn meta_value<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.as_str())
}

/// `meta["span.kind"]` when valid, else from the span type: `web` is a
/// server; `http`, `grpc` and the datastore types are clients; anything
/// else stays unspecified (Datadog has no way to say).
fn span_kind(raw: &RawSpan) -> SpanKind {
    if let Some(kind) = meta_value(&raw.meta, "span.kind").and_then(SpanKind::parse) {
        return kind;
    }
    match raw.span_type.as_str() {
        "web" => SpanKind::Server,
        "http" | "grpc" | "db" | "sql" | "cache" | "redis" | "memcached" | "mongodb"
        | "cassandra" | "elasticsearch" | "leveldb" | "aerospike" => SpanKind::Client,
        _ => SpanKind::Unspecified,
    }
}

fn status(raw: &RawSpan) -> Status {
    if raw.error == 0 {
        return Status::default();
    }
    let message = ["error.message", "error.msg", "error.type"]
        .iter()
        .find_map(|key| meta_value(&raw.meta, key).filter(|value| !value.is_empty()))
        .unwrap_or_default()
        .to_owned();
    Status {
        code: StatusCode::Error,
        message,
    }
}

/// Meta keys that became something else (ids, resource, kind, links,
/// events) and would only repeat it as attributes.
fn is_folded_meta(key: &str) -> bool {
    matches!(
        key,
        META_TRACE_ID_HIGH | META_SPAN_LINKS | META_EVENTS | "env" | "version" | "span.kind"
    )
}

fn attributes(raw: RawSpan) -> Attributes {
    let mut attributes = Vec::with_capacity(raw.meta.len() + raw.metrics.len() + 3);
    attributes.push(KeyValue::new("operation.name", AttrValue::Str(raw.name)));
    attributes.push(KeyValue::new("resource.name", AttrValue::Str(raw.resource)));
    if !raw.span_type.is_empty() {
        attributes.push(KeyValue::new("span.type", AttrValue::Str(raw.span_type)));
    }
    for (key, value) in raw.meta {
        if !is_folded_meta(&key) {
            attributes.push(KeyValue::new(key, AttrValue::Str(value)));
        }
    }
    for (key, number) in raw.metrics {
        attributes.push(KeyValue::new(key, metric_value(number)));
    }
    attributes
}

/// Datadog metrics are float64 on the wire even when the tracer was given
/// an int; integral values come back as ints so `custom.count=42` reads and
/// filters as 42, and real fractions stay floats.
fn metric_value(number: Number) -> AttrValue {
    match number {
        Number::Int(value) => AttrValue::Int(value),
        Number::Float(value) if value.fract() == 0.0 && value.abs() < MAX_EXACT_INT => {
            AttrValue::Int(value as i64)
        }
        Number::Float(value) => AttrValue::Float(value),
    }
}

fn links(raw: &RawSpan) -> Vec<Link> {
    let mut links: Vec<Link> = raw.links.iter().filter_map(native_link).collect();
    if let Some(json) = meta_value(&raw.meta, META_SPAN_LINKS) {
        links.extend(json_links(json));
    }
    links
}

fn native_link(raw: &RawLink) -> Option<Link> {
    if raw.trace_id == 0 && raw.trace_id_high == 0 {
        return None;
    }
    Some(Link {
        trace_id: TraceId::from_halves(raw.trace_id_high, raw.trace_id),
        span_id: SpanId::from_u64(raw.span_id)?,
        trace_state: raw.tracestate.clone(),
        attributes: raw
            .attributes
            .iter()
            .map(|(key, value)| KeyValue::new(key.clone(), text(value)))
            .collect(),
        flags: raw.flags,
    })
}

/// `_dd.span_links`: ids as hex strings (Python v0.5, JS) or decimal
/// numbers with an optional `trace_id_high` (older tracers). Malformed
/// JSON or entries are skipped: a link is never worth losing the span.
fn json_links(json: &str) -> Vec<Link> {
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    entries.iter().filter_map(json_link).collect()
}

fn json_link(entry: &serde_json::Value) -> Option<Link> {
    let trace_id = match entry.get("trace_id")? {
        serde_json::Value::String(hex) => TraceId::from_hex(hex).ok()?,
        serde_json::Value::Number(number) => {
            let high = entry
                .get("trace_id_high")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let low = number.as_u64()?;
            if high == 0 && low == 0 {
                return None;
            }
            TraceId::from_halves(high, low)
        }
        _ => return None,
    };
    let span_id = match entry.get("span_id")? {
        serde_json::Value::String(hex) => SpanId::from_hex(hex).ok()?,
        serde_json::Value::Number(number) => SpanId::from_u64(number.as_u64()?)?,
        _ => return None,
    };
    let attributes = entry
        .get("attributes")
        .and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(key, value)| KeyValue::new(key.clone(), json_attr(value)))
                .collect()
        })
        .unwrap_or_default();
    Some(Link {
        trace_id,
        span_id,
        trace_state: entry
            .get("tracestate")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        attributes,
        flags: entry
            .get("flags")
            .and_then(serde_json::Value::as_u64)
            .map_or(0, |flags| (flags as u32) & 0x7fff_ffff),
    })
}

fn events(raw: &RawSpan) -> Vec<Event> {
    let mut events: Vec<Event> = raw
        .events
        .iter()
        .map(|event| Event {
            time_unix_nano: event.time_unix_nano,
            name: event.name.clone(),
            attributes: event.attributes.clone(),
        })
        .collect();
    if let Some(json) = meta_value(&raw.meta, META_EVENTS) {
        events.extend(json_events(json));
    }
    events
}

/// `meta["events"]`: `[{"name", "time_unix_nano", "attributes": {…}}]`.
fn json_events(json: &str) -> Vec<Event> {
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let entry = entry.as_object()?;
            Some(Event {
                time_unix_nano: entry
                    .get("time_unix_nano")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
                name: entry
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                attributes: entry
                    .get("attributes")
                    .and_then(serde_json::Value::as_object)
                    .map(|map| {
                        map.iter()
                            .map(|(key, value)| KeyValue::new(key.clone(), json_attr(value)))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A JSON value as a typed attribute (objects flatten to their text).
pub(crate) fn json_attr(value: &serde_json::Value) -> AttrValue {
    match value {
        serde_json::Value::Null => AttrValue::Empty,
        serde_json::Value::Bool(value) => AttrValue::Bool(*value),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(value) => AttrValue::Int(value),
            None => AttrValue::Float(number.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(text) => AttrValue::Str(text.clone()),
        serde_json::Value::Array(items) => AttrValue::Array(items.iter().map(json_attr).collect()),
        serde_json::Value::Object(map) => AttrValue::Map(
            map.iter()
                .map(|(key, value)| KeyValue::new(key.clone(), json_attr(value)))
                .collect(),
        ),
    }
}
