//! Per-minute service and operation aggregates, computed at ingest.
//!
//! Every span that enters the memtable (appended or replayed) adds one to a
//! cell keyed by (minute of its start, service, span name, entry-or-not):
//! count, errors, summed duration and a log-bucketed latency histogram. The
//! services page reads these cells instead of scanning spans, so its cost
//! depends on the number of minutes and operations, not on span volume.
//!
//! # Persistence
//!
//! Cells added since the last rotation form the "open generation". When the
//! writer freezes memtable `N` it writes the open generation to
//! `aggregates/<N:08>.agg` (temp file, fsync, rename) *before* the sealer can
//! mark WAL `N` as covered. At open, files at or below the covered mark are
//! loaded; newer ones are deleted, because their WAL files are replayed and
//! recounted. A crash at any step therefore neither loses nor double counts.
//!
//! File format: `ASHAGG1\n`, a body, then the body's CRC-32 (u32 LE). Body:
//! u32 cell count, then per cell u64 minute, u8 entry flag, service and
//! operation as u32 length + UTF-8, u64 count, u64 errors, u64 sum of
//! durations, u32 bucket count, then (u16 bucket, u64 count) pairs. All
//! integers little endian.
//!
//! Aggregates follow the store's retention: at each rotation, minutes older
//! than it are dropped from memory and files holding only such minutes are
//! deleted (one cell per operation and minute with traffic, so a week of 100
//! busy operations is about a million cells).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ashiato_model::{Span, SpanKind};
use tracing::{error, warn};

use crate::error::StoreError;
use crate::wal::io_error;

/// Nanoseconds per aggregation minute.
pub const MINUTE_NS: u64 = 60_000_000_000;
/// Relative growth between histogram bucket bounds: about 2% error.
const GAMMA: f64 = 1.04;
/// The most points a series is cut into; a finer step is widened.
pub const MAX_POINTS: u64 = 1440;
const MAGIC: &[u8; 8] = b"ASHAGG1\n";
/// Cells copied per lock hold while answering a query.
const QUERY_CHUNK: usize = 2048;

/// A latency histogram with logarithmic buckets: bucket 0 holds zero
/// durations, bucket `i >= 1` holds durations in `(GAMMA^(i-2), GAMMA^(i-1)]` ns.
///
/// A week of minutes times operations is millions of histograms of 100–200
/// buckets each, so a histogram nothing counts into any more is kept
/// encoded: the non-empty buckets in increasing order, each as a varint of
/// `count << 1 | skipped`, followed, when `skipped` is 1, by a varint of how
/// many buckets lie between it and the previous one. Latency buckets are
/// mostly contiguous and a minute's counts small, so a bucket takes about
/// one byte (it took 8 as a packed `u64`, and about 30 in a
/// `BTreeMap<u16, u64>` before that). A histogram still counted into (cells
/// of the open generation, query accumulators) is dense, so a merge adds in
/// place: re-encoding on every batch was a fifth of the WAL writer's time.
#[derive(Debug, Clone)]
pub struct Histogram {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Encoded(Box<[u8]>),
    /// Counts of buckets `first..first + counts.len()`, zeros included.
    Dense {
        first: u16,
        counts: Vec<u64>,
    },
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            repr: Repr::Dense {
                first: 0,
                counts: Vec::new(),
            },
        }
    }
}

/// Equal when the bucket counts are, whichever form each is in.
impl PartialEq for Histogram {
    fn eq(&self, other: &Histogram) -> bool {
        self.buckets().eq(other.buckets())
    }
}

/// Bucket counts saturate here (2^48 spans in one bucket is far beyond any
/// real minute), which also keeps `count << 1` inside a `u64`.
const MAX_COUNT: u64 = (1 << 48) - 1;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Builds a histogram's encoding from buckets given in increasing order.
struct Encoder {
    out: Vec<u8>,
    /// The bucket that needs no skip marker: one past the previous.
    next: u32,
}

impl Encoder {
    fn with_capacity(bytes: usize) -> Encoder {
        Encoder {
            out: Vec::with_capacity(bytes),
            next: 0,
        }
    }

    fn push(&mut self, bucket: u16, count: u64) {
        let skipped = u32::from(bucket).saturating_sub(self.next);
        if count == 0 || u32::from(bucket) < self.next {
            return;
        }
        put_varint(
            &mut self.out,
            count.min(MAX_COUNT) << 1 | u64::from(skipped > 0),
        );
        if skipped > 0 {
            put_varint(&mut self.out, u64::from(skipped));
        }
        self.next = u32::from(bucket) + 1;
    }

