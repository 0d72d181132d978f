//! Attribute keys that get a Parquet column of their own in a span segment
//! ("promoted" keys).
//!
//! Why: the `attributes` blob wrote every key name on every row and every
//! value in the codec's generic form, so zstd paid one match per attribute
//! and repeated values could not use Parquet's dictionary encoding. It was
//! about 31 of the 52 bytes a span took on disk. When a segment is written,
//! its frequent keys whose values have one type are chosen ([`choose`]); each
//! gets a nullable column (strings: `Utf8`, ints: `Int64`; dictionary
//! encoded when the values repeat, else plain with zstd), and the blob
//! keeps, in the key's place, a
//! three-byte placeholder naming the column, so a span's attributes read
//! back in the order they were sent. Everything else (rare keys, other
//! types, a value whose type differs from its key's column, a key repeated
//! within one span) stays in the blob as before.
//!
//! The chosen keys, their column names and types are recorded in the
//! segment's key-value metadata ([`METADATA_KEY`]); readers take the layout
//! from there and never guess. Segments without the entry (written before
//! promotion existed, or with nothing to promote) have no such columns and
//! read as before.

use std::collections::{HashMap, HashSet};

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayAccessor, DictionaryArray, Int64Array, StringArray, TypedDictionaryArray,
};
use ashiato_model::{AttrValue, KeyValue, Span};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use foldhash::fast::RandomState;

use crate::attr_index;
use crate::codec::{CodecError, Decoder, Encoder};

/// The Parquet key-value metadata entry holding a segment's [`Promotion`].
pub const METADATA_KEY: &str = "ashiato.promoted_attributes";
/// The Arrow field metadata entry of a promoted column naming its key.
pub const FIELD_KEY: &str = "ashiato.attribute";
/// At most this many keys get columns: every column costs a column chunk
/// per row group and a page read (and decompression) per trace lookup.
pub const MAX_PROMOTED: usize = 32;
/// A key gets a column when at least this share (percent) of the sampled
/// rows carry it. Below that, most of the column would be nulls and the
/// blob bytes it saves are few, while every trace lookup still pays a page
/// read for the column. 30 % keeps keys that a large share of the services
/// set (a key set by one service in three still saves its bytes there).
const MIN_PRESENCE_PERCENT: usize = 30;
/// Rows looked at to choose keys, types and encodings. Rows are sorted by
/// trace id, so the first rows are a random sample of the segment's traces.
const SAMPLE_ROWS: usize = 8192;
/// A promoted column is dictionary encoded, and stored uncompressed, when
/// its sampled values have at most one distinct value per this many rows
/// that carry the key. Its data pages are then bit-packed indices and its
/// dictionary is small, so zstd saved little (measured at 1M spans:
/// 0.03–0.18 B/span per column for `http.method`, `http.route`,
/// `net.peer.name`, `thread.id`…), while every trace lookup pays for a zstd
/// context per compressed column (creating contexts was a quarter of a
/// lookup's profile). Other columns are plain and zstd-compressed
/// ([`PLAIN_ZSTD_LEVEL`]): a dictionary of nearly unique values (URLs with
/// ids) only fills a large page that every trace lookup decompresses and
/// then falls back to plain, and for `session.id`/`user.id` (one value per
/// trace) plain + zstd was smaller than a dictionary (0.92 against 0.97 and
/// 0.36 against 0.47 B/span). DELTA_BINARY_PACKED ints were larger than
/// either (`user.id` 0.52, `thread.id` 0.90 against 0.77 B/span).
const DICTIONARY_MIN_ROWS_PER_VALUE: usize = 16;
/// zstd level of the plain promoted columns. Their values are long and
/// nearly unique (`http.url`: scheme, host and path shared, ids not), where
/// level 6's lazy match finder finds much more than level 3: measured
/// 12.7 → 9.5 B/span for `http.url` (level 9: 9.0, for more CPU).
pub const PLAIN_ZSTD_LEVEL: i32 = 6;

/// The one value type of a promoted key's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotedKind {
    Str,
    Int,
}

/// The column type a value would go to, if any.
pub fn kind_of(value: &AttrValue) -> Option<PromotedKind> {
    match value {
        AttrValue::Str(_) => Some(PromotedKind::Str),
        AttrValue::Int(_) => Some(PromotedKind::Int),
        _ => None,
    }
}

