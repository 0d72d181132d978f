//! ashiato's embedded store: write-ahead log, in-memory recent data, sealed
//! Parquet segments, SQLite catalog, retention.
//!
//! # Contract
//!
//! - `append_*` returns only after the batch is in the write-ahead log and
//!   fdatasynced (group commit); the data is queryable when it returns.
//! - `append_*` never buffers without bound: when the writer is behind it
//!   waits briefly for room, then fails with `AppendError::Overloaded`,
//!   which the server turns into 429/503 + Retry-After or gRPC UNAVAILABLE.
//!
//! # Layout under `data_dir`
//!
//! - `wal/<seq:08>.wal`: write-ahead log files (see `wal`), one per memtable
//!   generation; a new file starts at every seal.
//! - `segments/spans-<seq:08>.parquet`, `segments/logs-<seq:08>.parquet`:
//!   immutable zstd Parquet segments; `<seq>` is the WAL file they cover up to.
//! - `catalog.sqlite`: segments, their time range, services and
//!   per-operation counts, and the "WAL covered up to" mark.
//! - `aggregates/<seq:08>.agg`: per-minute service/operation figures of
//!   memtable generation `<seq>`, written when it is frozen (see `aggregates`).
//!
//! # Data path
//!
//! 1. `append_*` encodes the batch with the store's own varint codec
//!    (`codec`; resource and scope written once per batch), reserves its
//!    bytes from the pending-bytes budget (`max_pending_bytes`, default
//!    64 MiB) and queues it for the writer thread.
//! 2. The writer thread (`writer`) takes everything queued, writes it with a
//!    single write + fdatasync (group commit), inserts the batches into the
//!    active memtable and then acknowledges every waiter.
//! 3. When the memtable passes `seal_max_rows` (1M), `seal_max_bytes`
//!    (128 MiB estimated), `seal_max_age` (2 min, once it holds 10k rows) or
//!    `seal_idle_max_age` (30 min, any size), the writer starts a new
//!    WAL file and freezes the memtable (it stays queryable); the sealer
//!    (`sealer`, `seal_workers` threads, default 2) writes Parquet for up
//!    to that many frozen memtables at once, then, strictly oldest first,
//!    registers the segments and the WAL mark in one SQLite transaction,
//!    swaps memtable for segments in memory under one lock, and deletes the
//!    covered WAL files.
//! 4. At open, orphan segment files (not in the catalog) are deleted, WAL
//!    files at or below the covered mark are deleted, the rest is replayed
//!    into the memtable. A torn WAL tail is logged, truncated and skipped.
//!
//! Memory is bounded twice: by the pending-bytes budget (not yet fsynced)
//! and by `max_memory_bytes` (estimated size of active + frozen memtables;
//! when sealing falls behind, appends get `Overloaded`).
//!
//! # Reads
//!
//! Segment metadata is cached in memory when a segment is opened: the
//! Parquet footer with its page index, time range, services, and for every
//! row group its trace-id min/max and its `trace_id` bloom filter (about ten
//! bits per distinct trace). Span rows are sorted by trace id then start
//! time, so one trace is contiguous, row groups cover disjoint id ranges and
//! data pages (8k rows) narrow ranges. A trace lookup therefore skips, without
//! IO, every row group whose range or bloom filter rules the id out, reads
//! only the pages of the remaining ones whose page-index range holds it, and
//! decodes other columns only for rows whose `trace_id` matches (a Parquet
//! row filter).
//!
//! Scans prune segments by time range and service set from memory. Inside a
//! span segment, Parquet row filters (`prefilter`) first read only the plain
//! columns (time, service, name, duration, status), then, for attribute
//! filters, only the `attributes`/`resource` blobs of the surviving rows,
//! searched for the encoded `key` + value bytes; every column is decoded
//! only for rows that pass both. Before that, an attribute filter consults
//! the segment's attribute index (`attr_index`: a bloom filter of typed
//! `key = value` entries per 4096 rows, kept in the Parquet footer and read
//! only by such searches), so blocks and whole segments that cannot hold the
//! value are never read. `scan_spans` visits recent data first;
//! `scan_spans_newest_first` also reports each segment's newest start time
//! so a "newest traces" search can stop early, and `get_traces` reads
//! several traces with one reader per segment.
//! `scan_logs` visits memtable logs newest first, then segments by newest
//! time, each segment's matches sorted newest first.
//!
//! # Encoding
//!
//! Span segment columns: `trace_id` FixedSizeBinary(16), `span_id` and
//! `parent_span_id` FixedSizeBinary(8), `service`, `name`,
//! `status_message`, `trace_state` strings, `kind` and `status_code` small
//! ints, `start_time` u64, `end_offset` i64, `flags` u32, and `attributes`,
//! `events`, `links`, `resource`, `scope` as blobs in the store's codec.
//! Repeating columns (service, name, resource and scope blobs, …) are
//! dictionary encoded, which makes them nearly free; nearly unique ones
//! (ids, times, attributes) are plain, because a dictionary there only
//! falls back after costing CPU, and a trace lookup would decompress each
//! large dictionary page. zstd level 3, row groups of 64k rows, data pages
//! of at most 8k rows / 128 KiB. A span segment's frequent attribute keys
//! also get nullable columns of their own, `attr.<n>` (see `promoted`),
//! with a placeholder in the `attributes` blob keeping each one's position;
//! the segment's key-value metadata lists them. Log segments: `service`, `time`,
//! `observed_time`, `severity_number`, `severity_text`, `body` (codec blob),
//! `trace_id`, `span_id`, `flags`, `event_name`, `attributes`, `resource`,
//! `scope`, sorted by service then time.
//!
//! Measured on synthetic spans (5-span traces over 5 services, 10
//! attributes each with random user ids and amounts), release build on the
//! shared 2-core dev machine, `store_bench` with 1M spans, 8 appenders of
//! 500-span batches: about 430k spans/s durably acknowledged (the store
//! alone, no OTLP decoding), 33.8 bytes/span on disk after sealing, trace
//! lookup p50 1.2 ms / p99 1.9 ms over 5 segments; about 1.26 KB/span
//! estimated in the memtable. Run it with
//! `cargo run --release -p ashiato-store --example store_bench`.
//!
//! # Deviations from the recommended design
//!
//! - Service and operation counters are kept in memory (loaded from the
//!   catalog at open, updated on seal and retention) so the stats endpoints
//!   never touch SQLite or Parquet.
//! - The span end time is stored as a signed offset from the start
//!   (`end_offset`), not a duration: small numbers compress like a duration,
//!   and an end before the start still round-trips exactly.
//! - Age-based sealing has two tiers: 2 minutes once the memtable holds
//!   10k rows, 30 minutes otherwise. A single 2-minute rule makes a quiet
//!   server write 720 tiny segments a day (5k per week of retention), each
//!   with footer metadata cached in memory and consulted by every trace
//!   lookup; there is no compaction yet. Replaying under 10k rows is instant.
//! - `data_dir/LOCK` is `flock`ed so a second process cannot open the same
//!   store and interleave WAL files.