    fn finish(self) -> Histogram {
        Histogram {
            repr: Repr::Encoded(self.out.into_boxed_slice()),
        }
    }
}

/// The non-empty buckets of a histogram, in increasing order.
enum Buckets<'a> {
    Encoded(EncodedBuckets<'a>),
    Dense {
        first: u16,
        counts: std::iter::Enumerate<std::slice::Iter<'a, u64>>,
    },
}

impl Iterator for Buckets<'_> {
    type Item = (u16, u64);

    fn next(&mut self) -> Option<(u16, u64)> {
        match self {
            Buckets::Encoded(encoded) => encoded.next(),
            Buckets::Dense { first, counts } => {
                counts
                    .find(|(_, count)| **count > 0)
                    .and_then(|(at, &count)| {
                        Some((first.checked_add(u16::try_from(at).ok()?)?, count))
                    })
            }
        }
    }
}

/// The non-empty buckets of an encoded histogram, in increasing order.
struct EncodedBuckets<'a> {
    bytes: &'a [u8],
    next: u32,
}

impl Iterator for EncodedBuckets<'_> {
    type Item = (u16, u64);

    fn next(&mut self) -> Option<(u16, u64)> {
        let head = take_varint(&mut self.bytes)?;
        let skipped = if head & 1 == 1 {
            take_varint(&mut self.bytes)?
        } else {
            0
        };
        let bucket = u16::try_from(u64::from(self.next).checked_add(skipped)?).ok()?;
        self.next = u32::from(bucket) + 1;
        Some((bucket, head >> 1))
    }
}

impl Histogram {
    fn bucket_of(duration_ns: u64) -> u16 {
        if duration_ns == 0 {
            return 0;
        }
        let exponent = (duration_ns as f64).ln() / GAMMA.ln();
        // u64::MAX lands near bucket 1131, far below u16::MAX
        1 + exponent.ceil().max(0.0) as u16
    }

    /// The value reported for a bucket: the middle of its bounds.
    fn bucket_value(bucket: u16) -> u64 {
        match bucket {
            0 => 0,
            1 => 1,
            _ => {
                let lower = GAMMA.powi(i32::from(bucket) - 2);
                (lower * (1.0 + GAMMA) / 2.0).round() as u64
            }
        }
    }

    /// A histogram of (bucket, count) pairs in any order, repeats summed.
    fn from_unsorted(mut pairs: Vec<(u16, u64)>) -> Histogram {
        pairs.sort_unstable_by_key(|&(bucket, _)| bucket);
        let mut encoder = Encoder::with_capacity(pairs.len() + 4);
        let mut pairs = pairs.into_iter().peekable();
        while let Some((bucket, mut count)) = pairs.next() {
            while let Some((_, more)) = pairs.next_if(|&(next, _)| next == bucket) {
                count = count.saturating_add(more);
            }
            encoder.push(bucket, count);
        }
        encoder.finish()
    }

    /// A histogram of the given durations.
    fn of_durations(durations: impl IntoIterator<Item = u64>) -> Histogram {
        Histogram::from_unsorted(
            durations
                .into_iter()
                .map(|duration| (Self::bucket_of(duration), 1))
                .collect(),
        )
    }

