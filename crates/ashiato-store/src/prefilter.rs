//! Parquet row filters for span segment scans, so a search decodes whole
//! rows only where they can match.
//!
//! Before this, a scan decoded every column of every row of every segment
//! in the time range and then tested the filter: a search with few matches
//! paid for all the blobs. Now two predicates run first, in order:
//!
//! 1. the cheap columns (`start_time`, `end_offset`, `service`, `name`,
//!    `status_code`): time range, service, operation, duration, error;
//! 2. for attribute filters, a byte search in the `attributes` and
//!    `resource` blobs of the rows that passed 1: a row can only match
//!    `key:value` if a blob holds the codec encoding of `key` followed by a
//!    value that could equal `value` (see [`AttrNeedles`]). A key with a
//!    column of its own in the segment (`promoted`) is tested on that
//!    column instead, exactly (a dictionary's distinct values once), and
//!    the blobs are searched only for rows without a value there.
//!
//! Both are necessary conditions only; `scan` still evaluates the exact
//! filter on the decoded span, so the results are unchanged.

use arrow_array::{
    Array, BinaryArray, BooleanArray, Int64Array, RecordBatch, StringArray, UInt8Array, UInt64Array,
};
use arrow_schema::ArrowError;
use ashiato_model::AttrValue;
use memchr::memmem;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicate, ArrowPredicateFn, RowFilter};
use parquet::schema::types::SchemaDescriptor;

use crate::codec::{self, Encoder};
use crate::filter::SpanFilter;
use crate::promoted::{PromotedArray, Promotion};

/// Value tags whose text form (`to_text`) is not a byte copy of the value:
/// a match on them cannot be ruled out by searching for the value's bytes.
const OPAQUE_TAGS: [u8; 4] = [0, 6, 7, 8];

/// Byte patterns one `key:value` attribute filter needs in a blob: the
/// encoded key, directly followed by either one of the encodings of a value
/// equal to the query text or a tag whose values may equal it only as text.
struct AttrNeedles {
    /// The key as the codec writes it (length, bytes).
    key: memmem::Finder<'static>,
    /// Each encoding (tag, payload) of a value `matches_text` accepts.
    values: Vec<Vec<u8>>,
}

impl AttrNeedles {
    fn new(key: &str, value: &str) -> AttrNeedles {
        let mut encoded_key = Encoder::default();
        encoded_key.str(key);
        // Every typed value `AttrValue::matches_text` can accept.
        let mut candidates = vec![AttrValue::Str(value.to_owned())];
        if let Ok(number) = value.parse::<i64>() {
            candidates.push(AttrValue::Int(number));
        }
        if let Ok(number) = value.parse::<f64>() {
            candidates.push(AttrValue::Float(number));
            if number == 0.0 {
                // 0.0 == -0.0 but their bytes differ.
                candidates.push(AttrValue::Float(-number));
            }
        }
        if let Ok(flag) = value.parse::<bool>() {
            candidates.push(AttrValue::Bool(flag));
        }
        let values = candidates
            .iter()
            .map(|value| {
                let mut encoder = Encoder::default();
                encoder.value(value);
                encoder.buf
            })
            .collect();
        AttrNeedles {
            key: memmem::Finder::new(&encoded_key.buf).into_owned(),
            values,
        }
    }

    /// One pass over the blob for the key; only its occurrences are looked at.
    fn may_match(&self, blob: &[u8]) -> bool {
        let key_len = self.key.needle().len();
        self.key.find_iter(blob).any(|at| {
            let rest = blob.get(at + key_len..).unwrap_or_default();
            rest.first().is_some_and(|tag| OPAQUE_TAGS.contains(tag))
                || self.values.iter().any(|value| rest.starts_with(value))
        })
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArrowError::SchemaError(format!("{name} column type")))
}

pub(crate) fn leaves(schema: &SchemaDescriptor, names: &[&str]) -> ProjectionMask {
    let indices = (0..schema.num_columns()).filter(|&index| {
        let path = schema.column(index).path().string();
        names.contains(&path.as_str())
    });
    ProjectionMask::leaves(schema, indices)
}

fn has_cheap_predicate(filter: &SpanFilter) -> bool {
    filter.start_min_ns.is_some()
        || filter.start_max_ns.is_some()
        || filter.service.is_some()
        || filter.name.is_some()
        || filter.min_duration_ns.is_some()
        || filter.max_duration_ns.is_some()
        || filter.error_only
}

fn cheap_predicate(schema: &SchemaDescriptor, filter: &SpanFilter) -> Box<dyn ArrowPredicate> {
    let filter = filter.clone();
    let mask = leaves(
        schema,
        &["service", "name", "start_time", "end_offset", "status_code"],
    );
    Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let service = column::<StringArray>(&batch, "service")?;
        let name = column::<StringArray>(&batch, "name")?;
        let start = column::<UInt64Array>(&batch, "start_time")?;
        let end_offset = column::<Int64Array>(&batch, "end_offset")?;
        let status = column::<UInt8Array>(&batch, "status_code")?;
        Ok(BooleanArray::from_iter((0..batch.num_rows()).map(|row| {
            let start = start.value(row);
            let duration =
                codec::end_from_offset(start, end_offset.value(row)).saturating_sub(start);
            let is_error =
                codec::status_from_u8(status.value(row)) == ashiato_model::StatusCode::Error;
            Some(crate::scan::span_columns_match(
                &filter,
                start,
                service.value(row),
                name.value(row),
                duration,
                is_error,
            ))
        })))
    }))
}

