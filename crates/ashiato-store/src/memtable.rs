//! In-memory recent data: everything acknowledged since the last seal.
//!
//! Data arrives in immutable chunks (one per group commit) behind `Arc`s, so
//! a reader clones the chunk list under a short lock and scans without
//! holding it. A trace-id index makes `get_trace` a hash lookup.

use std::collections::HashMap;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ashiato_model::{AttrValue, KeyValue, LogRecord, Span, TraceId};

use tracing::warn;

use crate::stats::OpStats;

/// Heap bytes of a string or vector beyond its inline header (allocator
/// bookkeeping included, roughly).
fn heap(bytes: usize) -> u64 {
    if bytes == 0 { 0 } else { bytes as u64 + 16 }
}

fn value_memory(value: &AttrValue) -> u64 {
    match value {
        AttrValue::Str(text) => heap(text.len()),
        AttrValue::Bytes(bytes) => heap(bytes.len()),
        AttrValue::Array(values) => {
            heap(size_of_val(values.as_slice())) + values.iter().map(value_memory).sum::<u64>()
        }
        AttrValue::Map(entries) => attributes_memory(entries),
        AttrValue::Empty | AttrValue::Bool(_) | AttrValue::Int(_) | AttrValue::Float(_) => 0,
    }
}

fn attributes_memory(attributes: &[KeyValue]) -> u64 {
    heap(size_of_val(attributes))
        + attributes
            .iter()
            .map(|kv| heap(kv.key.len()) + value_memory(&kv.value))
            .sum::<u64>()
}

/// Per-span cost of the trace-id index entry.
const INDEX_BYTES_PER_SPAN: u64 = 48;

/// Estimated memory a span takes in the memtable (its resource and scope
/// are shared by the batch and not counted).
pub fn span_memory(span: &Span) -> u64 {
    size_of::<Span>() as u64
        + INDEX_BYTES_PER_SPAN
        + heap(span.name.len())
        + heap(span.trace_state.len())
        + heap(span.status.message.len())
        + attributes_memory(&span.attributes)
        + heap(size_of_val(span.events.as_slice()))
        + span
            .events
            .iter()
            .map(|e| heap(e.name.len()) + attributes_memory(&e.attributes))
            .sum::<u64>()
        + heap(size_of_val(span.links.as_slice()))
        + span
            .links
            .iter()
            .map(|l| heap(l.trace_state.len()) + attributes_memory(&l.attributes))
            .sum::<u64>()
}

/// Estimated memory a log record takes in the memtable.
pub fn log_memory(log: &LogRecord) -> u64 {
    size_of::<LogRecord>() as u64
        + heap(log.severity_text.len())
        + heap(log.event_name.len())
        + value_memory(&log.body)
        + attributes_memory(&log.attributes)
}

pub fn spans_memory(spans: &[Span]) -> u64 {
    spans.iter().map(span_memory).sum()
}

pub fn logs_memory(logs: &[LogRecord]) -> u64 {
    logs.iter().map(log_memory).sum()
}

pub struct Memtable {
    /// The newest WAL file whose records this table holds; sealing it covers
    /// every WAL file up to this one.
    pub wal_seq: u64,
    pub span_chunks: Vec<Arc<Vec<Span>>>,
    pub log_chunks: Vec<Arc<Vec<LogRecord>>>,
    /// Trace id → (chunk, index) of its spans.
    trace_index: HashMap<TraceId, Vec<(u32, u32)>>,
    pub stats: OpStats,
    pub span_count: u64,
    pub log_count: u64,
    pub estimated_bytes: u64,
    /// When the first row arrived; drives the age-based seal.
    pub first_insert: Option<Instant>,
}

/// Resident memory above which a sealed memtable's freed rows go back to the
/// OS at once. Below it they stay in the allocator for the next generation:
/// handing them back and faulting them in again cost about 9 % of the
/// server's CPU during sustained ingest when it was done after every seal.
const RELEASE_ABOVE_RESIDENT: u64 = 512 * 1024 * 1024;

/// A sealed memtable's rows are freed at once, over a hundred MiB of small
/// allocations spread over the arenas of the threads that decoded them;
/// glibc keeps them, so when memory is high they are handed back right away.
/// The freeing itself (about 20 allocations per span, a sixth of a seal's
/// CPU) happens on the [`Freer`] thread, so the sealer goes on to the next
/// frozen memtable at once.
impl Drop for Memtable {
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        let rows = Rows {
            span_chunks: std::mem::take(&mut self.span_chunks),
            log_chunks: std::mem::take(&mut self.log_chunks),
            trace_index: std::mem::take(&mut self.trace_index),
        };
        Freer::get().free(rows);
    }
}

