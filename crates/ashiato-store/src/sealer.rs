//! The sealer thread: turns frozen memtables into Parquet segments.
//!
//! For each frozen memtable, in order: write `spans-<seq>.parquet` and
//! `logs-<seq>.parquet` under a temporary name, fsync, rename, then register
//! them in the catalog together with "WAL covered up to seq" in one
//! transaction. Only then is the memtable swapped for the segments in memory
//! (under one lock, so readers see each row exactly once) and the covered WAL
//! files deleted. A failed seal is retried; the data stays in the WAL and the
//! frozen memtable meanwhile.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};

use crate::catalog::{NewSegment, SegmentKind};
use crate::memtable::Memtable;
use crate::segment::{self, Segment, WrittenSegment};
use crate::wal::{self, io_error, sync_dir};
use crate::writer::SealReply;
use crate::{Shared, StoreError};

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub struct SealJob {
    /// `None` only asks for a reply once earlier jobs are done.
    pub table: Option<Arc<Memtable>>,
    pub reply: Option<SealReply>,
}

pub fn run(shared: Arc<Shared>, inbox: Receiver<SealJob>) {
    while let Ok(job) = inbox.recv() {
        let mut reply = job.reply;
        if let Some(table) = job.table {
            let mut delay = RETRY_MIN;
            loop {
                if shared.shutting_down.load(Ordering::Relaxed) {
                    // The data is safe in the WAL; the next open replays it.
                    return;
                }
                match seal(&shared, &table) {
                    Ok(()) => break,
                    Err(failure) => {
                        error!(wal_seq = table.wal_seq, error = %failure, "seal failed, will retry");
                        if let Some(reply) = reply.take() {
                            let _ = reply.send(Err(failure));
                        }
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
    }
}

pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn segment_file_name(kind: SegmentKind, seq: u64) -> String {
    format!("{}-{seq:08}.parquet", kind.as_str())
}

/// Writes a segment under a temporary name and renames it into place.
fn write_segment(
    dir: &Path,
    file_name: &str,
    write: impl FnOnce(&Path) -> Result<WrittenSegment, StoreError>,
) -> Result<(PathBuf, WrittenSegment), StoreError> {
    let final_path = dir.join(file_name);
    let temp_path = dir.join(format!("{file_name}.tmp"));
    let written = write(&temp_path)?;
    fs::rename(&temp_path, &final_path).map_err(|e| io_error(&final_path, e))?;
    Ok((final_path, written))
}

fn seal(shared: &Shared, table: &Arc<Memtable>) -> Result<(), StoreError> {
    let dir = &shared.paths.segments_dir;
    let seq = table.wal_seq;
    let mut written: Vec<Written> = Vec::new();
    let spans: Vec<_> = table.spans().collect();
    if !spans.is_empty() {
        let name = segment_file_name(SegmentKind::Spans, seq);
        let (path, summary) = write_segment(dir, &name, |p| segment::write_spans(p, &spans))?;
        written.push((SegmentKind::Spans, name, path, summary));
    }
    drop(spans);
    let logs: Vec<_> = table.logs().collect();
    if !logs.is_empty() {
        let name = segment_file_name(SegmentKind::Logs, seq);
        let (path, summary) = write_segment(dir, &name, |p| segment::write_logs(p, &logs))?;
        written.push((SegmentKind::Logs, name, path, summary));
    }
    drop(logs);
    sync_dir(dir)?;

    let mut catalog = shared.catalog.lock().unwrap_or_else(|e| e.into_inner());
    let new_segments: Vec<NewSegment<'_>> = written
        .iter()
        .map(|(kind, name, _, summary)| NewSegment {
            kind: *kind,
            file: name,
            written: summary,
        })
        .collect();
    let ids = catalog.commit_seal(&new_segments, seq, now_unix_nano())?;
    drop(catalog);

    // Committed: from here on nothing may be retried, or the segment would be
    // registered twice.
    delete_covered_wal(&shared.paths.wal_dir, seq);
    match open_segments(written, ids) {
        Ok(opened) => swap_in_segments(shared, table, opened),
        Err(failure) => {
            // The frozen memtable keeps serving the rows until the next open
            // loads the segments from the catalog.
            error!(wal_seq = seq, error = %failure, "sealed segment unreadable, serving from memory");
        }
    }
    info!(
        wal_seq = seq,
        spans = table.span_count,
        logs = table.log_count,
        "sealed memtable"
    );
    Ok(())
}

type Written = (SegmentKind, String, PathBuf, WrittenSegment);

fn open_segments(
    written: Vec<Written>,
    ids: Vec<i64>,
) -> Result<Vec<(SegmentKind, Arc<Segment>)>, StoreError> {
    let mut opened = Vec::new();
    for ((kind, _, path, summary), id) in written.into_iter().zip(ids) {
        let segment = Segment::open(id, path, summary, kind == SegmentKind::Spans)?;
        opened.push((kind, Arc::new(segment)));
    }
    Ok(opened)
}

fn swap_in_segments(
    shared: &Shared,
    table: &Arc<Memtable>,
    opened: Vec<(SegmentKind, Arc<Segment>)>,
) {
    let mut state = shared.state.write().unwrap_or_else(|e| e.into_inner());
    state.frozen.retain(|frozen| !Arc::ptr_eq(frozen, table));
    for (kind, segment) in opened {
        match kind {
            SegmentKind::Spans => {
                state.sealed_stats.merge(&segment.ops);
                state.span_segments.push(segment);
            }
            SegmentKind::Logs => state.log_segments.push(segment),
        }
    }
    drop(state);
    shared
        .memory_bytes
        .fetch_sub(table.estimated_bytes, Ordering::Relaxed);
}

/// Removes WAL files the catalog now says are covered; a failure only leaves
/// a redundant file that the next open removes.
pub fn delete_covered_wal(wal_dir: &Path, covered: u64) {
    let seqs = match wal::list_files(wal_dir) {
        Ok(seqs) => seqs,
        Err(failure) => {
            warn!(error = %failure, "could not list wal files");
            return;
        }
    };
    for seq in seqs.into_iter().filter(|&s| s <= covered) {
        let path = wal::wal_path(wal_dir, seq);
        if let Err(failure) = fs::remove_file(&path) {
            warn!(path = %path.display(), error = %failure, "could not delete covered wal file");
        }
    }
}