    /// Non-empty buckets and their counts, by bucket.
    fn buckets(&self) -> Buckets<'_> {
        match &self.repr {
            Repr::Encoded(bytes) => Buckets::Encoded(EncodedBuckets { bytes, next: 0 }),
            Repr::Dense { first, counts } => Buckets::Dense {
                first: *first,
                counts: counts.iter().enumerate(),
            },
        }
    }

    fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Encoded(bytes) => bytes.is_empty(),
            Repr::Dense { counts, .. } => counts.is_empty(),
        }
    }

    #[cfg(test)]
    fn add(&mut self, bucket: u16, count: u64) {
        self.merge(&Histogram::from_unsorted(vec![(bucket, count)]));
    }

    #[cfg(test)]
    fn record(&mut self, duration_ns: u64) {
        self.add(Self::bucket_of(duration_ns), 1);
    }

    /// Adds `other`'s counts in place; this histogram becomes dense.
    pub fn merge(&mut self, other: &Histogram) {
        if other.is_empty() {
            return;
        }
        let (first, counts) = self.dense();
        for (bucket, count) in other.buckets() {
            if counts.is_empty() {
                *first = bucket;
            } else if bucket < *first {
                // buckets come in increasing order: at most once per merge
                let missing = usize::from(*first - bucket);
                counts.splice(0..0, std::iter::repeat_n(0, missing));
                *first = bucket;
            }
            let at = usize::from(bucket - *first);
            if at >= counts.len() {
                counts.resize(at + 1, 0);
            }
            counts[at] = counts[at].saturating_add(count).min(MAX_COUNT);
        }
    }

    /// The dense form, decoding an encoded histogram first.
    fn dense(&mut self) -> (&mut u16, &mut Vec<u64>) {
        if let Repr::Encoded(_) = self.repr {
            let mut counts = Vec::new();
            let mut first = 0;
            for (bucket, count) in self.buckets() {
                if counts.is_empty() {
                    first = bucket;
                }
                counts.resize(usize::from(bucket - first), 0);
                counts.push(count);
            }
            self.repr = Repr::Dense { first, counts };
        }
        match &mut self.repr {
            Repr::Dense { first, counts } => (first, counts),
            Repr::Encoded(_) => unreachable!("made dense above"),
        }
    }

    /// Switches to the encoded form, for a histogram nothing counts into
    /// any more.
    fn compact(&mut self) {
        if let Repr::Dense { counts, .. } = &self.repr {
            let mut encoder = Encoder::with_capacity(counts.len() + 4);
            for (bucket, count) in self.buckets() {
                encoder.push(bucket, count);
            }
            *self = encoder.finish();
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets().map(|(_, count)| count).sum()
    }

    /// The `q` quantile (0..=1) in nanoseconds, within about 2%; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in self.buckets() {
            seen += count;
            if seen >= rank {
                return Self::bucket_value(bucket);
            }
        }
        0
    }
}

/// Figures of one key over one minute, or merged over many.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cell {
    count: u64,
    errors: u64,
    sum_ns: u64,
    histogram: Histogram,
}

impl Cell {
    fn merge(&mut self, other: &Cell) {
        self.count += other.count;
        self.errors += other.errors;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.histogram.merge(&other.histogram);
    }

    fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            errors: self.errors,
            sum_ns: self.sum_ns,
            p50_ns: self.histogram.quantile(0.50),
            p95_ns: self.histogram.quantile(0.95),
            p99_ns: self.histogram.quantile(0.99),
        }
    }
}

/// Minute first, so a time range is one contiguous `BTreeMap` range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    minute: u64,
    service: String,
    operation: String,
    /// The span is where a request enters its service (server or consumer
    /// kind, or a root): service-level rates count only these when any exist.
    entry: bool,
}

type Table = BTreeMap<Key, Cell>;

fn is_entry(span: &Span) -> bool {
    matches!(span.kind, SpanKind::Server | SpanKind::Consumer) || span.is_root()
}

/// A batch's cells keyed by borrowed names: a batch repeats few keys, so
/// owned keys are built once per distinct key rather than once per span.
fn batch_cells<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Vec<(BatchKey<'a>, Cell)> {
    let mut tallies: FoldHashMap<BatchKey<'a>, Tally> = FoldHashMap::default();
    for span in spans {
        let key = (
            span.start_time_unix_nano / MINUTE_NS,
            span.service_name(),
            span.name.as_str(),
            is_entry(span),
        );
        let tally = tallies.entry(key).or_default();
        let duration = span.duration_ns();
        tally.count += 1;
        tally.errors += u64::from(span.is_error());
        tally.sum_ns = tally.sum_ns.saturating_add(duration);
        tally.durations.push(duration);
    }
    tallies
        .into_iter()
        .map(|(key, tally)| {
            let cell = Cell {
                count: tally.count,
                errors: tally.errors,
                sum_ns: tally.sum_ns,
                histogram: Histogram::of_durations(tally.durations),
            };
            (key, cell)
        })
        .collect()
}

/// (minute, service, operation, entry) with the names borrowed from a batch.
type BatchKey<'a> = (u64, &'a str, &'a str, bool);

/// foldhash rather than SipHash, whose cost showed in profiles; seeded per
/// process and map, since the names hashed come from clients.
type FoldHashMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One batch cell being counted; its histogram is encoded once at the end.
#[derive(Default)]
struct Tally {
    count: u64,
    errors: u64,
    sum_ns: u64,
    durations: Vec<u64>,
}

