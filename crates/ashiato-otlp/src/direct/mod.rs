//! OTLP protobuf → model in one pass, without prost's message tree.
//!
//! The message-tree path (`prost` decodes `ExportTraceServiceRequest`, then
//! `convert` maps it) allocates every message, string and byte vector of the
//! request and then moves or copies them again into the model. Here the
//! request is read field by field from the borrowed body: ids and strings
//! are slices until the item is complete, and only the model values are
//! allocated.
//!
//! It must give exactly what the message-tree path gives, so:
//! - it accepts exactly what prost accepts (see `reader`); on anything else
//!   it returns `Malformed` and the caller decodes again with prost, whose
//!   error is the one reported (malformed bodies are rare, so their cost
//!   does not matter and their error text stays prost's);
//! - prost's merge rules apply to repeated and re-occurring fields, in any
//!   field order: a resource or scope may follow the items it applies to,
//!   so those two levels are read twice (first the resource or scope and a
//!   check of every other field, then the items);
//! - items go through the same checks and rejection texts (`convert`'s
//!   helpers), and the report counts truncations and dropped links only for
//!   kept items, as `convert` does.
//!
//! The differential tests (`tests/direct.rs`) and the `otlp_direct` fuzz
//! target hold it to that.
//!
//! One exception is opt-in: prost refuses a whole request for one string
//! that is not UTF-8, so one bad attribute would lose a batch. When both
//! paths refused a body, the server's decoders run this one again with
//! `lenient`: an item (span, log record) holding a non-UTF-8 string is then
//! rejected like an item with a bad id, and the rest kept. Non-UTF-8 text
//! outside items (resource, scope, schema URLs) still refuses the body.
//! On bodies prost accepts, the lenient pass gives exactly what the strict
//! one gives (the differential tests check that too).

mod logs;
mod reader;
mod traces;
mod values;

use std::sync::Arc;

use ashiato_model::{Resource, Scope};

use crate::convert::Report;
pub(crate) use logs::Logs;
use reader::{Depth, Malformed, Reader, Wire};
pub(crate) use traces::Traces;
use values::{ScopeParts, merge_resource, merge_scope};

/// One signal's item message (`Span`, `LogRecord`) and its model value.
pub(crate) trait Signal {
    type Item;

    /// Reads one item message and either keeps it in `items` or rejects it
    /// in `report`.
    fn item(
        reader: Reader<'_>,
        depth: Depth,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
        report: &mut Report,
        items: &mut Vec<Self::Item>,
    ) -> Wire<()>;
}

/// Decodes an `Export*ServiceRequest` body. Requests, resource groups and
/// scope groups of traces and logs share one layout: field 1 of the request
/// holds resource groups; a resource group has the resource in 1, scope
/// groups in 2 and a schema URL in 3; a scope group has the scope in 1,
/// items in 2 and a schema URL in 3.
/// `lenient` rejects items holding non-UTF-8 strings instead of failing
/// (see the module doc).
pub(crate) fn request<S: Signal>(
    body: &[u8],
    report: &mut Report,
    lenient: bool,
) -> Wire<Vec<S::Item>> {
    let mut reader = Reader::new(body);
    let mut items = Vec::with_capacity(count_items(body));
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => {
                let (inner, depth) = reader.message(wire_type, Depth::TOP)?;
                resource_group::<S>(inner, depth, report, &mut items, lenient)?;
            }
            _ => reader.skip(wire_type, tag, Depth::TOP)?,
        }
    }
    Ok(items)
}

/// How many items the request holds, by a walk over the keys that steps
/// over item bodies, so the item vector is allocated once at its final
/// size as the message-tree path did (the memtable keeps the vector with
/// its capacity). A malformed body may give any count; its decode fails.
fn count_items(body: &[u8]) -> usize {
    let mut count = 0;
    let _ = for_each_member(Reader::new(body), 1, &mut |group| {
        for_each_member(group, 2, &mut |scope_group| {
            for_each_member(scope_group, 2, &mut |_| {
                count += 1;
                Ok(())
            })
        })
    });
    count
}

/// Calls `visit` with the body of every length-delimited field `tag`.
fn for_each_member<'a>(
    mut reader: Reader<'a>,
    tag: u32,
    visit: &mut dyn FnMut(Reader<'a>) -> Wire<()>,
) -> Wire<()> {
    while let Some((field, wire_type)) = reader.next_key()? {
        if field == tag {
            let (inner, _) = reader.message(wire_type, Depth::TOP)?;
            visit(inner)?;
        } else {
            reader.skip(wire_type, field, Depth::TOP)?;
        }
    }
    Ok(())
}

fn resource_group<S: Signal>(
    reader: Reader<'_>,
    depth: Depth,
    report: &mut Report,
    items: &mut Vec<S::Item>,
    lenient: bool,
) -> Wire<()> {
    let mut attributes = Vec::new();
    let mut truncated = 0;
    let mut scan = reader;
    while let Some((tag, wire_type)) = scan.next_key()? {
        match tag {
            1 => {
                let (inner, depth) = scan.message(wire_type, depth)?;
                merge_resource(inner, depth, &mut attributes, &mut truncated)?;
            }
            2 => {
                scan.message(wire_type, depth)?;
            }
            3 => {
                scan.str(wire_type)?;
            }
            _ => scan.skip(wire_type, tag, depth)?,
        }
    }
    report.add_truncated(truncated);
    let resource = Arc::new(Resource::new(attributes));
    let mut groups = reader;
    while let Some((inner, depth)) = next_of(&mut groups, depth)? {
        scope_group::<S>(inner, depth, &resource, report, items, lenient)?;
    }
    Ok(())
}

fn scope_group<S: Signal>(
    reader: Reader<'_>,
    depth: Depth,
    resource: &Arc<Resource>,
    report: &mut Report,
    items: &mut Vec<S::Item>,
    lenient: bool,
) -> Wire<()> {
    let mut parts = ScopeParts::default();
    let mut scan = reader;
    while let Some((tag, wire_type)) = scan.next_key()? {
        match tag {
            1 => {
                let (inner, depth) = scan.message(wire_type, depth)?;
                merge_scope(inner, depth, &mut parts)?;
            }
            2 => {
                scan.message(wire_type, depth)?;
            }
            3 => {
                scan.str(wire_type)?;
            }
            _ => scan.skip(wire_type, tag, depth)?,
        }
    }
    report.add_truncated(parts.truncated);
    let scope = Arc::new(Scope {
        name: parts.name.to_owned(),
        version: parts.version.to_owned(),
        attributes: parts.attributes,
    });
    let mut members = reader;
    while let Some((inner, depth)) = next_of(&mut members, depth)? {
        match S::item(inner, depth, resource, &scope, report, items) {
            Err(Malformed::Utf8) if lenient => report.reject_invalid_text(),
            result => result?,
        }
    }
    Ok(())
}

/// The next field 2 (the group's members) of a message whose fields were
/// all checked by a first pass; the others are stepped over.
fn next_of<'a>(reader: &mut Reader<'a>, depth: Depth) -> Wire<Option<(Reader<'a>, Depth)>> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        if tag == 2 {
            return reader.message(wire_type, depth).map(Some);
        }
        reader.skip(wire_type, tag, depth)?;
    }
    Ok(None)
}
