//! `KeyValue`, `AnyValue`, `Resource` and `InstrumentationScope` read straight
//! into model values.
//!
//! Merge rules follow prost: a singular message field that occurs twice is
//! merged (repeated fields appended, scalars last-wins), and the `AnyValue`
//! oneof keeps merging into an array or kvlist while the same variant
//! repeats, but starts over when another variant arrives.
//!
//! Values nested [`MAX_VALUE_DEPTH`] deep or more read as `Empty` and count
//! one truncation each, but only where the message-tree path would count
//! them: the count travels with the value ([`Truncated`]) until its item is
//! accepted, so values inside rejected spans, dropped links or replaced
//! oneof variants are not counted. (Over protobuf, prost's limit of 100
//! nested messages is reached first, at about 47 array levels in a span
//! attribute; the cap is kept so the mapping stays `convert`'s.)

use ashiato_model::{AttrValue, Attributes, KeyValue};
use prost::encoding::WireType;

use super::reader::{Depth, Reader, Wire};
use crate::convert::MAX_VALUE_DEPTH;

/// Values truncated inside one item, added to the report when it is kept.
pub(crate) type Truncated = u64;

/// The `AnyValue.value` oneof while its message (or messages) are read.
enum Pending<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Vec<AttrValue>, Truncated),
    Kvlist(Attributes, Truncated),
    /// Profiles' string-table reference: no value outside profiles.
    Strindex,
}

/// Reads one `KeyValue` message whose value sits at `value_depth`.
pub(crate) fn key_value(
    mut reader: Reader<'_>,
    depth: Depth,
    value_depth: usize,
    truncated: &mut Truncated,
) -> Wire<KeyValue> {
    let mut key = "";
    let mut value = PendingValue::default();
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => key = reader.str(wire_type)?,
            2 => merge_any_value_field(&mut reader, wire_type, depth, value_depth, &mut value)?,
            3 => {
                reader.varint_field(wire_type)?;
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(KeyValue {
        key: key.to_owned(),
        value: finish(value.0, value_depth, truncated),
    })
}

/// Appends one top-level `KeyValue` (value depth 0) to `attributes`.
#[inline]
pub(crate) fn push_attribute(
    reader: &mut Reader<'_>,
    wire_type: WireType,
    depth: Depth,
    attributes: &mut Attributes,
    truncated: &mut Truncated,
) -> Wire<()> {
    let (inner, depth) = reader.message(wire_type, depth)?;
    attributes.push(key_value(inner, depth, 0, truncated)?);
    Ok(())
}

/// An `AnyValue` being read, opaque outside this module; every occurrence
/// of an optional `AnyValue` field (log body, `KeyValue.value`) merges into
/// the same one.
#[derive(Default)]
pub(crate) struct PendingValue<'a>(Option<Pending<'a>>);

/// Reads one occurrence of an optional `AnyValue` field into `state`.
#[inline]
pub(crate) fn merge_any_value_field<'a>(
    reader: &mut Reader<'a>,
    wire_type: WireType,
    depth: Depth,
    value_depth: usize,
    state: &mut PendingValue<'a>,
) -> Wire<()> {
    let (inner, depth) = reader.message(wire_type, depth)?;
    merge_any_value(inner, depth, value_depth, &mut state.0)
}

/// The model value of an optional `AnyValue` field.
pub(crate) fn finish_any_value(
    state: PendingValue<'_>,
    value_depth: usize,
    truncated: &mut Truncated,
) -> AttrValue {
    finish(state.0, value_depth, truncated)
}