/// One `key:value` filter as the segment stores the key: in a promoted
/// column (tested exactly, each distinct dictionary value once) or only in
/// the blobs (byte needles).
struct AttrTest {
    value: String,
    needles: AttrNeedles,
    /// The key's promoted column, and whether a null there means the row's
    /// own attributes lack the key (else the blob may hold it).
    column: Option<(String, bool)>,
}

impl AttrTest {
    fn needs_blob(&self) -> bool {
        self.column.as_ref().is_none_or(|(_, complete)| !complete)
    }
}

fn attribute_predicate(
    schema: &SchemaDescriptor,
    filter: &SpanFilter,
    promotion: &Promotion,
) -> Box<dyn ArrowPredicate> {
    let tests: Vec<AttrTest> = filter
        .attributes
        .iter()
        .map(|(key, value)| AttrTest {
            value: value.clone(),
            needles: AttrNeedles::new(key, value),
            column: promotion
                .get(key)
                .map(|promoted| (promoted.column.clone(), promoted.complete)),
        })
        .collect();
    let needs_blob = tests.iter().any(AttrTest::needs_blob);
    let mut names: Vec<&str> = vec!["resource"];
    if needs_blob {
        names.push("attributes");
    }
    names.extend(
        tests
            .iter()
            .filter_map(|test| Some(test.column.as_ref()?.0.as_str())),
    );
    let mask = leaves(schema, &names);
    Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let own = if needs_blob {
            Some(column::<BinaryArray>(&batch, "attributes")?)
        } else {
            None
        };
        let resource = column::<BinaryArray>(&batch, "resource")?;
        let mut keep = vec![true; batch.num_rows()];
        for test in &tests {
            let in_column = match &test.column {
                Some((name, _)) => {
                    let array = batch
                        .column_by_name(name)
                        .and_then(|array| PromotedArray::new(array.as_ref()))
                        .ok_or_else(|| ArrowError::SchemaError(format!("{name} column type")))?;
                    Some(array.matches(&test.value))
                }
                None => None,
            };
            for (row, kept) in keep.iter_mut().enumerate() {
                if !*kept {
                    continue;
                }
                *kept = match in_column.as_ref().and_then(|matches| matches[row]) {
                    Some(matched) => matched,
                    None => {
                        (test.needs_blob()
                            && own.is_some_and(|own| test.needles.may_match(own.value(row))))
                            || test.needles.may_match(resource.value(row))
                    }
                };
            }
        }
        Ok(BooleanArray::from(keep))
    }))
}

/// The row filter for a scan with `filter` of a segment with `promotion`;
/// `None` when it selects everything.
pub fn span_row_filter(
    schema: &SchemaDescriptor,
    filter: &SpanFilter,
    promotion: &Promotion,
) -> Option<RowFilter> {
    let mut predicates = Vec::new();
    if has_cheap_predicate(filter) {
        predicates.push(cheap_predicate(schema, filter));
    }
    if !filter.attributes.is_empty() {
        predicates.push(attribute_predicate(schema, filter, promotion));
    }
    (!predicates.is_empty()).then(|| RowFilter::new(predicates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ashiato_model::KeyValue;

    fn blob(attributes: &[(&str, AttrValue)]) -> Vec<u8> {
        let attributes: Vec<KeyValue> = attributes
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_owned(),
                value: value.clone(),
            })
            .collect();
        let mut encoder = Encoder::default();
        encoder.attrs(&attributes);
        encoder.buf
    }

    /// The needles never rule out a row the exact filter accepts.
    #[test]
    fn needles_agree_with_matches_text() {
        let values = [
            AttrValue::Str("/api/cart".into()),
            AttrValue::Str("123".into()),
            AttrValue::Int(123),
            AttrValue::Int(-5),
            AttrValue::Float(0.0),
            AttrValue::Float(-0.0),
            AttrValue::Float(1.5),
            AttrValue::Bool(true),
            AttrValue::Bytes(vec![1, 2]),
            AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("a".into())]),
            AttrValue::Empty,
        ];
        let queries = [
            "/api/cart",
            "123",
            "-5",
            "0",
            "-0",
            "0.0",
            "1.5",
            "true",
            "false",
            "x",
            "",
        ];
        for value in &values {
            let encoded = blob(&[("other", AttrValue::Int(1)), ("k", value.clone())]);
            for query in queries {
                let needles = AttrNeedles::new("k", query);
                if value.matches_text(query) {
                    assert!(needles.may_match(&encoded), "{value:?} vs {query:?}");
                }
            }
        }
        let needles = AttrNeedles::new("user.id", "123");
        assert!(!needles.may_match(&blob(&[("user.id", AttrValue::Int(124))])));
        assert!(!needles.may_match(&blob(&[("session.id", AttrValue::Int(123))])));
    }
}