impl PromotedKind {
    fn to_u8(self) -> u8 {
        match self {
            PromotedKind::Str => 1,
            PromotedKind::Int => 2,
        }
    }

    fn from_u8(value: u8) -> Result<PromotedKind, CodecError> {
        match value {
            1 => Ok(PromotedKind::Str),
            2 => Ok(PromotedKind::Int),
            tag => Err(CodecError::UnknownTag(tag)),
        }
    }
}

/// One promoted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotedKey {
    pub key: String,
    pub kind: PromotedKind,
    /// Its Parquet column (`attr.<index>`).
    pub column: String,
    /// Every occurrence of the key in the segment is in the column: a null
    /// means the span does not carry the key, so searches need not look in
    /// the blob. Known only once the segment is written.
    pub complete: bool,
    /// Whether the writer dictionary-encodes the column, uncompressed, rather
    /// than writing it plain with zstd (write side only).
    pub dictionary: bool,
}

/// The promoted keys of one segment; empty for segments without any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promotion {
    keys: Vec<PromotedKey>,
    index: HashMap<String, usize>,
}

/// Why the metadata entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    #[error("promoted attribute metadata is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("promoted attribute metadata is undecodable: {0}")]
    Codec(#[from] CodecError),
    #[error("promoted attribute key {0:?} is listed twice")]
    Duplicate(String),
}

impl Promotion {
    pub fn from_keys(keys: Vec<PromotedKey>) -> Result<Promotion, PromotionError> {
        let mut index = HashMap::with_capacity(keys.len());
        for (position, key) in keys.iter().enumerate() {
            if index.insert(key.key.clone(), position).is_some() {
                return Err(PromotionError::Duplicate(key.key.clone()));
            }
        }
        Ok(Promotion { keys, index })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[PromotedKey] {
        &self.keys
    }

    /// The column index of `key`, if promoted.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn get(&self, key: &str) -> Option<&PromotedKey> {
        self.position(key).map(|position| &self.keys[position])
    }

    /// Records which keys ended up entirely in their columns.
    pub fn set_complete(&mut self, complete: &[bool]) {
        for (key, complete) in self.keys.iter_mut().zip(complete) {
            key.complete = *complete;
        }
    }

    /// The metadata value: the codec's encoding of the list, in base64.
    pub fn encode(&self) -> String {
        let mut encoder = Encoder::default();
        encoder.u64(self.keys.len() as u64);
        for key in &self.keys {
            encoder.str(&key.column);
            encoder.str(&key.key);
            encoder.u8(key.kind.to_u8());
            encoder.u8(u8::from(key.complete));
        }
        STANDARD.encode(encoder.buf)
    }

    /// Reads what [`Promotion::encode`] wrote; never panics on bad input.
    pub fn decode(text: &str) -> Result<Promotion, PromotionError> {
        let bytes = STANDARD.decode(text)?;
        let mut decoder = Decoder::new(&bytes);
        let count = decoder.u64()?;
        let mut keys = Vec::new();
        for _ in 0..count {
            let column = decoder.string()?;
            let key = decoder.string()?;
            let kind = PromotedKind::from_u8(decoder.u8()?)?;
            let complete = decoder.u8()? != 0;
            keys.push(PromotedKey {
                key,
                kind,
                column,
                complete,
                dictionary: false,
            });
        }
        decoder.finish()?;
        Promotion::from_keys(keys)
    }
}

/// What the sample says about one key.
struct KeyStats {
    rows: usize,
    first_seen: usize,
    last_row: usize,
    kind: Option<PromotedKind>,
    mixed: bool,
}

/// A hashable view of a string or int value.
#[derive(PartialEq, Eq, Hash)]
enum ValueRef<'a> {
    Str(&'a str),
    Int(i64),
}

