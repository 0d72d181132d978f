//! ashiato's compact binary codec for spans, logs and their parts.
//!
//! Used for WAL payloads (whole batches) and for the blob columns of Parquet
//! segments (attributes, events, links, resource, scope). Integers are LEB128
//! varints (signed ones zigzagged), strings and byte strings are
//! length-prefixed. A batch writes each distinct resource and scope once and
//! spans refer to them by index, mirroring the `Arc` sharing of the model.
//!
//! Decoding never trusts the input: every length is checked against the bytes
//! that remain, nesting depth is bounded, and failures are `CodecError`s,
//! never panics.

use std::collections::HashMap;
use std::sync::Arc;

use ashiato_model::{
    AttrValue, Event, KeyValue, Link, LogRecord, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};

/// Deepest nesting of arrays/maps accepted when decoding; far above what
/// OTLP decoders let through, low enough to never exhaust a thread's stack.
const MAX_DEPTH: usize = 256;

/// In a span segment's `attributes` blob, an entry with an empty key and
/// this tag stands for an attribute whose value is in a promoted column
/// (`promoted`); the varint after it is the column's index. No value has
/// this tag, so the pair never occurs in blobs of older segments.
pub const PROMOTED_TAG: u8 = 9;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unexpected end of input")]
    Truncated,
    #[error("varint is too long")]
    VarintOverflow,
    #[error("invalid utf-8 in string")]
    InvalidUtf8,
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    #[error("reference to missing {what} {index}")]
    BadIndex { what: &'static str, index: u64 },
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn u64(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub fn i64(&mut self, value: i64) {
        self.u64(((value << 1) ^ (value >> 63)) as u64);
    }

    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub fn raw(&mut self, value: &[u8]) {
        self.buf.extend_from_slice(value);
    }

    pub fn attrs(&mut self, attributes: &[KeyValue]) {
        self.u64(attributes.len() as u64);
        for kv in attributes {
            self.str(&kv.key);
            self.value(&kv.value);
        }
    }

    /// The stand-in for an attribute kept in promoted column `index`.
    pub fn promoted_placeholder(&mut self, index: usize) {
        self.u8(0);
        self.u8(PROMOTED_TAG);
        self.u64(index as u64);
    }

    pub fn value(&mut self, value: &AttrValue) {
        match value {
            AttrValue::Empty => self.u8(0),
            AttrValue::Str(text) => {
                self.u8(1);
                self.str(text);
            }
            AttrValue::Bool(false) => self.u8(2),
            AttrValue::Bool(true) => self.u8(3),
            AttrValue::Int(number) => {
                self.u8(4);
                self.i64(*number);
            }
            AttrValue::Float(number) => {
                self.u8(5);
                self.raw(&number.to_le_bytes());
            }
            AttrValue::Bytes(bytes) => {
                self.u8(6);
                self.bytes(bytes);
            }
            AttrValue::Array(values) => {
                self.u8(7);
                self.u64(values.len() as u64);
                for item in values {
                    self.value(item);
                }
            }
            AttrValue::Map(entries) => {
                self.u8(8);
                self.attrs(entries);
            }
        }
    }

    pub fn events(&mut self, events: &[Event]) {
        self.u64(events.len() as u64);
        for event in events {
            self.u64(event.time_unix_nano);
            self.str(&event.name);
            self.attrs(&event.attributes);
        }
    }

    pub fn links(&mut self, links: &[Link]) {
        self.u64(links.len() as u64);
        for link in links {
            self.raw(link.trace_id.as_bytes());
            self.raw(link.span_id.as_bytes());
            self.str(&link.trace_state);
            self.attrs(&link.attributes);
            self.u64(u64::from(link.flags));
        }
    }

    pub fn resource(&mut self, resource: &Resource) {
        self.attrs(resource.attributes());
    }

    pub fn scope(&mut self, scope: &Scope) {
        self.str(&scope.name);
        self.str(&scope.version);
        self.attrs(&scope.attributes);
    }

    fn optional_span_id(&mut self, id: Option<SpanId>) {
        match id {
            Some(id) => {
                self.u8(1);
                self.raw(id.as_bytes());
            }
            None => self.u8(0),
        }
    }

    fn optional_trace_id(&mut self, id: Option<TraceId>) {
        match id {
            Some(id) => {
                self.u8(1);
                self.raw(id.as_bytes());
            }
            None => self.u8(0),
        }
    }
}

/// Reads values back from a byte slice.
pub struct Decoder<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Decoder<'a> {
        Decoder { input, position: 0 }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    /// Fails unless every byte was consumed (catches framing mistakes).
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(CodecError::TrailingBytes(left)),
        }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], CodecError> {
        if count > self.remaining() {
            return Err(CodecError::Truncated);
        }
        let slice = &self.input[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::VarintOverflow)
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.u64()?).map_err(|_| CodecError::VarintOverflow)
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let raw = self.u64()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A count of items that each take at least one byte; bounding it by the
    /// remaining input keeps corrupt counts from allocating gigabytes.
    fn count(&mut self) -> Result<usize, CodecError> {
        let count = self.u64()?;
        if count > self.remaining() as u64 {
            return Err(CodecError::Truncated);
        }
        Ok(count as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let length = self.count()?;
        self.take(length)
    }

    pub fn string(&mut self) -> Result<String, CodecError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8)
    }

    pub fn attrs(&mut self) -> Result<Vec<KeyValue>, CodecError> {
        self.attrs_at(0)
    }

    fn attrs_at(&mut self, depth: usize) -> Result<Vec<KeyValue>, CodecError> {
        let count = self.count()?;
        let mut attributes = Vec::with_capacity(count);
        for _ in 0..count {
            let key = self.string()?;
            let value = self.value_at(depth)?;
            attributes.push(KeyValue { key, value });
        }
        Ok(attributes)
    }

    /// Attributes whose blob may hold promoted placeholders: `promoted`
    /// gets each placeholder's column index and returns the attribute it
    /// stands for, or `None` to leave it out.
    pub fn attrs_with(
        &mut self,
        mut promoted: impl FnMut(u64) -> Result<Option<KeyValue>, CodecError>,
    ) -> Result<Vec<KeyValue>, CodecError> {
        let count = self.count()?;
        let mut attributes = Vec::with_capacity(count);
        for _ in 0..count {
            let key = self.string()?;
            if key.is_empty() && self.input.get(self.position) == Some(&PROMOTED_TAG) {
                self.position += 1;
                let index = self.u64()?;
                attributes.extend(promoted(index)?);
                continue;
            }
            let value = self.value_at(0)?;
            attributes.push(KeyValue { key, value });
        }
        Ok(attributes)
    }

    pub fn value(&mut self) -> Result<AttrValue, CodecError> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<AttrValue, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        Ok(match self.u8()? {
            0 => AttrValue::Empty,
            1 => AttrValue::Str(self.string()?),
            2 => AttrValue::Bool(false),
            3 => AttrValue::Bool(true),
            4 => AttrValue::Int(self.i64()?),
            5 => AttrValue::Float(f64::from_le_bytes(self.array::<8>()?)),
            6 => AttrValue::Bytes(self.bytes()?.to_vec()),
            7 => {
                let count = self.count()?;
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value_at(depth + 1)?);
                }
                AttrValue::Array(values)
            }
            8 => AttrValue::Map(self.attrs_at(depth + 1)?),
            tag => return Err(CodecError::UnknownTag(tag)),
        })
    }

    pub fn events(&mut self) -> Result<Vec<Event>, CodecError> {
        let count = self.count()?;
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let time_unix_nano = self.u64()?;
            let name = self.string()?;
            let attributes = self.attrs()?;
            events.push(Event {
                time_unix_nano,
                name,
                attributes,
            });
        }
        Ok(events)
    }

    pub fn links(&mut self) -> Result<Vec<Link>, CodecError> {
        let count = self.count()?;
        let mut links = Vec::with_capacity(count);
        for _ in 0..count {
            let trace_id = TraceId(self.array::<16>()?);
            let span_id = SpanId(self.array::<8>()?);
            let trace_state = self.string()?;
            let attributes = self.attrs()?;
            let flags = self.u32()?;
            links.push(Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                flags,
            });
        }
        Ok(links)
    }

    pub fn resource(&mut self) -> Result<Resource, CodecError> {
        Ok(Resource::new(self.attrs()?))
    }

    pub fn scope(&mut self) -> Result<Scope, CodecError> {
        let name = self.string()?;
        let version = self.string()?;
        let attributes = self.attrs()?;
        Ok(Scope {
            name,
            version,
            attributes,
        })
    }

    fn optional_span_id(&mut self) -> Result<Option<SpanId>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(SpanId(self.array::<8>()?))),
            tag => Err(CodecError::UnknownTag(tag)),
        }
    }

    fn optional_trace_id(&mut self) -> Result<Option<TraceId>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(TraceId(self.array::<16>()?))),
            tag => Err(CodecError::UnknownTag(tag)),
        }
    }
}

