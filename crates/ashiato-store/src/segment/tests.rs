//! Tests of segment writing and reading that span the submodules.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ashiato_model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, TraceId,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::write::segment_order;
use super::*;

fn span(trace: u8, id: u64, parent: Option<u64>, start: u64) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
        trace_state: String::new(),
        flags: 1,
        name: format!("op{id}"),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 5,
        attributes: vec![KeyValue::new("n", AttrValue::Int(id as i64))],
        events: Vec::new(),
        links: Vec::new(),
        status: Status::default(),
        resource: Arc::new(Resource::new(vec![KeyValue::new(
            "service.name",
            AttrValue::Str("svc".into()),
        )])),
        scope: Arc::new(Scope::default()),
    }
}

fn read_back(path: &Path, written: WrittenSegment, trace: u8) -> Vec<Span> {
    let segment = Segment::open(1, path.to_path_buf(), written, true).unwrap();
    let mut out = Vec::new();
    segment.trace(TraceId([trace; 16]), &mut out).unwrap();
    out
}

/// The key-copying sort orders like comparing the spans themselves:
/// trace id bytes (high bytes first, also above 0x7f), then start time.
#[test]
fn segment_order_is_trace_id_then_start() {
    let mut spans = Vec::new();
    for (n, trace) in [0x80u8, 0x01, 0xff, 0x7f, 0x80, 0x00, 0x01]
        .into_iter()
        .enumerate()
    {
        let mut first = span(trace, n as u64, None, 100 - n as u64);
        first.trace_id.0[15] = n as u8 % 2;
        spans.push(first);
        spans.push(span(trace, 10 + n as u64, None, 50 + n as u64));
    }
    let refs: Vec<&Span> = spans.iter().collect();
    let mut expected = refs.clone();
    expected.sort_by(|a, b| {
        (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano))
    });
    let ordered = segment_order(&refs);
    let key = |s: &&Span| (s.trace_id, s.start_time_unix_nano, s.span_id);
    assert_eq!(
        ordered.iter().map(key).collect::<Vec<_>>(),
        expected.iter().map(key).collect::<Vec<_>>()
    );
}

/// Each case is a trace as sent; it must come back span for span.
#[test]
fn joined_ids_round_trip() {
    let cases: Vec<(&str, Vec<Span>)> = vec![
        ("root only", vec![span(1, 1, None, 10)]),
        (
            "parents in the trace",
            vec![
                span(2, 1, None, 10),
                span(2, 2, Some(1), 11),
                span(2, 3, Some(2), 12),
                span(2, 4, Some(1), 13),
            ],
        ),
        (
            "parent outside the segment",
            vec![span(3, 7, Some(99), 10), span(3, 8, Some(7), 11)],
        ),
        (
            "duplicate span id",
            vec![span(4, 5, Some(1), 10), span(4, 5, Some(1), 10)],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<&Span> = cases.iter().flat_map(|(_, spans)| spans).collect();
    let path = dir.path().join("spans.parquet");
    let written = write_spans(&path, &all).unwrap();
    let segment = Segment::open(1, path.clone(), written, true).unwrap();
    for (case, spans) in &cases {
        let mut out = Vec::new();
        segment.trace(spans[0].trace_id, &mut out).unwrap();
        assert_eq!(&out, spans, "{case}");
    }
}

/// Segments written before the `ids` column (separate `span_id` and
/// `parent_span_id`) still read back.
#[test]
fn separate_id_columns_still_read() {
    let spans = [span(5, 1, None, 10), span(5, 2, Some(1), 11)];
    let dir = tempfile::tempdir().unwrap();
    let new_path = dir.path().join("new.parquet");
    let refs: Vec<&Span> = spans.iter().collect();
    let written = write_spans(&new_path, &refs).unwrap();
    // Rewrite the file with the old layout: `ids` split in two columns.
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&new_path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let old_path = dir.path().join("old.parquet");
    let mut writer: Option<ArrowWriter<File>> = None;
    for batch in reader {
        let batch = batch.unwrap();
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if field.name() != "ids" {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
                continue;
            }
            let ids = column
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .unwrap();
            let half = |range: std::ops::Range<usize>| {
                (0..ids.len()).map(move |row| {
                    let bytes = &ids.value(row)[range.clone()];
                    (bytes != [0; 8]).then(|| bytes.to_vec())
                })
            };
            fields.push(Field::new("span_id", DataType::FixedSizeBinary(8), false));
            columns.push(Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(half(0..8), 8).unwrap(),
            ));
            fields.push(Field::new(
                "parent_span_id",
                DataType::FixedSizeBinary(8),
                true,
            ));
            columns.push(Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(half(8..16), 8).unwrap(),
            ));
        }
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let writer = writer.get_or_insert_with(|| {
            ArrowWriter::try_new(File::create(&old_path).unwrap(), old.schema(), None).unwrap()
        });
        writer.write(&old).unwrap();
    }
    writer.unwrap().close().unwrap();
    assert_eq!(read_back(&old_path, written, 5), spans);
}
