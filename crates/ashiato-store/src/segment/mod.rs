//! Immutable Parquet segments: what a sealed memtable becomes on disk.
//!
//! A segment is one Parquet file of spans or of log records, written once
//! by the sealer and never changed (retention deletes it whole). Span
//! segments are sorted by trace id then start time, so each row group
//! covers a narrow trace-id range (kept in memory from the footer statistics)
//! and a `trace_id` bloom filter is written for later use; a trace lookup
//! opens only row groups whose range holds the id and decodes only rows whose
//! `trace_id` matches (a Parquet row filter). Log segments are sorted by
//! service then time. Nested parts (attributes, events, links, resource,
//! scope) are blobs in ashiato's own codec; repeated resource/scope blobs
//! collapse under Parquet dictionary encoding, the rest under zstd. A span
//! segment's frequent attribute keys get nullable columns of their own
//! (`attr.<n>`, see `promoted`), and the attributes blob keeps a
//! placeholder where each of them was, so attributes read back in order.
//!
//! By job, dependencies pointing one way:
//!
//! - `schema`: the columns of each kind of segment and their encodings.
//! - `write`: memtable rows to a segment file (uses `schema`).
//! - `trace_index`: the per-row-group and per-page trace-id index a span
//!   segment keeps in memory (built by `read` from the footer).
//! - `read`: an open `Segment` and its readers (uses `schema`,
//!   `trace_index`, `columns`).
//! - `columns`: rows of a read batch back into spans and log records (uses
//!   `schema`).

mod columns;
mod read;
mod schema;
mod trace_index;
mod write;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::StoreError;
use crate::stats::OpStats;

pub(crate) use self::columns::PromotedColumns;
pub use self::columns::{LogColumns, SharedParts, SpanColumns, SpanParts};
pub use self::read::Segment;
#[cfg(test)]
pub(crate) use self::write::{copy_through_arrow_writer, write_spans_promoting};
pub use self::write::{write_logs, write_spans};

/// What the catalog and the in-memory segment list need to know about a
/// freshly written segment.
pub struct WrittenSegment {
    pub rows: u64,
    pub bytes: u64,
    pub min_time: u64,
    pub max_time: u64,
    pub services: BTreeSet<String>,
    pub ops: OpStats,
}

pub fn parquet_error(path: &Path, source: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: source.to_string(),
    }
}