pub fn kind_to_u8(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

pub fn kind_from_u8(value: u8) -> SpanKind {
    SpanKind::from_otlp(i32::from(value))
}

pub fn status_to_u8(code: StatusCode) -> u8 {
    match code {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

pub fn status_from_u8(value: u8) -> StatusCode {
    StatusCode::from_otlp(i32::from(value))
}

/// The end time as a signed offset from the start, so a span whose end
/// precedes its start still round-trips exactly.
pub fn end_offset(start: u64, end: u64) -> i64 {
    end.wrapping_sub(start) as i64
}

pub fn end_from_offset(start: u64, offset: i64) -> u64 {
    start.wrapping_add(offset as u64)
}

/// Assigns each distinct (by pointer) shared value an index, in first-seen order.
struct Interner<'a, T> {
    index: HashMap<*const T, u64>,
    values: Vec<&'a T>,
}

impl<'a, T> Interner<'a, T> {
    fn new() -> Self {
        Interner {
            index: HashMap::new(),
            values: Vec::new(),
        }
    }

    fn intern(&mut self, value: &'a Arc<T>) -> u64 {
        let next = self.values.len() as u64;
        *self.index.entry(Arc::as_ptr(value)).or_insert_with(|| {
            self.values.push(value.as_ref());
            next
        })
    }
}

/// Encodes a batch of spans: resources, scopes, then spans referring to them.
pub fn encode_spans(spans: &[Span], out: &mut Encoder) {
    let mut resources = Interner::new();
    let mut scopes = Interner::new();
    let refs: Vec<(u64, u64)> = spans
        .iter()
        .map(|span| (resources.intern(&span.resource), scopes.intern(&span.scope)))
        .collect();
    out.u64(resources.values.len() as u64);
    for resource in &resources.values {
        out.resource(resource);
    }
    out.u64(scopes.values.len() as u64);
    for scope in &scopes.values {
        out.scope(scope);
    }
    out.u64(spans.len() as u64);
    for (span, (resource, scope)) in spans.iter().zip(refs) {
        out.u64(resource);
        out.u64(scope);
        out.raw(span.trace_id.as_bytes());
        out.raw(span.span_id.as_bytes());
        out.optional_span_id(span.parent_span_id);
        out.str(&span.trace_state);
        out.u64(u64::from(span.flags));
        out.str(&span.name);
        out.u8(kind_to_u8(span.kind));
        out.u64(span.start_time_unix_nano);
        out.i64(end_offset(
            span.start_time_unix_nano,
            span.end_time_unix_nano,
        ));
        out.attrs(&span.attributes);
        out.events(&span.events);
        out.links(&span.links);
        out.u8(status_to_u8(span.status.code));
        out.str(&span.status.message);
    }
}

fn decode_shared<'a, T>(
    decoder: &mut Decoder<'a>,
    read: impl Fn(&mut Decoder<'a>) -> Result<T, CodecError>,
) -> Result<Vec<Arc<T>>, CodecError> {
    let count = decoder.count()?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(Arc::new(read(decoder)?));
    }
    Ok(values)
}

fn pick<T>(shared: &[Arc<T>], index: u64, what: &'static str) -> Result<Arc<T>, CodecError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| shared.get(i))
        .cloned()
        .ok_or(CodecError::BadIndex { what, index })
}

/// Decodes what `encode_spans` wrote; the whole input must be one batch.
pub fn decode_spans(input: &[u8]) -> Result<Vec<Span>, CodecError> {
    let mut decoder = Decoder::new(input);
    let resources = decode_shared(&mut decoder, Decoder::resource)?;
    let scopes = decode_shared(&mut decoder, Decoder::scope)?;
    let count = decoder.count()?;
    let mut spans = Vec::with_capacity(count);
    for _ in 0..count {
        let resource = pick(&resources, decoder.u64()?, "resource")?;
        let scope = pick(&scopes, decoder.u64()?, "scope")?;
        let trace_id = TraceId(decoder.array::<16>()?);
        let span_id = SpanId(decoder.array::<8>()?);
        let parent_span_id = decoder.optional_span_id()?;
        let trace_state = decoder.string()?;
        let flags = decoder.u32()?;
        let name = decoder.string()?;
        let kind = kind_from_u8(decoder.u8()?);
        let start_time_unix_nano = decoder.u64()?;
        let end_time_unix_nano = end_from_offset(start_time_unix_nano, decoder.i64()?);
        let attributes = decoder.attrs()?;
        let events = decoder.events()?;
        let links = decoder.links()?;
        let code = status_from_u8(decoder.u8()?);
        let message = decoder.string()?;
        spans.push(Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            events,
            links,
            status: Status { code, message },
            resource,
            scope,
        });
    }
    decoder.finish()?;
    Ok(spans)
}

