//! A per-segment attribute index: for every block of [`BLOCK_ROWS`] rows, a
//! split-block bloom filter of the `key = value` pairs of the span and
//! resource attributes, so an attribute search skips the blocks (and whole
//! segments) that cannot hold the value instead of decompressing every
//! attribute blob.
//!
//! Why: the row filters of `prefilter` still read every `attributes` blob in
//! the time range; a rare value (`user.id`, about ten traces of a million)
//! cost a full scan of the attribute column of every segment.
//!
//! Entries are typed the way `AttrValue::matches_text` compares: strings by
//! their bytes, ints and floats by value (`-0.0` as `0.0`), bools by value,
//! and every other value (bytes, arrays, maps, empty) by its text form. A
//! query text is probed with each typed value it could equal (text, and int,
//! float or bool when it parses as one), so the index never rules out a row
//! the exact filter would accept. Keys whose values are nearly unique in the
//! segment's first block (`http.url` and the like) are left out and listed
//! as unindexed, since their filters would cost most of the index; a filter
//! on such a key skips nothing.
//!
//! Stored in the segment's Parquet key-value metadata under
//! [`METADATA_KEY`] (base64 of the format below), written in the same file
//! and rename as the data, so there is no second file to keep in step. The
//! reader strips it from the footer it keeps in memory and reads it again
//! only for attribute searches. Segments written before the index exist have
//! no entry and are scanned as before.
//!
//! Format (little endian): version `u8` (1), block rows `u32`, rows `u64`,
//! unindexed key count `u32` then each key as `u16` length + bytes, block
//! count `u32` then each block's bloom bitset as `u32` length + bytes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use ashiato_model::{AttrValue, KeyValue, Resource, Span};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::bloom_filter::Sbbf;

/// The Parquet key-value metadata key holding the index.
pub const METADATA_KEY: &str = "ashiato.attr_index";
/// Rows per bloom filter. Smaller blocks skip more precisely but repeat
/// every common value in more filters: at 4096 rows the benchmark workload
/// costs about 0.5 bytes per span.
pub const BLOCK_ROWS: usize = 4096;
const VERSION: u8 = 1;
/// False-positive rate each block's filter is folded down to.
const FPP: f64 = 0.01;
/// A key is left out when its first block holds at least this many distinct
/// values and more than half of its occurrences are distinct.
const UNINDEXED_MIN_DISTINCT: usize = 256;

const TAG_TEXT: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_BOOL: u8 = 4;

/// Why a stored index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AttrIndexError {
    #[error("attribute index is not valid base64")]
    Base64,
    #[error("attribute index is truncated")]
    Truncated,
    #[error("attribute index version {0} is unknown")]
    Version(u8),
    #[error("attribute index block {0} has an invalid bloom filter")]
    Bloom(usize),
    #[error("attribute index covers {index} rows, the segment has {segment}")]
    Rows { index: u64, segment: u64 },
}

/// The bytes hashed for one typed `key = value` entry.
fn entry(out: &mut Vec<u8>, key: &str, tag: u8, payload: &[u8]) {
    out.clear();
    out.push(tag);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(payload);
}

/// The entry `value` is stored under; `None` for a NaN, which equals nothing.
fn value_entry(out: &mut Vec<u8>, key: &str, value: &AttrValue) -> bool {
    match value {
        AttrValue::Str(text) => entry(out, key, TAG_TEXT, text.as_bytes()),
        AttrValue::Int(number) => entry(out, key, TAG_INT, &number.to_le_bytes()),
        AttrValue::Float(number) if number.is_nan() => return false,
        AttrValue::Float(number) => entry(out, key, TAG_FLOAT, &float_bits(*number)),
        AttrValue::Bool(flag) => entry(out, key, TAG_BOOL, &[u8::from(*flag)]),
        other => entry(out, key, TAG_TEXT, other.to_text().as_bytes()),
    }
    true
}

/// `-0.0 == 0.0`, so both are stored as `0.0`.
fn float_bits(number: f64) -> [u8; 8] {
    let number = if number == 0.0 { 0.0 } else { number };
    number.to_bits().to_le_bytes()
}