/// Picks the keys of `spans` (in segment order) to promote, at most
/// `max_keys`, in order of first appearance in the sample.
pub fn choose(spans: &[&Span], max_keys: usize) -> Promotion {
    let sample = &spans[..spans.len().min(SAMPLE_ROWS)];
    // Every sampled attribute is hashed twice (key, then value), so the maps
    // use foldhash rather than SipHash, randomly seeded because keys and
    // values come from clients; the choice does not depend on their order.
    let mut stats: HashMap<&str, KeyStats, RandomState> = HashMap::default();
    let mut distinct: HashMap<&str, HashSet<ValueRef<'_>, RandomState>, RandomState> =
        HashMap::default();
    let mut lists: Vec<&[KeyValue]> = Vec::with_capacity(attr_index::WARM_LISTS);
    for (row, span) in sample.iter().enumerate() {
        // The rows are scattered over the memtable: read each block's keys
        // and values with the misses overlapping, as the writer does.
        if row % attr_index::WARM_LISTS == 0 {
            let block = &sample[row..sample.len().min(row + attr_index::WARM_LISTS)];
            lists.clear();
            lists.extend(block.iter().map(|span| span.attributes.as_slice()));
            attr_index::warm(&lists);
        }
        for kv in &span.attributes {
            let next = stats.len();
            let entry = stats.entry(kv.key.as_str()).or_insert_with(|| KeyStats {
                rows: 0,
                first_seen: next,
                last_row: usize::MAX,
                kind: None,
                mixed: false,
            });
            // Count a row once even when it repeats the key; only the first
            // occurrence goes to the column.
            if entry.last_row == row {
                continue;
            }
            entry.rows += 1;
            entry.last_row = row;
            let kind = kind_of(&kv.value);
            match (entry.kind, kind) {
                (_, None) => entry.mixed = true,
                (None, Some(kind)) => entry.kind = Some(kind),
                (Some(seen), Some(kind)) if seen != kind => entry.mixed = true,
                _ => {}
            }
            let value = match &kv.value {
                AttrValue::Str(text) => ValueRef::Str(text),
                AttrValue::Int(number) => ValueRef::Int(*number),
                _ => continue,
            };
            distinct.entry(kv.key.as_str()).or_default().insert(value);
        }
    }
    let mut chosen: Vec<(&str, &KeyStats)> = stats
        .iter()
        .filter(|(_, stats)| {
            !stats.mixed
                && stats.kind.is_some()
                && stats.rows * 100 >= sample.len() * MIN_PRESENCE_PERCENT
        })
        .map(|(key, stats)| (*key, stats))
        .collect();
    // The most frequent keys win when there are too many; ties by first
    // appearance, so the choice is deterministic.
    chosen.sort_by_key(|(_, stats)| (std::cmp::Reverse(stats.rows), stats.first_seen));
    chosen.truncate(max_keys);
    chosen.sort_by_key(|(_, stats)| stats.first_seen);
    let keys = chosen
        .into_iter()
        .filter_map(|(key, stats)| Some((key, stats.rows, stats.kind?)))
        .enumerate()
        .map(|(position, (key, rows, kind))| {
            let values = distinct.get(key).map_or(0, HashSet::len);
            PromotedKey {
                key: key.to_owned(),
                kind,
                column: format!("attr.{position}"),
                complete: true,
                dictionary: values * DICTIONARY_MIN_ROWS_PER_VALUE <= rows,
            }
        })
        .collect();
    // Keys are distinct by construction (they come from a map).
    Promotion::from_keys(keys).unwrap_or_default()
}