/// Encodes a batch of log records, resources and scopes written once.
pub fn encode_logs(logs: &[LogRecord], out: &mut Encoder) {
    let mut resources = Interner::new();
    let mut scopes = Interner::new();
    let refs: Vec<(u64, u64)> = logs
        .iter()
        .map(|log| (resources.intern(&log.resource), scopes.intern(&log.scope)))
        .collect();
    out.u64(resources.values.len() as u64);
    for resource in &resources.values {
        out.resource(resource);
    }
    out.u64(scopes.values.len() as u64);
    for scope in &scopes.values {
        out.scope(scope);
    }
    out.u64(logs.len() as u64);
    for (log, (resource, scope)) in logs.iter().zip(refs) {
        out.u64(resource);
        out.u64(scope);
        out.u64(log.time_unix_nano);
        out.u64(log.observed_time_unix_nano);
        out.u8(log.severity_number);
        out.str(&log.severity_text);
        out.value(&log.body);
        out.attrs(&log.attributes);
        out.optional_trace_id(log.trace_id);
        out.optional_span_id(log.span_id);
        out.u64(u64::from(log.flags));
        out.str(&log.event_name);
    }
}

/// Decodes what `encode_logs` wrote; the whole input must be one batch.
pub fn decode_logs(input: &[u8]) -> Result<Vec<LogRecord>, CodecError> {
    let mut decoder = Decoder::new(input);
    let resources = decode_shared(&mut decoder, Decoder::resource)?;
    let scopes = decode_shared(&mut decoder, Decoder::scope)?;
    let count = decoder.count()?;
    let mut logs = Vec::with_capacity(count);
    for _ in 0..count {
        let resource = pick(&resources, decoder.u64()?, "resource")?;
        let scope = pick(&scopes, decoder.u64()?, "scope")?;
        logs.push(LogRecord {
            time_unix_nano: decoder.u64()?,
            observed_time_unix_nano: decoder.u64()?,
            severity_number: decoder.u8()?,
            severity_text: decoder.string()?,
            body: decoder.value()?,
            attributes: decoder.attrs()?,
            trace_id: decoder.optional_trace_id()?,
            span_id: decoder.optional_span_id()?,
            flags: decoder.u32()?,
            event_name: decoder.string()?,
            resource,
            scope,
        });
    }
    decoder.finish()?;
    Ok(logs)
}

