//! `LogRecord` messages → model log records.

use std::sync::Arc;

use ashiato_model::{Attributes, LogRecord, Resource, Scope};

use super::Signal;
use super::reader::{Depth, Reader, Wire, as_i32};
use super::values::{
    PendingValue, Truncated, finish_any_value, merge_any_value_field, push_attribute,
};
use crate::convert::{Report, log_problem, optional_span_id, optional_trace_id, severity_number};

/// Logs export requests.
pub(crate) struct Logs;

impl Signal for Logs {
    type Item = LogRecord;

    fn item(
        reader: Reader<'_>,
        depth: Depth,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
        report: &mut Report,
        items: &mut Vec<LogRecord>,
    ) -> Wire<()> {
        let parts = record_parts(reader, depth)?;
        match parts.into_record(resource, scope) {
            Ok((record, truncated)) => {
                report.add_truncated(truncated);
                items.push(record);
            }
            Err(reason) => report.reject(reason),
        }
        Ok(())
    }
}

/// A log record's fields as read.
#[derive(Default)]
struct RecordParts<'a> {
    time_unix_nano: u64,
    observed_time_unix_nano: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: PendingValue<'a>,
    attributes: Attributes,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
    truncated: Truncated,
}

fn record_parts(mut reader: Reader<'_>, depth: Depth) -> Wire<RecordParts<'_>> {
    let mut parts = RecordParts::default();
    while let Some((tag, wire_type)) = reader.next_key()? {
        match tag {
            1 => parts.time_unix_nano = reader.fixed64(wire_type)?,
            2 => parts.severity_number = as_i32(reader.varint_field(wire_type)?),
            3 => parts.severity_text = reader.str(wire_type)?,
            5 => merge_any_value_field(&mut reader, wire_type, depth, 0, &mut parts.body)?,
            6 => push_attribute(
                &mut reader,
                wire_type,
                depth,
                &mut parts.attributes,
                &mut parts.truncated,
            )?,
            7 => {
                reader.varint_field(wire_type)?;
            }
            8 => parts.flags = reader.fixed32(wire_type)?,
            9 => parts.trace_id = reader.bytes(wire_type)?,
            10 => parts.span_id = reader.bytes(wire_type)?,
            11 => parts.observed_time_unix_nano = reader.fixed64(wire_type)?,
            12 => parts.event_name = reader.str(wire_type)?,
            _ => reader.skip(wire_type, tag, depth)?,
        }
    }
    Ok(parts)
}

impl RecordParts<'_> {
    /// The model record and its truncations, or why it is rejected (the
    /// checks and texts of `convert_log_record`).
    fn into_record(
        self,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> Result<(LogRecord, Truncated), String> {
        let trace_id =
            optional_trace_id(self.trace_id).map_err(|error| log_problem("trace id", &error))?;
        let span_id =
            optional_span_id(self.span_id).map_err(|error| log_problem("span id", &error))?;
        let mut truncated = self.truncated;
        let record = LogRecord {
            time_unix_nano: self.time_unix_nano,
            observed_time_unix_nano: self.observed_time_unix_nano,
            severity_number: severity_number(self.severity_number),
            severity_text: self.severity_text.to_owned(),
            body: finish_any_value(self.body, 0, &mut truncated),
            attributes: self.attributes,
            trace_id,
            span_id,
            flags: self.flags,
            event_name: self.event_name.to_owned(),
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        };
        Ok((record, truncated))
    }
}
