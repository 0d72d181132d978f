//! The WAL writer thread: group commit, memtable insertion, rotation.
//!
//! Appenders queue framed records; the thread takes everything queued,
//! writes it with one `write` and one fdatasync, inserts the batches into the
//! active memtable and only then acknowledges each appender. It also rotates
//! the WAL (start a new file, freeze the memtable, hand it to the sealer) when
//! the memtable passes its row, size or age threshold, so that "WAL file N"
//! and "memtable N" always hold exactly the same records.

use std::mem;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ashiato_model::{LogRecord, Span};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::error::StoreError;
use crate::memtable::Memtable;
use crate::sealer::SealJob;
use crate::shared::Shared;
use crate::wal::WalFile;

/// How often an idle writer wakes to check the memtable's age.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Upper bound of bytes written in one group commit.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

pub enum Batch {
    Spans(Vec<Span>),
    Logs(Vec<LogRecord>),
}

/// One appender's batch, waiting for its fsync.
pub struct Commit {
    pub record: Vec<u8>,
    /// Estimated memtable bytes of the batch.
    pub memory: u64,
    pub batch: Batch,
    pub done: oneshot::Sender<Result<(), StoreError>>,
    /// Holds the batch's share of the pending-bytes budget until acknowledged.
    pub permit: OwnedSemaphorePermit,
}

pub type SealReply = std::sync::mpsc::Sender<Result<(), StoreError>>;

pub enum WriterMsg {
    Commit(Commit),
    /// Seal the active memtable now; the reply comes once it is in a segment.
    Seal(SealReply),
    /// Finish what is queued, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// A door the writer passes before each commit; tests close it to simulate
/// a stalled disk.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = closed;
        self.opened.notify_all();
    }

    fn wait_open(&self) {
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        while *closed {
            closed = self.opened.wait(closed).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub struct Writer {
    pub shared: Arc<Shared>,
    pub wal: WalFile,
    pub inbox: Receiver<WriterMsg>,
    pub sealer: Sender<SealJob>,
    /// Test hook: while it is closed the writer does not commit.
    pub gate: Arc<Gate>,
}

impl Writer {
    pub fn run(mut self) {
        self.rotate_if_due();
        loop {
            let first = match self.inbox.recv_timeout(IDLE_TICK) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    self.rotate_if_due();
                    // nothing to commit for a tick: whatever the last burst
                    // (ingest, a seal, the start-up scans) freed goes back to
                    // the OS, so an idle server does not keep it resident
                    ashiato_heap::release_free_memory();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut commits = Vec::new();
            let mut controls = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    WriterMsg::Commit(commit) => {
                        bytes += commit.record.len();
                        commits.push(commit);
                    }
                    control => controls.push(control),
                }
                if bytes < MAX_GROUP_BYTES {
                    next = self.inbox.try_recv().ok();
                }
            }
            self.commit_group(commits);
            self.rotate_if_due();
            for control in controls {
                match control {
                    WriterMsg::Seal(reply) => self.rotate(Some(reply)),
                    WriterMsg::Shutdown(reply) => {
                        let _ = reply.send(());
                        return;
                    }
                    WriterMsg::Commit(_) => {}
                }
            }
        }
    }

    fn commit_group(&mut self, commits: Vec<Commit>) {
        if commits.is_empty() {
            return;
        }
        self.gate.wait_open();
        let records: Vec<&[u8]> = commits.iter().map(|c| c.record.as_slice()).collect();
        let started = std::time::Instant::now();
        let synced = self.wal.append_and_sync(&records);
        self.shared.timings.wal_sync.record(started.elapsed());
        if let Err(failure) = synced {
            error!(error = %failure, "wal write failed, rejecting batches");
            let message = failure.to_string();
            for commit in commits {
                let error = match &failure {
                    StoreError::DiskFull { path, detail } => StoreError::DiskFull {
                        path: path.clone(),
                        detail: detail.clone(),
                    },
                    _ => StoreError::WalWrite {
                        reason: message.clone(),
                    },
                };
                let _ = commit.done.send(Err(error));
            }
            return;
        }
        // counted before the state lock is taken, so readers never wait on it;
        // the writer is the only inserter, so the figures still match the memtable
        for commit in &commits {
            if let Batch::Spans(spans) = &commit.batch {
                self.shared.aggregates.record(spans);
            }
        }
        let mut waiters = Vec::with_capacity(commits.len());
        {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            let before = state.active.estimated_bytes;
            for commit in commits {
                let size = commit.memory;
                match commit.batch {
                    Batch::Spans(spans) => state.active.insert_spans(spans, size),
                    Batch::Logs(logs) => state.active.insert_logs(logs, size),
                }
                waiters.push((commit.done, commit.permit));
            }
            let grown = state.active.estimated_bytes - before;
            self.shared.memory_bytes.fetch_add(grown, Ordering::Relaxed);
        }
        for (done, permit) in waiters {
            drop(permit);
            let _ = done.send(Ok(()));
        }
    }

    fn rotate_if_due(&mut self) {
        let due = {
            let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
            let table = &state.active;
            let config = &self.shared.config;
            !table.is_empty()
                && (table.span_count + table.log_count >= config.seal_max_rows
                    || table.estimated_bytes >= config.seal_max_bytes
                    || table.first_insert.is_some_and(|first| {
                        let age = first.elapsed();
                        let rows = table.span_count + table.log_count;
                        (age >= config.seal_max_age && rows >= config.seal_age_min_rows)
                            || age >= config.seal_idle_max_age
                    }))
        };
        if due {
            self.rotate(None);
        }
    }

    /// Starts a new WAL file and hands the current memtable to the sealer.
    fn rotate(&mut self, reply: Option<SealReply>) {
        let is_empty = self
            .shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .is_empty();
        if is_empty {
            // Nothing new; the reply still waits for earlier seals to finish.
            let _ = self.sealer.send(SealJob { table: None, reply });
            return;
        }
        let next_seq = self.wal.seq + 1;
        let new_wal = match WalFile::create(&self.shared.paths.wal_dir, next_seq) {
            Ok(file) => file,
            Err(failure) => {
                error!(error = %failure, "could not start a new wal file, sealing later");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(failure));
                }
                return;
            }
        };
        self.wal = new_wal;
        let frozen = {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            let frozen = Arc::new(mem::replace(&mut state.active, Memtable::new(next_seq)));
            state.frozen.push(frozen.clone());
            frozen
        };
        // before the sealer can cover this WAL file (see `aggregates`)
        self.shared
            .aggregates
            .persist_generation(frozen.wal_seq, self.shared.config.retention);
        info!(
            wal_seq = frozen.wal_seq,
            spans = frozen.span_count,
            logs = frozen.log_count,
            "sealing memtable"
        );
        let _ = self.sealer.send(SealJob {
            table: Some(frozen),
            reply,
        });
    }
}