/// A promoted column of one record batch, typed.
pub enum PromotedArray<'a> {
    Str(&'a StringArray),
    /// Dictionary-encoded columns read back as dictionaries.
    Dict(TypedDictionaryArray<'a, Int32Type, StringArray>),
    Int(&'a Int64Array),
}

impl<'a> PromotedArray<'a> {
    /// `None` when the array has none of the promoted column types.
    pub fn new(array: &'a dyn Array) -> Option<PromotedArray<'a>> {
        let any = array.as_any();
        if let Some(strings) = any.downcast_ref::<StringArray>() {
            return Some(PromotedArray::Str(strings));
        }
        if let Some(ints) = any.downcast_ref::<Int64Array>() {
            return Some(PromotedArray::Int(ints));
        }
        any.downcast_ref::<DictionaryArray<Int32Type>>()?
            .downcast_dict::<StringArray>()
            .map(PromotedArray::Dict)
    }

    /// The row's value; `None` when the row does not have it in the column.
    pub fn value(&self, row: usize) -> Option<AttrValue> {
        match self {
            PromotedArray::Str(strings) => strings
                .is_valid(row)
                .then(|| AttrValue::Str(strings.value(row).to_owned())),
            PromotedArray::Dict(dictionary) => dictionary
                .is_valid(row)
                .then(|| AttrValue::Str(dictionary.value(row).to_owned())),
            PromotedArray::Int(ints) => ints.is_valid(row).then(|| AttrValue::Int(ints.value(row))),
        }
    }

    /// For each row: `None` when the column has no value there, else
    /// whether the value matches `query` (as `AttrValue::matches_text`).
    /// A dictionary's distinct values are compared once, not once a row.
    pub fn matches(&self, query: &str) -> Vec<Option<bool>> {
        match self {
            PromotedArray::Str(strings) => (0..strings.len())
                .map(|row| strings.is_valid(row).then(|| strings.value(row) == query))
                .collect(),
            PromotedArray::Dict(dictionary) => {
                let values = dictionary.values();
                let matching: Vec<bool> = (0..values.len())
                    .map(|index| values.is_valid(index) && values.value(index) == query)
                    .collect();
                let keys = dictionary.keys();
                (0..keys.len())
                    .map(|row| {
                        keys.is_valid(row).then(|| {
                            usize::try_from(keys.value(row))
                                .ok()
                                .and_then(|index| matching.get(index).copied())
                                .unwrap_or(false)
                        })
                    })
                    .collect()
            }
            PromotedArray::Int(ints) => {
                let query = query.parse::<i64>().ok();
                (0..ints.len())
                    .map(|row| {
                        ints.is_valid(row)
                            .then(|| query.is_some_and(|query| query == ints.value(row)))
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use ashiato_model::{KeyValue, Resource, Scope, SpanId, SpanKind, Status, TraceId};

    use super::*;
    use crate::codec::Encoder;
    use crate::filter::SpanFilter;
    use crate::segment::{Segment, write_spans_promoting};

    /// Rows past the sample, so a value can break its key's type there.
    const ROWS: usize = SAMPLE_ROWS + 300;
    const LATE_ROW: usize = SAMPLE_ROWS + 7;

    fn str(text: &str) -> AttrValue {
        AttrValue::Str(text.to_owned())
    }

    /// The attributes of row `row`: promoted keys (`http.route`, `user.id`,
    /// `url`), keys that stay in the blob (`mixed` has two types, `rare` and
    /// `float` are rare or not promotable), duplicates, changing order.
    fn attributes(row: usize, route_every: usize) -> Vec<KeyValue> {
        let mut attributes = Vec::new();
        if row.is_multiple_of(route_every) {
            attributes.push(KeyValue::new("http.route", str(&format!("/r/{}", row % 7))));
        }
        if !row.is_multiple_of(17) {
            attributes.push(KeyValue::new("user.id", AttrValue::Int((row % 13) as i64)));
        }
        let mixed = if row.is_multiple_of(2) {
            str("1")
        } else {
            AttrValue::Int(1)
        };
        attributes.push(KeyValue::new("mixed", mixed));
        attributes.push(KeyValue::new("url", str(&format!("https://x/{row}"))));
        if row.is_multiple_of(5) {
            attributes.rotate_left(2);
        }
        if row.is_multiple_of(97) {
            attributes.push(KeyValue::new("rare", str("needle")));
        }
        if row.is_multiple_of(11) {
            attributes.push(KeyValue::new("http.route", str("/dup")));
        }
        if row.is_multiple_of(3) {
            attributes.push(KeyValue::new("float", AttrValue::Float(row as f64)));
        }
        if row == LATE_ROW {
            // The key's first occurrence with another type: stays in the blob.
            attributes.insert(0, KeyValue::new("user.id", str("7")));
        }
        attributes
    }

    /// Four spans a trace, in trace-id order, so the segment keeps row order.
    fn spans(route_every: usize) -> Vec<Span> {
        let resources: Vec<Arc<Resource>> = (0..2)
            .map(|n| {
                let mut attributes = vec![KeyValue::new("service.name", str(&format!("svc{n}")))];
                if n == 1 {
                    attributes.push(KeyValue::new("user.id", AttrValue::Int(99)));
                }
                Arc::new(Resource::new(attributes))
            })
            .collect();
        (0..ROWS)
            .map(|row| {
                let trace = (row / 4) as u128 + 1;
                Span {
                    trace_id: TraceId(trace.to_be_bytes()),
                    span_id: SpanId((row as u64 + 1).to_be_bytes()),
                    parent_span_id: None,
                    trace_state: String::new(),
                    flags: 0,
                    name: "op".into(),
                    kind: SpanKind::Server,
                    start_time_unix_nano: row as u64,
                    end_time_unix_nano: row as u64 + 5,
                    attributes: attributes(row, route_every),
                    events: Vec::new(),
                    links: Vec::new(),
                    status: Status::default(),
                    resource: resources[row / 4 % 2].clone(),
                    scope: Arc::new(Scope::default()),
                }
            })
            .collect()
    }

    fn write(dir: &std::path::Path, name: &str, spans: &[Span], max_promoted: usize) -> Segment {
        let path = dir.join(name);
        let refs: Vec<&Span> = spans.iter().collect();
        let written = write_spans_promoting(&path, &refs, max_promoted).unwrap();
        Segment::open(1, path, written, true).unwrap()
    }

    fn read_all(segment: &Segment, spans: &[Span]) -> Vec<Span> {
        let ids: Vec<TraceId> = spans.iter().map(|span| span.trace_id).collect();
        let mut out = Vec::new();
        segment.traces(&ids, &mut out).unwrap();
        out
    }

    fn filters() -> Vec<SpanFilter> {
        let pairs: &[&[(&str, &str)]] = &[
            &[("http.route", "/r/3")],
            &[("http.route", "/dup")],
            &[("user.id", "5")],
            &[("user.id", "99")],
            &[("user.id", "7")],
            &[("url", "https://x/123")],
            &[("url", "https://x/nowhere")],
            &[("mixed", "1")],
            &[("rare", "needle")],
            &[("float", "3")],
            &[("service.name", "svc1")],
            &[("absent", "x")],
            &[("http.route", "/r/2"), ("user.id", "4")],
            &[("user.id", "99"), ("mixed", "1")],
        ];
        pairs
            .iter()
            .flat_map(|pairs| {
                let filter = SpanFilter {
                    attributes: pairs
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                        .collect(),
                    ..SpanFilter::default()
                };
                // The same with a cheap predicate, so both row filters run.
                let later = SpanFilter {
                    start_min_ns: Some(4000),
                    ..filter.clone()
                };
                [filter, later]
            })
            .collect()
    }

    /// Both scans of `segment` find exactly the spans the exact filter
    /// accepts among `spans`.
    fn assert_searches(segment: &Segment, spans: &[Span], case: &str) {
        for filter in filters() {
            let expected: BTreeSet<(TraceId, u64)> = spans
                .iter()
                .filter(|span| crate::scan::span_matches(&filter, span))
                .map(|span| (span.trace_id, span.start_time_unix_nano))
                .collect();
            let mut scanned = BTreeSet::new();
            let flow = crate::scan::scan_span_segment(segment, &filter, &mut |span| {
                scanned.insert((span.trace_id, span.start_time_unix_nano));
                ControlFlow::Continue(())
            })
            .unwrap();
            assert!(flow.is_continue());
            assert_eq!(scanned, expected, "{case}: scan {filter:?}");
            let mut starts = BTreeSet::new();
            let flow_starts =
                crate::scan::scan_span_segment_starts(segment, &filter, &mut |trace, start| {
                    starts.insert((trace, start));
                    ControlFlow::Continue(())
                })
                .unwrap();
            assert!(flow_starts.is_continue());
            assert_eq!(starts, expected, "{case}: starts {filter:?}");
        }
    }

    #[test]
    fn promoted_keys_round_trip_in_order_and_search_like_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let spans = spans(1);
        let segment = write(dir.path(), "promoted.parquet", &spans, MAX_PROMOTED);
        let promoted: Vec<(&str, PromotedKind, bool, bool)> = segment
            .promotion()
            .keys()
            .iter()
            .map(|key| {
                (
                    key.key.as_str(),
                    key.kind,
                    key.complete,
                    key.column.starts_with("attr."),
                )
            })
            .collect();
        // In order of first appearance (row 0 starts with `url`).
        assert_eq!(
            promoted,
            [
                ("url", PromotedKind::Str, true, true),
                ("http.route", PromotedKind::Str, false, true),
                ("user.id", PromotedKind::Int, false, true),
            ]
        );
        assert_eq!(read_all(&segment, &spans), spans);
        assert_searches(&segment, &spans, "promoted");

        // The layout of segments written before promotion still reads.
        let old = write(dir.path(), "old.parquet", &spans, 0);
        assert!(old.promotion().is_empty());
        assert_eq!(read_all(&old, &spans), spans);
        assert_searches(&old, &spans, "old layout");
    }

    /// `http.route` is on every row of one segment (a column) and on one
    /// row in ten of the other (left in the blob); searches agree in both.
    #[test]
    fn key_promoted_in_one_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        let common = spans(1);
        let sparse = spans(10);
        let with_column = write(dir.path(), "a.parquet", &common, MAX_PROMOTED);
        let without = write(dir.path(), "b.parquet", &sparse, MAX_PROMOTED);
        assert!(with_column.promotion().get("http.route").is_some());
        assert!(without.promotion().get("http.route").is_none());
        assert!(without.promotion().get("user.id").is_some());
        assert_eq!(read_all(&without, &sparse), sparse);
        assert_searches(&with_column, &common, "column");
        assert_searches(&without, &sparse, "blob");
    }

    /// A file rewritten without its key-value metadata (as a plain
    /// `ArrowWriter` copy does) still reads, from the field metadata.
    #[test]
    fn rewritten_file_reads_from_field_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let spans = spans(1);
        let path = dir.path().join("a.parquet");
        let refs: Vec<&Span> = spans.iter().collect();
        let written = write_spans_promoting(&path, &refs, MAX_PROMOTED).unwrap();
        let copy = dir.path().join("copy.parquet");
        crate::segment::copy_through_arrow_writer(&path, &copy);
        let segment = Segment::open(2, copy, written, true).unwrap();
        assert_eq!(segment.promotion().keys().len(), 3);
        assert!(segment.promotion().keys().iter().all(|key| !key.complete));
        assert_eq!(read_all(&segment, &spans), spans);
        assert_searches(&segment, &spans, "rewritten");
    }

    #[test]
    fn metadata_round_trips_and_bad_input_is_an_error() {
        let keys = vec![
            PromotedKey {
                key: "k".into(),
                kind: PromotedKind::Str,
                column: "attr.0".into(),
                complete: true,
                dictionary: false,
            },
            PromotedKey {
                key: "".into(),
                kind: PromotedKind::Int,
                column: "attr.1".into(),
                complete: false,
                dictionary: false,
            },
        ];
        let promotion = Promotion::from_keys(keys.clone()).unwrap();
        assert_eq!(Promotion::decode(&promotion.encode()).unwrap(), promotion);
        assert!(Promotion::decode("not base64!").is_err());
        let twice = Promotion {
            keys: vec![keys[0].clone(), keys[0].clone()],
            index: HashMap::new(),
        };
        assert!(Promotion::decode(&twice.encode()).is_err());
        let bytes = STANDARD.decode(promotion.encode()).unwrap();
        for cut in 0..bytes.len() {
            assert!(Promotion::decode(&STANDARD.encode(&bytes[..cut])).is_err());
        }
    }

    /// Placeholder decoding never panics, whatever the bytes.
    #[test]
    fn corrupt_placeholder_blobs_never_panic() {
        let mut encoder = Encoder::default();
        encoder.u64(3);
        encoder.promoted_placeholder(0);
        encoder.str("k");
        encoder.value(&str("v"));
        encoder.promoted_placeholder(300);
        let valid = encoder.buf;
        let resolve = |index: u64| {
            if index < 2 {
                Ok(Some(KeyValue::new("p", AttrValue::Int(1))))
            } else {
                Err(CodecError::BadIndex {
                    what: "promoted attribute",
                    index,
                })
            }
        };
        assert!(crate::codec::unblob(&valid, |d| d.attrs_with(resolve)).is_err());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = valid.clone();
            let at = (state as usize) % bytes.len();
            bytes[at] ^= (state >> 32) as u8;
            let cut = ((state >> 40) as usize) % (bytes.len() + 1);
            let _ = crate::codec::unblob(&bytes[..cut], |d| d.attrs_with(resolve));
        }
    }
}