fn merge_any_value<'a>(
    mut reader: Reader<'a>,
    depth: Depth,
    value_depth: usize,
    state: &mut Option<Pending<'a>>,
) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => *state = Some(Pending::Str(reader.str(wire_type)?)),
            2 => *state = Some(Pending::Bool(reader.varint_field(wire_type)? != 0)),
            3 => *state = Some(Pending::Int(reader.varint_field(wire_type)? as i64)),
            4 => *state = Some(Pending::Double(f64::from_bits(reader.fixed64(wire_type)?))),
            5 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                if !matches!(state, Some(Pending::Array(..))) {
                    *state = Some(Pending::Array(Vec::new(), 0));
                }
                if let Some(Pending::Array(values, truncated)) = state {
                    merge_array(inner, depth, value_depth + 1, values, truncated)?;
                }
            }
            6 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                if !matches!(state, Some(Pending::Kvlist(..))) {
                    *state = Some(Pending::Kvlist(Vec::new(), 0));
                }
                if let Some(Pending::Kvlist(entries, truncated)) = state {
                    merge_kvlist(inner, depth, value_depth + 1, entries, truncated)?;
                }
            }
            7 => *state = Some(Pending::Bytes(reader.bytes(wire_type)?)),
            8 => {
                reader.varint_field(wire_type)?;
                *state = Some(Pending::Strindex);
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}

/// `ArrayValue.values`: each element is a whole `AnyValue` message.
fn merge_array(
    mut reader: Reader<'_>,
    depth: Depth,
    element_depth: usize,
    values: &mut Vec<AttrValue>,
    truncated: &mut Truncated,
) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                let mut element = None;
                merge_any_value(inner, depth, element_depth, &mut element)?;
                values.push(finish(element, element_depth, truncated));
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}

/// `KeyValueList.values`.
fn merge_kvlist(
    mut reader: Reader<'_>,
    depth: Depth,
    value_depth: usize,
    entries: &mut Attributes,
    truncated: &mut Truncated,
) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                entries.push(key_value(inner, depth, value_depth, truncated)?);
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}

/// The model value, as `convert_value` maps it: a present value at or
/// below the depth cap is `Empty` and counts once (its own nested
/// truncations are dropped with it).
fn finish(state: Option<Pending<'_>>, value_depth: usize, truncated: &mut Truncated) -> AttrValue {
    let Some(value) = state else {
        return AttrValue::Empty;
    };
    if value_depth >= MAX_VALUE_DEPTH {
        *truncated += 1;
        return AttrValue::Empty;
    }
    match value {
        Pending::Str(text) => AttrValue::Str(text.to_owned()),
        Pending::Bool(flag) => AttrValue::Bool(flag),
        Pending::Int(number) => AttrValue::Int(number),
        Pending::Double(number) => AttrValue::Float(number),
        Pending::Bytes(bytes) => AttrValue::Bytes(bytes.to_vec()),
        Pending::Array(values, inner) => {
            *truncated += inner;
            AttrValue::Array(values)
        }
        Pending::Kvlist(entries, inner) => {
            *truncated += inner;
            AttrValue::Map(entries)
        }
        Pending::Strindex => AttrValue::Empty,
    }
}

/// Merges one `Resource` message into the attributes gathered so far.
pub(crate) fn merge_resource(
    mut reader: Reader<'_>,
    depth: Depth,
    attributes: &mut Attributes,
    truncated: &mut Truncated,
) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => push_attribute(&mut reader, wire_type, depth, attributes, truncated)?,
            2 => {
                reader.varint_field(wire_type)?;
            }
            3 => {
                let (inner, depth) = reader.message(wire_type, depth)?;
                check_entity_ref(inner, depth)?;
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}

/// `EntityRef` is not kept, but prost still checks its strings.
fn check_entity_ref(mut reader: Reader<'_>, depth: Depth) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1..=4 => {
                reader.str(wire_type)?;
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}

/// An `InstrumentationScope` as it accumulates over its occurrences.
#[derive(Default)]
pub(crate) struct ScopeParts<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) attributes: Attributes,
    pub(crate) truncated: Truncated,
}

/// Merges one `InstrumentationScope` message.
pub(crate) fn merge_scope<'a>(
    mut reader: Reader<'a>,
    depth: Depth,
    parts: &mut ScopeParts<'a>,
) -> Wire<()> {
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => parts.name = reader.str(wire_type)?,
            2 => parts.version = reader.str(wire_type)?,
            3 => push_attribute(
                &mut reader,
                wire_type,
                depth,
                &mut parts.attributes,
                &mut parts.truncated,
            )?,
            4 => {
                reader.varint_field(wire_type)?;
            }
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(())
}
