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
    Catalog(#[from] rusqlite::Error),
    #[error("unreadable segment {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("wal write failed: {reason}")]
    WalWrite { reason: String },
    #[error("batch is too large for one wal record")]
    BatchTooLarge,
    #[error("data directory is in use by another process (lock held on {path})")]
    Locked { path: PathBuf },
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
