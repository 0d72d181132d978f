//! In-memory recent data: everything acknowledged since the last seal.
//!
//! Data arrives in immutable chunks (one per group commit) behind `Arc`s, so
//! a reader clones the chunk list under a short lock and scans without
//! holding it. A trace-id index makes `get_trace` a hash lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ashiato_model::{LogRecord, Span, TraceId};

use crate::stats::OpStats;

/// Rough in-memory cost of the data, from its encoded size: decoded model
/// values (strings, vectors, headers) take a few times their wire bytes.
const MEMORY_PER_ENCODED_BYTE: u64 = 3;

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

    fn note_insert(&mut self, encoded_bytes: usize) {
        self.estimated_bytes += encoded_bytes as u64 * MEMORY_PER_ENCODED_BYTE;
        self.first_insert.get_or_insert_with(Instant::now);
    }

    pub fn insert_spans(&mut self, spans: Vec<Span>, encoded_bytes: usize) {
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
        self.note_insert(encoded_bytes);
    }

    pub fn insert_logs(&mut self, logs: Vec<LogRecord>, encoded_bytes: usize) {
        if logs.is_empty() {
            return;
        }
        self.log_count += logs.len() as u64;
        self.log_chunks.push(Arc::new(logs));
        self.note_insert(encoded_bytes);
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
