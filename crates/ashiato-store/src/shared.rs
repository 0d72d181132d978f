//! What the store handle and its threads (WAL writer, sealer, retention)
//! share: the configuration, file paths, the readers' view of memtables and
//! segments, the catalog, memory accounting, and the directory lock.
//!
//! It sits below `lib.rs` and the threads' modules, so none of them reaches
//! up to the crate root for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use crate::aggregates::Aggregates;
use crate::catalog::Catalog;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::memtable::Memtable;
use crate::seal_hold::WriteHold;
use crate::segment::Segment;
use crate::stats::OpStats;
use crate::timings::StoreTimings;
use crate::wal::io_error;

/// Where the store's files live.
pub struct Paths {
    pub wal_dir: PathBuf,
    pub segments_dir: PathBuf,
}

/// What readers see; swapped under one lock so each row is visible exactly once.
pub struct State {
    pub active: Memtable,
    /// Memtables being sealed, oldest first.
    pub frozen: Vec<Arc<Memtable>>,
    pub span_segments: Vec<Arc<Segment>>,
    pub log_segments: Vec<Arc<Segment>>,
    /// Per (service, operation) counts of all span segments.
    pub sealed_stats: OpStats,
}

/// State shared by the store handle and its threads.
pub struct Shared {
    /// Released when the last thread using the directory is gone.
    pub _dir_lock: DirLock,
    pub config: StoreConfig,
    pub paths: Paths,
    pub state: RwLock<State>,
    pub catalog: Mutex<Catalog>,
    /// Estimated bytes of active + frozen memtables.
    pub memory_bytes: AtomicU64,
    pub shutting_down: AtomicBool,
    /// Per-minute service/operation figures (see `aggregates`).
    pub aggregates: Aggregates,
    /// Test hook holding back one seal's write phase (see `hold_next_seal`).
    pub seal_hold: Arc<WriteHold>,
    /// WAL commit and seal durations (see `timings`).
    pub timings: StoreTimings,
}

/// An exclusive `flock` on `data_dir/LOCK`: a second process (or a second
/// `Store` in this one) on the same directory would interleave WAL files and
/// delete each other's data.
pub struct DirLock {
    _file: fs::File,
}

impl DirLock {
    pub fn acquire(data_dir: &Path) -> Result<DirLock, StoreError> {
        let path = data_dir.join("LOCK");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        #[cfg(unix)]
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(StoreError::Locked { path }),
            Err(errno) => return Err(io_error(&path, errno.into())),
        }
        Ok(DirLock { _file: file })
    }
}