/// Every entry a row must hold for `key` to match the query text `text`
/// under `AttrValue::matches_text`.
fn probes(key: &str, text: &str) -> Vec<Vec<u8>> {
    let mut probes = Vec::new();
    let mut add = |tag: u8, payload: &[u8]| {
        let mut out = Vec::new();
        entry(&mut out, key, tag, payload);
        probes.push(out);
    };
    add(TAG_TEXT, text.as_bytes());
    if let Ok(number) = text.parse::<i64>() {
        add(TAG_INT, &number.to_le_bytes());
    }
    if let Ok(number) = text.parse::<f64>()
        && !number.is_nan()
    {
        add(TAG_FLOAT, &float_bits(number));
    }
    if let Ok(flag) = text.parse::<bool>() {
        add(TAG_BOOL, &[u8::from(flag)]);
    }
    probes
}

/// Keys whose values are nearly unique in `sample`: indexing them would
/// cost most of the index for filters nobody can expect to be cheap.
fn unindexed_keys(sample: &[&Span]) -> Vec<String> {
    let hasher = RandomState::new();
    let mut seen: HashMap<&str, (usize, HashSet<u64>)> = HashMap::new();
    let mut buf = Vec::new();
    for span in sample {
        for kv in &span.attributes {
            if value_entry(&mut buf, &kv.key, &kv.value) {
                let (count, distinct) = seen.entry(kv.key.as_str()).or_default();
                *count += 1;
                distinct.insert(hasher.hash_one(&buf));
            }
        }
    }
    let mut keys: Vec<String> = seen
        .into_iter()
        .filter(|(_, (count, distinct))| {
            distinct.len() >= UNINDEXED_MIN_DISTINCT && distinct.len() * 2 > *count
        })
        .map(|(key, _)| key.to_owned())
        .collect();
    keys.sort();
    keys
}

/// Attribute lists (of spans or resources) read from memory before any is
/// hashed: about 300 KiB of the benchmark workload, well inside L2 cache.
pub(crate) const WARM_LISTS: usize = 256;

/// Reads the attribute lists of `lists` and the first byte of every key
/// and string value, so the cache misses of all of them overlap.
///
/// Why: the rows come sorted by trace id, which scatters them over the
/// whole memtable; walking them one attribute at a time waited for each
/// miss in turn (two thirds of the build time). Loads that nothing but a
/// cheap sum depends on are issued back to back instead, and the hashing
/// pass that follows finds the bytes in cache.
pub(crate) fn warm(lists: &[&[KeyValue]]) {
    let mut touched = 0usize;
    for kv in lists.iter().flat_map(|list| list.iter()) {
        touched = touched.wrapping_add(kv.key.len());
    }
    for kv in lists.iter().flat_map(|list| list.iter()) {
        let key = kv.key.as_bytes().first().copied().unwrap_or(0);
        let value = match &kv.value {
            AttrValue::Str(text) => text.as_bytes().first().copied().unwrap_or(0),
            _ => 0,
        };
        touched = touched.wrapping_add(usize::from(key) + usize::from(value));
    }
    std::hint::black_box(touched);
}

/// The bloom filter of one block of rows.
fn block_bloom(block: &[&Span], unindexed: &[String]) -> Sbbf {
    let indexed = |kv: &KeyValue| !unindexed.contains(&kv.key);
    // Gathered in loops short enough that the misses on the spans, and then
    // on their resources, overlap.
    let gathered: Vec<(&[KeyValue], &Arc<Resource>)> = block
        .iter()
        .map(|span| (span.attributes.as_slice(), &span.resource))
        .collect();
    // Spans share their batch's resource: index each one once per block.
    // (Rows sorted by trace id rarely share a batch, so most are distinct
    // and read like the spans.)
    let mut seen: HashSet<*const Resource> = HashSet::new();
    let resources: Vec<&Arc<Resource>> = gathered
        .iter()
        .map(|(_, resource)| *resource)
        .filter(|resource| seen.insert(Arc::as_ptr(resource)))
        .collect();
    let lists: Vec<&[KeyValue]> = gathered
        .iter()
        .map(|(list, _)| *list)
        .chain(resources.iter().map(|resource| resource.attributes()))
        .collect();
    // Sized for every entry being distinct, then folded to the target rate
    // once the real fill is known.
    let upper_bound: usize = lists.iter().map(|list| list.len()).sum();
    let mut bloom = Sbbf::new_with_ndv_fpp(upper_bound.max(1) as u64, FPP)
        .unwrap_or_else(|_| Sbbf::new_with_num_of_bytes(32));
    let mut buf = Vec::new();
    for part in lists.chunks(WARM_LISTS) {
        warm(part);
        for kv in part.iter().flat_map(|list| list.iter()) {
            if indexed(kv) && value_entry(&mut buf, &kv.key, &kv.value) {
                bloom.insert(buf.as_slice());
            }
        }
    }
    bloom.fold_to_target_fpp(FPP);
    bloom
}

