//! The store's errors: failures of the store itself (`StoreError`) and
//! why an append was not acknowledged (`AppendError`).
//!
//! Every module of the crate reports through these, so they live below all
//! of them rather than in `lib.rs`.

use std::path::PathBuf;
use std::time::Duration;

/// Failures of the store itself (disk, corruption that cannot be skipped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store is closed")]
    Closed,
    #[error("catalog error: {0}")]
    Catalog(rusqlite::Error),
    /// The device holding the data directory is full (ENOSPC, EDQUOT,
    /// SQLITE_FULL): retryable once space is freed, unlike other failures.
    #[error("disk full: no space left for {path} ({detail}); free space on its device")]
    DiskFull { path: PathBuf, detail: String },
    #[error("unreadable segment {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("wal write failed: {reason}")]
    WalWrite { reason: String },
    #[error("batch is too large for one wal record")]
    BatchTooLarge,
    #[error("data directory is in use by another process (lock held on {path})")]
    Locked { path: PathBuf },
}

impl StoreError {
    /// Whether the failure is a full disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}

/// `ENOSPC` and `EDQUOT` (io kinds `StorageFull`, `QuotaExceeded`).
pub(crate) fn is_no_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::DiskFull {
                path: PathBuf::from("catalog.sqlite"),
                detail: error.to_string(),
            };
        }
        StoreError::Catalog(error)
    }
}

/// Free bytes below which a failure is blamed on a full disk: SQLite and
/// the file system report ENOSPC in many forms (SQLITE_IOERR, SQLITE_CANTOPEN,
/// short writes), so a failed open checks the device itself.
const NEARLY_FULL_BYTES: u64 = 1024 * 1024;

/// `error`, or [`StoreError::DiskFull`] when the device holding `dir` has
/// (almost) no space left for unprivileged writes.
pub(crate) fn explain_no_space(dir: &std::path::Path, error: StoreError) -> StoreError {
    if error.is_disk_full() {
        return error;
    }
    match free_bytes(dir) {
        Some(free) if free < NEARLY_FULL_BYTES => StoreError::DiskFull {
            path: dir.to_path_buf(),
            detail: format!("{free} bytes free; {error}"),
        },
        _ => error,
    }
}

#[cfg(unix)]
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &std::path::Path) -> Option<u64> {
    None
}

/// Why an append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The writer is behind; the client should retry after the given delay.
    #[error("store is overloaded, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}