/// Which minutes an aggregate query covers and how they are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateQuery {
    pub start_ns: u64,
    /// Exclusive.
    pub end_ns: u64,
    /// Width of one series point; rounded to whole minutes, at least one.
    pub step_ns: u64,
}

impl AggregateQuery {
    fn first_minute(&self) -> u64 {
        self.start_ns / MINUTE_NS
    }

    /// Exclusive.
    fn end_minute(&self) -> u64 {
        self.end_ns.div_ceil(MINUTE_NS).max(self.first_minute() + 1)
    }

    /// Minutes per series point, widened so there are at most `MAX_POINTS`.
    pub fn step_minutes(&self) -> u64 {
        let minutes = self.end_minute() - self.first_minute();
        (self.step_ns / MINUTE_NS)
            .max(1)
            .max(minutes.div_ceil(MAX_POINTS))
    }

    pub fn points(&self) -> usize {
        let minutes = self.end_minute() - self.first_minute();
        usize::try_from(minutes.div_ceil(self.step_minutes())).unwrap_or(usize::MAX)
    }

    /// Start of the first point (unix nanoseconds, minute aligned).
    pub fn aligned_start_ns(&self) -> u64 {
        self.first_minute() * MINUTE_NS
    }
}

/// Count, errors and latency percentiles over some span population.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub errors: u64,
    pub sum_ns: u64,
    pub p50_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
}

/// One operation's figures over the range and per step.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationAggregate {
    pub name: String,
    pub total: LatencySummary,
    pub series: Vec<LatencySummary>,
}

/// One service's figures (entry spans, or all spans if it has none) and its
/// operations, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAggregate {
    pub name: String,
    pub total: LatencySummary,
    pub series: Vec<LatencySummary>,
    pub operations: Vec<OperationAggregate>,
}

/// A total plus one cell per series point, being summed.
struct Accumulator {
    total: Cell,
    series: Vec<Cell>,
}

impl Accumulator {
    fn new(points: usize) -> Accumulator {
        Accumulator {
            total: Cell::default(),
            series: vec![Cell::default(); points],
        }
    }

    fn add(&mut self, point: usize, cell: &Cell) {
        self.total.merge(cell);
        if let Some(slot) = self.series.get_mut(point) {
            slot.merge(cell);
        }
    }

    fn summaries(&self) -> (LatencySummary, Vec<LatencySummary>) {
        (
            self.total.summary(),
            self.series.iter().map(Cell::summary).collect(),
        )
    }
}

struct ServiceAccumulator {
    entry: Accumulator,
    all: Accumulator,
    operations: BTreeMap<String, Accumulator>,
}

struct Tables {
    /// Everything: loaded files, replayed WAL and new appends.
    all: Table,
    /// Added since the last rotation; written out at the next one.
    open_generation: Table,
    /// The newest minute of each file on disk, by generation, so expired
    /// files can be deleted without reading them.
    files: BTreeMap<u64, u64>,
}

/// The aggregates of one store directory.
pub struct Aggregates {
    dir: PathBuf,
    tables: Mutex<Tables>,
}