mod aggregates;
mod attr_index;
mod catalog;
mod codec;
mod config;
mod error;
mod filter;
mod memtable;
mod prefilter;
mod promoted;
mod retention;
mod scan;
mod seal_hold;
mod sealer;
mod segment;
mod shared;
mod snapshot;
mod stats;
mod timings;
mod wal;
mod writer;

use std::fs;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ashiato_model::{LogRecord, Span, TraceId};
use tokio::sync::{Semaphore, TryAcquireError, oneshot};
use tracing::{info, warn};

use crate::catalog::{Catalog, SegmentKind};
use crate::codec::Encoder;
use crate::memtable::Memtable;
use crate::segment::Segment;
use crate::shared::{DirLock, Paths, Shared, State};
use crate::stats::OpStats;
use crate::wal::{RecordKind, WalFile, io_error};
use crate::writer::{Batch, Commit, Gate, Writer, WriterMsg};

pub use crate::aggregates::{
    AggregateQuery, LatencySummary, MINUTE_NS, OperationAggregate, ServiceAggregate,
};
pub use crate::codec::CodecError;
pub use crate::config::StoreConfig;
pub use crate::error::{AppendError, StoreError};
pub use crate::filter::{LogFilter, SpanFilter};
pub use crate::seal_hold::SealHold;
pub use crate::snapshot::SnapshotSummary;
pub use crate::timings::{
    BUCKET_BOUNDS_SECONDS, DurationHistogram, HistogramSnapshot, StoreTimingsSnapshot,
};

