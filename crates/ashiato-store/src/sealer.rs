//! The sealer: turns frozen memtables into Parquet segments.
//!
//! Sealing a frozen memtable has two phases. The write phase writes
//! `spans-<seq>.parquet` and `logs-<seq>.parquet` under a temporary name,
//! fsyncs and renames them; it touches nothing shared, so up to
//! `seal_workers` memtables are written at once (one worker thread each).
//! The commit phase registers the segments in the catalog together with
//! "WAL covered up to seq" in one transaction, deletes the covered WAL files
//! and swaps the memtable for the segments in memory (under one lock, so
//! readers see each row exactly once). Commits run strictly in the order the
//! memtables were frozen, so the covered mark only ever advances in seq
//! order: a later memtable whose write finishes first waits with its files
//! written but not registered (`open` deletes such files after a crash, and
//! the WAL still holds their rows). A failed write or commit is retried with
//! backoff; later memtables wait for it, their data stays in the WAL and the
//! frozen memtables meanwhile.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};

use crate::catalog::{NewSegment, SegmentKind};
use crate::error::StoreError;
use crate::memtable::Memtable;
use crate::segment::{self, Segment, WrittenSegment};
use crate::shared::Shared;
use crate::wal::{self, io_error, sync_dir};
use crate::writer::SealReply;

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub struct SealJob {
    /// `None` only asks for a reply once earlier jobs are done.
    pub table: Option<Arc<Memtable>>,
    pub reply: Option<SealReply>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the workers share: the job queue and whose turn it is to commit.
struct Workers {
    shared: Arc<Shared>,
    /// The queue and the next ticket, under one lock so tickets follow the
    /// order the writer froze the memtables in.
    inbox: Mutex<(Receiver<SealJob>, u64)>,
    turns: Turns,
}

/// Runs the sealer on this thread plus `seal_workers - 1` helpers; returns
/// when the writer is gone or the store shuts down.
pub fn run(shared: Arc<Shared>, inbox: Receiver<SealJob>) {
    let count = shared.config.seal_workers.max(1);
    let workers = Workers {
        shared,
        inbox: Mutex::new((inbox, 0)),
        turns: Turns::default(),
    };
    std::thread::scope(|scope| {
        for n in 1..count {
            let spawned = std::thread::Builder::new()
                .name(format!("ashiato-seal-{n}"))
                .spawn_scoped(scope, || work(&workers));
            if let Err(failure) = spawned {
                warn!(error = %failure, "could not start a seal worker, sealing with fewer");
            }
        }
        work(&workers);
    });
}

/// One worker: take the next job, write it, wait for its turn, commit it.
fn work(workers: &Workers) {
    let shared = &workers.shared;
    loop {
        let (ticket, job, held) = {
            let mut inbox = lock(&workers.inbox);
            let Ok(job) = inbox.0.recv() else { return };
            let ticket = inbox.1;
            inbox.1 += 1;
            (ticket, job, shared.seal_hold.take_armed())
        };
        // stops every later commit if this job ends without committing
        let mut turn = Turn {
            turns: &workers.turns,
            ticket,
            done: false,
        };
        let mut reply = job.reply;
        let sealed = match job.table {
            Some(table) => {
                if held && !shared.seal_hold.wait_released(&shared.shutting_down) {
                    return;
                }
                let started = std::time::Instant::now();
                let Some(written) = write_with_retry(shared, &table, &mut reply) else {
                    return;
                };
                shared.timings.seal.record(started.elapsed());
                Some((table, written))
            }
            None => None,
        };
        if !workers.turns.wait_for(ticket) {
            // an earlier job was abandoned at shutdown; the WAL keeps this one
            return;
        }
        if let Some((table, written)) = sealed
            && !commit_with_retry(shared, &table, written, &mut reply)
        {
            return;
        }
        turn.finish();
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
    }
}

/// The write phase, retried until it succeeds; `None` at shutdown.
fn write_with_retry(
    shared: &Shared,
    table: &Memtable,
    reply: &mut Option<SealReply>,
) -> Option<Vec<Written>> {
    let mut delay = RETRY_MIN;
    loop {
        if shared.shutting_down.load(Ordering::Relaxed) {
            // The data is safe in the WAL; the next open replays it.
            return None;
        }
        match write(shared, table) {
            Ok(written) => {
                shared.seal_hold.wrote();
                return Some(written);
            }
            Err(failure) => {
                error!(wal_seq = table.wal_seq, error = %failure, "seal failed, will retry");
                back_off(failure, reply, &mut delay);
            }
        }
    }
}

/// The commit phase, retried until the catalog takes it; `false` at
/// shutdown (the written files are then orphans that `open` deletes).
fn commit_with_retry(
    shared: &Shared,
    table: &Arc<Memtable>,
    written: Vec<Written>,
    reply: &mut Option<SealReply>,
) -> bool {
    let mut delay = RETRY_MIN;
    loop {
        match commit_catalog(shared, table.wal_seq, &written) {
            Ok(ids) => {
                finish_commit(shared, table, written, ids);
                return true;
            }
            Err(failure) => {
                error!(wal_seq = table.wal_seq, error = %failure, "seal commit failed, will retry");
                back_off(failure, reply, &mut delay);
                if shared.shutting_down.load(Ordering::Relaxed) {
                    return false;
                }
            }
        }
    }
}

/// After a failed write or commit: tells a waiting `seal_now` (once), then
/// sleeps before the retry, doubling the delay up to `RETRY_MAX`.
fn back_off(failure: StoreError, reply: &mut Option<SealReply>, delay: &mut Duration) {
    if let Some(reply) = reply.take() {
        let _ = reply.send(Err(failure));
    }
    std::thread::sleep(*delay);
    *delay = (*delay * 2).min(RETRY_MAX);
}

/// Commit order: tickets are handed out in the order jobs arrive and a job
/// commits only when every earlier ticket has.
#[derive(Default)]
struct Turns {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    /// The ticket allowed to commit next.
    next: u64,
    /// An earlier job ended without committing (shutdown or panic): nothing
    /// after it may commit, or the covered mark would skip its WAL file.
    stopped: bool,
}

impl Turns {
    /// Waits until `ticket` may commit; `false` once commits have stopped.
    fn wait_for(&self, ticket: u64) -> bool {
        let mut state = lock(&self.state);
        while !state.stopped && state.next != ticket {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.stopped
    }
}

/// A job's place in the commit order; dropping it unfinished stops all
/// later commits (also when the worker panics).
struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
    done: bool,
}

impl Turn<'_> {
    fn finish(&mut self) {
        self.done = true;
        lock(&self.turns.state).next = self.ticket + 1;
        self.turns.changed.notify_all();
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.turns.state).stopped = true;
            self.turns.changed.notify_all();
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

/// The write phase: segment files of one memtable, fsynced and renamed, not
/// yet registered anywhere.
fn write(shared: &Shared, table: &Memtable) -> Result<Vec<Written>, StoreError> {
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
    Ok(written)
}

/// Registers the written segments and the covered mark in one transaction.
fn commit_catalog(shared: &Shared, seq: u64, written: &[Written]) -> Result<Vec<i64>, StoreError> {
    let mut catalog = lock(&shared.catalog);
    let new_segments: Vec<NewSegment<'_>> = written
        .iter()
        .map(|(kind, name, _, summary)| NewSegment {
            kind: *kind,
            file: name,
            written: summary,
        })
        .collect();
    catalog.commit_seal(&new_segments, seq, now_unix_nano())
}

/// After the catalog commit: nothing here may fail the seal, or the segment
/// would be registered twice.
fn finish_commit(shared: &Shared, table: &Arc<Memtable>, written: Vec<Written>, ids: Vec<i64>) {
    let seq = table.wal_seq;
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