impl Aggregates {
    /// Loads the generations the catalog covers and deletes newer ones
    /// (their WAL is replayed, which recounts them).
    pub fn open(dir: &Path, covered: u64) -> Result<Aggregates, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let mut all = Table::new();
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let path = entry.path();
            let seq = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".agg"))
                .and_then(|stem| stem.parse::<u64>().ok());
            match seq {
                Some(seq) if seq <= covered => {
                    if let Some(newest) = load_file(&path, &mut all) {
                        files.insert(seq, newest);
                    }
                }
                _ => {
                    // not covered yet (recounted from the WAL) or a stale temp file
                    fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                }
            }
        }
        for cell in all.values_mut() {
            cell.histogram.compact();
        }
        Ok(Aggregates {
            dir: dir.to_owned(),
            tables: Mutex::new(Tables {
                all,
                open_generation: Table::new(),
                files,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts spans that were just inserted into (or replayed into) the
    /// active memtable.
    pub fn record<'a>(&self, spans: impl IntoIterator<Item = &'a Span>) {
        let cells = batch_cells(spans);
        let mut tables = self.lock();
        let tables = &mut *tables;
        for ((minute, service, operation, entry), cell) in cells {
            let key = Key {
                minute,
                service: service.to_owned(),
                operation: operation.to_owned(),
                entry,
            };
            match tables.all.get_mut(&key) {
                Some(existing) => existing.merge(&cell),
                None => {
                    tables.all.insert(key.clone(), cell.clone());
                }
            }
            tables.open_generation.entry(key).or_default().merge(&cell);
        }
    }

    /// Writes the open generation as the aggregates of memtable `seq`. Called
    /// by the writer when it freezes that memtable, before the sealer can
    /// cover its WAL. On failure the cells stay open and go out with the
    /// next generation.
    ///
    /// Then drops what is older than `retention`: minutes from memory and
    /// files whose every minute has expired, so memory and disk stay bounded
    /// by retention times the number of operations.
    pub fn persist_generation(&self, seq: u64, retention: Duration) {
        let generation = std::mem::take(&mut self.lock().open_generation);
        let newest = generation.keys().map(|key| key.minute).max();
        match newest.map(|newest| (newest, write_file(&self.dir, seq, &generation))) {
            None => {}
            Some((newest, Ok(()))) => {
                let mut tables = self.lock();
                tables.files.insert(seq, newest);
                // Nothing counts into these minutes any more (unless a late
                // batch does, which makes its cell dense again).
                for key in generation.keys() {
                    if let Some(cell) = tables.all.get_mut(key) {
                        cell.histogram.compact();
                    }
                }
            }
            Some((_, Err(failure))) => {
                error!(wal_seq = seq, error = %failure, "could not write aggregates, keeping them for the next generation");
                let mut tables = self.lock();
                for (key, cell) in generation {
                    tables.open_generation.entry(key).or_default().merge(&cell);
                }
            }
        }
        let retention_ns = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
        self.prune(now_ns().saturating_sub(retention_ns));
    }

    /// Forgets every minute before `cutoff_ns` and deletes files holding
    /// only such minutes.
    fn prune(&self, cutoff_ns: u64) {
        let cutoff = cutoff_ns / MINUTE_NS;
        let expired: Vec<u64> = {
            let mut tables = self.lock();
            let kept = tables.all.split_off(&Key {
                minute: cutoff,
                service: String::new(),
                operation: String::new(),
                entry: false,
            });
            tables.all = kept;
            let expired: Vec<u64> = tables
                .files
                .iter()
                .filter(|(_, newest)| **newest < cutoff)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in &expired {
                tables.files.remove(seq);
            }
            expired
        };
        for seq in expired {
            let path = file_path(&self.dir, seq);
            if let Err(failure) = fs::remove_file(&path) {
                warn!(path = %path.display(), error = %failure, "could not delete expired aggregates file");
            }
        }
    }

    /// Up to `QUERY_CHUNK` cells from `from` on, before `end_minute`. Queries
    /// copy cells out chunk by chunk so that a long range never holds the
    /// lock the WAL writer needs for more than a moment.
    fn chunk(&self, from: Bound<Key>, end_minute: u64) -> Vec<(Key, Cell)> {
        let tables = self.lock();
        tables
            .all
            .range((from, Bound::Unbounded))
            .take_while(|(key, _)| key.minute < end_minute)
            .take(QUERY_CHUNK)
            .map(|(key, cell)| (key.clone(), cell.clone()))
            .collect()
    }

    /// Per service and operation figures over `query`'s range, by name.
    pub fn query(&self, query: &AggregateQuery) -> Vec<ServiceAggregate> {
        let points = query.points();
        let step = query.step_minutes();
        let first = query.first_minute();
        let mut from = Bound::Included(Key {
            minute: first,
            service: String::new(),
            operation: String::new(),
            entry: false,
        });
        let mut services: BTreeMap<String, ServiceAccumulator> = BTreeMap::new();
        loop {
            let chunk = self.chunk(from, query.end_minute());
            let Some((last, _)) = chunk.last() else {
                break;
            };
            from = Bound::Excluded(last.clone());
            for (key, cell) in &chunk {
                let point = usize::try_from((key.minute - first) / step).unwrap_or(usize::MAX);
                let service =
                    services
                        .entry(key.service.clone())
                        .or_insert_with(|| ServiceAccumulator {
                            entry: Accumulator::new(points),
                            all: Accumulator::new(points),
                            operations: BTreeMap::new(),
                        });
                service.all.add(point, cell);
                if key.entry {
                    service.entry.add(point, cell);
                }
                service
                    .operations
                    .entry(key.operation.clone())
                    .or_insert_with(|| Accumulator::new(points))
                    .add(point, cell);
            }
        }
        services
            .into_iter()
            .map(|(name, service)| {
                let chosen = if service.entry.total.count > 0 {
                    &service.entry
                } else {
                    &service.all
                };
                let (total, series) = chosen.summaries();
                let operations = service
                    .operations
                    .into_iter()
                    .map(|(name, operation)| {
                        let (total, series) = operation.summaries();
                        OperationAggregate {
                            name,
                            total,
                            series,
                        }
                    })
                    .collect();
                ServiceAggregate {
                    name,
                    total,
                    series,
                    operations,
                }
            })
            .collect()
    }
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.agg"))
}

fn write_file(dir: &Path, seq: u64, table: &Table) -> Result<(), StoreError> {
    let body = encode(table);
    let mut bytes = Vec::with_capacity(MAGIC.len() + body.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let path = file_path(dir, seq);
    let temp = dir.join(format!("{seq:08}.agg.tmp"));
    let mut file = fs::File::create(&temp).map_err(|e| io_error(&temp, e))?;
    file.write_all(&bytes).map_err(|e| io_error(&temp, e))?;
    file.sync_all().map_err(|e| io_error(&temp, e))?;
    fs::rename(&temp, &path).map_err(|e| io_error(&path, e))?;
    // the rename itself must be durable before the catalog covers the WAL
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Merges one file into `into`; returns its newest minute, `None` when it
/// is unreadable (logged) or empty.
fn load_file(path: &Path, into: &mut Table) -> Option<u64> {
    let loaded = fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| decode_file(&bytes).ok_or_else(|| "corrupt file".to_owned()));
    match loaded {
        Ok(table) => {
            let newest = table.keys().map(|key| key.minute).max();
            for (key, cell) in table {
                merge_or_insert(into, key, cell);
            }
            newest
        }
        Err(reason) => {
            warn!(path = %path.display(), %reason, "skipped unreadable aggregates file");
            None
        }
    }
}

/// Adds a loaded cell to `table`: moved in as it is (encoded) when its key
/// is new, which is nearly always, so loading never holds the dense form of
/// every histogram at once.
fn merge_or_insert(table: &mut Table, key: Key, cell: Cell) {
    match table.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut existing) => {
            existing.get_mut().merge(&cell)
        }
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(cell);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn encode(table: &Table) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    for (key, cell) in table {
        out.extend_from_slice(&key.minute.to_le_bytes());
        out.push(u8::from(key.entry));
        put_str(&mut out, &key.service);
        put_str(&mut out, &key.operation);
        out.extend_from_slice(&cell.count.to_le_bytes());
        out.extend_from_slice(&cell.errors.to_le_bytes());
        out.extend_from_slice(&cell.sum_ns.to_le_bytes());
        out.extend_from_slice(&(cell.histogram.buckets().count() as u32).to_le_bytes());
        for (bucket, count) in cell.histogram.buckets() {
            out.extend_from_slice(&bucket.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
    }
    out
}

/// Reads little-endian values off a byte slice; every read is bounds checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.u32()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// Parses a whole aggregates file; `None` when it is truncated or corrupt.
/// Never panics, whatever the bytes.
fn decode_file(bytes: &[u8]) -> Option<Table> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    let split = body.len().checked_sub(4)?;
    let (body, crc) = body.split_at(split);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut reader = Reader { bytes: body };
    let cells = reader.u32()?;
    let mut table = Table::new();
    for _ in 0..cells {
        let minute = reader.u64()?;
        let entry = reader.take(1)?.first().copied()? != 0;
        let service = reader.string()?;
        let operation = reader.string()?;
        let (count, errors, sum_ns) = (reader.u64()?, reader.u64()?, reader.u64()?);
        let buckets = reader.u32()?;
        // at most what the remaining bytes can hold (10 bytes a bucket)
        let mut pairs = Vec::with_capacity((buckets as usize).min(reader.bytes.len() / 10));
        for _ in 0..buckets {
            pairs.push((reader.u16()?, reader.u64()?));
        }
        let cell = Cell {
            count,
            errors,
            sum_ns,
            histogram: Histogram::from_unsorted(pairs),
        };
        let key = Key {
            minute,
            service,
            operation,
            entry,
        };
        merge_or_insert(&mut table, key, cell);
    }
    reader.bytes.is_empty().then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_histogram_quantiles_stay_within_two_percent() {
        let mut histogram = Histogram::default();
        for ms in 1..=1000u64 {
            histogram.record(ms * 1_000_000);
        }
        for (q, expected) in [(0.5, 500e6), (0.95, 950e6), (0.99, 990e6), (1.0, 1000e6)] {
            let actual = histogram.quantile(q) as f64;
            assert!(
                (actual - expected).abs() / expected <= 0.021,
                "q{q}: {actual}"
            );
        }
        assert_eq!(Histogram::default().quantile(0.5), 0);
        let mut zeros = Histogram::default();
        zeros.record(0);
        zeros.record(u64::MAX);
        assert_eq!(zeros.quantile(0.5), 0);
        assert!(zeros.quantile(1.0) > 1 << 62);
    }

    /// Bucket counts as a map, the way the histogram used to store them.
    fn reference(durations: &[u64]) -> BTreeMap<u16, u64> {
        let mut counts = BTreeMap::new();
        for &duration in durations {
            *counts.entry(Histogram::bucket_of(duration)).or_default() += 1;
        }
        counts
    }

    #[test]
    fn test_dense_and_encoded_buckets_merge_like_a_map() {
        let few: Vec<u64> = vec![0, 7, 7, 1_000_000];
        let many: Vec<u64> = (0..500u64).map(|i| i * i * 7_919 + i).collect();
        let cases: [(&[u64], &[u64]); 5] = [
            (&[], &[]),
            (&few, &[]),
            (&[], &many),
            (&few, &many),
            (&many, &many[100..]),
        ];
        // each side dense (still counted into) or compacted (encoded)
        let forms = [(false, false), (true, false), (false, true), (true, true)];
        for ((left, right), (compact_a, compact_b)) in cases
            .into_iter()
            .flat_map(|case| forms.map(|form| (case, form)))
        {
            let (mut a, mut b) = (Histogram::default(), Histogram::default());
            left.iter().for_each(|&d| a.record(d));
            right.iter().for_each(|&d| b.record(d));
            if compact_a {
                a.compact();
            }
            if compact_b {
                b.compact();
            }
            a.merge(&b);
            let expected = reference(&[left, right].concat());
            assert_eq!(a.buckets().collect::<BTreeMap<_, _>>(), expected);
            let buckets: Vec<u16> = a.buckets().map(|(bucket, _)| bucket).collect();
            assert!(buckets.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(a.count(), (left.len() + right.len()) as u64);
            let dense = a.clone();
            a.compact();
            assert_eq!(a, dense);
            assert_eq!(a.buckets().collect::<BTreeMap<_, _>>(), expected);
        }
        let mut full = Histogram::default();
        full.add(3, MAX_COUNT);
        full.add(3, 5);
        full.add(1000, u64::MAX);
        assert_eq!(
            full.buckets().collect::<Vec<_>>(),
            vec![(3, MAX_COUNT), (1000, MAX_COUNT)]
        );
    }

    #[test]
    fn test_a_minute_of_latencies_takes_about_a_byte_a_bucket() {
        // 800 spans from 1 ms to 400 ms, a few buckets apart at the tails
        let durations = (0..800u64).map(|i| 1_000_000 + i * i * 620);
        let histogram = Histogram::of_durations(durations);
        let buckets = histogram.buckets().count();
        assert!(buckets > 100, "{buckets}");
        let Repr::Encoded(encoded) = &histogram.repr else {
            panic!("a histogram of durations starts encoded")
        };
        assert!(encoded.len() <= buckets * 5 / 4, "{}", encoded.len());
        assert_eq!(histogram.count(), 800);
    }

    #[test]
    fn test_file_round_trips_and_rejects_every_truncation_and_flip() {
        let mut table = Table::new();
        for minute in 0..3 {
            let mut cell = Cell::default();
            for d in [0, 1, 5, 1_000_000] {
                cell.count += 1;
                cell.sum_ns += d;
                cell.histogram.record(d);
            }
            cell.errors = minute;
            let key = Key {
                minute,
                service: "サービス".into(),
                operation: format!("op{minute}"),
                entry: minute % 2 == 0,
            };
            table.insert(key, cell);
        }
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), 1, &table).unwrap();
        let bytes = fs::read(file_path(dir.path(), 1)).unwrap();
        assert_eq!(decode_file(&bytes), Some(table));
        for len in 0..bytes.len() {
            assert_eq!(decode_file(&bytes[..len]), None, "truncated to {len}");
        }
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x40;
            assert_eq!(decode_file(&flipped), None, "flipped byte {index}");
        }
    }

    #[test]
    fn test_query_reads_more_cells_than_one_chunk_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let aggregates = Aggregates::open(dir.path(), 0).unwrap();
        let operations = QUERY_CHUNK * 2 + 7;
        {
            let mut tables = aggregates.lock();
            for minute in 0..2 {
                for n in 0..operations {
                    let mut cell = Cell {
                        count: 2,
                        errors: 1,
                        sum_ns: 10,
                        histogram: Histogram::default(),
                    };
                    cell.histogram.record(5);
                    cell.histogram.record(5);
                    let key = Key {
                        minute,
                        service: "svc".into(),
                        operation: format!("op{n:05}"),
                        entry: true,
                    };
                    tables.all.insert(key, cell);
                }
            }
        }
        let figures = aggregates.query(&AggregateQuery {
            start_ns: 0,
            end_ns: 2 * MINUTE_NS,
            step_ns: MINUTE_NS,
        });
        assert_eq!(figures.len(), 1);
        assert_eq!(figures[0].total.count, 4 * operations as u64);
        assert_eq!(figures[0].total.errors, 2 * operations as u64);
        assert_eq!(figures[0].operations.len(), operations);
        assert!(figures[0].operations.iter().all(|op| op.total.count == 4));
        assert_eq!(figures[0].series[1].count, 2 * operations as u64);
    }

    fn cell(count: u64) -> Cell {
        let mut cell = Cell {
            count,
            ..Cell::default()
        };
        for _ in 0..count {
            cell.histogram.record(1_000);
        }
        cell
    }

    fn key(minute: u64) -> Key {
        Key {
            minute,
            service: "s".into(),
            operation: "o".into(),
            entry: true,
        }
    }

    #[test]
    fn test_retention_drops_old_minutes_and_expired_files() {
        let dir = tempfile::tempdir().unwrap();
        let now_minute = now_ns() / MINUTE_NS;
        let old = now_minute - 120;
        let aggregates = Aggregates::open(dir.path(), 0).unwrap();
        let put = |minute: u64| {
            let mut tables = aggregates.lock();
            tables.all.entry(key(minute)).or_default().merge(&cell(1));
            tables
                .open_generation
                .entry(key(minute))
                .or_default()
                .merge(&cell(1));
        };
        // generation 1 mixes an old and a current minute: the file stays
        put(old);
        put(now_minute);
        aggregates.persist_generation(1, Duration::from_secs(3600));
        // generation 2 holds only an expired minute: its file goes
        put(old);
        aggregates.persist_generation(2, Duration::from_secs(3600));
        // generation 3 is empty: no file at all
        aggregates.persist_generation(3, Duration::from_secs(3600));
        assert!(file_path(dir.path(), 1).exists());
        assert!(!file_path(dir.path(), 2).exists());
        assert!(!file_path(dir.path(), 3).exists());
        let everything = AggregateQuery {
            start_ns: 0,
            end_ns: (now_minute + 1) * MINUTE_NS,
            step_ns: 0,
        };
        assert_eq!(aggregates.query(&everything)[0].total.count, 1);
        // a reopen loads the old minute of file 1 again until the next rotation prunes it
        drop(aggregates);
        let reopened = Aggregates::open(dir.path(), 3).unwrap();
        assert_eq!(reopened.query(&everything)[0].total.count, 2);
        reopened.persist_generation(4, Duration::from_secs(3600));
        assert_eq!(reopened.query(&everything)[0].total.count, 1);
    }

    #[test]
    fn test_query_steps_are_widened_to_at_most_max_points() {
        let query = AggregateQuery {
            start_ns: 0,
            end_ns: 30 * 24 * 60 * MINUTE_NS,
            step_ns: 0,
        };
        assert!(query.points() as u64 <= MAX_POINTS);
        assert_eq!(query.step_minutes(), 30);
        let partial = AggregateQuery {
            start_ns: MINUTE_NS / 2,
            end_ns: MINUTE_NS / 2 + 1,
            step_ns: MINUTE_NS,
        };
        assert_eq!(partial.points(), 1);
        assert_eq!(partial.aligned_start_ns(), 0);
    }
}