/// Per-service counters over all stored spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

/// Per-operation (span name) counters of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationStats {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

/// Returned by `Store::stall_writer`; the writer resumes when it is dropped.
#[doc(hidden)]
pub struct WriterStall {
    gate: Arc<Gate>,
}

impl Drop for WriterStall {
    fn drop(&mut self) {
        self.gate.set_closed(false);
    }
}

/// Sizes of what the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub span_segments: usize,
    pub log_segments: usize,
    pub sealed_spans: u64,
    pub sealed_logs: u64,
    pub span_segment_bytes: u64,
    pub log_segment_bytes: u64,
    /// Rows in memory (active and being sealed), also in the WAL.
    pub memtable_spans: u64,
    pub memtable_logs: u64,
    /// Estimated memory of those rows.
    pub memtable_bytes: u64,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<mpsc::Sender<WriterMsg>>>,
    pending: Arc<Semaphore>,
    pending_limit: u32,
    closed: AtomicBool,
    retention_stop: Mutex<Option<mpsc::Sender<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    writer_gate: Arc<Gate>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        lock(&self.writer).take();
        lock(&self.retention_stop).take();
        for handle in lock(&self.threads).drain(..) {
            if handle.join().is_err() {
                warn!("a store thread panicked");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes to reserve for a batch's WAL record, from its estimated memtable
/// size: the codec packs ids and numbers and has no per-allocation or
/// struct overhead, so for spans of many short attributes a record is well
/// under half of that estimate and the buffer is never regrown (each
/// regrowth copied the whole record so far); long string values approach
/// one to one and may cost one regrowth.
fn record_capacity(memory: u64) -> usize {
    usize::try_from(memory / 2).unwrap_or(usize::MAX)
}

/// How long clients are told to wait when the store is overloaded.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Poll interval while waiting for memtable memory to be released.
const MEMORY_POLL: Duration = Duration::from_millis(10);

/// A handle to the open store; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store under `config.data_dir`, replaying the
    /// write-ahead log. A torn WAL tail is skipped with a warning. On a full
    /// disk the error is [`StoreError::DiskFull`], whatever SQLite or the
    /// file system reported.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let data_dir = config.data_dir.clone();
        Store::open_at(config).map_err(|error| error::explain_no_space(&data_dir, error))
    }

    fn open_at(config: StoreConfig) -> Result<Store, StoreError> {
        let paths = Paths {
            wal_dir: config.data_dir.join("wal"),
            segments_dir: config.data_dir.join("segments"),
        };
        for dir in [&config.data_dir, &paths.wal_dir, &paths.segments_dir] {
            fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let dir_lock = DirLock::acquire(&config.data_dir)?;
        let catalog = Catalog::open(&config.data_dir.join("catalog.sqlite"))?;
        let covered = catalog.wal_covered()?;
        let (span_segments, log_segments, sealed_stats) =
            load_segments(&catalog, &paths.segments_dir)?;

        let (active, wal) = replay_wal(&paths.wal_dir, covered)?;
        let aggregates =
            aggregates::Aggregates::open(&config.data_dir.join("aggregates"), covered)?;
        aggregates.record(active.spans());
        let memory = active.estimated_bytes;
        let state = State {
            active,
            frozen: Vec::new(),
            span_segments,
            log_segments,
            sealed_stats,
        };
        let retention_interval = config.retention_interval;
        let pending_limit = u32::try_from(config.max_pending_bytes)
            .unwrap_or(u32::MAX)
            .max(1);
        let shared = Arc::new(Shared {
            _dir_lock: dir_lock,
            config,
            paths,
            state: RwLock::new(state),
            catalog: Mutex::new(catalog),
            memory_bytes: AtomicU64::new(memory),
            shutting_down: AtomicBool::new(false),
            aggregates,
            seal_hold: Arc::default(),
            timings: Default::default(),
        });
        retention::enforce(&shared)?;

        let (writer_tx, writer_rx) = mpsc::channel();
        let (sealer_tx, sealer_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let writer_gate = Arc::new(Gate::default());
        let writer = Writer {
            shared: shared.clone(),
            wal,
            inbox: writer_rx,
            sealer: sealer_tx,
            gate: writer_gate.clone(),
        };
        let threads = vec![
            spawn("ashiato-wal", move || writer.run())?,
            spawn("ashiato-seal", {
                let shared = shared.clone();
                move || sealer::run(shared, sealer_rx)
            })?,
            spawn("ashiato-retention", {
                let shared = shared.clone();
                move || retention::run(shared, stop_rx, retention_interval)
            })?,
        ];
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(writer_tx)),
                pending: Arc::new(Semaphore::new(pending_limit as usize)),
                pending_limit,
                closed: AtomicBool::new(false),
                retention_stop: Mutex::new(Some(stop_tx)),
                threads: Mutex::new(threads),
                writer_gate,
            }),
        })
    }

    /// Durably appends spans; returns once they are in the fsynced WAL.
    pub async fn append_spans(&self, spans: Vec<Span>) -> Result<(), AppendError> {
        if spans.is_empty() {
            return Ok(());
        }
        let memory = memtable::spans_memory(&spans);
        let mut encoder = Encoder {
            buf: wal::record_buffer(record_capacity(memory)),
        };
        codec::encode_spans(&spans, &mut encoder);
        let record =
            wal::finish_record(RecordKind::Spans, encoder.buf).ok_or(StoreError::BatchTooLarge)?;
        self.append(record, memory, Batch::Spans(spans)).await
    }

    /// Durably appends log records; returns once they are in the fsynced WAL.
    pub async fn append_logs(&self, logs: Vec<LogRecord>) -> Result<(), AppendError> {
        if logs.is_empty() {
            return Ok(());
        }
        let memory = memtable::logs_memory(&logs);
        let mut encoder = Encoder {
            buf: wal::record_buffer(record_capacity(memory)),
        };
        codec::encode_logs(&logs, &mut encoder);
        let record =
            wal::finish_record(RecordKind::Logs, encoder.buf).ok_or(StoreError::BatchTooLarge)?;
        self.append(record, memory, Batch::Logs(logs)).await
    }

    async fn append(&self, record: Vec<u8>, memory: u64, batch: Batch) -> Result<(), AppendError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        let deadline = Instant::now() + inner.shared.config.overload_wait;
        self.wait_for_memory(deadline).await?;
        // A batch larger than the whole budget takes all of it rather than
        // waiting forever.
        let wanted = u32::try_from(record.len())
            .unwrap_or(u32::MAX)
            .min(inner.pending_limit);
        let permit = match inner.pending.clone().try_acquire_many_owned(wanted) {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(AppendError::Closed),
            // Only a full budget needs the timer.
            Err(TryAcquireError::NoPermits) => tokio::time::timeout_at(
                deadline.into(),
                inner.pending.clone().acquire_many_owned(wanted),
            )
            .await
            .map_err(|_| AppendError::Overloaded {
                retry_after: RETRY_AFTER,
            })?
            .map_err(|_| AppendError::Closed)?,
        };
        let (done, acknowledged) = oneshot::channel();
        let commit = Commit {
            record,
            memory,
            batch,
            done,
            permit,
        };
        {
            let writer = lock(&inner.writer);
            let sender = writer.as_ref().ok_or(AppendError::Closed)?;
            sender
                .send(WriterMsg::Commit(commit))
                .map_err(|_| AppendError::Closed)?;
        }
        match acknowledged.await {
            Ok(result) => result.map_err(AppendError::Store),
            Err(_) => Err(AppendError::Closed),
        }
    }

    async fn wait_for_memory(&self, deadline: Instant) -> Result<(), AppendError> {
        let shared = &self.inner.shared;
        while shared.memory_bytes.load(Ordering::Relaxed) >= shared.config.max_memory_bytes {
            if Instant::now() >= deadline {
                return Err(AppendError::Overloaded {
                    retry_after: RETRY_AFTER,
                });
            }
            tokio::time::sleep(MEMORY_POLL).await;
        }
        Ok(())
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every stored span of one trace (any order); empty when unknown.
    pub fn get_trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let mut spans = Vec::new();
        let segments: Vec<Arc<Segment>> = {
            let state = self.state();
            state.active.trace(trace_id, &mut spans);
            for table in &state.frozen {
                table.trace(trace_id, &mut spans);
            }
            state.span_segments.clone()
        };
        for segment in &segments {
            segment.trace(trace_id, &mut spans)?;
        }
        Ok(spans)
    }

    /// Every stored span of each of `trace_ids` (any order); one pass over
    /// the memtables and at most one reader per segment for all of them,
    /// instead of one lookup per trace walking every segment.
    pub fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        self.traces_with(trace_ids, segment::SpanParts::Full)
    }

    /// [`Store::get_traces`] without the attributes, events and links of
    /// sealed spans (memtable spans come whole): what a search needs to
    /// summarise its result traces, at a fraction of the decompression.
    pub fn get_trace_outlines(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        self.traces_with(trace_ids, segment::SpanParts::Outline)
    }

    fn traces_with(
        &self,
        trace_ids: &[TraceId],
        parts: segment::SpanParts,
    ) -> Result<Vec<Span>, StoreError> {
        let mut spans = Vec::new();
        let segments: Vec<Arc<Segment>> = {
            let state = self.state();
            for &trace_id in trace_ids {
                state.active.trace(trace_id, &mut spans);
                for table in &state.frozen {
                    table.trace(trace_id, &mut spans);
                }
            }
            state.span_segments.clone()
        };
        for segment in &segments {
            segment.traces_with(trace_ids, parts, &mut spans)?;
        }
        Ok(spans)
    }

    /// Calls `visit` for every stored span matching `filter` until it breaks.
    /// Blocking; run it off the async runtime. Recent data comes first.
    pub fn scan_spans(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.scan_spans_newest_first(filter, visit, &mut |_| ControlFlow::Continue(()))
    }

    /// `scan_spans`, telling `older` before each segment the newest start
    /// time any span visited from then on can have, so a caller after the
    /// newest matches can stop (`Break`) once nothing older can outrank what
    /// it holds. The memtables (whose spans may be of any age) come first,
    /// then segments by newest start time, descending.
    pub fn scan_spans_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(&Span) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (chunks, segments) = self.span_sources(filter);
        for chunk in &chunks {
            for span in chunk.iter() {
                if scan::span_matches(filter, span) && visit(span).is_break() {
                    return Ok(());
                }
            }
        }
        for segment in &segments {
            if older(segment.max_time).is_break()
                || scan::scan_span_segment(segment, filter, visit)?.is_break()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `scan_spans_newest_first` for callers that need only the trace id
    /// and start time of each matching span (trace search ranks traces by
    /// them): segment rows that match are not decoded beyond those columns
    /// (and the attribute blobs the exact attribute test needs).
    pub fn scan_span_starts_newest_first(
        &self,
        filter: &SpanFilter,
        visit: &mut dyn FnMut(TraceId, u64) -> ControlFlow<()>,
        older: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (chunks, segments) = self.span_sources(filter);
        for chunk in &chunks {
            for span in chunk.iter() {
                if scan::span_matches(filter, span)
                    && visit(span.trace_id, span.start_time_unix_nano).is_break()
                {
                    return Ok(());
                }
            }
        }
        for segment in &segments {
            if older(segment.max_time).is_break()
                || scan::scan_span_segment_starts(segment, filter, visit)?.is_break()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Memtable chunks, newest first, and the segments that can hold spans
    /// matching `filter`, by newest start time descending.
    fn span_sources(&self, filter: &SpanFilter) -> (Vec<Arc<Vec<Span>>>, Vec<Arc<Segment>>) {
        let state = self.state();
        let mut chunks: Vec<Arc<Vec<Span>>> =
            state.active.span_chunks.iter().rev().cloned().collect();
        for table in state.frozen.iter().rev() {
            chunks.extend(table.span_chunks.iter().rev().cloned());
        }
        let segments = self.pruned_segments(
            &state.span_segments,
            filter.start_min_ns,
            filter.start_max_ns,
            filter.service.as_deref(),
        );
        (chunks, segments)
    }

    /// Segments that can hold matching rows, newest first.
    fn pruned_segments(
        &self,
        segments: &[Arc<Segment>],
        min: Option<u64>,
        max: Option<u64>,
        service: Option<&str>,
    ) -> Vec<Arc<Segment>> {
        let mut kept: Vec<Arc<Segment>> = segments
            .iter()
            .filter(|s| s.overlaps(min, max) && s.may_hold_service(service))
            .cloned()
            .collect();
        kept.sort_by_key(|s| std::cmp::Reverse(s.max_time));
        kept
    }

    /// Calls `visit` for every stored log record matching `filter`, newest
    /// first where the store can, until it breaks. Blocking. In-memory
    /// records come first, newest first; then each segment's matches newest
    /// first, segments by newest time (segments may overlap in time, so the
    /// order across them is approximate).
    pub fn scan_logs(
        &self,
        filter: &LogFilter,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (chunks, segments) = {
            let state = self.state();
            let mut chunks: Vec<Arc<Vec<LogRecord>>> =
                state.active.log_chunks.iter().rev().cloned().collect();
            for table in state.frozen.iter().rev() {
                chunks.extend(table.log_chunks.iter().rev().cloned());
            }
            (
                chunks,
                self.pruned_segments(
                    &state.log_segments,
                    filter.time_min_ns,
                    filter.time_max_ns,
                    filter.service.as_deref(),
                ),
            )
        };
        // Arrival order is not time order; sort the (few) matches newest first.
        let mut matches: Vec<&LogRecord> = chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .filter(|log| scan::log_matches(filter, log))
            .collect();
        matches.sort_by_key(|log| std::cmp::Reverse(log.effective_time_unix_nano()));
        for log in matches {
            if visit(log).is_break() {
                return Ok(());
            }
        }
        for segment in &segments {
            for log in scan::collect_log_segment(segment, filter)? {
                if visit(&log).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// All (service, operation) counts: sealed plus in memory.
    fn merged_stats(&self) -> OpStats {
        let state = self.state();
        let mut merged = state.sealed_stats.clone();
        merged.merge(&state.active.stats);
        for table in &state.frozen {
            merged.merge(&table.stats);
        }
        merged
    }

    /// Span and error counts per service, by name.
    /// Per service and operation counts, errors and latency percentiles over
    /// a time range, from the per-minute aggregates kept at ingest.
    pub fn aggregates(&self, query: &AggregateQuery) -> Vec<ServiceAggregate> {
        self.inner.shared.aggregates.query(query)
    }

    pub fn service_stats(&self) -> Vec<ServiceStats> {
        let mut services: Vec<ServiceStats> = Vec::new();
        for (service, _, counts) in self.merged_stats().iter() {
            match services.last_mut() {
                Some(last) if last.name == service => {
                    last.span_count += counts.spans;
                    last.error_count += counts.errors;
                }
                _ => services.push(ServiceStats {
                    name: service.to_owned(),
                    span_count: counts.spans,
                    error_count: counts.errors,
                }),
            }
        }
        services
    }

    /// Span and error counts per operation of one service, by name.
    pub fn operation_stats(&self, service: &str) -> Vec<OperationStats> {
        self.merged_stats()
            .operations_of(service)
            .map(|(name, counts)| OperationStats {
                name: name.to_owned(),
                span_count: counts.spans,
                error_count: counts.errors,
            })
            .collect()
    }

    /// Stops accepting appends, waits for in-flight ones, syncs the WAL.
    pub async fn close(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        let (done, finished) = oneshot::channel();
        let sent = lock(&inner.writer)
            .take()
            .map(|sender| sender.send(WriterMsg::Shutdown(done)));
        if let Some(Ok(())) = sent {
            // An error means the writer is already gone, which is just as closed.
            let _ = finished.await;
        }
        inner.shared.shutting_down.store(true, Ordering::Relaxed);
        lock(&inner.retention_stop).take();
        info!("store closed");
        Ok(())
    }

    /// Seals the in-memory data into Parquet segments now and waits until
    /// it is done (and every earlier seal too). Blocking; for tests and
    /// maintenance.
    pub fn seal_now(&self) -> Result<(), StoreError> {
        let (reply, result) = mpsc::channel();
        {
            let writer = lock(&self.inner.writer);
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(WriterMsg::Seal(reply))
                .map_err(|_| StoreError::Closed)?;
        }
        result.recv().map_err(|_| StoreError::Closed)?
    }

    /// Drops expired segments now (also done at open and every
    /// `retention_interval`); returns how many were dropped.
    pub fn enforce_retention_now(&self) -> Result<usize, StoreError> {
        retention::enforce(&self.inner.shared)
    }

    /// Bytes accepted by `append_*` but not yet acknowledged.
    pub fn pending_bytes(&self) -> usize {
        (self.inner.pending_limit as usize).saturating_sub(self.inner.pending.available_permits())
    }

    /// What is sealed on disk, for tests and metrics.
    pub fn storage_stats(&self) -> StorageStats {
        let state = self.state();
        let sum = |segments: &[Arc<Segment>], field: fn(&Segment) -> u64| -> u64 {
            segments.iter().map(|s| field(s)).sum()
        };
        StorageStats {
            span_segments: state.span_segments.len(),
            log_segments: state.log_segments.len(),
            sealed_spans: sum(&state.span_segments, |s| s.rows),
            sealed_logs: sum(&state.log_segments, |s| s.rows),
            span_segment_bytes: sum(&state.span_segments, |s| s.bytes),
            log_segment_bytes: sum(&state.log_segments, |s| s.bytes),
            memtable_spans: state.active.span_count
                + state.frozen.iter().map(|t| t.span_count).sum::<u64>(),
            memtable_logs: state.active.log_count
                + state.frozen.iter().map(|t| t.log_count).sum::<u64>(),
            memtable_bytes: self.inner.shared.memory_bytes.load(Ordering::Relaxed),
        }
    }

    /// Writes a point-in-time copy of the store into `dest` (a new or
    /// empty directory) that [`Store::open`] reads as a data dir: seals the
    /// memtables first (so it holds everything acknowledged before the
    /// call), then copies the catalog and hard-links its segments (see the
    /// `snapshot` module). Blocking.
    pub fn snapshot_into(&self, dest: &Path) -> Result<SnapshotSummary, StoreError> {
        self.seal_now()?;
        snapshot::write(&self.inner.shared, dest)
    }

    /// How long WAL group commits and seals took so far, for metrics.
    pub fn timings(&self) -> StoreTimingsSnapshot {
        let timings = &self.inner.shared.timings;
        StoreTimingsSnapshot {
            wal_sync: timings.wal_sync.snapshot(),
            seal: timings.seal.snapshot(),
        }
    }

    /// Test hook: while the returned guard lives the WAL writer commits
    /// nothing, as if the disk had stalled.
    #[doc(hidden)]
    pub fn stall_writer(&self) -> WriterStall {
        self.inner.writer_gate.set_closed(true);
        WriterStall {
            gate: self.inner.writer_gate.clone(),
        }
    }

    /// Test hook: the next memtable handed to the sealer is not written
    /// until the returned guard is dropped (or the store shuts down), so a
    /// later one can finish writing first.
    #[doc(hidden)]
    pub fn hold_next_seal(&self) -> SealHold {
        SealHold::arm(self.inner.shared.seal_hold.clone())
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|e| io_error(Path::new(name), e))
}

type LoadedSegments = (Vec<Arc<Segment>>, Vec<Arc<Segment>>, OpStats);

/// Opens every cataloged segment and deletes files the catalog does not know
/// (a seal interrupted before its commit, or a retention interrupted after).
fn load_segments(catalog: &Catalog, dir: &Path) -> Result<LoadedSegments, StoreError> {
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    let mut stats = OpStats::new();
    let mut known = std::collections::HashSet::new();
    for entry in catalog.load_segments()? {
        known.insert(entry.file.clone());
        let path = dir.join(&entry.file);
        let is_spans = entry.kind == SegmentKind::Spans;
        let segment = match Segment::open(entry.id, path.clone(), entry.written, is_spans) {
            Ok(segment) => Arc::new(segment),
            Err(failure) => {
                warn!(path = %path.display(), error = %failure, "skipped unreadable segment");
                continue;
            }
        };
        if is_spans {
            stats.merge(&segment.ops);
            spans.push(segment);
        } else {
            logs.push(segment);
        }
    }
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !known.contains(&name) {
            let path = entry.path();
            warn!(path = %path.display(), "deleting orphan segment file");
            fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok((spans, logs, stats))
}

/// Rebuilds the memtable from WAL files not covered by segments and opens a
/// fresh WAL file after them.
fn replay_wal(wal_dir: &Path, covered: u64) -> Result<(Memtable, WalFile), StoreError> {
    sealer::delete_covered_wal(wal_dir, covered);
    let seqs = wal::list_files(wal_dir)?;
    let next_seq = seqs.last().copied().unwrap_or(0).max(covered) + 1;
    let mut table = Memtable::new(next_seq);
    for seq in seqs.into_iter().filter(|&s| s > covered) {
        let path = wal::wal_path(wal_dir, seq);
        for record in wal::read_file(&path)? {
            replay_record(&path, record, &mut table);
        }
    }
    if !table.is_empty() {
        info!(
            spans = table.span_count,
            logs = table.log_count,
            "replayed wal"
        );
    }
    let wal = WalFile::create(wal_dir, next_seq)?;
    Ok((table, wal))
}

fn replay_record(path: &Path, record: wal::Record, table: &mut Memtable) {
    let decoded = match record.kind {
        RecordKind::Spans => codec::decode_spans(&record.payload).map(|spans| {
            let memory = memtable::spans_memory(&spans);
            table.insert_spans(spans, memory)
        }),
        RecordKind::Logs => codec::decode_logs(&record.payload).map(|logs| {
            let memory = memtable::logs_memory(&logs);
            table.insert_logs(logs, memory)
        }),
    };
    if let Err(failure) = decoded {
        warn!(path = %path.display(), error = %failure, "skipped undecodable wal record");
    }
}