/// Encodes one part on its own (for Parquet blob columns).
pub fn blob(write: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut encoder = Encoder::default();
    write(&mut encoder);
    encoder.buf
}

/// Decodes one part that fills the whole blob.
pub fn unblob<'a, T>(
    input: &'a [u8],
    read: impl FnOnce(&mut Decoder<'a>) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    let mut decoder = Decoder::new(input);
    let value = read(&mut decoder)?;
    decoder.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("empty", AttrValue::Empty),
            KeyValue::new("str", AttrValue::Str("在庫レベルが低い".into())),
            KeyValue::new("yes", AttrValue::Bool(true)),
            KeyValue::new("no", AttrValue::Bool(false)),
            KeyValue::new("int", AttrValue::Int(-42)),
            KeyValue::new("max", AttrValue::Int(i64::MAX)),
            KeyValue::new("float", AttrValue::Float(99.99)),
            KeyValue::new("bytes", AttrValue::Bytes(vec![0, 1, 255])),
            KeyValue::new(
                "array",
                AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("two".into())]),
            ),
            KeyValue::new(
                "map",
                AttrValue::Map(vec![KeyValue::new(
                    "nested",
                    AttrValue::Map(vec![KeyValue::new("deep", AttrValue::Float(-0.5))]),
                )]),
            ),
        ]
    }

    fn sample_spans() -> Vec<Span> {
        let resource = Arc::new(Resource::new(vec![KeyValue::new(
            "service.name",
            AttrValue::Str("checkout".into()),
        )]));
        let other = Arc::new(Resource::new(vec![]));
        let scope = Arc::new(Scope {
            name: "lib".into(),
            version: "1.0".into(),
            attributes: every_value(),
        });
        let span = Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([1; 8]),
            parent_span_id: Some(SpanId([2; 8])),
            trace_state: "k=v".into(),
            flags: 0x301,
            name: "注文作成".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 500,
            attributes: every_value(),
            events: vec![Event {
                time_unix_nano: 1_200,
                name: "e".into(),
                attributes: every_value(),
            }],
            links: vec![Link {
                trace_id: TraceId([9; 16]),
                span_id: SpanId([8; 8]),
                trace_state: "a=b".into(),
                attributes: every_value(),
                flags: 1,
            }],
            status: Status {
                code: StatusCode::Error,
                message: "残高不足".into(),
            },
            resource: resource.clone(),
            scope: scope.clone(),
        };
        let mut second = span.clone();
        second.parent_span_id = None;
        second.resource = other;
        second.end_time_unix_nano = u64::MAX;
        vec![span.clone(), second, span]
    }

    #[test]
    fn test_span_batch_round_trips() {
        let spans = sample_spans();
        let mut encoder = Encoder::default();
        encode_spans(&spans, &mut encoder);
        let decoded = decode_spans(&encoder.buf).unwrap();
        assert_eq!(decoded, spans);
        assert!(Arc::ptr_eq(&decoded[0].resource, &decoded[2].resource));
    }

    #[test]
    fn test_log_batch_round_trips() {
        let resource = Arc::new(Resource::new(vec![]));
        let scope = Arc::new(Scope::default());
        let log = LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: AttrValue::Map(every_value()),
            attributes: every_value(),
            trace_id: Some(TraceId([3; 16])),
            span_id: None,
            flags: 1,
            event_name: "ev".into(),
            resource,
            scope,
        };
        let logs = vec![
            log.clone(),
            LogRecord {
                trace_id: None,
                span_id: Some(SpanId([4; 8])),
                ..log
            },
        ];
        let mut encoder = Encoder::default();
        encode_logs(&logs, &mut encoder);
        assert_eq!(decode_logs(&encoder.buf).unwrap(), logs);
    }

    /// A small deterministic generator so the fuzz-like tests repeat exactly.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn test_corrupt_input_never_panics() {
        let mut encoder = Encoder::default();
        encode_spans(&sample_spans(), &mut encoder);
        let valid = encoder.buf;
        let mut rng = XorShift(0x9e3779b97f4a7c15);
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..(rng.next() % 4 + 1) {
                let index = (rng.next() as usize) % bytes.len();
                bytes[index] ^= 1 << (rng.next() % 8);
            }
            let cut = (rng.next() as usize) % (bytes.len() + 1);
            let _ = decode_spans(&bytes);
            let _ = decode_spans(&bytes[..cut]);
            let _ = decode_logs(&bytes[..cut]);
        }
        for length in 0..64 {
            let noise: Vec<u8> = (0..length * 7).map(|_| rng.next() as u8).collect();
            let _ = decode_spans(&noise);
            let _ = decode_logs(&noise);
        }
    }

    #[test]
    fn test_deep_nesting_is_refused_not_overflowed() {
        let mut bytes = [7u8, 1].repeat(100_000);
        bytes.push(0);
        assert_eq!(Decoder::new(&bytes).value(), Err(CodecError::TooDeep));
    }

    #[test]
    fn test_huge_counts_do_not_allocate() {
        let mut encoder = Encoder::default();
        encoder.u64(0);
        encoder.u64(0);
        encoder.u64(u64::MAX / 2);
        assert_eq!(decode_spans(&encoder.buf), Err(CodecError::Truncated));
    }
}