/// The index of spans in the order they are written, as key-value metadata.
pub fn build(spans: &[&Span]) -> parquet::file::metadata::KeyValue {
    build_with(spans, block_bloom)
}

/// [`build`] with the bloom filter of each block made by `block_bloom`
/// (tests compare it against a plain one).
fn build_with(
    spans: &[&Span],
    block_bloom: fn(&[&Span], &[String]) -> Sbbf,
) -> parquet::file::metadata::KeyValue {
    let unindexed = unindexed_keys(&spans[..spans.len().min(BLOCK_ROWS)]);
    let mut out = vec![VERSION];
    out.extend_from_slice(&(BLOCK_ROWS as u32).to_le_bytes());
    out.extend_from_slice(&(spans.len() as u64).to_le_bytes());
    out.extend_from_slice(&(unindexed.len() as u32).to_le_bytes());
    for key in &unindexed {
        let bytes = &key.as_bytes()[..key.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let blocks: Vec<&[&Span]> = spans.chunks(BLOCK_ROWS).collect();
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    let mut bitset = Vec::new();
    for block in blocks {
        bitset.clear();
        // Writing into a Vec cannot fail.
        let _ = block_bloom(block, &unindexed).write_bitset(&mut bitset);
        out.extend_from_slice(&(bitset.len() as u32).to_le_bytes());
        out.extend_from_slice(&bitset);
    }
    parquet::file::metadata::KeyValue::new(METADATA_KEY.to_owned(), STANDARD_NO_PAD.encode(out))
}

/// A decoded index.
pub struct AttrIndex {
    block_rows: usize,
    rows: u64,
    unindexed: Vec<String>,
    blooms: Vec<Sbbf>,
}

/// Reads little-endian fields, failing (never panicking) past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], AttrIndexError> {
        if self.bytes.len() < len {
            return Err(AttrIndexError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AttrIndexError> {
        self.take(N)?
            .try_into()
            .map_err(|_| AttrIndexError::Truncated)
    }

    fn u32(&mut self) -> Result<usize, AttrIndexError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }
}

impl AttrIndex {
    /// Decodes the metadata value written by [`build`] for a segment of
    /// `segment_rows` rows.
    pub fn decode(text: &str, segment_rows: u64) -> Result<AttrIndex, AttrIndexError> {
        let bytes = STANDARD_NO_PAD
            .decode(text)
            .map_err(|_| AttrIndexError::Base64)?;
        let mut reader = Reader { bytes: &bytes };
        let [version] = reader.array::<1>()?;
        if version != VERSION {
            return Err(AttrIndexError::Version(version));
        }
        let block_rows = reader.u32()?.max(1);
        let rows = u64::from_le_bytes(reader.array()?);
        if rows != segment_rows {
            return Err(AttrIndexError::Rows {
                index: rows,
                segment: segment_rows,
            });
        }
        let mut unindexed = Vec::new();
        for _ in 0..reader.u32()? {
            let len = u16::from_le_bytes(reader.array()?) as usize;
            unindexed.push(String::from_utf8_lossy(reader.take(len)?).into_owned());
        }
        let count = reader.u32()?;
        if (count as u64).saturating_mul(block_rows as u64) < rows {
            return Err(AttrIndexError::Truncated);
        }
        let mut blooms = Vec::with_capacity(count.min(bytes.len()));
        for block in 0..count {
            let len = reader.u32()?;
            let bitset = reader.take(len)?;
            // An empty or ragged bitset would make lookups index out of range.
            if bitset.is_empty() || bitset.len() % 32 != 0 {
                return Err(AttrIndexError::Bloom(block));
            }
            blooms.push(Sbbf::new(bitset));
        }
        Ok(AttrIndex {
            block_rows,
            rows,
            unindexed,
            blooms,
        })
    }

    /// The rows that can match every `(key, text)` filter; `None` when the
    /// index rules nothing out. An empty selection means no row can match.
    pub fn selection(&self, filters: &[(String, String)]) -> Option<RowSelection> {
        let probes: Vec<Vec<Vec<u8>>> = filters
            .iter()
            .filter(|(key, _)| !self.unindexed.iter().any(|unindexed| unindexed == key))
            .map(|(key, text)| probes(key, text))
            .collect();
        if probes.is_empty() {
            return None;
        }
        let mut selectors: Vec<RowSelector> = Vec::new();
        let mut skipped_any = false;
        for (block, bloom) in self.blooms.iter().enumerate() {
            let first = (block as u64).saturating_mul(self.block_rows as u64);
            let rows = self.rows.saturating_sub(first).min(self.block_rows as u64) as usize;
            if rows == 0 {
                break;
            }
            let may_match = probes.iter().all(|alternatives| {
                alternatives
                    .iter()
                    .any(|probe| bloom.check(probe.as_slice()))
            });
            skipped_any |= !may_match;
            let selector = if may_match {
                RowSelector::select(rows)
            } else {
                RowSelector::skip(rows)
            };
            match selectors.last_mut() {
                Some(last) if last.skip == selector.skip => last.row_count += rows,
                _ => selectors.push(selector),
            }
        }
        skipped_any.then(|| RowSelection::from(selectors))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ashiato_model::{Scope, SpanId, SpanKind, Status, TraceId};

    /// splitmix64, so the property test is deterministic.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_value(rng: &mut Rng) -> AttrValue {
        match rng.below(9) {
            0 => AttrValue::Str(format!("v{}", rng.below(50))),
            1 => AttrValue::Str(format!("{}", rng.below(20))),
            2 => AttrValue::Int(rng.below(40) as i64 - 20),
            3 => AttrValue::Float([0.0, -0.0, 1.5, 2.0, -3.25][rng.below(5) as usize]),
            4 => AttrValue::Bool(rng.below(2) == 0),
            5 => AttrValue::Bytes(vec![rng.below(4) as u8]),
            6 => AttrValue::Array(vec![AttrValue::Int(rng.below(3) as i64)]),
            7 => AttrValue::Empty,
            _ => AttrValue::Float(f64::NAN),
        }
    }

    fn span(rng: &mut Rng, id: u64, resources: &[Arc<Resource>]) -> Span {
        let keys = ["a", "b", "c", "unique"];
        let mut attributes: Vec<KeyValue> = (0..rng.below(4))
            .map(|_| KeyValue::new(keys[rng.below(3) as usize], random_value(rng)))
            .collect();
        attributes.push(KeyValue::new(keys[3], AttrValue::Int(id as i64)));
        Span {
            trace_id: TraceId::from_halves(1, id / 10 + 1),
            span_id: SpanId::from_u64(id + 1).unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: id,
            end_time_unix_nano: id + 1,
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: resources[rng.below(resources.len() as u64) as usize].clone(),
            scope: Arc::new(Scope::default()),
        }
    }

    fn matches(span: &Span, key: &str, text: &str) -> bool {
        span.attributes
            .iter()
            .chain(span.resource.attributes())
            .any(|kv| kv.key == key && kv.value.matches_text(text))
    }

    fn selected_rows(selection: &Option<RowSelection>, rows: usize) -> Vec<bool> {
        let Some(selection) = selection else {
            return vec![true; rows];
        };
        let mut out = Vec::new();
        for selector in selection.iter() {
            out.extend(std::iter::repeat_n(!selector.skip, selector.row_count));
        }
        out
    }

    /// Property: whatever the values, types and query texts, a row the
    /// exact filter accepts is never skipped.
    #[test]
    fn index_never_skips_a_match() {
        let mut rng = Rng(42);
        let resources: Vec<Arc<Resource>> = (0..3)
            .map(|n| {
                Arc::new(Resource::new(vec![
                    KeyValue::new("service.name", AttrValue::Str(format!("s{n}"))),
                    KeyValue::new("c", AttrValue::Int(n)),
                ]))
            })
            .collect();
        let rows = 3 * BLOCK_ROWS + 123;
        let spans: Vec<Span> = (0..rows as u64)
            .map(|id| span(&mut rng, id, &resources))
            .collect();
        let order: Vec<&Span> = spans.iter().collect();
        let stored = build(&order);
        let index = AttrIndex::decode(stored.value.as_deref().unwrap(), rows as u64).unwrap();
        assert_eq!(index.unindexed, ["unique"]);
        let texts = [
            "v1", "v49", "3", "-20", "0", "-0", "0.0", "1.5", "2", "-3.25", "true", "false", "[1]",
            "", "NaN", "s2", "nothing", "17",
        ];
        let mut skipped = 0;
        for key in ["a", "b", "c", "service.name", "unique", "absent"] {
            for text in texts {
                let filters = vec![(key.to_owned(), text.to_owned())];
                let selection = index.selection(&filters);
                let selected = selected_rows(&selection, rows);
                assert_eq!(selected.len(), rows, "{key}={text}");
                for (row, span) in spans.iter().enumerate() {
                    if matches(span, key, text) {
                        assert!(selected[row], "{key}={text} skipped row {row}");
                    }
                }
                skipped += selected.iter().filter(|keep| !**keep).count();
            }
        }
        assert!(skipped > 0, "the index never skipped anything");
    }

    /// The bloom filter of a block as the index was first built: one
    /// attribute after the other, span by span.
    fn plain_block_bloom(block: &[&Span], unindexed: &[String]) -> Sbbf {
        let mut seen: HashSet<*const Resource> = HashSet::new();
        let mut resources: Vec<&Arc<Resource>> = Vec::new();
        let mut upper_bound = 0;
        for span in block {
            upper_bound += span.attributes.len();
            if seen.insert(Arc::as_ptr(&span.resource)) {
                resources.push(&span.resource);
                upper_bound += span.resource.attributes().len();
            }
        }
        let mut bloom = Sbbf::new_with_ndv_fpp(upper_bound.max(1) as u64, FPP).unwrap();
        let mut buf = Vec::new();
        let attributes = block
            .iter()
            .flat_map(|span| span.attributes.iter())
            .chain(resources.iter().flat_map(|resource| resource.attributes()));
        for kv in attributes.filter(|kv| !unindexed.contains(&kv.key)) {
            if value_entry(&mut buf, &kv.key, &kv.value) {
                bloom.insert(buf.as_slice());
            }
        }
        bloom.fold_to_target_fpp(FPP);
        bloom
    }

    /// The cache-friendly build writes exactly the bytes of the plain walk,
    /// whatever the values, resources and row order (segments written by
    /// either read the same).
    #[test]
    fn build_writes_the_bytes_of_the_plain_walk() {
        for (seed, rows) in [(5, 3 * BLOCK_ROWS + 123), (6, 1), (7, BLOCK_ROWS), (8, 0)] {
            let mut rng = Rng(seed);
            let resources: Vec<Arc<Resource>> = (0..5)
                .map(|n| {
                    Arc::new(Resource::new(vec![
                        KeyValue::new("service.name", AttrValue::Str(format!("s{n}"))),
                        KeyValue::new("b", random_value(&mut rng)),
                    ]))
                })
                .collect();
            let spans: Vec<Span> = (0..rows as u64)
                .map(|id| span(&mut rng, id, &resources))
                .collect();
            let mut order: Vec<&Span> = spans.iter().collect();
            order.sort_by_cached_key(|_| rng.next());
            assert_eq!(
                build(&order).value,
                build_with(&order, plain_block_bloom).value,
                "seed {seed}, {rows} rows"
            );
        }
    }

    #[test]
    fn rare_value_selects_its_block_only() {
        let resources = vec![Arc::new(Resource::new(Vec::new()))];
        let mut rng = Rng(7);
        let mut spans: Vec<Span> = (0..(4 * BLOCK_ROWS) as u64)
            .map(|id| span(&mut rng, id, &resources))
            .collect();
        let row = 2 * BLOCK_ROWS + 5;
        spans[row]
            .attributes
            .push(KeyValue::new("user.id", AttrValue::Int(4242)));
        let order: Vec<&Span> = spans.iter().collect();
        let stored = build(&order);
        let index =
            AttrIndex::decode(stored.value.as_deref().unwrap(), spans.len() as u64).unwrap();
        let selection = index
            .selection(&[("user.id".to_owned(), "4242".to_owned())])
            .unwrap();
        let selected = selected_rows(&Some(selection), spans.len());
        assert!(selected[row]);
        assert_eq!(selected.iter().filter(|keep| **keep).count(), BLOCK_ROWS);
        let nowhere = index.selection(&[("user.id".to_owned(), "1".to_owned())]);
        assert!(
            selected_rows(&nowhere, spans.len())
                .iter()
                .all(|keep| !keep)
        );
    }

    /// Span ids a segment scan finds for `filter`, sorted.
    fn scanned(
        segment: &crate::segment::Segment,
        filter: &crate::filter::SpanFilter,
    ) -> Vec<SpanId> {
        let mut found = Vec::new();
        let flow = crate::scan::scan_span_segment(segment, filter, &mut |span| {
            found.push(span.span_id);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert!(flow.is_continue());
        found.sort();
        found
    }

    /// A segment with the index and the same rows rewritten without it (as
    /// written before the index existed) answer every attribute search like
    /// the exact filter over the spans.
    #[test]
    fn segments_with_and_without_index_find_the_same_spans() {
        use crate::segment::{Segment, write_spans};

        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(3);
        let resources: Vec<Arc<Resource>> = (0..2)
            .map(|n| {
                Arc::new(Resource::new(vec![KeyValue::new(
                    "service.name",
                    AttrValue::Str(format!("s{n}")),
                )]))
            })
            .collect();
        let mut spans: Vec<Span> = (0..(2 * BLOCK_ROWS + 77) as u64)
            .map(|id| span(&mut rng, id, &resources))
            .collect();
        // One block holds the rare value, so the index must skip the others.
        for row in [BLOCK_ROWS + 10, BLOCK_ROWS + 11, 2 * BLOCK_ROWS + 3] {
            spans[row]
                .attributes
                .push(KeyValue::new("rare", AttrValue::Str("needle".into())));
        }
        let refs: Vec<&Span> = spans.iter().collect();
        let indexed_path = dir.path().join("indexed.parquet");
        let indexed = Segment::open(
            1,
            indexed_path.clone(),
            write_spans(&indexed_path, &refs).unwrap(),
            true,
        )
        .unwrap();
        assert!(indexed.has_attr_index());

        let old_path = dir.path().join("old.parquet");
        let written = write_spans(&old_path, &refs).unwrap();
        let rewritten_path = dir.path().join("rewritten.parquet");
        crate::segment::copy_through_arrow_writer(&old_path, &rewritten_path);
        let old = Segment::open(2, rewritten_path, written, true).unwrap();
        assert!(!old.has_attr_index());

        for (key, text) in [
            ("a", "v3"),
            ("b", "2"),
            ("c", "true"),
            ("c", "-0"),
            ("unique", "17"),
            ("service.name", "s1"),
            ("absent", "x"),
            ("rare", "needle"),
        ] {
            let filter = crate::filter::SpanFilter {
                attributes: vec![(key.to_owned(), text.to_owned())],
                ..crate::filter::SpanFilter::default()
            };
            // The same with a cheap predicate, so selection and row filter combine.
            let later = crate::filter::SpanFilter {
                start_min_ns: Some((BLOCK_ROWS + 11) as u64),
                ..filter.clone()
            };
            let mut expected: Vec<SpanId> = spans
                .iter()
                .filter(|span| crate::scan::span_matches(&filter, span))
                .map(|span| span.span_id)
                .collect();
            expected.sort();
            assert_eq!(scanned(&indexed, &filter), expected, "{key}={text}");
            assert_eq!(scanned(&old, &filter), expected, "{key}={text}");
            let mut expected_later: Vec<SpanId> = spans
                .iter()
                .filter(|span| crate::scan::span_matches(&later, span))
                .map(|span| span.span_id)
                .collect();
            expected_later.sort();
            assert_eq!(scanned(&indexed, &later), expected_later, "{key}={text}");
            assert_eq!(scanned(&old, &later), expected_later, "{key}={text}");
        }
        let rare = vec![("rare".to_owned(), "needle".to_owned())];
        let selection = indexed.attribute_selection(&rare).unwrap();
        assert!(selection.row_count() < spans.len());
    }

    #[test]
    fn damaged_index_is_an_error_not_a_panic() {
        let resources = vec![Arc::new(Resource::new(Vec::new()))];
        let mut rng = Rng(1);
        let spans: Vec<Span> = (0..100).map(|id| span(&mut rng, id, &resources)).collect();
        let order: Vec<&Span> = spans.iter().collect();
        let text = build(&order).value.unwrap();
        let bytes = STANDARD_NO_PAD.decode(&text).unwrap();
        for cut in 0..bytes.len() {
            let truncated = STANDARD_NO_PAD.encode(&bytes[..cut]);
            assert!(AttrIndex::decode(&truncated, 100).is_err(), "cut at {cut}");
        }
        for position in 0..bytes.len().min(64) {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0xff;
            let _ = AttrIndex::decode(&STANDARD_NO_PAD.encode(&flipped), 100);
        }
        assert!(AttrIndex::decode("not base64!", 100).is_err());
        assert!(AttrIndex::decode(&text, 99).is_err());
    }
}