/// What a dropped memtable hands to the [`Freer`].
struct Rows {
    span_chunks: Vec<Arc<Vec<Span>>>,
    log_chunks: Vec<Arc<Vec<LogRecord>>>,
    trace_index: HashMap<TraceId, Vec<(u32, u32)>>,
}

impl Rows {
    fn free(self) {
        let Rows {
            span_chunks,
            log_chunks,
            trace_index,
        } = self;
        drop((span_chunks, log_chunks, trace_index));
        ashiato_heap::release_free_memory_above(RELEASE_ABOVE_RESIDENT);
    }
}

/// Dropped memtables that may wait for the [`Freer`] besides the one it is
/// freeing.
const FREE_QUEUE: usize = 1;

/// One process-wide thread that frees dropped memtables' rows, in the order
/// they were dropped. Where it cannot be started, rows are freed by the
/// thread that drops the memtable, as before.
///
/// The memtable's bytes leave the store's memory count before the drop, so
/// rows waiting here are memory the cap no longer sees; the queue is short
/// (freeing a memtable takes a fraction of the time sealing one does) and a
/// dropping thread that finds it full waits.
struct Freer {
    queue: Option<SyncSender<Rows>>,
}

impl Freer {
    fn get() -> &'static Freer {
        static FREER: OnceLock<Freer> = OnceLock::new();
        FREER.get_or_init(Freer::start)
    }

    fn start() -> Freer {
        let (sender, receiver) = mpsc::sync_channel::<Rows>(FREE_QUEUE);
        let started = std::thread::Builder::new()
            .name("ashiato-free".to_owned())
            .spawn(move || {
                while let Ok(rows) = receiver.recv() {
                    rows.free();
                }
            });
        match started {
            Ok(_) => Freer {
                queue: Some(sender),
            },
            Err(failure) => {
                warn!(error = %failure, "could not start the memtable freeing thread, freeing inline");
                Freer { queue: None }
            }
        }
    }

    fn free(&self, rows: Rows) {
        let Some(queue) = &self.queue else {
            rows.free();
            return;
        };
        let sent = queue.send(rows);
        if let Err(mpsc::SendError(rows)) = sent {
            rows.free();
        }
    }
}

impl Memtable {
    pub fn new(wal_seq: u64) -> Memtable {
        Memtable {
            wal_seq,
            span_chunks: Vec::new(),
            log_chunks: Vec::new(),
            trace_index: HashMap::new(),
            stats: OpStats::new(),
            span_count: 0,
            log_count: 0,
            estimated_bytes: 0,
            first_insert: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.span_count == 0 && self.log_count == 0
    }

    fn note_insert(&mut self, memory: u64) {
        self.estimated_bytes += memory;
        self.first_insert.get_or_insert_with(Instant::now);
    }

    pub fn insert_spans(&mut self, spans: Vec<Span>, memory: u64) {
        if spans.is_empty() {
            return;
        }
        let chunk = self.span_chunks.len() as u32;
        for (index, span) in spans.iter().enumerate() {
            self.trace_index
                .entry(span.trace_id)
                .or_default()
                .push((chunk, index as u32));
            self.stats.add_span(span);
        }
        self.span_count += spans.len() as u64;
        self.span_chunks.push(Arc::new(spans));
        self.note_insert(memory);
    }

    pub fn insert_logs(&mut self, logs: Vec<LogRecord>, memory: u64) {
        if logs.is_empty() {
            return;
        }
        self.log_count += logs.len() as u64;
        self.log_chunks.push(Arc::new(logs));
        self.note_insert(memory);
    }

    /// Copies of the spans of one trace held here.
    pub fn trace(&self, trace_id: TraceId, out: &mut Vec<Span>) {
        let Some(positions) = self.trace_index.get(&trace_id) else {
            return;
        };
        for &(chunk, index) in positions {
            if let Some(span) = self
                .span_chunks
                .get(chunk as usize)
                .and_then(|c| c.get(index as usize))
            {
                out.push(span.clone());
            }
        }
    }

    /// Every span, in arrival order (for sealing).
    pub fn spans(&self) -> impl Iterator<Item = &Span> {
        self.span_chunks.iter().flat_map(|chunk| chunk.iter())
    }

    pub fn logs(&self) -> impl Iterator<Item = &LogRecord> {
        self.log_chunks.iter().flat_map(|chunk| chunk.iter())
    }
}
