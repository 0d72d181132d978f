//! `Span` messages (with their events, links and status) → model spans.

use std::sync::Arc;

use ashiato_model::{
    Attributes, Event, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};

use super::Signal;
use super::reader::{Depth, Reader, Wire, as_i32};
use super::values::{Truncated, push_attribute};
use crate::convert::{Report, parent_id, span_problem};

/// Trace export requests.
pub(crate) struct Traces;

impl Signal for Traces {
    type Item = Span;

    fn item(
        reader: Reader<'_>,
        depth: Depth,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
        report: &mut Report,
        items: &mut Vec<Span>,
    ) -> Wire<()> {
        let parts = span_parts(reader, depth)?;
        match parts.into_span(resource, scope) {
            Ok((span, truncated, dropped_links)) => {
                report.add_truncated(truncated);
                report.add_dropped_links(dropped_links);
                items.push(span);
            }
            Err(reason) => report.reject(reason),
        }
        Ok(())
    }
}

/// A span's fields as read; scalars and strings last-wins, as in prost.
#[derive(Default)]
struct SpanParts<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: i32,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    attributes: Attributes,
    events: Vec<Event>,
    links: Vec<Link>,
    status_code: i32,
    status_message: &'a str,
    truncated: Truncated,
    dropped_links: u64,
}

fn span_parts(mut reader: Reader<'_>, depth: Depth) -> Wire<SpanParts<'_>> {
    let mut parts = SpanParts::default();
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => parts.trace_id = reader.bytes(wire_type)?,
            2 => parts.span_id = reader.bytes(wire_type)?,
            3 => parts.trace_state = reader.str(wire_type)?,
            4 => parts.parent_span_id = reader.bytes(wire_type)?,
            5 => parts.name = reader.str(wire_type)?,
            6 => parts.kind = as_i32(reader.varint_field(wire_type)?),
            7 => parts.start_time_unix_nano = reader.fixed64(wire_type)?,
            8 => parts.end_time_unix_nano = reader.fixed64(wire_type)?,
            9 => push_attribute(
                &mut reader,
                wire_type,
                depth,
                &mut parts.attributes,
                &mut parts.truncated,
            )?,
            10 | 12 | 14 => {
                reader.varint_field(wire_type)?;
            }
            11 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                parts
                    .events
                    .push(event(inner, depth, &mut parts.truncated)?);
            }
            13 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                match link(inner, depth)? {
                    Some((link, truncated)) => {
                        parts.links.push(link);
                        parts.truncated += truncated;
                    }
                    None => parts.dropped_links += 1,
                }
            }
            15 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                merge_status(inner, depth, &mut parts)?;
            }
            16 => parts.flags = reader.fixed32(wire_type)?,
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(parts)
}

impl SpanParts<'_> {
    /// The model span with the truncations and dropped links it carries, or
    /// why it is rejected (the checks and texts of `convert_span`).
    fn into_span(
        self,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> Result<(Span, Truncated, u64), String> {
        let trace_id = TraceId::from_bytes(self.trace_id)
            .map_err(|error| span_problem(self.name, "trace id", &error))?;
        let span_id = SpanId::from_bytes(self.span_id)
            .map_err(|error| span_problem(self.name, "span id", &error))?;
        let parent_span_id = parent_id(self.parent_span_id)
            .map_err(|error| span_problem(self.name, "parent span id", &error))?;
        let span = Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state: self.trace_state.to_owned(),
            flags: self.flags,
            name: self.name.to_owned(),
            kind: SpanKind::from_otlp(self.kind),
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: self.attributes,
            events: self.events,
            links: self.links,
            status: Status {
                code: StatusCode::from_otlp(self.status_code),
                message: self.status_message.to_owned(),
            },
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        };
        Ok((span, self.truncated, self.dropped_links))
    }
}

fn event(mut reader: Reader<'_>, depth: Depth, truncated: &mut Truncated) -> Wire<Event> {
    let mut time_unix_nano = 0;
    let mut name = "";
    let mut attributes = Vec::new();
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => time_unix_nano = reader.fixed64(wire_type)?,
            2 => name = reader.str(wire_type)?,
            3 => push_attribute(&mut reader, wire_type, depth, &mut attributes, truncated)?,
            4 => {
                reader.varint_field(wire_type)?;
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(Event {
        time_unix_nano,
        name: name.to_owned(),
        attributes,
    })
}

/// A link and its truncations, or `None` when its ids are invalid (the
/// link is dropped, its values never counted, as in `convert_link`).
fn link(mut reader: Reader<'_>, depth: Depth) -> Wire<Option<(Link, Truncated)>> {
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut trace_state = "";
    let mut attributes = Vec::new();
    let mut truncated = 0;
    let mut flags = 0;
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => trace_id = reader.bytes(wire_type)?,
            2 => span_id = reader.bytes(wire_type)?,
            3 => trace_state = reader.str(wire_type)?,
            4 => push_attribute(
                &mut reader,
                wire_type,
                depth,
                &mut attributes,
                &mut truncated,
            )?,
            5 => {
                reader.varint_field(wire_type)?;
            }
            6 => flags = reader.fixed32(wire_type)?,
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    let ids = TraceId::from_bytes(trace_id)
        .and_then(|trace_id| SpanId::from_bytes(span_id).map(|span_id| (trace_id, span_id)));
    let Ok((trace_id, span_id)) = ids else {
        return Ok(None);
    };
    let link = Link {
        trace_id,
        span_id,
        trace_state: trace_state.to_owned(),
        attributes,
        flags,
    };
    Ok(Some((link, truncated)))
}

/// `Status` merges over its occurrences, field by field.
fn merge_status<'a>(mut reader: Reader<'a>, depth: Depth, parts: &mut SpanParts<'a>) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            2 => parts.status_message = reader.str(wire_type)?,
            3 => parts.status_code = as_i32(reader.varint_field(wire_type)?),
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}
