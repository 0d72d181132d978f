//! How the store is opened: `StoreConfig` and its defaults.

use std::path::PathBuf;
use std::time::Duration;

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root of everything the store writes (`wal/`, `segments/`, `catalog.sqlite`).
    pub data_dir: PathBuf,
    /// Whole segments whose newest data is older than this are deleted.
    pub retention: Duration,
    /// Bytes accepted but not yet fsynced before appends wait, then fail.
    pub max_pending_bytes: usize,
    /// How long an append waits for room before it fails with `Overloaded`.
    pub overload_wait: Duration,
    /// Seal the memtable once it holds this many rows (spans + logs)…
    pub seal_max_rows: u64,
    /// …or this many estimated bytes…
    pub seal_max_bytes: u64,
    /// …or its oldest row is this old and it holds `seal_age_min_rows`…
    pub seal_max_age: Duration,
    pub seal_age_min_rows: u64,
    /// …or its oldest row is this old whatever its size (so a quiet server
    /// still seals, without making a tiny segment every few minutes).
    pub seal_idle_max_age: Duration,
    /// Estimated bytes of active plus frozen memtables above which appends
    /// are refused until sealing catches up.
    pub max_memory_bytes: u64,
    /// Frozen memtables written to Parquet at once (each on its own thread;
    /// commits still happen one at a time, oldest first).
    pub seal_workers: usize,
    /// How often expired segments are looked for.
    pub retention_interval: Duration,
}

impl StoreConfig {
    /// Defaults: 7 days retention, 64 MiB pending, seal at 1M rows / 128 MiB
    /// / 2 minutes (with at least 10k rows) / 30 minutes, 384 MiB memtable
    /// memory, two seal workers, retention checked every minute.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_pending_bytes: 64 * 1024 * 1024,
            overload_wait: Duration::from_secs(1),
            seal_max_rows: 1_000_000,
            seal_max_bytes: 128 * 1024 * 1024,
            seal_max_age: Duration::from_secs(120),
            seal_age_min_rows: 10_000,
            seal_idle_max_age: Duration::from_secs(30 * 60),
            max_memory_bytes: 384 * 1024 * 1024,
            seal_workers: 2,
            retention_interval: Duration::from_secs(60),
        }
    }
}
